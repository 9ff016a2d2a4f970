"""configs/ner_rel_textcat_tok2vec.cfg: tok2vec -> ner -> relation_extractor ->
textcat_attention, trained together (briefly) on the demo corpus, and `extract --html` on it."""
import html
import json
import re
from pathlib import Path

import pytest
import spacy
from spacy.util import minibatch
from thinc.api import Config, fix_random_seed
from typer.testing import CliRunner

from spacy_ie.cli import app
from spacy_ie.training.corpus import create_relation_corpus

from conftest import REPO_ROOT, SMALL_OVERRIDES  # tests/ is on sys.path (rootdir conftest)

CONFIG = REPO_ROOT / "configs" / "ner_rel_textcat_tok2vec.cfg"
DEMO_CATS = {"BUSINESS", "BIOGRAPHY", "GEOGRAPHY"}
N_HEADS = 2
SMALL = {
    **SMALL_OVERRIDES,
    "components.textcat_attention.model.n_heads": N_HEADS,
    "components.textcat_attention.model.hidden_width": 32,
}
# About 4 epochs of batches of 16: fewer (e.g. 30) leave `ner` predicting no entities yet.
N_UPDATES = 90


@pytest.fixture(scope="module")
def textcat_pipeline(demo_corpus, tmp_path_factory) -> Path:
    """The pipeline of the config, small, after N_UPDATES updates as `spacy train` makes them
    (annotating components included), saved with its averaged parameters."""
    fix_random_seed(0)
    config = Config().from_disk(CONFIG, overrides=SMALL)
    nlp = spacy.util.load_model_from_config(config, auto_fill=True)
    assert nlp.pipe_names == ["tok2vec", "ner", "relation_extractor", "textcat_attention"]
    examples = list(create_relation_corpus(demo_corpus["train"])(nlp))
    cats = [eg.reference.cats for eg in examples]
    problem = "the prodigy converter did not read 'options'/'accept' into doc.cats"
    assert all(set(c) == DEMO_CATS for c in cats), problem
    assert any(sum(c.values()) >= 2 for c in cats) and any(not any(c.values()) for c in cats)
    optimizer = nlp.initialize(lambda: examples)
    annotates = config["training"]["annotating_components"]
    batches = [b for _ in range(5) for b in minibatch(examples, 16)][:N_UPDATES]
    assert len(batches) == N_UPDATES
    for batch in batches:
        losses = nlp.update(batch, sgd=optimizer, drop=0.1, annotates=annotates)
    assert set(losses) == set(nlp.pipe_names)
    path = tmp_path_factory.mktemp("textcat_pipeline") / "model"
    with nlp.use_params(optimizer.averages):
        nlp.to_disk(path)
    return path


def test_config_textcat_settings_and_score_weights():
    config = Config().from_disk(CONFIG)
    textcat = config["components"]["textcat_attention"]
    assert textcat["exclusive_classes"] is False and textcat["model"]["exclusive_classes"] is False
    assert textcat["model"]["entity_aware"] is True
    assert textcat["model"]["tok2vec"]["@architectures"] == "spacy.Tok2VecListener.v1"
    weights = {k: v for k, v in config["training"]["score_weights"].items() if v}
    assert set(weights) == {"ents_f", "rel_micro_f", "cats_macro_f"}


def test_pipeline_predicts_ents_relations_cats(textcat_pipeline, demo_corpus):
    nlp = spacy.load(textcat_pipeline)
    assert set(nlp.get_pipe("textcat_attention").labels) == DEMO_CATS
    examples = list(create_relation_corpus(demo_corpus["dev"])(nlp))
    docs = list(nlp.pipe(eg.text for eg in examples))
    assert sum(len(doc.ents) for doc in docs) > 0
    assert sum(len(doc._.relations) for doc in docs) > 0
    for doc in docs:
        assert set(doc.cats) == DEMO_CATS and all(0.0 <= s <= 1.0 for s in doc.cats.values())
        assert doc._.textcat_attention.shape == (N_HEADS, len(doc))
    scores = nlp.evaluate(examples)
    for key in ("ents_f", "rel_micro_f", "cats_macro_f"):
        assert key in scores and scores[key] is not None


def test_extract_html_highlights_tokens(textcat_pipeline, tmp_path):
    texts = [
        "Omar Said founded Kestrel Robotics in Manchester.",
        'Tom & Jerry <Ltd> hired "Ann" O\'Neil.',
        "",
    ]
    input_path = tmp_path / "input.txt"
    input_path.write_text("\n".join(texts) + "\n", encoding="utf8")
    output, page_path = tmp_path / "out.jsonl", tmp_path / "page.html"
    args = [textcat_pipeline, input_path, "-o", output, "--html", page_path]
    result = CliRunner().invoke(app, ["extract", *map(str, args)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in output.read_text(encoding="utf8").splitlines()]
    assert [set(r["cats"]) for r in records] == [DEMO_CATS] * len(texts)
    page = page_path.read_text(encoding="utf8")
    # an arc drawing per document with words; the empty one says so instead
    assert page.count("<svg") == len(texts) - 1 and page.count("empty document") == 1
    assert page.count('class="attention"') == len(texts)
    nlp = spacy.blank("en")
    tokens = re.findall(r'<span class="attention-token"[^>]*>([^<]*)</span>', page)
    assert tokens == [html.escape(t.text) for text in texts for t in nlp(text)]
    assert {"&amp;", "&lt;", "&gt;", "&quot;"} <= set(tokens) and "<Ltd>" not in page
    opacities = [float(a) for a in re.findall(r"rgba\(255, 140, 0, ([0-9.]+)\)", page)]
    assert len(opacities) == len(tokens) and max(opacities) == 1.0
    assert page.count('class="attention-cats"') == len(texts)
