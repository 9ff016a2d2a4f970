"""SemEval-2010 Task 8 -> Docs.

Source: Hendrickx et al., "SemEval-2010 Task 8: Multi-Way Classification of Semantic Relations
between Pairs of Nominals" (SemEval 2010); files ``TRAIN_FILE.TXT`` and ``TEST_FILE_FULL.TXT``
of the release. Blocks of 4 lines (CRLF in the release; both endings are read):

    1<TAB>"The system ... an arrayed <e1>configuration</e1> of antenna <e2>elements</e2>."
    Component-Whole(e2,e1)
    Comment: ...
    <blank>

Each block becomes one Doc. The two nominals are entities labelled ``NOMINAL``. A directed
label ``L(e1,e2)`` becomes a relation ``L`` with head e1 and tail e2; ``L(e2,e1)`` has head e2
and tail e1; ``Other`` gives no relation (counted in the summary). The markers are removed and
the text is tokenized piece by piece, so the nominals' boundaries are always token boundaries.
The sentence ids are not stored: Docs come out in file order. Files without labels
(``TEST_FILE.txt``) are not supported.
"""
import re
from pathlib import Path
from typing import Dict, Iterator, List, Tuple

from spacy.language import Language
from spacy.tokens import Doc

from .util import (
    CharEntity,
    ConversionSummary,
    annotate_doc,
    check,
    doc_from_text,
    read_text,
    trim_entity,
)

ENTITY_LABEL = "NOMINAL"
OTHER = "Other"
SENTENCE_LINE = re.compile(r'\s*(\d+)\s+"(.*)"\s*')
LABEL_LINE = re.compile(r"([^\s()]+)\((e1,e2|e2,e1)\)")
MARKER = re.compile(r"</?e[12]>")
MARKERS = ("<e1>", "</e1>", "<e2>", "</e2>")


def semeval_to_docs(path: Path, nlp: Language, summary: ConversionSummary) -> Iterator[Doc]:
    """Convert a SemEval-2010 Task 8 file with labels: one Doc per sentence, in order.

    RAISES (ConversionError): for a line that is not ``<id><TAB>"<sentence>"`` where a sentence
        is expected, a missing or malformed label line, a sentence without exactly one of each
        marker ``<e1> </e1> <e2> </e2>`` (opening before closing) or with an empty nominal.
    """
    lines = [line.rstrip("\r") for line in read_text(path).split("\n")]
    i = 0
    while i < len(lines):
        if not lines[i].strip():
            i += 1
            continue
        loc = f"line {i + 1}"
        match = SENTENCE_LINE.fullmatch(lines[i])
        check(
            match,
            path,
            loc,
            f"expected a sentence line '<id><TAB>\"<sentence>\"', got {lines[i]!r:.80}",
        )
        assert match is not None
        sentence_id, sentence = match.groups()
        label_line = lines[i + 1].strip() if i + 1 < len(lines) else ""
        label_loc = f"line {i + 2}, sentence {sentence_id}"
        check(label_line, path, label_loc, "missing relation label line after the sentence")
        i += 2
        if i < len(lines) and lines[i].startswith("Comment"):
            i += 1
        text, (e1, e2) = _remove_markers(sentence, path, f"{loc}, sentence {sentence_id}", summary)
        doc, (t1, t2) = doc_from_text(nlp, text, [e1, e2], path, loc)
        if label_line == OTHER:
            summary.skipped[f"relations labelled {OTHER!r} (no relation stored)"] += 1
            annotate_doc(doc, [t1, t2], [], summary)
        else:
            label_match = LABEL_LINE.fullmatch(label_line)
            check(
                label_match,
                path,
                label_loc,
                f"expected a label like 'Cause-Effect(e1,e2)' or {OTHER!r}, got {label_line!r:.80}"
                " (files without labels, like TEST_FILE.txt, are not supported)",
            )
            assert label_match is not None
            label, direction = label_match.groups()
            head, tail = (t1, t2) if direction == "e1,e2" else (t2, t1)
            annotate_doc(doc, [t1, t2], [(head, tail, label)], summary)
        yield doc


def _remove_markers(
    sentence: str, path: Path, loc: str, summary: ConversionSummary
) -> Tuple[str, List[CharEntity]]:
    """The sentence without its markers, and the two nominals as character offsets."""
    pieces: List[str] = []
    positions: Dict[str, List[int]] = {marker: [] for marker in MARKERS}
    length = previous = 0
    for match in MARKER.finditer(sentence):
        piece = sentence[previous : match.start()]
        pieces.append(piece)
        length += len(piece)
        positions[match.group()].append(length)
        previous = match.end()
    pieces.append(sentence[previous:])
    text = "".join(pieces)
    for marker, found in positions.items():
        check(len(found) == 1, path, loc, f"expected one {marker} marker, found {len(found)}")
    entities: List[CharEntity] = []
    for name in ("e1", "e2"):
        start, end = positions[f"<{name}>"][0], positions[f"</{name}>"][0]
        check(start <= end, path, loc, f"</{name}> comes before <{name}>")
        trimmed = trim_entity(text, start, end)
        check(trimmed[0] < trimmed[1], path, loc, f"nominal {name} is empty")
        if trimmed != (start, end):
            summary.changed["nominals trimmed of the whitespace inside their markers"] += 1
        start, end = trimmed
        entities.append((start, end, ENTITY_LABEL))
    return text, entities
