"""`spacy-ie extract`: run a trained pipeline over raw text, write one JSON record per document
(JSONL, streaming) and draw entities and relations with displaCy (plus, with a
`textcat_attention` component, the tokens highlighted by attention weight and the top
categories). As in ``spacy.cli``, this module holds the command and its logic.

Input formats, chosen by the file's extension:

- ``.txt``: one document per line (an empty line is an empty document), or with
  ``paragraphs=True`` one document per paragraph, paragraphs being separated by one or more
  blank lines (blank lines are then separators only, never documents);
- ``.jsonl``: one JSON object per line with a string ``"text"``; its other fields come back
  under ``"meta"``. Blank lines are skipped, as ``srsly.read_jsonl`` does.
"""
import html
import json
import os
import re
import shutil
import sys
import time
from bisect import bisect_right
from contextlib import ExitStack, contextmanager, redirect_stdout
from dataclasses import dataclass, field
from itertools import accumulate
from pathlib import Path
from typing import (
    Annotated, Any, Callable, Dict, Iterable, Iterator, List, NoReturn, Optional, Sequence, TextIO,
    Tuple, Union,
)
from xml.sax.saxutils import quoteattr

import spacy
import typer
from spacy import displacy
from spacy.displacy.render import DEFAULT_ENTITY_COLOR, DEFAULT_LABEL_COLORS
from spacy.displacy.templates import TPL_FIGURE, TPL_PAGE, TPL_TITLE
from spacy.language import Language
from spacy.tokens import Doc, Span
from spacy.util import filter_spans
from tqdm import tqdm
from wasabi import msg

from ..pipeline.textcat_attention import ATTENTION_ATTR
from ..pipeline.textcat_attention import register_extension as register_attention_extension
from ..relations import Relation, register_extensions, relation_count
from ._app import app
from ..util import PipelineLoadError, check_pipeline_config, load_pipeline

register_extensions()
register_attention_extension()

INPUT_FORMATS = (".txt", ".jsonl")
# One input document: its text and, for JSONL, the object's other fields.
InputDoc = Tuple[str, Optional[Dict[str, Any]]]


class InputError(ValueError):
    """An input file that cannot be read as documents; the message names the file and line."""


# --- reading ------------------------------------------------------------------------------------


def read_documents(path: Union[str, Path], paragraphs: bool = False) -> Iterator[InputDoc]:
    """Yield ``(text, meta)`` for each document of `path`, lazily (one line in memory at a time,
    one paragraph with `paragraphs`). `meta` is None for ``.txt`` and the JSON object's fields
    other than ``"text"`` for ``.jsonl``.

    path (Union[str, Path]): a ``.txt`` or ``.jsonl`` file (UTF-8).
    paragraphs (bool): ``.txt`` only: one document per blank-line-separated paragraph (its lines
        joined by "\\n") instead of one per line.
    RAISES (InputError): for another extension, a missing or unreadable file, or a JSONL line
        that is not an object with a string "text" (with the file and line number).
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in INPUT_FORMATS:
        raise InputError(
            f"{path}: unsupported input format {path.suffix or '(no extension)'!r}; "
            f"expected one of {', '.join(INPUT_FORMATS)}"
        )
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    if suffix == ".jsonl":
        yield from _read_jsonl(path)
    elif paragraphs:
        yield from ((text, None) for text in _read_paragraphs(path))
    else:
        yield from ((text, None) for text in _read_lines(path))


def count_documents(path: Union[str, Path], paragraphs: bool = False) -> int:
    """The number of documents `read_documents` yields for `path`, validating every line on the
    way (a streaming pass; nothing is kept). RAISES (InputError): as `read_documents`."""
    return sum(1 for _ in read_documents(path, paragraphs=paragraphs))


def _open(path: Path) -> TextIO:
    try:
        return path.open(encoding="utf8")
    except OSError as err:
        raise InputError(f"{path}: cannot read: {err}") from err


def _lines(path: Path) -> Iterator[Tuple[int, str]]:
    """(line number from 1, line without its line break); decoding errors become InputError."""
    with _open(path) as file:
        line_no = 0
        try:
            for line_no, line in enumerate(file, 1):
                yield line_no, line.rstrip("\r\n")
        except UnicodeDecodeError as err:
            raise InputError(f"{path}: not valid UTF-8 (after line {line_no}): {err}") from err


def _read_lines(path: Path) -> Iterator[str]:
    for _, line in _lines(path):
        yield line


def _read_paragraphs(path: Path) -> Iterator[str]:
    paragraph: List[str] = []
    for _, line in _lines(path):
        if line.strip():
            paragraph.append(line)
        elif paragraph:
            yield "\n".join(paragraph)
            paragraph = []
    if paragraph:
        yield "\n".join(paragraph)


def _read_jsonl(path: Path) -> Iterator[InputDoc]:
    for line_no, line in _lines(path):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError as err:
            raise InputError(f"{path}, line {line_no}: not valid JSON: {err}") from err
        if not isinstance(record, dict):
            raise InputError(
                f"{path}, line {line_no}: expected a JSON object with a \"text\" field, "
                f"got {type(record).__name__}"
            )
        text = record.pop("text", None)
        if not isinstance(text, str):
            problem = "no \"text\" field" if text is None else f"\"text\" is {type(text).__name__}"
            raise InputError(f"{path}, line {line_no}: {problem}; expected a string")
        yield text, record


# --- records ------------------------------------------------------------------------------------


def span_to_dict(span: Span) -> Dict[str, Any]:
    """``{"text", "label", "start", "end"}`` with character offsets into ``doc.text``."""
    return {
        "text": span.text,
        "label": span.label_,
        "start": span.start_char,
        "end": span.end_char,
    }


def doc_to_record(doc: Doc, meta: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
    """The JSON-serializable record of a processed Doc::

        {"text": str,
         "entities": [{"text", "label", "start", "end"}, ...],       # doc.ents, char offsets
         "relations": [{"head": {...}, "tail": {...}, "label": str, "score": float}, ...],
         "cats": {label: score},
         "meta": {...}}                                               # only when `meta` is given

    Head and tail have the entities' form; ``text[start:end]`` is the span's text.
    """
    record: Dict[str, Any] = {
        "text": doc.text,
        "entities": [span_to_dict(ent) for ent in doc.ents],
        "relations": [
            {
                "head": span_to_dict(rel.head),
                "tail": span_to_dict(rel.tail),
                "label": rel.label,
                "score": round(float(rel.score), 4),
            }
            for rel in doc._.relations
        ],
        "cats": {label: float(score) for label, score in doc.cats.items()},
    }
    if meta is not None:
        record["meta"] = meta
    return record


# --- pre-annotations for annotation tools (Label Studio, doccano) --------------------------------

# Output formats: one JSON line per document, built by these functions from a Doc, its meta and
# the model version (see `doc_to_line`).
OUTPUT_FORMATS = ("jsonl", "label-studio", "doccano")


def _predicted_spans(doc: Doc, relations: Sequence[Relation]) -> List[Span]:
    """doc.ents, then the arguments of `relations` (the Doc's) not among them (e.g. from a span
    group), without duplicates (same characters and label), in text order."""
    spans: Dict[Tuple[int, int, str], Span] = {}
    for span in list(doc.ents) + [s for rel in relations for s in (rel.head, rel.tail)]:
        spans.setdefault((span.start_char, span.end_char, span.label_), span)
    return [spans[key] for key in sorted(spans)]


def doc_to_label_studio(
    doc: Doc,
    meta: Optional[Dict[str, Any]] = None,
    *,
    model_version: str = "spacy-ie",
    from_name: str = "label",
    to_name: str = "text",
) -> Dict[str, Any]:
    """A Label Studio task with the Doc's predictions as pre-annotations::

        {"data": {"text": str, **meta},
         "predictions": [{"model_version": str, "score": float,
                          "result": [region, ..., relation, ...]}]}

    Each entity (``doc.ents``, plus relation arguments outside them) is a region ``{"id": "e0",
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
    for span in _predicted_spans(doc, relations):
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


def doc_to_doccano(
    doc: Doc, meta: Optional[Dict[str, Any]] = None, *, model_version: str = "spacy-ie"
) -> Dict[str, Any]:
    """A doccano example (sequence labeling with relations) with the Doc's predictions::

        {"text": str,
         "entities": [{"id": int, "label": str, "start_offset": int, "end_offset": int}, ...],
         "relations": [{"id": int, "from_id": head id, "to_id": tail id, "type": label}, ...],
         "spacy_ie": {"model_version": str, "relation_scores": [float, ...]},
         **meta}

    Entities are ``doc.ents`` plus relation arguments outside them, with character offsets.
    doccano has no field for scores: they go, one per relation in order, under ``"spacy_ie"``,
    which doccano keeps as the example's metadata (its import keeps unknown top-level fields).
    `doc_to_line` writes it as ASCII-only JSON, which doccano's encoding detection cannot misread.
    Source: https://doccano.github.io/doccano/tutorial/#import-dataset ("Sequence Labeling"
    with relations).
    """
    relations = doc._.relations  # built once: each read makes new Spans
    entity_ids: Dict[Tuple[int, int, str], int] = {}
    entities = []
    for span in _predicted_spans(doc, relations):
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


def doc_to_line(
    doc: Doc,
    meta: Optional[Dict[str, Any]] = None,
    output_format: str = "jsonl",
    model_version: str = "spacy-ie",
) -> str:
    """One output line (with its "\\n") for `doc` in `output_format`: "jsonl" (`doc_to_record`),
    "label-studio" (`doc_to_label_studio`) or "doccano" (`doc_to_doccano`).
    RAISES (ValueError): for another format."""
    if output_format == "jsonl":
        record = doc_to_record(doc, meta)
    elif output_format == "label-studio":
        record = doc_to_label_studio(doc, meta, model_version=model_version)
    elif output_format == "doccano":
        record = doc_to_doccano(doc, meta, model_version=model_version)
    else:
        raise ValueError(f"unknown output format {output_format!r}; expected one of "
                         f"{', '.join(OUTPUT_FORMATS)}")  # fmt: skip
    # doccano's import guesses the file's encoding (chardet) unless told; ASCII-only JSON (non-ASCII
    # characters as \u escapes) reads the same whatever it guesses.
    ascii_only = output_format == "doccano"
    return json.dumps(record, ensure_ascii=ascii_only, separators=(",", ":")) + "\n"


def model_version_of(nlp: Language) -> str:
    """``"{lang}_{name}-{version}"`` from the pipeline's meta, as spaCy names packages."""
    meta = nlp.meta
    return f"{meta.get('lang', nlp.lang)}_{meta.get('name', 'pipeline')}-{meta.get('version', '0')}"


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


def pipeline_labels(nlp: Language) -> Tuple[List[str], List[str]]:
    """The entity labels (of ``ner``/``spancat`` components) and the relation labels (of
    ``relation_extractor`` components) of a pipeline, sorted."""
    entity_labels, relation_labels = set(), set()
    for name in nlp.pipe_names:
        factory = nlp.get_pipe_meta(name).factory
        labels = getattr(nlp.get_pipe(name), "labels", ())
        if factory == "relation_extractor":
            relation_labels.update(labels)
        elif factory in ("ner", "spancat", "spancat_singlelabel", "beam_ner"):
            entity_labels.update(labels)
    return sorted(entity_labels), sorted(relation_labels)


# --- displaCy -----------------------------------------------------------------------------------

# Layout of the relation arcs (displaCy's `dep` style, compact): the words wrap onto rows of at
# most HTML_MAX_WIDTH px, so a long sentence does not run to thousands of pixels. displaCy spaces
# a row's words evenly, so each row's spacing ("distance") comes from its longest word, within
# [HTML_MIN_DISTANCE, HTML_MAX_DISTANCE] px, and runs of plain words (no entity, no arc end)
# are drawn as one word (as displaCy's collapse_phrases does for noun chunks). A row is cut
# where no arc crosses; a relation spanning more words than fit gets a wider row, scaled down
# to HTML_MAX_WIDTH (at most to HTML_MIN_SCALE); only wider still is an arc cut (not drawn).
HTML_MAX_WIDTH = 1100
HTML_MIN_SCALE = 0.7  # a row holding a long arc may be this much narrower than life-size
HTML_MIN_DISTANCE = 80
HTML_MAX_DISTANCE = 280
HTML_CHAR_WIDTH = 7.5  # px per character at displaCy's 16px sans-serif, on average
HTML_WORD_SPACING = 30  # px between the arcs and the words (displaCy's default: 45)
# Colours of entity labels displaCy has none for, in order of first use (sorted labels).
LABEL_PALETTE = (
    "#a6cee3", "#b2df8a", "#fb9a99", "#fdbf6f", "#cab2d6", "#ffff99", "#8dd3c7", "#fccde5",
    "#d9d9d9", "#bc80bd", "#ccebc5", "#ffed6f",
)  # fmt: skip


def doc_to_displacy(
    doc: Doc, title: Optional[str] = None, max_width: int = HTML_MAX_WIDTH
) -> Tuple[Dict[str, Any], int]:
    """The Doc as displaCy's manual ``dep`` input, plus what `render_html` draws around it, and
    the number of relations not drawn as arcs.

    Each entity (of ``doc.ents``, of the span groups, or a relation argument; of overlapping
    ones, the longest) is merged into one "word" whose tag is its label; other tokens are words with no
    tag (whitespace tokens are dropped, punctuation joins the word before it, as in displaCy's
    default ``collapse_punct``; then runs of such plain words between the entities are joined,
    see `_collapse_plain_words`). Each relation is an arc from the head's word to the
    tail's word labelled "LABEL score"; ``dir`` is "right" when the arrow points to the later word
    and "left" when it points to the earlier one, as displaCy draws dependencies (arrow at the
    dependent). A relation whose head and tail overlap or fall on the same word cannot be drawn,
    nor one whose arc is wider than a row can be (below): it is left out and counted (the table
    under the drawing lists every relation).

    Rows: the words wrap onto rows of at most ``max_width`` px (see `_rows`), cut where no arc
    crosses; a row that must be wider (a relation spans more words than fit) is scaled down.

    RETURNS (Tuple[Dict[str, Any], int]): the parse ``{"words": [{"text", "tag"}], "arcs":
        [{"start", "end", "label", "dir"}], "title"?, "settings", "rows": [{"start", "end",
        "distance"}] (word indices, end exclusive; px per word), "spans": {"tokens", "spans":
        [{"start_token", "end_token", "label"}]} (displaCy's manual ``span`` input: the
        entities, nested ones included: doc.ents, the span groups and the relation arguments),
        "relations": [{"head", "head_label", "label", "tail", "tail_label", "score"}]}`` (all
        text HTML-escaped) and the number of relations not drawn as arcs. Source: displaCy's
        manual input formats, https://spacy.io/usage/visualizers#manual-usage.
    """
    relations = doc._.relations
    groups = [s for group in doc.spans.values() for s in group if len(s)]
    args = [s for r in relations for s in (r.head, r.tail)]
    merged = filter_spans(list(doc.ents) + groups + args)
    merged_at = {span.start: span for span in merged}
    words: List[Dict[str, str]] = []
    word_of_token: Dict[int, int] = {}
    sent_starts: set = set()
    has_sents = doc.has_annotation("SENT_START")
    i = 0
    while i < len(doc):
        if has_sents and doc[i].is_sent_start:
            sent_starts.add(len(words))
        span = merged_at.get(i)
        if span is not None:
            for j in range(span.start, span.end):
                word_of_token[j] = len(words)
            words.append({"text": span.text, "tag": html.escape(span.label_)})
            i = span.end
            continue
        token = doc[i]
        if token.is_punct and words and i > 0 and not doc[i - 1].whitespace_:
            # Attach punctuation to the word before, as displaCy's collapse_punct does.
            word_of_token[i] = len(words) - 1
            words[-1]["text"] += token.text
        elif not token.is_space:
            word_of_token[i] = len(words)
            words.append({"text": token.text, "tag": ""})
        i += 1
    arcs: List[Dict[str, Any]] = []
    skipped = 0
    for rel in relations:
        head_word = _word_of_span(rel.head, word_of_token)
        tail_word = _word_of_span(rel.tail, word_of_token)
        overlap = rel.head.start < rel.tail.end and rel.tail.start < rel.head.end
        if overlap or head_word is None or tail_word is None or head_word == tail_word:
            skipped += 1
            continue
        label = html.escape(f"{rel.label} {float(rel.score):.2f}")
        if head_word < tail_word:
            arcs.append({"start": head_word, "end": tail_word, "label": label, "dir": "right"})
        else:
            arcs.append({"start": tail_word, "end": head_word, "label": label, "dir": "left"})
    words, arcs, sent_starts = _collapse_plain_words(words, arcs, sent_starts)
    rows = _rows([len(w["text"]) for w in words], arcs, max_width, sent_starts)
    row_of = {i: k for k, row in enumerate(rows) for i in range(row["start"], row["end"])}
    skipped += sum(1 for arc in arcs if row_of[arc["start"]] != row_of[arc["end"]])
    entity_spans = {(s.start, s.end, s.label_) for s in list(doc.ents) + groups + args}
    parse: Dict[str, Any] = {
        "words": words,
        "arcs": arcs,
        "settings": {
            "lang": doc.lang_,
            "direction": doc.vocab.writing_system.get("direction", "ltr"),
        },
        "rows": rows,
        "spans": {
            "tokens": [t.text for t in doc],
            "spans": [
                {"start_token": s, "end_token": e, "label": html.escape(label)}
                for s, e, label in sorted(entity_spans)
            ],
        },
        "relations": [
            {
                "head": html.escape(rel.head.text),
                "head_label": html.escape(rel.head.label_),
                "label": html.escape(rel.label),
                "tail": html.escape(rel.tail.text),
                "tail_label": html.escape(rel.tail.label_),
                "score": float(rel.score),
            }
            for rel in relations
        ],
    }
    if title:
        parse["title"] = html.escape(title)
    return parse, skipped


def _collapse_plain_words(
    words: List[Dict[str, str]], arcs: List[Dict[str, Any]], sent_starts: set
) -> Tuple[List[Dict[str, str]], List[Dict[str, Any]], set]:
    """Join runs of plain words (no tag, no arc end) into one word each, up to the length of the
    longest entity word (at least 16 characters) and never across a sentence start: the arc
    drawing needs only the entities, and fewer words fit more text on a row. RETURNS: the words,
    the arcs and the sentence starts, re-indexed."""
    ends = {a["start"] for a in arcs} | {a["end"] for a in arcs}
    limit = max([16] + [len(w["text"]) for w in words if w["tag"]])
    out: List[Dict[str, str]] = []
    new_index: List[int] = []
    plain_run = False  # whether out[-1] is a plain word that may take more
    for i, word in enumerate(words):
        plain = not word["tag"] and i not in ends
        if (plain and plain_run and i not in sent_starts
                and len(out[-1]["text"]) + 1 + len(word["text"]) <= limit):  # fmt: skip
            out[-1] = {"text": out[-1]["text"] + " " + word["text"], "tag": ""}
        else:
            out.append(dict(word))
        new_index.append(len(out) - 1)
        plain_run = plain
    new_arcs = [{**a, "start": new_index[a["start"]], "end": new_index[a["end"]]} for a in arcs]
    return out, new_arcs, {new_index[i] for i in sent_starts if i < len(words)}


def _rows(
    word_lengths: List[int], arcs: List[Dict[str, Any]], max_width: int, sent_starts: set
) -> List[Dict[str, int]]:
    """Cut the words into rows: ``[{"start", "end", "distance"}]`` (end exclusive; px per word).

    A row's width is ``distance * (n_words + 1/2)`` (displaCy: ``offset_x + n * distance``,
    with ``offset_x = distance / 2``), its distance from its longest word. From each row's
    first word, the row ends at the latest cut that keeps it within `max_width` and that no arc
    crosses (a sentence start wins when it is at least half-way). When there is none, or it
    would leave the row less than half full, the row runs on to the first cut no arc crosses,
    if the row then fits `max_width / HTML_MIN_SCALE` (`render_html` scales it down). Failing
    both, the row ends at the fitting cut crossed by the fewest arcs (those are not drawn). An
    empty doc gets one empty row.
    """

    def distance(longest: int) -> int:
        return int(min(max(longest * HTML_CHAR_WIDTH + 20, HTML_MIN_DISTANCE), HTML_MAX_DISTANCE))

    n = len(word_lengths)
    if n == 0:
        return [{"start": 0, "end": 0, "distance": HTML_MIN_DISTANCE}]
    # crossings[c]: arcs with start < c <= end, i.e. that a cut before word c would break
    delta = [0] * (n + 2)
    for arc in arcs:
        delta[arc["start"] + 1] += 1
        delta[arc["end"] + 1] -= 1
    crossings = list(accumulate(delta))
    rows: List[Dict[str, int]] = []
    start = 0
    while True:
        # cuts in order while the row fits (width grows with every word: stop at the first
        # that does not); then, for a scaled row, while it fits max_width / HTML_MIN_SCALE
        fits: List[int] = []
        scaled: List[int] = []
        longest = 0
        for end in range(start + 1, n + 1):
            longest = max(longest, word_lengths[end - 1])
            width = distance(longest) * (end - start + 0.5)
            if width <= max_width or not fits:
                fits.append(end)
            elif width * HTML_MIN_SCALE <= max_width:
                scaled.append(end)
            else:
                break
        free = [e for e in fits if not crossings[e]]
        sentence = [e for e in free if e in sent_starts and e - start >= len(fits) / 2]
        end = (sentence or free or [0])[-1]
        if fits[-1] == n:
            end = n  # the rest fits: no arc can cross the end of the doc
        elif end - start < len(fits) / 2:
            wider = next((e for e in scaled if not crossings[e]), 0)
            end = wider or end or min(reversed(fits), key=lambda e: crossings[e])
        longest = max(word_lengths[start:end], default=0)
        rows.append({"start": start, "end": end, "distance": distance(longest)})
        start = end
        if start >= n:
            return rows


def _word_of_span(span: Span, word_of_token: Dict[int, int]) -> Optional[int]:
    """The word of the span's first non-space token (None for an all-space span)."""
    for token in span:
        if token.i in word_of_token:
            return word_of_token[token.i]
    return None


def label_colors(labels: Iterable[str]) -> Dict[str, str]:
    """One background colour per entity label: displaCy's own for the labels it knows (PERSON,
    ORG, LOC...), then `LABEL_PALETTE` in order for the others (sorted, so the same labels get
    the same colours on every page)."""
    colors: Dict[str, str] = {}
    others = 0
    for label in sorted(set(labels)):
        known = DEFAULT_LABEL_COLORS.get(label.upper())
        if known is None:
            known = LABEL_PALETTE[others % len(LABEL_PALETTE)]
            others += 1
        colors[label] = known
    return colors


def _darken(color: str, factor: float = 0.55) -> str:
    """A "#rrggbb" colour with each channel scaled by `factor` (label text on white stays
    legible)."""
    rgb = [int(color[k : k + 2], 16) for k in (1, 3, 5)]
    return "#" + "".join(f"{int(c * factor):02x}" for c in rgb)


_TAG_RE = re.compile(
    r'(<tspan class="displacy-tag" dy="2em" )fill="currentColor"( x="[^"]*">)([^<]*)(</tspan>)'
)


def _color_tags(svg: str, colors: Dict[str, str]) -> str:
    """Colour each word tag (entity label) of a displaCy dep SVG with its label's colour."""

    def repl(match: "re.Match[str]") -> str:
        color = colors.get(match.group(3))
        if color is None:
            return match.group(0)
        return (f'{match.group(1)}fill="{_darken(color)}" font-weight="bold"{match.group(2)}'
                f"{match.group(3)}{match.group(4)}")  # fmt: skip

    return _TAG_RE.sub(repl, svg)


# displaCy's span renderer checks every span at every token: a long doc is drawn in pieces of
# about this many tokens, cut where no span crosses, to keep it linear.
SPAN_CHUNK_TOKENS = 300


def _span_chunks(tokens: List[str], spans: List[Dict[str, Any]]) -> Iterator[Dict[str, Any]]:
    """displaCy ``span`` inputs (``{"tokens", "spans"}``) for consecutive pieces of the tokens,
    each of at least `SPAN_CHUNK_TOKENS` tokens (but the last), cut where no span crosses."""
    spans = sorted(spans, key=lambda s: (s["start_token"], s["end_token"]))
    start = first = k = 0  # piece start token; its first span; spans starting before token t
    reach = 0  # the furthest end of the spans starting before token t
    for t in range(1, len(tokens) + 1):
        while k < len(spans) and spans[k]["start_token"] < t:
            reach = max(reach, spans[k]["end_token"])
            k += 1
        if t == len(tokens) or (t - start >= SPAN_CHUNK_TOKENS and reach <= t):
            inside = [
                {**s, "start_token": s["start_token"] - start, "end_token": s["end_token"] - start}
                for s in spans[first:k]
            ]
            yield {"tokens": tokens[start:t], "spans": inside}
            start, first = t, k


_SVG_SIZE_RE = re.compile(
    r'(<svg [^>]*?)width="([0-9.]+)" height="([0-9.]+)"([^>]*?)height: [0-9.]+px'
)


def _fit_width(svg: str, max_width: int) -> str:
    """Scale a displaCy SVG wider than `max_width` px down to that width (a viewBox keeps the
    drawing whole); narrower ones are returned unchanged."""
    match = _SVG_SIZE_RE.search(svg)
    if match is None or float(match.group(2)) <= max_width:
        return svg
    width, height = float(match.group(2)), float(match.group(3))
    scaled = height * max_width / width
    return _SVG_SIZE_RE.sub(
        f'\\1viewBox="0 0 {width:g} {height:g}" width="{max_width}" height="{scaled:.0f}"'
        f"\\4height: {scaled:.0f}px",
        svg,
        count=1,
    )


def _badge(text: str, label: str, colors: Dict[str, str]) -> str:
    color = colors.get(label, DEFAULT_ENTITY_COLOR)
    return (
        f'<mark class="entity" style="background: {color}; padding: 0.1em 0.4em; '
        f'border-radius: 0.3em">{text} <b style="font-size: 0.75em">{label}</b></mark>'
    )


def relations_table(parse: Dict[str, Any], colors: Optional[Dict[str, str]] = None) -> str:
    """An HTML table of the parse's relations (see `doc_to_displacy`): head, label, tail, score,
    heads and tails coloured by entity label; "" for a doc without relations."""
    rows = parse.get("relations", [])
    if not rows:
        return ""
    colors = colors if colors is not None else label_colors(
        [r["head_label"] for r in rows] + [r["tail_label"] for r in rows]
    )
    body = "".join(
        f'<tr><td>{_badge(r["head"], r["head_label"], colors)}</td><td><b>{r["label"]}</b></td>'
        f'<td>{_badge(r["tail"], r["tail_label"], colors)}</td><td style="text-align: right">'
        f'{r["score"]:.2f}</td></tr>'
        for r in rows
    )
    return (
        '<table class="relations" style="border-collapse: collapse; margin-top: 1rem">'
        "<thead><tr><th>head</th><th>label</th><th>tail</th><th>score</th></tr></thead>"
        f"<tbody>{body}</tbody></table>"
    )


PAGE_STYLE = """<style>
table.relations th, table.relations td {
  padding: 0.3rem 0.8rem; border-bottom: 1px solid #ddd; text-align: left;
}
table.relations th { font-size: 0.85em; text-transform: uppercase; color: #555; }
.arcs svg { display: block; }
</style>"""


def doc_to_attention_html(doc: Doc, top_k: int = 3) -> str:
    """The Doc's text with each token highlighted by its `textcat_attention` weight, and its top
    categories; "" when the Doc has no ``doc._.textcat_attention`` weights.

    A token's weight is the mean over the attention heads, divided by the Doc's largest one;
    it is the opacity of the token's background. The tokens are plain HTML
    ``<span class="attention-token">`` with their text escaped (displaCy has no token
    highlighting). Below them, the `top_k` highest ``doc.cats`` with their scores.
    """
    weights = doc._.get(ATTENTION_ATTR)
    if weights is None:
        return ""
    per_token = weights.mean(axis=0) if weights.shape[0] else weights.sum(axis=0)
    top = float(per_token.max()) if per_token.size else 0.0
    tokens = []
    for token, weight in zip(doc, per_token):
        alpha = float(weight) / top if top > 0 else 0.0
        tokens.append(
            f'<span class="attention-token" title="{float(weight):.4f}" '
            f'style="background-color: rgba(255, 140, 0, {alpha:.3f}); border-radius: 0.2em">'
            f"{html.escape(token.text)}</span>{html.escape(token.whitespace_)}"
        )
    parts = [
        '<div class="attention" style="margin-top: 1rem; line-height: 2; white-space: pre-wrap">'
        + "".join(tokens)
        + "</div>"
    ]
    cats = sorted(doc.cats.items(), key=lambda item: -item[1])[:top_k]
    if cats:
        shown = ", ".join(f"<b>{html.escape(label)}</b> {score:.2f}" for label, score in cats)
        parts.append(f'<div class="attention-cats" style="margin-top: 0.5rem">{shown}</div>')
    return "".join(parts)


def render_html(
    parses: List[Dict[str, Any]],
    options: Optional[Dict[str, Any]] = None,
    below: Optional[List[str]] = None,
) -> str:
    """One HTML page with one figure per parse (see `doc_to_displacy`), each holding, top to
    bottom: the title; the entities, nested ones included, coloured by label (displaCy's
    ``span`` style, which wraps with the page); the relation arcs (displaCy's ``dep`` style,
    compact, one SVG per row of at most ``HTML_MAX_WIDTH`` px (see `_rows`), word tags coloured
    by label); the table of relations (head, label, tail, score); then the HTML of `below` at
    the same index (e.g. from `doc_to_attention_html`; "" for nothing). displaCy's own page and
    figure templates; one colour per entity label across the page (`label_colors`).

    options (Optional[Dict[str, Any]]): extra displaCy ``dep`` options (they override the
        compact layout's ``compact``, ``distance`` and ``offset_x``).
    RAISES (ValueError): if `below` and `parses` differ in length.
    """
    below = below if below is not None else [""] * len(parses)
    if len(below) != len(parses):
        raise ValueError(f"render_html: {len(parses)} parses but {len(below)} 'below' entries")
    labels = [w["tag"] for p in parses for w in p["words"] if w["tag"]]
    labels += [s["label"] for p in parses for s in p.get("spans", {}).get("spans", [])]
    labels += [
        rel[key]
        for p in parses
        for rel in p.get("relations", [])
        for key in ("head_label", "tail_label")
    ]
    colors = label_colors(labels)
    figures = []
    for parse, extra in zip(parses, below):
        title = parse.get("title")
        content = TPL_TITLE.format(title=title) if title else ""
        spans = parse.get("spans")
        if spans and spans["spans"]:
            for chunk in _span_chunks(spans["tokens"], spans["spans"]):
                content += displacy.render(
                    {**chunk, "settings": parse.get("settings", {})},
                    style="span",
                    manual=True,
                    page=False,
                    jupyter=False,
                    options={"colors": colors},
                )
        svgs = []
        default_rows = [{"start": 0, "end": len(parse["words"]), "distance": HTML_MIN_DISTANCE}]
        layouts = parse.get("rows") or default_rows
        row_starts = [layout["start"] for layout in layouts]
        arcs_of_row: Dict[int, List[Dict[str, Any]]] = {}
        for arc in parse["arcs"]:
            arcs_of_row.setdefault(bisect_right(row_starts, arc["start"]) - 1, []).append(arc)
        for k, layout in enumerate(layouts):
            first, end, distance = layout["start"], layout["end"], layout["distance"]
            dep_options = {
                "compact": True,
                "distance": distance,
                "offset_x": distance // 2,
                "word_spacing": HTML_WORD_SPACING,
                **(options or {}),
            }
            row = {
                "words": parse["words"][first:end],
                "arcs": [
                    {**arc, "start": arc["start"] - first, "end": arc["end"] - first}
                    for arc in arcs_of_row.get(k, [])
                    if arc["end"] < end
                ],
                "settings": parse.get("settings", {}),
            }
            svg = displacy.render(
                row, style="dep", manual=True, page=False, jupyter=False, options=dep_options
            )
            svgs.append(_fit_width(_color_tags(svg, colors), HTML_MAX_WIDTH))
        content += '<div class="arcs">' + "".join(svgs) + "</div>"
        content += relations_table(parse, colors)
        figures.append(TPL_FIGURE.format(content=content + extra))
    settings = parses[0].get("settings", {}) if parses else {}
    return TPL_PAGE.format(
        content=PAGE_STYLE + "".join(figures),
        lang=settings.get("lang", "en"),
        dir=settings.get("direction", "ltr"),
    ).strip()  # as displacy.render


# --- the pipeline run ---------------------------------------------------------------------------


@dataclass
class ExtractionSummary:
    """Counts of one extraction run."""

    n_docs: int = 0
    n_words: int = 0
    n_entities: int = 0
    n_relations: int = 0
    n_skipped_arcs: int = 0
    seconds: float = 0.0
    html_parses: List[Dict[str, Any]] = field(default_factory=list)
    # Per drawn document: its `doc_to_attention_html` ("" without textcat_attention weights).
    html_attention: List[str] = field(default_factory=list)

    @property
    def words_per_second(self) -> float:
        return self.n_words / self.seconds if self.seconds > 0 else 0.0


def extract(
    nlp: Language,
    documents: Iterable[InputDoc],
    write: Callable[[str], Any],
    *,
    n_process: int = 1,
    batch_size: int = 64,
    html_limit: int = 0,
    progress: Optional[Callable[[int], Any]] = None,
    output_format: str = "jsonl",
    model_version: str = "spacy-ie",
) -> ExtractionSummary:
    """Process `documents` with ``nlp.pipe`` and `write` one JSON line (with its "\\n") per
    document as it comes, in input order: N documents in, N lines out (for "label-studio", the
    lines are the items of one JSON array: "[" first, "]" last, a "," before all but the first
    item). Memory stays constant in
    the number of documents, except for the displaCy parses (and attention highlights) of the
    first `html_limit` documents, kept in the summary for `render_html`.

    documents (Iterable[InputDoc]): ``(text, meta)`` pairs, e.g. from `read_documents`.
    write (Callable[[str], Any]): receives each line, e.g. ``file.write``.
    n_process (int), batch_size (int): passed to ``nlp.pipe``.
    html_limit (int): how many documents to draw (0: none).
    progress (Optional[Callable[[int], Any]]): called with the number of documents done, e.g.
        ``tqdm.update``.
    output_format (str): one of `OUTPUT_FORMATS` (see `doc_to_line`).
    model_version (str): the model version written into Label Studio and doccano records.
    RETURNS (ExtractionSummary): the counts, the time, the displaCy parses and highlights.
    """
    summary = ExtractionSummary()
    start = time.perf_counter()
    docs = nlp.pipe(documents, as_tuples=True, n_process=n_process, batch_size=batch_size)
    as_array = output_format == "label-studio"  # Label Studio imports a JSON array, not JSONL
    if as_array:
        write("[\n")
    for doc, meta in docs:
        line = doc_to_line(doc, meta, output_format, model_version)
        write("," + line if as_array and summary.n_docs else line)
        if summary.n_docs < html_limit:
            parse, skipped = doc_to_displacy(doc, title=f"#{summary.n_docs + 1}")
            summary.html_parses.append(parse)
            summary.html_attention.append(doc_to_attention_html(doc))
            summary.n_skipped_arcs += skipped
        summary.n_docs += 1
        summary.n_words += sum(1 for token in doc if not token.is_space)
        summary.n_entities += len(doc.ents)
        summary.n_relations += relation_count(doc)
        if progress is not None:
            progress(1)
    if as_array:
        write("]\n")
    summary.seconds = time.perf_counter() - start
    return summary


# --- the command --------------------------------------------------------------------------------


# Inputs with fewer documents than this get no progress bar.
PROGRESS_MIN_DOCS = 500


@app.command("extract")
def extract_cli(
    model: Annotated[
        str,
        typer.Argument(
            metavar="MODEL", help="Pipeline directory or installed package.", show_default=False
        ),
    ],
    input_path: Annotated[
        Path,
        typer.Argument(
            metavar="INPUT",
            help=".txt (one document per line) or .jsonl (objects with a \"text\" field).",
            show_default=False,
        ),
    ],
    output_path: Annotated[
        Optional[Path],
        typer.Option(
            "--output", "-o", help="JSONL file to write (default: stdout).", show_default=False
        ),
    ] = None,
    html_path: Annotated[
        Optional[Path],
        typer.Option(
            "--html",
            help="Also write an HTML page drawing the entities and relations with displaCy "
            "(with a textcat_attention component, also each doc's tokens highlighted by "
            "attention weight and its top categories).",
            show_default=False,
        ),
    ] = None,
    paragraphs: Annotated[
        bool,
        typer.Option(
            "--paragraphs", help=".txt: one document per blank-line-separated paragraph."
        ),
    ] = False,
    n_process: Annotated[
        int, typer.Option("--n-process", min=1, help="Processes for nlp.pipe.")
    ] = 1,
    batch_size: Annotated[
        int, typer.Option("--batch-size", min=1, help="Batch size for nlp.pipe.")
    ] = 64,
    html_limit: Annotated[
        int,
        typer.Option(
            "--html-limit",
            min=0,
            help="Draw at most this many documents (the first ones). The HTML page is kept in "
            "memory until the end: it is the one part that does not stream.",
        ),
    ] = 200,
    gpu_id: Annotated[int, typer.Option("--gpu-id", help="GPU to use; -1: CPU.")] = -1,
    engine: Annotated[
        str,
        typer.Option(
            "--engine",
            help="local: nlp.pipe in this process (--n-process); ray: Ray Data actors "
            "(--workers), on this machine or the cluster of --address / $RAY_ADDRESS.",
        ),
    ] = "local",
    output_format: Annotated[
        Optional[str],
        typer.Option(
            "--format",
            "-f",
            help="Output records: jsonl (our records), label-studio (a JSON array of Label "
            "Studio tasks with the predictions as pre-annotations, one task per line), doccano "
            "(doccano JSONL for sequence labeling with relations); with --engine ray: jsonl or "
            "parquet shards. Default: jsonl (--engine ray: from the --output extension).",
            show_default=False,
        ),
    ] = None,
    workers: Annotated[
        int,
        typer.Option("--workers", min=1, help="--engine ray: actors, each loading the pipeline."),
    ] = 1,
    cpus_per_worker: Annotated[
        float,
        typer.Option("--cpus-per-worker", min=0, help="--engine ray: CPUs Ray reserves per actor."),
    ] = 1.0,
    gpus_per_worker: Annotated[
        float,
        typer.Option(
            "--gpus-per-worker", min=0, help="--engine ray: GPUs per actor (e.g. 0.5: two per GPU)."
        ),
    ] = 0.0,
    disable: Annotated[
        str,
        typer.Option("--disable", help="--engine ray: comma-separated components to disable."),
    ] = "",
    ray_address: Annotated[
        Optional[str],
        typer.Option(
            "--address",
            help="--engine ray: Ray cluster to join (default: $RAY_ADDRESS, else a local Ray).",
            show_default=False,
        ),
    ] = None,
    code_path: Annotated[
        Optional[Path],
        typer.Option(
            "--code",
            help="--engine ray: Python file each actor imports before loading the pipeline.",
            show_default=False,
        ),
    ] = None,
    overwrite: Annotated[
        bool,
        typer.Option(
            "--overwrite",
            help="--engine ray: replace an existing --output directory of shards once the new "
            "one is written.",
        ),
    ] = False,
    label_config_path: Annotated[
        Optional[Path],
        typer.Option(
            "--label-config",
            help="Also write a Label Studio labeling config (XML) with the pipeline's entity "
            "and relation labels, for the project that imports the tasks.",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Extract entities, relations and document labels from raw text.

    Writes one JSON record per input document, in input order, as they come:
    N documents in, N lines out (an empty line of a .txt file is an empty
    document). A record is {"text", "entities", "relations", "cats"} (plus
    "meta", the other fields of a .jsonl object), with character offsets.
    --format label-studio or doccano writes the predictions as pre-annotations
    for those annotation tools instead (convert their exports back with
    `convert --format label-studio|doccano`).
    The output file appears only once everything succeeded. Messages and the
    progress bar go to stderr.

    With --engine ray, --output is a directory of JSONL or Parquet shards
    (records with an "id"; see spacy_ie.ray), INPUT a file, a directory or a
    glob of .txt, .jsonl and .parquet files.
    """
    if engine not in ENGINES:
        _fail(f"Unknown --engine {engine!r}; choose one of {', '.join(ENGINES)}")
    if engine == "ray":
        for given, option in ((html_path is not None, "--html"), (n_process != 1, "--n-process"),
                              (label_config_path is not None, "--label-config")):  # fmt: skip
            if given:
                _fail(f"{option} is for --engine local; with --engine ray use --workers")
        extract_ray_cli(
            model, str(input_path), output_path, output_format=output_format,
            paragraphs=paragraphs, batch_size=batch_size, workers=workers,
            cpus_per_worker=cpus_per_worker, gpus_per_worker=gpus_per_worker,
            disable=[name.strip() for name in disable.split(",") if name.strip()],
            address=ray_address, code=code_path, overwrite=overwrite,
        )  # fmt: skip
        return
    output_format = output_format or "jsonl"
    if output_format == "parquet":
        _fail("--format parquet needs --engine ray; the local engine writes one file")
    if output_format not in OUTPUT_FORMATS:
        _fail(f"Unknown --format {output_format!r}; choose one of {', '.join(OUTPUT_FORMATS)}")
    to_stdout = output_path is None or str(output_path) == "-"
    for path, option in ((None if to_stdout else output_path, "--output"), (html_path, "--html"),
                         (label_config_path, "--label-config")):  # fmt: skip
        if path is not None and path.is_dir():
            _fail(f"{option} {path} is a directory; give a file name")
    try:
        n_docs = count_documents(input_path, paragraphs=paragraphs)
    except InputError as err:
        _fail("Cannot read the input; nothing was written", str(err))
    if n_docs == 0:
        _say(
            "warn",
            f"{input_path} holds no documents (an empty file, or only blank lines): the output "
            "will be empty",
        )
    if gpu_id >= 0:
        try:
            spacy.require_gpu(gpu_id)
        except (ValueError, ImportError, RuntimeError) as err:
            _fail(f"Cannot use GPU {gpu_id}", str(err))
    try:
        nlp = load_pipeline(model)
    except PipelineLoadError as err:
        _fail(str(err))
    factories = {nlp.get_pipe_meta(name).factory for name in nlp.pipe_names}
    if "relation_extractor" not in factories:
        _say("warn", f"{model} has no relation_extractor: no relations will be predicted")

    show_bar = n_docs >= PROGRESS_MIN_DOCS and _isatty(sys.stderr)
    show_bar = show_bar and not (to_stdout and _isatty(sys.stdout))
    try:
        with ExitStack() as stack:
            out = sys.stdout if to_stdout else stack.enter_context(_atomic_open(output_path))
            bar = stack.enter_context(
                tqdm(total=n_docs, unit="doc", file=sys.stderr, disable=not show_bar)
            )
            summary = extract(
                nlp,
                read_documents(input_path, paragraphs=paragraphs),
                out.write,
                n_process=n_process,
                batch_size=batch_size,
                html_limit=html_limit if html_path is not None else 0,
                progress=bar.update,
                output_format=output_format,
                model_version=model_version_of(nlp),
            )
            if html_path is not None:
                html_file = stack.enter_context(_atomic_open(html_path))
                html_file.write(
                    render_html(summary.html_parses, below=summary.html_attention)
                )
            if label_config_path is not None:
                config_file = stack.enter_context(_atomic_open(label_config_path))
                config_file.write(label_studio_config(*pipeline_labels(nlp)))
            # Leaving the stack renames the HTML page, then the output, into place.
    except InputError as err:
        _fail("Cannot read the input; nothing was written", str(err))
    except BrokenPipeError:
        # The reader of stdout went away (e.g. `| head`): stop quietly.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        raise typer.Exit(1)
    except OSError as err:
        _fail("Cannot write the output; nothing was written", str(err))

    target = "stdout" if to_stdout else str(output_path)
    _say(
        "good",
        f"Extracted {summary.n_docs} docs: {summary.n_entities} entities, "
        f"{summary.n_relations} relations -> {target}",
        f"{summary.seconds:.1f}s, {summary.n_words} words, "
        f"{summary.words_per_second:,.0f} words/s",
    )
    if html_path is not None:
        drawn = len(summary.html_parses)
        limit_note = f" (--html-limit {html_limit})" if drawn < summary.n_docs else ""
        _say("info", f"Drew {drawn} of {summary.n_docs} docs{limit_note} -> {html_path}")
        if any(summary.html_attention):
            _say("info", "Tokens highlighted by textcat_attention weight (mean over heads)")
        if summary.n_skipped_arcs:
            _say(
                "warn",
                f"{summary.n_skipped_arcs} relations not drawn as arcs: their head and tail "
                "overlap or merge into one word, or the arc is wider than a row; the table "
                "under each document lists every relation",
            )


def _say(method: str, *args: Any, **kwargs: Any) -> None:
    """A wasabi message on stderr (stdout may carry the records)."""
    with redirect_stdout(sys.stderr):
        getattr(msg, method)(*args, **kwargs)


def _fail(title: str, text: str = "") -> NoReturn:
    """Print a failure on stderr and exit with code 1."""
    _say("fail", title, text, exits=1)
    raise SystemExit(1)  # not reached: msg.fail exits


def _isatty(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


@contextmanager
def _atomic_open(path: Path) -> Iterator[TextIO]:
    """Write to a temporary file beside `path`; rename it to `path` when the block succeeds,
    delete it when it fails, so that `path` is never half-written."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.part")
    file = tmp.open("w", encoding="utf8")
    try:
        with file:
            yield file
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


# --- the Ray engine (--engine ray; spacy_ie.ray) ------------------------------------------------

ENGINES = ("local", "ray")


def extract_ray_cli(
    model: str,
    input_spec: str,
    output_path: Optional[Path],
    *,
    output_format: Optional[str] = None,
    paragraphs: bool = False,
    batch_size: int = 64,
    workers: int = 1,
    cpus_per_worker: float = 1.0,
    gpus_per_worker: float = 0.0,
    disable: Iterable[str] = (),
    address: Optional[str] = None,
    code: Optional[Path] = None,
    overwrite: bool = False,
) -> None:
    """``extract --engine ray``: read `input_spec` (a file, a directory or a glob; see
    `spacy_ie.ray.input_files`) on this machine, run `spacy_ie.ray.extract_dataset` on a Ray
    cluster (`address`, else ``$RAY_ADDRESS``, else a local Ray with all CPUs) and write the
    records as shards into the directory `output_path`, which appears only once everything
    succeeded (written beside it under a temporary name, then renamed). Ray Data shows its
    progress on stderr. Then reads the shards back to check that every input id is there once
    and to count error rows. An existing `output_path` is replaced only with `overwrite`, and
    only if it holds nothing but ``.jsonl`` / ``.parquet`` files (shards). Exits with code 1 and
    a message for bad input, an existing output, a missing Ray, or a failed job; never leaves
    partial output.
    """
    if output_path is None or str(output_path) == "-":
        _fail("--engine ray writes shards into a directory: give --output DIR")
    if output_format is None:
        suffix = output_path.suffix.lower().lstrip(".")
        output_format = suffix if suffix in ("jsonl", "parquet") else "jsonl"
    if output_format not in ("jsonl", "parquet"):
        _fail(f"--engine ray writes --format jsonl or parquet, not {output_format!r}")
    if output_path.is_file():
        _fail(f"--output {output_path} is a file; give a directory")
    if output_path.is_dir() and any(output_path.iterdir()):
        if not overwrite:
            _fail(f"--output {output_path} exists; remove it, give a new directory or --overwrite")
        others = [p.name for p in output_path.iterdir() if p.suffix not in (".jsonl", ".parquet")]
        if others:
            _fail(
                f"--output {output_path} holds other things than shards: "
                f"{', '.join(sorted(others)[:5])}; not replacing it"
            )
    try:
        from .. import ray as spacy_ie_ray
    except ImportError as err:
        _fail("--engine ray needs Ray Data", str(err))
    try:  # a damaged config.cfg fails here, in one line, before Ray starts
        check_pipeline_config(model)
    except PipelineLoadError as err:
        _fail(str(err))
    try:
        # A validating pass before Ray starts: bad input fails at once and writes nothing.
        n_docs = sum(1 for _ in spacy_ie_ray.iter_input(input_spec, paragraphs=paragraphs))
    except InputError as err:
        _fail("Cannot read the input; nothing was written", str(err))
    if n_docs == 0:
        _fail(f"No documents in {input_spec}; nothing was written")

    start = time.perf_counter()
    spacy_ie_ray.init_ray(address=address)
    cluster_cpus = spacy_ie_ray.ray.cluster_resources().get("CPU", 0)
    if workers * cpus_per_worker > cluster_cpus:
        _say(
            "warn",
            f"{workers} workers x {cpus_per_worker:g} CPUs need "
            f"{workers * cpus_per_worker:g} CPUs; "
            f"the Ray cluster has {cluster_cpus:g}: the actors that do not fit wait for resources",
        )
    output_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = output_path.with_name(f".{output_path.name}.{os.getpid()}.part")
    try:
        # Blocks of at most 1,024 documents, and at least 4 per worker to share out.
        block_size = max(1, min(1024, -(-n_docs // (4 * workers))))
        dataset = spacy_ie_ray.read_input(input_spec, paragraphs=paragraphs, block_size=block_size)
        records = spacy_ie_ray.extract_dataset(
            dataset, model, workers=workers, batch_size=batch_size,
            cpus_per_worker=cpus_per_worker, gpus_per_worker=gpus_per_worker,
            disable=list(disable), code=code,
        )  # fmt: skip
        spacy_ie_ray.write_records(records, tmp, output_format)
        n_rows, ids_ok, errors = _check_shards(tmp, n_docs)
        if overwrite and output_path.is_dir():
            shutil.rmtree(output_path)
        os.replace(tmp, output_path)
    except InputError as err:
        _fail("Cannot read the input; nothing was written", str(err))
    except Exception as err:  # a failed Ray job: Ray has printed the details
        _fail("The Ray job failed; nothing was written", f"{type(err).__name__}: {err}")
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    seconds = time.perf_counter() - start
    _say(
        "good",
        f"Extracted {n_rows} docs with {workers} Ray worker(s) -> {output_path} "
        f"({output_format} shards)",
        f"{seconds:.1f}s (with Ray start-up and model loading), {n_rows / seconds:,.1f} docs/s",
    )
    if errors:
        shown = "; ".join(f"id {doc_id}: {error}" for doc_id, error in errors[:5])
        problem = f'{len(errors)} document(s) could not be processed (rows with "error")'
        _say("warn", problem, shown)
    if not ids_ok:
        _fail(
            f"{n_docs} documents in, {n_rows} rows out: ids missing or repeated",
            f"the output is kept in {output_path}",
        )


def _check_shards(output_dir: Path, n_docs: int) -> Tuple[int, bool, List[Tuple[Any, str]]]:
    """(rows, whether the ids are exactly 0..n_docs-1 once each, [(id, error)]) of the shards of
    `spacy_ie.ray.write_records`, reading only the id and error columns of Parquet shards."""
    ids: List[Any] = []
    errors: List[Tuple[Any, str]] = []
    for path in sorted(output_dir.iterdir()):
        if path.suffix == ".parquet":
            import pyarrow.parquet as pq

            table = pq.read_table(path, columns=["id", "error"])
            columns = (table.column("id").to_pylist(), table.column("error").to_pylist())
            for doc_id, error in zip(*columns):
                ids.append(doc_id)
                if error is not None:
                    errors.append((doc_id, error))
        elif path.suffix == ".jsonl":
            with path.open(encoding="utf8") as file:
                for line in file:
                    record = json.loads(line)
                    ids.append(record.get("id"))
                    if "error" in record:
                        errors.append((record.get("id"), record["error"]))
    ids_ok = len(ids) == n_docs and sorted(ids) == list(range(n_docs))
    return len(ids), ids_ok, sorted(errors, key=lambda item: item[0])
