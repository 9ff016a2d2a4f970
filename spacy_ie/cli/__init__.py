"""The ``spacy-ie`` command line (also ``python -m spacy_ie``), laid out like ``spacy.cli``:
the Typer app in `_app`, one module per command. Commands print with wasabi's ``msg`` and turn
expected errors (bad input) into a one-line failure message and exit code 1, never a traceback.
"""
from ._app import app
from .convert import convert_cli, print_summary  # noqa: F401  (registers the command)
from .evaluate import evaluate_cli  # noqa: F401
from .extract import extract_cli  # noqa: F401
from .tune import tune_thresholds_cli  # noqa: F401
from .minilm import minilm_path_cli  # noqa: F401
from .cross_annotate import cross_annotate_cli  # noqa: F401
from .graph import graph_query_cli  # noqa: F401
from .quantize import quantize_cli  # noqa: F401
from .distill import distill_cli  # noqa: F401


def main() -> None:
    """Entry point of the ``spacy-ie`` console script."""
    app()


__all__ = ["app", "main"]
