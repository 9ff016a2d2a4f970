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
"""
from collections import defaultdict
from typing import (
    Any,
    Callable,
    Dict,
    FrozenSet,
    Iterable,
    List,
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


def _summarize(
    counts: Dict[str, PRFScore], labels: Optional[Iterable[str]], prefix: str
) -> Dict[str, Any]:
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
        scores.update(_summarize(counts, labels, mode_prefix))
    return scores


@spacy.registry.scorers("spacy_ie.relation_scorer.v1")
def make_relation_scorer() -> Callable[..., Dict[str, Any]]:
    """The relation_extractor's default scorer: `score_relations`."""
    return score_relations


DEFAULT_THRESHOLDS = tuple(round(0.05 * i, 2) for i in range(1, 20))  # 0.05 .. 0.95


def _prf_curve(
    sorted_scores: numpy.ndarray,
    cum_tp: numpy.ndarray,
    n_gold: int,
    thresholds: numpy.ndarray,
) -> Dict[str, numpy.ndarray]:
    """P/R/F at each threshold; `sorted_scores` descending, `cum_tp[i]` = TPs among top i."""
    # number of predictions with score >= t, for every t at once
    n_pred = len(sorted_scores) - numpy.searchsorted(sorted_scores[::-1], thresholds, "left")
    tp = cum_tp[n_pred].astype(float)
    p = numpy.divide(tp, n_pred, out=numpy.zeros_like(tp), where=n_pred > 0)
    r = tp / n_gold if n_gold else numpy.zeros_like(tp)
    denom = p + r
    f = numpy.divide(2 * p * r, denom, out=numpy.zeros_like(tp), where=denom > 0)
    return {"p": p, "r": r, "f": f}


def _curve_result(curve: Dict[str, numpy.ndarray], thresholds: numpy.ndarray) -> Dict[str, Any]:
    best = int(numpy.argmax(curve["f"]))  # first maximum: the lowest best threshold
    return {
        "p": curve["p"].tolist(),
        "r": curve["r"].tolist(),
        "f": curve["f"].tolist(),
        "best_threshold": float(thresholds[best]),
        "best_p": float(curve["p"][best]),
        "best_r": float(curve["r"][best]),
        "best_f": float(curve["f"][best]),
    }


def sweep_thresholds(
    examples: Iterable[Example],
    *,
    labels: Optional[Iterable[str]] = None,
    symmetric_labels: Iterable[str] = (),
    thresholds: Optional[Sequence[float]] = None,
    mode: str = STRICT,
) -> Dict[str, Any]:
    """Strict P/R/F per label and micro-averaged at each decision threshold, and the best ones.

    Run the model with a low threshold so that ``eg.predicted._.relations`` holds every
    candidate label with its ``score``; a relation counts as predicted at threshold t when its
    score is >= t. Each label's predictions are sorted by score once and true positives are
    accumulated, so every threshold is evaluated in one vectorized pass.

    examples (Iterable[Example]): predictions (with scores) and gold relations.
    labels (Optional[Iterable[str]]): the labels to sweep; default: every label seen.
    symmetric_labels (Iterable[str]): labels matched regardless of head/tail order.
    thresholds (Optional[Sequence[float]]): default 0.05, 0.10, ..., 0.95.
    mode (str): "strict" (default) or "boundaries" matching.
    RETURNS (Dict[str, Any]): ``{"thresholds": [...], "micro": curve, "per_type": {label:
        curve}}`` where a curve is ``{"p": [...], "r": [...], "f": [...]}`` (one value in [0, 1]
        per threshold) plus ``best_threshold`` (the lowest threshold with the highest F),
        ``best_p``, ``best_r``, ``best_f``. ``micro`` is for one global threshold.
    """
    ts = numpy.asarray(DEFAULT_THRESHOLDS if thresholds is None else thresholds, dtype=float)
    if ts.ndim != 1 or ts.size == 0:
        raise ValueError("thresholds must be a non-empty sequence of floats")
    label_set = set(labels) if labels is not None else None
    symmetric = frozenset(symmetric_labels)
    pred_scores: Dict[str, List[float]] = defaultdict(list)
    pred_hits: Dict[str, List[bool]] = defaultdict(list)
    n_gold: Dict[str, int] = defaultdict(int)
    for label in label_set or ():
        n_gold[label] += 0
    for eg in examples:
        gold = _doc_keys(eg.reference, mode, symmetric, label_set)
        for key in gold:
            n_gold[key[0]] += 1
        for key, score in _doc_keys(eg.predicted, mode, symmetric, label_set).items():
            pred_scores[key[0]].append(score)
            pred_hits[key[0]].append(key in gold)

    def curve(scores: List[float], hits: List[bool], gold: int) -> Dict[str, numpy.ndarray]:
        s = numpy.asarray(scores, dtype=float)
        order = numpy.argsort(-s, kind="stable")
        cum_tp = numpy.concatenate([[0], numpy.cumsum(numpy.asarray(hits, dtype=int)[order])])
        return _prf_curve(s[order], cum_tp, gold, ts)

    all_labels = sorted(set(n_gold) | set(pred_scores))
    per_type = {
        label: _curve_result(
            curve(pred_scores.get(label, []), pred_hits.get(label, []), n_gold.get(label, 0)),
            ts,
        )
        for label in all_labels
    }
    micro = curve(
        [s for label in all_labels for s in pred_scores.get(label, [])],
        [h for label in all_labels for h in pred_hits.get(label, [])],
        sum(n_gold.values()),
    )
    return {
        "thresholds": ts.tolist(),
        "micro": _curve_result(micro, ts),
        "per_type": per_type,
    }
