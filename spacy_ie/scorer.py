"""Relation scoring: micro / macro / per-label precision, recall and F1, and a threshold sweep.

Two matching modes, as defined by Taillé et al. (2020), "Let's Stop Incorrect Comparisons in
End-to-end Relation Extraction!" (EMNLP), and used by SpERT (Eberts & Ulges 2020, "Span-based
Joint Entity and Relation Extraction with Transformer Pre-training", ECAI):

- **strict**: a predicted relation is correct when the boundaries *and* entity labels of both its
  head and its tail, and its relation label, equal those of a gold relation. This is the
  standard for end-to-end relation extraction (SpERT's "NER + RE" evaluation).
- **boundaries**: head and tail boundaries and the relation label must match; entity labels are
  ignored (Taillé et al.'s "Boundaries" setting, SpERT's "RE without NER types").

Spans are compared by *character* offsets (``start_char``, ``end_char``), so the predicted and
the reference Doc of an :class:`spacy.training.Example` may be tokenized differently. For a label
in ``symmetric_labels`` (e.g. ``Sibling_Of``) the head/tail order is ignored. Within one Example
relations are sets: a relation predicted (or annotated) twice counts once. Counts are kept in
:class:`spacy.scorer.PRFScore`; all scores are fractions in [0, 1], like spaCy's ``ents_f``.

The evaluation views built on these metrics (one prediction pass decided at any thresholds, the
sweeps, threshold tuning) are in `spacy_ie.evaluation`, which imports the pipeline; this module
does not.
"""
from collections import defaultdict
from typing import (
    Any,
    Callable,
    Dict,
    FrozenSet,
    Iterable,
    Optional,
    Sequence,
    Set,
    Tuple,
)

import numpy
import spacy
from spacy.scorer import PRFScore
from spacy.tokens import Doc, Span
from spacy.training import Example

from .relations import Relation

STRICT = "strict"
BOUNDARIES = "boundaries"
MODES = (STRICT, BOUNDARIES)

# (label, head key, tail key); a span key is (start_char, end_char[, entity label]).
RelationKey = Tuple[str, Tuple[Any, ...], Tuple[Any, ...]]


def _span_key(span: Span, mode: str) -> Tuple[Any, ...]:
    if mode == STRICT:
        return (span.start_char, span.end_char, span.label_)
    return (span.start_char, span.end_char)


def relation_key(
    rel: Relation, mode: str = STRICT, symmetric_labels: FrozenSet[str] = frozenset()
) -> RelationKey:
    """The hashable identity of `rel` under matching `mode` ("strict" or "boundaries").

    For a label in `symmetric_labels`, head and tail are put in a canonical (sorted) order so
    that ``L(a, b)`` and ``L(b, a)`` get the same key.
    """
    if mode not in MODES:
        raise ValueError(f"Unknown matching mode {mode!r}; expected one of {MODES}")
    head = _span_key(rel.head, mode)
    tail = _span_key(rel.tail, mode)
    if rel.label in symmetric_labels and tail < head:
        head, tail = tail, head
    return (rel.label, head, tail)


def _doc_keys(
    doc: Doc,
    mode: str,
    symmetric: FrozenSet[str],
    labels: Optional[Set[str]],
) -> Dict[RelationKey, float]:
    """Distinct relation keys of `doc`, each with the highest score among its duplicates."""
    keys: Dict[RelationKey, float] = {}
    for rel in doc._.relations:
        if labels is not None and rel.label not in labels:
            continue
        key = relation_key(rel, mode, symmetric)
        score = float(rel.score)
        if key not in keys or score > keys[key]:
            keys[key] = score
    return keys


def count_relations(
    examples: Iterable[Example],
    *,
    mode: str = STRICT,
    labels: Optional[Iterable[str]] = None,
    symmetric_labels: Iterable[str] = (),
) -> Dict[str, PRFScore]:
    """Per-label true positive / false positive / false negative counts.

    examples (Iterable[Example]): ``eg.predicted._.relations`` is compared with
        ``eg.reference._.relations``.
    mode (str): "strict" or "boundaries" (see the module docstring).
    labels (Optional[Iterable[str]]): if given, only relations with these labels are counted and
        every one of them gets an entry (possibly all zeros).
    symmetric_labels (Iterable[str]): labels whose head/tail order is ignored.
    RETURNS (Dict[str, PRFScore]): label -> counts; sum them for micro-averaged scores.
    """
    label_set = set(labels) if labels is not None else None
    symmetric = frozenset(symmetric_labels)
    counts: Dict[str, PRFScore] = defaultdict(PRFScore)
    for label in label_set or ():
        counts[label] = PRFScore()
    for eg in examples:
        pred = set(_doc_keys(eg.predicted, mode, symmetric, label_set))
        gold = set(_doc_keys(eg.reference, mode, symmetric, label_set))
        for key in pred & gold:
            counts[key[0]].tp += 1
        for key in pred - gold:
            counts[key[0]].fp += 1
        for key in gold - pred:
            counts[key[0]].fn += 1
    return dict(counts)


def summarize_counts(
    counts: Dict[str, PRFScore], labels: Optional[Iterable[str]] = None, prefix: str = "rel"
) -> Dict[str, Any]:
    """Micro, macro and per-label P/R/F of per-label counts (`count_relations`), as
    ``{prefix}_micro_p`` ... ``{prefix}_per_type`` (see `score_relations`)."""
    micro = PRFScore()
    for prf in counts.values():
        micro += prf
    macro_labels = list(dict.fromkeys(labels)) if labels is not None else sorted(counts)
    per_type = {label: counts.get(label, PRFScore()).to_dict() for label in sorted(counts)}
    if macro_labels:
        macro = {
            k: sum(per_type[label][k] for label in macro_labels) / len(macro_labels)
            for k in ("p", "r", "f")
        }
    else:
        macro = {"p": 0.0, "r": 0.0, "f": 0.0}
    return {
        f"{prefix}_micro_p": micro.precision,
        f"{prefix}_micro_r": micro.recall,
        f"{prefix}_micro_f": micro.fscore,
        f"{prefix}_macro_p": macro["p"],
        f"{prefix}_macro_r": macro["r"],
        f"{prefix}_macro_f": macro["f"],
        f"{prefix}_per_type": per_type,
    }


def score_relations(
    examples: Iterable[Example],
    *,
    labels: Optional[Iterable[str]] = None,
    symmetric_labels: Iterable[str] = (),
    prefix: str = "rel",
) -> Dict[str, Any]:
    """Score predicted relations against gold relations, in strict and boundaries mode.

    Micro scores pool the counts of all relations (SpERT's headline metric); macro scores are
    the unweighted mean of the per-label P, R and F (a label with no gold and no predicted
    relation scores 0, as in spaCy's ``Scorer.score_cats``).

    examples (Iterable[Example]): ``eg.predicted._.relations`` vs. ``eg.reference._.relations``.
        A predicted relation on spans absent from the gold data is a false positive.
    labels (Optional[Iterable[str]]): the labels to evaluate (usually the component's labels).
        If given, relations with other labels are ignored and the macro average runs over exactly
        these labels; otherwise over every label seen in the gold or the predicted relations.
    symmetric_labels (Iterable[str]): labels matched regardless of head/tail order.
    prefix (str): prefix of the returned keys.
    RETURNS (Dict[str, Any]): with P = precision, R = recall, F = F1, all floats in [0, 1]
        (0.0 where undefined, e.g. no relations at all):
        ``{prefix}_micro_p/_micro_r/_micro_f``, ``{prefix}_macro_p/_macro_r/_macro_f`` and
        ``{prefix}_per_type`` ({label: {"p", "r", "f"}}) for strict matching, and the same keys
        with ``{prefix}_boundary_`` instead of ``{prefix}_`` for boundaries matching
        (e.g. ``rel_boundary_micro_f``, ``rel_boundary_per_type``).
    """
    examples = list(examples)
    labels = list(labels) if labels is not None else None
    symmetric = tuple(symmetric_labels)
    scores: Dict[str, Any] = {}
    for mode, mode_prefix in ((STRICT, prefix), (BOUNDARIES, f"{prefix}_boundary")):
        counts = count_relations(
            examples, mode=mode, labels=labels, symmetric_labels=symmetric
        )
        scores.update(summarize_counts(counts, labels, mode_prefix))
    return scores


def argument_errors(
    examples: Iterable[Example],
    get_spans: Callable[[Doc], Iterable[Span]],
    *,
    labels: Optional[Iterable[str]] = None,
    symmetric_labels: Iterable[str] = (),
) -> Dict[str, Any]:
    """What the entity stage costs the relations end to end, under strict matching: the gold
    relations whose head and tail are both among the predicted spans (the others cannot be
    found, so their share is the end-to-end recall ceiling), and the false positives with an
    argument that is not a gold span (errors the relation model makes on a span the entity
    stage got wrong). Both follow from the strict setting of Taillé et al. (2020) (module
    docstring): a relation is correct only when both its arguments are.

    examples (Iterable[Example]): ``eg.predicted`` holds the predicted spans and relations,
        ``eg.reference`` the gold ones; spans match by characters and entity label.
    get_spans (Callable[[Doc], Iterable[Span]]): the spans relations may connect in a Doc
        (`RelationExtractor.get_spans`: ``doc.ents`` or a span group).
    labels (Optional[Iterable[str]]): if given, only relations with these labels count.
    symmetric_labels (Iterable[str]): labels matched regardless of head/tail order.
    RETURNS (Dict[str, Any]): ``gold`` (distinct gold relations), ``reachable`` (of them, with
        both arguments predicted), ``recall_ceiling`` (reachable / gold, 0.0 without gold),
        ``false_positives`` and ``false_positives_wrong_argument`` (of them, with a head or
        tail that is not a gold span).
    """
    label_set = set(labels) if labels is not None else None
    symmetric = frozenset(symmetric_labels)
    gold_n = reachable = false_positives = wrong_argument = 0
    for eg in examples:
        predicted_spans = {_span_key(s, STRICT) for s in get_spans(eg.predicted)}
        gold_spans = {_span_key(s, STRICT) for s in get_spans(eg.reference)}
        gold = set(_doc_keys(eg.reference, STRICT, symmetric, label_set))
        pred = set(_doc_keys(eg.predicted, STRICT, symmetric, label_set))
        wrong = pred - gold
        gold_n += len(gold)
        reachable += sum(head in predicted_spans and tail in predicted_spans for _, head, tail in gold)
        false_positives += len(wrong)
        wrong_argument += sum(head not in gold_spans or tail not in gold_spans for _, head, tail in wrong)
    return {
        "gold": gold_n,
        "reachable": reachable,
        "recall_ceiling": reachable / gold_n if gold_n else 0.0,
        "false_positives": false_positives,
        "false_positives_wrong_argument": wrong_argument,
    }


@spacy.registry.scorers("spacy_ie.relation_scorer.v1")
def make_relation_scorer() -> Callable[..., Dict[str, Any]]:
    """The relation_extractor's default scorer: `score_relations`."""
    return score_relations


DEFAULT_THRESHOLDS = tuple(round(0.05 * i, 2) for i in range(1, 20))  # 0.05 .. 0.95


def _curve(counts: Sequence[PRFScore], thresholds: Sequence[float]) -> Dict[str, Any]:
    """P/R/F lists over the thresholds and the best point (the lowest threshold of the highest F)."""
    p = [c.precision for c in counts]
    r = [c.recall for c in counts]
    f = [c.fscore for c in counts]
    best = int(numpy.argmax(f)) if f else 0
    return {
        "p": p,
        "r": r,
        "f": f,
        "best_threshold": float(thresholds[best]),
        "best_p": float(p[best]),
        "best_r": float(r[best]),
        "best_f": float(f[best]),
    }


def threshold_curves(
    thresholds: Sequence[float], counts: Sequence[Dict[str, PRFScore]]
) -> Dict[str, Any]:
    """Precision-recall-F curves of a threshold sweep, from the per-label counts
    (`count_relations`) of the relations decided at each threshold (the relation_extractor's
    `decide` with that one threshold for every label; see `spacy_ie.evaluation.score_view`).

    thresholds (Sequence[float]): the thresholds, in increasing order.
    counts (Sequence[Dict[str, PRFScore]]): per threshold, label -> counts.
    RETURNS (Dict[str, Any]): ``{"thresholds": [...], "micro": curve, "per_type": {label:
        curve}}`` where a curve is ``{"p": [...], "r": [...], "f": [...]}`` (one value in [0, 1]
        per threshold) plus ``best_threshold`` (the lowest threshold with the highest F),
        ``best_p``, ``best_r``, ``best_f``. ``micro`` pools the counts of every label.
    RAISES (ValueError): if there are no thresholds, or not one count dict per threshold.
    """
    if len(thresholds) == 0 or len(thresholds) != len(counts):
        raise ValueError(
            f"threshold_curves: {len(thresholds)} thresholds and {len(counts)} count sets"
        )
    labels = sorted({label for per_label in counts for label in per_label})
    micro = []
    for per_label in counts:
        total = PRFScore()
        for prf in per_label.values():
            total += prf
        micro.append(total)
    return {
        "thresholds": [float(t) for t in thresholds],
        "micro": _curve(micro, thresholds),
        "per_type": {
            label: _curve([c.get(label, PRFScore()) for c in counts], thresholds)
            for label in labels
        },
    }
