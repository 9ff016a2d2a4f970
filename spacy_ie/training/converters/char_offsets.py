"""Shared part of the converters for annotation tools that store entities as character offsets
into a raw text and relations as pairs of entity ids (Label Studio, doccano).

:func:`char_entity` checks one entity's offsets against the text (and the entity's own copy
of its text, where the tool stores one), :func:`char_annotations_to_doc` tokenizes the text so
that every entity boundary is a token boundary (:func:`.util.doc_from_text`) and sets the
entities and relations with :func:`.util.annotate_doc`.
"""
from pathlib import Path
from typing import Any, Dict, Hashable, List, Optional, Sequence, Tuple

from spacy.language import Language
from spacy.tokens import Doc

from .util import (
    CharEntity,
    ConversionSummary,
    TokenRelation,
    annotate_doc,
    check,
    doc_from_text,
    is_int,
    trim_entity,
)


def utf16_to_index(text: str, offset: int) -> Optional[int]:
    """The Python (code point) index of UTF-16 code unit `offset` of `text`, or None if it
    falls inside a surrogate pair or beyond the text.

    Browser-based tools count offsets in JavaScript string indices (UTF-16 code units), so
    every character outside the Basic Multilingual Plane (most emoji) counts twice there.
    """
    units = 0
    for index, char in enumerate(text):
        if units == offset:
            return index
        units += 2 if ord(char) > 0xFFFF else 1
        if units > offset:
            return None
    return len(text) if units == offset else None


def char_entity(
    text: str,
    start: Any,
    end: Any,
    label: str,
    given_text: Optional[str],
    summary: ConversionSummary,
    path: Path,
    loc: str,
    what: str,
) -> Optional[CharEntity]:
    """Check an entity's character offsets `start`, `end` (end exclusive) into `text`.

    given_text: the entity's text as the tool stored it, if it does (Label Studio), to check
        the offsets against. If ``text[start:end]`` differs but the offsets read as UTF-16
        code units (JavaScript string indices) give `given_text`, those are used (counted in
        ``summary.changed``).
    Leading and trailing whitespace is trimmed off the entity (counted in ``summary.changed``);
    an entity of whitespace only is skipped (counted in ``summary.skipped``; returns None).
    what: how the message names the entity, e.g. ``"entity 3 'Peop'"``.
    RETURNS: (start, end, label) as code point offsets, or None for a skipped entity.
    RAISES (ConversionError): for offsets that are not integers, are out of range, or do
        not match `given_text`.
    """
    check(
        is_int(start) and is_int(end),
        path,
        loc,
        f"{what}: start and end must be integer character offsets, got {start!r:.40} and "
        f"{end!r:.40}",
    )
    check(
        0 <= start < end <= len(text),
        path,
        loc,
        f"{what}: characters [{start}, {end}) are out of range for a text of {len(text)} "
        "characters",
    )
    if given_text is not None and text[start:end] != given_text:
        start16, end16 = utf16_to_index(text, start), utf16_to_index(text, end)
        if start16 is not None and end16 is not None and text[start16:end16] == given_text:
            summary.changed[
                "entity offsets read as UTF-16 code units (JavaScript string indices)"
            ] += 1
            start, end = start16, end16
        else:
            check(
                False,
                path,
                loc,
                f"{what}: its text {given_text!r:.60} does not match the text at "
                f"[{start}, {end}), {text[start:end]!r:.60}",
            )
    trimmed = trim_entity(text, start, end)
    if trimmed[0] == trimmed[1]:
        summary.skipped["entities of whitespace only"] += 1
        return None
    if trimmed != (start, end):
        summary.changed["entity offsets trimmed of surrounding whitespace"] += 1
    return (trimmed[0], trimmed[1], label)


def char_annotations_to_doc(
    nlp: Language,
    text: str,
    entities: Dict[Hashable, Sequence[CharEntity]],
    relations: Sequence[Tuple[Hashable, Hashable, str]],
    summary: ConversionSummary,
    path: Path,
    loc: str,
) -> Doc:
    """A Doc of `text` with the entities and relations set (see :func:`.util.annotate_doc`).

    entities: entity id -> its entities as character offsets (a region with several labels
        is several entities; a relation uses the first).
    relations: (head id, tail id, label); every id must be a key of `entities` (the caller
        checks, to name the record).
    """
    flat: List[CharEntity] = [entity for group in entities.values() for entity in group]
    doc, token_entities = doc_from_text(nlp, text, flat, path, loc)
    to_tokens = dict(zip(flat, token_entities))
    token_relations: List[TokenRelation] = []
    for head, tail, label in relations:
        token_relations.append((to_tokens[entities[head][0]], to_tokens[entities[tail][0]], label))
    return annotate_doc(doc, token_entities, token_relations, summary)
