"""`spacy-ie tune-thresholds`: per-label relation thresholds picked on dev data."""
from pathlib import Path
from typing import Annotated, Any, Dict, Optional, Union

import typer
from spacy.language import Language
from wasabi import msg

from .evaluate import (
    END_TO_END, GOLD_ENTITIES, VIEWS, EvaluationError, evaluate_relations, find_relation_extractor,
    load_examples, load_pipeline,
)
from ._app import app


def tune_thresholds(
    model: Union[str, Path],
    dev_path: Union[str, Path],
    output_dir: Union[str, Path],
    *,
    view: Optional[str] = None,
    component: Optional[str] = None,
) -> Dict[str, Any]:
    """Pick each relation label's threshold on dev data and save the pipeline with them.

    The per-label thresholds are those of the best F1 in `evaluate_relations`' sweep of the
    given view (default: end to end when the pipeline has its own entity component, else gold
    entities). Pick them on dev data and report test scores with the saved pipeline: scores
    with thresholds tuned on the evaluated data itself are optimistic.
    The thresholds go into the component and into the pipeline's config (`set_thresholds`), so
    the saved ``config.cfg`` holds them and ``spacy train`` from it starts with them.
    RETURNS (Dict[str, Any]): ``{"view", "thresholds", "dev_micro_f_before", "dev_micro_f_after"}``.
    RAISES (EvaluationError): as `evaluate`, or for a view the pipeline does not have.
    """
    nlp = load_pipeline(model)
    name, rel = find_relation_extractor(nlp, component)
    results = evaluate_relations(nlp, load_examples(nlp, dev_path), component=name)
    if view is None:
        view = END_TO_END if END_TO_END in results["views"] else GOLD_ENTITIES
    if view not in results["views"]:
        raise EvaluationError(f"No {view!r} view for this pipeline: {list(results['views'])}")
    tuning = results["views"][view]["tuning"]
    thresholds = {label: float(t) for label, t in tuning["tuned_thresholds"].items()}
    set_thresholds(nlp, name, thresholds)
    nlp.to_disk(output_dir)
    return {
        "view": view,
        "thresholds": thresholds,
        "dev_micro_f_before": tuning["micro"]["configured_f"],
        "dev_micro_f_after": tuning["tuned_micro_f"],
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
