"""Running a pipeline over documents and writing what it finds: the library side of
``spacy-ie extract`` (its local engine; the Ray engine is `spacy_ie.ray`).

`extract` runs ``nlp.pipe`` over ``(text, meta)`` pairs (from `spacy_ie.records.read_documents`)
and hands each processed Doc, in input order, to its sinks (`DocSink`): `LineWriter` writes one
line per document (our JSONL records, or pre-annotations for Label Studio or doccano), and
`HTMLPage` keeps the displaCy view of the first documents (`spacy_ie.display`). Another output
(a database, an index) is one more `DocSink`. `extract_to_files` is what the command runs: the
input file in, the output files written atomically (all of them, or none).
"""
import time
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, TextIO, Tuple, Union

from spacy.language import Language
from spacy.tokens import Doc

from .display import doc_to_attention_html, doc_to_displacy, render_html
from .records import (
    InputDoc,
    atomic_open,
    doc_to_record,
    entity_spans,
    entity_spans_key,
    read_documents,
    record_to_line,
)
from .relations import register_extensions, relation_count
from .training.converters.doccano import doc_to_doccano
from .training.converters.label_studio import doc_to_label_studio, label_studio_config

register_extensions()

# Output formats: one JSON line per document, built by `doc_to_line` from a Doc, its meta and
# the model version.
OUTPUT_FORMATS = ("jsonl", "label-studio", "doccano")


def doc_to_line(
    doc: Doc,
    meta: Optional[Dict[str, Any]] = None,
    output_format: str = "jsonl",
    model_version: str = "spacy-ie",
    spans_key: Optional[str] = None,
) -> str:
    """One output line (with its "\\n") for `doc` in `output_format`: "jsonl"
    (`spacy_ie.records.doc_to_record`), "label-studio" (`doc_to_label_studio`) or "doccano"
    (`doc_to_doccano`); the entities from ``doc.ents`` or the span group `spans_key`
    (`spacy_ie.records.entity_spans_key`). RAISES (ValueError): for another format."""
    if output_format == "jsonl":
        record = doc_to_record(doc, meta, spans_key)
    elif output_format == "label-studio":
        record = doc_to_label_studio(doc, meta, model_version=model_version, spans_key=spans_key)
    elif output_format == "doccano":
        record = doc_to_doccano(doc, meta, model_version=model_version, spans_key=spans_key)
    else:
        raise ValueError(f"unknown output format {output_format!r}; expected one of "
                         f"{', '.join(OUTPUT_FORMATS)}")  # fmt: skip
    # doccano's import guesses the file's encoding (chardet) unless told; ASCII-only JSON (non-ASCII
    # characters as \u escapes) reads the same whatever it guesses.
    return record_to_line(record, ascii_only=output_format == "doccano")


def model_version_of(nlp: Language) -> str:
    """``"{lang}_{name}-{version}"`` from the pipeline's meta, as spaCy names packages."""
    meta = nlp.meta
    return f"{meta.get('lang', nlp.lang)}_{meta.get('name', 'pipeline')}-{meta.get('version', '0')}"


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


# --- sinks: where the processed Docs go ----------------------------------------------------------


class DocSink:
    """A destination of `extract`'s Docs. `write` receives each processed Doc with its meta (None
    for ``.txt`` input), in input order, as it comes; `close` is called once after the last one
    (not when the run fails). Subclass it for another output."""

    def write(self, doc: Doc, meta: Optional[Dict[str, Any]]) -> None:
        raise NotImplementedError

    def close(self) -> None:
        """Called after the last Doc; nothing by default."""


class LineWriter(DocSink):
    """One `doc_to_line` per Doc, passed to `write` (e.g. ``file.write``): N documents in, N
    lines out. For "label-studio" the lines are the items of one JSON array (Label Studio
    imports an array, not JSONL): "[" first, "]" last (at `close`), a "," before all but the
    first item.

    write (Callable[[str], Any]): receives each line, with its "\\n".
    output_format (str): one of `OUTPUT_FORMATS`.
    model_version (str): written into Label Studio and doccano records (`model_version_of`).
    spans_key (Optional[str]): where the entities are: None for ``doc.ents``, else a span
        group (`spacy_ie.records.entity_spans_key` of the pipeline).
    RAISES (ValueError): for an unknown `output_format`.
    """

    def __init__(
        self,
        write: Callable[[str], Any],
        output_format: str = "jsonl",
        model_version: str = "spacy-ie",
        spans_key: Optional[str] = None,
    ) -> None:
        if output_format not in OUTPUT_FORMATS:
            raise ValueError(f"unknown output format {output_format!r}; expected one of "
                             f"{', '.join(OUTPUT_FORMATS)}")  # fmt: skip
        self._write = write
        self.output_format = output_format
        self.model_version = model_version
        self.spans_key = spans_key
        self.as_array = output_format == "label-studio"
        self.n_lines = 0

    def write(self, doc: Doc, meta: Optional[Dict[str, Any]]) -> None:
        line = doc_to_line(doc, meta, self.output_format, self.model_version, self.spans_key)
        if self.as_array:
            line = ("," if self.n_lines else "[\n") + line
        self._write(line)
        self.n_lines += 1

    def close(self) -> None:
        if self.as_array:
            self._write("]\n" if self.n_lines else "[\n]\n")


class HTMLPage(DocSink):
    """Keeps the displaCy view (`doc_to_displacy`, titled "#1", "#2"...) and the attention
    highlights (`doc_to_attention_html`) of the first `limit` Docs, for `page`. Memory grows
    with `limit`, not with the number of Docs; each view is capped at
    `spacy_ie.display.HTML_MAX_CHARS` characters.

    Counts: ``n_drawn`` Docs drawn, ``n_skipped_arcs`` relations not drawn as arcs, ``n_cut``
    Docs drawn only in part (longer than the cap), ``has_attention`` whether any Doc had
    attention weights.
    """

    def __init__(self, limit: int = 200) -> None:
        self.limit = limit
        self.parses: List[Dict[str, Any]] = []
        self.attention: List[str] = []
        self.n_skipped_arcs = 0
        self.n_cut = 0

    @property
    def n_drawn(self) -> int:
        return len(self.parses)

    @property
    def has_attention(self) -> bool:
        return any(self.attention)

    def write(self, doc: Doc, meta: Optional[Dict[str, Any]]) -> None:
        if len(self.parses) >= self.limit:
            return
        parse, skipped = doc_to_displacy(doc, title=f"#{len(self.parses) + 1}")
        self.parses.append(parse)
        self.attention.append(doc_to_attention_html(doc))
        self.n_skipped_arcs += skipped
        self.n_cut += "cut" in parse

    def page(self) -> str:
        """The HTML page of the Docs kept (`render_html`)."""
        return render_html(self.parses, below=self.attention)


# --- the run -------------------------------------------------------------------------------------


@dataclass
class ExtractionSummary:
    """Counts of one extraction run: documents, words (spaCy tokens other than whitespace),
    entities (`spacy_ie.records.entity_spans`: ``doc.ents`` or the span group of
    `entity_spans_key`), relations, the seconds of the run; with an HTML page, the documents
    drawn, the relations not drawn as arcs, the documents drawn only in part (longer than
    `spacy_ie.display.HTML_MAX_CHARS`) and whether any had attention weights."""

    n_docs: int = 0
    n_words: int = 0
    n_entities: int = 0
    n_relations: int = 0
    seconds: float = 0.0
    n_drawn: int = 0
    n_skipped_arcs: int = 0
    n_cut: int = 0
    has_attention: bool = False

    @property
    def words_per_second(self) -> float:
        return self.n_words / self.seconds if self.seconds > 0 else 0.0


def extract(
    nlp: Language,
    documents: Iterable[InputDoc],
    sinks: Sequence[DocSink],
    *,
    n_process: int = 1,
    batch_size: int = 64,
    progress: Optional[Callable[[int], Any]] = None,
) -> ExtractionSummary:
    """Process `documents` with ``nlp.pipe`` and give each Doc, as it comes and in input order,
    to every sink (`DocSink.write`), then close the sinks. Memory stays constant in the number
    of documents (apart from what a sink keeps, e.g. `HTMLPage`).

    documents (Iterable[InputDoc]): ``(text, meta)`` pairs, e.g. from `read_documents`.
    sinks (Sequence[DocSink]): e.g. ``[LineWriter(file.write)]``.
    n_process (int), batch_size (int): passed to ``nlp.pipe``.
    progress (Optional[Callable[[int], Any]]): called with the number of documents done, e.g.
        ``tqdm.update``.
    RETURNS (ExtractionSummary): the counts and the time (not the HTML counts).
    RAISES: what reading `documents` raises (e.g. `InputError`), and what the sinks raise.
    """
    summary = ExtractionSummary()
    spans_key = entity_spans_key(nlp)
    start = time.perf_counter()
    docs = nlp.pipe(documents, as_tuples=True, n_process=n_process, batch_size=batch_size)
    for doc, meta in docs:
        for sink in sinks:
            sink.write(doc, meta)
        summary.n_docs += 1
        summary.n_words += sum(1 for token in doc if not token.is_space)
        summary.n_entities += len(entity_spans(doc, spans_key))
        summary.n_relations += relation_count(doc)
        if progress is not None:
            progress(1)
    for sink in sinks:
        sink.close()
    summary.seconds = time.perf_counter() - start
    return summary


def extract_to_files(
    nlp: Language,
    input_path: Union[str, Path],
    output: Union[str, Path, TextIO],
    *,
    paragraphs: bool = False,
    output_format: str = "jsonl",
    html_path: Optional[Union[str, Path]] = None,
    html_limit: int = 200,
    label_config_path: Optional[Union[str, Path]] = None,
    n_process: int = 1,
    batch_size: int = 64,
    progress: Optional[Callable[[int], Any]] = None,
    sinks: Sequence[DocSink] = (),
) -> ExtractionSummary:
    """``spacy-ie extract`` (local engine) without the command line: the documents of
    `input_path` (`read_documents`) through `extract`, one line each to `output`
    (`LineWriter`), and optionally the HTML page of the first `html_limit` documents
    (`HTMLPage`) and the Label Studio labeling config of the pipeline's labels
    (`label_studio_config` of `pipeline_labels`).

    Files are written atomically (`atomic_open`): they appear, or replace what was there, only
    once everything succeeded (the HTML page, then the output); on failure nothing is written.

    output (Union[str, Path, TextIO]): a file path, or an open text stream (e.g.
        ``sys.stdout``), written as the documents come.
    sinks (Sequence[DocSink]): more destinations of the Docs, after the output and the page.
    RETURNS (ExtractionSummary): the counts, with the HTML ones when `html_path` is given.
    RAISES (InputError): for unreadable input (as `read_documents`). (ValueError): an unknown
        `output_format`. (OSError): a file that cannot be written.
    """
    with ExitStack() as stack:
        if isinstance(output, (str, Path)):
            output = stack.enter_context(atomic_open(output))
        spans_key = entity_spans_key(nlp)
        lines = LineWriter(output.write, output_format, model_version_of(nlp), spans_key)
        page = HTMLPage(html_limit) if html_path is not None else None
        all_sinks = [lines] + ([page] if page is not None else []) + list(sinks)
        documents = read_documents(input_path, paragraphs=paragraphs)
        summary = extract(nlp, documents, all_sinks, n_process=n_process,
                          batch_size=batch_size, progress=progress)  # fmt: skip
        if page is not None:
            stack.enter_context(atomic_open(html_path)).write(page.page())  # type: ignore[arg-type]
            summary.n_drawn, summary.n_cut = page.n_drawn, page.n_cut
            summary.n_skipped_arcs, summary.has_attention = page.n_skipped_arcs, page.has_attention
        if label_config_path is not None:
            config = label_studio_config(*pipeline_labels(nlp))
            stack.enter_context(atomic_open(label_config_path)).write(config)
        # Leaving the stack renames the label config, the HTML page, then the output into place.
    return summary
