"""``nlp.pipe(n_process=2)`` against one process, with and without the relation extractor.

    OMP_NUM_THREADS=1 python benchmarks/multiprocess.py MODEL [--data-dir ../shared/datasets]
        [--copies 7] [--batch-size 64] [--repeats 2] [--stock-srsly]

MODEL is a trained tok2vec -> ner -> relation_extractor pipeline (e.g. the `conll04` workflow's
``training/conll04/model-best``). The texts are the 288 CoNLL04 test sentences (SpERT JSON,
tokens joined by spaces) repeated `copies` times (2,016 with 7, as in issue #15). For each of
the four settings (relation extractor disabled / enabled, n_process 1 / 2) the wall time of
consuming ``nlp.pipe(texts, n_process=..., batch_size=...)`` is measured, best of `repeats`,
with the CPU seconds of the parent process and of the worker processes of that run; the
consumer reads ``doc._.relations`` of every Doc (as ``spacy_ie extract`` does). Set
OMP_NUM_THREADS=1 (single-threaded BLAS), as the issue did.

Then where the time goes: with ``n_process > 1`` the parent process alone turns every Doc back
from bytes (spaCy's ``Language._multiprocessing_pipe``: ``Doc(vocab).from_bytes`` per Doc, the
workers ship ``Doc.to_bytes()``), so the parent's per-Doc work (deserialization, and whatever
the consumer does) is the serial part that bounds the speed-up (Amdahl's law). The script
times (CPU time, one process) each component per Doc, the size and cost of ``Doc.to_bytes()``
and ``from_bytes`` per Doc with and without relations, and the read of ``doc._.relations``.
What it found: a Doc with relations has a non-empty ``doc.user_data``, which costs
``to_bytes``/``from_bytes`` two more srsly msgpack calls, each dominated by srsly's lookup of
its msgpack hooks (catalogue's entry points and global registry, on every call); spacy_ie
caches that lookup (spacy_ie/_srsly.py). ``--stock-srsly`` measures without it, for comparison.

Target (issue #15): the speed-up with the relation extractor within 10% of the speed-up
without it.
"""
import gc
import json
import os
import resource
import time
from pathlib import Path
from typing import Dict, List, Sequence, Tuple

import spacy
import typer
from spacy.language import Language
from spacy.tokens import Doc

from spacy_ie._srsly import restore_msgpack_hooks

CONLL04_TEST = Path("conll04/conll04_test.json")


def texts_of(path: Path, copies: int) -> List[str]:
    """The CoNLL04 sentences of `path` as text, repeated `copies` times."""
    sentences = [" ".join(r["tokens"]) for r in json.loads(path.read_text(encoding="utf8"))]
    return sentences * copies


def run(nlp: Language, texts: Sequence[str], n_process: int, batch_size: int, disable: Sequence[str]) -> Tuple[float, float, float]:
    """Consume ``nlp.pipe`` over `texts`, reading every Doc's relations. RETURNS: (wall
    seconds, CPU seconds of this (parent) process, CPU seconds of the worker processes)."""
    gc.collect()
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = time.process_time()
    start = time.perf_counter()
    n_relations = 0
    for doc in nlp.pipe(texts, n_process=n_process, batch_size=batch_size, disable=list(disable)):
        if not disable:
            n_relations += len(doc._.relations)
    wall = time.perf_counter() - start
    cpu = time.process_time() - cpu
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    workers = (after.ru_utime + after.ru_stime) - (children.ru_utime + children.ru_stime)
    return wall, cpu, workers


def cpu_bound_speedup(one: Tuple[float, float, float], many: Tuple[float, float, float], n_process: int, cores: int) -> float:
    """The speed-up an idle machine with `cores` cores would give if CPU time were the only
    limit: the one-process CPU time over the longest of the parent's CPU time (the serial part),
    the workers' CPU time shared among `n_process` workers, and all of it shared among `cores`."""
    _, parent, workers = many
    return one[1] / max(parent, workers / n_process, (parent + workers) / cores)


def per_doc_costs(nlp: Language, texts: Sequence[str], component: str) -> Dict[str, float]:
    """In one process: CPU ms per Doc of each component, of ``to_bytes``/``from_bytes`` with and
    without the relations, the bytes per Doc, and the read of ``doc._.relations``."""
    docs = [nlp.make_doc(t) for t in texts]
    costs: Dict[str, float] = {}
    for name, proc in nlp.pipeline:
        start = time.process_time()
        docs = list(proc.pipe(docs, batch_size=64))
        costs[f"{name}_ms"] = 1000 * (time.process_time() - start) / len(docs)
    without = [d.copy() for d in docs]
    for doc in without:
        doc.user_data.clear()
    back: Dict[str, List[Doc]] = {}
    for label, batch in (("with_relations", docs), ("without_relations", without)):
        start = time.process_time()
        blobs = [d.to_bytes() for d in batch]
        costs[f"to_bytes_ms_{label}"] = 1000 * (time.process_time() - start) / len(batch)
        costs[f"bytes_per_doc_{label}"] = sum(map(len, blobs)) / len(blobs)
        start = time.process_time()
        back[label] = [Doc(nlp.vocab).from_bytes(b) for b in blobs]
        costs[f"from_bytes_ms_{label}"] = 1000 * (time.process_time() - start) / len(batch)
    start = time.process_time()
    n = sum(len(d._.relations) for d in back["with_relations"])
    costs["read_relations_ms"] = 1000 * (time.process_time() - start) / len(docs)
    costs["relations_per_doc"] = n / len(docs)
    return costs


def main(
    model: Path = typer.Argument(..., help="A trained tok2vec -> ner -> relation_extractor pipeline."),
    data_dir: Path = typer.Option(Path("../shared/datasets"), help="Holds conll04/."),
    copies: int = typer.Option(7, help="Copies of the 288 CoNLL04 test sentences."),
    batch_size: int = typer.Option(64, help="nlp.pipe batch size."),
    n_process: int = typer.Option(2, help="Processes for the parallel runs."),
    repeats: int = typer.Option(2, help="Passes per setting; the best is reported."),
    component: str = typer.Option("relation_extractor", help="The component to disable."),
    stock_srsly: bool = typer.Option(False, "--stock-srsly", help="Measure without spacy_ie's srsly tweak (before the fix)."),
) -> None:
    nlp = spacy.load(model)  # imports spacy_ie, which caches srsly's msgpack hooks (spacy_ie/_srsly.py)
    if stock_srsly:  # undo that, after loading
        restore_msgpack_hooks()
    texts = texts_of(data_dir / CONLL04_TEST, copies)
    run(nlp, texts[:100], 1, batch_size, ())  # warm-up
    times: Dict[str, Dict[int, Tuple[float, float, float]]] = {}
    for label, disable in (("without", [component]), ("with", [])):
        times[label] = {}
        for n in (1, n_process):
            times[label][n] = min(run(nlp, texts, n, batch_size, disable) for _ in range(repeats))
            wall, parent, workers = times[label][n]
            print(f"{label} {component}, n_process={n}: {wall:.2f} s wall, CPU {parent:.2f} s parent "
                  f"+ {workers:.2f} s workers", flush=True)
    speedup = {label: t[1][0] / t[n_process][0] for label, t in times.items()}
    print()
    lookup = "stock srsly (hooks looked up on every msgpack call)" if stock_srsly else "srsly hooks cached (spacy_ie/_srsly.py)"
    print(f"{len(texts)} docs, batch_size={batch_size}, best of {repeats}, OMP_NUM_THREADS=1, {lookup}")
    for label in ("without", "with"):
        t = times[label]
        print(f"{label:>7} {component}: {t[1][0]:.2f} s -> {t[n_process][0]:.2f} s with n_process={n_process}: "
              f"{speedup[label]:.2f}x (parent CPU {t[n_process][1]:.2f} s)")
    ratio = speedup["with"] / speedup["without"]
    print(f"target: speed-up with {component} within 10% of the speed-up without: "
          f"{ratio:.2f} of it -> {'met' if ratio >= 0.9 else 'NOT met'}")
    # On a busy machine wall times say little; the CPU seconds bound what an idle one would do.
    cores = os.cpu_count() or 1
    estimate = {label: cpu_bound_speedup(t[1], t[n_process], n_process, cores) for label, t in times.items()}
    print(f"CPU-bound estimate for an idle {cores}-core machine (T1 = parent CPU of one process; "
          f"Tn = max(parent, workers / n_process, (parent + workers) / cores)): "
          f"without {estimate['without']:.2f}x, with {estimate['with']:.2f}x, "
          f"{estimate['with'] / estimate['without']:.2f} of it")
    print()
    print("per-Doc costs in one process (CPU ms, bytes):")
    for key, value in per_doc_costs(nlp, texts[:576], component).items():
        print(f"  {key}: {value:.3f}")


if __name__ == "__main__":
    typer.run(main)
