"""`spacy-ie evaluate`: evaluate a relation extraction pipeline: entities, relations end to end
and on gold entities, and what tuning the decision thresholds would gain. The command parses its
arguments, calls `spacy_ie.evaluation.evaluate` (the views and scores) and prints the results as
tables on stdout; errors and warnings go to stderr. The metrics file is written last, atomically,
once everything (the evaluation, the plots, the printing) succeeded.
"""
import warnings
from pathlib import Path
from typing import Annotated, Any, Dict, Optional

import spacy
import typer
from wasabi import msg

from ..evaluation import (
    VIEW_TITLES,
    VIEWS,
    EvaluationError,
    EvaluationWarning,
    check_output_path,
    evaluate,
    write_results,
)
from ..plots import PlotsUnavailable
from ._app import app, fail, warn


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
            fail(f"Cannot use GPU {gpu_id}", str(err))
        msg.info(f"Using GPU: {gpu_id}")
    try:
        if output_path is not None:
            check_output_path(output_path)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", EvaluationWarning)
            results = evaluate(model, data_path, plots_dir=plots_dir, component=component)
    except (EvaluationError, PlotsUnavailable) as err:
        fail("Evaluation failed; nothing was written", str(err))
    except OSError as err:
        fail("Cannot write the plots", str(err))
    for warning in caught:
        if issubclass(warning.category, EvaluationWarning):
            warn(str(warning.message))
        else:
            warnings.showwarning(
                warning.message, warning.category, warning.filename, warning.lineno
            )
    print_results(results)
    if output_path is not None:
        try:
            write_results(results, output_path)
        except OSError as err:
            fail(f"Cannot write {output_path}", str(err))
        msg.good(f"Saved metrics to {output_path}")


def _pct(value: Optional[float]) -> str:
    """A fraction as a percentage with two decimals; "-" where undefined (None: spaCy's entity
    scores when there is no gold and no predicted entity)."""
    return "-" if value is None else f"{100 * value:.2f}"


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
