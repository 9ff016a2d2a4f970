"""The overlapping-entity pipeline: configs/spancat_rel_tok2vec.cfg on assets/nested.

spaCy's `spancat` writes every entity, nested ones included, into doc.spans["entities"] and the
relation_extractor reads that group (spans_key = "entities"). Trained here with `spacy train`
(spaCy's own training loop, in process) on the small nested corpus, with tiny widths: the
checks are structural (nested spans come out in the group, relations link overlapping spans,
`spacy_ie evaluate` runs both views), not scores.
"""
import json
from pathlib import Path
from typing import List, Tuple

import pytest
import spacy
from spacy.tokens import Doc, DocBin, Span
from thinc.api import fix_random_seed
from typer.testing import CliRunner

from conftest import REPO_ROOT, convert_corpus
from spacy_ie.cli import app

NESTED_DIR = REPO_ROOT / "assets" / "nested"
CONFIG = REPO_ROOT / "configs" / "spancat_rel_tok2vec.cfg"
KEY = "entities"
TINY = {
    "components.tok2vec.model.encode.width": 32,
    "components.tok2vec.model.encode.depth": 2,
    "components.tok2vec.model.embed.rows": [1000, 200, 200, 200],
    "components.spancat.model.reducer.hidden_size": 32,
    "components.relation_extractor.model.hidden_width": 32,
    "training.max_steps": 100,
    "training.eval_frequency": 100,
    "training.patience": 0,
    "training.batcher.size.start": 400,
    "training.batcher.size.stop": 400,
}


def nested_pairs(spans) -> List[Tuple[Span, Span]]:
    """(outer, inner) pairs: inner lies inside outer and is shorter."""
    return [
        (a, b)
        for a in spans
        for b in spans
        if a.start <= b.start and b.end <= a.end and len(b) < len(a)
    ]


def overlap(a: Span, b: Span) -> bool:
    return a.start < b.end and b.start < a.end


@pytest.fixture(scope="module")
def nested_corpus(tmp_path_factory) -> dict:
    return convert_corpus(NESTED_DIR, tmp_path_factory.mktemp("nested_corpus"))


@pytest.fixture(scope="module")
def nested_pipeline(nested_corpus, tmp_path_factory) -> Path:
    """The config trained by `spacy train` (in process), tiny, on the nested train split."""
    from spacy.cli.train import train

    fix_random_seed(0)
    out = tmp_path_factory.mktemp("nested_model")
    overrides = {"paths.train": str(nested_corpus["train"]), "paths.dev": str(nested_corpus["dev"])}
    train(CONFIG, out, overrides={**overrides, **TINY})
    return out / "model-last"


def test_corpus_is_nested(nested_corpus):
    """The corpus has nested entities and relations on both levels (disjoint and nested pairs)."""
    nlp = spacy.blank("en")
    docs = list(DocBin().from_disk(nested_corpus["train"]).get_docs(nlp.vocab))
    assert sum(len(nested_pairs(doc.spans[KEY])) for doc in docs) >= 20
    rels = [r for doc in docs for r in doc._.relations]
    assert any(overlap(r.head, r.tail) for r in rels)  # ORG LOCATED_IN the LOC inside it
    assert any(not overlap(r.head, r.tail) for r in rels)  # PERSON WORKS_FOR the ORG
    # doc.ents cannot hold them: the inner entities are only in the span group
    assert sum(len(doc.ents) for doc in docs) < sum(len(doc.spans[KEY]) for doc in docs)


def test_spancat_feeds_the_relation_extractor(nested_pipeline, nested_corpus):
    nlp = spacy.load(nested_pipeline)
    assert nlp.pipe_names == ["tok2vec", "spancat", "relation_extractor"]
    assert nlp.get_pipe("relation_extractor").cfg["spans_key"] == KEY
    gold = list(DocBin().from_disk(nested_corpus["train"]).get_docs(nlp.vocab))
    docs: List[Doc] = list(nlp.pipe(doc.text for doc in gold))
    predicted_spans = [s for doc in docs for s in doc.spans[KEY]]
    assert predicted_spans, "spancat predicted no spans at all"
    assert any(nested_pairs(doc.spans[KEY]) for doc in docs), "no nested spans predicted"
    relations = [r for doc in docs for r in doc._.relations]
    assert relations, "no relations predicted"
    for doc in docs:
        group = {(s.start, s.end, s.label_) for s in doc.spans[KEY]}
        for rel in doc._.relations:  # arguments come from the span group, not doc.ents
            assert (rel.head.start, rel.head.end, rel.head.label_) in group
            assert (rel.tail.start, rel.tail.end, rel.tail.label_) in group
    # relations between nested (overlapping) spans are predicted, not only between disjoint ones
    assert any(overlap(r.head, r.tail) for r in relations)
    assert all(len(doc.ents) == 0 for doc in docs)  # nothing in this pipeline writes doc.ents


def test_evaluate_handles_spancat(nested_pipeline, nested_corpus, tmp_path):
    """`spacy_ie evaluate`: the gold-entity view disables spancat and copies the gold group;
    the end-to-end view scores spancat's spans."""
    output = tmp_path / "metrics.json"
    args = ["evaluate", str(nested_pipeline), str(nested_corpus["test"]), "--output", str(output)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    metrics = json.loads(output.read_text())
    views = metrics["views"]
    assert views["gold_entities"]["disabled"][:1] == ["spancat"]
    assert "spancat" not in views["end_to_end"]["disabled"]
    assert 0.0 <= metrics["ner"]["spans_entities_f"] <= 1.0
    assert "Entities, spans_entities" in result.output  # spancat's scores are printed too
    for view in views.values():
        assert 0.0 <= view["scores"]["rel_micro_f"] <= 1.0
    # On gold entities every gold relation's pair is a candidate: recall is not capped by spancat.
    recall = {name: view["scores"]["rel_micro_r"] for name, view in views.items()}
    assert recall["gold_entities"] >= recall["end_to_end"]
