"""Where a pipeline's entities go wrong: error classes of its predicted entities against gold,
per label.

    python benchmarks/span_errors.py MODEL DATA [--output errors.json]

The pipeline runs on the raw texts of the DocBin DATA (so the entities are its own, as in
`spacy_ie evaluate`'s end-to-end view); its entities are what its relation extractor reads
(`spacy_ie.records.entity_spans`: a span pipeline's span group, else ``doc.ents``), and the gold
entities are the gold Docs' group of the same key when they have one, else their ``doc.ents``. Spans are compared
by character offsets. Each gold entity falls in one class:

- exact: a predicted entity with the same offsets and label (a strict-match true positive);
- wrong label: a predicted entity with the same offsets and another label;
- boundary: no predicted entity with its offsets, but one that overlaps it;
- missed: no predicted entity overlaps it.

Each predicted entity that is not an exact match falls in one class, counted under its own
label: wrong label (a gold entity has its offsets), boundary (it overlaps a gold entity) or
spurious (it overlaps none). Exact + the gold classes = the gold count (recall's denominator);
exact + the predicted classes = the predicted count (precision's). A confusion of this kind
between two pipelines shows whether a gap is in typing, in boundaries or in coverage (used in
BENCHMARKS.md, "Soft span targets for the distilled student").
"""
import json
from collections import Counter
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Tuple

import spacy
import typer
from spacy.tokens import Doc, DocBin, Span

from spacy_ie.records import entity_spans, entity_spans_key

GOLD_CLASSES = ("exact", "wrong label", "boundary", "missed")
PREDICTED_CLASSES = ("wrong label", "boundary", "spurious")

Offsets = Tuple[int, int]


def _offsets(spans: Iterable[Span]) -> Dict[Offsets, str]:
    return {(span.start_char, span.end_char): span.label_ for span in spans}


def _overlaps(offsets: Offsets, others: Iterable[Offsets]) -> bool:
    start, end = offsets
    return any(other_start < end and start < other_end for other_start, other_end in others)


def _match(offsets: Offsets, label: str, others: Dict[Offsets, str]) -> Optional[str]:
    """How an entity matches the other side's entities: "exact", "wrong label", "boundary"
    (overlap only) or None (no overlap)."""
    if others.get(offsets) == label:
        return "exact"
    if offsets in others:
        return "wrong label"
    return "boundary" if _overlaps(offsets, others) else None


def count_errors(gold: Dict[Offsets, str], predicted: Dict[Offsets, str]) -> Counter:
    """Counts of (label, "gold" | "predicted", class) for one document's gold and predicted
    entities, each a dict {(start_char, end_char): label}; the classes are the module
    docstring's (an exact match is counted once, on the gold side)."""
    counts: Counter = Counter()
    for offsets, label in gold.items():
        counts[label, "gold", _match(offsets, label, predicted) or "missed"] += 1
    for offsets, label in predicted.items():
        kind = _match(offsets, label, gold) or "spurious"
        if kind != "exact":
            counts[label, "predicted", kind] += 1
    return counts


def main(
    model: str = typer.Argument(..., help="Pipeline directory or package."),
    data: Path = typer.Argument(..., help="Gold .spacy file."),
    output: Optional[Path] = typer.Option(None, "--output", help="JSON file for the counts."),
) -> None:
    nlp = spacy.load(model)
    spans_key = entity_spans_key(nlp)
    disabled = [name for name in ("relation_extractor",) if name in nlp.pipe_names]
    gold_docs: List[Doc] = list(DocBin().from_disk(data).get_docs(nlp.vocab))
    counts: Counter = Counter()
    with nlp.select_pipes(disable=disabled):
        for gold, predicted in zip(gold_docs, nlp.pipe(doc.text for doc in gold_docs)):
            gold_spans = gold.spans[spans_key] if spans_key in gold.spans else gold.ents
            counts += count_errors(_offsets(gold_spans), _offsets(entity_spans(predicted, spans_key)))
    labels = sorted({label for label, _, _ in counts})
    table = {
        label: {
            "gold": {kind: counts[label, "gold", kind] for kind in GOLD_CLASSES},
            "predicted": {kind: counts[label, "predicted", kind] for kind in PREDICTED_CLASSES},
        }
        for label in labels
    }
    print(f"{model} on {data} ({len(gold_docs)} docs)")
    print("label | gold: " + " / ".join(GOLD_CLASSES) + " | predicted: " + " / ".join(PREDICTED_CLASSES))
    for label, row in table.items():
        gold_row = " / ".join(str(n) for n in row["gold"].values())
        predicted_row = " / ".join(str(n) for n in row["predicted"].values())
        print(f"{label} | {gold_row} | {predicted_row}")
    if output is not None:
        output.write_text(json.dumps({"model": model, "data": str(data), "counts": table}, indent=2))


if __name__ == "__main__":
    typer.run(main)
