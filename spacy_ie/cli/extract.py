"""`spacy-ie extract`: a trained pipeline over raw text -> JSONL records (+ a displaCy page)."""
import os
import sys
from contextlib import ExitStack, contextmanager, redirect_stdout
from pathlib import Path
from typing import Annotated, Any, Iterator, NoReturn, Optional, TextIO

import spacy
import typer
from tqdm import tqdm
from wasabi import msg

from ..extract import InputError, count_documents, extract, read_documents, render_html
from ._app import app

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
) -> None:
    """Extract entities, relations and document labels from raw text.

    Writes one JSON record per input document, in input order, as they come:
    N documents in, N lines out (an empty line of a .txt file is an empty
    document). A record is {"text", "entities", "relations", "cats"} (plus
    "meta", the other fields of a .jsonl object), with character offsets.
    The output file appears only once everything succeeded. Messages and the
    progress bar go to stderr.
    """
    to_stdout = output_path is None or str(output_path) == "-"
    for path, option in ((None if to_stdout else output_path, "--output"), (html_path, "--html")):
        if path is not None and path.is_dir():
            _fail(f"{option} {path} is a directory; give a file name")
    try:
        n_docs = count_documents(input_path, paragraphs=paragraphs)
    except InputError as err:
        _fail("Cannot read the input; nothing was written", str(err))
    if gpu_id >= 0:
        try:
            spacy.require_gpu(gpu_id)
        except (ValueError, ImportError, RuntimeError) as err:
            _fail(f"Cannot use GPU {gpu_id}", str(err))
    try:
        nlp = spacy.load(model)
    except (OSError, ValueError, ImportError) as err:
        _fail(f"Cannot load the pipeline {model}", str(err))
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
            )
            if html_path is not None:
                html_file = stack.enter_context(_atomic_open(html_path))
                html_file.write(
                    render_html(summary.html_parses, below=summary.html_attention)
                )
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
                f"{summary.n_skipped_arcs} relations not drawn: their head and tail overlap or "
                "merge into one word",
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
