"""brat standoff -> Docs.

Source: the brat rapid annotation tool's standoff format,
https://brat.nlplab.org/standoff.html. Each document is a pair ``X.txt`` (the text, UTF-8) and
``X.ann`` (annotations, one per line, with character offsets into ``X.txt``):

    T1<TAB>Person 0 12<TAB>Ada Lovelace           text-bound annotation (an entity)
    T2<TAB>Loc 0 5;10 15<TAB>...                    discontinuous: several fragments
    R1<TAB>Work_For Arg1:T1 Arg2:T3                 binary relation: Arg1 = head, Arg2 = tail
                                                    (other role names: the first is the head)

INPUT is a directory (searched recursively for ``*.ann``, in sorted order; one Doc per
``.ann`` file) or a single ``.ann`` file with its ``.txt`` beside it.

What is not converted is skipped and counted in the summary, never dropped silently:
discontinuous entities (several fragments) are skipped, and so are relations with such an
entity or an event (E) as an argument; E, A, M, N, ``*`` and ``#`` lines are ignored; ``.txt``
files without an ``.ann`` file are skipped. Entity offsets that include surrounding whitespace
are trimmed (counted). Everything else that is malformed raises a ConversionError: unknown line
types, bad offsets, a text field that does not match ``X.txt``, duplicate ids, a relation
argument that is not an annotation of the file.

The text is tokenized piece by piece so that every entity boundary is a token boundary.
"""
import re
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Tuple

from spacy.language import Language
from spacy.tokens import Doc

from .util import (
    CharEntity,
    ConversionSummary,
    TokenRelation,
    annotate_doc,
    check,
    doc_from_text,
    read_text,
    trim_entity,
)

ENTITY_LINE = re.compile(r"(T\S*)\t(\S+) ([0-9]+ [0-9]+(?:;[0-9]+ [0-9]+)*)(?:\t(.*))?")
RELATION_LINE = re.compile(r"(R\S*)\t(\S+) (\S+):(\S+) (\S+):(\S+)\s*")
IGNORED_LINES = {
    "E": "event",
    "A": "attribute",
    "M": "attribute (modification)",
    "N": "normalization",
    "*": "equivalence",
    "#": "note",
}


def brat_to_docs(path: Path, nlp: Language, summary: ConversionSummary) -> Iterator[Doc]:
    """Convert brat standoff: a directory of ``.txt``/``.ann`` pairs or one ``.ann`` file.

    RAISES (ConversionError): see the module docstring.
    """
    if path.is_dir():
        ann_paths = sorted(path.rglob("*.ann"))
        check(ann_paths, path, "", "no .ann files in this directory")
        annotated = {p.with_suffix(".txt") for p in ann_paths}
        unannotated = [p for p in sorted(path.rglob("*.txt")) if p not in annotated]
        if unannotated:
            summary.skipped[".txt files without an .ann file"] += len(unannotated)
    else:
        check(
            path.suffix == ".ann",
            path,
            "",
            "expected a directory of .txt/.ann pairs or an .ann file",
        )
        ann_paths = [path]
    for ann_path in ann_paths:
        yield _document_to_doc(ann_path, nlp, summary)


def _document_to_doc(ann_path: Path, nlp: Language, summary: ConversionSummary) -> Doc:
    txt_path = ann_path.with_suffix(".txt")
    check(txt_path.is_file(), ann_path, "", f"no text file {txt_path.name} beside it")
    text = read_text(txt_path, keep_newlines=True)
    # id -> entity; None for a skipped (discontinuous) entity
    entities: Dict[str, Optional[CharEntity]] = {}
    events = set()
    relations: List[Tuple[str, str, str, str, str]] = []  # (location, id, label, head, tail)
    seen_ids = set()
    for line_no, line in enumerate(read_text(ann_path).split("\n"), start=1):
        line = line.rstrip("\r")
        if not line.strip():
            continue
        loc = f"line {line_no}"
        ann_id = line.split("\t", 1)[0]
        if line[0] in "TRE":
            check(ann_id not in seen_ids, ann_path, loc, f"duplicate annotation id {ann_id!r}")
            seen_ids.add(ann_id)
        if line[0] == "T":
            entities[ann_id] = _parse_entity(line, text, txt_path, ann_path, loc, summary)
        elif line[0] == "R":
            match = RELATION_LINE.fullmatch(line)
            check(
                match,
                ann_path,
                loc,
                f"expected 'R<id><TAB><label> Arg1:<id> Arg2:<id>', got {line!r:.80}",
            )
            assert match is not None
            rel_id, label, role1, arg1, role2, arg2 = match.groups()
            if (role1, role2) == ("Arg2", "Arg1"):
                arg1, arg2 = arg2, arg1
            relations.append((loc, rel_id, label, arg1, arg2))
        elif line[0] in IGNORED_LINES:
            if line[0] == "E":
                events.add(ann_id)
            summary.skipped[f"brat {IGNORED_LINES[line[0]]} lines ({line[0]})"] += 1
        else:
            check(
                False,
                ann_path,
                loc,
                f"unknown annotation line {line!r:.80} (expected T, R, E, A, M, N, * or #)",
            )
    kept = [entity for entity in entities.values() if entity is not None]
    doc, token_entities = doc_from_text(nlp, text, kept, txt_path, "")
    to_tokens = dict(zip(kept, token_entities))
    token_relations: List[TokenRelation] = []
    for loc, rel_id, label, head, tail in relations:
        args = []
        for arg in (head, tail):
            if arg in events:
                summary.skipped["relations with an event (E) as argument"] += 1
                break
            check(
                arg in entities,
                ann_path,
                loc,
                f"relation {rel_id} {label!r}: argument {arg!r} points at a missing entity "
                "(no T line with that id)",
            )
            entity = entities[arg]
            if entity is None:
                summary.skipped["relations with a discontinuous entity as argument"] += 1
                break
            args.append(to_tokens[entity])
        else:
            token_relations.append((args[0], args[1], label))
    return annotate_doc(doc, token_entities, token_relations, summary)


def _parse_entity(
    line: str, text: str, txt_path: Path, ann_path: Path, loc: str, summary: ConversionSummary
) -> Optional[CharEntity]:
    match = ENTITY_LINE.fullmatch(line)
    check(
        match,
        ann_path,
        loc,
        f"expected 'T<id><TAB><type> <start> <end><TAB><text>', got {line!r:.80}",
    )
    assert match is not None
    _, label, fragments, ann_text = match.groups()
    if ";" in fragments:
        summary.skipped["discontinuous entities (several fragments)"] += 1
        return None
    start, end = (int(offset) for offset in fragments.split())
    check(
        start < end <= len(text),
        ann_path,
        loc,
        f"entity {label!r}: characters [{start}, {end}) are out of range for {txt_path.name} "
        f"({len(text)} characters)",
    )
    if ann_text is not None:
        check(
            ann_text.split() == text[start:end].split(),
            ann_path,
            loc,
            f"entity {label!r}: its text {ann_text!r:.60} does not match {txt_path.name}"
            f"[{start}:{end}] = {text[start:end]!r:.60}",
        )
    trimmed = trim_entity(text, start, end)
    check(trimmed[0] < trimmed[1], ann_path, loc, f"entity {label!r} covers only whitespace")
    if trimmed != (start, end):
        summary.changed["entity offsets trimmed of surrounding whitespace"] += 1
    return (trimmed[0], trimmed[1], label)
