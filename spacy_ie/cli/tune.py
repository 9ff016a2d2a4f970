"""`spacy-ie tune-thresholds`: per-label relation thresholds picked on dev data, each shrunk
toward the global threshold by the label's dev support."""
from pathlib import Path
from typing import Annotated, Any, Dict, Optional, Union

import typer
from spacy.language import Language
from wasabi import msg

from ..scorer import count_relations, summarize_counts
from .evaluate import (
    END_TO_END, GOLD_ENTITIES, VIEWS, EvaluationError, apply_thresholds, entity_components,
    find_relation_extractor, load_examples, load_pipeline, predict_view, score_view,
)
from ._app import app

DEFAULT_PRIOR_COUNT = 20.0


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


def tune_thresholds(
    model: Union[str, Path],
    dev_path: Union[str, Path],
    output_dir: Union[str, Path],
    *,
    view: Optional[str] = None,
    component: Optional[str] = None,
    prior_count: float = DEFAULT_PRIOR_COUNT,
) -> Dict[str, Any]:
    """Pick each relation label's threshold on dev data and save the pipeline with them.

    On the given view (default: end to end when the pipeline has its own entity component,
    else gold entities), with the strict threshold sweep of `spacy_ie.cli.evaluate.score_view`:
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
    ``config.cfg`` holds them and ``spacy train`` from it starts with them.

    prior_count (float): how many gold relations a prior threshold is worth (default 20).
    RETURNS (Dict[str, Any]): ``{"view", "prior_count", "global": {"support", "raw", "final"},
        "labels": {label: {"support", "raw", "final"}}, "thresholds": {label: final},
        "dev_micro_f_before", "dev_micro_f_after"}`` (F in [0, 1], at the configured and at the
        final thresholds).
    RAISES (EvaluationError): as `evaluate`, or for a view the pipeline does not have.
    (ValueError): for a negative `prior_count`.
    """
    if prior_count < 0:
        raise ValueError(f"prior_count must not be negative, got {prior_count}")
    nlp = load_pipeline(model)
    name, rel = find_relation_extractor(nlp, component)
    has_entities = bool(entity_components(nlp, name))
    if view is None:
        view = END_TO_END if has_entities else GOLD_ENTITIES
    if view not in VIEWS or (view == END_TO_END and not has_entities):
        available = list(VIEWS) if has_entities else [GOLD_ENTITIES]
        raise EvaluationError(f"No {view!r} view for this pipeline: {available}")
    predicted = predict_view(nlp, load_examples(nlp, dev_path), view, component=name)
    scored = score_view(predicted, rel)  # leaves the relations of the configured thresholds
    labels = list(rel.labels)
    symmetric = list(rel.cfg["symmetric_labels"])
    counts = count_relations(predicted.examples, labels=labels, symmetric_labels=symmetric)
    support = {label: int(counts[label].tp + counts[label].fn) if label in counts else 0 for label in labels}
    sweep = scored["sweep"]
    grid = sweep["thresholds"]
    micro = sweep["micro"]
    total = sum(support.values())
    configured = float(rel.cfg["threshold"])
    global_final = shrink_threshold(micro["best_threshold"], configured, total, prior_count)
    chosen: Dict[str, Dict[str, float]] = {}
    at_global = grid.index(micro["best_threshold"])
    for label in labels:
        curve = sweep["per_type"].get(label)
        if curve is None or curve["f"][at_global] >= curve["best_f"]:
            raw = micro["best_threshold"]  # the label's own sweep shows nothing better
        else:
            raw = curve["best_threshold"]
        final = shrink_threshold(raw, global_final, support[label], prior_count)
        chosen[label] = {"support": support[label], "raw": float(raw), "final": final}
    thresholds = {label: c["final"] for label, c in chosen.items()}
    apply_thresholds(rel, predicted, thresholds)
    after = summarize_counts(
        count_relations(predicted.examples, labels=labels, symmetric_labels=symmetric), labels
    )["rel_micro_f"]
    set_thresholds(nlp, name, thresholds)
    nlp.to_disk(output_dir)
    return {
        "view": view,
        "prior_count": prior_count,
        "global": {"support": total, "raw": float(micro["best_threshold"]), "final": global_final},
        "labels": chosen,
        "thresholds": thresholds,
        "dev_micro_f_before": scored["scores"]["rel_micro_f"],
        "dev_micro_f_after": after,
    }


def set_thresholds(nlp: Language, name: str, thresholds: Dict[str, float]) -> None:
    """Set the per-label thresholds of the relation extractor `name`: in the component (its
    ``cfg``, which `decide` reads) and in its block of ``nlp.config`` (the factory setting
    ``thresholds``), so that the two agree and ``nlp.to_disk`` saves them in config.cfg."""
    nlp.get_pipe(name).cfg["thresholds"] = dict(thresholds)
    # `get_pipe_config` returns the config block that `nlp.config` and `to_disk` are built from.
    nlp.get_pipe_config(name)["thresholds"] = dict(thresholds)


@app.command("tune-thresholds")
def tune_thresholds_cli(
    model: Annotated[str, typer.Argument(metavar="MODEL", help="Pipeline directory or package.", show_default=False)],
    dev_path: Annotated[Path, typer.Argument(metavar="DEV", help="Dev .spacy file with gold relations.", show_default=False)],
    output_dir: Annotated[Path, typer.Argument(metavar="OUTPUT", help="Directory for the tuned pipeline.", show_default=False)],
    view: Annotated[Optional[str], typer.Option("--view", help=f"Tune on one of {', '.join(VIEWS)} (default: end_to_end when the pipeline has ner).")] = None,
    component: Annotated[Optional[str], typer.Option("--component", "-c", help="Relation extractor name (default: the first).")] = None,
    prior_count: Annotated[float, typer.Option("--prior-count", min=0.0, help="How many dev relations a prior threshold is worth: each label's best threshold is shrunk toward the global one by support / (support + prior count), the global one toward the configured threshold by the total support; 0: no shrinkage.")] = DEFAULT_PRIOR_COUNT,
) -> None:
    """Pick each relation label's threshold on DEV, shrunk toward the global threshold by its
    dev support, and save the pipeline with them (the relation_extractor's `thresholds`
    setting). Report test scores with the result."""
    try:
        result = tune_thresholds(model, dev_path, output_dir, view=view, component=component, prior_count=prior_count)
    except EvaluationError as err:
        msg.fail("Cannot tune thresholds", str(err), exits=1)
    g = result["global"]
    rows = [(label, c["support"], f"{c['raw']:.2f}", f"{c['final']:.3f}") for label, c in sorted(result["labels"].items())]
    rows.append(("global (micro)", g["support"], f"{g['raw']:.2f}", f"{g['final']:.3f}"))
    msg.table(rows, header=("Label", "Dev support", "Best on dev", "Threshold"), divider=True, aligns=("l", "r", "r", "r"))
    msg.text(
        f"Each label's best threshold shrunk toward the global one by support / (support + "
        f"{result['prior_count']:g}); the global one toward the configured threshold likewise."
    )
    msg.good(
        f"Dev micro F ({result['view']}): {100 * result['dev_micro_f_before']:.2f} at the "
        f"configured thresholds -> {100 * result['dev_micro_f_after']:.2f} tuned; saved to {output_dir}"
    )
