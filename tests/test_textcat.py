"""spacy_ie.TextCatAttention.v1 and the textcat_attention component: gradients, learning a
toy task in spaCy's textcat / textcat_multilabel, attention weights on the Doc, serialization,
empty Docs, entry points, and the TREC scripts (preparation, benchmark configs)."""
import pickle
import subprocess
import sys
from pathlib import Path

import numpy
import pytest
import spacy
from spacy.tokens import DocBin
from spacy.training import Example
from thinc.api import Adam, fix_random_seed
from conftest import REPO_ROOT, load_benchmark
from test_ml import assert_close, fixed_tokvecs, numeric_grad, ops

from spacy_ie.ml.textcat_attention import (
    build_textcat_attention,
    entity_token_labels,
    predict_with_attention,
)
from spacy_ie.pipeline.textcat_attention import ATTENTION_ATTR
from spacy_ie.datasets import trec as prepare_trec

TOY = [
    ("where is paris", "LOC"),
    ("where is the river", "LOC"),
    ("what city is big", "LOC"),
    ("who wrote hamlet", "HUM"),
    ("who is the king", "HUM"),
    ("who painted it", "HUM"),
    ("how many cats", "NUM"),
    ("how many days in a year", "NUM"),
]
LABELS = ["HUM", "LOC", "NUM"]


def small_model(exclusive_classes=True, **kwargs):
    model = {
        "@architectures": "spacy_ie.TextCatAttention.v1",
        "exclusive_classes": exclusive_classes,
        "n_heads": 2,
        "hidden_width": 32,
        "dropout": 0.0,
        "tok2vec": {
            "@architectures": "spacy.HashEmbedCNN.v2",
            "pretrained_vectors": None,
            "width": 32,
            "depth": 1,
            "embed_size": 500,
            "window_size": 1,
            "maxout_pieces": 2,
            "subword_features": True,
        },
    }
    model.update(kwargs)
    return model


def toy_examples(nlp, multilabel=False):
    examples = []
    for text, label in TOY:
        cats = {name: float(name == label) for name in LABELS}
        if multilabel:
            cats["QUESTION"] = 1.0  # a second label that is always on
        examples.append(Example.from_dict(nlp.make_doc(text), {"cats": cats}))
    return examples


def train(nlp, examples, n_updates=30):
    fix_random_seed(0)
    nlp.initialize(lambda: examples)
    optimizer = Adam(0.01)
    for i in range(n_updates):
        nlp.update(examples, sgd=optimizer, losses={})


def train_accuracy(nlp, examples):
    docs = list(nlp.pipe(eg.reference.text for eg in examples))
    return numpy.mean(
        [max(doc.cats, key=doc.cats.get) == max(eg.reference.cats, key=eg.reference.cats.get)
         for doc, eg in zip(docs, examples)]
    )


@pytest.fixture(scope="module")
def trained_attention_nlp():
    nlp = spacy.blank("en")
    nlp.add_pipe("textcat_attention", config={"model": small_model()})
    examples = toy_examples(nlp)
    train(nlp, examples)
    return nlp, examples


# --- the model -----------------------------------------------------------------------


def _entity_docs():
    nlp = spacy.blank("en")
    d1 = nlp("Ada met Charles in London")
    d1.ents = [d1.char_span(0, 3, "PER"), d1.char_span(19, 25, "LOC")]
    d2 = nlp("")
    d3 = nlp("Acme is in Paris")
    d3.ents = [d3.char_span(0, 4, "ORG"), d3.char_span(11, 16, "LOC")]
    return [d1, d2, d3]


def test_entity_token_labels():
    docs = _entity_docs()
    rows, labels = entity_token_labels(docs)
    assert rows.tolist() == [0, 4, 5, 8]
    strings = docs[0].vocab.strings
    assert [strings[int(h)] for h in labels] == ["PER", "LOC", "ORG", "LOC"]


@pytest.mark.parametrize("exclusive_classes", [True, False])
def test_entity_aware_gradients(exclusive_classes):
    """d(probabilities)/d(token vectors) and d/d(entity-label table), batch with an empty Doc."""
    fix_random_seed(5)
    docs = _entity_docs()
    tok2vec = fixed_tokvecs(sum(len(d) for d in docs), 4)
    model = build_textcat_attention(
        tok2vec, exclusive_classes, n_heads=2, hidden_width=5, dropout=0.0,
        entity_aware=True, entity_rows=8, nO=3,
    )
    model.initialize(X=docs)
    model.get_ref("attention_pooling").set_param(
        "Q", model.get_ref("attention_pooling").get_param("Q") * 20
    )
    embed = model.get_ref("entity_embed")
    embed.set_param("E", embed.get_param("E") * 10)  # the entity path matters
    R = numpy.random.randn(3, 3).astype("float32")
    Y, backprop = model.begin_update(docs)
    assert Y.shape == (3, 3)
    backprop(ops.asarray2f(R))

    def loss() -> float:
        return float((model.predict(docs) * R).sum())

    assert_close(tok2vec.get_grad("W"), numeric_grad(loss, tok2vec.get_param("W")))
    assert_close(embed.get_grad("E"), numeric_grad(loss, embed.get_param("E")))


def test_entity_labels_change_the_prediction():
    fix_random_seed(6)
    nlp = spacy.blank("en")
    docs = [nlp("Acme is in Paris"), nlp("Acme is in Paris")]
    docs[0].ents = [docs[0].char_span(0, 4, "ORG")]
    docs[1].ents = [docs[1].char_span(0, 4, "PER")]
    tok2vec = fixed_tokvecs(8, 4)
    tok2vec.set_param("W", numpy.vstack([tok2vec.get_param("W")[:4]] * 2))  # same vectors
    for entity_aware in (True, False):
        model = build_textcat_attention(tok2vec, True, n_heads=1, entity_aware=entity_aware, nO=2)
        model.initialize(X=docs)
        output = model.get_ref("output_layer")  # zero-initialized, as in spaCy: randomize
        output.set_param("W", ops.asarray2f(numpy.random.randn(*output.get_param("W").shape)))
        Y = model.predict(docs)
        if entity_aware:
            assert not numpy.allclose(Y[0], Y[1])
    numpy.testing.assert_allclose(Y[0], Y[1], rtol=1e-6)


def test_predict_with_attention_matches_predict():
    fix_random_seed(7)
    docs = _entity_docs()
    tok2vec = fixed_tokvecs(sum(len(d) for d in docs), 4)
    model = build_textcat_attention(tok2vec, False, n_heads=3, entity_aware=True, nO=2)
    model.initialize(X=docs)
    scores, weights = predict_with_attention(model, docs)
    numpy.testing.assert_allclose(scores, model.predict(docs), rtol=1e-6)
    assert [w.shape for w in weights] == [(3, 5), (3, 0), (3, 4)]
    numpy.testing.assert_allclose(weights[0].sum(axis=1), 1.0, rtol=1e-5)


# --- in spaCy's textcat components -----------------------------------------------------


def test_textcat_learns_toy_data():
    nlp = spacy.blank("en")
    nlp.add_pipe("textcat", config={"model": small_model()})
    examples = toy_examples(nlp)
    train(nlp, examples)
    assert train_accuracy(nlp, examples) == 1.0
    doc = nlp("who is paris")
    assert sum(doc.cats.values()) == pytest.approx(1.0, abs=1e-5)
    assert nlp.evaluate(examples)["cats_macro_f"] == 1.0


def test_textcat_multilabel_learns_toy_data():
    nlp = spacy.blank("en")
    nlp.add_pipe("textcat_multilabel", config={"model": small_model(False, entity_aware=True)})
    examples = toy_examples(nlp, multilabel=True)
    train(nlp, examples)
    for doc, eg in zip(nlp.pipe(eg.reference.text for eg in examples), examples):
        assert {k for k, v in doc.cats.items() if v > 0.5} == {
            k for k, v in eg.reference.cats.items() if v
        }


def test_add_label_after_initialize_resizes_output():
    nlp = spacy.blank("en")
    textcat = nlp.add_pipe("textcat", config={"model": small_model()})
    examples = [eg for eg in toy_examples(nlp) if eg.reference.cats["NUM"] == 0]
    for eg in examples:
        del eg.reference.cats["NUM"]
    nlp.initialize(lambda: examples)
    textcat.add_label("NUM")
    assert nlp("how many").cats.keys() == {"HUM", "LOC", "NUM"}
    assert nlp("how many").cats["NUM"] < 1e-3  # a new label starts improbable
    nlp.update(toy_examples(nlp), sgd=Adam(0.01))


@pytest.mark.parametrize("factory", ["textcat", "textcat_multilabel", "textcat_attention"])
def test_empty_docs(factory):
    nlp = spacy.blank("en")
    exclusive = factory != "textcat_multilabel"
    config = {"model": small_model(exclusive)}
    if factory == "textcat_attention":
        config["exclusive_classes"] = exclusive
    nlp.add_pipe(factory, config=config)
    examples = toy_examples(nlp)
    nlp.initialize(lambda: examples)
    docs = list(nlp.pipe(["", "where is it", ""]))
    assert all(set(doc.cats) == set(LABELS) for doc in docs)
    assert nlp("").cats.keys() == set(LABELS)
    empty = Example.from_dict(nlp.make_doc(""), {"cats": {"HUM": 1.0, "LOC": 0.0, "NUM": 0.0}})
    nlp.update(examples[:2] + [empty], sgd=Adam(0.01))
    nlp.update([empty], sgd=Adam(0.01))


# --- the textcat_attention component --------------------------------------------------


def test_textcat_attention_learns_and_stores_weights(trained_attention_nlp):
    nlp, examples = trained_attention_nlp
    assert train_accuracy(nlp, examples) == 1.0
    n_heads = 2
    for doc in nlp.pipe(["where is the river Thames", "who", ""]):
        weights = doc._.textcat_attention
        assert weights.dtype == numpy.float32 and weights.shape == (n_heads, len(doc))
        if len(doc):
            numpy.testing.assert_allclose(weights.sum(axis=1), 1.0, rtol=1e-5)
            assert (weights >= 0).all()
    assert nlp.evaluate(examples)["cats_score"] == 1.0


def test_textcat_attention_weights_survive_docbin_and_pickle(trained_attention_nlp):
    nlp, _ = trained_attention_nlp
    docs = list(nlp.pipe(["where is paris", "how many days in a year"]))
    docbin = DocBin(store_user_data=True, docs=docs)
    restored = list(DocBin().from_bytes(docbin.to_bytes()).get_docs(nlp.vocab))
    for doc, copy in zip(docs, restored):
        numpy.testing.assert_array_equal(doc._.textcat_attention, copy._.textcat_attention)
        assert copy.cats == pytest.approx(doc.cats)
    numpy.testing.assert_array_equal(
        pickle.loads(pickle.dumps(docs[1]))._.textcat_attention, docs[1]._.textcat_attention
    )


def test_textcat_attention_to_disk(trained_attention_nlp, tmp_path):
    nlp, _ = trained_attention_nlp
    nlp.to_disk(tmp_path / "model")
    loaded = spacy.load(tmp_path / "model")
    assert loaded.get_pipe("textcat_attention").labels == tuple(LABELS)
    text = "who painted the river"
    doc, doc2 = nlp(text), loaded(text)
    assert doc2.cats == pytest.approx(doc.cats)
    numpy.testing.assert_allclose(doc2._.textcat_attention, doc._.textcat_attention, rtol=1e-6)


def test_textcat_attention_multilabel_and_settings():
    nlp = spacy.blank("en")
    pipe = nlp.add_pipe(
        "textcat_attention",
        config={"model": small_model(False), "exclusive_classes": False, "store_attention": False},
    )
    assert pipe.cfg["threshold"] == 0.5 and pipe.support_missing_values
    examples = toy_examples(nlp, multilabel=True)
    nlp.initialize(lambda: examples)
    doc = nlp("where is paris")
    assert len(doc.cats) == 4 and doc._.textcat_attention is None
    with pytest.raises(ValueError, match="exclusive_classes"):
        spacy.blank("en").add_pipe("textcat_attention", config={"model": small_model(False)})


def test_extension_setter_validates_and_retokenize_drops_weights():
    nlp = spacy.blank("en")
    doc = nlp("a b c")
    with pytest.raises(ValueError):
        doc._.textcat_attention = numpy.ones((2, 4))
    doc._.textcat_attention = numpy.full((1, 3), 1 / 3)
    assert doc._.textcat_attention.shape == (1, 3)
    with doc.retokenize() as retokenizer:
        retokenizer.merge(doc[0:2])
    assert doc._.textcat_attention is None


def test_registered_by_entry_points_without_import():
    code = f"""
import sys, spacy
from spacy.util import registry
assert "spacy_ie" not in sys.modules
nlp = spacy.blank("en")
nlp.add_pipe("textcat_attention")
assert callable(registry.get("architectures", "spacy_ie.TextCatAttention.v1"))
nlp.add_pipe("textcat_multilabel", config={{"model": {{
    "@architectures": "spacy_ie.TextCatAttention.v1", "exclusive_classes": False,
    "tok2vec": {{"@architectures": "spacy.Tok2VecListener.v1", "width": 96}}}}}})
doc = nlp.make_doc("x")
assert doc._.{ATTENTION_ATTR} is None
print("ok")
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


# --- configs and the TREC scripts -------------------------------------------------------


def test_trec_config_resolves():
    config = spacy.util.load_config(REPO_ROOT / "configs" / "textcat_trec.cfg")
    nlp = spacy.util.load_model_from_config(config, auto_fill=True, validate=True)
    assert nlp.pipe_names == ["tok2vec", "textcat"]
    model = nlp.get_pipe("textcat").model
    assert model.has_ref("attention_pooling") and not model.attrs["multi_label"]


def test_prepare_trec(tmp_path):
    data = tmp_path / "trec"
    data.mkdir()
    lines = []
    for i in range(20):
        for label in ("DESC:def", "HUM:ind", "LOC:city"):
            lines.append(f"{label} question number {i} about {label.lower()} ?")
    lines[0] = "LOC:other What is the sister\xf0city of Tokyo ?"
    (data / "TREC.train").write_bytes("\n".join(lines).encode("latin-1") + b"\n")
    (data / "TREC.test").write_bytes(b"NUM:date When was it ?\nHUM:ind Who is it ?\n")
    out = tmp_path / "corpus"
    prepare_trec.main(data, out, seed=0, dev_fraction=0.1)
    nlp = spacy.blank("en")
    splits = {
        name: list(DocBin().from_disk(out / f"{name}.spacy").get_docs(nlp.vocab))
        for name in ("train", "dev", "test")
    }
    assert [len(splits[s]) for s in ("train", "dev", "test")] == [54, 6, 2]
    # Stratified: each training label (20 questions each) has 2 in dev.
    dev_labels = sorted(max(d.cats, key=d.cats.get) for d in splits["dev"])
    assert dev_labels == ["DESC", "DESC", "HUM", "HUM", "LOC", "LOC"]
    for docs in splits.values():
        for doc in docs:
            assert set(doc.cats) == {"ABBR", "DESC", "ENTY", "HUM", "LOC", "NUM"}
            assert sum(doc.cats.values()) == 1.0
    texts = [d.text for d in splits["train"] + splits["dev"]]
    assert "What is the sister\xf0city of Tokyo ?" in texts


@pytest.mark.parametrize(
    "config_name,encoder,listener",
    [
        ("textcat_trec.cfg", "tok2vec", "spacy.Tok2VecListener.v1"),
        ("textcat_trec_trf.cfg", "transformer", "spacy-transformers.TransformerListener.v1"),
    ],
)
def test_trec_benchmark_swaps_only_the_textcat_model(config_name, encoder, listener):
    """Each architecture of benchmarks/textcat_trec.py gets the base config's encoder listener,
    seed and budget; TextCatBOW.v3, which reads no token vectors, runs without the encoder."""
    bench = load_benchmark("textcat_trec")
    path = REPO_ROOT / "configs" / config_name
    base = spacy.util.load_config(path, interpolate=False)
    overrides = bench.run_overrides(Path("corpus"), seed=1, max_steps=10, eval_frequency=5)
    for arch in bench.ARCHITECTURES:
        config = bench.make_config(path, arch, overrides)
        model = config["components"]["textcat"]["model"]
        assert model["@architectures"] == arch
        assert config["system"]["seed"] == 1 and config["training"]["max_steps"] == 10
        assert config["training"]["optimizer"] == base["training"]["optimizer"]
        if arch == "spacy.TextCatBOW.v3":
            assert config["nlp"]["pipeline"] == ["textcat"] and encoder not in config["components"]
        else:
            assert config["nlp"]["pipeline"] == [encoder, "textcat"]
            assert config["components"][encoder] == base["components"][encoder]
            assert model["tok2vec"] == base["components"]["textcat"]["model"]["tok2vec"]
            assert model["tok2vec"]["@architectures"] == listener
