"""The `textcat_attention` pipeline component: spaCy's text categorizer plus attention weights.

It is spaCy's `textcat` (``exclusive_classes = true``) or `textcat_multilabel`
(``exclusive_classes = false``): the same labels in cfg, loss, `initialize`, scorer and
`doc.cats`, subclassed only to run a `spacy_ie.TextCatAttention.v1` model so that it also
writes each Doc's attention weights to ``doc._.textcat_attention``: a float32 array of shape
(n_heads, n_tokens), row h the weights head h gives the Doc's tokens (each row sums to 1; an
empty Doc has shape (n_heads, 0)). The model itself can also be used in spaCy's own `textcat`
and `textcat_multilabel` components; only this one stores the weights.

The weights are stored as plain lists of floats in ``doc.user_data`` (like ``doc._.relations``,
see spacy_ie/relations.py), so they survive ``DocBin(store_user_data=True)``, pickling and
``nlp.pipe(n_process=...)``. They describe the Doc's tokens at prediction time: after a
retokenization changes the number of tokens the getter returns None.
"""
from typing import Any, Callable, Iterable, List, NamedTuple, Optional, Union

import numpy
from spacy.language import Language
from spacy.pipeline.textcat import TextCategorizer, textcat_score
from spacy.pipeline.textcat_multilabel import MultiLabel_TextCategorizer, textcat_multilabel_score
from spacy.tokens import Doc
from spacy.vocab import Vocab
from thinc.api import Config, Model
from thinc.types import Floats2d

from ..ml import DEFAULT_TOK2VEC_CONFIG
from ..ml.textcat_attention import POOLING_REF, predict_with_attention

ATTENTION_ATTR = "textcat_attention"
USER_DATA_KEY = ("._.", ATTENTION_ATTR, None, None)

DEFAULT_MODEL_CONFIG = """
[model]
@architectures = "spacy_ie.TextCatAttention.v1"
exclusive_classes = true
n_heads = 4
hidden_width = 64
activation = "maxout"
dropout = 0.1
key_transform = true
entity_aware = false
entity_rows = 64
nO = null
"""
DEFAULT_MODEL = Config().from_str(DEFAULT_MODEL_CONFIG + DEFAULT_TOK2VEC_CONFIG)["model"]


def get_attention(doc: Doc) -> Optional[numpy.ndarray]:
    """Getter of ``doc._.textcat_attention``: (n_heads, n_tokens) float32, or None when unset
    or when the Doc no longer has the tokens the weights were computed for."""
    rows = doc.user_data.get(USER_DATA_KEY)
    if rows is None:
        return None
    weights = numpy.asarray(rows, dtype="float32").reshape(len(rows), -1)
    return weights if weights.shape[1] == len(doc) else None


def set_attention(doc: Doc, value: Optional[Any]) -> None:
    """Setter of ``doc._.textcat_attention``: an array-like (n_heads, n_tokens) or None.

    RAISES (ValueError): if the value is not 2-dimensional with one column per token.
    """
    if value is None:
        doc.user_data.pop(USER_DATA_KEY, None)
        return
    weights = numpy.asarray(value, dtype="float32")
    if weights.ndim != 2 or weights.shape[1] != len(doc):
        raise ValueError(
            f"doc._.{ATTENTION_ATTR} takes an (n_heads, n_tokens={len(doc)}) array, "
            f"got shape {weights.shape}"
        )
    doc.user_data[USER_DATA_KEY] = weights.tolist()


def register_extension() -> None:
    """Register ``Doc._.textcat_attention``; safe to call any number of times."""
    if Doc.has_extension(ATTENTION_ATTR) and Doc.get_extension(ATTENTION_ATTR)[2] is get_attention:
        return
    Doc.set_extension(ATTENTION_ATTR, getter=get_attention, setter=set_attention, force=True)


register_extension()


@Language.factory(
    "textcat_attention",
    assigns=["doc.cats", f"doc._.{ATTENTION_ATTR}"],
    default_config={
        "model": DEFAULT_MODEL,
        "exclusive_classes": True,
        "threshold": None,
        "store_attention": True,
        "scorer": None,
    },
    default_score_weights={
        "cats_score": 1.0,
        "cats_score_desc": None,
        "cats_micro_p": None,
        "cats_micro_r": None,
        "cats_micro_f": None,
        "cats_macro_p": None,
        "cats_macro_r": None,
        "cats_macro_f": None,
        "cats_macro_auc": None,
        "cats_f_per_type": None,
    },
)
def make_textcat_attention(
    nlp: Language,
    name: str,
    model: Model[List[Doc], Floats2d],
    exclusive_classes: bool,
    threshold: Optional[float],
    store_attention: bool,
    scorer: Optional[Callable],
) -> Union["TextCatAttention", "MultiLabelTextCatAttention"]:
    """Create the component.

    model (Model): a `spacy_ie.TextCatAttention.v1` model whose `exclusive_classes` matches.
    exclusive_classes (bool): True: one label per Doc (spaCy's `textcat`: softmax, labels must
        be one-hot, scores `cats_macro_auc` etc.); False: any number of labels
        (`textcat_multilabel`: missing labels allowed).
    threshold (Optional[float]): cutoff for a positive label when scoring; None: 0.0 for
        exclusive classes (the best label wins), 0.5 for multi-label.
    store_attention (bool): write ``doc._.textcat_attention``.
    scorer (Optional[Callable]): None: spaCy's textcat (multi-label) cats scorer.
    """
    cls = TextCatAttention if exclusive_classes else MultiLabelTextCatAttention
    if threshold is None:
        threshold = 0.0 if exclusive_classes else 0.5
    return cls(
        nlp.vocab, model, name, threshold=threshold, store_attention=store_attention, scorer=scorer
    )


class AttentionScores(NamedTuple):
    """What `predict` returns: probabilities (n_docs, n_labels) and, per Doc, its attention
    weights (n_heads, n_tokens), or None when the component does not store them."""

    scores: Floats2d
    attention: Optional[List[Floats2d]]


class _AttentionWeights:
    """predict / set_annotations shared by both classes; everything else is spaCy's."""

    model: Model
    cfg: dict

    def _setup(self, exclusive_classes: bool, store_attention: bool) -> None:
        register_extension()
        if self.model.attrs.get("multi_label") == exclusive_classes:
            raise ValueError(
                f"[{self.name}] exclusive_classes = {exclusive_classes} but the model has "  # type: ignore[attr-defined]
                f"exclusive_classes = {not exclusive_classes}: set both the same"
            )
        if store_attention and not self.model.has_ref(POOLING_REF):
            raise ValueError(
                f"[{self.name}] store_attention needs a spacy_ie.TextCatAttention.v1 "  # type: ignore[attr-defined]
                "model; use spaCy's textcat for other architectures"
            )
        self.cfg["exclusive_classes"] = exclusive_classes
        self.cfg["store_attention"] = store_attention

    def predict(self, docs: Iterable[Doc]) -> AttentionScores:
        """Probabilities and (when stored) attention weights for `docs`; modifies nothing."""
        docs = list(docs)
        ops = self.model.ops
        store = self.cfg["store_attention"]
        if not any(len(doc) for doc in docs):
            # As spaCy's textcat: no tokens anywhere, no model call.
            scores = ops.alloc2f(len(docs), len(self.labels))  # type: ignore[attr-defined]
            n_heads = self.model.get_ref(POOLING_REF).attrs["n_heads"] if store else 0
            return AttentionScores(scores, [ops.alloc2f(n_heads, 0) for _ in docs] if store else None)
        if not store:
            return AttentionScores(self.model.predict(docs), None)
        scores, attention = predict_with_attention(self.model, docs)
        return AttentionScores(scores, attention)

    def set_annotations(self, docs: Iterable[Doc], scores: Union[AttentionScores, Floats2d]) -> None:
        """Write `doc.cats` (as spaCy's textcat) and ``doc._.textcat_attention``. Also accepts
        plain probabilities (n_docs, n_labels), as spaCy's textcat's predict returns."""
        docs = list(docs)
        attention = None
        if isinstance(scores, AttentionScores):
            scores, attention = scores
        super().set_annotations(docs, scores)  # type: ignore[misc]
        if attention is not None:
            for doc, weights in zip(docs, attention):
                doc._.set(ATTENTION_ATTR, self.model.ops.to_numpy(weights))


class TextCatAttention(_AttentionWeights, TextCategorizer):
    """`textcat_attention` with exclusive classes: spaCy's TextCategorizer + attention weights."""

    def __init__(
        self,
        vocab: Vocab,
        model: Model,
        name: str = "textcat_attention",
        *,
        threshold: float = 0.0,
        store_attention: bool = True,
        scorer: Optional[Callable] = None,
    ) -> None:
        super().__init__(vocab, model, name, threshold=threshold, scorer=scorer or textcat_score)
        self._setup(True, store_attention)


class MultiLabelTextCatAttention(_AttentionWeights, MultiLabel_TextCategorizer):
    """`textcat_attention` with multi-label classes: spaCy's MultiLabel_TextCategorizer +
    attention weights."""

    def __init__(
        self,
        vocab: Vocab,
        model: Model,
        name: str = "textcat_attention",
        *,
        threshold: float = 0.5,
        store_attention: bool = True,
        scorer: Optional[Callable] = None,
    ) -> None:
        super().__init__(
            vocab, model, name, threshold=threshold, scorer=scorer or textcat_multilabel_score
        )
        self._setup(False, store_attention)
