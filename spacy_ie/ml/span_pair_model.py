"""`spacy_ie.SpanPairRelationModel.v1`: SpERT's relation classifier on a shared encoder.

A relation model for the `relation_extractor` (same input and output as
`spacy_ie.RelationModel.v1`: the Docs and a `spacy_ie.candidates.Candidates` batch in,
`RelationScores` out), with SpERT's pair representation (Eberts & Ulges 2020, "Span-based Joint
Entity and Relation Extraction with Transformer Pre-training", Sec. 3.2): the max-pooled head
and tail, the max-pooled tokens *between* them (the localized context; zeros when the two spans
are adjacent, overlap or nest) and both spans' width embeddings. Vectorized over the candidates
of a batch; every distinct span is pooled once, however many pairs it takes part in::

    docs ─ tok2vec (listener) ─ X (n_tokens, nI)
      ├ span_pooling (default reduce_max) over each span's tokens   -> S (n_spans, nS)
      ├ max over the tokens between head and tail                  -> B (n_pairs, nI)
      ├ width_embed (spacy_ie.SpanWidthEmbedding.v1) of each span   -> W (n_spans, nW)
      ├ label embeddings of the head and tail labels (optional)     -> (n_pairs, 2 * nL)
      └ signed token-gap embedding (optional)                      -> (n_pairs, nD)
    [S[head]; S[tail]; B; W[head]; W[tail]; E[head]; E[tail]; D]
        ─ Maxout + LayerNorm + dropout (hidden_width; only dropout when 0: SpERT's linear
          classifier) ─ Linear -> logits (n_pairs, nO)

Against `spacy_ie.RelationModel.v1`, whose published computation is unchanged: the spans are
max-pooled instead of attention-pooled, and the context is the between-tokens' max instead of
a pair-conditioned attention over a window around the pair (`context_window`); the width
embeddings are new. The label and distance embeddings are RelationModel.v1's, and the
candidate index is built by its `_index_candidates`. The between-range pooling is the one of
`spacy_ie.TypedMarkerRelationModel.v1` (`use_between`), applied to the shared token vectors
instead of a marker pass.

`RelationScores.contexts` holds each pair's extent (first to last token of head and tail);
`attention` is zeros (this model has no attention). The logits' gradient comes from the
relation_extractor's loss; wrap the model in `spacy_ie.MeanOverCandidates.v1` to average it
over the candidates.
"""
from typing import Callable, List, Optional, Tuple

import numpy
from spacy.tokens import Doc
from spacy.util import registry
from thinc.api import Dropout, Embed, HashEmbed, Linear, Maxout, Model, chain, reduce_max
from thinc.types import Floats2d, Ints1d, Ragged

from ..candidates import Candidates
from .marker_model import _pool_between
from .relation_model import (
    N_DISTANCE_BUCKETS,
    RelationScores,
    _expand_ranges,
    _index_candidates,
    classify_parts,
)
from .span_categorizer import token_width

InT = Tuple[List[Doc], Candidates]


@registry.architectures("spacy_ie.SpanPairRelationModel.v1")
def build_span_pair_relation_model(
    tok2vec: Model[List[Doc], List[Floats2d]],
    span_pooling: Optional[Model[Ragged, Floats2d]] = None,
    width_embed: Optional[Model[Ints1d, Floats2d]] = None,
    use_between: bool = True,
    hidden_width: int = 128,
    dropout: float = 0.1,
    label_width: int = 16,
    distance_width: int = 16,
    nO: Optional[int] = None,
) -> Model[InT, RelationScores]:
    """Build the span-pair relation model (see the module docstring).

    tok2vec (Model[List[Doc], List[Floats2d]]): token vectors, usually a listener of the shared
        `tok2vec` or `transformer` (or `spacy_ie.CaseFeatures.v1` around one).
    span_pooling (Optional[Model[Ragged, Floats2d]]): pools a span's tokens; default
        `reduce_max.v1` (SpERT). Any pooling works (e.g. `spacy_ie.AttentionPooling.v1`).
    width_embed (Optional[Model[Ints1d, Floats2d]]): embeds the head's and tail's widths, e.g.
        `spacy_ie.SpanWidthEmbedding.v1`; None: no width features.
    use_between (bool): add the max-pooled tokens between head and tail.
    hidden_width (int): width of the Maxout hidden layer (2 pieces, LayerNorm); 0: the features
        go to the output layer directly (SpERT's linear relation classifier).
    dropout (float): dropout rate before the output layer (on the hidden layer's output, or on
        the features when hidden_width is 0); spaCy's training loop sets it to [training] dropout.
    label_width (int): width of each entity-label embedding (0 disables them).
    distance_width (int): width of the signed token-gap embedding (0 disables it).
    nO (Optional[int]): number of outputs, set by the component from its labels.
    RETURNS (Model[Tuple[List[Doc], Candidates], RelationScores]): logits (n_pairs, nO); the
        backward pass takes d_logits (n_pairs, nO), returns nothing, and sends the gradients
        to the tok2vec.
    RAISES (ValueError): hidden_width or dropout out of range.
    """
    if hidden_width < 0 or not 0.0 <= dropout < 1.0:
        raise ValueError(
            f"spacy_ie.SpanPairRelationModel.v1: hidden_width must be >= 0 and dropout in [0, 1), "
            f"got {hidden_width}, {dropout}"
        )
    if span_pooling is None:
        span_pooling = reduce_max()
    output_layer = Linear(nO)
    if hidden_width:
        classifier = chain(Maxout(hidden_width, nP=2, dropout=dropout, normalize=True), output_layer)
    else:
        classifier = chain(Dropout(dropout), output_layer)
    layers = {"tok2vec": tok2vec, "span_pooling": span_pooling, "classifier": classifier}
    optional = {
        "width_embed": width_embed,
        "label_embed": HashEmbed(label_width, 64, seed=17) if label_width else None,
        "distance_embed": Embed(distance_width, N_DISTANCE_BUCKETS) if distance_width else None,
    }
    layers.update({name: layer for name, layer in optional.items() if layer is not None})
    refs = dict(layers, output_layer=output_layer)
    return Model(
        "span_pair_relation_model",
        forward,
        init=init,
        layers=list(layers.values()),
        refs=refs,
        dims={"nO": nO},
        attrs={"use_between": use_between, "hidden_width": hidden_width},
    )


def init(model: Model[InT, RelationScores], X: Optional[InT] = None, Y=None) -> None:
    docs = X[0] if X is not None else None
    tok2vec = model.get_ref("tok2vec")
    tok2vec.initialize(X=docs)
    nI = token_width(tok2vec, docs)
    ops = model.ops
    span_pooling = model.get_ref("span_pooling")
    sample = Ragged(ops.alloc2f(2, nI), ops.asarray1i([1, 1]))
    span_pooling.initialize(X=sample)
    width = 2 * span_pooling.predict(sample).shape[1]
    if model.attrs["use_between"]:
        width += nI
    for name, copies in (("width_embed", 2), ("label_embed", 2), ("distance_embed", 1)):
        if model.has_ref(name):
            model.get_ref(name).initialize()
            width += copies * model.get_ref(name).get_dim("nO")
    if model.has_dim("nO") and model.get_dim("nO") is not None:
        model.get_ref("output_layer").set_dim("nO", model.get_dim("nO"), force=True)
    model.get_ref("classifier").initialize(X=ops.alloc2f(2, width))


def between_ranges(heads: numpy.ndarray, tails: numpy.ndarray) -> numpy.ndarray:
    """The tokens between each pair's two spans, as SpERT's relation context mask.

    heads, tails (numpy int arrays): (n_pairs, 2) start, end (exclusive) of each pair's head
        and tail, in one coordinate system (Doc-local or global rows).
    RETURNS (numpy int64 array): (n_pairs, 2) [start, end) from the end of the earlier span to
        the start of the later one, whichever of head and tail comes first; an empty range
        (start == end) when the spans are adjacent, overlap or nest.
    """
    lo = numpy.minimum(heads[:, 1], tails[:, 1])
    hi = numpy.maximum(heads[:, 0], tails[:, 0])
    empty = hi <= lo
    return numpy.stack([lo, numpy.where(empty, lo, hi)], axis=1).astype("int64").reshape(-1, 2)


def forward(model: Model[InT, RelationScores], inputs: InT, is_train: bool) -> Tuple[RelationScores, Callable]:
    docs, candidates = inputs
    ops = model.ops
    tokvecs, bp_tokvecs = model.get_ref("tok2vec")(docs, is_train)
    doc_lengths = ops.asarray1i([len(doc) for doc in docs])
    nO = model.get_dim("nO")
    index = _index_candidates(docs, candidates, 0)
    n_pairs = len(index.heads)
    if n_pairs == 0:

        def backprop_empty(d_logits: Floats2d) -> None:
            # Still call the listener's backprop, so that the shared encoder's update completes.
            bp_tokvecs([ops.alloc2f(*tv.shape) for tv in tokvecs])

        return RelationScores(ops.alloc2f(0, nO), index.contexts, ops.alloc1f(0)), backprop_empty

    X = ops.flatten(tokvecs)  # (n_tokens, nI)
    spans = index.spans.astype("int64")  # (n_spans, 2) global rows, each distinct span once
    widths = (spans[:, 1] - spans[:, 0]).astype("int32")
    span_tokens = ops.asarray1i(_expand_ranges(spans[:, 0], spans[:, 1]))
    S, bp_spans = model.get_ref("span_pooling")(Ragged(X[span_tokens], ops.asarray1i(widths)), is_train)
    heads = ops.asarray1i(index.heads)
    tails = ops.asarray1i(index.tails)
    parts = [(S, heads), (S, tails)]
    bp_between = None
    if model.attrs["use_between"]:
        between = between_ranges(spans[index.heads], spans[index.tails])
        B, bp_between = _pool_between(ops, X, numpy.zeros(n_pairs, dtype="int64"), between)
        parts.append((B, None))
    per_span = []  # the backprops of the embeddings indexed by head and tail
    for name, ids in (("width_embed", ops.asarray1i(widths)), ("label_embed", ops.asarray(index.span_labels))):
        if model.has_ref(name):
            E, bp_E = model.get_ref(name)(ids, is_train)
            parts.extend(((E, heads), (E, tails)))
            per_span.append(bp_E)
    bp_distance = None
    if model.has_ref("distance_embed"):
        D, bp_distance = model.get_ref("distance_embed")(ops.asarray1i(index.distances), is_train)
        parts.append((D, None))
    logits, bp_classifier = classify_parts(model.get_ref("classifier"), parts, is_train)
    n_ctx = int((index.contexts[:, 1] - index.contexts[:, 0]).sum())

    def backprop(d_logits: Floats2d) -> None:
        d_parts = iter(bp_classifier(d_logits))  # in the order of `parts`
        dS = next(d_parts) + next(d_parts)
        dX = ops.alloc2f(*X.shape)
        ops.scatter_add(dX, span_tokens, bp_spans(dS).dataXd)
        if bp_between is not None:
            bp_between(dX, next(d_parts))
        for bp_E in per_span:
            bp_E(next(d_parts) + next(d_parts))
        if bp_distance is not None:
            bp_distance(next(d_parts))
        bp_tokvecs(ops.unflatten(dX, doc_lengths))

    return RelationScores(logits, index.contexts, ops.alloc1f(n_ctx)), backprop
