"""`spacy_ie.RelationModel.v1`: scores every candidate (head, tail) pair of a batch of Docs.

Data flow, vectorized over all candidates of a batch (the candidates arrive as integer arrays,
`spacy_ie.candidates.Candidates`, so no Python loop runs per pair):

    docs ─ tok2vec (listener) ─ X (n_tokens, nI)
      ├ spans:    attention pooling over each entity's tokens            -> S (n_spans, nI)
      ├ context:  entity-aware attention over each pair's context tokens -> C (n_pairs, nI)
      ├ labels:   hashed embeddings of the head and tail entity labels   -> (n_pairs, 2 * nL)
      └ distance: embedding of the bucketed signed token gap             -> (n_pairs, nD)
    [S[head]; S[tail]; C; labels; distance] ─ Maxout + LayerNorm ─ Linear -> logits (n_pairs, nO)

The model returns logits; the relation_extractor component applies the sigmoid
(multi-label) or softmax (exclusive classes) and computes the loss. Compared with spaCy's
rel_component tutorial (mean-pooled entities, concatenation, sigmoid), the span and context
representations are attention-weighted, the context attention is conditioned on the pair
(see `context_attention.py`), and entity types and distance are model inputs, as in SpERT
(Eberts & Ulges 2020: span width/size embeddings, context between the arguments).
"""
from typing import Callable, List, NamedTuple, Optional, Sequence, Tuple

import numpy
from spacy.tokens import Doc
from spacy.util import registry
from thinc.api import Embed, HashEmbed, Linear, Maxout, Model, NumpyOps, chain
from thinc.layers.chain import forward as chain_forward
from thinc.types import Floats1d, Floats2d, Ints1d, Ragged

from ..candidates import Candidates
from .attention_pooling import build_attention_pooling
from .context_attention import PairContexts, build_pair_context_attention

InT = Tuple[List[Doc], Candidates]

# Signed token-gap buckets (as in coreference/SpERT-style distance features):
# 0, 1, 2, 3, 4, 5-7, 8-15, 16-31, 32-63, 64+ for each direction.
_GAP_BINS = numpy.asarray([1, 2, 3, 4, 5, 8, 16, 32, 64], dtype="int32")
N_DISTANCE_BUCKETS = 2 * (len(_GAP_BINS) + 1)


class RelationScores(NamedTuple):
    """Output of the relation model for one batch.

    logits (Floats2d): (n_pairs, nO) unnormalized label scores, pairs in input order.
    contexts (numpy int32 array): (n_pairs, 2) start and end token of each pair's context in
        its own Doc (CPU array).
    attention (Floats1d): (sum of context lengths,) context attention weights, pair by pair.
    """

    logits: Floats2d
    contexts: numpy.ndarray
    attention: Floats1d


@registry.architectures("spacy_ie.RelationModel.v1")
def build_relation_model(
    tok2vec: Model[List[Doc], List[Floats2d]],
    hidden_width: int = 128,
    dropout: float = 0.1,
    label_width: int = 16,
    distance_width: int = 16,
    context_window: int = 0,
    span_pooling: Optional[Model[Ragged, Floats2d]] = None,
    context_attention: Optional[Model] = None,
    nO: Optional[int] = None,
) -> Model[InT, RelationScores]:
    """Build the relation model.

    tok2vec (Model): token vectors, usually a `spacy.Tok2VecListener.v1` or
        `spacy-transformers.TransformerListener.v1` of a shared encoder.
    hidden_width (int): width of the Maxout hidden layer.
    dropout (float): dropout rate of the hidden layer.
    label_width (int): width of each entity-label embedding (0 disables them).
    distance_width (int): width of the distance embedding (0 disables it).
    context_window (int): the context of a pair is its sentence (when the Doc has sentence
        boundaries), clipped to `context_window` tokens beyond the pair on each side; 0 (the
        default) keeps the tokens from the start of the first entity to the end of the second
        (SpERT's localized context, Eberts & Ulges 2020, plus the two entities). Chosen on dev
        over CNN and transformer encoders, gold and predicted entities (BENCHMARKS.md, "The
        relation model's context window").
    span_pooling (Optional[Model]): pools an entity's tokens into one vector; default
        `spacy_ie.AttentionPooling.v1` with one head. Must output nI columns.
    context_attention (Optional[Model]): default `spacy_ie.PairContextAttention.v1`.
    nO (Optional[int]): number of outputs, set by the component from its labels.
    RETURNS (Model[Tuple[List[Doc], Candidates], RelationScores]): the backward pass takes
        d_logits (n_pairs, nO) and returns nothing (gradients flow into tok2vec).
    """
    if span_pooling is None:
        span_pooling = build_attention_pooling(n_heads=1)
    if context_attention is None:
        context_attention = build_pair_context_attention()
    label_embed = HashEmbed(label_width, 64, seed=17) if label_width else None
    distance_embed = Embed(distance_width, N_DISTANCE_BUCKETS) if distance_width else None
    output_layer = Linear(nO)
    classifier = chain(Maxout(hidden_width, nP=2, dropout=dropout, normalize=True), output_layer)
    refs = {
        "tok2vec": tok2vec,
        "span_pooling": span_pooling,
        "context_attention": context_attention,
        "classifier": classifier,
        "output_layer": output_layer,
    }
    layers = [tok2vec, span_pooling, context_attention, classifier]
    if label_embed is not None:
        refs["label_embed"] = label_embed
        layers.append(label_embed)
    if distance_embed is not None:
        refs["distance_embed"] = distance_embed
        layers.append(distance_embed)
    return Model(
        "relation_model",
        forward,
        init=init,
        layers=layers,
        refs=refs,
        dims={"nO": nO},
        attrs={"context_window": context_window},
    )


def init(model: Model[InT, RelationScores], X: Optional[InT] = None, Y=None) -> None:
    tok2vec = model.get_ref("tok2vec")
    tok2vec.initialize(X[0] if X is not None else None)
    # A transformer listener has no nO dim: its width shows in a prediction on a non-empty Doc.
    sample = [doc for doc in X[0] if len(doc)][:1] if X is not None else []
    if tok2vec.has_dim("nO"):
        nI = tok2vec.get_dim("nO")
    elif sample:
        nI = tok2vec.predict(sample)[0].shape[1]
    else:
        raise ValueError("Cannot infer the token vector width: pass sample Docs with tokens")
    span_pooling = model.get_ref("span_pooling")
    if span_pooling.has_dim("nI") is not False:
        span_pooling.set_dim("nI", nI, force=True)
    span_pooling.initialize()
    if span_pooling.get_dim("nO") != nI:
        raise ValueError(
            f"span_pooling must output the token vector width {nI}, got "
            f"{span_pooling.get_dim('nO')} (use one attention head)"
        )
    context_attention = model.get_ref("context_attention")
    context_attention.set_dim("nI", nI, force=True)
    context_attention.initialize()
    width = 3 * nI
    for name in ("label_embed", "distance_embed"):
        if model.has_ref(name):
            model.get_ref(name).initialize()
            width += model.get_ref(name).get_dim("nO") * (2 if name == "label_embed" else 1)
    if model.has_dim("nO"):
        model.get_ref("output_layer").set_dim("nO", model.get_dim("nO"), force=True)
    classifier = model.get_ref("classifier")
    classifier.layers[0].set_dim("nI", width, force=True)
    classifier.initialize(X=model.ops.alloc2f(2, width))


def forward(
    model: Model[InT, RelationScores], inputs: InT, is_train: bool
) -> Tuple[RelationScores, Callable]:
    docs, candidates = inputs
    ops = model.ops
    tok2vec = model.get_ref("tok2vec")
    tokvecs, bp_tokvecs = tok2vec(docs, is_train)
    doc_lengths = [len(doc) for doc in docs]
    index = _index_candidates(docs, candidates, model.attrs["context_window"])
    n_pairs = len(index.heads)
    nO = model.get_dim("nO")
    if n_pairs == 0:
        empty = RelationScores(ops.alloc2f(0, nO), index.contexts, ops.alloc1f(0))

        def backprop_empty(d_logits: Floats2d) -> None:
            # Still call the listener's backprop, so the shared encoder's update completes.
            bp_tokvecs([ops.alloc2f(*tv.shape) for tv in tokvecs])

        return empty, backprop_empty

    X = ops.flatten(tokvecs)  # (n_tokens, nI)
    nI = X.shape[1]
    xp = ops.xp
    # Entity spans, each pooled once however many pairs it takes part in.
    span_lengths = ops.asarray1i(index.spans[:, 1] - index.spans[:, 0])
    span_tokens = ops.asarray1i(_expand_ranges(index.spans[:, 0], index.spans[:, 1]))
    S, bp_spans = model.get_ref("span_pooling")(Ragged(X[span_tokens], span_lengths), is_train)
    heads = ops.asarray1i(index.heads)
    tails = ops.asarray1i(index.tails)
    pair_vectors = ops.xp.hstack((S[heads], S[tails]))  # (n_pairs, 2 * nI)
    contexts = PairContexts(
        ops.asarray1i(index.context_tokens),
        ops.asarray1i(index.context_roles),
        ops.asarray1i(index.contexts[:, 1] - index.contexts[:, 0]),
    )
    (C, attention), bp_context = model.get_ref("context_attention")(
        (X, pair_vectors, contexts), is_train
    )
    parts = [(S, heads), (S, tails), (C, None)]
    bp_label = bp_distance = None
    if model.has_ref("label_embed"):
        E, bp_label = model.get_ref("label_embed")(ops.asarray(index.span_labels), is_train)
        parts.extend(((E, heads), (E, tails)))
    if model.has_ref("distance_embed"):
        D, bp_distance = model.get_ref("distance_embed")(ops.asarray1i(index.distances), is_train)
        parts.append((D, None))
    logits, bp_classifier = classify_parts(model.get_ref("classifier"), parts, is_train)

    def backprop(d_logits: Floats2d) -> None:
        d_parts = bp_classifier(d_logits)
        dS = d_parts[0] + d_parts[1]
        if bp_label is not None:
            bp_label(d_parts[3] + d_parts[4])
        if bp_distance is not None:
            bp_distance(d_parts[-1])
        dX, d_pairs = bp_context(d_parts[2])
        ops.scatter_add(dS, heads, xp.ascontiguousarray(d_pairs[:, :nI]))
        ops.scatter_add(dS, tails, xp.ascontiguousarray(d_pairs[:, nI:]))
        ops.scatter_add(dX, span_tokens, bp_spans(dS).dataXd)
        bp_tokvecs(ops.unflatten(dX, ops.asarray1i(doc_lengths)))

    return RelationScores(logits, index.contexts, attention), backprop


def classify_parts(
    classifier: Model[Floats2d, Floats2d],
    parts: Sequence[Tuple[Floats2d, Optional[Ints1d]]],
    is_train: bool,
) -> Tuple[Floats2d, Callable[[Floats2d], List[Floats2d]]]:
    """Run `classifier` on the features ``hstack([A[rows] if rows is not None else A for A, rows
    in parts])`` (n_rows, sum of the parts' widths): one row per pair for the relation models,
    one per span for `spacy_ie.SpanCategorizer.v1`.

    A part with `rows` is gathered (e.g. the span vectors S, (n_spans, nS), with rows = each
    pair's head; or the token vectors, with rows = each span's first token). On CPU, when the
    classifier starts with an affine layer (a Maxout or a Linear; in inference, any Dropout
    before it is skipped), that layer multiplies such a part once per row of A and gathers the
    products, instead of multiplying the gathered copy once per output row, and the
    concatenated features are never built. A span takes part in many pairs (CoNLL04 with the
    demo pipeline: 6,752 pairs of 1,335 spans) and a token starts about 10 suggested spans, so
    this is most of that layer's cost, in training as in inference. The backward pass does the
    same in reverse: the gradient of a gathered part is summed per row of A (scatter-add)
    before it is multiplied with the weights. The result equals the plain path (concatenate,
    then the classifier) up to float rounding; on GPU, or with a Dropout before the first
    layer in training, the plain path runs.

    RETURNS (Tuple[Floats2d, Callable]): the classifier's output (n_rows, nO), and the backward
        pass: d_output (n_rows, nO) -> the gradient of each part's A (A's shape), in the order
        of `parts` (the gradients of two parts that share an array are not summed).
    """
    ops = classifier.ops
    xp = ops.xp
    leaves = _chain_leaves(classifier)
    first = next((i for i, layer in enumerate(leaves) if layer.name != "dropout"), len(leaves))
    if (
        not isinstance(ops, NumpyOps)
        or first == len(leaves)
        or (is_train and first != 0)
        or leaves[first].name not in ("maxout", "linear")
    ):
        return _classify_concatenated(classifier, parts, is_train)
    layer = leaves[first]
    W = layer.get_param("W")
    W2 = W.reshape(-1, W.shape[-1])  # (nO * nP, nI) for a Maxout, (nO, nI) for a Linear
    bounds = numpy.cumsum([0] + [A.shape[1] for A, _ in parts])
    Y = None
    for (A, rows), a, b in zip(parts, bounds[:-1], bounds[1:]):
        product = A @ W2[:, a:b].T
        product = product if rows is None else product[rows]
        Y = product if Y is None else Y + product
    Y += layer.get_param("b").ravel()
    which = None
    if layer.name == "maxout":
        nO, nP = layer.get_dim("nO"), layer.get_dim("nP")
        Z, which = ops.maxout(Y.reshape(len(Y), nO, nP))
    else:
        Z = Y
    callbacks = []
    for later in leaves[first + 1 :]:
        Z, bp_later = later(Z, is_train)
        callbacks.append(bp_later)

    def backprop(d_output: Floats2d) -> List[Floats2d]:
        if not is_train:
            raise ValueError("classify_parts: no backward pass in inference")
        for bp_later in reversed(callbacks):
            d_output = bp_later(d_output)
        dY = d_output
        if which is not None:
            dY = ops.backprop_maxout(d_output, which, nP).reshape(len(d_output), nO * nP)
        layer.inc_grad("b", dY.sum(axis=0).reshape(layer.get_param("b").shape))
        dW = ops.alloc2f(*W2.shape)
        d_parts = []
        for (A, rows), a, b in zip(parts, bounds[:-1], bounds[1:]):
            d_rows = dY
            if rows is not None:  # the gradient of each row of A: the sum over its copies
                d_rows = ops.alloc2f(len(A), dY.shape[1])
                ops.scatter_add(d_rows, rows, dY)
            dW[:, a:b] = d_rows.T @ A
            d_parts.append(xp.ascontiguousarray(d_rows @ W2[:, a:b]))
        layer.inc_grad("W", dW.reshape(W.shape))
        return d_parts

    return Z, backprop


def _classify_concatenated(
    classifier: Model[Floats2d, Floats2d],
    parts: Sequence[Tuple[Floats2d, Optional[Ints1d]]],
    is_train: bool,
) -> Tuple[Floats2d, Callable[[Floats2d], List[Floats2d]]]:
    """`classify_parts` on the concatenated features: the plain path."""
    ops = classifier.ops
    xp = ops.xp
    features = xp.hstack([A if rows is None else A[rows] for A, rows in parts])
    Y, bp_classifier = classifier(features, is_train)
    bounds = numpy.cumsum([0] + [A.shape[1] for A, _ in parts])

    def backprop(d_output: Floats2d) -> List[Floats2d]:
        d_features = bp_classifier(d_output)
        d_parts = []
        for (A, rows), a, b in zip(parts, bounds[:-1], bounds[1:]):
            d_part = xp.ascontiguousarray(d_features[:, a:b])
            if rows is not None:
                d_gathered, d_part = d_part, ops.alloc2f(*A.shape)
                ops.scatter_add(d_part, rows, d_gathered)
            d_parts.append(d_part)
        return d_parts

    return Y, backprop


def _chain_leaves(model: Model) -> List[Model]:
    """The layers of a (nested) thinc `chain`, in order; [model] for any other layer."""
    if model._func is not chain_forward:
        return [model]
    return [leaf for layer in model.layers for leaf in _chain_leaves(layer)]


class CandidateIndex(NamedTuple):
    """Index arrays for the candidates of a batch (numpy, CPU); token indices are global rows
    of the flattened token matrix, except `contexts`, which are Doc-local."""

    spans: numpy.ndarray  # (n_spans, 2) global start, end of each distinct entity span
    span_labels: numpy.ndarray  # (n_spans,) uint64 hash of each span's label
    heads: numpy.ndarray  # (n_pairs,) row in `spans` of each pair's head
    tails: numpy.ndarray  # (n_pairs,) row in `spans` of each pair's tail
    contexts: numpy.ndarray  # (n_pairs, 2) Doc-local start, end of each pair's context
    context_tokens: numpy.ndarray  # (total context length,) global token rows
    context_roles: numpy.ndarray  # (total context length,) role of each context token
    distances: numpy.ndarray  # (n_pairs,) signed token-gap bucket


def _index_candidates(docs: Sequence[Doc], candidates: Candidates, window: int) -> CandidateIndex:
    """Index arrays for the candidates of a batch, vectorized: only the spans that take part in
    a pair are kept, each once."""
    doc_lengths = numpy.asarray([len(doc) for doc in docs], dtype="int64")
    token_offsets = numpy.cumsum(doc_lengths) - doc_lengths
    doc_of_span = numpy.repeat(numpy.arange(len(docs)), candidates.span_lengths)
    global_spans = candidates.spans.astype("int64") + token_offsets[doc_of_span][:, None]
    pairs = candidates.global_pairs  # (n_pairs, 2) rows into the batch's spans
    # The spans in order of first use (head, then tail, pair after pair): the order in which
    # their gradients are summed, kept as it was so that training reproduces to the bit.
    distinct, first, inverse = numpy.unique(pairs.reshape(-1), return_index=True, return_inverse=True)
    order = numpy.argsort(first, kind="stable")
    rank = numpy.empty_like(order)
    rank[order] = numpy.arange(len(order))
    used = distinct[order]
    rows = rank[inverse.reshape(-1)].reshape(-1, 2)
    heads_a = rows[:, 0].astype("int32")
    tails_a = rows[:, 1].astype("int32")
    spans_a = global_spans[used].astype("int32").reshape(-1, 2)
    n_pairs = len(heads_a)
    # Doc-local context of each pair: the pair +- window tokens, within the pair's sentence(s).
    local = candidates.spans[pairs]  # (n_pairs, 2 (head, tail), 2 (start, end))
    sents = candidates.span_sents[pairs]
    lo = numpy.maximum(sents[:, :, 0].min(axis=1), local[:, :, 0].min(axis=1) - window)
    hi = numpy.minimum(sents[:, :, 1].max(axis=1), local[:, :, 1].max(axis=1) + window)
    contexts = numpy.stack([lo, hi], axis=1).astype("int32").reshape(-1, 2)
    pair_offsets = token_offsets[candidates.doc_of_pair]
    # Roles of the context tokens, vectorized over the whole batch.
    ctx_start = contexts[:, 0] + pair_offsets
    ctx_end = contexts[:, 1] + pair_offsets
    tokens = _expand_ranges(ctx_start, ctx_end)
    owner = numpy.repeat(numpy.arange(n_pairs), ctx_end - ctx_start)
    hs, he = spans_a[heads_a, 0][owner], spans_a[heads_a, 1][owner]
    ts, te = spans_a[tails_a, 0][owner], spans_a[tails_a, 1][owner]
    roles = numpy.select(
        [
            (tokens >= hs) & (tokens < he),
            (tokens >= ts) & (tokens < te),
            tokens < numpy.minimum(hs, ts),
            tokens >= numpy.maximum(he, te),
        ],
        [1, 2, 0, 4],
        default=3,
    ).astype("int32")
    return CandidateIndex(
        spans=spans_a,
        span_labels=candidates.span_labels[used],
        heads=heads_a,
        tails=tails_a,
        contexts=contexts,
        context_tokens=tokens,
        context_roles=roles,
        distances=_distance_buckets(spans_a[heads_a], spans_a[tails_a]),
    )


def _expand_ranges(starts: numpy.ndarray, ends: numpy.ndarray) -> numpy.ndarray:
    """Concatenate ``range(start, end)`` for each pair, vectorized: (sum(ends - starts),)."""
    lengths = ends - starts
    total = int(lengths.sum())
    firsts = numpy.cumsum(lengths) - lengths
    return (numpy.arange(total) - numpy.repeat(firsts - starts, lengths)).astype("int32")


def _distance_buckets(heads: numpy.ndarray, tails: numpy.ndarray) -> numpy.ndarray:
    """Bucket of the signed token gap between head and tail: (n_pairs, 2) x 2 -> (n_pairs,).

    The gap is the number of tokens between the two spans (0 when adjacent or overlapping);
    buckets 0..9 are for a head before its tail, 10..19 for a head after its tail.
    """
    forward = heads[:, 0] <= tails[:, 0]
    gap = numpy.where(forward, tails[:, 0] - heads[:, 1], heads[:, 0] - tails[:, 1])
    bucket = numpy.searchsorted(_GAP_BINS, numpy.maximum(gap, 0), side="right")
    return numpy.where(forward, bucket, bucket + len(_GAP_BINS) + 1).astype("int32")
