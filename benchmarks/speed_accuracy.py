"""Speed against accuracy for several pipelines, in one run (issue 27's table): CoNLL04 test end
to end F1 beside CPU (or GPU, `--gpu-id`) words/s and size on disk, and a plot of F1 against
words/s.

    OMP_NUM_THREADS=1 HF_HUB_OFFLINE=1 python benchmarks/speed_accuracy.py corpus/conll04/test.spacy \\
        "CNN joint=training/conll04_joint_cnn/model-tuned" "MiniLM joint=training/conll04_joint/model-tuned" \\
        --repeats 3 --output benchmarks/results/speed_accuracy.json --plot docs/img/speed_accuracy.png

Speed: ``nlp.pipe`` over the raw texts of DATA, the best of `repeats` passes, the pipelines
alternating pass by pass (a change in a shared machine's load hits all of them), wall time and
CPU time of this process; all components run. Accuracy: `spacy_ie.evaluation.evaluate_relations`
(what ``spacy_ie evaluate`` prints): relations end to end (strict micro and macro F1, the
pipeline's own entities, its own thresholds) and the entity component's F1 (``ner``: ents_f;
``spancat``: spans_{key}_f). Size: the pipeline directory on disk. ``speedup_cpu``
(``speedup_wall``): CPU (wall-time) words/s against the first pipeline's (e.g. ``fp32=MODEL
int8=MODEL_INT8`` for `spacy_ie quantize`'s speed-up; this script replaces the earlier
two-pipeline ``quantize_speed.py``).

On a GPU (``--gpu-id 0``): ``spacy.require_gpu`` before loading; words/s by wall time (CPU time
then counts the host's share only), ``speedup_wall`` beside ``speedup_cpu``; ``--mixed-precision`` loads every
transformer with spacy-transformers' ``mixed_precision`` (PyTorch autocast, fp16 matrix products).
"""
import json
import platform
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import spacy
import typer
from spacy.tokens import DocBin

from spacy_ie.evaluation import evaluate_relations, load_examples
from spacy_ie.plots import _matplotlib
from spacy_ie.quantize import directory_size


def entity_f(ner_scores: Dict[str, Any]) -> Optional[float]:
    """The entity F1 among an `evaluate_relations` result's ``ner`` scores (ents_f or the first
    spans_*_f), in percent; None without one."""
    for key, value in ner_scores.items():
        if (key == "ents_f" or (key.startswith("spans_") and key.endswith("_f"))) and value is not None:
            return round(100 * value, 2)
    return None


def plot(rows: Dict[str, Dict[str, Any]], path: Path, title: str, gpu: bool = False) -> None:
    """End-to-end F1 against CPU words/s (on a GPU: wall-time words/s), log scale, one labelled
    point per pipeline; labels alternate above and below the points in words/s order, so that
    neighbours do not overlap."""
    key = "wps_wall" if gpu else "wps_cpu"
    Figure, Canvas = _matplotlib()
    fig = Figure(figsize=(6.4, 4.2))
    Canvas(fig)
    ax = fig.add_subplot(1, 1, 1)
    by_speed = sorted(rows, key=lambda name: rows[name][key])
    for name, row in rows.items():
        ax.scatter(row[key], row["rel_micro_f"])
        ax.annotate(name, (row[key], row["rel_micro_f"]), textcoords="offset points",
                    xytext=(5, 4 if by_speed.index(name) % 2 == 0 else -11), fontsize=8)  # fmt: skip
    ax.set_xscale("log")
    ax.margins(x=0.25, y=0.15)  # room for the labels
    gpu_label, cpu_label = "GPU words per second (wall time", "CPU words per second (one thread"
    ax.set_xlabel(f"{gpu_label if gpu else cpu_label}, log scale)")
    ax.set_ylabel("end-to-end relation F1 (strict micro)")
    ax.set_title(title, fontsize=10)
    ax.grid(True, alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)


def _load(model: str, mixed_precision: bool) -> Any:
    """``spacy.load(model)``; with `mixed_precision`, every spacy-transformers transformer's
    ``mixed_precision`` setting on (a config override: the weights are the saved ones)."""
    nlp = spacy.load(model)
    if not mixed_precision:
        return nlp
    overrides = {
        f"components.{name}.model.mixed_precision": True
        for name in nlp.pipe_names
        if nlp.config["components"][name].get("factory") == "transformer"
    }
    return spacy.load(model, config=overrides) if overrides else nlp


def time_pipelines(
    loaded: Dict[str, Any], texts: List[str], batch_size: int, repeats: int
) -> Tuple[Dict[str, float], Dict[str, float]]:
    """The best of `repeats` ``nlp.pipe`` passes over `texts` for each pipeline, alternating
    pass by pass after a 20-text warm-up: (wall seconds, CPU seconds of this process) by name."""
    for nlp in loaded.values():
        for _ in nlp.pipe(texts[:20], batch_size=batch_size):
            pass
    wall = {name: float("inf") for name in loaded}
    cpu = dict(wall)
    for _ in range(repeats):
        for name, nlp in loaded.items():
            start_wall, start_cpu = time.perf_counter(), time.process_time()
            for _ in nlp.pipe(texts, batch_size=batch_size):
                pass
            wall[name] = min(wall[name], time.perf_counter() - start_wall)
            cpu[name] = min(cpu[name], time.process_time() - start_cpu)
    return wall, cpu


def main(
    data: Path = typer.Argument(..., help="Test DocBin with gold entities and relations."),
    pipelines: List[str] = typer.Argument(..., help="NAME=MODEL_DIR, one per pipeline."),
    repeats: int = typer.Option(3, help="Passes per pipeline; the best is reported."),
    batch_size: int = typer.Option(64, help="nlp.pipe batch size."),
    output: Optional[Path] = typer.Option(None, help="Write the results as JSON."),
    plot_path: Optional[Path] = typer.Option(None, "--plot", help="Write the F1/words-per-second plot (PNG)."),
    gpu_id: int = typer.Option(-1, "--gpu-id", help="GPU to run on; -1: CPU."),
    mixed_precision: bool = typer.Option(False, help="Transformers with mixed precision (GPU only)."),
) -> None:
    models = {}
    for item in pipelines:
        name, sep, model = item.partition("=")
        if not sep or not name or not model:
            raise typer.BadParameter(f"expected NAME=MODEL_DIR, got {item!r}")
        models[name] = model
    machine = f"{platform.machine()} {platform.processor() or ''}".strip()
    if gpu_id >= 0:
        spacy.require_gpu(gpu_id)
        import torch

        machine = torch.cuda.get_device_name(gpu_id)
    elif mixed_precision:
        raise typer.BadParameter("--mixed-precision needs a GPU (--gpu-id)")
    loaded = {name: _load(model, mixed_precision) for name, model in models.items()}
    first = next(iter(loaded.values()))
    texts = [doc.text for doc in DocBin().from_disk(data).get_docs(first.vocab)]
    n_words = sum(len(first.make_doc(text)) for text in texts)
    wall, cpu = time_pipelines(loaded, texts, batch_size, repeats)
    rows: Dict[str, Dict[str, Any]] = {}
    for name, nlp in loaded.items():
        scores = evaluate_relations(nlp, load_examples(nlp, data), source=str(data))
        view = scores["views"]["end_to_end"]["scores"]
        rows[name] = {
            "model": models[name],
            "pipeline": nlp.pipe_names,
            "size_mb": round(directory_size(models[name]) / 2**20, 1),
            "wps_wall": round(n_words / wall[name]),
            "wps_cpu": round(n_words / cpu[name]),
            "speedup_cpu": round(cpu[next(iter(loaded))] / cpu[name], 2),
            "speedup_wall": round(wall[next(iter(loaded))] / wall[name], 2),
            "entity_f": entity_f(scores.get("ner", {})),
            "rel_micro_f": round(100 * view["rel_micro_f"], 2),
            "rel_macro_f": round(100 * view["rel_macro_f"], 2),
        }
    results = {
        "data": str(data), "n_docs": len(texts), "n_words": n_words, "batch_size": batch_size,
        "repeats": repeats, "machine": machine, "gpu_id": gpu_id, "mixed_precision": mixed_precision,
        "pipelines": rows,
    }  # fmt: skip
    print(f"{machine}: {len(texts)} docs, {n_words} words, batch_size={batch_size}, best of {repeats}")
    speedup = "speedup_wall" if gpu_id >= 0 else "speedup_cpu"
    print(f"{'pipeline':28} {'MB':>6} {'wps (wall)':>11} {'wps (CPU)':>10} {'x first':>8} {'ent F':>6} {'rel F':>6} {'macro':>6}")
    for name, row in rows.items():
        ent = "-" if row["entity_f"] is None else f"{row['entity_f']:.2f}"
        print(f"{name:28} {row['size_mb']:6.1f} {row['wps_wall']:11,} {row['wps_cpu']:10,} "
              f"{row[speedup]:8.2f} {ent:>6} {row['rel_micro_f']:6.2f} {row['rel_macro_f']:6.2f}")  # fmt: skip
    if output is not None:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(json.dumps(results, indent=2) + "\n", encoding="utf8")
        print(f"written to {output}")
    if plot_path is not None:
        plot(rows, plot_path, f"{data.name}: {len(texts)} docs, {n_words:,} words", gpu=gpu_id >= 0)
        print(f"plot written to {plot_path}")


if __name__ == "__main__":
    typer.run(main)
