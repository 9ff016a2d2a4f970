"""Convert SemEval-2010 Task 8 and hold out a stratified dev split, into DocBins.

    python -m spacy_ie.datasets.semeval ../shared/datasets/semeval2010_task8/SemEval2010_task8_all_data corpus/semeval

Reads ``SemEval2010_task8_training/TRAIN_FILE.TXT`` (8,000 sentences) and
``SemEval2010_task8_testing_keys/TEST_FILE_FULL.TXT`` (2,717 sentences, the test set with its
directed labels) under DATA_DIR with our ``semeval`` converter. The task has no official dev
split, so ``--dev-size`` training sentences (800 by default, 10%) are held out, stratified by
the 19 directed labels (9 relations x 2 directions, plus Other): each label gets its share of
the dev split by largest remainder, at least one sentence, and the sentences are drawn with a
fixed ``--seed``. A label with a single training sentence (Entity-Destination(e2,e1)) thus
goes to dev and train has none of it; the relation Entity-Destination is still learned from
its (e1,e2) sentences, since the direction is the order of head and tail.
Writes train.spacy, dev.spacy and test.spacy (test in file order) and prints the counts per
directed label per split.
"""
import random
from collections import Counter
from pathlib import Path
from typing import Dict, List, Sequence

import typer
from spacy.tokens import Doc

from spacy_ie.training.converters import convert_file, write_docbin

TRAIN_FILE = Path("SemEval2010_task8_training") / "TRAIN_FILE.TXT"
TEST_FILE = Path("SemEval2010_task8_testing_keys") / "TEST_FILE_FULL.TXT"
OTHER = "Other"
RELATIONS = (
    "Cause-Effect",
    "Component-Whole",
    "Content-Container",
    "Entity-Destination",
    "Entity-Origin",
    "Instrument-Agency",
    "Member-Collection",
    "Message-Topic",
    "Product-Producer",
)
DIRECTED_LABELS = tuple(f"{r}({d})" for r in RELATIONS for d in ("e1,e2", "e2,e1")) + (OTHER,)


def directed_label(doc: Doc, spans_key: str = "entities") -> str:
    """The SemEval label of a converted Doc: ``Other`` without a relation, else
    ``L(e1,e2)`` when the head is the first nominal (e1) and ``L(e2,e1)`` otherwise."""
    if not doc._.relations:
        return OTHER
    if len(doc._.relations) != 1 or len(doc.spans[spans_key]) != 2:
        raise ValueError(f"expected 2 nominals and at most 1 relation: {doc.text!r:.80}")
    e1 = doc.spans[spans_key][0]
    rel = doc._.relations[0]
    head_is_e1 = (rel.head.start_char, rel.head.end_char) == (e1.start_char, e1.end_char)
    return f"{rel.label}({'e1,e2' if head_is_e1 else 'e2,e1'})"


def dev_quotas(counts: Dict[str, int], dev_size: int) -> Dict[str, int]:
    """How many sentences of each label go to dev: proportional shares rounded by largest
    remainder so that they sum to `dev_size`, and at least one per label."""
    total = sum(counts.values())
    if not 0 < dev_size < total or dev_size < len(counts):
        raise ValueError(f"dev size {dev_size} must be in [{len(counts)}, {total})")
    share = {label: n * dev_size / total for label, n in counts.items()}
    quota = {label: max(1, int(share[label])) for label in counts}
    diff = dev_size - sum(quota.values())
    if diff > 0:  # the largest remainders get one more
        order = sorted(counts, key=lambda label: (quota[label] - share[label], label))
        for label in order[:diff]:
            quota[label] += 1
    elif diff < 0:  # the ones furthest above their share (kept >= 1) give one back
        order = sorted(counts, key=lambda label: (share[label] - quota[label], label))
        for label in [label for label in order if quota[label] > 1][:-diff]:
            quota[label] -= 1
    return quota


def stratified_split(labels: Sequence[str], dev_size: int, seed: int) -> List[int]:
    """Indices (sorted) of the dev sentences, drawn per label with a fixed seed."""
    by_label: Dict[str, List[int]] = {}
    for i, label in enumerate(labels):
        by_label.setdefault(label, []).append(i)
    quota = dev_quotas({label: len(ids) for label, ids in by_label.items()}, dev_size)
    rng = random.Random(seed)
    dev: List[int] = []
    for label in sorted(by_label):
        dev.extend(rng.sample(by_label[label], quota[label]))
    return sorted(dev)


def main(
    data_dir: Path,
    output_dir: Path,
    dev_size: int = typer.Option(800, help="Training sentences held out as dev."),
    seed: int = typer.Option(0, help="Seed of the dev draw."),
) -> None:
    train_docs, _ = convert_file(data_dir / TRAIN_FILE, "semeval")
    test_docs, _ = convert_file(data_dir / TEST_FILE, "semeval")
    train_labels = [directed_label(doc) for doc in train_docs]
    dev_ids = set(stratified_split(train_labels, dev_size, seed))
    splits = {
        "train": [doc for i, doc in enumerate(train_docs) if i not in dev_ids],
        "dev": [doc for i, doc in enumerate(train_docs) if i in dev_ids],
        "test": test_docs,
    }
    output_dir.mkdir(parents=True, exist_ok=True)
    counts = {}
    for name, docs in splits.items():
        write_docbin(docs, output_dir / f"{name}.spacy")
        counts[name] = Counter(directed_label(doc) for doc in docs)
    width = max(map(len, DIRECTED_LABELS))
    print(f"{'label':<{width}} " + " ".join(f"{name:>6}" for name in splits))
    for label in DIRECTED_LABELS:
        print(f"{label:<{width}} " + " ".join(f"{counts[name][label]:>6}" for name in splits))
    print(f"{'total':<{width}} " + " ".join(f"{len(docs):>6}" for docs in splits.values()))
    print(f"Wrote {', '.join(f'{name}.spacy' for name in splits)} to {output_dir}")


if __name__ == "__main__":
    typer.run(main)
