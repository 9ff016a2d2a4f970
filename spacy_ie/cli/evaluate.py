"""`spacy-ie evaluate`: NER and relation scores, end to end and on gold entities, with a
threshold sweep, JSON metrics and plots."""
from pathlib import Path
from typing import Annotated, Any, Dict, Optional

import spacy
import typer
from wasabi import msg

from ..evaluate import VIEW_TITLES, VIEWS, EvaluationError, PlotsUnavailable, evaluate
from ._app import app


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
    ner = results.get("ner")
    if ner and "ents_f" in ner:
        msg.text("NER (spaCy's scorer)")
        msg.table(
            [("Precision", _pct(ner["ents_p"])), ("Recall", _pct(ner["ents_r"])),
             ("F-score", _pct(ner["ents_f"]))],
            aligns=("l", "r"),
        )
        per_type = [
            (label, _pct(s["p"]), _pct(s["r"]), _pct(s["f"]))
            for label, s in sorted((ner.get("ents_per_type") or {}).items())
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
