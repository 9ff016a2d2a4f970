"""TREC-6 text classification: spacy_ie.TextCatAttention.v1 against spaCy's textcat models.

    python -m spacy_ie.datasets.trec ../shared/datasets/trec corpus/trec
    python benchmarks/textcat_trec.py corpus/trec [--seeds 3] [--max-steps 3000] [--jobs 2] \
        [--output benchmarks/results/textcat_trec.json]

Every architecture is trained with configs/textcat_trec.cfg (spaCy's `textcat`, exclusive
classes) with only `[components.textcat.model]` swapped: the same encoder component (shared
through the listener block of the base config's textcat model), batcher, optimizer, seed and
step budget. `--config configs/textcat_trec_trf.cfg` runs the same comparison on a fine-tuned
transformer (set HF_HUB_OFFLINE=1 and `--paths-transformer-name` for a local model). The one
exception is `spacy.TextCatBOW.v3`, a sparse bag-of-n-grams model without token vectors: its
pipeline has no encoder. For each seed the model with the best dev `cats_score` (macro F1) is
kept and scored once on test. `--jobs N` trains N runs at once, each in a process of its own
with one thread (more throughput on a small machine; the timings then share the cores).

Reported per architecture, mean ± std over seeds: test accuracy and macro F1 (argmax over the
6 labels, F1 per label averaged: spaCy's `cats_macro_f` for exclusive classes), training time
(wall time of spaCy's training loop, dev evaluations included) and inference words/s on the
test texts (best of 3 passes of `nlp.pipe`, the whole pipeline, one process). The JSON file
holds every run and the settings.
"""
import json
import multiprocessing
import os
import platform
import statistics
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from io import StringIO
from pathlib import Path
from typing import Any, Dict, List, Optional

import numpy
import spacy
import thinc
import typer
from spacy.tokens import DocBin
from spacy.training.initialize import init_nlp
from spacy.training.loop import train as train_loop

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CONFIG = REPO_ROOT / "configs" / "textcat_trec.cfg"
LISTENER = "listener"  # placeholder for the listener block of the base config's textcat model
BOW = {
    "@architectures": "spacy.TextCatBOW.v3",
    "exclusive_classes": True,
    "ngram_size": 1,
    "no_output_layer": False,
    "length": 262144,
    "nO": None,
}
# name -> the [components.textcat.model] block; None: the block of the config file (ours).
ARCHITECTURES: Dict[str, Optional[Dict[str, Any]]] = {
    "spacy_ie.TextCatAttention.v1": None,
    "spacy.TextCatParametricAttention.v1": {
        "@architectures": "spacy.TextCatParametricAttention.v1",
        "exclusive_classes": True,
        "nO": None,
        "tok2vec": LISTENER,
    },
    "spacy.TextCatEnsemble.v2": {
        "@architectures": "spacy.TextCatEnsemble.v2",
        "nO": None,
        "tok2vec": LISTENER,
        "linear_model": BOW,
    },
    "spacy.TextCatBOW.v3": BOW,
    "spacy.TextCatReduce.v1": {
        "@architectures": "spacy.TextCatReduce.v1",
        "exclusive_classes": True,
        "use_reduce_first": False,
        "use_reduce_last": False,
        "use_reduce_max": True,
        "use_reduce_mean": True,
        "nO": None,
        "tok2vec": LISTENER,
    },
}


def run_overrides(
    corpus: Path, seed: int, max_steps: int, eval_frequency: int, transformer_name: Optional[str] = None
) -> Dict[str, Any]:
    """The config overrides (dotted keys) of one run: data, seed and step budget."""
    overrides = {
        "paths.train": str(corpus / "train.spacy"),
        "paths.dev": str(corpus / "dev.spacy"),
        "system.seed": seed,
        "training.max_steps": max_steps,
        "training.eval_frequency": min(eval_frequency, max_steps),
        "training.patience": 0,  # the step budget alone ends training: the same for all
        "training.logger.progress_bar": False,
    }
    if transformer_name is not None:
        overrides["paths.transformer_name"] = transformer_name
    return overrides


def make_config(config_path: Path, arch: str, overrides: Dict[str, Any]):
    """The base config with `overrides` and `arch`'s block as the textcat model; without an
    encoder listener in that block (TextCatBOW), the encoder component is removed."""
    config = spacy.util.load_config(config_path, overrides=overrides, interpolate=False)
    listener = config["components"]["textcat"]["model"]["tok2vec"]
    block = ARCHITECTURES[arch]
    if block is not None:
        config["components"]["textcat"]["model"] = _with_listener(block, listener)
    if not _uses_listener(config["components"]["textcat"]["model"]):
        for name in [p for p in config["nlp"]["pipeline"] if p != "textcat"]:
            config["nlp"]["pipeline"].remove(name)
            del config["components"][name]
    return config


def _with_listener(block: Any, listener: Dict[str, Any]) -> Any:
    """A deep copy of `block` with each LISTENER placeholder replaced by `listener`."""
    if block == LISTENER:
        return json.loads(json.dumps(listener))
    if isinstance(block, dict):
        return {key: _with_listener(value, listener) for key, value in block.items()}
    return block


def _uses_listener(block: Any) -> bool:
    if isinstance(block, dict):
        return "Listener" in str(block.get("@architectures", "")) or any(
            _uses_listener(v) for v in block.values()
        )
    return False


def scores(gold: List[str], pred: List[str], labels: List[str]) -> Dict[str, float]:
    gold_a, pred_a = numpy.asarray(gold), numpy.asarray(pred)
    f1s = []
    for label in labels:
        tp = float(((pred_a == label) & (gold_a == label)).sum())
        n_pred, n_gold = float((pred_a == label).sum()), float((gold_a == label).sum())
        p = tp / n_pred if n_pred else 0.0
        r = tp / n_gold if n_gold else 0.0
        f1s.append(2 * p * r / (p + r) if p + r else 0.0)
    return {"accuracy": float((gold_a == pred_a).mean()), "macro_f1": float(numpy.mean(f1s))}


def words_per_second(nlp, texts: List[str], repeats: int = 3) -> float:
    list(nlp.pipe(texts[:50]))  # warm-up
    best = float("inf")
    n_words = 0
    for _ in range(repeats):
        start = time.perf_counter()
        n_words = sum(len(doc) for doc in nlp.pipe(texts, batch_size=256))
        best = min(best, time.perf_counter() - start)
    return n_words / best


def run_one(config_path: Path, corpus: Path, arch: str, overrides: Dict[str, Any]) -> Dict[str, Any]:
    """Train `arch` with `overrides` (`run_overrides`), keep the best model on dev and score it
    on corpus/test.spacy. RETURNS: architecture, seed, train_time_s, accuracy, macro_f1, wps."""
    config = make_config(config_path, arch, overrides)
    with tempfile.TemporaryDirectory() as tmp:
        nlp = init_nlp(config)
        log = StringIO()
        start = time.perf_counter()
        train_loop(nlp, Path(tmp), stdout=log, stderr=log)
        train_time = time.perf_counter() - start
        best = spacy.load(Path(tmp) / "model-best")
    test_docs = list(DocBin().from_disk(corpus / "test.spacy").get_docs(best.vocab))
    texts = [doc.text for doc in test_docs]
    labels = list(best.get_pipe("textcat").labels)
    gold = [max(doc.cats, key=doc.cats.get) for doc in test_docs]
    pred = [max(doc.cats, key=doc.cats.get) for doc in best.pipe(texts, batch_size=256)]
    result = {"architecture": arch, "seed": overrides["system.seed"], "train_time_s": train_time}
    result.update(scores(gold, pred, labels))
    result["wps"] = words_per_second(best, texts)
    return result


def summarize(runs: List[Dict[str, Any]]) -> Dict[str, Dict[str, float]]:
    summary: Dict[str, Dict[str, float]] = {}
    for arch in dict.fromkeys(r["architecture"] for r in runs):
        rows = [r for r in runs if r["architecture"] == arch]
        summary[arch] = {}
        for key in ("accuracy", "macro_f1", "train_time_s", "wps"):
            values = [r[key] for r in rows]
            summary[arch][key] = statistics.mean(values)
            summary[arch][key + "_std"] = statistics.stdev(values) if len(values) > 1 else 0.0
    return summary


def print_table(summary: Dict[str, Dict[str, float]], n_seeds: int) -> None:
    head = f"{'architecture':<38} {'test acc':>15} {'test macro-F1':>15} {'train s':>8} {'words/s':>9}"
    print(f"\nTREC-6 test, mean ± std over {n_seeds} seed(s)\n{head}\n{'-' * len(head)}")
    for arch, s in summary.items():
        print(
            f"{arch:<38} {100 * s['accuracy']:>7.2f} ± {100 * s['accuracy_std']:<5.2f}"
            f" {100 * s['macro_f1']:>7.2f} ± {100 * s['macro_f1_std']:<5.2f}"
            f" {s['train_time_s']:>8.0f} {s['wps']:>9,.0f}"
        )


def main(
    corpus: Path = typer.Argument(..., help="Folder with train/dev/test.spacy from spacy_ie.datasets.trec"),
    seeds: int = typer.Option(3, help="Number of seeds (0, 1, ...) per architecture."),
    max_steps: int = typer.Option(3000, help="Training steps per run (the same for every model)."),
    eval_frequency: int = typer.Option(200, help="Steps between dev evaluations."),
    config: Path = typer.Option(DEFAULT_CONFIG, help="Base config; its textcat model is ours."),
    architectures: str = typer.Option(",".join(ARCHITECTURES), help="Comma-separated subset."),
    paths_transformer_name: Optional[str] = typer.Option(
        None, help="[paths] transformer_name of a transformer config: a hub name or a local directory."
    ),
    output: Path = typer.Option(REPO_ROOT / "benchmarks" / "results" / "textcat_trec.json", help="JSON results."),
    jobs: int = typer.Option(1, help="Runs trained at once, each in its own process with one thread."),
) -> None:
    names = [a.strip() for a in architectures.split(",") if a.strip()]
    unknown = [a for a in names if a not in ARCHITECTURES]
    if unknown:
        raise typer.BadParameter(f"unknown architectures {unknown}; known: {list(ARCHITECTURES)}")
    todo = [
        (arch, run_overrides(corpus, seed, max_steps, eval_frequency, paths_transformer_name))
        for arch in names
        for seed in range(seeds)
    ]
    pool = None
    if jobs > 1:
        # One thread per run: spawned workers read this when they import numpy and torch.
        os.environ["OMP_NUM_THREADS"] = "1"
        pool = ProcessPoolExecutor(jobs, multiprocessing.get_context("spawn"))
        futures = [pool.submit(run_one, config, corpus, arch, overrides) for arch, overrides in todo]
        results = (future.result() for future in futures)
    else:
        results = (run_one(config, corpus, arch, overrides) for arch, overrides in todo)
    runs = []
    for result in results:  # in submission order, each printed when it is done
        runs.append(result)
        print(
            f"{result['architecture']} seed={result['seed']}: acc={result['accuracy']:.4f}"
            f" macro_f1={result['macro_f1']:.4f} train={result['train_time_s']:.0f}s"
            f" wps={result['wps']:,.0f}",
            flush=True,
        )
    if pool is not None:
        pool.shutdown()
    summary = summarize(runs)
    print_table(summary, seeds)
    output.parent.mkdir(parents=True, exist_ok=True)
    settings = {
        "corpus": str(corpus),
        "config": str(config),
        "seeds": seeds,
        "max_steps": max_steps,
        "eval_frequency": eval_frequency,
        "jobs": jobs,
        "transformer_name": paths_transformer_name,
        "spacy": spacy.__version__,
        "thinc": thinc.__version__,
        "python": sys.version.split()[0],
        "machine": platform.platform(),
    }
    output.write_text(json.dumps({"settings": settings, "summary": summary, "runs": runs}, indent=2))
    print(f"\nWrote {output}")


if __name__ == "__main__":
    typer.run(main)
