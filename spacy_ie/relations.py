"""The relation data model: the `Relation` record and the `doc._.relations` extension.

Relations are stored on the Doc as plain types only (character offsets, labels, a float
score), in ``doc.user_data`` under the key spaCy uses for Doc extensions, ``("._.",
"relations", None, None)``. Character offsets, as spaCy uses for span extension data, stay
valid when the Doc is retokenized (e.g. by ``merge_entities`` after the relation extractor);
token offsets would silently point at the wrong tokens. Two extensions read that one entry:

- ``doc._.relations``: a tuple of :class:`Relation` records whose ``head`` and ``tail`` are
  :class:`spacy.tokens.Span` objects built on access (getter) and that can be assigned (setter);
- ``doc._.relations_data``: the same relations as JSON/msgpack-safe dicts, for
  ``doc.to_json(underscore=["relations_data"])`` and ``Doc.from_json``.

Because only plain types are stored, relations survive ``DocBin(store_user_data=True)``,
``pickle``, ``nlp.pipe(n_process=...)`` (which ships docs with ``Doc.to_bytes``),
``Doc.to_json``/``Doc.from_json`` and ``Doc.copy()``. Storing Span objects instead breaks
each of these (spaCy issues #4849, #9190, #9999).
"""
import warnings
from typing import Any, Dict, Iterable, List, NamedTuple, Optional, Tuple, Union

from spacy.tokens import Doc, Span

from ._srsly import cache_msgpack_hooks

RELATIONS_ATTR = "relations"
RELATIONS_DATA_ATTR = "relations_data"
# The user_data key spaCy itself uses for a Doc-level extension value: Doc.from_docs and
# Doc.to_json recognise it as extension data.
USER_DATA_KEY = ("._.", RELATIONS_ATTR, None, None)


class Relation(NamedTuple):
    """One directed relation between two spans of a Doc.

    head (Span): the first argument (e.g. the person in ``Work_For``).
    tail (Span): the second argument (e.g. the organisation in ``Work_For``). Head and tail are
        ordered: ``Work_For(a, b)`` and ``Work_For(b, a)`` are distinct relations.
    label (str): the relation label.
    score (float): the model's probability for ``label`` in [0, 1]; 1.0 for gold annotations.
    context (Optional[Span]): the tokens the model attended over for this pair (its sentence or
        window), when the component keeps explanations; else None.
    attention (Optional[Tuple[float, ...]]): one attention weight per token of ``context``
        (they sum to 1), when kept; else None.
    """

    head: Span
    tail: Span
    label: str
    score: float = 1.0
    context: Optional[Span] = None
    attention: Optional[Tuple[float, ...]] = None

    def to_dict(self) -> Dict[str, Any]:
        """The plain-type form stored on the Doc: ``{"head": [start_char, end_char, label],
        "tail": [...], "label": str, "score": float}``, plus ``"context": [start_char,
        end_char]`` and ``"attention": [float, ...]`` when kept."""
        record: Dict[str, Any] = {
            "head": [self.head.start_char, self.head.end_char, self.head.label_],
            "tail": [self.tail.start_char, self.tail.end_char, self.tail.label_],
            "label": str(self.label),
            "score": float(self.score),
        }
        if self.context is not None:
            record["context"] = [self.context.start_char, self.context.end_char]
            record["attention"] = [float(w) for w in self.attention or ()]
        return record

    @classmethod
    def from_dict(cls, doc: Doc, record: Dict[str, Any], strict: bool = True) -> "Relation":
        """Build a Relation on `doc` from its plain-type form (see `to_dict`).

        strict (bool): raise if the attention weights do not match the context's tokens; when
            False, such weights (left over after the Doc was retokenized) are dropped.
        RAISES (ValueError): if the record is malformed, its offsets fall outside the Doc, or
            (strict) the attention weights do not match the context's tokens.
        """
        try:
            head = _make_span(doc, *record["head"])
            tail = _make_span(doc, *record["tail"])
            label = str(record["label"])
            score = float(record.get("score", 1.0))
            context = attention = None
            if record.get("context") is not None:
                context = _make_span(doc, *record["context"])
                attention = tuple(float(w) for w in record.get("attention", ()))
                if len(attention) != len(context) and not strict:
                    attention = None
                elif len(attention) != len(context):
                    raise ValueError(
                        f"{len(attention)} attention weights for a context of {len(context)} tokens"
                    )
        except (KeyError, TypeError) as err:
            raise ValueError(f"Malformed relation record {record!r}: {err!r}") from err
        return cls(head, tail, label, score, context, attention)


def doc_length_chars(doc: Doc) -> int:
    """``len(doc.text)`` in O(1): the end of the last token plus its trailing whitespace.

    ``Doc.text`` joins every token's text each time it is read (O(tokens)), so calling it per
    relation made storing and reading relations cost relations x tokens (issue #15, F2).
    """
    if len(doc) == 0:
        return 0
    last = doc[-1]
    return last.idx + len(last.text) + len(last.whitespace_)


def _make_span(doc: Doc, start_char: Any, end_char: Any, label: Any = "") -> Span:
    """The Span of `doc` covering characters [start_char, end_char), expanded to whole tokens,
    with `label`. O(log tokens): ``Doc.char_span`` is a binary search over token offsets.

    RAISES (ValueError): if the range is empty or falls outside the Doc's tokens.
    """
    start, end = int(start_char), int(end_char)
    n_chars = doc_length_chars(doc)
    span = None
    if 0 <= start < end <= n_chars:
        span = doc.char_span(start, end, label=str(label), alignment_mode="expand")
    if span is None or len(span) == 0:
        raise ValueError(
            f"Relation argument characters [{start}, {end}) do not fall on tokens of the Doc "
            f"({n_chars} characters): {doc[:12].text!r}"
        )
    return span


RelationLike = Union[Relation, Dict[str, Any]]


def _to_records(doc: Doc, value: Optional[Iterable[RelationLike]]) -> List[Dict[str, Any]]:
    """Validate relations for `doc` and normalize them to plain-type records."""
    records = []
    # Whether each other Doc the spans belong to has `doc`'s text: compared once per Doc, not
    # per span (Doc.text is rebuilt on every read, O(tokens)).
    same_text: Dict[int, bool] = {}

    def of_this_doc(span: Span) -> bool:
        if span.doc is doc:
            return True
        key = id(span.doc)
        if key not in same_text:
            same_text[key] = span.doc.text == doc.text
        return same_text[key]

    for item in value or ():
        if isinstance(item, Relation):
            spans = [item.head, item.tail] + ([item.context] if item.context is not None else [])
            if not all(of_this_doc(span) for span in spans):
                raise ValueError(
                    "The head, tail and context of a relation must be spans of this Doc (or "
                    f"of a Doc with the same text): {item.head.text!r} -> {item.tail.text!r}"
                )
            records.append(Relation.from_dict(doc, item.to_dict()).to_dict())
        elif isinstance(item, dict):
            records.append(Relation.from_dict(doc, item).to_dict())
        else:
            raise TypeError(
                "doc._.relations takes Relation records (or their dict form), "
                f"got {type(item).__name__}: {item!r}"
            )
    return records


def get_relations(doc: Doc) -> Tuple[Relation, ...]:
    """Getter of ``doc._.relations``: the Doc's relations as `Relation` records.

    The tuple is a fresh view: assign ``doc._.relations = [...]`` to change the relations.
    """
    records = doc.user_data.get(USER_DATA_KEY, ())
    return tuple(Relation.from_dict(doc, r, strict=False) for r in records)


def set_relations(doc: Doc, value: Optional[Iterable[RelationLike]]) -> None:
    """Setter of ``doc._.relations``: accepts `Relation` records or their dict form.

    RAISES (TypeError): for items that are neither. (ValueError): for spans of another Doc,
    offsets off the Doc's tokens or malformed records. Nothing is stored if anything is wrong.
    """
    doc.user_data[USER_DATA_KEY] = _to_records(doc, value)


def set_relation_records(doc: Doc, records: List[Dict[str, Any]]) -> None:
    """Store `records` as ``doc._.relations``, replacing what the Doc had, as they are: no
    validation and no copy, O(1). For code that builds them itself from spans of `doc`, in the
    form `Relation.to_dict` writes (the relation_extractor's `write_relations`), where the
    setter's per-relation round trip (a Span built for each argument, then its dict) would
    only give the same records back. Anything else goes through ``doc._.relations = ...``.
    """
    doc.user_data[USER_DATA_KEY] = records


def relation_count(doc: Doc) -> int:
    """The number of relations stored on `doc`, without building their Spans (O(1))."""
    return len(doc.user_data.get(USER_DATA_KEY, ()))


def get_relations_data(doc: Doc) -> List[Dict[str, Any]]:
    """Getter of ``doc._.relations_data``: a copy of the stored plain-type records
    (JSON-serializable; see `Relation.to_dict`)."""
    return [_plain(record) for record in doc.user_data.get(USER_DATA_KEY, ())]


def _plain(value: Any) -> Any:
    """A deep copy with lists for tuples (msgpack gives tuples back after a DocBin trip)."""
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    return value


def register_extensions() -> None:
    """Register ``Doc._.relations`` and ``Doc._.relations_data``; safe to call any number of times.

    Called at import time and again by the relation_extractor component, so the attributes
    exist in every process that loads a pipeline (including ``n_process`` workers started with
    spawn). An attribute of the same name registered by other code is replaced, with a warning.
    """
    for name, getter, setter in (
        (RELATIONS_ATTR, get_relations, set_relations),
        (RELATIONS_DATA_ATTR, get_relations_data, set_relations),
    ):
        if Doc.has_extension(name):
            _, _, current_getter, _ = Doc.get_extension(name)
            if current_getter is getter:
                continue
            warnings.warn(
                f"Doc._.{name} was registered by other code; spacy_ie replaces it.",
                stacklevel=2,
            )
        Doc.set_extension(name, getter=getter, setter=setter, force=True)


register_extensions()
# Relations live in doc.user_data, which costs Doc.to_bytes/from_bytes two more msgpack calls per
# Doc (nlp.pipe(n_process=...), DocBin): keep those calls cheap (see spacy_ie/_srsly.py).
cache_msgpack_hooks()
