"""Shared pieces of the corpus converters: the error type, the summary, Doc building, writing.

Every converter reads one input, builds Docs that carry entities and gold relations, and
counts in a :class:`ConversionSummary` everything it skipped or changed. The helpers here do
the parts all formats share:

- :func:`doc_from_text`: tokenize a raw text so that given character offsets (entity
  boundaries) are always token boundaries, for formats without tokens (SemEval, brat);
- :func:`annotate_doc`: put the entities into ``doc.spans[spans_key]`` (all of them) and
  ``doc.ents`` (those that do not overlap, chosen by :func:`spacy.util.filter_spans`), and the
  relations into ``doc._.relations``;
- :func:`write_docbin`: write a DocBin atomically (no partial output file, ever).
"""
import json
import os
import shlex
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple, Union

from spacy.language import Language
from spacy.tokens import Doc, DocBin, Span
from spacy.util import filter_spans

from ...relations import Relation

# An entity as token offsets: (start, end, label), end exclusive.
TokenEntity = Tuple[int, int, str]
# A relation between two entities: (head, tail, label).
TokenRelation = Tuple[TokenEntity, TokenEntity, str]
# An entity as character offsets: (start_char, end_char, label), end exclusive.
CharEntity = Tuple[int, int, str]


class ConversionError(ValueError):
    """Invalid input for a converter. The message names the file, the record and the problem.

    path (str): the input file.
    location (str): the record in it, e.g. ``"record 12"`` or ``"line 40"``; may be empty.
    problem (str): what is wrong.
    """

    def __init__(self, path: Union[str, Path], location: str, problem: str) -> None:
        self.path = str(path)
        self.location = location
        self.problem = problem
        where = f"{self.path} ({location})" if location else self.path
        super().__init__(f"{where}: {problem}" if where else problem)

    def __reduce__(self):  # keep pickling (e.g. across processes) working
        return (type(self), (self.path, self.location, self.problem))


@dataclass
class ConversionSummary:
    """What a conversion produced, and everything it did not convert as given.

    skipped: reason -> count of input items that are not in the output.
    changed: reason -> count of output items that differ from the input.
    notes: reason -> count of items kept as given that are worth knowing about (e.g.
        overlapping entities that are in ``doc.spans[spans_key]`` but not in ``doc.ents``).
    types_path: the relation types file read (SpERT ``*_types.json``), or None.
    symmetric_labels: the relation labels that file marks symmetric (train them with
        ``symmetric_labels``; see :attr:`symmetric_override`).
    """

    fmt: str
    spans_key: str = "entities"
    n_docs: int = 0
    n_tokens: int = 0
    entity_labels: Counter = field(default_factory=Counter)
    relation_labels: Counter = field(default_factory=Counter)
    skipped: Counter = field(default_factory=Counter)
    changed: Counter = field(default_factory=Counter)
    notes: Counter = field(default_factory=Counter)
    types_path: Optional[str] = None
    symmetric_labels: List[str] = field(default_factory=list)

    @property
    def symmetric_override(self) -> str:
        """The ``spacy train`` override that makes the relation_extractor treat the symmetric
        labels as symmetric, e.g. ``--components.relation_extractor.symmetric_labels
        '["Binds"]'`` (a JSON list, quoted for a POSIX shell)."""
        value = json.dumps(sorted(self.symmetric_labels), ensure_ascii=False)
        return f"--components.relation_extractor.symmetric_labels {shlex.quote(value)}"

    @property
    def n_entities(self) -> int:
        return sum(self.entity_labels.values())

    @property
    def n_relations(self) -> int:
        return sum(self.relation_labels.values())

    @property
    def not_in_ents_reason(self) -> str:
        return (
            f"entities overlapping another entity, not in doc.ents (all entities are kept in "
            f"doc.spans[{self.spans_key!r}]; a relation_extractor reads them with "
            f"spans_key = {self.spans_key!r})"
        )


def check(condition: Any, path: Union[str, Path], location: str, problem: str) -> None:
    """Raise a ConversionError(path, location, problem) unless `condition` holds."""
    if not condition:
        raise ConversionError(path, location, problem)


def is_int(value: Any) -> bool:
    """Whether `value` is an int (JSON integer); bools are not."""
    return isinstance(value, int) and not isinstance(value, bool)


def is_text(value: Any) -> bool:
    """Whether `value` is a non-empty string that can be encoded (no lone surrogates)."""
    if not isinstance(value, str) or value == "":
        return False
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def is_label(value: Any) -> bool:
    """Whether `value` can be an entity or relation label: a string, not empty or blank."""
    return is_text(value) and value.strip() != ""


def check_label(value: Any, path: Union[str, Path], location: str, field: str) -> str:
    """`value` if it can be a label (see :func:`is_label`), else raise a ConversionError."""
    check(is_label(value), path, location, f"{field} must be a non-empty string, got {value!r:.80}")
    return value


def read_text(path: Path, *, keep_newlines: bool = False) -> str:
    """Read a UTF-8 text file (a leading BOM is dropped unless `keep_newlines`).

    keep_newlines: read the bytes as they are (no BOM removal, no newline translation), for
        formats whose character offsets count every character (brat).
    RAISES (ConversionError): if the file cannot be read or is not valid UTF-8.
    """
    try:
        if keep_newlines:
            with path.open("r", encoding="utf-8", newline="") as file_:
                return file_.read()
        return path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as err:
        raise ConversionError(path, f"byte {err.start}", f"not valid UTF-8: {err.reason}") from None
    except OSError as err:
        raise ConversionError(path, "", f"cannot read the file: {err.strerror or err}") from None


def read_jsonl(path: Path) -> Iterator[Tuple[str, Dict[str, Any]]]:
    """The JSON objects of a UTF-8 JSONL file, one per non-blank line, each with its location
    (``"line N"``), for the converters' error messages.

    RAISES (ConversionError): naming the file and line, if the file cannot be read, a line is
        not JSON, or a line is not a JSON object.
    """
    for line_no, line in enumerate(read_text(path).split("\n"), start=1):
        if not line.strip():
            continue
        loc = f"line {line_no}"
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            problem = f"malformed JSON: {err.msg} (column {err.colno})"
            raise ConversionError(path, loc, problem) from None
        except RecursionError:
            raise ConversionError(path, loc, "malformed JSON: nested too deeply") from None
        check(isinstance(record, dict), path, loc, f"expected a JSON object, got {record!r:.80}")
        yield loc, record


def read_json(path: Path) -> Any:
    """Read and parse a UTF-8 JSON file (`read_text`, then `json.loads`).

    RAISES (ConversionError): naming `path` (and the line and column), if the file cannot be
        read, is not valid UTF-8 or is not JSON.
    """
    try:
        return json.loads(read_text(path))
    except json.JSONDecodeError as err:
        raise ConversionError(
            path, f"line {err.lineno}, column {err.colno}", f"malformed JSON: {err.msg}"
        ) from None
    except RecursionError:
        raise ConversionError(path, "", "malformed JSON: nested too deeply") from None


def make_doc_from_words(
    nlp: Language, words: Sequence[str], spaces: Sequence[bool], path: Path, location: str
) -> Doc:
    """A Doc from given tokens, checked: every word must be a non-empty string."""
    for i, word in enumerate(words):
        check(
            is_text(word),
            path,
            location,
            f"token {i} must be a non-empty string, got {word!r}",
        )
    return Doc(nlp.vocab, words=list(words), spaces=list(spaces))


def trim_entity(text: str, start: int, end: int) -> Tuple[int, int]:
    """Character offsets of text[start:end] without leading and trailing whitespace."""
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return start, end


def doc_from_text(
    nlp: Language,
    text: str,
    entities: Sequence[CharEntity],
    path: Path,
    location: str,
) -> Tuple[Doc, List[TokenEntity]]:
    """Tokenize `text` so that every entity boundary is a token boundary.

    If the language's tokenizer already splits the whole text at every entity boundary (the
    usual case), its Doc is used as is. Otherwise the text is split at the entities' start and
    end offsets, each piece is tokenized with the tokenizer and the Doc is built from the
    pieces' words and spaces. Either way the Doc's text equals `text` exactly. Entities must
    not start or end with whitespace (trim them first with :func:`trim_entity`) and must lie
    inside the text.

    RETURNS: the Doc and the entities as token offsets, in the order given.
    RAISES (ConversionError): if an entity's offsets are out of range or it cannot be aligned.
    """
    bounds = {0, len(text)}
    for start, end, label in entities:
        check(
            0 <= start < end <= len(text),
            path,
            location,
            f"entity {label!r} [{start}, {end}) is out of range for a text of {len(text)} "
            "characters",
        )
        bounds.update((start, end))
    # Usually the tokenizer already splits at every entity boundary: keep its tokenization
    # (what the pipeline will see at run time) and re-tokenize piece by piece only otherwise.
    doc = nlp.make_doc(text)
    spans = [doc.char_span(start, end, alignment_mode="strict") for start, end, _ in entities]
    if all(span is not None for span in spans):
        return doc, [(s.start, s.end, label) for s, (_, _, label) in zip(spans, entities)]
    cuts = sorted(bounds)
    words: List[str] = []
    spaces: List[bool] = []
    for seg_start, seg_end in zip(cuts, cuts[1:]):
        for token in nlp.make_doc(text[seg_start:seg_end]):
            word, space = token.text, bool(token.whitespace_)
            if words and not spaces[-1] and word.startswith(" ") and not words[-1].isspace():
                # A piece that starts with a space: attach it to the previous token's
                # whitespace, as spaCy's tokenizer does for a whole text.
                spaces[-1] = True
                word = word[1:]
                if not word:
                    continue
            words.append(word)
            spaces.append(space)
    doc = Doc(nlp.vocab, words=words, spaces=spaces)
    check(doc.text == text, path, location, "internal error: tokenization changed the text")
    token_entities: List[TokenEntity] = []
    for start, end, label in entities:
        span = doc.char_span(start, end, alignment_mode="strict")
        check(
            span is not None,
            path,
            location,
            f"entity {label!r} {text[start:end]!r} [{start}, {end}) does not align with tokens",
        )
        token_entities.append((span.start, span.end, label))
    return doc, token_entities


def annotate_doc(
    doc: Doc,
    entities: Sequence[TokenEntity],
    relations: Sequence[TokenRelation],
    summary: ConversionSummary,
) -> Doc:
    """Set the gold entities and relations on `doc` and count them in `summary`.

    All entities go into ``doc.spans[summary.spans_key]`` (identical duplicates are merged and
    counted); ``doc.ents`` gets :func:`spacy.util.filter_spans` of them (the others are counted
    as overlapping). Relations go into ``doc._.relations`` with score 1.0, in the order given,
    duplicates included (counted as a note). Every offset must already be valid for `doc`.
    """
    unique = list(dict.fromkeys(entities))
    if len(unique) < len(entities):
        summary.changed["duplicate entities (same tokens and label) merged into one"] += len(
            entities
        ) - len(unique)
    spans = [Span(doc, start, end, label=label) for start, end, label in unique]
    doc.spans[summary.spans_key] = spans
    ents = filter_spans(spans)
    doc.ents = ents
    if len(ents) < len(spans):
        summary.notes[summary.not_in_ents_reason] += len(spans) - len(ents)
    records = [
        Relation(Span(doc, *head), Span(doc, *tail), label, 1.0) for head, tail, label in relations
    ]
    n_unique = len(set(relations))
    if n_unique < len(relations):
        summary.notes["relations duplicate another (same head, tail and label); kept"] += len(
            relations
        ) - n_unique
    doc._.relations = records
    summary.n_docs += 1
    summary.n_tokens += len(doc)
    summary.entity_labels.update(label for _, _, label in unique)
    summary.relation_labels.update(label for _, _, label in relations)
    return doc


def write_docbin(docs: Iterable[Doc], output_path: Union[str, Path]) -> Path:
    """Write `docs` to a ``.spacy`` file (DocBin with ``store_user_data=True``), atomically.

    The DocBin is written to a temporary file beside `output_path` and moved into place only
    once complete, so the output is either the whole new file or, on any error, whatever was
    there before (nothing, or the previous file, untouched). Missing parent directories are
    created.

    RETURNS (Path): the output path.
    RAISES (ConversionError): if `output_path` is a directory. (OSError): if writing fails.
    """
    output_path = Path(output_path)
    check(not output_path.is_dir(), output_path, "", "the output path is a directory")
    docbin = DocBin(store_user_data=True, docs=docs)
    data = docbin.to_bytes()
    output_path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(
        dir=output_path.parent, prefix=f".{output_path.name}.", suffix=".tmp"
    )
    try:
        with os.fdopen(fd, "wb") as file_:
            file_.write(data)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp_name, 0o666 & ~umask)
        os.replace(tmp_name, output_path)
    except BaseException:
        try:
            os.unlink(tmp_name)
        except OSError:
            pass
        raise
    return output_path


def types_sidecar_path(output_path: Union[str, Path]) -> Path:
    """Where :func:`write_types_sidecar` writes for `output_path`: ``train.spacy`` ->
    ``train.types.json`` beside it."""
    output_path = Path(output_path)
    return output_path.with_name(output_path.stem + ".types.json")


def write_types_sidecar(
    summary: ConversionSummary, output_path: Union[str, Path]
) -> Optional[Path]:
    """Record the relation types of a conversion beside its DocBin, for training configs.

    When the conversion read a types file (``summary.types_path``), write
    ``{"types_file", "relation_labels", "symmetric_labels", "override"}`` as JSON to
    :func:`types_sidecar_path` (``train.types.json`` for ``train.spacy``): the labels seen in
    the data, those the types file marks symmetric, and the ``spacy train`` override that
    configures them (``--components.relation_extractor.symmetric_labels '[...]'``). Without a
    types file, remove a sidecar left there by an earlier conversion, so that none is stale.

    RETURNS (Optional[Path]): the file written, or None.
    """
    path = types_sidecar_path(output_path)
    if summary.types_path is None:
        path.unlink(missing_ok=True)
        return None
    data: Dict[str, Any] = {
        "types_file": summary.types_path,
        "relation_labels": sorted(summary.relation_labels),
        "symmetric_labels": sorted(summary.symmetric_labels),
        "override": summary.symmetric_override,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf8")
    return path


def get_list(record: dict, key: str, path: Path, location: str, *, required: bool) -> list:
    """record[key] checked to be a list (or [] if absent and not required)."""
    if key not in record:
        check(not required, path, location, f"missing field {key!r}")
        return []
    value = record[key]
    check(
        isinstance(value, list),
        path,
        location,
        f"field {key!r} must be a list, got {type(value).__name__}",
    )
    return value
