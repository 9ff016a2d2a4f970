"""spacy_ie/ml/encoders.py: the self-attention encoder (spacy_ie.SelfAttentionEncoder.v1) and
case features beside a listener (spacy_ie.CaseFeatures.v1), and the configs that use them.

The architectures are registered by importing the module (the setup.cfg entry points are read
from the installed package, which may predate them). The transformer config runs in a fresh
interpreter (this file run as a script), offline, as tests/test_transformers.py does.
"""
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy
import pytest
from conftest import REPO_ROOT, SMALL_OVERRIDES, annotated_doc

torch = pytest.importorskip("torch")
import spacy  # noqa: E402
from spacy.tokens import DocBin  # noqa: E402
from spacy.training import Example  # noqa: E402
from spacy.util import minibatch  # noqa: E402
from thinc.api import Adam, Config, Softmax, chain, fix_random_seed, with_array  # noqa: E402

# importing the module registers both architectures
from spacy_ie.ml.encoders import build_case_features, build_self_attention_encoder  # noqa: E402

CONFIGS = REPO_ROOT / "configs"
# SMALL_OVERRIDES' tok2vec (width 48, depth 2) with 4 heads of 12.
SELFATTN_OVERRIDES = dict(SMALL_OVERRIDES, **{
    "components.tok2vec.model.encode.n_heads": 4,
    "components.tok2vec.model.encode.ffn_width": 96,
})


def random_batch(lengths, width, seed=0):
    rng = numpy.random.default_rng(seed)
    return [rng.standard_normal((n, width)).astype("float32") for n in lengths]


def small_tok2vec(encode, width: int, attrs=("NORM", "PREFIX", "SUFFIX", "SHAPE")):
    """spaCy's Tok2Vec.v2: MultiHashEmbed.v2 -> `encode` (a MaxoutWindowEncoder.v2 when None)."""
    from spacy.ml.models.tok2vec import MaxoutWindowEncoder, MultiHashEmbed, build_Tok2Vec_model

    embed = MultiHashEmbed(width=width, attrs=list(attrs), rows=[500] * len(attrs),
                           include_static_vectors=False)
    if encode is None:
        encode = MaxoutWindowEncoder(width=width, depth=1, window_size=1, maxout_pieces=2)
    return build_Tok2Vec_model(embed, encode)


# --- A. self-attention encoder -----------------------------------------------------------------


def test_self_attention_shapes_for_ragged_batches():
    fix_random_seed(0)
    model = build_self_attention_encoder(width=16, depth=2, n_heads=4)
    assert model.get_dim("nI") == model.get_dim("nO") == 16
    X = random_batch([5, 1, 0, 9], 16)
    model.initialize(X=X[:1])
    Y, backprop = model.begin_update(X)
    assert [y.shape for y in Y] == [(5, 16), (1, 16), (0, 16), (9, 16)]
    dX = backprop([numpy.ones_like(y) for y in Y])
    assert [d.shape for d in dX] == [x.shape for x in X]
    assert all(numpy.isfinite(d).all() for d in dX)
    stack = model.layers[0].layers[0].shims[0]._model  # the torch module; an empty doc gives no NaN
    assert all(torch.isfinite(p.grad).all() for p in stack.parameters())
    assert all(numpy.isfinite(y).all() for y in model.predict(X))
    assert model.predict([]) == []
    assert [y.shape for y in model.predict(random_batch([0, 0], 16))] == [(0, 16), (0, 16)]


def test_self_attention_rejects_heads_that_do_not_divide_the_width():
    with pytest.raises(ValueError, match="multiple of n_heads"):
        build_self_attention_encoder(width=30, depth=1, n_heads=4)


def test_padding_does_not_leak():
    """In eval mode a doc's output is the same alone and beside longer docs (padded)."""
    fix_random_seed(0)
    model = build_self_attention_encoder(width=16, depth=2, n_heads=2)
    short, long1, long2 = random_batch([3, 12, 7], 16, seed=1)
    model.initialize(X=[short])
    alone = model.predict([short])[0]
    for batch, position in (([long1, short], 1), ([short, long1, long2], 0), ([long2, short, long1], 1)):
        numpy.testing.assert_allclose(model.predict(batch)[position], alone, atol=1e-5)


def test_attention_sees_the_whole_doc_and_word_order():
    """Changing the last token changes the first token's output (context beyond any window), and
    swapping two tokens changes their outputs (position information)."""
    fix_random_seed(0)
    model = build_self_attention_encoder(width=16, depth=1, n_heads=2)
    (X,) = random_batch([10], 16, seed=2)
    model.initialize(X=[X])
    Y = model.predict([X])[0]
    changed = X.copy()
    changed[-1] = random_batch([1], 16, seed=3)[0][0]
    assert not numpy.allclose(model.predict([changed])[0][0], Y[0], atol=1e-4)
    swapped = X.copy()
    swapped[[2, 5]] = X[[5, 2]]
    Ys = model.predict([swapped])[0]
    assert not numpy.allclose(Ys[5], Y[2], atol=1e-4)


def test_tok2vec_with_self_attention_learns_a_task_that_needs_context():
    """Each token's label is the doc's first word ("yes"/"no"): a per-token classifier on a
    Tok2Vec.v2 whose encode is the self-attention layer learns it, so gradients reach the
    torch parameters and the embeddings."""
    fix_random_seed(0)
    nlp = spacy.blank("en")
    rng = numpy.random.default_rng(0)
    words = ["cat", "dog", "sun", "tree", "car", "blue", "red", "sky"]
    docs, labels = [], []
    for i in range(24):
        first = "yes" if i % 2 else "no"
        text = " ".join([first] + list(rng.choice(words, size=int(rng.integers(4, 9)))))
        docs.append(nlp(text))
        one_hot = [0.0, 1.0] if first == "yes" else [1.0, 0.0]
        labels.append(numpy.asarray([one_hot] * len(docs[-1]), dtype="f"))
    encoder = build_self_attention_encoder(width=32, depth=1, n_heads=4, dropout=0.0)
    tok2vec = small_tok2vec(encoder, 32, attrs=("NORM",))
    model = chain(tok2vec, with_array(Softmax(2)))
    model.initialize(X=docs[:4], Y=labels[:4])
    torch_params = encoder.layers[0].layers[0].shims[0]._model
    before = [p.detach().clone() for p in torch_params.parameters()]
    optimizer = Adam(0.01)

    def accuracy():
        predicted = model.predict(docs)
        return numpy.mean([(p.argmax(1) == y.argmax(1)).mean() for p, y in zip(predicted, labels)])

    start = accuracy()
    for _ in range(40):
        Y, backprop = model.begin_update(docs)
        backprop([y - t for y, t in zip(Y, labels)])
        model.finish_update(optimizer)
    assert accuracy() == 1.0 > start
    after = list(torch_params.parameters())
    assert all(not torch.equal(b, a) for b, a in zip(before, after))


def _train_demo(config_path: Path, overrides: dict, demo_corpus, n_epochs: int = 2):
    fix_random_seed(0)
    config = Config().from_disk(config_path, overrides=overrides)
    nlp = spacy.util.load_model_from_config(config, auto_fill=True, validate=True)
    docs = DocBin().from_disk(demo_corpus["train"]).get_docs(nlp.vocab)
    examples = [Example(nlp.make_doc(doc.text), doc) for doc in docs]
    optimizer = nlp.initialize(lambda: examples)
    losses = {}
    for _ in range(n_epochs):
        for batch in minibatch(examples, 16):
            nlp.update(batch, sgd=optimizer, drop=0.1, losses=losses)
    return nlp, losses


def test_selfattn_config_trains_and_round_trips(demo_corpus, tmp_path):
    nlp, losses = _train_demo(CONFIGS / "ner_rel_selfattn.cfg", SELFATTN_OVERRIDES, demo_corpus)
    assert nlp.pipe_names == ["tok2vec", "ner", "relation_extractor"]
    assert losses["ner"] > 0 and losses["relation_extractor"] > 0
    assert all(math.isfinite(v) for v in losses.values())
    encode = nlp.get_pipe("tok2vec").model.get_ref("encode")
    assert encode.name == "self_attention_encoder"
    texts = [doc.text for doc in DocBin().from_disk(demo_corpus["dev"]).get_docs(nlp.vocab)][:12]
    nlp.to_disk(tmp_path / "model")
    reloaded = spacy.load(tmp_path / "model")

    def predictions(pipeline):
        docs = list(pipeline.pipe(texts))
        return docs, [
            ([(e.start, e.end, e.label_) for e in doc.ents],
             [(r.head.start, r.tail.start, r.label, round(float(r.score), 5)) for r in doc._.relations])
            for doc in docs
        ]

    docs, before = predictions(nlp)
    docs2, after = predictions(reloaded)
    assert after == before
    for doc, doc2 in zip(docs, docs2):
        numpy.testing.assert_array_equal(doc2.tensor, doc.tensor)


def test_selfattn_configs_differ_from_their_bases_only_in_the_encoder():
    """Fair comparison: both self-attention configs equal their CNN bases except the encode block."""
    for name, base in (("ner_rel_selfattn.cfg", "ner_rel_tok2vec.cfg"),
                       ("ner_conll2003_selfattn.cfg", "ner_conll2003_tok2vec.cfg")):
        config = Config().from_disk(CONFIGS / name, interpolate=False)
        base_config = Config().from_disk(CONFIGS / base, interpolate=False)
        encode = config["components"]["tok2vec"]["model"].pop("encode")
        base_config["components"]["tok2vec"]["model"].pop("encode")
        assert config == base_config, name
        assert encode["@architectures"] == "spacy_ie.SelfAttentionEncoder.v1"
        assert encode["width"] == 128
        resolved = Config().from_disk(CONFIGS / name)
        nlp = spacy.util.load_model_from_config(resolved, auto_fill=True, validate=True)
        assert nlp.get_pipe("tok2vec").model.get_ref("encode").name == "self_attention_encoder"


# --- B. case features ----------------------------------------------------------------------------


def test_case_features_width_and_case_sensitivity():
    """Wrapping an uncased tok2vec (LOWER only): its columns are identical for 'Apple' and
    'apple', the case columns differ; with `width` the output is projected to it."""
    fix_random_seed(0)
    nlp = spacy.blank("en")
    cased, uncased = nlp("Apple hired John Smith in PARIS ."), nlp("apple hired john smith in paris .")
    inner = small_tok2vec(None, 24, attrs=("LOWER",))
    model = build_case_features(inner, width=None, case_width=8)
    assert model.get_dim("nO") == 32
    model.initialize(X=[cased, uncased])
    Y_cased, Y_uncased = model.predict([cased, uncased])
    assert Y_cased.shape == Y_uncased.shape == (len(cased), 32)
    numpy.testing.assert_array_equal(Y_cased[:, :24], Y_uncased[:, :24])
    numpy.testing.assert_array_equal(Y_cased[:, :24], inner.predict([cased])[0])
    differs = numpy.abs(Y_cased[:, 24:] - Y_uncased[:, 24:]).max(axis=1) > 1e-6
    assert differs.tolist() == [True, False, True, True, False, True, False]

    projected = build_case_features(small_tok2vec(None, 24, attrs=("LOWER",)), width=16, case_width=8)
    assert projected.get_dim("nO") == 16
    projected.initialize(X=[cased])
    Y, backprop = projected.begin_update([cased, uncased])
    assert [y.shape for y in Y] == [(len(cased), 16)] * 2
    backprop([numpy.ones_like(y) for y in Y])  # reaches both the wrapped tok2vec and the features
    assert not numpy.allclose(*projected.predict([cased, uncased]))


def test_case_features_reject_mismatched_rows():
    with pytest.raises(ValueError, match="differ in length"):
        build_case_features(small_tok2vec(None, 8, attrs=("LOWER",)), attrs=["SHAPE"], rows=[100, 100])


def test_trf_case_config_differs_from_ner_rel_trf_only_in_the_wrappers():
    config = Config().from_disk(CONFIGS / "ner_rel_trf_case.cfg", interpolate=False)
    base = Config().from_disk(CONFIGS / "ner_rel_trf.cfg", interpolate=False)
    for component in ("ner", "relation_extractor"):
        wrapper = config["components"][component]["model"]["tok2vec"]
        assert wrapper["@architectures"] == "spacy_ie.CaseFeatures.v1"
        assert wrapper["tok2vec"] == base["components"][component]["model"]["tok2vec"]
        config["components"][component]["model"]["tok2vec"] = wrapper["tok2vec"]
    assert config == base


# --- the transformer config, offline, in a subprocess ----------------------------------------


def _run_trf_case(out_dir: Path) -> dict:
    from test_transformers import DATA, N_STEPS, TEST_OVERRIDES

    from spacy_ie.transformers import local_minilm_path

    fix_random_seed(0)
    torch.set_num_threads(1)
    overrides = dict(TEST_OVERRIDES, **{"paths.transformer_name": str(local_minilm_path())})
    config = Config().from_disk(CONFIGS / "ner_rel_trf_case.cfg", overrides=overrides)
    nlp = spacy.util.load_model_from_config(config, auto_fill=True, validate=True)

    examples = [Example(nlp.make_doc(text), annotated_doc(nlp, text, e, r)) for text, e, r in DATA]
    optimizer = nlp.initialize(lambda: examples)
    case_model = nlp.get_pipe("relation_extractor").model.get_ref("tok2vec")
    case_embed = case_model.get_ref("case_embed")

    def case_params():
        return [node.get_param(name).copy() for node in case_embed.walk()
                for name in node.param_names if node.has_param(name)]

    case_before = case_params()
    losses = []
    for _ in range(N_STEPS):
        step = {}
        nlp.update(examples, sgd=optimizer, losses=step)
        optimizer.step_schedules()
        losses.append({k: float(v) for k, v in step.items()})
    case_after = case_params()
    # The relation extractor's token vectors for two texts differing only in case.
    texts = ["Alice works for Acme in Paris.", "alice works for acme in paris."]
    docs = [nlp.get_pipe("transformer")(nlp.make_doc(t)) for t in texts]
    vectors = case_model.predict(docs)
    hidden = 384

    def relations_on_gold_entities(pipeline):
        docs = []
        for text, ents, _ in DATA:
            doc = pipeline.make_doc(text)
            doc.ents = [doc.char_span(text.index(t), text.index(t) + len(t), label=l) for t, l in ents]
            docs.append(doc)
        with pipeline.select_pipes(disable=["ner"]):
            docs = list(pipeline.pipe(docs))
        return [[[r.head.text, r.label, r.tail.text, float(r.score)] for r in doc._.relations]
                for doc in docs]

    def entities(pipeline):
        return [[(e.text, e.label_) for e in pipeline(text).ents] for text, _, _ in DATA]

    nlp.to_disk(out_dir / "model")
    reloaded = spacy.load(out_dir / "model")
    return {
        "losses": losses,
        "rel_nI": nlp.get_pipe("relation_extractor").model.get_ref("context_attention").get_dim("nI"),
        "vector_widths": [v.shape[1] for v in vectors],
        "listener_part_max_diff": float(numpy.abs(vectors[0][:, :hidden] - vectors[1][:, :hidden]).max()),
        "case_part_max_diff": float(numpy.abs(vectors[0][:, hidden:] - vectors[1][:, hidden:]).max()),
        "case_params_changed": [not numpy.array_equal(b, a) for b, a in zip(case_before, case_after)],
        "predicted": relations_on_gold_entities(nlp),
        "reloaded": relations_on_gold_entities(reloaded),
        "entities": entities(nlp),
        "entities_reloaded": entities(reloaded),
    }


if __name__ == "__main__":  # the subprocess: python tests/test_encoders.py OUT_DIR
    from test_transformers import _guard_sockets

    _attempts: list = []
    _guard_sockets(_attempts)
    _result = _run_trf_case(Path(sys.argv[1]))
    _result["network_attempts"] = _attempts
    print("RESULT " + json.dumps(_result))
    sys.exit(0)


def test_trf_case_config_trains_offline_and_reloads(tmp_path):
    from test_transformers import OFFLINE_ENV, needs_transformers

    if needs_transformers.args[0]:
        pytest.skip(needs_transformers.kwargs["reason"])
    env = dict(os.environ, **OFFLINE_ENV, PYTHONHASHSEED="0",
               PYTHONPATH=os.pathsep.join([str(REPO_ROOT), os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.run([sys.executable, __file__, str(tmp_path)], capture_output=True, text=True,
                          env=env, cwd=REPO_ROOT, timeout=600)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    assert proc.returncode == 0 and lines, f"run failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}"
    run = json.loads(lines[-1][len("RESULT "):])
    assert run["network_attempts"] == []
    for step in run["losses"]:
        assert {"transformer", "ner", "relation_extractor"} <= set(step)
        assert all(math.isfinite(v) for v in step.values())
    # MiniLM width 384 + case_width 64, and the relation model reads that width.
    assert run["vector_widths"] == [448, 448]
    assert run["rel_nI"] == 448
    # MiniLM lower-cases: its part is the same for both texts; the case features differ.
    assert run["listener_part_max_diff"] < 1e-5
    assert run["case_part_max_diff"] > 1e-3
    assert run["case_params_changed"] and all(run["case_params_changed"])
    assert any(run["predicted"])
    assert [[r[:3] for r in d] for d in run["reloaded"]] == [[r[:3] for r in d] for d in run["predicted"]]
    for doc, doc2 in zip(run["predicted"], run["reloaded"]):
        for rel, rel2 in zip(doc, doc2):
            assert rel2[3] == pytest.approx(rel[3], abs=1e-5)
    assert run["entities_reloaded"] == run["entities"]
