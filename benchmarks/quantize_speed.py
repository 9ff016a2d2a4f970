"""A pipeline against its int8 copy (`python -m spacy_ie quantize`): CPU words/s, accuracy and
size on disk, in one run.

    python benchmarks/quantize_speed.py FP32_MODEL INT8_MODEL DATA [--repeats 3] [--batch-size 64] [--output results.json]

Speed: ``nlp.pipe`` over the raw texts of the DocBin DATA, the best of `repeats` passes, the
two pipelines alternating pass by pass (so that a change in a shared machine's load hits
both), in wall time and in CPU time of this process; all components run. Accuracy:
``nlp.evaluate`` on DATA read by `spacy_ie.RelationCorpus.v1`: end to end (the pipeline's own
entities) when it has a ``ner``, else on the gold entities; ``ents_f`` and ``rel_micro_f``.
Run with OMP_NUM_THREADS=1 (and HF_HUB_OFFLINE=1 without a hub) for one-core figures.
"""
import json
import platform
import time
from pathlib import Path
from typing import Dict, Optional

import spacy
import torch
import typer
from spacy.tokens import DocBin

from spacy_ie.quantize import directory_size
from spacy_ie.training.corpus import create_relation_corpus


def accuracy(nlp, data: Path) -> Dict[str, Optional[float]]:
    """``ents_f`` (None without a ner) and ``rel_micro_f`` on `data`, in percent."""
    end_to_end = "ner" in nlp.pipe_names
    examples = list(create_relation_corpus(data, gold_entities=not end_to_end)(nlp))
    scores = nlp.evaluate(examples)
    return {
        "view": "end to end" if end_to_end else "gold entities",
        "ents_f": round(100 * scores["ents_f"], 2) if end_to_end else None,
        "rel_micro_f": round(100 * scores["rel_micro_f"], 2),
    }


def main(
    fp32_model: Path,
    int8_model: Path,
    data: Path,
    repeats: int = typer.Option(3, help="Passes per pipeline; the best is reported."),
    batch_size: int = typer.Option(64, help="nlp.pipe batch size."),
    output: Optional[Path] = typer.Option(None, help="Write the results as JSON."),
) -> None:
    pipelines = {"fp32": spacy.load(fp32_model), "int8": spacy.load(int8_model)}
    texts = [doc.text for doc in DocBin().from_disk(data).get_docs(pipelines["fp32"].vocab)]
    n_words = sum(len(pipelines["fp32"].make_doc(text)) for text in texts)
    for nlp in pipelines.values():
        for _ in nlp.pipe(texts[:20], batch_size=batch_size):  # warm-up
            pass
    wall = {name: float("inf") for name in pipelines}
    cpu = dict(wall)
    for _ in range(repeats):
        for name, nlp in pipelines.items():
            start_wall, start_cpu = time.perf_counter(), time.process_time()
            for _ in nlp.pipe(texts, batch_size=batch_size):
                pass
            wall[name] = min(wall[name], time.perf_counter() - start_wall)
            cpu[name] = min(cpu[name], time.process_time() - start_cpu)
    results = {
        "data": str(data),
        "n_docs": len(texts),
        "n_words": n_words,
        "batch_size": batch_size,
        "repeats": repeats,
        "torch_threads": torch.get_num_threads(),
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
        "pipelines": {},
    }
    for name, path in (("fp32", fp32_model), ("int8", int8_model)):
        results["pipelines"][name] = {
            "model": str(path),
            "size_mb": round(directory_size(path) / 2**20, 1),
            "wps_wall": round(n_words / wall[name]),
            "wps_cpu": round(n_words / cpu[name]),
            **accuracy(pipelines[name], data),
        }
    fp32, int8 = results["pipelines"]["fp32"], results["pipelines"]["int8"]
    results["speedup_wall"] = round(int8["wps_wall"] / fp32["wps_wall"], 2)
    results["speedup_cpu"] = round(int8["wps_cpu"] / fp32["wps_cpu"], 2)
    print(f"{len(texts)} docs, {n_words} words, batch_size={batch_size}, best of {repeats}, "
          f"{results['torch_threads']} torch thread(s); accuracy: {fp32['view']}")
    print(f"{'':6} {'MB':>6} {'wps (wall)':>11} {'wps (CPU)':>10} {'ents F':>7} {'rel F':>6}")
    for name, row in results["pipelines"].items():
        ents = "-" if row["ents_f"] is None else f"{row['ents_f']:.2f}"
        print(f"{name:6} {row['size_mb']:6.1f} {row['wps_wall']:11,} {row['wps_cpu']:10,} {ents:>7} {row['rel_micro_f']:6.2f}")
    print(f"int8 speed-up: x{results['speedup_wall']} (wall), x{results['speedup_cpu']} (CPU)")
    if output is not None:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(json.dumps(results, indent=2) + "\n", encoding="utf8")
        print(f"written to {output}")


if __name__ == "__main__":
    typer.run(main)
