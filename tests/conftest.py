"""Shared pytest fixtures."""
import importlib.util
import os
from pathlib import Path
from types import ModuleType
from typing import List, Tuple

import pytest
from hypothesis import strategies as st

REPO_ROOT = Path(__file__).resolve().parent.parent
BENCHMARKS_DIR = REPO_ROOT / "benchmarks"


def load_script(path: Path, name: str) -> ModuleType:
    """Import the script at `path` as the module `name`, from its file (no sys.path change)."""
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def load_benchmark(name: str) -> ModuleType:
    """Import the script benchmarks/NAME.py as a module. Data preparation lives in
    `spacy_ie.datasets`; the scripts only measure."""
    return load_script(BENCHMARKS_DIR / f"{name}.py", f"benchmarks_{name}")


def convert_corpus(directory: Path, out: Path) -> dict:
    """The Prodigy JSONL splits ``DIRECTORY/{train,dev,test}.jsonl`` converted to DocBins in
    `out`: {split: path}."""
    from spacy_ie.training.converters import convert

    paths = {}
    for split in ("train", "dev", "test"):
        paths[split] = out / f"{split}.spacy"
        convert(directory / f"{split}.jsonl", paths[split], "prodigy")
    return paths


def annotated_doc(nlp, text: str, ents, rels):
    """A Doc of `text` holding gold entities and relations: `ents` as (text, label), each span
    found at the text's first occurrence, and `rels` as (head index, tail index, label) into
    `ents`."""
    from spacy_ie.relations import Relation

    doc = nlp.make_doc(text)
    spans = [doc.char_span(text.index(t), text.index(t) + len(t), label=label) for t, label in ents]
    doc.ents = spans
    doc._.relations = [Relation(spans[h], spans[t], label) for h, t, label in rels]
    return doc


def stderr_has(result, text: str) -> bool:
    """Whether a CLI result's stderr contains `text`, whatever the line wrapping of wasabi's
    messages (it wraps at the terminal width, so a long path moves the breaks)."""
    return "".join(text.split()) in "".join(result.stderr.split())


@pytest.fixture(scope="session")
def datasets_dir() -> Path:
    """The real datasets: $SPACY_IE_DATASETS, else ../shared/datasets beside the repo root.

    Tests that use it are skipped when the directory does not exist.
    """
    path = Path(os.environ.get("SPACY_IE_DATASETS") or REPO_ROOT.parent / "shared" / "datasets")
    if not path.is_dir():
        pytest.skip(f"real datasets not found at {path} (set SPACY_IE_DATASETS)")
    return path


DEMO_DIR = REPO_ROOT / "assets" / "demo"
# configs/ner_rel_tok2vec.cfg made small enough to train in seconds for CLI and packaging tests.
SMALL_OVERRIDES = {
    "components.tok2vec.model.encode.width": 48,
    "components.tok2vec.model.encode.depth": 2,
    "components.tok2vec.model.embed.rows": [2000, 500, 500, 500],
    "components.relation_extractor.model.hidden_width": 48,
    "components.relation_extractor.symmetric_labels": ["SPOUSE_OF"],
}


@pytest.fixture(scope="session")
def demo_corpus(tmp_path_factory) -> dict:
    """The demo corpus (assets/demo, Prodigy JSONL) converted to DocBins: {split: path}."""
    return convert_corpus(DEMO_DIR, tmp_path_factory.mktemp("demo_corpus"))


def train_briefly(config_path: Path, overrides: dict, train_path: Path, out_dir: Path, epochs: int) -> Path:
    """Train the pipeline of `config_path` (with `overrides`) for `epochs` passes over the
    DocBin `train_path` (batches of 16, seed 0) and save it, with averaged weights, to
    ``out_dir / "model"``. Good enough to predict, not to score."""
    import spacy
    from spacy.tokens import DocBin
    from spacy.training import Example
    from spacy.util import minibatch
    from thinc.api import Config, fix_random_seed

    fix_random_seed(0)
    config = Config().from_disk(config_path, overrides=overrides)
    nlp = spacy.util.load_model_from_config(config, auto_fill=True)
    docs = DocBin().from_disk(train_path).get_docs(nlp.vocab)
    examples = [Example(nlp.make_doc(doc.text), doc) for doc in docs]
    optimizer = nlp.initialize(lambda: examples)
    for _ in range(epochs):
        for batch in minibatch(examples, 16):
            nlp.update(batch, sgd=optimizer, drop=0.1)
    path = out_dir / "model"
    with nlp.use_params(optimizer.averages):
        nlp.to_disk(path)
    return path


@pytest.fixture(scope="session")
def trained_pipeline(tmp_path_factory, demo_corpus) -> Path:
    """A small tok2vec -> ner -> relation_extractor pipeline trained briefly on the demo corpus
    (saved with to_disk). Good enough to predict some entities and relations, not to score."""
    return train_briefly(
        REPO_ROOT / "configs" / "ner_rel_tok2vec.cfg", SMALL_OVERRIDES, demo_corpus["train"],
        tmp_path_factory.mktemp("pipeline"), epochs=6,
    )


# Span groups for property tests of the relation extractor and doc._.relations
SPAN_LABELS = ["PERSON", "ORG", "LOC", "UNSEEN"]


@st.composite
def span_groups(draw, n_tokens: int) -> List[Tuple[int, int, str]]:
    """Spans as (start, end, label): empty, nested, overlapping, whole-doc, and duplicates."""
    spans = draw(
        st.lists(
            st.one_of(
                st.tuples(st.integers(0, n_tokens), st.integers(0, 4)).map(
                    lambda t: (t[0], min(n_tokens, t[0] + t[1]))
                ),
                st.just((0, n_tokens)),
                st.integers(0, n_tokens).map(lambda i: (i, i)),
            ).flatmap(lambda se: st.sampled_from(SPAN_LABELS).map(lambda label: (*se, label))),
            max_size=12,
        )
    )
    duplicates = draw(st.lists(st.sampled_from(spans), max_size=4)) if spans else []
    return spans + duplicates


# Documents for the small transformer pipelines of the tests: (text, entities as (text, label),
# relations as (head index, tail index, label))
TRF_DATA = [
    ("Alice works for Acme in Paris.", [("Alice", "PER"), ("Acme", "ORG"), ("Paris", "LOC")],
     [(0, 1, "WORKS_FOR"), (1, 2, "LOCATED_IN")]),
    ("Bob was born in Rome and joined Globex.", [("Bob", "PER"), ("Rome", "LOC"), ("Globex", "ORG")],
     [(0, 1, "BORN_IN"), (0, 2, "WORKS_FOR")]),
    ("Carol lives in Oslo and works for Initech.", [("Carol", "PER"), ("Oslo", "LOC"), ("Initech", "ORG")],
     [(2, 1, "LOCATED_IN"), (0, 2, "WORKS_FOR")]),
    ("Dave was born in Lima.", [("Dave", "PER"), ("Lima", "LOC")], [(0, 1, "BORN_IN")]),
    ("Erin visited Berlin.", [("Erin", "PER"), ("Berlin", "LOC")], []),
    ("Nothing to see here.", [], []),
]
