"""Entity-aware context attention: one context vector per candidate pair.

For candidate c with head vector h_c and tail vector t_c (each of width nI) the query is
``q_c = W_q [h_c; t_c]`` (width nK). Each token x_l of the candidate's context (its sentence or a
window around the pair) gets the key ``k_l = W_k x_l + r_{role(l)}``, where ``role(l)`` says
where the token stands relative to the pair (before both, inside the head, inside the tail,
between them, after both) and ``r`` is a learned embedding of that role. The weights are
``a_l = softmax_{l in context(c)}(k_l . q_c / sqrt(nK))`` and the output is ``sum_l a_l x_l``.

So the words that express the relation between *this* head and *this* tail ("works for",
"born in") weigh most: the query depends on the pair, as in the entity-aware attention of
Shen & Huang (2018, "Attention-Based Convolutional Neural Network for Semantic Relation
Extraction"), Wang et al. (2016, "Relation Classification via Multi-Level Attention CNNs") and
Lee et al. (2019, "Semantic Relation Classification via Bidirectional LSTM Networks with
Entity-aware Attention using Latent Entity Typing"); Zhou et al. (2016, Att-BLSTM) is the
pair-independent special case. The role embedding stands in for the relative position features
of those papers. Keys are computed once per token (``W_k X``) and gathered per context, so the
cost is one (n_tokens, nI) x (nI, nK) product plus O(total context length * nK). In inference
on CPU the candidates are grouped by where their contexts start, and each group's scores and
context vectors are dense products with its run of tokens (`_predict_blocks`), which avoids
gathering a (total context length, nI) copy of the context tokens: the relation model of the
demo pipeline runs 2.8x faster on CoNLL04 with this and `relation_model.classify_parts`
(BENCHMARKS.md, "The relation extractor's own cost").
"""
from typing import Callable, NamedTuple, Optional, Tuple

import numpy
from spacy.util import registry
from thinc.api import Model, NumpyOps
from thinc.types import Floats1d, Floats2d, Ints1d

from .attention_pooling import segment_softmax

N_ROLES = 5  # before both arguments, in head, in tail, between the arguments, after both


class PairContexts(NamedTuple):
    """Index arrays describing the context tokens of a batch of candidates.

    indices (Ints1d): (total_length,) row of each context token in the token matrix X.
    roles (Ints1d): (total_length,) role of each context token, in [0, N_ROLES).
    lengths (Ints1d): (n_candidates,) number of context tokens of each candidate, all > 0.
    """

    indices: Ints1d
    roles: Ints1d
    lengths: Ints1d


InT = Tuple[Floats2d, Floats2d, PairContexts]
OutT = Tuple[Floats2d, Floats1d]


@registry.architectures("spacy_ie.PairContextAttention.v1")
def build_pair_context_attention(
    key_width: int = 64, nI: Optional[int] = None
) -> Model[InT, OutT]:
    """Attention over each candidate's context tokens with a query built from its head and tail.

    key_width (int): width nK of keys and queries.
    nI (Optional[int]): width of the token vectors; inferred at initialization when None.
    RETURNS (Model): input ``(X, P, contexts)`` with X the token vectors (n_tokens, nI),
        P the concatenated head and tail vectors (n_candidates, 2 * nI) and `contexts` a
        `PairContexts`; output ``(C, A)`` with C the context vectors (n_candidates, nI) and
        A the attention weights (total_length,) (they sum to 1 over each context).
        The backward pass takes ``dC`` and returns ``(dX, dP)``; A is not differentiated.
    """
    return Model(
        "pair_context_attention",
        forward,
        init=init,
        params={"Wk": None, "Wq": None, "R": None},
        dims={"nI": nI, "nK": key_width, "nO": nI},
    )


def init(model: Model[InT, OutT], X: Optional[InT] = None, Y: Optional[OutT] = None) -> None:
    if X is not None:
        model.set_dim("nI", X[0].shape[1], force=True)
    nI = model.get_dim("nI")
    nK = model.get_dim("nK")
    model.set_dim("nO", nI, force=True)
    ops = model.ops
    model.set_param("Wk", ops.asarray2f(ops.xp.random.normal(0, nI**-0.5, (nI, nK))))
    model.set_param("Wq", ops.asarray2f(ops.xp.random.normal(0, (2 * nI) ** -0.5, (2 * nI, nK))))
    model.set_param("R", ops.asarray2f(ops.xp.random.normal(0, 0.1, (N_ROLES, nK))))


def forward(model: Model[InT, OutT], inputs: InT, is_train: bool) -> Tuple[OutT, Callable]:
    ops = model.ops
    X, P, contexts = inputs
    idx, roles, lengths = contexts
    Wk = model.get_param("Wk")
    Wq = model.get_param("Wq")
    R = model.get_param("R")
    scale = model.get_dim("nK") ** -0.5
    n_candidates = P.shape[0]
    # Candidate index of each context token: (total_length,). Built on the host: cupy.repeat
    # takes no array of repeats, and `lengths` is small.
    owner = ops.asarray1i(numpy.repeat(numpy.arange(n_candidates), ops.to_numpy(lengths)))

    KX = ops.gemm(X, Wk)  # (n_tokens, nK), once per token
    Qc = ops.gemm(P, Wq)  # (n_candidates, nK)
    if not is_train and isinstance(ops, NumpyOps):
        blocks = _context_blocks(idx, lengths)
        if blocks is not None:
            return _predict_blocks(ops, X, KX, Qc, R, scale, idx, roles, lengths, owner, blocks)
    K = KX[idx] + R[roles]  # (total_length, nK)
    scores = (K * Qc[owner]).sum(axis=1, keepdims=True) * scale
    A = segment_softmax(ops, scores, lengths)  # (total_length, 1)
    V = X[idx]  # (total_length, nI)
    C = ops.reduce_sum(ops.xp.ascontiguousarray(A * V), lengths)

    def backprop(dC: Floats2d) -> Tuple[Floats2d, Floats2d]:
        dC_tok = dC[owner]  # (total_length, nI)
        dA = (dC_tok * V).sum(axis=1, keepdims=True)
        dS = ops.backprop_softmax_sequences(dA, A, lengths) * scale  # (total_length, 1)
        dK = dS * Qc[owner]  # (total_length, nK)
        dQc = ops.reduce_sum(ops.xp.ascontiguousarray(dS * K), lengths)  # (n_candidates, nK)
        dKX = ops.alloc2f(*KX.shape)
        ops.scatter_add(dKX, idx, dK)
        dR = ops.alloc2f(*R.shape)
        ops.scatter_add(dR, roles, dK)
        model.inc_grad("Wk", ops.gemm(X, dKX, trans1=True))
        model.inc_grad("Wq", ops.gemm(P, dQc, trans1=True))
        model.inc_grad("R", dR)
        dX = ops.gemm(dKX, Wk, trans2=True)
        ops.scatter_add(dX, idx, ops.xp.ascontiguousarray(A * dC_tok))
        dP = ops.gemm(dQc, Wq, trans2=True)
        return dX, dP

    return (C, A.ravel()), backprop


# Width of the token bins that group candidates for the CPU inference path (see _context_blocks).
BLOCK_TOKENS = 64


class _Blocks(NamedTuple):
    order: numpy.ndarray  # (n_candidates,) candidates sorted by context start
    bounds: numpy.ndarray  # (n_blocks + 1,) slices of `order`, one per block
    starts: numpy.ndarray  # (n_blocks,) first token row of each block
    ends: numpy.ndarray  # (n_blocks,) end token row of each block
    offsets: numpy.ndarray  # (n_blocks + 1,) offset of each block's dense matrix in one buffer
    base: numpy.ndarray  # (n_candidates,) buffer position of token row 0 in the candidate's row


def _context_blocks(idx: numpy.ndarray, lengths: numpy.ndarray) -> Optional[_Blocks]:
    """Group the candidates for the dense inference path, or None when a context is not one
    contiguous run of token rows (the layer's contract allows any rows; the relation models
    send runs).

    Candidates whose context starts in the same bin of BLOCK_TOKENS token rows form a block; the
    block's rows run from its first context start to its last context end, so a block is at
    most BLOCK_TOKENS + (longest context) rows wide, and its dense (candidates x rows) score
    matrix is a small multiple of its candidates' total context length.
    """
    lengths = numpy.asarray(lengths, dtype="int64")
    firsts = numpy.cumsum(lengths) - lengths
    starts = numpy.asarray(idx, dtype="int64")[firsts]
    ends = starts + lengths
    runs = numpy.repeat(starts - firsts, lengths) + numpy.arange(int(lengths.sum()))
    if not numpy.array_equal(runs, idx):
        return None
    order = numpy.argsort(starts, kind="stable")
    sorted_starts = starts[order]
    bins = sorted_starts // BLOCK_TOKENS
    bounds = numpy.concatenate(([0], numpy.flatnonzero(numpy.diff(bins)) + 1, [len(order)]))
    block_of = numpy.repeat(numpy.arange(len(bounds) - 1), numpy.diff(bounds))
    block_starts = sorted_starts[bounds[:-1]]
    block_ends = numpy.maximum.reduceat(ends[order], bounds[:-1])
    widths = block_ends - block_starts
    offsets = numpy.concatenate(([0], numpy.cumsum(numpy.diff(bounds) * widths)))
    row_in_block = numpy.arange(len(order)) - bounds[block_of]
    base = numpy.empty_like(starts)
    base[order] = offsets[block_of] + row_in_block * widths[block_of] - block_starts[block_of]
    return _Blocks(order, bounds, block_starts, block_ends, offsets, base)


def _predict_blocks(ops, X, KX, Qc, R, scale, idx, roles, lengths, owner, blocks: _Blocks):
    """The layer's output computed per block of candidates with dense products (CPU, no
    gradient): ``Qc[block] @ KX[rows].T`` for the scores and ``A[block] @ X[rows]`` for the
    context vectors, instead of gathering a (total_length, nI) copy of the context tokens.
    Equal to the gather path up to float rounding (tests/test_ml.py)."""
    S = numpy.empty(int(blocks.offsets[-1]), dtype="float32")
    spans = list(zip(blocks.bounds[:-1], blocks.bounds[1:], blocks.starts, blocks.ends, blocks.offsets))
    for a, b, s, e, off in spans:
        rows = blocks.order[a:b]
        S[off : off + (b - a) * (e - s)] = (Qc[rows] @ KX[s:e].T).ravel()
    positions = blocks.base[owner] + idx
    RQ = Qc @ R.T  # (n_candidates, N_ROLES): each role's key offset against each query
    scores = ((S[positions] + RQ[owner, roles]) * scale)[:, None]
    A = segment_softmax(ops, scores, lengths)  # (total_length, 1)
    dense = numpy.zeros_like(S)
    dense[positions] = A[:, 0]
    C = numpy.empty((len(Qc), X.shape[1]), dtype="float32")
    for a, b, s, e, off in spans:
        C[blocks.order[a:b]] = dense[off : off + (b - a) * (e - s)].reshape(b - a, e - s) @ X[s:e]

    def backprop(dC):
        raise ValueError("PairContextAttention's CPU inference path has no backward pass")

    return (C, A.ravel()), backprop
