"""Batch extraction speed: the local engine (``nlp.pipe``, n_process 1 and 2) against the Ray
engine (Ray Data actor pool, 1 and 2 workers) on the same input, and where Ray's overhead goes.

    python benchmarks/extract_ray.py training/conll04/model-best ../shared/datasets [--n-docs 50000]

The input is `spacy_ie.datasets.extract_input`: every CoNLL04 and SemEval-2010 Task 8 sentence,
cycled to N documents, as JSONL. Each setting runs the code of ``spacy-ie extract`` in this
process and writes its JSONL output to a temporary directory:

- ``local-N``: `spacy_ie.extraction.extract` (``nlp.pipe(n_process=N)``) writing one file;
  timed from the first document read to the last line written (the pipeline is already
  loaded; with N=2 the time includes starting the worker processes);
- ``ray-N``: `spacy_ie.ray.read_input` (the driver reads the file into Ray's object store),
  then `extract_dataset` (``workers=N``) and `write_records` (JSONL shards); timed from reading
  to the last shard written: it includes starting the N actors and loading the pipeline in
  each, not ``ray.init`` (timed apart).

It prints documents/s and words/s (spaCy tokens other than whitespace, as ``extract`` counts
them) of each setting, the ratios ray-2 / ray-1 and ray-1 / local-1, and the overhead: the
start-up of one actor (imports, ``spacy.load``) in a fresh Python process; the driver's
reading rate (parsing alone, and into the object store); one Ray worker's rate inside its
tasks and how each Ray run's time splits (reading, actors in tasks, the rest: start-up,
scheduling, writing), from Ray Data's stats; and per document the time of ``nlp.pipe``, of `doc_to_record`, of
building the Arrow rows, of moving a block through Ray's object store, and of writing a JSONL
line. With ``--output``, writes the figures as JSON. Run it on an otherwise idle machine with
``OMP_NUM_THREADS=1`` (Ray gives each 1-CPU actor one BLAS thread; the local engine gets the
same).
"""

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

import pyarrow as pa
import ray
import spacy
import srsly
import typer

from spacy_ie.extraction import LineWriter, extract
from spacy_ie.records import doc_to_record, read_documents
from spacy_ie.datasets.extract_input import extract_input
from spacy_ie.ray import (
    RelationExtractorActor,
    extract_dataset,
    init_ray,
    iter_input,
    read_input,
    row_to_record,
    write_records,
)


def timed(fn: Callable[[], Any]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def run_local(
    model: str, input_path: Path, out_dir: Path, n_process: int, batch_size: int
) -> Dict[str, Any]:
    """One local run (see the module docstring): seconds and documents."""
    nlp = spacy.load(model)
    with (out_dir / f"local-{n_process}.jsonl").open("w", encoding="utf8") as file:
        summary = extract(
            nlp, read_documents(input_path), [LineWriter(file.write)], n_process=n_process,
            batch_size=batch_size,
        )
    return {"seconds": summary.seconds, "n_docs": summary.n_docs, "n_words": summary.n_words}


def run_ray(
    model: str, input_path: Path, out_dir: Path, workers: int, batch_size: int, n_docs: int
) -> Dict[str, Any]:
    """One Ray run (see the module docstring): seconds (reading, and in all), rows, and the
    seconds the actors spent in their tasks, summed over the actors (Ray Data's stats)."""
    start = time.perf_counter()
    block_size = max(1, min(1024, -(-n_docs // (4 * workers))))  # as the CLI
    dataset = read_input(input_path, block_size=block_size)
    read_seconds = time.perf_counter() - start
    output = out_dir / f"ray-{workers}"
    records = extract_dataset(dataset, model, workers=workers, batch_size=batch_size)
    write_records(records, output, "jsonl")
    seconds = time.perf_counter() - start
    n_rows = sum(1 for path in output.glob("*.jsonl") for _ in path.open(encoding="utf8"))
    return {
        "seconds": seconds,
        "read_seconds": read_seconds,
        "actor_task_seconds": actor_task_seconds(records),
        "n_docs": n_rows,
    }


def actor_task_seconds(dataset: Any) -> Optional[float]:
    """The wall time of the map_batches tasks of `dataset` (run), summed over its actors, from
    Ray Data's stats (``Dataset.get_stats_summary``, a developer API); None if unavailable."""
    try:
        stack = [dataset.get_stats_summary()]
    except Exception:  # the stats API changed
        return None
    while stack:
        summary = stack.pop()
        for op in summary.operators_stats:
            if "RelationExtractorActor" in op.operator_name and op.wall_time is not None:
                return float(op.wall_time.sum)
        stack.extend(summary.parents)
    return None


def actor_start(model: str) -> Dict[str, float]:
    """What an actor's start costs, in a fresh Python process (as a new Ray worker is): the
    seconds to import spacy_ie.ray (spaCy, thinc, Arrow, Ray) and to construct the actor
    (``spacy.load``)."""
    code = (
        "import json, sys, time; start = time.perf_counter(); "
        "from spacy_ie.ray import RelationExtractorActor; imported = time.perf_counter() - start; "
        "print(json.dumps({'import_seconds': imported, "
        "'load_seconds': RelationExtractorActor(sys.argv[1]).load_seconds}))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, model], capture_output=True, text=True, check=True
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


def per_doc_costs(model: str, texts: List[str], batch_size: int) -> Dict[str, float]:
    """Microseconds per document of each step of an actor call and of the JSONL writer, on
    `texts`, in this process."""
    actor = RelationExtractorActor(model, batch_size=batch_size)
    nlp = actor.nlp
    list(nlp.pipe(texts[:50]))  # warm-up
    docs: List[Any] = []
    pipe = timed(lambda: docs.extend(nlp.pipe(texts, batch_size=batch_size)))
    records: List[Dict[str, Any]] = []
    to_records = timed(lambda: records.extend(doc_to_record(doc) for doc in docs))
    batch = pa.table({"id": pa.array(range(len(texts)), pa.int64()), "text": texts})
    tables: List[pa.Table] = []
    to_arrow = timed(lambda: tables.append(actor.to_table(batch, records, [])))
    table = tables[0]
    object_store = timed(lambda: ray.get(ray.put(table)))
    rows = table.to_pylist()
    lines = timed(
        lambda: [
            json.dumps(row_to_record(r), ensure_ascii=False, separators=(",", ":")) for r in rows
        ]
    )
    n = len(texts)
    return {
        "nlp_pipe_us": 1e6 * pipe / n,
        "doc_to_record_us": 1e6 * to_records / n,
        "arrow_rows_us": 1e6 * to_arrow / n,
        "object_store_put_get_us": 1e6 * object_store / n,
        "jsonl_line_us": 1e6 * lines / n,
    }


def main(
    model: str = typer.Argument(..., help="Pipeline directory (the CoNLL04 CNN pipeline)"),
    data_dir: Path = typer.Argument(..., help="The datasets folder (../shared/datasets)"),
    n_docs: int = typer.Option(50_000, "--n-docs", min=1, help="Documents in the input"),
    batch_size: int = typer.Option(
        64, "--batch-size", min=1, help="nlp.pipe / map_batches batch size"
    ),
    settings: str = typer.Option(
        "local-1,local-2,ray-1,ray-2", help="Comma-separated settings to run"
    ),
    cost_docs: int = typer.Option(
        2000, "--cost-docs", min=50, help="Documents for the per-document costs"
    ),
    output: Optional[Path] = typer.Option(None, "--output", help="Also write the figures as JSON"),
) -> None:
    model = str(Path(model).resolve()) if Path(model).exists() else model
    with tempfile.TemporaryDirectory() as tmp:
        tmp_dir = Path(tmp)
        input_path = tmp_dir / "input.jsonl"
        srsly.write_jsonl(input_path, extract_input(data_dir, n_docs))
        texts = [text for text, _ in read_documents(input_path)]
        tokenizer = spacy.load(model).tokenizer
        n_words = sum(sum(1 for t in doc if not t.is_space) for doc in tokenizer.pipe(texts))
        threads = os.environ.get("OMP_NUM_THREADS")
        print(f"Input: {n_docs} docs, {n_words} words; batch size {batch_size}")
        print(f"OMP_NUM_THREADS={threads}, {os.cpu_count()} CPUs")

        ray_start = timed(lambda: init_ray(num_cpus=os.cpu_count(), logging_level="WARNING"))
        results: Dict[str, Dict[str, Any]] = {}
        for setting in [s.strip() for s in settings.split(",") if s.strip()]:
            engine, n = setting.split("-")
            if engine == "local":
                result = run_local(model, input_path, tmp_dir, int(n), batch_size)
            else:
                result = run_ray(model, input_path, tmp_dir, int(n), batch_size, n_docs)
            if result["n_docs"] != n_docs:
                raise RuntimeError(f"{setting}: {result['n_docs']} records for {n_docs} docs")
            result["docs_per_s"] = n_docs / result["seconds"]
            result["words_per_s"] = n_words / result["seconds"]
            results[setting] = result
            extra = f" (reading {result['read_seconds']:.1f}s)" if "read_seconds" in result else ""
            print(
                f"{setting:8} {result['seconds']:8.1f}s{extra}  "
                f"{result['docs_per_s']:8,.0f} docs/s  {result['words_per_s']:9,.0f} words/s"
            )

        ratios = {}
        for a, b in (("ray-2", "ray-1"), ("ray-1", "local-1"), ("local-2", "local-1")):
            if a in results and b in results:
                ratios[f"{a} / {b}"] = results[a]["docs_per_s"] / results[b]["docs_per_s"]
                print(f"{a} / {b}: {ratios[f'{a} / {b}']:.2f}")

        start = actor_start(model)
        parse_rate = n_docs / timed(lambda: sum(1 for _ in iter_input(input_path)))
        read_rate = per_worker = None
        if "ray-1" in results:
            read_rate = n_docs / results["ray-1"]["read_seconds"]
            if results["ray-1"]["actor_task_seconds"]:
                per_worker = n_docs / results["ray-1"]["actor_task_seconds"]
        costs = per_doc_costs(model, texts[:cost_docs], batch_size)
        print(
            f"ray.init: {ray_start:.1f}s; one actor's start in a fresh process: imports "
            f"{start['import_seconds']:.1f}s + spacy.load {start['load_seconds']:.1f}s"
        )
        print(f"driver parsing the input alone: {parse_rate:,.0f} docs/s")
        if read_rate is not None:
            print(
                "driver reading into the object store (ray-1, with Ray's per-block metadata "
                f"tasks): {read_rate:,.0f} docs/s"
            )
        if per_worker is not None:
            print(
                f"one Ray worker inside its tasks (ray-1, Ray Data's stats): {per_worker:,.0f} "
                f"docs/s, {per_worker * n_words / n_docs:,.0f} words/s"
            )
        for setting, result in results.items():
            if result.get("actor_task_seconds"):
                workers = int(setting.split("-")[1])
                in_tasks = result["actor_task_seconds"] / workers
                rest = result["seconds"] - result["read_seconds"] - in_tasks
                print(
                    f"{setting}: {result['seconds']:.1f}s = reading {result['read_seconds']:.1f}s "
                    f"+ actors in tasks {in_tasks:.1f}s each + the rest {rest:.1f}s "
                    "(actor start-up, scheduling, writing)"
                )
        print("per document (µs): " + ", ".join(f"{k[:-3]} {v:.0f}" for k, v in costs.items()))
        rows = sum(v for k, v in costs.items() if k != "nlp_pipe_us")
        share = rows / costs["nlp_pipe_us"]
        print(f"rows (record + Arrow + object store + JSONL line) / nlp.pipe: {100 * share:.1f}%")
    ray.shutdown()
    if output is not None:
        figures = {
            "model": model,
            "n_docs": n_docs,
            "n_words": n_words,
            "batch_size": batch_size,
            "cpus": os.cpu_count(),
            "omp_num_threads": threads,
            "settings": results,
            "ratios": ratios,
            "ray_init_seconds": ray_start,
            "actor_start": start,
            "driver_parse_docs_per_s": parse_rate,
            "driver_read_docs_per_s": read_rate,
            "ray_worker_docs_per_s": per_worker,
            "per_doc_costs_us": costs,
        }
        output.parent.mkdir(parents=True, exist_ok=True)
        srsly.write_json(output, figures)


if __name__ == "__main__":
    typer.run(main)
