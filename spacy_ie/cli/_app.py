"""The Typer app of the ``spacy-ie`` command line; commands live in one module each."""
import typer

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
