"""``spacy-ie extract --engine ray``: the options checked here, the run in
`spacy_ie.ray.extract_to_shards`, the outcome printed on stderr (`extract_ray_cli`)."""
import sys
from contextlib import redirect_stdout
from pathlib import Path
from typing import Any, Iterable, Optional

from wasabi import msg

from ..graph import GraphDependencyError, GraphError
from ..records import InputError
from ..util import PipelineLoadError, check_pipeline_config
from ._app import fail
from .graph import GRAPH_KEPT, graph_report, open_graph_or_fail

ENGINES = ("local", "ray")


def say(method: str, *args: Any) -> None:
    """A wasabi message (``msg.good``, ``msg.info``, ``msg.warn``...) on stderr: stdout may carry
    the records."""
    with redirect_stdout(sys.stderr):
        getattr(msg, method)(*args)


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
    graph: Optional[str] = None,
) -> None:
    """``extract --engine ray``: read `input_spec` (a file, a directory or a glob; see
    `spacy_ie.ray.input_files`) on this machine, run `spacy_ie.ray.extract_dataset` on a Ray
    cluster (`address`, else ``$RAY_ADDRESS``, else a local Ray with all CPUs) and write the
    records, in input order and as the local engine writes them, as shards into the directory
    `output_path` (`spacy_ie.ray.extract_to_shards`), which appears only once everything
    succeeded. Ray Data shows its progress on stderr. An existing `output_path` is replaced
    only with `overwrite`, and only if it holds nothing but ``.jsonl`` / ``.parquet`` files
    (shards). Exits with code 1 and a message for bad input, an existing output, a missing Ray,
    or a failed job; never leaves partial output. With `graph`, also writes the records into
    that graph (`spacy_ie.graph.open_graph`) before the shards are renamed into place.
    """
    if output_path is None or str(output_path) == "-":
        fail("--engine ray writes shards into a directory: give --output DIR")
    if output_format is None:
        suffix = output_path.suffix.lower().lstrip(".")
        output_format = suffix if suffix in ("jsonl", "parquet") else "jsonl"
    if output_format not in ("jsonl", "parquet"):
        fail(f"--engine ray writes --format jsonl or parquet, not {output_format!r}")
    try:
        from .. import ray as spacy_ie_ray
    except ImportError as err:
        fail("--engine ray needs Ray Data", str(err))
    try:
        spacy_ie_ray.check_output_dir(output_path, overwrite)
    except ValueError as err:
        fail(str(err))
    try:  # a damaged config.cfg fails here, in one line, before Ray starts
        check_pipeline_config(model)
    except PipelineLoadError as err:
        fail(str(err))
    try:
        n_docs = spacy_ie_ray.count_input(input_spec, paragraphs=paragraphs)
    except InputError as err:
        fail("Cannot read the input; nothing was written", str(err))
    if n_docs == 0:
        fail(f"No documents in {input_spec}; nothing was written")

    spacy_ie_ray.init_ray(address=address)
    cluster_cpus = spacy_ie_ray.ray.cluster_resources().get("CPU", 0)
    if workers * cpus_per_worker > cluster_cpus:
        say(
            "warn",
            f"{workers} workers x {cpus_per_worker:g} CPUs need "
            f"{workers * cpus_per_worker:g} CPUs; "
            f"the Ray cluster has {cluster_cpus:g}: the actors that do not fit wait for resources",
        )
    writer = open_graph_or_fail(graph) if graph is not None else None
    try:
        summary = spacy_ie_ray.extract_to_shards(
            model, input_spec, output_path, output_format=output_format, paragraphs=paragraphs,
            batch_size=batch_size, workers=workers, cpus_per_worker=cpus_per_worker,
            gpus_per_worker=gpus_per_worker, disable=list(disable), address=address, code=code,
            overwrite=overwrite, n_docs=n_docs, graph=writer,
        )  # fmt: skip
    except (GraphError, GraphDependencyError) as err:
        fail("Cannot write the graph; the shards were not written", f"{err}; {GRAPH_KEPT}")
    except InputError as err:
        fail("Cannot read the input; nothing was written", str(err))
    except Exception as err:  # a failed Ray job: Ray has printed the details
        fail("The Ray job failed; nothing was written", f"{type(err).__name__}: {err}")
    finally:
        if writer is not None:
            writer.abort()  # nothing once the graph was closed
    _report(summary, workers, output_path, output_format)
    if writer is not None:
        say("good", *graph_report(str(graph), writer.summary))


def _report(summary: Any, workers: int, output_path: Path, output_format: str) -> None:
    """Print the outcome of `extract_to_shards` (a `RayExtractionSummary`); exit with code 1
    when the rows do not hold every input id once."""
    seconds = summary.seconds
    say(
        "good",
        f"Extracted {summary.n_rows} docs with {workers} Ray worker(s) -> {output_path} "
        f"({output_format} shards)",
        f"{seconds:.1f}s (with Ray start-up and model loading), "
        f"{summary.n_rows / seconds:,.1f} docs/s",
    )
    if summary.errors:
        shown = "; ".join(f"id {doc_id}: {error}" for doc_id, error in summary.errors[:5])
        problem = f'{len(summary.errors)} document(s) could not be processed (rows with "error")'
        say("warn", problem, shown)
    if not summary.ids_ok:
        fail(
            f"{summary.n_docs} documents in, {summary.n_rows} rows out: ids missing or repeated",
            f"the output is kept in {output_path}",
        )
