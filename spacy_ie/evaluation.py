"""Evaluation views of a relation extraction pipeline: entities, relations end to end and on gold
entities, what tuning the decision thresholds would gain, and the tuning itself. The commands
``spacy-ie evaluate`` and ``spacy-ie tune-thresholds`` (`spacy_ie.cli`) call this module, as
``spacy evaluate`` calls `Language.evaluate`.

Two views of the same data:

- **end to end** (``"end_to_end"``): the whole pipeline runs on the raw texts (as ``spacy
  evaluate`` does), so the relations connect the *predicted* entities; NER scores come from
  spaCy's scorer.
- **gold entities** (``"gold_entities"``): the gold entities are copied onto the Docs
  (`copy_gold_spans`) and every entity-producing component (``ner``, ``entity_ruler``,
  ``spancat``...) is disabled, so the relation scores do not depend on NER. Without such a
  component the two views coincide and only this one is reported.

Each view runs the pipeline once, up to the relation extractor, and then the extractor's
`predict` (`predict_view`). Every threshold setting (the configured one, the sweep, the tuned
one) is then decided from those predictions by the component's own `decide`, the one rule its
`set_annotations` applies, so each score equals a normal run's at those thresholds. Evaluation
never changes the pipeline's settings; `tune_thresholds` saves a copy with new ones.

Why not in `spacy_ie.scorer`: the scorer is the registered ``spacy_ie.relation_scorer.v1`` and
its metrics, and the pipeline depends on it (the relation_extractor's default config names it,
its `score` calls it). These views depend on the pipeline (they call the component's `predict`
and `decide`), so in scorer.py they would make the scorer import the pipeline that uses it: a
dependency circle. Here they sit above both.
"""
import time
import warnings
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple, Union

import srsly
from spacy.language import Language
from spacy.scorer import PRFScore
from spacy.tokens import Doc
from spacy.training import Corpus, Example
from spacy.util import minibatch

from .pipeline.relation_extractor import RelationExtractor, RelationPredictions, write_relations
from .plots import check_plots_available, write_plots
from .records import atomic_open
from .scorer import (
    DEFAULT_THRESHOLDS,
    argument_errors,
    count_relations,
    score_relations,
    summarize_counts,
    threshold_curves,
)
from .training.corpus import copy_gold_spans
from .util import PipelineLoadError, load_pipeline

END_TO_END = "end_to_end"
GOLD_ENTITIES = "gold_entities"
VIEWS = (END_TO_END, GOLD_ENTITIES)
VIEW_TITLES = {END_TO_END: "end to end (predicted entities)", GOLD_ENTITIES: "gold entities"}
OPTIMISM_NOTE = (
    "Best thresholds are picked on the evaluation data itself, so their F is optimistic: "
    "pick thresholds on dev data, then report test scores with them."
)
DEFAULT_PRIOR_COUNT = 20.0
DEFAULT_FOLDS = 2


class EvaluationError(ValueError):
    """Bad input to an evaluation: a missing model or data file, no relation_extractor, data
    with nothing to score..."""


class EvaluationWarning(UserWarning):
    """An evaluation that runs but whose scores mean less than they seem (e.g. no gold
    relations: the relation scores are undefined). Issued with `warnings.warn`."""


# --- loading ---------------------------------------------------------------------------------


def _load(model: Union[str, Path]) -> Language:
    """`spacy_ie.util.load_pipeline`, its `PipelineLoadError` (one line naming the pipeline and
    the file that failed) raised as an `EvaluationError`."""
    try:
        return load_pipeline(model)
    except PipelineLoadError as err:
        raise EvaluationError(str(err)) from err


def load_examples(nlp: Language, data_path: Union[str, Path]) -> List[Example]:
    """Read a `.spacy` DocBin (or a directory of them) as Examples whose predicted Docs are
    freshly tokenized texts, as ``spacy evaluate`` does (spaCy's `Corpus`).

    RAISES (EvaluationError): if the path is missing or unreadable, or holds no Docs.
    """
    path = Path(data_path)
    if not path.exists():
        raise EvaluationError(f"{path}: no such file or directory")
    try:
        examples = list(Corpus(path)(nlp))
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise EvaluationError(f"Cannot read {path} as spaCy DocBin data: {err}") from err
    if not examples:
        raise EvaluationError(f"{path}: no documents to evaluate")
    return examples


def find_relation_extractor(
    nlp: Language, name: Optional[str] = None
) -> Tuple[str, RelationExtractor]:
    """The relation extractor to evaluate: the component `name`, else the first one.

    RAISES (EvaluationError): if there is none (or `name` is not one).
    """
    found = [(n, p) for n, p in nlp.pipeline if isinstance(p, RelationExtractor)]
    if name is not None:
        found = [(n, p) for n, p in found if n == name]
        if not found:
            raise EvaluationError(
                f"No relation_extractor component named {name!r} in the pipeline "
                f"{nlp.pipe_names}"
            )
    if not found:
        raise EvaluationError(
            f"The pipeline has no relation_extractor component (pipeline: {nlp.pipe_names})"
        )
    return found[0]


def entity_components(nlp: Language, component: str) -> List[str]:
    """The active components before `component` that write entities (``doc.ents`` or span
    groups, by their declared ``assigns``), e.g. ``ner``, ``entity_ruler``, ``spancat``."""
    names = []
    for name in nlp.pipe_names:
        if name == component:
            break
        assigns = nlp.get_pipe_meta(name).assigns
        if any(a == "doc.ents" or a.startswith("doc.spans") for a in assigns):
            names.append(name)
    return names


def _no_gold_relations(
    examples: Sequence[Example], name: str, rel: RelationExtractor, source: str
) -> Optional[str]:
    """None if `examples` hold a gold relation with one of `rel`'s labels; else what is
    missing, as the start of a message naming `source` (the data) and the component."""
    labels = set(rel.labels)
    other: Counter = Counter()
    for eg in examples:
        for r in eg.reference._.relations:
            if r.label in labels:
                return None
            other[r.label] += 1
    text = f"{source}: no gold relations with a label of {name!r} ({', '.join(rel.labels)})"
    if other:
        text += f"; its {sum(other.values())} relations have other labels ({', '.join(sorted(other))})"
    return text


def check_gold(
    examples: Sequence[Example],
    nlp: Language,
    component: Optional[str] = None,
    *,
    source: str = "the evaluation data",
) -> None:
    """Check that `examples` give something to score: gold relations with the relation
    extractor's labels, or at least gold entities for the pipeline's entity component (then
    an `EvaluationWarning` says the relation scores are undefined).

    source (str): the data's name in the messages, e.g. its path.
    RAISES (EvaluationError): with neither (no gold relations, and no gold entities or no
        entity component before the relation extractor): nothing can be scored.
    WARNS (EvaluationWarning): with gold entities but no gold relations.
    """
    name, rel = find_relation_extractor(nlp, component)
    missing = _no_gold_relations(examples, name, rel, source)
    if missing is None:
        return
    has_entities = any(eg.reference.ents or rel.get_spans(eg.reference) for eg in examples)
    if not has_entities:
        raise EvaluationError(
            f"{missing}, and no gold entities: nothing to evaluate (is it annotated data, "
            "with entities and doc._.relations?)"
        )
    if not entity_components(nlp, name):
        raise EvaluationError(
            f"{missing}, and the pipeline has no entity component before {name!r} to score "
            "the entities: nothing to evaluate"
        )
    warnings.warn(
        f"{missing}: the relation scores are undefined (reported as 0); only the entity "
        "scores mean something",
        EvaluationWarning,
        stacklevel=2,
    )


# --- predicting ------------------------------------------------------------------------------


@dataclass
class ViewPredictions:
    """One view's single pipeline pass: the Examples (their predicted Docs carry the entities
    the relations are scored on) and the relation extractor's predictions, batch by batch.
    `apply_thresholds` turns them into ``doc._.relations`` at any thresholds.

    examples (List[Example]): new Examples on copies of the given predicted Docs.
    batches (List[Tuple[List[Doc], RelationPredictions]]): each batch's Docs (those of
        `examples`) and what `RelationExtractor.predict` returned for them.
    disabled (List[str]): the components the pass left out (besides the relation extractor).
    seconds (float): wall time of the pass (pipeline and relation model), in seconds.
    """

    examples: List[Example]
    batches: List[Tuple[List[Doc], RelationPredictions]]
    disabled: List[str]
    seconds: float

    @property
    def n_words(self) -> int:
        """Tokens of the predicted Docs."""
        return sum(len(eg.predicted) for eg in self.examples)


def predict_view(
    nlp: Language,
    examples: Iterable[Example],
    view: str,
    *,
    component: Optional[str] = None,
    batch_size: Optional[int] = None,
) -> ViewPredictions:
    """Run the pipeline once for one view, up to the relation extractor, and its `predict`.

    Nothing of `nlp` changes: the relation extractor's `predict` is called directly, and the
    relations are written afterwards by `apply_thresholds` (through the component's `decide`).

    examples (Iterable[Example]): gold Examples (e.g. from `load_examples`); not changed.
    view (str): ``"end_to_end"`` (the pipeline's own entities) or ``"gold_entities"`` (gold
        entities copied onto the Docs; the entity-producing components disabled).
    component (Optional[str]): the relation extractor's name; default: the first one.
    batch_size (Optional[int]): default ``nlp.batch_size``, as `Language.evaluate`.
    RETURNS (ViewPredictions): the pass's Examples and predictions.
    RAISES (ValueError): for an unknown view. (EvaluationError): without a relation extractor.
    """
    if view not in VIEWS:
        raise ValueError(f"Unknown view {view!r}; expected one of {VIEWS}")
    name, rel = find_relation_extractor(nlp, component)
    examples = [Example(eg.predicted.copy(), eg.reference) for eg in examples]
    # Components after the relation extractor cannot change its scores: left out.
    disabled = nlp.pipe_names[nlp.pipe_names.index(name) + 1 :]
    if view == GOLD_ENTITIES:
        for eg in examples:
            copy_gold_spans(eg)
        disabled = entity_components(nlp, name) + disabled
    size = batch_size or nlp.batch_size
    start = time.perf_counter()
    with nlp.select_pipes(disable=disabled + [name]):
        docs = list(nlp.pipe((eg.predicted for eg in examples), batch_size=size))
    batches = [(batch, rel.predict(batch)) for batch in minibatch(docs, size=size)]
    seconds = time.perf_counter() - start
    for eg, doc in zip(examples, docs):
        eg.predicted = doc
    return ViewPredictions(examples, batches, disabled, seconds)


def apply_thresholds(
    component: RelationExtractor, view: ViewPredictions, thresholds: Dict[str, float]
) -> None:
    """Write each predicted Doc's ``doc._.relations`` as `component` would at `thresholds`
    (label -> threshold, every label): its `decide` on the stored predictions. The component's
    settings are not touched."""
    for docs, predictions in view.batches:
        write_relations(docs, predictions, component.decide(predictions, thresholds), component.labels)


# --- scoring ---------------------------------------------------------------------------------


def score_view(
    view: ViewPredictions,
    component: RelationExtractor,
    *,
    sweep: Optional[Sequence[float]] = None,
) -> Dict[str, Any]:
    """Relation scores of one view at the configured thresholds, a sweep of one global
    threshold, and each label at its best threshold: every setting decided by the component's
    `decide` on the view's one set of predictions (`apply_thresholds`), so each score equals
    a normal run's at those thresholds.

    Leaves each ``eg.predicted._.relations`` as a run at the configured thresholds would.
    sweep (Optional[Sequence[float]]): the thresholds to sweep (default 0.05 .. 0.95); the
        configured ones are added, so the best F is never below the configured one's.
    RETURNS (Dict[str, Any]): ``scores`` (`score_relations` at the configured thresholds),
        ``sweep`` (`threshold_curves`, strict) and ``tuning`` (see `evaluate_relations`).
    """
    labels = list(component.labels)
    symmetric = list(component.cfg["symmetric_labels"])
    configured = component.label_thresholds()
    default = float(component.cfg["threshold"])
    grid = sorted({*map(float, sweep or DEFAULT_THRESHOLDS), default, *configured.values()})
    examples = view.examples

    def strict_counts(thresholds: Dict[str, float]) -> Dict[str, PRFScore]:
        apply_thresholds(component, view, thresholds)
        return count_relations(examples, labels=labels, symmetric_labels=symmetric)

    curves = threshold_curves(grid, [strict_counts(dict.fromkeys(labels, t)) for t in grid])
    apply_thresholds(component, view, configured)
    scores = score_relations(examples, labels=labels, symmetric_labels=symmetric)
    per_type_tuning: Dict[str, Dict[str, float]] = {}
    tuned: Dict[str, float] = {}
    for label in labels:
        curve = curves["per_type"][label]
        configured_f = scores["rel_per_type"][label]["f"]
        per_type_tuning[label] = {
            "configured_threshold": configured[label],
            "configured_f": configured_f,
            "best_threshold": curve["best_threshold"],
            "best_f": curve["best_f"],
            "gain": curve["best_f"] - configured_f,
        }
        tuned[label] = curve["best_threshold"] if curve["best_f"] > configured_f else configured[label]
    tuned_f = summarize_counts(strict_counts(tuned), labels)["rel_micro_f"]
    apply_thresholds(component, view, configured)  # leave the configured relations
    micro = curves["micro"]
    return {
        "n_docs": len(examples),
        "scores": scores,
        "sweep": {"mode": "strict", **curves},
        "tuning": {
            "micro": {
                "configured_threshold": default,
                "configured_f": scores["rel_micro_f"],
                "best_threshold": micro["best_threshold"],
                "best_f": micro["best_f"],
                "gain": micro["best_f"] - scores["rel_micro_f"],
            },
            "per_type": per_type_tuning,
            "tuned_thresholds": tuned,
            "tuned_micro_f": tuned_f,
            "tuned_gain": tuned_f - scores["rel_micro_f"],
        },
    }


def entity_scores(
    nlp: Language, examples: Sequence[Example], names: Sequence[str]
) -> Dict[str, Any]:
    """The scores of the entity-producing components `names` from their own spaCy scorers
    (``ents_p/r/f`` and ``ents_per_type`` for ``ner``; ``spans_{key}_*`` for ``spancat``;
    spaCy gives None for P/R/F when there is no gold and no predicted entity)."""
    scores: Dict[str, Any] = {}
    for name in names:
        proc = nlp.get_pipe(name)
        if hasattr(proc, "score"):
            scores.update(proc.score(examples))
    return scores


def evaluate_relations(
    nlp: Language,
    examples: Iterable[Example],
    *,
    component: Optional[str] = None,
    sweep: Optional[Sequence[float]] = None,
    batch_size: Optional[int] = None,
    source: str = "the evaluation data",
) -> Dict[str, Any]:
    """Evaluate entities and relations, end to end and on gold entities, with threshold sweeps.

    examples (Iterable[Example]): gold Examples, e.g. from `load_examples`; not changed.
    component (Optional[str]): the relation extractor's name; default: the first one.
    sweep (Optional[Sequence[float]]): the thresholds to sweep; default 0.05, 0.10, ..., 0.95.
    batch_size (Optional[int]): default ``nlp.batch_size``.
    source (str): the data's name in errors and warnings (e.g. its path).
    RETURNS (Dict[str, Any]): JSON-serializable; scores are fractions in [0, 1]::

        component, labels, n_docs, threshold (global), thresholds ({label: in effect}),
        views_coincide (bool), notes ([str]),
        type_coverage: the gold relations whose (label, head type, tail type) is outside
            the type constraints: {relations, unseen, forbidden} (`EntityPairCandidates.
            type_coverage`; forbidden ones can never be predicted, and are noted),
        ner: spaCy's entity scores (ents_p/r/f, ents_per_type) end to end, or None,
        views: {"end_to_end": view, "gold_entities": view} (only "gold_entities" when
            the views coincide), where a view is
            {entities: "predicted"|"gold", disabled: [component], n_docs,
             seconds / words_per_second: wall time and speed (words = tokens) of the
                 view's one pass (the pipeline up to and including the relation model;
                 deciding and writing the relations are not timed),
             scores: score_relations keys at the configured thresholds
                 (rel_micro_p/r/f, rel_macro_p/r/f, rel_per_type, rel_boundary_*),
             sweep: {mode, thresholds, micro: curve, per_type: {label: curve}}
                 (curve: p, r, f lists, best_threshold, best_p, best_r, best_f),
             tuning: {micro: {configured_threshold, configured_f, best_threshold, best_f, gain},
                      per_type: {label: same}, tuned_thresholds: {label: t},
                      tuned_micro_f, tuned_gain},
             and end to end only, arguments: `spacy_ie.scorer.argument_errors` at the
                 configured thresholds (gold, reachable, recall_ceiling, false_positives,
                 false_positives_wrong_argument)}
    RAISES (EvaluationError): if the pipeline has no relation extractor (of that name), or
        nothing can be scored (`check_gold`), before any prediction.
    WARNS (EvaluationWarning): with gold entities but no gold relations (`check_gold`).
    """
    examples = list(examples)
    name, rel = find_relation_extractor(nlp, component)
    check_gold(examples, nlp, name, source=source)
    producers = entity_components(nlp, name)
    coincide = not producers
    results: Dict[str, Any] = {
        "component": name,
        "labels": list(rel.labels),
        "n_docs": len(examples),
        "threshold": float(rel.cfg["threshold"]),
        "thresholds": rel.label_thresholds(),
        "views_coincide": coincide,
        "notes": [OPTIMISM_NOTE],
        "ner": None,
        "views": {},
        "type_coverage": rel.candidates.type_coverage(
            (r.label, r.head.label_, r.tail.label_)
            for eg in examples
            for r in eg.reference._.relations
            if r.label in rel.labels
        ),
    }
    coverage = results["type_coverage"]
    if coverage["unseen"]:
        share = f"{coverage['unseen']} of {coverage['relations']} gold relations"
        if coverage["forbidden"]:
            results["notes"].append(
                f"{share} have a (head type, tail type) outside the type constraints of "
                f"{name!r}; {coverage['forbidden']} of them can NEVER be predicted (hard "
                "constraints): widen candidates.type_constraints, or learn them with "
                "unseen_type_weight > 0 (spacy_ie.EntityPairCandidates.v2)."
            )
        else:
            results["notes"].append(
                f"{share} have a (head type, tail type) never seen with their label in training; "
                f"their probabilities are multiplied by unseen_type_weight = "
                f"{rel.candidates.unseen_type_weight:g}."
            )
    if coincide:
        results["notes"].append(
            f"The pipeline has no entity-producing component (such as ner) before {name!r}: "
            "the end-to-end and gold-entity views coincide; the gold-entity view is reported."
        )
    for view in VIEWS:
        if view == END_TO_END and coincide:
            continue
        predicted = predict_view(nlp, examples, view, component=name, batch_size=batch_size)
        if view == END_TO_END:
            results["ner"] = entity_scores(nlp, predicted.examples, producers)
        results["views"][view] = {
            "entities": "predicted" if view == END_TO_END else "gold",
            "disabled": predicted.disabled,
            "seconds": predicted.seconds,
            "words_per_second": predicted.n_words / predicted.seconds if predicted.seconds > 0 else 0.0,
            **score_view(predicted, rel, sweep=sweep),
        }
        if view == END_TO_END:
            results["views"][view]["arguments"] = argument_errors(
                predicted.examples,
                rel.get_spans,
                labels=rel.labels,
                symmetric_labels=rel.cfg["symmetric_labels"],
            )
    return results


# --- all together ----------------------------------------------------------------------------


def check_output_path(path: Union[str, Path]) -> None:
    """RAISES (EvaluationError): if `path`, a file to write, is an existing directory (checked
    before a long evaluation)."""
    if Path(path).is_dir():
        raise EvaluationError(f"{path}: is a directory, not a file to write the metrics to")


def write_results(results: Dict[str, Any], output_path: Union[str, Path]) -> Path:
    """Write `results` as JSON (srsly, indent 2), atomically: to a temporary file beside
    `output_path`, moved into place once complete, so a failure leaves no partial file (and
    any previous file as it was). Missing parent directories are created.

    RETURNS (Path): the path written. RAISES (OSError): if writing fails.
    """
    path = Path(output_path)
    data = srsly.json_dumps(results, indent=2)
    with atomic_open(path) as file_:
        file_.write(data)
    return path


def evaluate(
    model: Union[str, Path],
    data_path: Union[str, Path],
    *,
    output_path: Optional[Union[str, Path]] = None,
    plots_dir: Optional[Union[str, Path]] = None,
    component: Optional[str] = None,
    sweep: Optional[Sequence[float]] = None,
) -> Dict[str, Any]:
    """Load `model`, evaluate it on `data_path` (`evaluate_relations`), write the plots and,
    last, the JSON (`write_results`, atomically: no file unless everything succeeded).
    RETURNS (Dict[str, Any]): the results, plus ``model``, ``data`` and ``plots``
    ({view: [png path]}, empty without `plots_dir`).

    RAISES (EvaluationError): for a missing model or data, no relation extractor, data with
        nothing to score, or an `output_path` that is a directory (all before predicting).
        (PlotsUnavailable): if `plots_dir` is given and matplotlib is missing (checked first).
        (OSError): if the plots or the JSON cannot be written.
    WARNS (EvaluationWarning): as `evaluate_relations`.
    """
    if plots_dir is not None:
        check_plots_available()
    if output_path is not None:
        check_output_path(output_path)
    nlp = _load(model)
    find_relation_extractor(nlp, component)
    examples = load_examples(nlp, data_path)
    results = {"model": str(model), "data": str(data_path)}
    results.update(
        evaluate_relations(nlp, examples, component=component, sweep=sweep, source=str(data_path))
    )
    results["plots"] = (
        write_plots(results, plots_dir, titles=VIEW_TITLES) if plots_dir is not None else {}
    )
    if output_path is not None:
        write_results(results, output_path)
    return results


# --- threshold tuning ------------------------------------------------------------------------


def shrink_threshold(raw: float, prior: float, support: int, prior_count: float) -> float:
    """A threshold estimated from `support` examples, shrunk toward `prior`:
    ``w * raw + (1 - w) * prior`` with ``w = support / (support + prior_count)``.

    This is credibility weighting (Bühlmann, "Experience rating and credibility", ASTIN
    Bulletin 4(3), 1967), the form empirical-Bayes shrinkage of a group's estimate toward the
    pooled one takes: `prior_count` is how many examples the prior is worth. A label with 1
    dev relation keeps (nearly) the prior; one with hundreds gets (nearly) its own best.

    raw (float): the threshold picked on the data (in [0, 1]).
    prior (float): the threshold to fall back to.
    support (int): gold relations the raw threshold was picked on (>= 0).
    prior_count (float): the prior's weight in examples (>= 0; 0: no shrinkage).
    RETURNS (float): the shrunk threshold, between `raw` and `prior`.
    RAISES (ValueError): for a negative `support` or `prior_count`.
    """
    if support < 0 or prior_count < 0:
        raise ValueError(f"support and prior_count must not be negative, got {support}, {prior_count}")
    if support + prior_count == 0:
        return float(prior)
    weight = support / (support + prior_count)
    return float(weight * raw + (1 - weight) * prior)


def _pick_thresholds(
    view: ViewPredictions, component: RelationExtractor, prior_count: float
) -> Tuple[Dict[str, Any], Dict[str, Dict[str, float]], Dict[str, Any]]:
    """`tune_thresholds`' rule on one view's predictions: the global threshold of the best
    micro F1 shrunk toward the configured one by the total support, then each label's best
    threshold shrunk toward that global one by the label's support (`shrink_threshold`).
    Leaves the view's relations at the configured thresholds.
    RETURNS: the global threshold (``{"support", "raw", "final"}``), each label's (``{label:
        {"support", "raw", "final"}}``) and the view's `score_view` result."""
    scored = score_view(view, component)
    labels = list(component.labels)
    counts = count_relations(view.examples, labels=labels, symmetric_labels=list(component.cfg["symmetric_labels"]))
    support = {label: int(counts[label].tp + counts[label].fn) if label in counts else 0 for label in labels}
    sweep = scored["sweep"]
    micro = sweep["micro"]
    total = sum(support.values())
    global_final = shrink_threshold(micro["best_threshold"], float(component.cfg["threshold"]), total, prior_count)
    at_global = sweep["thresholds"].index(micro["best_threshold"])
    chosen: Dict[str, Dict[str, float]] = {}
    for label in labels:
        curve = sweep["per_type"].get(label)
        if curve is None or curve["f"][at_global] >= curve["best_f"]:
            raw = micro["best_threshold"]  # the label's own sweep shows nothing better
        else:
            raw = curve["best_threshold"]
        final = shrink_threshold(raw, global_final, support[label], prior_count)
        chosen[label] = {"support": support[label], "raw": float(raw), "final": final}
    return {"support": total, "raw": float(micro["best_threshold"]), "final": global_final}, chosen, scored


def _merge_views(views: Sequence[ViewPredictions]) -> ViewPredictions:
    """One view of several passes over disjoint Examples (their Examples and batches joined)."""
    return ViewPredictions(
        [eg for v in views for eg in v.examples],
        [batch for v in views for batch in v.batches],
        views[0].disabled,
        sum(v.seconds for v in views),
    )


def cross_validate_thresholds(
    folds: Sequence[ViewPredictions], component: RelationExtractor, prior_count: float
) -> Dict[str, float]:
    """Out-of-sample F of `tune_thresholds`' rule by k-fold cross-validation over dev
    documents: for each fold, thresholds picked on the other folds and applied to it; the
    folds' strict counts are pooled into one micro F. Beside it, the pooled micro F at the
    configured thresholds (no tuning), which is out of sample anyway. Thresholds picked and
    scored on the same data look better than they are (the in-sample "after" figure); this is
    the estimate to decide by (Stone 1974, "Cross-validatory choice and assessment of
    statistical predictions", JRSS B 36(2)).

    folds (Sequence[ViewPredictions]): predictions of disjoint dev documents (at least 2).
    RETURNS (Dict[str, float]): ``{"folds", "configured_f", "tuned_f"}`` (F in [0, 1]). Leaves
        every fold's relations at the configured thresholds.
    RAISES (ValueError): for fewer than 2 folds.
    """
    if len(folds) < 2:
        raise ValueError(f"cross-validation needs at least 2 folds, got {len(folds)}")
    labels = list(component.labels)
    symmetric = list(component.cfg["symmetric_labels"])
    tuned = []  # picked first: picking writes the other folds' relations
    for i in range(len(folds)):
        _, chosen, _ = _pick_thresholds(_merge_views([f for j, f in enumerate(folds) if j != i]), component, prior_count)
        tuned.append({label: c["final"] for label, c in chosen.items()})
    examples = [eg for fold in folds for eg in fold.examples]

    def pooled_f(thresholds: Sequence[Dict[str, float]]) -> float:
        for fold, fold_thresholds in zip(folds, thresholds):
            apply_thresholds(component, fold, fold_thresholds)
        counts = count_relations(examples, labels=labels, symmetric_labels=symmetric)
        return summarize_counts(counts, labels)["rel_micro_f"]

    tuned_f = pooled_f(tuned)
    configured_f = pooled_f([component.label_thresholds()] * len(folds))  # and left so
    return {"folds": len(folds), "configured_f": configured_f, "tuned_f": tuned_f}


def tune_thresholds(
    model: Union[str, Path],
    dev_path: Union[str, Path],
    output_dir: Union[str, Path],
    *,
    view: Optional[str] = None,
    component: Optional[str] = None,
    prior_count: float = DEFAULT_PRIOR_COUNT,
    folds: int = DEFAULT_FOLDS,
) -> Dict[str, Any]:
    """Pick each relation label's threshold on dev data and save the pipeline with them.

    On the given view (default: end to end when the pipeline has its own entity component,
    else gold entities), with the strict threshold sweep of `score_view`:
    1. global: the threshold of the best micro F1 over all labels, shrunk toward the configured
       `threshold` (e.g. 0.5) by the number of gold relations of all labels
       (`shrink_threshold`);
    2. per label: the threshold of the label's best F1 (the global one where the global one
       scores as well), shrunk toward the global threshold of step 1 by the label's number of
       gold relations.
    So a label with little dev support keeps (nearly) the global threshold, and a small dev set
    cannot move any threshold far from the configured one: thresholds picked on few examples
    over-fit them (a held-out test did worse with them than with 0.5).
    Pick them on dev data and report test scores with the saved pipeline. The thresholds go
    into the component and into the pipeline's config (`set_thresholds`), so the saved
    ``config.cfg`` holds them and ``spacy train`` from it starts with them. Nothing is written
    unless the tuning succeeded.
    The dev documents are predicted in `folds` alternating parts (one pipeline pass in all),
    and `cross_validate_thresholds` estimates out of sample whether tuning beats the
    configured thresholds.

    prior_count (float): how many gold relations a prior threshold is worth (default 20).
    folds (int): parts of the dev documents for the cross-validated estimate (default 2);
        0 or 1: none. With fewer documents than folds, or a fold without gold relations, the
        estimate is left out.
    RETURNS (Dict[str, Any]): ``{"view", "prior_count", "global": {"support", "raw", "final"},
        "labels": {label: {"support", "raw", "final"}}, "thresholds": {label: final},
        "dev_micro_f_before", "dev_micro_f_after", "cross_validation"}`` (F in [0, 1], at the
        configured and at the final thresholds; ``cross_validation``: the
        `cross_validate_thresholds` result, or None).
    RAISES (EvaluationError): as `evaluate`, for a view the pipeline does not have, or dev data
        without a gold relation of the component's labels (nothing to tune on).
    (ValueError): for a negative `prior_count` or `folds`.
    """
    if prior_count < 0:
        raise ValueError(f"prior_count must not be negative, got {prior_count}")
    if folds < 0:
        raise ValueError(f"folds must not be negative, got {folds}")
    nlp = _load(model)
    name, rel = find_relation_extractor(nlp, component)
    has_entities = bool(entity_components(nlp, name))
    if view is None:
        view = END_TO_END if has_entities else GOLD_ENTITIES
    if view not in VIEWS or (view == END_TO_END and not has_entities):
        available = list(VIEWS) if has_entities else [GOLD_ENTITIES]
        raise EvaluationError(f"No {view!r} view for this pipeline: {available}")
    examples = load_examples(nlp, dev_path)
    missing = _no_gold_relations(examples, name, rel, str(dev_path))
    if missing is not None:
        raise EvaluationError(f"{missing}: no thresholds to tune; nothing was written")
    n_folds = folds if 2 <= folds <= len(examples) else 1
    parts = [predict_view(nlp, examples[k::n_folds], view, component=name) for k in range(n_folds)]
    predicted = _merge_views(parts)
    cross_validation = None
    if n_folds > 1 and all(_no_gold_relations(part.examples, name, rel, str(dev_path)) is None for part in parts):
        cross_validation = cross_validate_thresholds(parts, rel, prior_count)
    global_threshold, chosen, scored = _pick_thresholds(predicted, rel, prior_count)
    thresholds = {label: c["final"] for label, c in chosen.items()}
    labels = list(rel.labels)
    apply_thresholds(rel, predicted, thresholds)
    after = summarize_counts(
        count_relations(predicted.examples, labels=labels, symmetric_labels=list(rel.cfg["symmetric_labels"])), labels
    )["rel_micro_f"]
    set_thresholds(nlp, name, thresholds)
    nlp.to_disk(output_dir)
    return {
        "view": view,
        "prior_count": prior_count,
        "global": global_threshold,
        "labels": chosen,
        "thresholds": thresholds,
        "dev_micro_f_before": scored["scores"]["rel_micro_f"],
        "dev_micro_f_after": after,
        "cross_validation": cross_validation,
    }


def set_thresholds(nlp: Language, name: str, thresholds: Dict[str, float]) -> None:
    """Set the per-label thresholds of the relation extractor `name`: in the component (its
    ``cfg``, which `decide` reads) and in its block of ``nlp.config`` (the factory setting
    ``thresholds``), so that the two agree and ``nlp.to_disk`` saves them in config.cfg."""
    nlp.get_pipe(name).cfg["thresholds"] = dict(thresholds)
    # `get_pipe_config` returns the config block that `nlp.config` and `to_disk` are built from.
    nlp.get_pipe_config(name)["thresholds"] = dict(thresholds)
