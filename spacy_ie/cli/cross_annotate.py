"""`spacy-ie cross-annotate`: entities predicted on every training text by a model that did not
see it (k-fold), for a `relation_extractor` trained on predicted as well as gold entities."""
from pathlib import Path
from typing import Annotated

import typer
from spacy.cli._util import parse_config_overrides

from ..training.cross_annotate import cross_annotate
from ._app import app, fail


@app.command(
    "cross-annotate",
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
)
def cross_annotate_cli(
    ctx: typer.Context,
    config_path: Annotated[
        Path, typer.Argument(metavar="CONFIG", help="spacy train config with an entity component.", show_default=False)
    ],
    train_path: Annotated[
        Path, typer.Argument(metavar="TRAIN", help=".spacy training file (gold entities).", show_default=False)
    ],
    output_path: Annotated[
        Path, typer.Argument(metavar="OUTPUT", help=".spacy file to write, with the held-out predictions.", show_default=False)
    ],
    output_dir: Annotated[
        Path, typer.Option("--output-dir", "-d", help="Directory of the folds' data and models.")
    ] = Path("training/folds"),
    folds: Annotated[int, typer.Option("--folds", "-k", help="Number of folds (k >= 2).")] = 5,
    gpu_id: Annotated[int, typer.Option("--gpu-id", "-g", help="GPU id, or -1 for CPU.")] = -1,
) -> None:
    """Predict the entities of every training text with a model trained on the other folds
    (k-fold), for training a relation extractor on predicted as well as gold entities
    (`train_on_predicted`, with `spacy_ie.RelationCorpus.v1`'s `predicted_entities`). Extra
    arguments are config overrides, as for `spacy train` (e.g. --paths.dev dev.spacy).
    """
    for path in (config_path, train_path):
        if not path.exists():
            fail(f"No such file: {path}")
    try:
        cross_annotate(
            config_path, train_path, output_path, output_dir,
            folds=folds, overrides=parse_config_overrides(ctx.args), use_gpu=gpu_id,
        )
    except ValueError as err:
        fail("cross-annotate failed", str(err))
