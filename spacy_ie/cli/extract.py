"""`spacy-ie extract`: run a trained pipeline over raw text and write one JSON record per
document (JSONL, streaming), or pre-annotations for Label Studio or doccano, and optionally a
displaCy HTML page. The command parses and prints; the work is `spacy_ie.extraction`
(`extract_to_files`), the input formats and records `spacy_ie.records`, the HTML view
`spacy_ie.display`; ``--engine ray`` is `extract_ray_cli` (`spacy_ie.ray`).
"""
import os
import sys
from contextlib import ExitStack
from pathlib import Path
from typing import Annotated, Any, Optional

import spacy
import typer
from tqdm import tqdm

from ..display import HTML_MAX_CHARS
from ..extraction import OUTPUT_FORMATS, extract_to_files
from ..graph import GraphDependencyError, GraphError
from ..graph.sink import GraphSink
from ..records import InputError, count_documents, entity_spans_key
from ..util import PipelineLoadError, load_pipeline
from ._app import app, fail
from .extract_ray import ENGINES, extract_ray_cli, say
from .graph import GRAPH_KEPT, graph_report, open_graph_or_fail

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
    graph: Annotated[
        Optional[str],
        typer.Option(
            "--graph",
            help="Also write documents, entities and relations into a graph: a LadybugDB file "
            "(embedded; e.g. kg.lbug), a Neo4j URI (bolt://..., neo4j://...; NEO4J_USERNAME, "
            "NEO4J_PASSWORD) or RDF (.ttl, .nt). Committed in batches; a re-run adds only what "
            "is missing. Without --output, --engine local then writes no records.",
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
    holding the same records, named in input order (see spacy_ie.ray), INPUT
    a file, a directory or a glob of .txt, .jsonl and .parquet files.
    """
    if engine not in ENGINES:
        fail(f"Unknown --engine {engine!r}; choose one of {', '.join(ENGINES)}")
    if engine == "ray":
        for given, option in ((html_path is not None, "--html"), (n_process != 1, "--n-process"),
                              (label_config_path is not None, "--label-config")):  # fmt: skip
            if given:
                fail(f"{option} is for --engine local; with --engine ray use --workers")
        extract_ray_cli(
            model, str(input_path), output_path, output_format=output_format,
            paragraphs=paragraphs, batch_size=batch_size, workers=workers,
            cpus_per_worker=cpus_per_worker, gpus_per_worker=gpus_per_worker,
            disable=[name.strip() for name in disable.split(",") if name.strip()],
            address=ray_address, code=code_path, overwrite=overwrite, graph=graph,
        )  # fmt: skip
        return
    output_format = output_format or "jsonl"
    if output_format == "parquet":
        fail("--format parquet needs --engine ray; the local engine writes one file")
    if output_format not in OUTPUT_FORMATS:
        fail(f"Unknown --format {output_format!r}; choose one of {', '.join(OUTPUT_FORMATS)}")
    to_stdout = (output_path is None and graph is None) or str(output_path) == "-"
    for path, option in ((None if to_stdout else output_path, "--output"), (html_path, "--html"),
                         (label_config_path, "--label-config")):  # fmt: skip
        if path is not None and path.is_dir():
            fail(f"{option} {path} is a directory; give a file name")
    try:
        n_docs = count_documents(input_path, paragraphs=paragraphs)
    except InputError as err:
        fail("Cannot read the input; nothing was written", str(err))
    if n_docs == 0:
        say(
            "warn",
            f"{input_path} holds no documents (an empty file, or only blank lines): the output "
            "will be empty",
        )
    if gpu_id >= 0:
        try:
            spacy.require_gpu(gpu_id)
        except (ValueError, ImportError, RuntimeError) as err:
            fail(f"Cannot use GPU {gpu_id}", str(err))
    try:
        nlp = load_pipeline(model)
    except PipelineLoadError as err:
        fail(str(err))
    if "relation_extractor" not in {nlp.get_pipe_meta(name).factory for name in nlp.pipe_names}:
        say("warn", f"{model} has no relation_extractor: no relations will be predicted")

    show_bar = n_docs >= PROGRESS_MIN_DOCS and _isatty(sys.stderr)
    show_bar = show_bar and not (to_stdout and _isatty(sys.stdout))
    sinks = []
    if graph is not None:
        sinks = [GraphSink(open_graph_or_fail(graph), spans_key=entity_spans_key(nlp))]
    try:
        with (tqdm(total=n_docs, unit="doc", file=sys.stderr, disable=not show_bar) as bar,
              ExitStack() as stack):  # fmt: skip
            for sink in sinks:  # closed by extract; aborted when the run fails
                stack.enter_context(sink)
            output = sys.stdout if to_stdout else output_path or stack.enter_context(
                open(os.devnull, "w", encoding="utf8"))  # --graph without --output: no records
            summary = extract_to_files(
                nlp, input_path, output,
                paragraphs=paragraphs, output_format=output_format, html_path=html_path,
                html_limit=html_limit, label_config_path=label_config_path,
                n_process=n_process, batch_size=batch_size, progress=bar.update, sinks=sinks,
            )  # fmt: skip
    except (GraphError, GraphDependencyError) as err:
        fail("Cannot write the graph; no output file was written", f"{err}; {GRAPH_KEPT}")
    except InputError as err:
        fail("Cannot read the input; nothing was written", str(err))
    except BrokenPipeError:
        # The reader of stdout went away (e.g. `| head`): stop quietly.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        raise typer.Exit(1)
    except OSError as err:
        fail("Cannot write the output; nothing was written", str(err))

    target = "stdout" if to_stdout else str(output_path or graph)
    say(
        "good",
        f"Extracted {summary.n_docs} docs: {summary.n_entities} entities, "
        f"{summary.n_relations} relations -> {target}",
        f"{summary.seconds:.1f}s, {summary.n_words} words, "
        f"{summary.words_per_second:,.0f} words/s",
    )
    if html_path is not None:
        _report_html(summary, html_path, html_limit)
    if sinks:
        say("good", *graph_report(str(graph), sinks[0].writer.summary))


def _report_html(summary: Any, html_path: Path, html_limit: int) -> None:
    """What the HTML page of an `ExtractionSummary` holds and leaves out, on stderr."""
    drawn = summary.n_drawn
    limit_note = f" (--html-limit {html_limit})" if drawn < summary.n_docs else ""
    say("info", f"Drew {drawn} of {summary.n_docs} docs{limit_note} -> {html_path}")
    if summary.n_cut:
        say("info", f"{summary.n_cut} long docs drawn only up to about {HTML_MAX_CHARS:,} "
                    "characters (the page says where; the records hold everything)")  # fmt: skip
    if summary.has_attention:
        say("info", "Tokens highlighted by textcat_attention weight (mean over heads)")
    if summary.n_skipped_arcs:
        say(
            "warn",
            f"{summary.n_skipped_arcs} relations not drawn as arcs: their head and tail "
            "overlap or merge into one word, or the arc is wider than a row; the table "
            "under each document lists every relation",
        )


def _isatty(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False
