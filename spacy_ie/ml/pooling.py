"""`spacy_ie.MaxPooling.v1`: thinc's `reduce_max`, with zeros for an empty sequence.

A transformer listener pools each token's wordpieces (spacy-transformers' `pooling`). A
whitespace token ("  ", "\\n") has no wordpieces: its sequence is empty. thinc's
`reduce_mean.v1` gives it zeros; thinc's `reduce_max.v1` raises ("all sequence lengths must be
> 0"), so a pipeline max-pooling its wordpieces (SpERT, Eberts & Ulges 2020, Sec. 3: a token,
like a span, is the max of its wordpieces) would fail on any text with a double space or a
line break. This layer is `reduce_max` over the non-empty sequences and zeros for the empty
ones; with none empty it is exactly `reduce_max`. Its function `max_pool` is also the pooling of
the tokens between two entities in the typed-marker and span-pair relation models (empty when
the entities are adjacent, overlap or nest).

    Ragged (n_rows, nI), lengths (n_seqs,) >= 0 ─ max per sequence -> (n_seqs, nI), empty -> 0
"""
from typing import Callable, Tuple

from spacy.util import registry
from thinc.api import Model, Ops
from thinc.types import Floats2d, Ints1d, Ragged


@registry.architectures("spacy_ie.MaxPooling.v1")
def build_max_pooling() -> Model[Ragged, Floats2d]:
    """Max-pool each sequence of a Ragged; an empty sequence gives a row of zeros.

    RETURNS (Model[Ragged, Floats2d]): input a Ragged of (n_rows, nI) data and (n_seqs,)
        lengths (0 allowed), output (n_seqs, nI). The backward pass sends each output row's
        gradient to its sequence's arg-max rows (thinc's backprop_reduce_max); empty
        sequences have no rows to send it to.
    """
    return Model("max_pooling", forward)


def forward(model: Model[Ragged, Floats2d], Xr: Ragged, is_train: bool) -> Tuple[Floats2d, Callable]:
    Y, backprop_max = max_pool(model.ops, Xr.dataXd, Xr.lengths)
    return Y, lambda dY: Ragged(backprop_max(dY), Xr.lengths)


def max_pool(ops: Ops, X: Floats2d, lengths: Ints1d) -> Tuple[Floats2d, Callable[[Floats2d], Floats2d]]:
    """The max over each sequence of rows: X (n_rows, nI) holds the sequences' rows one after
    another, lengths (n_seqs,) their row counts (0 allowed; sum(lengths) == n_rows) ->
    (n_seqs, nI), zeros for an empty sequence. The callback maps dY (n_seqs, nI) to dX
    (n_rows, nI), each row's gradient at its sequence's arg-max."""
    X = ops.xp.ascontiguousarray(X)
    lengths_np = ops.to_numpy(lengths)
    nonempty = lengths_np > 0
    if nonempty.all():
        Y, which = ops.reduce_max(X, lengths)
        return Y, lambda dY: ops.backprop_reduce_max(ops.xp.ascontiguousarray(dY), which, lengths)
    # The empty sequences own no rows, so the non-empty lengths alone partition X.
    seqs = ops.asarray1i(nonempty.nonzero()[0])
    nonempty_lengths = ops.asarray1i(lengths_np[nonempty])
    Y = ops.alloc2f(len(lengths_np), X.shape[1])
    if not len(seqs):
        return Y, lambda dY: ops.alloc2f(*X.shape)
    maxes, which = ops.reduce_max(X, nonempty_lengths)
    Y[seqs] = maxes

    def backprop(dY: Floats2d) -> Floats2d:
        return ops.backprop_reduce_max(ops.xp.ascontiguousarray(dY[seqs]), which, nonempty_lengths)

    return Y, backprop
