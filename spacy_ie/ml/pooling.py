"""`spacy_ie.MaxPooling.v1`: thinc's `reduce_max`, with zeros for an empty sequence.

A transformer listener pools each token's wordpieces (spacy-transformers' `pooling`). A
whitespace token ("  ", "\\n") has no wordpieces: its sequence is empty. thinc's
`reduce_mean.v1` gives it zeros; thinc's `reduce_max.v1` raises ("all sequence lengths must be
> 0"), so a pipeline max-pooling its wordpieces (SpERT, Eberts & Ulges 2020, Sec. 3: a token,
like a span, is the max of its wordpieces) would fail on any text with a double space or a
line break. This layer is `reduce_max` over the non-empty sequences and zeros for the empty
ones; with none empty it is exactly `reduce_max`.

    Ragged (n_rows, nI), lengths (n_seqs,) >= 0 ─ max per sequence -> (n_seqs, nI), empty -> 0
"""
from typing import Callable, Tuple

from spacy.util import registry
from thinc.api import Model
from thinc.types import Floats2d, Ragged


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
    ops = model.ops
    lengths = ops.to_numpy(Xr.lengths)
    nonempty = lengths > 0
    if nonempty.all():
        Y, which = ops.reduce_max(Xr.dataXd, Xr.lengths)
        return Y, lambda dY: Ragged(ops.backprop_reduce_max(dY, which, Xr.lengths), Xr.lengths)
    # The empty sequences own no rows, so the non-empty lengths alone partition the data.
    rows = ops.asarray1i(nonempty.nonzero()[0])
    nonempty_lengths = ops.asarray1i(lengths[nonempty])
    Y = ops.alloc2f(len(lengths), Xr.dataXd.shape[1])
    if len(rows):
        maxes, which = ops.reduce_max(Xr.dataXd, nonempty_lengths)
        Y[rows] = maxes

    def backprop(dY: Floats2d) -> Ragged:
        if not len(rows):
            return Ragged(ops.alloc2f(*Xr.dataXd.shape), Xr.lengths)
        dX = ops.backprop_reduce_max(ops.xp.ascontiguousarray(dY[rows]), which, nonempty_lengths)
        return Ragged(dX, Xr.lengths)

    return Y, backprop
