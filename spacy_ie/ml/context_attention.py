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
cost is one (n_tokens, nI) x (nI, nK) product plus O(total context length * nK).
"""
from typing import Callable, NamedTuple, Optional, Tuple

import numpy
from spacy.util import registry
from thinc.api import Model
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
    K = KX[idx] + R[roles]  # (total_length, nK)
    Qc = ops.gemm(P, Wq)  # (n_candidates, nK)
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
