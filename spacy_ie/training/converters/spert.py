"""SpERT JSON -> Docs (CoNLL04, ADE, SciERC as distributed with SpERT).

Source: Eberts & Ulges, "Span-based Joint Entity and Relation Extraction with Transformer
Pre-training" (ECAI 2020), https://github.com/lavis-nlp/spert. One JSON array per split:

    [{"tokens": ["Ada", "Lovelace", ...],
      "entities": [{"type": "Peop", "start": 0, "end": 2}, ...],     # token offsets, end exclusive
      "relations": [{"type": "Work_For", "head": 0, "tail": 1}, ...]  # indices into "entities"
     }, ...]

Other fields (e.g. ``orig_id``) are ignored. The files hold no raw text, so each Doc is built
from the tokens joined by single spaces.

Relation types. SpERT keeps the entity and relation types of a dataset in a
``{dataset}_types.json`` beside the splits (``conll04_types.json`` beside
``conll04_train.json``)::

    {"entities": {"Peop": {"short": "Peop", "verbose": "People"}, ...},
     "relations": {"Work_For": {"short": "Work", "verbose": "Work for", "symmetric": false}, ...}}

The converter reads it (found beside the input, or given as `types_path`) for the
``symmetric`` flags: the symmetric labels go into the summary (printed with the
``--components.relation_extractor.symmetric_labels`` override that trains them as symmetric) and
into a sidecar JSON beside the output (see :func:`.util.write_types_sidecar`). As SpERT's own
reader does (``spert/input_reader.py``, ``_parse_relations``: "for symmetric relations: head
occurs before tail in sentence"), a symmetric relation whose head comes after its tail is stored
with head and tail swapped, which is also the direction the relation_extractor writes for a
symmetric label (the earlier span as head); the swaps are counted in the summary.
"""
from dataclasses import dataclass
from pathlib import Path
from typing import AbstractSet, Iterator, List, Optional

from spacy.language import Language
from spacy.tokens import Doc

from .util import (
    ConversionError,
    ConversionSummary,
    TokenEntity,
    TokenRelation,
    annotate_doc,
    check,
    check_label,
    get_list,
    is_int,
    make_doc_from_words,
    read_json,
)


TYPES_SUFFIX = "_types.json"
SWAPPED_REASON = (
    "symmetric relations (per the types file) with the later span as head: head and tail "
    "swapped, so the earlier span is head as SpERT and the relation_extractor have it"
)


@dataclass(frozen=True)
class SpertTypes:
    """The contents of a SpERT ``*_types.json`` that matter here.

    path (Path): the file read.
    entity_labels (List[str]): the keys of ``"entities"``, in file order.
    relation_labels (List[str]): the keys of ``"relations"``, in file order.
    symmetric_labels (List[str]): the relation labels whose ``"symmetric"`` is true.
    """

    path: Path
    entity_labels: List[str]
    relation_labels: List[str]
    symmetric_labels: List[str]


def find_types_file(input_path: Path) -> Optional[Path]:
    """The SpERT types file beside `input_path`: ``X_types.json`` for ``X_split.json`` (SpERT's
    layout, e.g. ``conll04_types.json`` beside ``conll04_train.json``), or None when there is
    none (or the input's name has no ``_``)."""
    stem = input_path.stem
    if "_" not in stem or input_path.name.endswith(TYPES_SUFFIX):
        return None
    candidate = input_path.with_name(stem.rsplit("_", 1)[0] + TYPES_SUFFIX)
    return candidate if candidate.is_file() else None


def read_types(path: Path) -> SpertTypes:
    """Read a SpERT ``*_types.json`` (format in the module docstring).

    ``"symmetric"`` may be missing (false, as for entity types); when present it must be a
    JSON boolean.
    RAISES (ConversionError): naming `path`, if the file cannot be read, is not JSON, or lacks
        a ``"relations"`` object of objects, or a ``"symmetric"`` flag is not a boolean.
    """
    data = read_json(path)
    check(
        isinstance(data, dict),
        path,
        "",
        "a SpERT types file must be a JSON object with 'entities' and 'relations', got a JSON "
        f"{type(data).__name__}",
    )
    relations = data.get("relations")
    check(
        isinstance(relations, dict),
        path,
        "",
        "'relations' must be an object mapping each relation type to its description, got "
        f"{relations!r:.80}",
    )
    entities = data.get("entities", {})
    check(
        isinstance(entities, dict), path, "", f"'entities' must be an object, got {entities!r:.80}"
    )
    symmetric: List[str] = []
    for label, info in relations.items():
        check_label(label, path, f"relation type {label!r:.40}", "the relation type")
        where = f"relation type {label!r}"
        check(
            isinstance(info, dict),
            path,
            where,
            f"must be an object such as {{\"symmetric\": false}}, got {info!r:.80}",
        )
        flag = info.get("symmetric", False)
        problem = f"'symmetric' must be true or false, got {flag!r:.40}"
        check(isinstance(flag, bool), path, where, problem)
        if flag:
            symmetric.append(label)
    return SpertTypes(path, list(entities), list(relations), symmetric)


def spert_to_docs(
    path: Path,
    nlp: Language,
    summary: ConversionSummary,
    types_path: Optional[Path] = None,
) -> Iterator[Doc]:
    """Convert a SpERT JSON file: one Doc per record, in order.

    types_path (Optional[Path]): the dataset's SpERT ``*_types.json``; default: the one beside
        `path` (see :func:`find_types_file`), if any. Its symmetric labels are recorded in
        ``summary.symmetric_labels`` (and the file in ``summary.types_path``), and symmetric
        relations are stored with the earlier span as head. Relation labels of the data that
        the file does not list are counted in ``summary.notes``.
    RAISES (ConversionError): for malformed JSON, a record that is not an object or lacks
        ``tokens``/``entities``/``relations``, an entity outside the tokens or with a bad
        type, a relation whose ``head``/``tail`` is not an index into ``entities``; a
        malformed or missing types file (see :func:`read_types`).
    """
    if types_path is None:
        types_path = find_types_file(path)
    elif not Path(types_path).is_file():
        raise ConversionError(types_path, "", "no such types file (--types)")
    types = read_types(Path(types_path)) if types_path is not None else None
    if types is not None:
        summary.types_path = str(types.path)
        summary.symmetric_labels = list(types.symmetric_labels)
    symmetric = set(types.symmetric_labels) if types is not None else set()
    data = read_json(path)
    check(
        isinstance(data, list),
        path,
        "",
        f"expected a JSON array of sentence objects, got a JSON {type(data).__name__}",
    )
    for i, record in enumerate(data):
        yield _record_to_doc(record, nlp, summary, path, f"record {i}", symmetric)
    if types is not None:
        unknown = sorted(set(summary.relation_labels) - set(types.relation_labels))
        if unknown:
            summary.notes[
                f"relation labels not in {types.path.name} (treated as directed): "
                + ", ".join(unknown)
            ] += sum(summary.relation_labels[label] for label in unknown)


def _record_to_doc(
    record: object,
    nlp: Language,
    summary: ConversionSummary,
    path: Path,
    loc: str,
    symmetric: AbstractSet[str] = frozenset(),
) -> Doc:
    check(isinstance(record, dict), path, loc, f"expected an object, got {record!r:.80}")
    assert isinstance(record, dict)
    tokens = get_list(record, "tokens", path, loc, required=True)
    check(tokens, path, loc, "'tokens' is empty")
    n = len(tokens)
    doc = make_doc_from_words(nlp, tokens, [True] * (n - 1) + [False], path, loc)
    entities: List[TokenEntity] = []
    for j, ent in enumerate(get_list(record, "entities", path, loc, required=True)):
        check(isinstance(ent, dict), path, loc, f"entity {j} must be an object, got {ent!r:.80}")
        for key in ("type", "start", "end"):
            check(key in ent, path, loc, f"entity {j} is missing field {key!r}")
        start, end, label = ent["start"], ent["end"], ent["type"]
        check_label(label, path, loc, f"entity {j}: 'type'")
        check(
            is_int(start) and is_int(end),
            path,
            loc,
            f"entity {j}: 'start' and 'end' must be integers, got {start!r:.40} and {end!r:.40}",
        )
        check(
            0 <= start < end <= n,
            path,
            loc,
            f"entity {j} {label!r}: tokens [{start}, {end}) are out of range for {n} tokens",
        )
        entities.append((start, end, label))
    relations: List[TokenRelation] = []
    for j, rel in enumerate(get_list(record, "relations", path, loc, required=True)):
        check(isinstance(rel, dict), path, loc, f"relation {j} must be an object, got {rel!r:.80}")
        for key in ("type", "head", "tail"):
            check(key in rel, path, loc, f"relation {j} is missing field {key!r}")
        label = rel["type"]
        check_label(label, path, loc, f"relation {j}: 'type'")
        args = []
        for role in ("head", "tail"):
            index = rel[role]
            check(
                is_int(index) and 0 <= index < len(entities),
                path,
                loc,
                f"relation {j} {label!r}: {role} = {index!r:.40} points at a missing entity "
                f"(the record has {len(entities)} entities; {role} is an index into them)",
            )
            args.append(entities[index])
        head, tail = args
        if label in symmetric and head[:2] > tail[:2]:
            # SpERT's convention for symmetric labels, and the component's: earlier span as head
            head, tail = tail, head
            summary.changed[SWAPPED_REASON] += 1
        relations.append((head, tail, label))
    return annotate_doc(doc, entities, relations, summary)
