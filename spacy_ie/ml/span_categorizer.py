"""`spacy_ie.SpanCategorizer.v1`: a model for spaCy's `spancat` / `spancat_singlelabel` that
adds SpERT's span features to `spacy.SpanCategorizer.v1`.

Same input and output as spaCy's architecture (the Docs and the suggester's spans, one row of
scores per span), so spaCy's components do the rest: labels, the loss, decoding (overlapping
spans allowed with `allow_overlap`), the scorer and serialization. What it adds is what SpERT's
entity classifier has (Eberts & Ulges 2020, "Span-based Joint Entity and Relation Extraction
with Transformer Pre-training", Sec. 3.1: [CLS]; max-pooled span tokens; a width embedding)
and spaCy's lacks::

    docs ─ tok2vec (a listener) ─ X (n_tokens, nI)
      ├ reducer:          each span's tokens (Ragged) -> (n_spans, nR)   e.g. reduce_max.v1, or
      │                                                                  first, last and max concatenated
      ├ width_embed:      each span's width            -> (n_spans, nW)   spacy_ie.SpanWidthEmbedding.v1
      └ sentence_pooling: each span's sentence tokens  -> (n_spans, nS)   e.g. reduce_max.v1
    concatenate ─ Maxout + LayerNorm + dropout (hidden_width; only dropout when 0) ─ scorer -> (n_spans, nO)

The sentence vector stands in for SpERT's [CLS]: a transformer listener gives one vector per
spaCy token and no [CLS], and a CNN tok2vec has none; pooling the span's sentence (the whole
Doc when it has no sentence boundaries, as `spacy_ie.candidates.sentence_bounds`) gives every
span the same global context, computed once per sentence. Case features beside an uncased
transformer go in the tok2vec slot (`spacy_ie.CaseFeatures.v1` around the listener).

The span tokens are gathered with vectorized index arithmetic (no Python loop per span, unlike
spaCy's `extract_spans`). On CPU, the hidden layer's weights for a `reduce_first` or
`reduce_last` feature multiply each token once, and those for the sentence feature each
sentence once, rather than a copy per span (`relation_model.classify_parts`; with 10-token
spans each token starts about 10 spans), in training and in inference; in inference a
`reduce_max` feature comes from `range_max`. On 120 CoNLL04 test documents with the int8 MiniLM
pipeline, the span classifier took 0.35 s instead of 2.6 s (60% of the pipeline's time
before), and a training update of the MiniLM joint pipeline (30 documents) 3.8 s instead of 6.4 s
(BENCHMARKS.md, "Per-token int8").

The scorer's output is what spaCy's component expects: probabilities
(`Softmax.v2` for `spancat_singlelabel`, `spacy.LinearLogistic.v1` for `spancat`), whose
gradient spaCy's `get_loss` computes as ``scores - target``, summed over the spans (wrap the
model in `spacy_ie.MeanOverCandidates.v1` to average it).
"""
from typing import Callable, Iterator, List, Optional, Tuple

import numpy
from spacy.tokens import Doc
from spacy.util import registry
from thinc.api import Dropout, Maxout, Model, get_array_module, to_numpy
from thinc.layers.concatenate import forward as concatenate_forward
from thinc.types import Floats2d, Ints1d, Ragged

from ..candidates import sentence_bounds
from .relation_model import _expand_ranges, classify_parts

InT = Tuple[List[Doc], Ragged]


@registry.architectures("spacy_ie.SpanCategorizer.v1")
def build_span_categorizer(
    tok2vec: Model[List[Doc], List[Floats2d]],
    reducer: Model[Ragged, Floats2d],
    scorer: Model[Floats2d, Floats2d],
    width_embed: Optional[Model[Ints1d, Floats2d]] = None,
    sentence_pooling: Optional[Model[Ragged, Floats2d]] = None,
    hidden_width: int = 0,
    dropout: float = 0.1,
) -> Model[InT, Floats2d]:
    """Build the span categorizer model (see the module docstring).

    tok2vec (Model[List[Doc], List[Floats2d]]): token vectors (nI wide), usually a listener of a
        shared `tok2vec` or `transformer`, or `spacy_ie.CaseFeatures.v1` around one.
    reducer (Model[Ragged, Floats2d]): pools a span's token vectors into one row:
        `reduce_max.v1` (SpERT), `spacy.mean_max_reducer.v1` (spaCy's default), ...
    scorer (Model[Floats2d, Floats2d]): the output layer, nO = number of labels (+1 for
        spancat_singlelabel's negative label), set by the component at initialization.
    width_embed (Optional[Model[Ints1d, Floats2d]]): embeds each span's width, e.g.
        `spacy_ie.SpanWidthEmbedding.v1`; None: no width feature.
    sentence_pooling (Optional[Model[Ragged, Floats2d]]): pools the token vectors of each span's
        sentence(s), e.g. `reduce_max.v1`; None: no sentence feature.
    hidden_width (int): width of a Maxout hidden layer (2 pieces, LayerNorm) between the
        features and the scorer; 0: the features go straight to the scorer, as SpERT's linear
        entity classifier. It runs once per span: the costly part of the model.
    dropout (float): dropout rate before the scorer (on the hidden layer's output, or on the
        features when hidden_width is 0); spaCy's training loop sets it to [training] dropout.
    RETURNS (Model[Tuple[List[Doc], Ragged], Floats2d]): input the Docs and the suggester's
        spans (Ragged: data (n_spans, 2) Doc-local start, end; lengths (n_docs,)), every span
        non-empty; output the scorer's (n_spans, nO), rows in span order. The backward pass
        takes d_scores (n_spans, nO); the gradients flow into the tok2vec.
    RAISES (ValueError): hidden_width or dropout out of range.
    """
    if hidden_width < 0 or not 0.0 <= dropout < 1.0:
        raise ValueError(
            f"spacy_ie.SpanCategorizer.v1: hidden_width must be >= 0 and dropout in [0, 1), got "
            f"{hidden_width}, {dropout}"
        )
    hidden = Maxout(hidden_width, nP=2, dropout=dropout, normalize=True) if hidden_width else Dropout(dropout)
    layers = [tok2vec, reducer, hidden, scorer]
    refs = {"tok2vec": tok2vec, "reducer": reducer, "hidden": hidden, "scorer": scorer}
    if width_embed is not None:
        layers.append(width_embed)
        refs["width_embed"] = width_embed
    if sentence_pooling is not None:
        layers.append(sentence_pooling)
        refs["sentence_pooling"] = sentence_pooling
    return Model(
        "span_categorizer",
        forward,
        init=init,
        layers=layers,
        refs=refs,
        dims={"nO": None},
        attrs={"hidden_width": hidden_width},
    )


def token_width(tok2vec: Model, docs: Optional[List[Doc]]) -> int:
    """The width of a tok2vec's output: its nO, else (a transformer listener, whose width is
    known only once the transformer is) the width of a prediction on a Doc with tokens.

    RAISES (ValueError): no nO and no Doc with tokens to predict on."""
    if tok2vec.has_dim("nO"):
        return tok2vec.get_dim("nO")
    sample = [doc for doc in docs or [] if len(doc)][:1]
    if not sample:
        raise ValueError("Cannot infer the token vector width: pass sample Docs with tokens")
    return tok2vec.predict(sample)[0].shape[1]


def init(model: Model[InT, Floats2d], X: Optional[InT] = None, Y: Optional[Floats2d] = None) -> None:
    docs = X[0] if X is not None else None
    tok2vec = model.get_ref("tok2vec")
    tok2vec.initialize(X=docs)
    nI = token_width(tok2vec, docs)
    ops = model.ops
    # Two one-token sequences of the token width: enough for the pooling layers to infer
    # their input widths (and for a Maxout inside a reducer to size itself).
    sample = Ragged(ops.alloc2f(2, nI), ops.asarray1i([1, 1]))
    width = 0
    for name in ("reducer", "sentence_pooling"):
        if model.has_ref(name):
            pooling = model.get_ref(name)
            pooling.initialize(X=sample)
            width += pooling.predict(sample).shape[1]
    if model.has_ref("width_embed"):
        model.get_ref("width_embed").initialize()
        width += model.get_ref("width_embed").get_dim("nO")
    hidden = model.get_ref("hidden")
    hidden.initialize(X=ops.alloc2f(2, width))
    if model.attrs["hidden_width"]:
        width = model.attrs["hidden_width"]
    scorer = model.get_ref("scorer")
    scorer.initialize(X=ops.alloc2f(2, width), Y=Y)
    model.set_dim("nO", scorer.get_dim("nO"), force=True)


def _span_rows(docs: List[Doc], spans: Ragged) -> Tuple[numpy.ndarray, numpy.ndarray, numpy.ndarray]:
    """Global token rows of the batch's spans: (starts (n_spans,), ends (n_spans,), the row of
    each span's Doc (n_spans,)); numpy, CPU."""
    lengths = numpy.asarray([len(doc) for doc in docs], dtype="int64")
    offsets = numpy.cumsum(lengths) - lengths
    counts = to_numpy(spans.lengths).astype("int64")
    data = to_numpy(spans.dataXd).astype("int64").reshape(-1, 2)
    doc_of_span = numpy.repeat(numpy.arange(len(docs)), counts)
    return data[:, 0] + offsets[doc_of_span], data[:, 1] + offsets[doc_of_span], doc_of_span


def sentence_ranges(
    docs: List[Doc], starts: numpy.ndarray, ends: numpy.ndarray, doc_of_span: numpy.ndarray
) -> Tuple[numpy.ndarray, numpy.ndarray]:
    """The distinct sentence ranges of a batch's spans, and the row of each span's range.

    starts, ends, doc_of_span (numpy int arrays): (n_spans,) global token rows of the spans
        (Docs one after another) and the index of each span's Doc, as `_span_rows` gives them.
    RETURNS (Tuple[numpy.ndarray, numpy.ndarray]): (n_ranges, 2) int64 global start, end of each
        distinct range, sorted; (n_spans,) int64 row of each span's range. A span's range is its
        sentence(s) as `Span.sent` gives it, or its whole Doc when the Doc has no sentence
        boundaries (`spacy_ie.candidates.sentence_bounds`). One call per Doc, vectorized within.
    """
    lengths = numpy.asarray([len(doc) for doc in docs], dtype="int64")
    offsets = numpy.cumsum(lengths) - lengths
    bounds = numpy.zeros((len(starts), 2), dtype="int64")
    firsts = numpy.searchsorted(doc_of_span, numpy.arange(len(docs) + 1))  # spans are by Doc
    for i, doc in enumerate(docs):
        rows = slice(firsts[i], firsts[i + 1])
        if firsts[i + 1] > firsts[i]:
            local = sentence_bounds(doc, starts[rows] - offsets[i], ends[rows] - offsets[i])
            bounds[rows] = local.astype("int64") + offsets[i]
    ranges, inverse = numpy.unique(bounds, axis=0, return_inverse=True)
    return ranges.reshape(-1, 2), inverse.reshape(-1)


def forward(model: Model[InT, Floats2d], inputs: InT, is_train: bool) -> Tuple[Floats2d, Callable]:
    docs, spans = inputs
    ops = model.ops
    tok2vec = model.get_ref("tok2vec")
    tokvecs, bp_tokvecs = tok2vec(docs, is_train)
    doc_lengths = ops.asarray1i([len(doc) for doc in docs])
    starts, ends, doc_of_span = _span_rows(docs, spans)
    if len(starts) == 0:

        def backprop_empty(d_scores: Floats2d) -> InT:
            # Still call the listener's backprop, so that the shared encoder's update completes.
            bp_tokvecs([ops.alloc2f(*tv.shape) for tv in tokvecs])
            return inputs

        return ops.alloc2f(0, model.get_dim("nO")), backprop_empty

    X = ops.flatten(tokvecs)  # (n_tokens, nI)
    widths = (ends - starts).astype("int32")
    parts, bp_reducer = _reducer_parts(model.get_ref("reducer"), X, starts, ends, is_train)
    bp_width = bp_sentence = None
    if model.has_ref("width_embed"):
        W, bp_width = model.get_ref("width_embed")(ops.asarray1i(widths), is_train)
        parts.append((W, None))
    if model.has_ref("sentence_pooling"):
        ranges, sent_of_span = sentence_ranges(docs, starts, ends, doc_of_span)
        sent_tokens = ops.asarray1i(_expand_ranges(ranges[:, 0], ranges[:, 1]))
        sent_lengths = ops.asarray1i((ranges[:, 1] - ranges[:, 0]).astype("int32"))
        S, bp_sentence = model.get_ref("sentence_pooling")(Ragged(X[sent_tokens], sent_lengths), is_train)
        sent_of_span_x = ops.asarray1i(sent_of_span.astype("int32"))
        parts.append((S, sent_of_span_x))
    H, bp_hidden = classify_parts(model.get_ref("hidden"), parts, is_train)
    scores, bp_scorer = model.get_ref("scorer")(H, is_train)

    def backprop(d_scores: Floats2d) -> InT:
        d_parts = iter(bp_hidden(bp_scorer(d_scores)))  # in the order of `parts`
        dX = ops.alloc2f(*X.shape)
        bp_reducer(d_parts, dX)
        if bp_width is not None:
            bp_width(next(d_parts))
        if bp_sentence is not None:
            ops.scatter_add(dX, sent_tokens, bp_sentence(next(d_parts)).dataXd)
        bp_tokvecs(ops.unflatten(dX, doc_lengths))
        return inputs

    return scores, backprop


def range_max(X: Floats2d, starts: numpy.ndarray, ends: numpy.ndarray) -> Floats2d:
    """The column-wise max of the rows [start, end) of X for each span, from a sparse table of
    maxima over power-of-two windows (range-minimum queries, Bender & Farach-Colton 2000, "The
    LCA Problem Revisited", Sec. 3): level k holds the max over each window of 2^k rows, and
    a span of width w is the max of the two level-floor(log2 w) windows at its start and at its
    end, which overlap and lie inside it. Equal to `reduce_max.v1` on the spans' rows.

    X (Floats2d): (n_rows, nI), e.g. a batch's token vectors, Docs one after another.
    starts, ends (numpy int arrays): (n_spans,) global rows; every span non-empty.
    RETURNS (Floats2d): (n_spans, nI). Memory: floor(log2(max width)) levels of at most n_rows
        rows each, against a gathered copy of every span's rows for reduce_max.v1 (about 5.5
        rows per span for the n-gram suggester up to 10 tokens), so about half the time.
    """
    xp = get_array_module(X)
    starts = starts.astype("int64")
    ends = ends.astype("int64")
    levels = numpy.floor(numpy.log2(ends - starts)).astype("int64")
    tables = [X]
    for k in range(1, int(levels.max()) + 1):
        half = 1 << (k - 1)
        tables.append(xp.maximum(tables[-1][:-half], tables[-1][half:]))
    out = xp.empty((len(starts), X.shape[1]), dtype=X.dtype)
    for k in numpy.unique(levels):
        rows = numpy.flatnonzero(levels == k)
        table = tables[k]
        first = xp.asarray(starts[rows])
        second = xp.asarray(ends[rows] - (1 << int(k)))
        out[xp.asarray(rows)] = xp.maximum(table[first], table[second])
    return out


def _reducer_parts(
    reducer: Model[Ragged, Floats2d],
    X: Floats2d,
    starts: numpy.ndarray,
    ends: numpy.ndarray,
    is_train: bool,
) -> Tuple[List[Tuple[Floats2d, Optional[Ints1d]]], Callable[[Iterator[Floats2d], Floats2d], None]]:
    """The reducer's output as parts for `classify_parts`, one per pooling (the layers of a
    `concatenate`, in order, or the reducer itself), and its backprop.

    A `reduce_first` or `reduce_last` pooling is the part (X, each span's first or last token
    row): `classify_parts` multiplies the hidden layer's weights with each token once rather
    than with a copy per span (a token starts about 10 spans with the n-gram suggester), and
    its gradient is X's. In inference a `reduce_max` is `range_max`. Any other pooling (and
    `reduce_max` in training) runs on the spans' tokens, (n_spans, its width). Same values and
    gradients as the concatenated reducer, up to float rounding (the tests compare them).

    RETURNS: the parts, and backprop(d_parts, dX), which takes the parts' gradients from the
        iterator d_parts (as `classify_parts` returns them, in order) and adds their gradient
        into dX (n_tokens, nI).
    """
    ops = reducer.ops
    span_tokens = ragged = None
    parts: List[Tuple[Floats2d, Optional[Ints1d]]] = []
    backprops: List[Optional[Callable]] = []  # None: the part's gradient is X's
    for pooling in reducer.layers if reducer._func is concatenate_forward else [reducer]:
        if pooling.name in ("reduce_first", "reduce_last"):
            rows = starts if pooling.name == "reduce_first" else ends - 1
            parts.append((X, ops.asarray1i(rows.astype("int32"))))
            backprops.append(None)
        elif pooling.name == "reduce_max" and not is_train:  # no backward pass in inference
            parts.append((range_max(X, starts, ends), None))
            backprops.append(None)
        else:
            if ragged is None:
                span_tokens = ops.asarray1i(_expand_ranges(starts, ends))
                ragged = Ragged(X[span_tokens], ops.asarray1i((ends - starts).astype("int32")))
            R, bp_pooling = pooling(ragged, is_train)
            parts.append((R, None))
            backprops.append(bp_pooling)

    def backprop(d_parts: Iterator[Floats2d], dX: Floats2d) -> None:
        for bp_pooling in backprops:
            d_part = next(d_parts)
            if bp_pooling is None:
                dX += d_part
            else:
                ops.scatter_add(dX, span_tokens, bp_pooling(d_part).dataXd)

    return parts, backprop
