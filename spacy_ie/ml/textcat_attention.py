"""`spacy_ie.TextCatAttention.v1`: text classification by multi-head attention pooling.

Data flow for a batch of Docs (all layers vectorized over the batch):

    docs ─ tok2vec (listener) ─ token vectors, List[(n_tokens_i, nI)]
         ─ [entity_aware] + hashed embedding of the label of the entity covering each token
         ─ list2ragged                                            -> Ragged (n_tokens, nI)
         ─ attention pooling, n_heads learned queries             -> (n_docs, n_heads * nI)
         ─ Maxout | Relu (LayerNorm, dropout)                     -> (n_docs, hidden_width)
         ─ Softmax (exclusive classes) | Linear >> Logistic       -> (n_docs, nO) probabilities

The pooling is `spacy_ie.AttentionPooling.v1`: with one head it is the word-level attention of
Yang et al. (2016) "Hierarchical Attention Networks for Document Classification", and spaCy's
`spacy.TextCatParametricAttention.v1` is that one-query case (plus a residual Maxout); several
learned queries are the "structured self-attentive sentence embedding" of Lin et al. (2017),
each head free to look at another part of the text (e.g. the wh-word and the head noun of a
question). With `entity_aware`, tokens inside ``doc.ents`` also carry an embedding of their
entity label, so a classifier downstream of `ner` can use the entity types it found.

The model follows the contract of spaCy's `textcat` / `textcat_multilabel` components: it
outputs probabilities (n_docs, nO), has ``attrs["multi_label"]``, an ``output_layer`` ref and
``attrs["resize_output"]`` (labels can be added after initialization, as for
`spacy.TextCatReduce.v1`), and an empty Doc gets a zero pooled vector instead of crashing.

Attention weights without hidden state: the model is the chain ``encoder >> pooling >>
classifier`` of three refs, so `predict_with_attention` runs the same three steps itself and
recomputes the (cheap) attention weights from the pooling layer's parameters and its input,
with `attention_weights`. Nothing is cached on the model between calls.
"""
from functools import partial
from typing import List, Optional, Tuple, cast

import numpy
from spacy.ml.models.textcat import NEG_VALUE
from spacy.tokens import Doc
from spacy.util import registry
from thinc.api import (
    Gelu,
    HashEmbed,
    Linear,
    Logistic,
    Maxout,
    Model,
    Relu,
    Softmax,
    chain,
    list2ragged,
    resizable,
)
from thinc.layers.resizable import resize_linear_weighted, resize_model
from thinc.types import Floats2d, Ints1d, Ragged

from .attention_pooling import KEY_TRANSFORM_REF, build_attention_pooling, segment_softmax

ENCODER_REF = "encoder"  # List[Doc] -> Ragged (n_tokens, nI)
POOLING_REF = "attention_pooling"  # the AttentionPooling layer itself
POOLED_REF = "pooled"  # Ragged -> (n_docs, n_heads * nI), zero rows for empty Docs
CLASSIFIER_REF = "classifier"  # (n_docs, n_heads * nI) -> (n_docs, nO) probabilities
ACTIVATIONS = ("maxout", "relu")


@registry.architectures("spacy_ie.TextCatAttention.v1")
def build_textcat_attention(
    tok2vec: Model[List[Doc], List[Floats2d]],
    exclusive_classes: bool,
    n_heads: int = 4,
    hidden_width: int = 64,
    activation: str = "maxout",
    dropout: float = 0.1,
    key_transform: bool = True,
    entity_aware: bool = False,
    entity_rows: int = 64,
    nO: Optional[int] = None,
) -> Model[List[Doc], Floats2d]:
    """Build a text classifier that pools the token vectors with `n_heads` attention queries.

    tok2vec (Model[List[Doc], List[Floats2d]]): token vectors, usually a
        `spacy.Tok2VecListener.v1` of a shared tok2vec, or any tok2vec (e.g. HashEmbedCNN).
    exclusive_classes (bool): True: softmax outputs that sum to 1 (spaCy's `textcat`);
        False: independent logistic outputs (spaCy's `textcat_multilabel`).
    n_heads (int): number of learned attention queries; the pooled vector has
        ``n_heads * nI`` columns (nI: the tok2vec width).
    hidden_width (int): width of the hidden layer.
    activation (str): "maxout" (Maxout, 2 pieces) or "relu"; both with LayerNorm.
    dropout (float): dropout rate of the hidden layer.
    key_transform (bool): score tokens through a shared Gelu layer (keys ``gelu(W x)``, as in
        Lin et al. 2017 and spaCy's ParametricAttention.v2) instead of the vectors themselves.
    entity_aware (bool): add to each token inside an entity of ``doc.ents`` a hashed
        embedding (width nI) of the entity label.
    entity_rows (int): rows of the entity-label hash table (labels are few).
    nO (Optional[int]): number of labels; set by the component from its labels.
    RETURNS (Model[List[Doc], Floats2d]): probabilities (n_docs, nO).
    """
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {ACTIVATIONS}, got {activation!r}")
    encoder_input = with_entity_labels(tok2vec, rows=entity_rows) if entity_aware else tok2vec
    encoder = chain(encoder_input, list2ragged())
    pooling = build_attention_pooling(n_heads=n_heads, key_transform=Gelu() if key_transform else None)
    pooled = pool_nonempty(pooling)
    if activation == "maxout":
        hidden = Maxout(hidden_width, nP=2, dropout=dropout, normalize=True)
    else:
        hidden = Relu(hidden_width, dropout=dropout, normalize=True)
    if exclusive_classes:
        output_layer: Model[Floats2d, Floats2d] = Softmax(nO=nO)
        fill_defaults = {"W": 0, "b": NEG_VALUE}  # a new label starts improbable
    else:
        output_layer = Linear(nO=nO)
        fill_defaults = {"W": 0, "b": 0}
    resizable_layer = resizable(
        output_layer, resize_layer=partial(resize_linear_weighted, fill_defaults=fill_defaults)
    )
    if exclusive_classes:
        classifier = chain(hidden, resizable_layer)
    else:
        classifier = chain(hidden, resizable_layer, Logistic())
    model = chain(encoder, pooled, classifier)
    model.init = init
    model.set_ref("tok2vec", tok2vec)
    model.set_ref(ENCODER_REF, encoder)
    model.set_ref(POOLING_REF, pooling)
    model.set_ref(POOLED_REF, pooled)
    model.set_ref(CLASSIFIER_REF, classifier)
    model.set_ref("hidden_layer", hidden)
    model.set_ref("output_layer", output_layer)
    if entity_aware:
        model.set_ref("entity_embed", encoder_input.get_ref("entity_embed"))
    if nO is not None:
        model.set_dim("nO", nO)
    model.attrs["multi_label"] = not exclusive_classes
    model.attrs["resize_output"] = partial(_resize_output, resizable_layer=resizable_layer)
    return model


def init(
    model: Model[List[Doc], Floats2d], X: Optional[List[Doc]] = None, Y: Optional[Floats2d] = None
) -> None:
    """Initialize tok2vec first (it may be lazily sized), then size every layer from its width
    and initialize the rest; nO comes from the model, the output layer or the sample Y."""
    # The encoder's first layer: tok2vec, or with_entity_labels(tok2vec).
    model.get_ref(ENCODER_REF).layers[0].initialize(X)
    nI = _tok2vec_width(model.get_ref("tok2vec"), X)
    pooling = model.get_ref(POOLING_REF)
    pooling.set_dim("nI", nI, force=True)
    pooling.initialize()
    n_pooled = pooling.get_dim("nO")
    model.get_ref(POOLED_REF).set_dim("nI", nI, force=True)
    model.get_ref(POOLED_REF).set_dim("nO", n_pooled, force=True)
    model.get_ref("hidden_layer").set_dim("nI", n_pooled, force=True)
    output_layer = model.get_ref("output_layer")
    if model.has_dim("nO"):
        output_layer.set_dim("nO", model.get_dim("nO"), force=True)
    elif output_layer.has_dim("nO") is None and Y is not None:
        output_layer.set_dim("nO", Y.shape[1])
    if output_layer.has_dim("nO") is not True:
        raise ValueError("TextCatAttention: the number of labels (nO) is unknown; add labels first")
    model.get_ref(CLASSIFIER_REF).initialize(X=model.ops.alloc2f(2, n_pooled))
    model.set_dim("nO", output_layer.get_dim("nO"), force=True)


def _tok2vec_width(tok2vec: Model, X: Optional[List[Doc]]) -> int:
    if tok2vec.has_dim("nO"):
        return tok2vec.get_dim("nO")
    if tok2vec.has_ref("listener") and tok2vec.get_ref("listener").has_dim("nO"):
        return tok2vec.get_ref("listener").get_dim("nO")
    if X:
        return tok2vec.predict(list(X)[:1])[0].shape[1]
    raise ValueError("TextCatAttention: cannot infer the token vector width; pass sample docs")


def _resize_output(model: Model, new_nO: int, resizable_layer: Model) -> Model:
    """`attrs["resize_output"]` for the textcat components' `add_label`: resize the output layer
    in place (trained rows kept, new rows zero weights), as spaCy's TextCatReduce.v1 does."""
    resize_model(resizable_layer, new_nO)
    model.set_ref("output_layer", resizable_layer.layers[0])
    for node in (resizable_layer, model.get_ref(CLASSIFIER_REF), model):
        node.set_dim("nO", new_nO, force=True)
    return model


def with_entity_labels(
    tok2vec: Model[List[Doc], List[Floats2d]], rows: int = 64, seed: int = 23
) -> Model[List[Doc], List[Floats2d]]:
    """Add an embedding of the entity label to the vector of every token in ``doc.ents``.

    Each label string (its StringStore hash, the same in every vocab) is hashed into a table
    of `rows` rows (thinc's HashEmbed, as relation_model.py embeds entity labels); its width is
    the tok2vec width, set at initialization. Tokens outside entities are unchanged.
    RETURNS (Model[List[Doc], List[Floats2d]]): one (n_tokens_i, nI) array per Doc; the
        backward pass returns what tok2vec's does.
    """
    embed = HashEmbed(None, rows, seed=seed)  # type: ignore[arg-type]  # nO set at init
    return Model(
        "with_entity_labels",
        _entity_labels_forward,
        init=_entity_labels_init,
        layers=[tok2vec, embed],
        refs={"tok2vec": tok2vec, "entity_embed": embed},
        dims={"nO": None},
    )


def _entity_labels_init(model: Model, X: Optional[List[Doc]] = None, Y=None) -> None:
    tok2vec = model.get_ref("tok2vec")
    tok2vec.initialize(X)
    nI = _tok2vec_width(tok2vec, X)
    model.set_dim("nO", nI, force=True)
    embed = model.get_ref("entity_embed")
    embed.set_dim("nO", nI, force=True)
    embed.initialize()


def _entity_labels_forward(model: Model, docs: List[Doc], is_train: bool):
    ops = model.ops
    tokvecs, bp_tokvecs = model.get_ref("tok2vec")(docs, is_train)
    rows, labels = entity_token_labels(docs)
    if not len(rows):
        return tokvecs, bp_tokvecs
    E, bp_embed = model.get_ref("entity_embed")(ops.asarray(labels, dtype="uint64"), is_train)
    lengths = ops.asarray1i([len(doc) for doc in docs])
    rows_ = ops.asarray1i(rows)
    X = ops.flatten(tokvecs)  # a new array: tok2vec's outputs are not modified
    X[rows_] += E  # entities do not overlap: each row at most once

    def backprop(d_outputs: List[Floats2d]):
        bp_embed(ops.flatten(d_outputs)[rows_])
        return bp_tokvecs(d_outputs)

    return list(ops.unflatten(X, lengths)), backprop


def entity_token_labels(docs: List[Doc]) -> Tuple[numpy.ndarray, numpy.ndarray]:
    """The tokens inside ``doc.ents`` of a batch: their rows in the flattened batch (int32) and
    the label hash of their entity (uint64), both (n_entity_tokens,)."""
    rows: List[numpy.ndarray] = []
    labels: List[numpy.ndarray] = []
    offset = 0
    for doc in docs:
        for ent in doc.ents:
            rows.append(numpy.arange(offset + ent.start, offset + ent.end, dtype="int32"))
            labels.append(numpy.full(len(ent), ent.label, dtype="uint64"))
        offset += len(doc)
    if not rows:
        return numpy.zeros((0,), dtype="int32"), numpy.zeros((0,), dtype="uint64")
    return numpy.concatenate(rows), numpy.concatenate(labels)


def pool_nonempty(pooling: Model[Ragged, Floats2d]) -> Model[Ragged, Floats2d]:
    """Apply `pooling` to the non-empty sequences of a Ragged batch; empty ones get zeros.

    AttentionPooling needs every length > 0 (a softmax over no tokens is undefined); a Doc
    without tokens in a batch gets a zero vector here, so the classifier gives it its prior.
    """
    return Model(
        f"nonempty({pooling.name})",
        _pool_nonempty_forward,
        init=_pool_nonempty_init,
        layers=[pooling],
        dims={"nI": pooling.maybe_get_dim("nI"), "nO": pooling.maybe_get_dim("nO")},
    )


def _pool_nonempty_init(model: Model, X: Optional[Ragged] = None, Y=None) -> None:
    pooling = model.layers[0]
    if X is not None and (X.lengths > 0).any():
        pooling.initialize(X=_nonempty(X)[0])
    else:
        pooling.initialize()
    model.set_dim("nI", pooling.get_dim("nI"), force=True)
    model.set_dim("nO", pooling.get_dim("nO"), force=True)


def _nonempty(Xr: Ragged) -> Tuple[Ragged, numpy.ndarray]:
    """The sub-batch of non-empty sequences (same data rows) and their mask (n_seqs,)."""
    lengths = Xr.lengths
    mask = lengths > 0
    return Ragged(Xr.dataXd, lengths[mask]), mask


def _pool_nonempty_forward(model: Model, Xr: Ragged, is_train: bool):
    pooling = model.layers[0]
    lengths = Xr.lengths
    if (lengths > 0).all():
        return pooling(Xr, is_train)
    ops = model.ops
    sub, mask = _nonempty(Xr)
    Y = ops.alloc2f(len(lengths), model.get_dim("nO"))
    if not len(sub.lengths):

        def backprop_empty(dY: Floats2d) -> Ragged:
            return Ragged(ops.alloc2f(*Xr.dataXd.shape), lengths)

        return Y, backprop_empty
    Y_sub, bp_pooling = pooling(sub, is_train)
    Y[mask] = Y_sub

    def backprop(dY: Floats2d) -> Ragged:
        return Ragged(bp_pooling(ops.xp.ascontiguousarray(dY[mask])).dataXd, lengths)

    return Y, backprop


def attention_weights(pooling: Model[Ragged, Floats2d], Xr: Ragged) -> Floats2d:
    """The attention weights an AttentionPooling layer gives the tokens of `Xr`: (n_tokens,
    n_heads); within each sequence every column sums to 1. Computed from the layer's current
    parameters and its input, the same way its forward pass does (no state is kept). Empty
    sequences have no rows, so they are simply skipped."""
    ops = pooling.ops
    X = cast(Floats2d, Xr.dataXd)
    sub, _ = _nonempty(Xr)
    if not len(X):
        return ops.alloc2f(0, pooling.attrs["n_heads"])
    K = pooling.get_ref(KEY_TRANSFORM_REF).predict(X)
    return segment_softmax(ops, ops.gemm(K, pooling.get_param("Q")), sub.lengths)


def predict_with_attention(
    model: Model[List[Doc], Floats2d], docs: List[Doc]
) -> Tuple[Floats2d, List[Floats2d]]:
    """Predict like ``model.predict(docs)`` and also return each Doc's attention weights.

    `model` must be a `spacy_ie.TextCatAttention.v1` model: the chain of its refs "encoder",
    "pooled" and "classifier", which this runs one after the other, so the encoder runs once.
    RETURNS (Tuple[Floats2d, List[Floats2d]]): the probabilities (n_docs, nO) and, per Doc,
        its attention weights (n_heads, n_tokens) (each row sums to 1 when n_tokens > 0).
    """
    for ref in (ENCODER_REF, POOLING_REF, POOLED_REF, CLASSIFIER_REF):
        if not model.has_ref(ref):
            raise ValueError(
                f"The model has no {ref!r} ref: attention weights need a "
                "spacy_ie.TextCatAttention.v1 model"
            )
    ops = model.ops
    Xr = model.get_ref(ENCODER_REF).predict(docs)
    scores = model.get_ref(CLASSIFIER_REF).predict(model.get_ref(POOLED_REF).predict(Xr))
    A = attention_weights(model.get_ref(POOLING_REF), Xr)
    lengths = cast(Ints1d, ops.asarray1i([len(doc) for doc in docs]))
    per_doc = ops.unflatten(A, lengths) if len(docs) else []
    return scores, [ops.xp.ascontiguousarray(a.T) for a in per_doc]
