"""`spacy-ie evaluate`: evaluate a relation extraction pipeline: entities, relations end to end
and on gold entities, and what tuning the decision thresholds would gain. As in ``spacy.cli``,
this module holds the command and its logic; the scores themselves come from `spacy_ie.scorer`.

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
never changes the pipeline's settings.
"""
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Dict, Iterable, List, Optional, Sequence, Tuple, Union

import spacy
import srsly
import typer
from spacy.language import Language
from spacy.tokens import Doc
from spacy.scorer import PRFScore
from spacy.training import Corpus, Example
from spacy.util import minibatch
from wasabi import msg

from ..pipeline.relation_extractor import RelationExtractor, RelationPredictions, write_relations
from ..scorer import (
    DEFAULT_THRESHOLDS,
    argument_errors,
    count_relations,
    score_relations,
    summarize_counts,
    threshold_curves,
)
from ..training.corpus import copy_gold_spans
from ._app import app
from ..util import PipelineLoadError
from ..util import load_pipeline as _load_pipeline

END_TO_END = "end_to_end"
GOLD_ENTITIES = "gold_entities"
VIEWS = (END_TO_END, GOLD_ENTITIES)
VIEW_TITLES = {END_TO_END: "end to end (predicted entities)", GOLD_ENTITIES: "gold entities"}
OPTIMISM_NOTE = (
    "Best thresholds are picked on the evaluation data itself, so their F is optimistic: "
    "pick thresholds on dev data, then report test scores with them."
)


class EvaluationError(ValueError):
    """Bad input to an evaluation: a missing model or data file, no relation_extractor..."""


class PlotsUnavailable(ImportError):
    """Plots were asked for but matplotlib is not installed."""


# --- loading ---------------------------------------------------------------------------------


def load_pipeline(model: Union[str, Path]) -> Language:
    """Load a pipeline (package name or directory) with the CLI's shared loader
    (`spacy_ie.cli._util.load_pipeline`).

    RAISES (EvaluationError): if it cannot, with that loader's one-line message naming the
    pipeline and the file that failed.
    """
    try:
        return _load_pipeline(model)
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
    (``ents_p/r/f`` and ``ents_per_type`` for ``ner``; ``spans_{key}_*`` for ``spancat``)."""
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
) -> Dict[str, Any]:
    """Evaluate entities and relations, end to end and on gold entities, with threshold sweeps.

    examples (Iterable[Example]): gold Examples, e.g. from `load_examples`; not changed.
    component (Optional[str]): the relation extractor's name; default: the first one.
    sweep (Optional[Sequence[float]]): the thresholds to sweep; default 0.05, 0.10, ..., 0.95.
    batch_size (Optional[int]): default ``nlp.batch_size``.
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
    RAISES (EvaluationError): if the pipeline has no relation extractor (of that name).
    """
    examples = list(examples)
    name, rel = find_relation_extractor(nlp, component)
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


# --- plots -----------------------------------------------------------------------------------


def _matplotlib() -> Tuple[Any, Any]:
    """matplotlib's Figure and Agg canvas (no pyplot, no display, no global backend change).

    RAISES (PlotsUnavailable): if matplotlib is not installed.
    """
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as err:
        raise PlotsUnavailable(
            "Plots need matplotlib, an optional extra: pip install spacy-ie[plots]"
        ) from err
    return Figure, FigureCanvasAgg


def check_plots_available() -> None:
    """RAISES (PlotsUnavailable): if matplotlib is missing (call before a long evaluation)."""
    _matplotlib()


def write_plots(results: Dict[str, Any], plots_dir: Union[str, Path]) -> Dict[str, List[str]]:
    """Write, per view, a precision-recall curve and a threshold-vs-F1 plot (PNG), each with a
    line per label plus micro. RETURNS (Dict[str, List[str]]): view -> file paths.

    RAISES (PlotsUnavailable): if matplotlib is not installed.
    """
    Figure, FigureCanvasAgg = _matplotlib()
    out = Path(plots_dir)
    out.mkdir(parents=True, exist_ok=True)
    written: Dict[str, List[str]] = {}
    for view, data in results["views"].items():
        sweep = data["sweep"]
        ts = sweep["thresholds"]
        curves = [(label, curve, {}) for label, curve in sweep["per_type"].items()]
        curves.append(("micro", sweep["micro"], {"color": "black", "linewidth": 2.5}))
        title = f"{VIEW_TITLES.get(view, view)}, strict"
        files = []
        for kind in ("precision_recall", "threshold_f1"):
            fig = Figure(figsize=(7, 5), layout="constrained")
            FigureCanvasAgg(fig)
            ax = fig.add_subplot()
            for label, curve, style in curves:
                if kind == "precision_recall":
                    # no point where nothing is predicted (precision undefined) or found
                    points = [(r, p) for r, p in zip(curve["r"], curve["p"]) if r or p]
                    xs, ys = zip(*points) if points else ((), ())
                    (line,) = ax.plot(xs, ys, marker=".", label=label, **style)
                    ax.plot([curve["best_r"]], [curve["best_p"]], "o", color=line.get_color())
                else:
                    (line,) = ax.plot(ts, curve["f"], label=label, **style)
                    best = ([curve["best_threshold"]], [curve["best_f"]])
                    ax.plot(*best, "o", color=line.get_color())
            if kind == "precision_recall":
                ax.set(xlabel="recall", ylabel="precision", title=f"Precision-recall: {title}")
            else:
                ax.axvline(results["threshold"], color="grey", linestyle="--", label="configured")
                ax.set(xlabel="threshold", ylabel="F1", title=f"F1 by threshold: {title}")
            ax.set(xlim=(0, 1), ylim=(0, 1.02))
            ax.grid(alpha=0.3)
            ax.legend(fontsize="small", loc="best")
            path = out / f"{view}_{kind}.png"
            fig.savefig(path, dpi=100)
            files.append(str(path))
        written[view] = files
    return written


# --- all together ----------------------------------------------------------------------------


def evaluate(
    model: Union[str, Path],
    data_path: Union[str, Path],
    *,
    output_path: Optional[Union[str, Path]] = None,
    plots_dir: Optional[Union[str, Path]] = None,
    component: Optional[str] = None,
    sweep: Optional[Sequence[float]] = None,
) -> Dict[str, Any]:
    """Load `model`, evaluate it on `data_path` (`evaluate_relations`), write the plots and the
    JSON. RETURNS (Dict[str, Any]): the results, plus ``model``, ``data`` and ``plots``
    ({view: [png path]}, empty without `plots_dir`).

    RAISES (EvaluationError): for a missing model or data, or no relation extractor.
        (PlotsUnavailable): if `plots_dir` is given and matplotlib is missing (checked first).
    """
    if plots_dir is not None:
        check_plots_available()
    nlp = load_pipeline(model)
    find_relation_extractor(nlp, component)
    examples = load_examples(nlp, data_path)
    results = {"model": str(model), "data": str(data_path)}
    results.update(
        evaluate_relations(
            nlp,
            examples,
            component=component,
            sweep=sweep,
        )
    )
    results["plots"] = write_plots(results, plots_dir) if plots_dir is not None else {}
    if output_path is not None:
        output_path = Path(output_path)
        output_path.parent.mkdir(parents=True, exist_ok=True)
        srsly.write_json(output_path, results)
    return results


# --- the command -----------------------------------------------------------------------------


@app.command("evaluate")
def evaluate_cli(
    model: Annotated[
        str,
        typer.Argument(metavar="MODEL", help="Pipeline directory or package.", show_default=False),
    ],
    data_path: Annotated[
        Path,
        typer.Argument(metavar="DATA", help=".spacy file with gold relations.", show_default=False),
    ],
    output_path: Annotated[
        Optional[Path],
        typer.Option("--output", "-o", help="Write all metrics (with the sweep curves) as JSON."),
    ] = None,
    plots_dir: Annotated[
        Optional[Path],
        typer.Option("--plots", "-P", help="Directory for PNG plots (needs matplotlib: the plots extra)."),
    ] = None,
    component: Annotated[
        Optional[str],
        typer.Option("--component", "-c", help="Relation extractor name (default: the first)."),
    ] = None,
    gpu_id: Annotated[int, typer.Option("--gpu-id", "-g", help="GPU id, or -1 for CPU.")] = -1,
) -> None:
    """Evaluate NER and relation extraction, end to end (relations on predicted entities) and
    on gold entities (NER disabled), with the F1 a tuned threshold would give. The pipeline
    runs once per view; the scores at the configured thresholds and the sweep come from it.
    """
    if gpu_id >= 0:
        try:
            spacy.require_gpu(gpu_id)
        except (ValueError, ImportError) as err:
            msg.fail(f"Cannot use GPU {gpu_id}", str(err), exits=1)
        msg.info(f"Using GPU: {gpu_id}")
    try:
        results = evaluate(
            model, data_path, output_path=output_path, plots_dir=plots_dir, component=component
        )
    except (EvaluationError, PlotsUnavailable) as err:
        msg.fail("Evaluation failed", str(err), exits=1)
    except OSError as err:
        msg.fail("Cannot write the results", str(err), exits=1)
    print_results(results)
    if output_path is not None:
        msg.good(f"Saved metrics to {output_path}")


def _pct(value: float) -> str:
    return f"{100 * value:.2f}"


def print_results(results: Dict[str, Any]) -> None:
    """Print the NER scores, each view's relation scores and the best thresholds as tables."""
    msg.divider(f"Evaluation of {results.get('model', 'the pipeline')} ({results['n_docs']} docs)")
    ner = results.get("ner") or {}
    # ner's doc.ents scores ("ents_*") and spancat's span-group scores ("spans_{key}_*")
    prefixes = [k[: -len("_f")] for k in sorted(ner) if k == "ents_f" or (k.startswith("spans_") and k.endswith("_f"))]
    for prefix in prefixes:
        msg.text(f"Entities, {prefix} (spaCy's scorer)")
        msg.table(
            [("Precision", _pct(ner[f"{prefix}_p"])), ("Recall", _pct(ner[f"{prefix}_r"])),
             ("F-score", _pct(ner[f"{prefix}_f"]))],
            aligns=("l", "r"),
        )
        per_type = [
            (label, _pct(s["p"]), _pct(s["r"]), _pct(s["f"]))
            for label, s in sorted((ner.get(f"{prefix}_per_type") or {}).items())
        ]
        if per_type:
            header = ("Entity", "P", "R", "F")
            msg.table(per_type, header=header, divider=True, aligns=("l", "r", "r", "r"))
    for view in VIEWS:
        if view not in results["views"]:
            continue
        data = results["views"][view]
        s = data["scores"]
        msg.divider(f"Relations: {VIEW_TITLES[view]}")
        if data["disabled"]:
            msg.text(f"Disabled: {', '.join(data['disabled'])}")
        msg.text(f"Speed: {data['words_per_second']:,.0f} words/s ({data['seconds']:.1f} s, one pass)")
        rows = [
            (f"{match} {avg}",) + tuple(_pct(s[f"{prefix}_{avg}_{k}"]) for k in "prf")
            for match, prefix in (("strict", "rel"), ("boundaries", "rel_boundary"))
            for avg in ("micro", "macro")
        ]
        msg.table(rows, header=("", "P", "R", "F"), divider=True, aligns=("l", "r", "r", "r"))
        if "arguments" in data:
            a = data["arguments"]
            msg.text(
                f"Gold relations with both arguments predicted (strict): {a['reachable']} of "
                f"{a['gold']} ({_pct(a['recall_ceiling'])}%, the recall ceiling); false "
                f"positives with an argument that is not a gold entity: "
                f"{a['false_positives_wrong_argument']} of {a['false_positives']}"
            )
        per_label = [
            (label, _pct(v["p"]), _pct(v["r"]), _pct(v["f"]),
             _pct(s["rel_boundary_per_type"].get(label, {}).get("f", 0.0)))
            for label, v in sorted(s["rel_per_type"].items())
        ]
        msg.table(
            per_label,
            header=("Relation", "P", "R", "F", "F (bound.)"),
            divider=True,
            aligns=("l", "r", "r", "r", "r"),
        )
        tuning = data["tuning"]
        rows = [
            (label, f"{t['configured_threshold']:.2f}", _pct(t["configured_f"]),
             f"{t['best_threshold']:.2f}", _pct(t["best_f"]), f"{100 * t['gain']:+.2f}")
            for label, t in sorted(tuning["per_type"].items())
        ]
        m = tuning["micro"]
        rows.append(
            ("micro (one threshold)", f"{m['configured_threshold']:.2f}", _pct(m["configured_f"]),
             f"{m['best_threshold']:.2f}", _pct(m["best_f"]), f"{100 * m['gain']:+.2f}")
        )
        msg.table(
            rows,
            header=("Thresholds (strict)", "Configured", "F", "Best", "Best F", "Gain"),
            divider=True,
            aligns=("l", "r", "r", "r", "r", "r"),
        )
        msg.text(
            f"Micro F with each label at its best threshold: {_pct(tuning['tuned_micro_f'])} "
            f"({100 * tuning['tuned_gain']:+.2f})"
        )
    for note in results.get("notes", []):
        msg.info(note)
    for view, files in (results.get("plots") or {}).items():
        msg.good(f"Plots ({view}): {', '.join(files)}")
