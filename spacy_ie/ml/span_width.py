"""`spacy_ie.SpanWidthEmbedding.v1`: a learned embedding of each span's width in tokens.

SpERT (Eberts & Ulges 2020, "Span-based Joint Entity and Relation Extraction with Transformer
Pre-training", Sec. 3.1) gives every candidate span a "size embedding" of its token count, for
the entity classifier and, of both arguments, for the relation classifier: a span classifier
that only pools token vectors cannot tell a 1-token span from a 9-token one whose max-pool is
the same. spaCy's `spacy.mean_max_reducer.v1` sees the first and last token but no width.

    widths (n_spans,) int ─ clip to [1, max_width] ─ Embed(width, max_width rows) -> (n_spans, width)

Widths above `max_width` share the last row (SpERT: 100 rows; the suggesters here stop at 10).
"""
from typing import Callable, Tuple

from spacy.util import registry
from thinc.api import Embed, Model
from thinc.types import Floats2d, Ints1d


@registry.architectures("spacy_ie.SpanWidthEmbedding.v1")
def build_span_width_embedding(width: int = 25, max_width: int = 10) -> Model[Ints1d, Floats2d]:
    """Embed span widths.

    width (int): output width (SpERT's size embedding is 25 wide).
    max_width (int): widths 1..max_width get their own row; longer spans share row max_width.
    RETURNS (Model[Ints1d, Floats2d]): input (n_spans,) widths in tokens (>= 1), output
        (n_spans, width). The backward pass updates the embedding's gradient and returns the
        widths unchanged (they have no gradient).
    RAISES (ValueError): width or max_width below 1.
    """
    if width < 1 or max_width < 1:
        raise ValueError(
            f"spacy_ie.SpanWidthEmbedding.v1: width and max_width must be at least 1, got {width}, {max_width}"
        )
    embed = Embed(nO=width, nV=max_width)
    return Model(
        "span_width_embedding",
        forward,
        init=init,
        layers=[embed],
        dims={"nO": width},
        attrs={"max_width": max_width},
    )


def init(model: Model[Ints1d, Floats2d], X=None, Y=None) -> None:
    model.layers[0].initialize()


def forward(model: Model[Ints1d, Floats2d], widths: Ints1d, is_train: bool) -> Tuple[Floats2d, Callable]:
    xp = model.ops.xp
    rows = xp.clip(xp.asarray(widths), 1, model.attrs["max_width"]) - 1
    Y, backprop_embed = model.layers[0](model.ops.asarray1i(rows), is_train)

    def backprop(dY: Floats2d) -> Ints1d:
        backprop_embed(dY)
        return widths

    return Y, backprop
