"""Documents in and records out: the input files of ``spacy-ie extract`` (and of the Ray
engine, `spacy_ie.ray`) read as ``(text, meta)`` pairs, and a processed Doc as the JSON record
that both engines write.

Input formats, chosen by the file's extension:

- ``.txt``: one document per line (an empty line is an empty document), or with
  ``paragraphs=True`` one document per paragraph, paragraphs being separated by one or more
  blank lines (blank lines are then separators only, never documents);
- ``.jsonl``: one JSON object per line with a string ``"text"``; its other fields come back
  under ``"meta"``. Blank lines are skipped, as ``srsly.read_jsonl`` does.

Output files are written with `atomic_open`: they appear whole once everything succeeded, or
not at all.
"""
import json
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Sequence, TextIO, Tuple, Union

from spacy.language import Language
from spacy.tokens import Doc, Span

from .relations import register_extensions

register_extensions()

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
    """``{"text", "label", "start", "end"}`` with character offsets into ``doc.text``, plus
    ``"kb_id"`` when an entity linker set one (``Span.kb_id_``; the graph's entity key)."""
    record = {
        "text": span.text,
        "label": span.label_,
        "start": span.start_char,
        "end": span.end_char,
    }
    if span.kb_id_:
        record["kb_id"] = span.kb_id_
    return record


def entity_spans_key(nlp: Language) -> Optional[str]:
    """Where a pipeline's entities are: the ``spans_key`` of its first relation_extractor (a
    span pipeline's span group, e.g. "entities"), or None for ``doc.ents`` (also without a
    relation extractor). Disabled components count."""
    for name in nlp.component_names:
        if nlp.get_pipe_meta(name).factory == "relation_extractor":
            return nlp.get_pipe(name).cfg.get("spans_key")
    return None


def entity_spans(doc: Doc, spans_key: Optional[str] = None) -> Sequence[Span]:
    """The entities of a processed Doc, in text order: ``doc.ents`` when `spans_key` is None,
    else the span group ``doc.spans[spans_key]`` sorted by start and end (nothing when the Doc
    has no such group): what the relation extractor reads (`entity_spans_key`)."""
    if spans_key is None:
        return doc.ents
    group = doc.spans[spans_key] if spans_key in doc.spans else []
    return sorted(group, key=lambda span: (span.start, span.end))


def doc_to_record(
    doc: Doc, meta: Optional[Dict[str, Any]] = None, spans_key: Optional[str] = None
) -> Dict[str, Any]:
    """The JSON-serializable record of a processed Doc::

        {"text": str,
         "entities": [{"text", "label", "start", "end"}, ...],       # char offsets
         "relations": [{"head": {...}, "tail": {...}, "label": str, "score": float}, ...],
         "cats": {label: score},
         "meta": {...}}                                               # only when `meta` is given

    The entities are `entity_spans(doc, spans_key)`: ``doc.ents``, or a span pipeline's span
    group (pass `entity_spans_key(nlp)`). Head and tail have the entities' form;
    ``text[start:end]`` is the span's text.
    """
    record: Dict[str, Any] = {
        "text": doc.text,
        "entities": [span_to_dict(ent) for ent in entity_spans(doc, spans_key)],
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


def record_to_line(record: Dict[str, Any], ascii_only: bool = False) -> str:
    """One JSONL line (with its "\\n") of a record: compact separators, non-ASCII characters as
    they are (as ``\\u`` escapes with `ascii_only`), values JSON cannot hold (e.g. a date of a
    Parquet column) as their ``str``. Both engines of ``extract`` write their lines with it."""
    return json.dumps(record, ensure_ascii=ascii_only, separators=(",", ":"), default=str) + "\n"


# --- writing ------------------------------------------------------------------------------------


@contextmanager
def atomic_open(path: Union[str, Path]) -> Iterator[TextIO]:
    """Open `path` for writing text (UTF-8), atomically: the block writes to a temporary file
    beside `path` (``.NAME.PID.part``), which is renamed to `path` when the block succeeds and
    deleted when it raises, so that `path` is never half-written and an existing `path` stays
    as it was on failure. The parent directories are created.

    RAISES (OSError): when the temporary file cannot be created or renamed.
    """
    path = Path(path)
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
