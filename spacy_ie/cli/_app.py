"""The Typer app of the ``spacy-ie`` command line; commands live in one module each. Also the
two ways every command reports a problem: on stderr, so that stdout carries only the output."""
import sys
from contextlib import redirect_stdout
from typing import NoReturn

import typer
from wasabi import msg

app = typer.Typer(
    name="spacy-ie",
    help="spacy-ie: relation extraction and text classification for spaCy.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def _app_callback() -> None:
    """spacy-ie: relation extraction and text classification for spaCy."""
    # A callback keeps the app a command group whatever the number of commands.


def warn(title: str, text: str = "") -> None:
    """Print a wasabi warning on stderr."""
    with redirect_stdout(sys.stderr):
        msg.warn(title, text)


def fail(title: str, text: str = "") -> NoReturn:
    """Print a wasabi failure on stderr and exit with code 1 (no traceback)."""
    with redirect_stdout(sys.stderr):
        msg.fail(title, text)
    raise typer.Exit(1)
