"""doccano JSONL export (sequence labeling, with relations) -> Docs.

Source: doccano's import/export formats for a "Sequence Labeling" project with "Allow
relation labeling" (https://doccano.github.io/doccano/tutorial/#import-dataset and
https://doccano.github.io/doccano/tutorial/#export-dataset), one JSON object per line:

    {"id": 12, "text": "Ada Lovelace worked with Charles Babbage.",
     "entities": [{"id": 1, "label": "Peop", "start_offset": 0, "end_offset": 12}, ...],
     "relations": [{"id": 3, "from_id": 1, "to_id": 2, "type": "Colleague"}, ...],
     "Comments": []}

Offsets are character offsets into ``text``, end exclusive; a relation goes from its head
(``from_id``) to its tail (``to_id``), ids being those of ``entities``. A project without
relations exports ``"label": [[start, end, "LABEL"], ...]`` instead of ``entities``: that is
read too (no relations). Entity offsets that include surrounding whitespace are trimmed
(counted). Other fields (``id``, ``Comments``, metadata) are ignored. One Doc per non-blank
line.

The other direction, pre-annotations for doccano (``extract --format doccano``):
`doc_to_doccano` turns a processed Doc into an example of the same shape.
"""
from pathlib import Path
from typing import Any, Dict, Hashable, Iterator, List, Optional, Tuple

from spacy.language import Language
from spacy.tokens import Doc

from .char_offsets import char_annotations_to_doc, char_entity
from .label_studio import predicted_spans
from .util import (
    CharEntity,
    ConversionSummary,
    check,
    check_label,
    get_list,
    read_jsonl,
)


def doccano_to_docs(path: Path, nlp: Language, summary: ConversionSummary) -> Iterator[Doc]:
    """Convert a doccano JSONL export: one Doc per line, in order.

    RAISES (ConversionError): for a line that is not a JSON object with a string ``text``, an
        entity that lacks ``id``/``label``/``start_offset``/``end_offset`` or whose offsets are
        out of range, a duplicate entity id, a relation whose ``from_id``/``to_id`` is not an
        entity id of the same line or whose ``type`` is not a label. The location names the
        line (and the record's ``id``).
    """
    for loc, record in read_jsonl(path):
        if "id" in record:
            loc = f"{loc}, id {record['id']!r:.40}"
        yield _record_to_doc(record, nlp, summary, path, loc)


def _record_to_doc(
    record: dict, nlp: Language, summary: ConversionSummary, path: Path, loc: str
) -> Doc:
    check("text" in record, path, loc, "missing field 'text'")
    text = record["text"]
    check(isinstance(text, str), path, loc, f"'text' must be a string, got {text!r:.80}")
    entities: Dict[Hashable, List[CharEntity]] = {}
    relations: List[Tuple[Hashable, Hashable, str]] = []
    if "entities" not in record and "label" in record:
        for j, item in enumerate(get_list(record, "label", path, loc, required=True)):
            check(
                isinstance(item, list) and len(item) == 3,
                path,
                loc,
                f"label {j} must be [start, end, label], got {item!r:.80}",
            )
            label = check_label(item[2], path, loc, f"label {j}: the label")
            entity = char_entity(
                text, item[0], item[1], label, None, summary, path, loc, f"label {j} {label!r}"
            )
            entities[j] = [entity] if entity is not None else []
    else:
        for j, item in enumerate(get_list(record, "entities", path, loc, required=False)):
            check(
                isinstance(item, dict), path, loc, f"entity {j} must be an object, got {item!r:.80}"
            )
            for key in ("id", "label", "start_offset", "end_offset"):
                check(key in item, path, loc, f"entity {j} is missing field {key!r}")
            entity_id = item["id"]
            check(
                isinstance(entity_id, (int, str)) and not isinstance(entity_id, bool),
                path,
                loc,
                f"entity {j}: 'id' must be an integer or string, got {entity_id!r:.40}",
            )
            check(entity_id not in entities, path, loc, f"entity {j}: duplicate id {entity_id!r}")
            label = check_label(item["label"], path, loc, f"entity {j}: 'label'")
            entity = char_entity(
                text,
                item["start_offset"],
                item["end_offset"],
                label,
                None,
                summary,
                path,
                loc,
                f"entity {j} {label!r}",
            )
            entities[entity_id] = [entity] if entity is not None else []
        for j, item in enumerate(get_list(record, "relations", path, loc, required=False)):
            check(
                isinstance(item, dict),
                path,
                loc,
                f"relation {j} must be an object, got {item!r:.80}",
            )
            for key in ("from_id", "to_id", "type"):
                check(key in item, path, loc, f"relation {j} is missing field {key!r}")
            label = check_label(item["type"], path, loc, f"relation {j}: 'type'")
            for key in ("from_id", "to_id"):
                check(
                    item[key] in entities,
                    path,
                    loc,
                    f"relation {j} {label!r}: {key} = {item[key]!r:.40} points at a missing "
                    "entity (no entity with that id on this line)",
                )
            if not entities[item["from_id"]] or not entities[item["to_id"]]:
                summary.skipped["relations with a blank entity as argument"] += 1
                continue
            relations.append((item["from_id"], item["to_id"], label))
    kept = {key: value for key, value in entities.items() if value}
    return char_annotations_to_doc(nlp, text, kept, relations, summary, path, loc)


# --- export: pre-annotations -------------------------------------------------------------------


def doc_to_doccano(
    doc: Doc,
    meta: Optional[Dict[str, Any]] = None,
    *,
    model_version: str = "spacy-ie",
    spans_key: Optional[str] = None,
) -> Dict[str, Any]:
    """A doccano example (sequence labeling with relations) with the Doc's predictions::

        {"text": str,
         "entities": [{"id": int, "label": str, "start_offset": int, "end_offset": int}, ...],
         "relations": [{"id": int, "from_id": head id, "to_id": tail id, "type": label}, ...],
         "spacy_ie": {"model_version": str, "relation_scores": [float, ...]},
         **meta}

    Entities are ``doc.ents`` (or the span group `spans_key`) plus relation arguments outside
    them (`predicted_spans`), with character offsets.
    doccano has no field for scores: they go, one per relation in order, under ``"spacy_ie"``,
    which doccano keeps as the example's metadata (its import keeps unknown top-level fields).
    `spacy_ie.extraction.doc_to_line` writes it as ASCII-only JSON, which doccano's encoding
    detection cannot misread.
    Source: https://doccano.github.io/doccano/tutorial/#import-dataset ("Sequence Labeling"
    with relations).
    """
    relations = doc._.relations  # built once: each read makes new Spans
    entity_ids: Dict[Tuple[int, int, str], int] = {}
    entities = []
    for span in predicted_spans(doc, relations, spans_key):
        key = (span.start_char, span.end_char, span.label_)
        entity_ids[key] = len(entity_ids)
        entities.append(
            {"id": entity_ids[key], "label": span.label_, "start_offset": span.start_char,
             "end_offset": span.end_char}
        )  # fmt: skip
    records = [
        {
            "id": i,
            "from_id": entity_ids[(rel.head.start_char, rel.head.end_char, rel.head.label_)],
            "to_id": entity_ids[(rel.tail.start_char, rel.tail.end_char, rel.tail.label_)],
            "type": rel.label,
        }
        for i, rel in enumerate(relations)
    ]
    return {
        **(meta or {}),
        "text": doc.text,
        "entities": entities,
        "relations": records,
        "spacy_ie": {
            "model_version": model_version,
            "relation_scores": [round(float(rel.score), 4) for rel in relations],
        },
    }
