"""TREC question classification (Li & Roth 2002) -> spaCy DocBins with one-hot `doc.cats`.

    python -m spacy_ie.datasets.trec ../shared/datasets/trec corpus/trec [--seed 0] [--dev-fraction 0.1]

Reads DATA_DIR/TREC.train (the 5,452 training questions) and DATA_DIR/TREC.test (500), one
question per line as ``COARSE:fine tokens ...``. The files are ASCII except one 0xF0 byte in
TREC.train (see ../shared/datasets/trec/PROVENANCE.md), so they are read as latin-1: every
byte is kept. The label is the coarse class (ABBR, DESC, ENTY, HUM, LOC, NUM). TREC has no
dev set: a stratified split with a fixed seed holds out `dev_fraction` of each class's
training questions (rounded), so train + dev is the full training file. Writes
OUT_DIR/{train,dev,test}.spacy and prints the counts per split and label.
"""
from collections import Counter
from pathlib import Path
from typing import Dict, List, Tuple

import numpy
import spacy
import typer
from spacy.tokens import DocBin

COARSE_LABELS = ["ABBR", "DESC", "ENTY", "HUM", "LOC", "NUM"]


def read_trec(path: Path) -> List[Tuple[str, str]]:
    """(text, coarse label) per non-empty line of a TREC file.

    RAISES (ValueError): for a line without a ``COARSE:fine`` label of a known coarse class.
    """
    records = []
    for number, line in enumerate(path.read_bytes().decode("latin-1").splitlines(), 1):
        if not line.strip():
            continue
        label, _, text = line.partition(" ")
        coarse = label.split(":", 1)[0]
        if coarse not in COARSE_LABELS or ":" not in label or not text.strip():
            raise ValueError(f"{path}:{number}: not a TREC line: {line!r}")
        records.append((text.strip(), coarse))
    return records


def stratified_split(labels: List[str], dev_fraction: float, seed: int) -> numpy.ndarray:
    """A boolean mask (n,) of the dev items: round(dev_fraction * n_label) per label, chosen
    with numpy.random.RandomState(seed) (the same for every numpy version)."""
    rng = numpy.random.RandomState(seed)
    labels_a = numpy.asarray(labels)
    dev = numpy.zeros(len(labels), dtype=bool)
    for label in sorted(set(labels)):
        items = numpy.flatnonzero(labels_a == label)
        n_dev = int(round(dev_fraction * len(items)))
        dev[rng.permutation(items)[:n_dev]] = True
    return dev


def to_docbin(nlp, records: List[Tuple[str, str]]) -> DocBin:
    docbin = DocBin(attrs=[], store_user_data=False)
    for text, label in records:
        doc = nlp.make_doc(text)
        doc.cats = {name: float(name == label) for name in COARSE_LABELS}
        docbin.add(doc)
    return docbin


def main(
    data_dir: Path = typer.Argument(..., help="Folder with TREC.train and TREC.test"),
    out_dir: Path = typer.Argument(..., help="Where to write train/dev/test.spacy"),
    seed: int = typer.Option(0, help="Seed of the stratified train/dev split."),
    dev_fraction: float = typer.Option(0.1, help="Share of each label's training questions held out."),
) -> None:
    train = read_trec(data_dir / "TREC.train")
    test = read_trec(data_dir / "TREC.test")
    dev_mask = stratified_split([label for _, label in train], dev_fraction, seed)
    splits: Dict[str, List[Tuple[str, str]]] = {
        "train": [r for r, is_dev in zip(train, dev_mask) if not is_dev],
        "dev": [r for r, is_dev in zip(train, dev_mask) if is_dev],
        "test": test,
    }
    nlp = spacy.blank("en")
    out_dir.mkdir(parents=True, exist_ok=True)
    print(f"{'split':<6} {'docs':>5}  " + "  ".join(f"{label:>5}" for label in COARSE_LABELS))
    for name, records in splits.items():
        to_docbin(nlp, records).to_disk(out_dir / f"{name}.spacy")
        counts = Counter(label for _, label in records)
        print(
            f"{name:<6} {len(records):>5}  "
            + "  ".join(f"{counts[label]:>5}" for label in COARSE_LABELS)
        )
    print(f"Wrote {', '.join(str(out_dir / f'{n}.spacy') for n in splits)}")


if __name__ == "__main__":
    typer.run(main)
