"""SpERT JSON -> Docs (CoNLL04, ADE, SciERC as distributed with SpERT).

Source: Eberts & Ulges, "Span-based Joint Entity and Relation Extraction with Transformer
Pre-training" (ECAI 2020), https://github.com/lavis-nlp/spert. One JSON array per split:

    [{"tokens": ["Ada", "Lovelace", ...],
      "entities": [{"type": "Peop", "start": 0, "end": 2}, ...],     # token offsets, end exclusive
      "relations": [{"type": "Work_For", "head": 0, "tail": 1}, ...]  # indices into "entities"
     }, ...]

Other fields (e.g. ``orig_id``) are ignored. The files hold no raw text, so each Doc is built
from the tokens joined by single spaces.
"""
import json
from pathlib import Path
from typing import Iterator, List

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
    read_text,
)


def spert_to_docs(path: Path, nlp: Language, summary: ConversionSummary) -> Iterator[Doc]:
    """Convert a SpERT JSON file: one Doc per record, in order.

    RAISES (ConversionError): for malformed JSON, a record that is not an object or lacks
        ``tokens``/``entities``/``relations``, an entity outside the tokens or with a bad
        type, a relation whose ``head``/``tail`` is not an index into ``entities``.
    """
    try:
        data = json.loads(read_text(path))
    except json.JSONDecodeError as err:
        raise ConversionError(
            path, f"line {err.lineno}, column {err.colno}", f"malformed JSON: {err.msg}"
        ) from None
    except RecursionError:
        raise ConversionError(path, "", "malformed JSON: nested too deeply") from None
    check(
        isinstance(data, list),
        path,
        "",
        f"expected a JSON array of sentence objects, got a JSON {type(data).__name__}",
    )
    for i, record in enumerate(data):
        yield _record_to_doc(record, nlp, summary, path, f"record {i}")


def _record_to_doc(
    record: object, nlp: Language, summary: ConversionSummary, path: Path, loc: str
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
        relations.append((args[0], args[1], label))
    return annotate_doc(doc, entities, relations, summary)
