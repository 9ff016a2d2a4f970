"""Inference speed of a pipeline's relation_extractor alone, on the gold entities of a DocBin.

    python benchmarks/relation_speed.py training/model-best corpus/test.spacy [--repeats 3] [--batch-size 64] [--gpu-id 0]

Prints words per second (wps) of the relation extractor over the Docs of the DocBin with their
gold entities (``doc.ents`` and span groups kept, relations removed; every other component
disabled), the best of `repeats` passes, with the number of candidate pairs. Compares
relation models on the same entities: `spacy_ie.RelationModel.v1` (which needs its tok2vec or
transformer component, so that one runs too and is included in the time) and
`spacy_ie.TypedMarkerRelationModel.v1` in its exact and packed modes (`--mode` overrides the
saved pipeline's mode, for a marker model).
"""
import time
from pathlib import Path
from typing import List, Optional

import spacy
import typer
from spacy.tokens import Doc, DocBin


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


def main(
    model: Path,
    data: Path,
    repeats: int = typer.Option(3, help="Passes; the best is reported."),
    batch_size: int = typer.Option(64, help="nlp.pipe batch size."),
    component: str = typer.Option("relation_extractor", help="The relation extractor's name."),
    mode: Optional[str] = typer.Option(None, help="Marker model only: exact, packed_head or packed."),
    gpu_id: int = typer.Option(-1, help="GPU id, or -1 for CPU."),
) -> None:
    if gpu_id >= 0:
        spacy.require_gpu(gpu_id)
    nlp = spacy.load(model)
    pipe = nlp.get_pipe(component)
    if mode is not None:
        if "mode" not in pipe.model.attrs:
            raise typer.BadParameter(f"{component} has no marker model: --mode does not apply")
        pipe.model.attrs["mode"] = mode
    docs = list(DocBin().from_disk(data).get_docs(nlp.vocab))
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


if __name__ == "__main__":
    typer.run(main)
