"""The relation data model: the `Relation` record and the `doc._.relations` extension.

Relations are stored on the Doc as plain types only (token offsets, labels, a float score),
in ``doc.user_data`` under the key spaCy uses for Doc extensions, ``("._.", "relations",
None, None)``. Two extensions read that one entry:

- ``doc._.relations``: a tuple of :class:`Relation` records whose ``head`` and ``tail`` are
  :class:`spacy.tokens.Span` objects built on access (getter) and that can be assigned (setter);
- ``doc._.relations_data``: the same relations as JSON/msgpack-safe dicts, for
  ``doc.to_json(underscore=["relations_data"])`` and ``Doc.from_json``.

Because only plain types are stored, relations survive ``DocBin(store_user_data=True)``,
``pickle``, ``nlp.pipe(n_process=...)`` (which ships docs with ``Doc.to_bytes``),
``Doc.to_json``/``Doc.from_json`` and ``Doc.copy()``. Storing Span objects instead breaks
each of these (spaCy issues #4849, #9190, #9999).
"""
from typing import Any, Dict, Iterable, List, NamedTuple, Optional, Sequence, Tuple, Union

from spacy.tokens import Doc, Span

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
        """The plain-type form stored on the Doc: token offsets, labels, score (and attention)."""
        record: Dict[str, Any] = {
            "head": [self.head.start, self.head.end, self.head.label_],
            "tail": [self.tail.start, self.tail.end, self.tail.label_],
            "label": self.label,
            "score": float(self.score),
        }
        if self.context is not None and self.attention is not None:
            record["context"] = [self.context.start, self.context.end]
            record["attention"] = [float(w) for w in self.attention]
        return record

    @classmethod
    def from_dict(cls, doc: Doc, record: Dict[str, Any]) -> "Relation":
        """Build a Relation on `doc` from its plain-type form (see `to_dict`).

        RAISES (ValueError): if the record is malformed or its offsets fall outside the Doc.
        """
        try:
            head = _make_span(doc, record["head"])
            tail = _make_span(doc, record["tail"])
            label = str(record["label"])
            score = float(record.get("score", 1.0))
        except (KeyError, TypeError, IndexError) as err:
            raise ValueError(f"Malformed relation record {record!r}: {err!r}") from err
        context = attention = None
        if record.get("context") is not None:
            start, end = record["context"]
            context = doc[int(start) : int(end)]
            attention = tuple(float(w) for w in record.get("attention", ()))
        return cls(head, tail, label, score, context, attention)


def _make_span(doc: Doc, offsets: Sequence[Any]) -> Span:
    start, end, label = int(offsets[0]), int(offsets[1]), str(offsets[2])
    if not 0 <= start < end <= len(doc):
        raise ValueError(
            f"Relation argument tokens [{start}, {end}) fall outside the Doc "
            f"({len(doc)} tokens): {doc.text[:60]!r}"
        )
    return Span(doc, start, end, label=label)


RelationLike = Union[Relation, Dict[str, Any]]


def _to_records(value: Optional[Iterable[RelationLike]]) -> List[Dict[str, Any]]:
    records = []
    for item in value or ():
        if isinstance(item, Relation):
            records.append(item.to_dict())
        elif isinstance(item, dict):
            records.append(dict(item))
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
    return tuple(Relation.from_dict(doc, r) for r in doc.user_data.get(USER_DATA_KEY, ()))


def set_relations(doc: Doc, value: Optional[Iterable[RelationLike]]) -> None:
    """Setter of ``doc._.relations``: accepts `Relation` records or their dict form.

    RAISES (TypeError): for items that are neither. (ValueError): for out-of-range offsets.
    """
    records = _to_records(value)
    for record in records:  # validate before storing anything
        Relation.from_dict(doc, record)
    doc.user_data[USER_DATA_KEY] = records


def get_relations_data(doc: Doc) -> List[Dict[str, Any]]:
    """Getter of ``doc._.relations_data``: the stored plain-type records (JSON-serializable)."""
    return [dict(r) for r in doc.user_data.get(USER_DATA_KEY, ())]


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
            import warnings

            warnings.warn(
                f"Doc._.{name} was registered by other code; spacy_ie replaces it.",
                stacklevel=2,
            )
        Doc.set_extension(name, getter=getter, setter=setter, force=True)


register_extensions()
