"""Multi-head attention pooling: a Ragged batch of token vectors -> one vector per sequence.

Each head h has a learned query vector q_h; token t of sequence s gets the weight
``a[t, h] = softmax_{t in s}(k_t . q_h)`` with keys ``k_t = key_transform(x_t)`` (the identity
by default), and the output of head h is ``sum_t a[t, h] x_t``. The heads' outputs are
concatenated. One head is the feed-forward attention of Raffel & Ellis (2015) / the
word-level attention of Yang et al. (2016) "Hierarchical Attention Networks"; several learned
queries follow Lin et al. (2017) "A Structured Self-Attentive Sentence Embedding".
thinc's `ParametricAttention.v2` is the one-head case without the pooling step.
"""
from typing import Callable, Optional, Tuple, cast

from spacy.util import registry
from thinc.api import Model, noop
from thinc.types import Floats2d, Ragged

InT = Ragged
OutT = Floats2d

KEY_TRANSFORM_REF = "key_transform"


@registry.architectures("spacy_ie.AttentionPooling.v1")
def build_attention_pooling(
    n_heads: int = 1,
    key_transform: Optional[Model[Floats2d, Floats2d]] = None,
    nI: Optional[int] = None,
) -> Model[InT, OutT]:
    """Pool each sequence of a Ragged batch by attention with `n_heads` learned queries.

    n_heads (int): number of learned queries; the output width is ``n_heads * nI``.
    key_transform (Optional[Model]): maps token vectors (n_tokens, nI) to keys (n_tokens, nI)
        before scoring (e.g. a Gelu layer); the identity when None.
    nI (Optional[int]): width of the token vectors; inferred at initialization when None.
    RETURNS (Model[Ragged, Floats2d]): input ``Ragged`` with data (n_tokens, nI) and lengths
        (n_seqs,), every length > 0; output (n_seqs, n_heads * nI).
    """
    if n_heads < 1:
        raise ValueError(f"n_heads must be at least 1, got {n_heads}")
    if key_transform is None:
        key_transform = noop()
    nO = n_heads * nI if nI else None
    return Model(
        "attention_pooling",
        forward,
        init=init,
        params={"Q": None},
        dims={"nI": nI, "nO": nO},
        attrs={"n_heads": n_heads},
        refs={KEY_TRANSFORM_REF: key_transform},
        layers=[key_transform],
    )


def init(model: Model[InT, OutT], X: Optional[InT] = None, Y: Optional[OutT] = None) -> None:
    if X is not None:
        model.set_dim("nI", X.dataXd.shape[1], force=True)
    nI = model.get_dim("nI")
    n_heads = model.attrs["n_heads"]
    model.set_dim("nO", nI * n_heads, force=True)
    key_transform = model.get_ref(KEY_TRANSFORM_REF)
    if key_transform.has_dim("nO") is None:
        key_transform.set_dim("nO", nI)
    if key_transform.has_dim("nI") is None:
        key_transform.set_dim("nI", nI)
    key_transform.initialize(X.dataXd if X is not None else None)
    # Small random queries, as for an embedding: every token starts with near-equal weight.
    Q = model.ops.alloc2f(nI, n_heads)
    Q += model.ops.xp.random.uniform(-0.1, 0.1, Q.shape)
    model.set_param("Q", Q)


def forward(model: Model[InT, OutT], Xr: InT, is_train: bool) -> Tuple[OutT, Callable]:
    ops = model.ops
    Q = model.get_param("Q")  # (nI, n_heads)
    n_heads = model.attrs["n_heads"]
    X = cast(Floats2d, Xr.dataXd)  # (n_tokens, nI)
    lengths = Xr.lengths
    K, bp_keys = model.get_ref(KEY_TRANSFORM_REF)(X, is_train)
    A = segment_softmax(ops, ops.gemm(K, Q), lengths)  # (n_tokens, n_heads)
    # Y[s, h, :] = sum_{t in s} A[t, h] * X[t, :]
    weighted = A[:, :, None] * X[:, None, :]  # (n_tokens, n_heads, nI)
    n_tokens, nI = X.shape
    Y = ops.reduce_sum(weighted.reshape(n_tokens, n_heads * nI), lengths)

    def backprop(dY: OutT) -> InT:
        d_weighted = ops.backprop_reduce_sum(dY, lengths).reshape(n_tokens, n_heads, nI)
        dX = (d_weighted * A[:, :, None]).sum(axis=1)
        dA = (d_weighted * X[:, None, :]).sum(axis=2)  # (n_tokens, n_heads)
        dS = ops.backprop_softmax_sequences(dA, A, lengths)
        model.inc_grad("Q", ops.gemm(K, dS, trans1=True))
        dX += bp_keys(ops.gemm(dS, Q, trans2=True))
        return Ragged(dX, lengths)

    return Y, backprop


def segment_softmax(ops, scores: Floats2d, lengths) -> Floats2d:
    """Softmax of each column of `scores` (n_rows, n_cols) within each segment of `lengths`.

    Unlike thinc's ``ops.softmax_sequences``, which clips scores to [-20, 20] (so its result
    and ``backprop_softmax_sequences`` disagree once attention is sharp), this subtracts each
    segment's maximum: exact for any score. The backward pass is
    ``ops.backprop_softmax_sequences``. Every length must be > 0.
    """
    maxes, _ = ops.reduce_max(scores, lengths)
    exp = ops.xp.exp(scores - ops.backprop_reduce_sum(maxes, lengths))
    return exp / ops.backprop_reduce_sum(ops.reduce_sum(exp, lengths), lengths)
