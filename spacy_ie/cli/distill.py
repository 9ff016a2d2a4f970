"""`spacy-ie distill`: train a student pipeline on a teacher pipeline's annotations of raw text
(`spacy_ie.training.distill.distill`)."""
from pathlib import Path
from typing import Annotated

import typer
from spacy.cli._util import parse_config_overrides
from spacy.util import is_package

from ..records import InputError
from ..training.distill import DEFAULT_GOLD_SHARE, DEFAULT_HELDOUT_EVERY, DEFAULT_SPANS_KEY, distill
from ..util import PipelineLoadError
from ._app import app, fail


@app.command(
    "distill",
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
)
def distill_cli(
    ctx: typer.Context,
    teacher: Annotated[
        str, typer.Argument(metavar="TEACHER", help="Teacher pipeline (directory or package) with entities and a relation_extractor.", show_default=False)
    ],
    raw_text: Annotated[
        Path, typer.Argument(metavar="RAW_TEXT", help="Unlabeled text: .txt (one document per line) or .jsonl (a \"text\" per line).", show_default=False)
    ],
    student_config: Annotated[
        Path, typer.Argument(metavar="STUDENT_CONFIG", help="spacy train config of the student.", show_default=False)
    ],
    output: Annotated[
        Path, typer.Option("--output", "-o", help="Directory for the teacher's annotations and the student (model-best, model-last).")
    ] = Path("training/distilled"),
    heldout_every: Annotated[
        int, typer.Option("--heldout-every", help="Without --paths.dev: every Nth teacher document is the dev set.")
    ] = DEFAULT_HELDOUT_EVERY,
    gold_share: Annotated[
        float, typer.Option("--gold-share", help="With --paths.train: repeat the gold documents until they are this share of the training tokens (0: once; below 1).")
    ] = DEFAULT_GOLD_SHARE,
    spans_key: Annotated[
        str, typer.Option("--spans-key", help="The span group that holds the entities (spancat teachers and students).")
    ] = DEFAULT_SPANS_KEY,
    soft_spans: Annotated[
        float, typer.Option("--soft-spans", help="Also train the student's spancat_singlelabel on the teacher's span probabilities, with this weight in [0, 1] (0: the teacher's decisions only).")
    ] = 0.0,
    paragraphs: Annotated[
        bool, typer.Option("--paragraphs", help=".txt: one document per blank-line-separated paragraph.")
    ] = False,
    gpu_id: Annotated[int, typer.Option("--gpu-id", "-g", help="GPU id, or -1 for CPU.")] = -1,
) -> None:
    """Annotate RAW_TEXT with the TEACHER pipeline (entities and relations, with a progress
    bar), then train STUDENT_CONFIG on those annotations with spacy train. Extra arguments are
    config overrides, as for spacy train: --paths.train GOLD.spacy adds gold training data,
    --paths.dev GOLD.spacy selects the student on gold data (without it, on a held-out slice of
    the teacher's annotations). The gold documents are repeated to --gold-share of the
    training tokens. With --soft-spans W the student's span categorizer learns from the
    teacher's span probabilities as well (weight W; spancat teacher and student). A re-run with
    the same teacher and text reuses the annotations.
    """
    if not Path(teacher).exists() and not is_package(teacher):
        fail(f"No such pipeline directory or package: {teacher}")
    if not student_config.is_file():
        fail(f"No such config file: {student_config}")
    overrides = parse_config_overrides(ctx.args)
    for name in ("paths.train", "paths.dev"):
        if name in overrides and not Path(overrides[name]).is_file():
            fail(f"No such file for --{name}: {overrides[name]}")
    try:
        distill(
            teacher, raw_text, student_config, output, overrides=overrides, use_gpu=gpu_id,
            spans_key=spans_key, heldout_every=heldout_every, gold_share=gold_share, paragraphs=paragraphs,
            soft_spans=soft_spans,
        )  # fmt: skip
    except InputError as err:
        fail("Cannot read the raw text", str(err))
    except PipelineLoadError as err:
        fail(f"Cannot load the teacher {teacher}", str(err))
    except ValueError as err:
        fail("distill failed", str(err))
