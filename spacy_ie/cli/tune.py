"""`spacy-ie tune-thresholds`: per-label relation thresholds picked on dev data, each shrunk
toward the global threshold by the label's dev support (`spacy_ie.evaluation.tune_thresholds`),
and the pipeline saved with them, with a cross-validated estimate of whether the tuning beats the
configured thresholds. Errors go to stderr; no pipeline is written on failure."""
from pathlib import Path
from typing import Annotated, Optional

import typer
from wasabi import msg

from ..evaluation import DEFAULT_FOLDS, DEFAULT_PRIOR_COUNT, VIEWS, EvaluationError, tune_thresholds
from ._app import app, fail


@app.command("tune-thresholds")
def tune_thresholds_cli(
    model: Annotated[str, typer.Argument(metavar="MODEL", help="Pipeline directory or package.", show_default=False)],
    dev_path: Annotated[Path, typer.Argument(metavar="DEV", help="Dev .spacy file with gold relations.", show_default=False)],
    output_dir: Annotated[Path, typer.Argument(metavar="OUTPUT", help="Directory for the tuned pipeline.", show_default=False)],
    view: Annotated[Optional[str], typer.Option("--view", help=f"Tune on one of {', '.join(VIEWS)} (default: end_to_end when the pipeline has ner).")] = None,
    component: Annotated[Optional[str], typer.Option("--component", "-c", help="Relation extractor name (default: the first).")] = None,
    prior_count: Annotated[float, typer.Option("--prior-count", min=0.0, help="How many dev relations a prior threshold is worth: each label's best threshold is shrunk toward the global one by support / (support + prior count), the global one toward the configured threshold by the total support; 0: no shrinkage.")] = DEFAULT_PRIOR_COUNT,
    folds: Annotated[int, typer.Option("--folds", min=0, help="Cross-validate the tuning over this many alternating parts of DEV (tuned on the others, scored on each) to tell whether it beats the configured thresholds out of sample; 0 or 1: no cross-validation.")] = DEFAULT_FOLDS,
) -> None:
    """Pick each relation label's threshold on DEV, shrunk toward the global threshold by its
    dev support, and save the pipeline with them (the relation_extractor's `thresholds`
    setting). Report test scores with the result."""
    try:
        result = tune_thresholds(model, dev_path, output_dir, view=view, component=component, prior_count=prior_count, folds=folds)
    except EvaluationError as err:
        fail("Cannot tune thresholds", str(err))
    except OSError as err:
        fail(f"Cannot write the tuned pipeline to {output_dir}", str(err))
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
    cv = result["cross_validation"]
    if cv is None:
        msg.info("No cross-validated estimate (--folds below 2, or a part of DEV without gold relations).")
        return
    line = (
        f"Out of sample ({cv['folds']}-fold cross-validation over DEV): {100 * cv['configured_f']:.2f} at the "
        f"configured thresholds, {100 * cv['tuned_f']:.2f} tuned"
    )
    if cv["tuned_f"] > cv["configured_f"]:
        msg.good(line)
    else:
        msg.warn(line, "Tuning does not beat the configured thresholds out of sample: consider MODEL as it is.")
