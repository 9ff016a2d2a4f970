"""Inference speed of a pipeline's relation_extractor alone, on the gold entities of a DocBin.

    python benchmarks/relation_speed.py training/model-best corpus/test.spacy [--repeats 3] [--batch-size 64] [--gpu-id 0]
    python benchmarks/relation_speed.py training/model-best corpus/train.spacy --train-batches 5 --batch-size 32 --limit 192

Prints words per second (wps) of the relation extractor over the Docs of the DocBin with their
gold entities (``doc.ents`` and span groups kept, relations removed; every other component
disabled), the best of `repeats` passes, with the number of candidate pairs. Compares
relation models on the same entities: `spacy_ie.RelationModel.v1` (which needs its tok2vec or
transformer component, so that one runs too and is included in the time) and
`spacy_ie.TypedMarkerRelationModel.v1` in its exact and packed modes (`--mode` overrides the
saved pipeline's mode, for a marker model).

With ``--train-batches N`` it also times N training updates (``nlp.update`` of the relation
extractor, and of the tok2vec/transformer it listens to, on batches of `batch-size` Docs with
their gold entities, the pipeline's own optimizer from its config) after the inference passes,
and prints seconds per update and training words/s. Training speed depends on the number of
encoder passes per Doc (one per candidate pair in the marker model's exact mode), which this
makes comparable between models without running a whole `spacy train`.
"""
import time
from pathlib import Path
from typing import List, Optional

import spacy
import typer
from spacy.tokens import Doc, DocBin
from spacy.training import Example
from spacy.util import registry

from spacy_ie.training.corpus import copy_gold_spans


def measure(nlp, docs: List[Doc], batch_size: int, repeats: int, keep: List[str]) -> float:
    """Best words/s over `repeats` passes of the components `keep` over copies of `docs`."""
    best = float("inf")
    n_words = sum(len(doc) for doc in docs)
    for _ in range(repeats):
        copies = [doc.copy() for doc in docs]
        start = time.perf_counter()
        with nlp.select_pipes(enable=keep):
            for _ in nlp.pipe(copies, batch_size=batch_size):
                pass
        best = min(best, time.perf_counter() - start)
    return n_words / best


def measure_training(nlp, docs: List[Doc], batch_size: int, n_batches: int, keep: List[str]) -> float:
    """Seconds per `nlp.update` of the components `keep`, averaged over `n_batches` batches of
    `batch_size` Docs (the first batch is a warm-up and not timed)."""
    examples = []
    for doc in docs:
        eg = Example(nlp.make_doc(doc.text), doc)
        copy_gold_spans(eg)
        examples.append(eg)
    # the saved config keeps its ${...} variables (e.g. total_steps = ${training.max_steps}),
    # which nlp.create_optimizer() cannot resolve: resolve the interpolated training block
    optimizer = registry.resolve({"optimizer": nlp.config.interpolate()["training"]["optimizer"]})["optimizer"]
    batches = [examples[i : i + batch_size] for i in range(0, len(examples), batch_size)]
    if len(batches) < n_batches + 1:
        raise typer.BadParameter(f"{len(examples)} Docs make {len(batches)} batches of {batch_size}: "
                                 f"need {n_batches + 1} for --train-batches {n_batches}")
    exclude = [name for name in nlp.pipe_names if name not in keep]
    nlp.update(batches[0], sgd=optimizer, exclude=exclude)
    start = time.perf_counter()
    for batch in batches[1 : n_batches + 1]:
        nlp.update(batch, sgd=optimizer, exclude=exclude)
    seconds = (time.perf_counter() - start) / n_batches
    n_words = sum(len(eg.reference) for batch in batches[1 : n_batches + 1] for eg in batch)
    print(f"training: {seconds:.2f} s per update of {batch_size} Docs, {n_words / (seconds * n_batches):,.0f} words/s")
    return seconds


def main(
    model: Path,
    data: Path,
    repeats: int = typer.Option(3, help="Passes; the best is reported."),
    batch_size: int = typer.Option(64, help="nlp.pipe batch size."),
    component: str = typer.Option("relation_extractor", help="The relation extractor's name."),
    mode: Optional[str] = typer.Option(None, help="Marker model only: exact, packed_head or packed."),
    gpu_id: int = typer.Option(-1, help="GPU id, or -1 for CPU."),
    train_batches: int = typer.Option(0, help="Also time this many training updates (0: none)."),
    limit: int = typer.Option(0, help="Use only the first LIMIT Docs (0: all)."),
) -> None:
    if gpu_id >= 0:
        spacy.require_gpu(gpu_id)
    nlp = spacy.load(model)
    pipe = nlp.get_pipe(component)
    if mode is not None:
        if "mode" not in pipe.model.attrs:
            raise typer.BadParameter(f"{component} has no marker model: --mode does not apply")
        pipe.model.attrs["mode"] = mode
    doc_bin = DocBin().from_disk(data)
    docs = list(doc_bin.get_docs(nlp.vocab))[: limit or None]
    for doc in docs:
        doc._.relations = []
    # a listener needs its upstream component: keep the tok2vec/transformer pipes it reads
    upstream = [name for name in nlp.pipe_names if name in ("tok2vec", "transformer")]
    uses_listener = "encoder" not in pipe.model.ref_names
    keep = (upstream if uses_listener else []) + [component]
    measure(nlp, docs[:20], batch_size, 1, keep)  # warm-up
    wps = measure(nlp, docs, batch_size, repeats, keep)
    n_pairs = len(pipe.predict(docs[:200]).candidates)
    print(f"{model} {pipe.model.name} mode={pipe.model.attrs.get('mode', '-')} components={keep}")
    print(f"{len(docs)} docs, {sum(len(d) for d in docs)} words; {n_pairs} candidate pairs in the first 200 docs")
    print(f"relation extractor on gold entities: {wps:,.0f} words/s")
    if train_batches:
        gold_docs = list(doc_bin.get_docs(nlp.vocab))[: limit or None]  # fresh Docs, with their relations
        measure_training(nlp, gold_docs, batch_size, train_batches, keep)


if __name__ == "__main__":
    typer.run(main)
