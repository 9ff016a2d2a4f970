"""Inference speed of a trained pipeline with and without its relation_extractor, in one run.

    python benchmarks/speed.py training/model-best corpus/test.spacy [--repeats 3] [--batch-size 64]

Prints words per second (wps) for the pipeline without `relation_extractor` and with it, the
best of `repeats` passes over the texts of the DocBin each (raw texts: the pipeline tokenizes,
tags entities and extracts relations), and the relative extra wall time of the relation
extractor. One process, `nlp.pipe(batch_size=...)`, CPU unless spaCy was told otherwise.
"""
import time
from pathlib import Path

import spacy
import typer
from spacy.tokens import DocBin


def measure(nlp, texts, batch_size: int, repeats: int, disable=()) -> float:
    """Best words/s over `repeats` passes of `nlp.pipe(texts)`."""
    n_words = 0
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        n_words = sum(len(doc) for doc in nlp.pipe(texts, batch_size=batch_size, disable=disable))
        best = min(best, time.perf_counter() - start)
    return n_words / best


def main(
    model: Path,
    data: Path,
    repeats: int = typer.Option(3, help="Passes per setting; the best is reported."),
    batch_size: int = typer.Option(64, help="nlp.pipe batch size."),
    component: str = typer.Option("relation_extractor", help="The component to time."),
) -> None:
    nlp = spacy.load(model)
    texts = [doc.text for doc in DocBin().from_disk(data).get_docs(nlp.vocab)]
    measure(nlp, texts[:50], batch_size, 1)  # warm-up
    without = measure(nlp, texts, batch_size, repeats, disable=[component])
    with_re = measure(nlp, texts, batch_size, repeats)
    n_words = sum(len(nlp.make_doc(t)) for t in texts)
    print(f"{len(texts)} docs, {n_words} words, batch_size={batch_size}, best of {repeats}")
    print(f"pipeline without {component}: {without:,.0f} wps")
    print(f"pipeline with {component}:    {with_re:,.0f} wps")
    print(f"extra wall time of {component}: {100 * (without / with_re - 1):.1f}%")


if __name__ == "__main__":
    typer.run(main)
