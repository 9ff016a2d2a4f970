"""`spacy-ie quantize`: write a copy of a pipeline whose transformer(s) run int8 on the CPU
(`spacy_ie.quantize.quantize_to_disk`)."""
from pathlib import Path
from typing import Annotated

import typer
from spacy.util import is_package
from wasabi import msg

from ._app import app, fail


@app.command("quantize")
def quantize_cli(
    model: Annotated[
        str, typer.Argument(metavar="MODEL", help="Pipeline directory (or package) with a transformer.", show_default=False)
    ],
    output: Annotated[
        Path, typer.Argument(metavar="OUTPUT", help="Directory to write (new, or empty).", show_default=False)
    ],
    per_tensor: Annotated[
        bool, typer.Option("--per-tensor", help="One int8 scale per weight matrix instead of per output row.")
    ] = False,
    activations: Annotated[
        str,
        typer.Option(
            "--activations",
            help="Activation scales: per-token (one per wordpiece, the default) or per-tensor "
            "(one per layer call, PyTorch's dynamic quantization).",
        ),
    ] = "per-token",
) -> None:
    """Write MODEL to OUTPUT with the Linear layers of its transformer(s) quantized to int8
    (one activation scale per wordpiece, or PyTorch's dynamic quantization with one per call):
    the shared `transformer` component and a relation model's own
    (spacy_ie.TypedMarkerRelationModel.v1). The output loads with spacy.load on a CPU; every
    other component is unchanged.
    """
    scheme = activations.replace("-", "_")
    if scheme not in ("per_token", "per_tensor"):
        fail(f"--activations must be per-token or per-tensor, got {activations!r}")
    if not Path(model).exists() and not is_package(model):
        fail(f"No such pipeline directory or package: {model}")
    try:
        # imported here: torch and transformers load only for this command
        from ..quantize import NoTransformerError, quantize_to_disk
        from ..util import PipelineLoadError
    except ImportError as err:
        fail("quantize needs spacy-transformers and torch", f"{err} (pip install 'spacy-ie[transformers]')")
    try:
        result = quantize_to_disk(model, output, per_channel=not per_tensor, activations=scheme)
    except PipelineLoadError as err:
        fail(f"Cannot load {model}", str(err))
    except NoTransformerError as err:
        fail(f"Nothing to quantize in {model}", str(err))
    except FileExistsError as err:
        fail(f"Cannot write {output}", str(err))
    except (RuntimeError, ValueError) as err:
        fail(f"Quantizing {model} failed; nothing written to {output}", str(err))
    for name in result.components:
        layers = result.linear_layers[name]
        msg.good(f"{name}: {layers['int8']} Linear layers int8 ({layers['float32']} float32 left)")
    before = f"{result.size_before / 2**20:,.1f} MB -> " if result.size_before else ""
    msg.good(f"Saved the int8 pipeline to {output} ({before}{result.size_after / 2**20:,.1f} MB on disk)")
