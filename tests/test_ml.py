"""Numeric gradient checks and shape tests for the Thinc layers of spacy_ie.ml."""
from typing import Callable, List

import numpy
import pytest
import spacy
from spacy.tokens import Doc, Span
from thinc.api import Model, NumpyOps, Relu, fix_random_seed, reduce_max
from thinc.types import Ragged

from spacy_ie.candidates import Candidates
from spacy_ie.ml.attention_pooling import build_attention_pooling
from spacy_ie.ml.context_attention import (
    BLOCK_TOKENS,
    N_ROLES,
    PairContexts,
    _context_blocks,
    build_pair_context_attention,
)
from spacy_ie.ml.pooling import build_max_pooling
from spacy_ie.ml.relation_model import (
    N_DISTANCE_BUCKETS,
    _distance_buckets,
    _expand_ranges,
    _index_candidates,
    build_relation_model,
    classify_parts,
)

ops = NumpyOps()


def numeric_grad(f: Callable[[], float], x: numpy.ndarray, eps: float = 1e-3) -> numpy.ndarray:
    """Central finite differences of the scalar f() with respect to every entry of x (in place)."""
    grad = numpy.zeros_like(x, dtype="float64")
    it = numpy.nditer(x, flags=["multi_index"])
    for _ in it:
        i = it.multi_index
        orig = x[i]
        x[i] = orig + eps
        plus = f()
        x[i] = orig - eps
        minus = f()
        x[i] = orig
        grad[i] = (plus - minus) / (2 * eps)
    return grad


def assert_close(analytic, numeric, tol=2e-2):
    analytic = numpy.asarray(analytic, dtype="float64")
    scale = max(numpy.abs(numeric).max(), 1e-3)
    assert numpy.abs(analytic - numeric).max() / scale < tol, (analytic, numeric)


def test_attention_pooling_shapes_and_weights():
    fix_random_seed(0)
    X = Ragged(ops.asarray2f(numpy.random.randn(7, 5)), ops.asarray1i([3, 1, 3]))
    model = build_attention_pooling(n_heads=2)
    model.initialize(X=X)
    Y = model.predict(X)
    assert Y.shape == (3, 10)
    # A one-token sequence pools to that token for every head.
    numpy.testing.assert_allclose(Y[1, :5], X.dataXd[3], rtol=1e-5)
    numpy.testing.assert_allclose(Y[1, 5:], X.dataXd[3], rtol=1e-5)
    # Each head's output is a convex combination of its sequence's tokens.
    first = X.dataXd[:3]
    assert (Y[0, :5] <= first.max(axis=0) + 1e-5).all()
    assert (Y[0, :5] >= first.min(axis=0) - 1e-5).all()


@pytest.mark.parametrize("lengths", [[3, 1, 2], [0, 3, 0, 0, 1, 2, 0], [0, 0]])
def test_max_pooling_zeros_for_empty_sequences_and_reduce_max_otherwise(lengths):
    X = Ragged(ops.asarray2f(numpy.random.RandomState(0).randn(sum(lengths), 4)), ops.asarray1i(lengths))
    model = build_max_pooling()
    Y, backprop = model(X, is_train=True)
    assert Y.shape == (len(lengths), 4)
    nonempty = [n > 0 for n in lengths]
    assert not Y[[not ok for ok in nonempty]].any()
    if any(nonempty):  # the non-empty rows are thinc's reduce_max of the same sequences
        expected = reduce_max().predict(Ragged(X.dataXd, ops.asarray1i([n for n in lengths if n])))
        numpy.testing.assert_array_equal(Y[nonempty], expected)
    dY = ops.asarray2f(numpy.random.RandomState(1).randn(*Y.shape))
    dX = backprop(dY)
    assert list(dX.lengths) == lengths and dX.dataXd.shape == X.dataXd.shape

    def loss() -> float:
        return float((model.predict(X) * dY).sum())

    if sum(lengths):  # (with every sequence empty there is no input to differentiate)
        assert_close(dX.dataXd, numeric_grad(loss, X.dataXd))


@pytest.mark.parametrize("n_heads,key_transform", [(1, False), (3, True)])
def test_attention_pooling_gradients(n_heads, key_transform):
    fix_random_seed(1)
    X = Ragged(ops.asarray2f(numpy.random.randn(6, 4)), ops.asarray1i([2, 4]))
    model = build_attention_pooling(n_heads=n_heads, key_transform=Relu(4) if key_transform else None)
    model.initialize(X=X)
    model.set_param("Q", model.get_param("Q") * 20)  # make the attention far from uniform
    R = numpy.random.randn(2, 4 * n_heads).astype("float32")

    def loss() -> float:
        return float((model.predict(X) * R).sum())

    Y, backprop = model.begin_update(X)
    dX = backprop(ops.asarray2f(R)).dataXd
    assert_close(dX, numeric_grad(loss, X.dataXd))
    assert_close(model.get_grad("Q"), numeric_grad(loss, model.get_param("Q")))


def _contexts():
    # Two candidates over 6 tokens: contexts [0, 4) and [2, 6).
    return PairContexts(
        ops.asarray1i([0, 1, 2, 3, 2, 3, 4, 5]),
        ops.asarray1i([1, 3, 2, 4, 0, 2, 3, 1]),
        ops.asarray1i([4, 4]),
    )


def test_pair_context_attention_sums_to_one_and_depends_on_pair():
    fix_random_seed(2)
    X = ops.asarray2f(numpy.random.randn(6, 4))
    P = ops.asarray2f(numpy.random.randn(2, 8))
    model = build_pair_context_attention(key_width=3)
    model.initialize(X=(X, P, _contexts()))
    (C, A), _ = model.begin_update((X, P, _contexts()))
    assert C.shape == (2, 4) and A.shape == (8,)
    numpy.testing.assert_allclose([A[:4].sum(), A[4:].sum()], [1.0, 1.0], rtol=1e-5)
    # Another (head, tail) query changes where the model looks.
    (_, A2), _ = model.begin_update((X, P[::-1].copy(), _contexts()))
    assert not numpy.allclose(A, A2)


def test_pair_context_attention_gradients():
    fix_random_seed(3)
    X = ops.asarray2f(numpy.random.randn(6, 4))
    P = ops.asarray2f(numpy.random.randn(2, 8))
    model = build_pair_context_attention(key_width=3)
    model.initialize(X=(X, P, _contexts()))
    for name in ("Wk", "Wq"):
        model.set_param(name, model.get_param(name) * 3)
    R = numpy.random.randn(2, 4).astype("float32")

    def loss() -> float:
        return float((model.predict((X, P, _contexts()))[0] * R).sum())

    _, backprop = model.begin_update((X, P, _contexts()))
    dX, dP = backprop(ops.asarray2f(R))
    assert_close(dX, numeric_grad(loss, X))
    assert_close(dP, numeric_grad(loss, P))
    for name in ("Wk", "Wq", "R"):
        assert_close(model.get_grad(name), numeric_grad(loss, model.get_param(name)))
    assert model.get_param("R").shape[0] == N_ROLES


@pytest.mark.parametrize("contiguous", [True, False])
def test_pair_context_attention_inference_equals_training_forward(contiguous):
    # Contexts over 5 blocks of tokens: the CPU inference path (dense products per block of
    # candidates) must give the training forward's output; non-contiguous contexts take the
    # gather path.
    rng = numpy.random.default_rng(5)
    n_tokens, n_candidates = 5 * BLOCK_TOKENS, 60
    starts = rng.integers(0, n_tokens - 30, size=n_candidates)
    lengths = rng.integers(1, 30, size=n_candidates)
    idx = _expand_ranges(starts, starts + lengths)
    if not contiguous:
        idx = rng.permutation(idx)
    contexts = PairContexts(
        ops.asarray1i(idx), ops.asarray1i(rng.integers(0, N_ROLES, size=len(idx))), ops.asarray1i(lengths)
    )
    assert (_context_blocks(idx, lengths) is not None) == contiguous
    X = ops.asarray2f(rng.normal(size=(n_tokens, 8)))
    P = ops.asarray2f(rng.normal(size=(n_candidates, 16)))
    model = build_pair_context_attention(key_width=4)
    model.initialize(X=(X, P, contexts))
    (C, A), _ = model.begin_update((X, P, contexts))
    C_pred, A_pred = model.predict((X, P, contexts))
    numpy.testing.assert_allclose(C_pred, C, rtol=1e-5, atol=1e-6)
    numpy.testing.assert_allclose(A_pred, A, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("first_layer", ["maxout", "dropout+linear", "linear"])
def test_classify_parts_factored_equals_plain(first_layer):
    # Per-row parts multiplied once per row of A and gathered give the classifier's output on
    # the concatenated features, and the same gradients (per part, and of the first layer's
    # weights); a Dropout before a Linear is skipped in inference (in training it takes the
    # plain path).
    from thinc.api import Dropout, Linear, Maxout, chain

    from spacy_ie.ml.relation_model import _classify_concatenated

    rng = numpy.random.default_rng(6)
    S = ops.asarray2f(rng.normal(size=(4, 3)))
    C = ops.asarray2f(rng.normal(size=(7, 2)))
    heads = ops.asarray1i(rng.integers(0, 4, size=7))
    tails = ops.asarray1i(rng.integers(0, 4, size=7))
    parts = [(S, heads), (S, tails), (C, None)]
    if first_layer == "maxout":
        classifier = chain(Maxout(5, nP=2, dropout=0.0, normalize=True), Linear(3))
    elif first_layer == "dropout+linear":
        classifier = chain(Dropout(0.0), Linear(3))
    else:
        classifier = Linear(3)
    features = numpy.hstack([S[heads], S[tails], C])
    classifier.initialize(X=features)
    expected = classifier.predict(features)
    logits, _ = classify_parts(classifier, parts, is_train=False)
    numpy.testing.assert_allclose(logits, expected, rtol=1e-5, atol=1e-6)

    first = [node for node in classifier.walk() if node.name in ("maxout", "linear")][0]
    d_output = ops.asarray2f(rng.normal(size=(7, 3)))
    results = []
    for run in (classify_parts, _classify_concatenated):
        for node in classifier.walk():
            for name in node.param_names:
                if node.has_grad(name):
                    node.set_grad(name, node.ops.alloc(node.get_grad(name).shape))
        trained, backprop = run(classifier, parts, True)
        numpy.testing.assert_allclose(trained, expected, rtol=1e-5, atol=1e-6)
        d_parts = backprop(d_output)
        assert [d.shape for d in d_parts] == [S.shape, S.shape, C.shape]
        results.append((d_parts, first.get_grad("W").copy(), first.get_grad("b").copy()))
    # the reference: the classifier's gradient on the concatenated features, summed per row of A
    _, bp_features = classifier.begin_update(features)
    d_features = bp_features(d_output)
    want = [numpy.zeros_like(S), numpy.zeros_like(S), d_features[:, 6:]]
    numpy.add.at(want[0], heads, d_features[:, :3])
    numpy.add.at(want[1], tails, d_features[:, 3:6])
    (factored, dW, db), (plain, dW_plain, db_plain) = results
    for d_parts in (factored, plain):
        for got, expected_part in zip(d_parts, want):
            numpy.testing.assert_allclose(got, expected_part, rtol=1e-5, atol=1e-5)
    numpy.testing.assert_allclose(dW, dW_plain, rtol=1e-5, atol=1e-5)
    numpy.testing.assert_allclose(db, db_plain, rtol=1e-5, atol=1e-5)


def fixed_tokvecs(n_tokens: int, width: int) -> Model[List[Doc], List[numpy.ndarray]]:
    """A stand-in tok2vec whose token vectors are one parameter W (n_tokens, width), split by
    Doc: its gradient is the gradient of the whole relation model with respect to its input."""

    def forward(model, docs, is_train):
        W = model.get_param("W")
        lengths = [len(doc) for doc in docs]
        outputs = ops.unflatten(W[: sum(lengths)], ops.asarray1i(lengths))

        def backprop(d_outputs):
            model.inc_grad("W", numpy.vstack(d_outputs) if d_outputs else 0)
            return []

        return outputs, backprop

    model = Model("fixed", forward, params={"W": None}, dims={"nO": width})
    model.set_param("W", ops.asarray2f(numpy.random.randn(n_tokens, width)))
    return model


class FixedPairs:
    """A candidate generator that proposes the given (head, tail) index pairs, Doc after Doc."""

    def __init__(self, pairs):
        self.pairs = iter(pairs)

    def batch_pair_indices(self, starts, ends, sents, labels, span_lengths, strings):
        """`EntityPairCandidates.batch_pair_indices`'s interface: the next Doc's given pairs
        for each Doc of the batch, and the number of pairs per Doc."""
        per_doc = [numpy.asarray(next(self.pairs), dtype="int32").reshape(-1, 2) for _ in span_lengths]
        lengths = numpy.asarray([len(p) for p in per_doc], dtype="int32")
        pairs = numpy.concatenate(per_doc) if per_doc else numpy.zeros((0, 2), dtype="int32")
        return pairs, lengths


def candidates_of(docs, pairs):
    """`Candidates` among each Doc's entities with the given (head, tail) index pairs per Doc."""
    return Candidates.from_spans(docs, [list(doc.ents) for doc in docs], FixedPairs(pairs))


def _docs_and_candidates():
    nlp = spacy.blank("en")
    d1 = nlp("Ada met Charles in London today")
    d1.ents = [d1.char_span(0, 3, "PER"), d1.char_span(8, 15, "PER"), d1.char_span(19, 25, "LOC")]
    d2 = nlp("Acme is in Paris")
    d2.ents = [d2.char_span(0, 4, "ORG"), d2.char_span(11, 16, "LOC")]
    docs = [d1, d2]
    return docs, candidates_of(docs, [[(0, 1), (1, 0), (0, 2)], [(0, 1)]])


def test_relation_model_gradients_end_to_end():
    fix_random_seed(4)
    docs, candidates = _docs_and_candidates()
    tok2vec = fixed_tokvecs(sum(len(d) for d in docs), 4)
    model = build_relation_model(tok2vec, hidden_width=6, dropout=0.0, label_width=3,
                                 distance_width=2, context_window=2, nO=3)
    model.initialize(X=(docs, candidates))
    scores, backprop = model.begin_update((docs, candidates))
    assert scores.logits.shape == (4, 3)
    assert scores.contexts.tolist() == [[0, 5], [0, 5], [0, 6], [0, 4]]
    assert scores.attention.shape == (5 + 5 + 6 + 4,)
    # inference (CPU: dense context blocks, classify_parts) equals the training forward
    predicted = model.predict((docs, candidates))
    numpy.testing.assert_allclose(predicted.logits, scores.logits, rtol=1e-5, atol=1e-6)
    numpy.testing.assert_allclose(predicted.attention, scores.attention, rtol=1e-5, atol=1e-6)
    R = numpy.random.randn(4, 3).astype("float32")
    backprop(ops.asarray2f(R))
    W = tok2vec.get_param("W")

    def loss() -> float:
        return float((model.predict((docs, candidates)).logits * R).sum())

    assert_close(tok2vec.get_grad("W"), numeric_grad(loss, W))


def test_relation_model_without_candidates_still_backprops():
    docs, _ = _docs_and_candidates()
    tok2vec = fixed_tokvecs(sum(len(d) for d in docs), 4)
    model = build_relation_model(tok2vec, hidden_width=6, nO=2)
    model.initialize(X=(docs, _docs_and_candidates()[1]))
    scores, backprop = model.begin_update((docs, candidates_of(docs, [[], []])))
    assert scores.logits.shape == (0, 2)
    backprop(ops.alloc2f(0, 2))
    assert tok2vec.get_grad("W").shape == (10, 4)  # the listener's backprop was called
    assert not tok2vec.get_grad("W").any()


def test_index_candidates_roles_and_sentences():
    nlp = spacy.blank("en")
    doc = nlp("Ada met Charles . Bob lives in Rome")
    doc.ents = [Span(doc, 0, 1, "PER"), Span(doc, 2, 3, "PER"), Span(doc, 4, 5, "PER"), Span(doc, 7, 8, "LOC")]
    for i, token in enumerate(doc):
        token.is_sent_start = i in (0, 4)
    index = _index_candidates([doc], candidates_of([doc], [[(0, 1), (3, 2)]]), window=10)
    # Contexts stop at the sentence boundary.
    assert index.contexts.tolist() == [[0, 4], [4, 8]]
    roles = index.context_roles.tolist()
    # Ada(head) met(between) Charles(tail) .(after) | Bob(tail) lives in(between) Rome(head)
    assert roles == [1, 3, 2, 4, 2, 3, 3, 1]
    assert index.heads.tolist() == [0, 2] and index.tails.tolist() == [1, 3]  # in order of first use


def test_distance_buckets():
    heads = numpy.asarray([[0, 1], [10, 11], [0, 2], [0, 1]])
    tails = numpy.asarray([[1, 2], [0, 1], [100, 101], [5, 6]])
    buckets = _distance_buckets(heads, tails)
    assert buckets.tolist() == [0, 10 + 6, 9, 4]  # gaps 0, 9 (head after tail), 98, 4
    assert buckets.max() < N_DISTANCE_BUCKETS


def test_expand_ranges():
    assert _expand_ranges(numpy.asarray([2, 0, 5]), numpy.asarray([4, 1, 8])).tolist() == [
        2, 3, 0, 5, 6, 7,
    ]
