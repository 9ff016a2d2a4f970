"""`spacy-ie tune-thresholds`: per-label relation thresholds picked on dev data."""
from pathlib import Path
from typing import Annotated, Optional

import typer
from wasabi import msg

from ..evaluate import VIEWS, EvaluationError, tune_thresholds
from ._app import app


@app.command("tune-thresholds")
def tune_thresholds_cli(
    model: Annotated[str, typer.Argument(metavar="MODEL", help="Pipeline directory or package.", show_default=False)],
    dev_path: Annotated[Path, typer.Argument(metavar="DEV", help="Dev .spacy file with gold relations.", show_default=False)],
    output_dir: Annotated[Path, typer.Argument(metavar="OUTPUT", help="Directory for the tuned pipeline.", show_default=False)],
    view: Annotated[Optional[str], typer.Option("--view", help=f"Tune on one of {', '.join(VIEWS)} (default: end_to_end when the pipeline has ner).")] = None,
    component: Annotated[Optional[str], typer.Option("--component", "-c", help="Relation extractor name (default: the first).")] = None,
) -> None:
    """Pick each relation label's threshold for the best F1 on DEV and save the pipeline with
    them (the relation_extractor's `thresholds` setting). Report test scores with the result."""
    try:
        result = tune_thresholds(model, dev_path, output_dir, view=view, component=component)
    except EvaluationError as err:
        msg.fail("Cannot tune thresholds", str(err), exits=1)
    rows = sorted(result["thresholds"].items())
    msg.table(rows, header=("Label", "Threshold"), divider=True, aligns=("l", "r"))
    msg.good(
        f"Dev micro F ({result['view']}): {100 * result['dev_micro_f_before']:.2f} at the "
        f"configured thresholds -> {100 * result['dev_micro_f_after']:.2f} tuned; saved to {output_dir}"
    )
