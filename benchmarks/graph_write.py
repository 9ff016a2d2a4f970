"""Knowledge-graph writing speed (issue 28): how fast extraction records go into the embedded
LadybugDB store, what ``extract --graph`` adds to ``extract``'s wall time, and how fast a one-hop
neighbourhood query answers on the graph written.

    python -m spacy_ie.datasets.extract_input ../shared/datasets /work/models/graph/input.jsonl --n-docs 50000
    OMP_NUM_THREADS=1 python benchmarks/graph_write.py MODEL /work/models/graph/input.jsonl \\
        --work-dir /work/models/graph --output benchmarks/results/graph_write.json

Steps (each command a fresh ``python -m spacy_ie`` process, as a user runs it):

1. ``extract MODEL INPUT -o records.jsonl`` and ``extract MODEL INPUT -o records.jsonl --graph
   kg.lbug`` (a new graph each time) back to back, `--repeats` times: wall seconds of each, and
   the extra time of ``--graph`` (the relative overhead, per pair). Both load the pipeline; the
   difference is the graph.
2. Writing alone: the records of step 1 (read from the JSONL file beforehand) written into a new
   graph with `spacy_ie.graph.write_graph`, `--repeats` times: documents, mentions and
   relations per second of wall time (rows built, Arrow tables, transactions, the final
   checkpoint), and the seconds inside the store's transactions. Also on the records that hold
   at least one relation (a relation-dense input: the rate of a corpus like CoNLL04's). The
   imports of ladybug and pyarrow, a one-time cost of a process, are done before the timings
   (``import_seconds``: what was left of them at that point).
3. Queries on the graph of step 1: a one-hop neighbourhood, ``MATCH (e:Entity {key: $key})
   -[r:RELATION]-(n:Entity) RETURN n.key, n.text, r.label, r.score, r.doc_id``, for
   `--n-queries` entities drawn at random (seed 0) among those with a relation, each query timed
   from the call to the last row read, after 20 warm-up queries: median and p95 milliseconds;
   also for entities drawn among all.

The figures include the machine's load (1-minute load average before and after each run): on a
shared machine, compare the pairs run back to back.
"""
import json
import os
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

import srsly
import typer

from spacy_ie.graph import write_graph
from spacy_ie.graph.store import LadybugStore

NEIGHBOURHOOD = ("MATCH (e:Entity {key: $key})-[r:RELATION]-(n:Entity) "
                 "RETURN n.key, n.text, r.label, r.score, r.doc_id")  # fmt: skip


def load() -> float:
    return round(os.getloadavg()[0], 2)


def run_extract(model: str, input_path: Path, out: Path, graph: Optional[Path]) -> Dict[str, Any]:
    """One ``python -m spacy_ie extract`` process: wall seconds and the load around it."""
    cmd = [sys.executable, "-m", "spacy_ie", "extract", model, str(input_path), "-o", str(out)]
    if graph is not None:
        if graph.exists():
            graph.unlink()
        cmd += ["--graph", str(graph)]
    before = load()
    start = time.perf_counter()
    result = subprocess.run(cmd, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{result.stderr}")
    return {"seconds": seconds, "load_before": before, "load_after": load(),
            "stderr_tail": result.stderr.strip().splitlines()[-4:]}  # fmt: skip


def time_write(records: List[Dict[str, Any]], graph: Path) -> Dict[str, Any]:
    """Write `records` into a new graph: rates over the wall time, and the store's seconds."""
    if graph.exists():
        graph.unlink()
    before = load()
    start = time.perf_counter()
    summary = write_graph(records, graph)
    seconds = time.perf_counter() - start
    return {
        "seconds": seconds,
        "store_seconds": summary.seconds,
        "n_documents": summary.n_documents,
        "n_mentions": summary.n_mentions,
        "n_relations": summary.n_relations,
        "n_batches": summary.n_batches,
        "documents_per_s": summary.n_documents / seconds,
        "mentions_per_s": summary.n_mentions / seconds,
        "relations_per_s": summary.n_relations / seconds,
        "load_before": before,
        "load_after": load(),
    }


def time_queries(graph: Path, keys: List[str]) -> Dict[str, Any]:
    """Median and p95 milliseconds of the neighbourhood query for each of `keys`."""
    with LadybugStore(graph, read_only=True) as store:
        for key in keys[:20]:
            list(store.query(NEIGHBOURHOOD, {"key": key})[1])
        times, rows = [], 0
        for key in keys:
            start = time.perf_counter()
            rows += len(list(store.query(NEIGHBOURHOOD, {"key": key})[1]))
            times.append(1000 * (time.perf_counter() - start))
    times.sort()
    return {"n_queries": len(keys), "median_ms": statistics.median(times),
            "p95_ms": times[int(0.95 * (len(times) - 1))], "max_ms": times[-1],
            "mean_rows": rows / len(keys)}  # fmt: skip


def main(
    model: str = typer.Argument(..., help="Pipeline directory (the CoNLL04 CNN pipeline)"),
    input_path: Path = typer.Argument(..., help="JSONL input (spacy_ie.datasets.extract_input)"),
    work_dir: Path = typer.Option(..., "--work-dir", help="Where the records and graphs go"),
    repeats: int = typer.Option(2, "--repeats", min=1, help="Pairs of extract runs, and writes"),
    n_queries: int = typer.Option(1000, "--n-queries", min=20, help="Neighbourhood queries"),
    output: Optional[Path] = typer.Option(None, "--output", help="Also write the figures as JSON"),
) -> None:
    work_dir.mkdir(parents=True, exist_ok=True)
    records_path, graph = work_dir / "records.jsonl", work_dir / "kg.lbug"
    figures: Dict[str, Any] = {
        "model": model, "input": str(input_path), "cpus": os.cpu_count(),
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"), "extract": [],
    }  # fmt: skip
    for _ in range(repeats):
        alone = run_extract(model, input_path, records_path, None)
        with_graph = run_extract(model, input_path, records_path, graph)
        pair = {"alone": alone, "graph": with_graph,
                "extra_seconds": with_graph["seconds"] - alone["seconds"],
                "overhead": with_graph["seconds"] / alone["seconds"] - 1}  # fmt: skip
        figures["extract"].append(pair)
        print(f"extract {alone['seconds']:.1f}s, with --graph {with_graph['seconds']:.1f}s: "
              f"{100 * pair['overhead']:+.1f}% (load {alone['load_before']} -> "
              f"{with_graph['load_after']})", flush=True)  # fmt: skip
    start = time.perf_counter()
    import ladybug  # noqa: F401
    import pyarrow  # noqa: F401

    figures["import_seconds"] = time.perf_counter() - start
    records = list(srsly.read_jsonl(records_path))
    figures["n_docs"] = len(records)
    figures["n_entities"] = sum(len(r["entities"]) for r in records)
    figures["n_relations"] = sum(len(r["relations"]) for r in records)
    dense = [r for r in records if r["relations"]]
    for name, subset in (("write", records), ("write_relation_dense", dense)):
        figures[name] = []
        for _ in range(repeats):
            timing = time_write(subset, work_dir / f"{name}.lbug")
            figures[name].append(timing)
            print(f"{name}: {timing['n_documents']} docs, {timing['n_relations']} relations in "
                  f"{timing['seconds']:.2f}s: {timing['relations_per_s']:,.0f} relations/s, "
                  f"{timing['documents_per_s']:,.0f} docs/s (store "
                  f"{timing['store_seconds']:.2f}s, load {timing['load_before']})", flush=True)  # fmt: skip
    with LadybugStore(graph, read_only=True) as store:
        figures["graph"] = store.counts()
        _, rows = store.query("MATCH (e:Entity) OPTIONAL MATCH (e)-[r:RELATION]-() "
                              "RETURN e.key AS key, count(r) AS n")  # fmt: skip
        degrees = {row["key"]: row["n"] for row in rows}
    rng = random.Random(0)
    related = sorted(k for k, n in degrees.items() if n > 0)
    figures["queries"] = {
        "with_relations": time_queries(graph, [rng.choice(related) for _ in range(n_queries)]),
        "any_entity": time_queries(graph, [rng.choice(sorted(degrees)) for _ in range(n_queries)]),
        "max_degree": max(degrees.values()),
    }
    print(json.dumps(figures["queries"], indent=2))
    for path in work_dir.glob("write*.lbug*"):
        path.unlink()
    if output is not None:
        output.parent.mkdir(parents=True, exist_ok=True)
        srsly.write_json(output, figures)


if __name__ == "__main__":
    typer.run(main)
