"""Label Studio JSON export (named entities + relations) -> Docs.

Source: Label Studio's task format and its ``JSON`` export,
https://labelstud.io/guide/task_format and https://labelstud.io/guide/export#JSON, for a
labeling config with ``<Labels>`` on a ``<Text>`` and ``<Relations>``
(https://labelstud.io/templates/relation_extraction). The export is one JSON array of tasks:

    [{"id": 7,
      "data": {"text": "Ada Lovelace worked with Charles Babbage."},
      "annotations": [{
         "id": 3, "was_cancelled": false, "ground_truth": false,
         "result": [
           {"id": "a1", "type": "labels", "from_name": "label", "to_name": "text",
            "value": {"start": 0, "end": 12, "text": "Ada Lovelace", "labels": ["Peop"]}},
           {"id": "b2", "type": "labels", ...,
            "value": {"start": 25, "end": 40, "text": "Charles Babbage", "labels": ["Peop"]}},
           {"type": "relation", "from_id": "a1", "to_id": "b2", "direction": "right",
            "labels": ["Colleague"]}]}],
      "predictions": [...]}, ...]

``start``/``end`` are character offsets (code points) into the task's text, end exclusive,
checked against the region's ``text``. Older Label Studio versions counted JavaScript string
indices (UTF-16 code units, so each emoji counted twice; label-studio issue #1347, fixed by
PR #1559): when only those give the region's text, they are converted, and counted.

A relation's ``direction`` gives head and tail: ``"right"`` is ``from_id`` -> ``to_id``,
``"left"`` is ``to_id`` -> ``from_id``, ``"bi"`` is both (two relations, counted). Each of a
relation's ``labels`` is one relation; a relation without a label is skipped (counted). A region
with several ``labels`` is one entity per label (relations use the first).

The task's text is ``data["text"]``, or the only string field of ``data``. One Doc per task
with an annotation: cancelled annotations (``was_cancelled``) do not count; of several, the
``ground_truth`` one, else the last one, is used and the others are counted. Tasks without an
annotation (e.g. only ``predictions``, not yet corrected) are skipped and counted. Result types
other than ``labels`` and ``relation`` (choices, text areas, ...) are skipped and counted.

The other direction, pre-annotations for Label Studio (``extract --format label-studio``):
`doc_to_label_studio` turns a processed Doc into a task with a prediction of the same shape, and
`label_studio_config` writes the labeling config its project needs.
"""
from pathlib import Path
from typing import Any, Dict, Hashable, Iterable, Iterator, List, Optional, Sequence, Tuple
from xml.sax.saxutils import quoteattr

from spacy.language import Language
from spacy.tokens import Doc, Span

from ...records import entity_spans
from ...relations import Relation

from .char_offsets import char_annotations_to_doc, char_entity
from .util import (
    CharEntity,
    ConversionSummary,
    check,
    check_label,
    get_list,
    read_json,
)

DIRECTIONS = ("right", "left", "bi")


def label_studio_to_docs(path: Path, nlp: Language, summary: ConversionSummary) -> Iterator[Doc]:
    """Convert a Label Studio JSON export: one Doc per annotated task, in order.

    RAISES (ConversionError): for malformed JSON, a file that is not an array of task objects,
        a task without a text, and in the annotation used: a region with bad offsets or a
        text that does not match, an empty or non-string label, a relation whose ``from_id`` or
        ``to_id`` is not the id of a labeled region of the same annotation, an unknown
        ``direction``. The location names the task (its index in the array and its ``id``).
    """
    data = read_json(path)
    if isinstance(data, dict) and "data" in data:
        data = [data]  # one task, as Label Studio also imports
    check(
        isinstance(data, list),
        path,
        "",
        f"expected a JSON array of tasks (Label Studio's JSON export), got a JSON "
        f"{type(data).__name__}",
    )
    for i, task in enumerate(data):
        loc = f"task {i}"
        check(isinstance(task, dict), path, loc, f"expected a task object, got {task!r:.80}")
        if "id" in task:
            loc = f"task {i}, id {task['id']!r:.40}"
        text = _task_text(task, path, loc)
        annotation = _pick_annotation(task, summary, path, loc)
        if annotation is None:
            continue
        if "id" in annotation:
            loc += f", annotation {annotation['id']!r:.40}"
        yield _annotation_to_doc(text, annotation, nlp, summary, path, loc)


def _task_text(task: dict, path: Path, loc: str) -> str:
    data = task.get("data")
    check(
        isinstance(data, dict),
        path,
        loc,
        "missing field 'data' (an object with the text); export with Label Studio's 'JSON' "
        "format (its 'JSON_MIN' and CSV exports have no relations)",
    )
    if "text" in data:
        text = data["text"]
    else:
        strings = [value for value in data.values() if isinstance(value, str)]
        check(
            len(strings) == 1,
            path,
            loc,
            "cannot tell the text: 'data' has no 'text' field and "
            f"{len(strings)} string fields",
        )
        text = strings[0]
    check(isinstance(text, str), path, loc, f"the text must be a string, got {text!r:.80}")
    return text


def _pick_annotation(
    task: dict, summary: ConversionSummary, path: Path, loc: str
) -> Optional[dict]:
    annotations = get_list(task, "annotations", path, loc, required=False)
    for j, annotation in enumerate(annotations):
        check(
            isinstance(annotation, dict),
            path,
            loc,
            f"annotation {j} must be an object, got {annotation!r:.80}",
        )
    kept = [a for a in annotations if not a.get("was_cancelled", False)]
    if len(kept) < len(annotations):
        summary.skipped["cancelled annotations (was_cancelled)"] += len(annotations) - len(kept)
    if not kept:
        summary.skipped["tasks without an annotation (predictions only are not gold)"] += 1
        return None
    if len(kept) > 1:
        summary.skipped[
            "annotations of tasks with several (the ground_truth one, else the last, is used)"
        ] += len(kept) - 1
    truth = [a for a in kept if a.get("ground_truth") is True]
    return truth[-1] if truth else kept[-1]


def _annotation_to_doc(
    text: str,
    annotation: dict,
    nlp: Language,
    summary: ConversionSummary,
    path: Path,
    loc: str,
) -> Doc:
    results = get_list(annotation, "result", path, loc, required=True)
    regions: Dict[Hashable, List[CharEntity]] = {}
    relation_items: List[Tuple[int, dict]] = []
    for j, item in enumerate(results):
        check(isinstance(item, dict), path, loc, f"result {j} must be an object, got {item!r:.80}")
        kind = item.get("type")
        if kind == "relation":
            relation_items.append((j, item))
        elif kind == "labels":
            region_id = item.get("id")
            check(
                isinstance(region_id, (str, int)) and not isinstance(region_id, bool),
                path,
                loc,
                f"result {j}: a labeled region needs an 'id', got {region_id!r:.40}",
            )
            check(
                region_id not in regions,
                path,
                loc,
                f"result {j}: duplicate region id {region_id!r:.40}",
            )
            regions[region_id] = _region_entities(text, item, j, summary, path, loc)
        else:
            summary.skipped[f"Label Studio results of type {kind!r:.40} (not labels/relation)"] += 1
    relations: List[Tuple[Hashable, Hashable, str]] = []
    for j, item in relation_items:
        relations.extend(_relation(item, j, regions, summary, path, loc))
    return char_annotations_to_doc(
        nlp, text, {k: v for k, v in regions.items() if v}, relations, summary, path, loc
    )


def _region_entities(
    text: str, item: dict, j: int, summary: ConversionSummary, path: Path, loc: str
) -> List[CharEntity]:
    value = item.get("value")
    check(isinstance(value, dict), path, loc, f"result {j}: missing field 'value'")
    for key in ("start", "end"):
        check(key in value, path, loc, f"result {j}: 'value' is missing field {key!r}")
    labels = get_list(value, "labels", path, f"{loc}, result {j}", required=True)
    if not labels:
        summary.skipped["regions without a label"] += 1
        return []
    for label in labels:
        check_label(label, path, loc, f"result {j}: each of 'labels'")
    if len(labels) > 1:
        summary.notes["regions with several labels: one entity per label"] += 1
    given = value.get("text")
    entities = []
    for label in labels:
        entity = char_entity(
            text,
            value["start"],
            value["end"],
            label,
            given if isinstance(given, str) else None,
            summary,
            path,
            loc,
            f"result {j} {label!r}",
        )
        if entity is not None:
            entities.append(entity)
    return entities


def _relation(
    item: dict,
    j: int,
    regions: Dict[Hashable, List[CharEntity]],
    summary: ConversionSummary,
    path: Path,
    loc: str,
) -> List[Tuple[Hashable, Hashable, str]]:
    for key in ("from_id", "to_id"):
        check(key in item, path, loc, f"result {j} (relation) is missing field {key!r}")
        check(
            item[key] in regions,
            path,
            loc,
            f"result {j} (relation): {key} = {item[key]!r:.40} points at a missing entity (no "
            "labeled region with that id in this annotation)",
        )
    direction = item.get("direction", "right")
    check(
        direction in DIRECTIONS,
        path,
        loc,
        f"result {j} (relation): 'direction' must be 'right', 'left' or 'bi', got "
        f"{direction!r:.40}",
    )
    labels = get_list(item, "labels", path, f"{loc}, result {j}", required=False)
    if not labels:
        summary.skipped["relations without a label"] += 1
        return []
    for label in labels:
        check_label(label, path, loc, f"result {j} (relation): each of 'labels'")
    source, target = item["from_id"], item["to_id"]
    if not regions[source] or not regions[target]:
        summary.skipped["relations with an unlabeled or blank region as argument"] += len(labels)
        return []
    pairs = {"right": [(source, target)], "left": [(target, source)]}.get(
        direction, [(source, target), (target, source)]
    )
    if direction == "bi":
        summary.changed["bidirectional relations ('bi') made two relations, one each way"] += len(
            labels
        )
    return [(head, tail, label) for label in labels for head, tail in pairs]


# --- export: pre-annotations -------------------------------------------------------------------


def predicted_spans(
    doc: Doc, relations: Sequence[Relation], spans_key: Optional[str] = None
) -> List[Span]:
    """The entities of a pre-annotation export (`doc_to_label_studio`, and doccano's
    `doc_to_doccano`): `spacy_ie.records.entity_spans` (doc.ents, or the span group
    `spans_key`), then the arguments of `relations` (the Doc's) not among them, without
    duplicates (same characters and label), in text order."""
    spans: Dict[Tuple[int, int, str], Span] = {}
    args = [s for rel in relations for s in (rel.head, rel.tail)]
    for span in list(entity_spans(doc, spans_key)) + args:
        spans.setdefault((span.start_char, span.end_char, span.label_), span)
    return [spans[key] for key in sorted(spans)]


def doc_to_label_studio(
    doc: Doc,
    meta: Optional[Dict[str, Any]] = None,
    *,
    model_version: str = "spacy-ie",
    from_name: str = "label",
    to_name: str = "text",
    spans_key: Optional[str] = None,
) -> Dict[str, Any]:
    """A Label Studio task with the Doc's predictions as pre-annotations::

        {"data": {"text": str, **meta},
         "predictions": [{"model_version": str, "score": float,
                          "result": [region, ..., relation, ...]}]}

    Each entity (``doc.ents`` or the span group `spans_key`, plus relation arguments outside
    them; `predicted_spans`) is a region ``{"id": "e0",
    "type": "labels", "from_name", "to_name", "value": {"start", "end", "text", "labels":
    [label]}}`` with character offsets (code points, Python string indices, as Label Studio
    stores them since it stopped counting UTF-16 code units, label-studio PR #1559). Each
    relation is ``{"type": "relation", "from_id": head region,
    "to_id": tail region, "direction": "right", "labels": [label], "score": float}``. The
    prediction's ``score`` is the lowest relation score of the document (1.0 without
    relations), so that sorting tasks by prediction score in Label Studio puts the least
    certain documents first.

    from_name, to_name: the ``name`` of the ``<Labels>`` and ``<Text>`` tags of the project's
        labeling config (see `label_studio_config`).
    Source: https://labelstud.io/guide/predictions and https://labelstud.io/guide/task_format.
    """
    relations = doc._.relations  # built once: each read makes new Spans
    region_ids: Dict[Tuple[int, int, str], str] = {}
    result: List[Dict[str, Any]] = []
    for span in predicted_spans(doc, relations, spans_key):
        key = (span.start_char, span.end_char, span.label_)
        region_ids[key] = f"e{len(region_ids)}"
        result.append(
            {
                "id": region_ids[key],
                "type": "labels",
                "from_name": from_name,
                "to_name": to_name,
                "value": {
                    "start": span.start_char,
                    "end": span.end_char,
                    "text": span.text,
                    "labels": [span.label_],
                },
            }
        )
    scores = []
    for rel in relations:
        score = round(float(rel.score), 4)
        scores.append(score)
        result.append(
            {
                "type": "relation",
                "from_id": region_ids[(rel.head.start_char, rel.head.end_char, rel.head.label_)],
                "to_id": region_ids[(rel.tail.start_char, rel.tail.end_char, rel.tail.label_)],
                "direction": "right",
                "labels": [rel.label],
                "score": score,
            }
        )
    data: Dict[str, Any] = {**(meta or {}), "text": doc.text}
    prediction = {"model_version": model_version, "score": min(scores, default=1.0),
                  "result": result}  # fmt: skip
    return {"data": data, "predictions": [prediction]}


def label_studio_config(
    entity_labels: Iterable[str],
    relation_labels: Iterable[str],
    *,
    from_name: str = "label",
    to_name: str = "text",
) -> str:
    """A Label Studio labeling config (XML) for entities and relations on a text, matching the
    tasks of `doc_to_label_studio`: ``<Relations>`` with one ``<Relation>`` per relation
    label, ``<Labels>`` with one ``<Label>`` per entity label, and the ``<Text>``.
    Source: https://labelstud.io/templates/relation_extraction."""
    relations = "".join(f'    <Relation value={quoteattr(label)}/>\n' for label in relation_labels)
    labels = "".join(f'    <Label value={quoteattr(label)}/>\n' for label in entity_labels)
    return (
        "<View>\n"
        f"  <Relations>\n{relations}  </Relations>\n"
        f"  <Labels name={quoteattr(from_name)} toName={quoteattr(to_name)}>\n{labels}"
        "  </Labels>\n"
        f'  <Text name={quoteattr(to_name)} value="$text"/>\n'
        "</View>\n"
    )
