"""Library helpers shared by the commands and by `spacy_ie.ray`: loading a pipeline with one clear error line.

Every command that loads a pipeline (``extract``, ``evaluate``, ``tune-thresholds``, and the
Ray actors of ``extract --engine ray``) goes through `load_pipeline`, so a damaged or mistyped pipeline directory gives the same one-line
message naming the pipeline and the file that failed (``config.cfg``, ``meta.json``,
``relation_extractor/cfg``, ``tok2vec/model``...), never a traceback (issue #15, F5).
"""
import configparser
import re
from pathlib import Path
from types import TracebackType
from typing import Any, Optional, Union

import spacy
from confection import ConfigValidationError
from spacy.language import Language

# Longest error text kept in the one-line message (a msgpack or config error can quote a lot).
MAX_DETAIL_CHARS = 400


class PipelineLoadError(ValueError):
    """A pipeline could not be loaded. The message is one line: the pipeline, the file that
    failed when it is known, the original error's type and text.

    model (str): the pipeline as given (directory or package name).
    file (Optional[str]): the file that failed, relative to the pipeline directory when it is
        inside it (e.g. ``"config.cfg"``, ``"relation_extractor/model"``); None if unknown.
    """

    def __init__(self, message: str, model: str, file: Optional[str]) -> None:
        super().__init__(message)
        self.model = model
        self.file = file


def load_pipeline(model: Union[str, Path], **kwargs: Any) -> Language:
    """``spacy.load(model, **kwargs)``, with any failure turned into a `PipelineLoadError`.

    A pipeline loads in three steps (spaCy's ``util.load_model_from_path``): ``config.cfg`` is
    parsed (configparser, confection), the components are built from it (factories, config
    validation), then every component reads its files (``nlp.from_disk``). The failing file is
    found from the step that raised: the innermost ``spacy.util.load_config``,
    ``load_model_from_config``, ``load_meta`` or ``spacy.util.from_disk`` call in the
    traceback (the latter knows the directory and the file name it was reading).

    model (Union[str, Path]): a pipeline directory or an installed package name.
    kwargs: passed to ``spacy.load`` (e.g. ``exclude``).
    RETURNS (Language): the loaded pipeline.
    RAISES (PipelineLoadError): for any error raised while loading (a missing path, a config
        that does not parse or validate, an unknown factory, a truncated model file, a
        component's own load check...). KeyboardInterrupt and SystemExit pass through.
    """
    try:
        return spacy.load(model, **kwargs)
    except Exception as err:  # noqa: BLE001 - the CLI boundary: every failure becomes one line
        file = failing_file(err.__traceback__, model)
        raise PipelineLoadError(describe_load_error(model, err, file), str(model), file) from err


def check_pipeline_config(model: Union[str, Path]) -> None:
    """Parse a pipeline directory's ``config.cfg`` and ``meta.json`` without building or
    loading anything: a quick check for commands that load the pipeline elsewhere (e.g. in Ray
    actors), so that a damaged config fails at once with `load_pipeline`'s one-line message.
    Does nothing for a package name or a path that is not a local directory (the loader, where
    it runs, reports those).

    RAISES (PipelineLoadError): if either file is missing or does not parse.
    """
    path = Path(str(model))
    if not path.is_dir():
        return
    try:
        spacy.util.load_config(path / "config.cfg")
        spacy.util.load_meta(path / "meta.json")
    except Exception as err:  # noqa: BLE001 - every failure becomes one line
        file = failing_file(err.__traceback__, model)
        raise PipelineLoadError(describe_load_error(model, err, file), str(model), file) from err


def describe_load_error(model: Union[str, Path], err: BaseException, file: Optional[str] = None) -> str:
    """The one-line message for `err` raised while loading `model`:
    ``Cannot load the pipeline 'MODEL' (FILE): ErrorType: text``."""
    where = f" ({file})" if file else ""
    text = error_text(err)
    if file:  # confection parses config.cfg from a string: name the file instead
        text = text.replace("'<string>'", repr(file))
    return f"Cannot load the pipeline {str(model)!r}{where}: {type(err).__name__}: {text}"


def error_text(err: BaseException) -> str:
    """`err`'s text on one line, at most `MAX_DETAIL_CHARS` characters. For a confection
    ``ConfigValidationError`` (whose text holds the whole resolved section), only its title and
    each error's location and message."""
    if isinstance(err, ConfigValidationError) and err.errors:
        locations = [
            f"{' -> '.join(str(part) for part in error.get('loc', ()))}: {error.get('msg', '')}"
            for error in err.errors
        ]
        text = f"{(err.title or '').strip()}: {'; '.join(locations)}"
    elif isinstance(err, configparser.Error):
        text = err.message
    else:
        text = str(err)
    text = re.sub(r"\s+", " ", text).strip() or "(no message)"
    if len(text) > MAX_DETAIL_CHARS:
        text = text[: MAX_DETAIL_CHARS - 3] + "..."
    return text


# The spaCy loading steps (functions of spacy/util.py) whose frames tell which file was being
# read: function name -> (local holding the path, local holding the file name under it).
_FILE_FRAMES = {
    "load_config": ("path", None),  # config.cfg: configparser / confection parsing
    "load_meta": ("path", None),  # meta.json
    "from_disk": ("path", "key"),  # spacy.util.from_disk runs reader(path / key) per file
}
# Building the components from the parsed config (factories, config validation).
_CONFIG_STEP = "load_model_from_config"


def failing_file(tb: Optional[TracebackType], model: Union[str, Path]) -> Optional[str]:
    """The file being read when the error of traceback `tb` was raised while loading `model`
    (the innermost spaCy loading step that names one), relative to the pipeline directory when
    it is inside it; None if unknown (e.g. no such pipeline)."""
    found: Optional[Path] = None
    while tb is not None:
        code = tb.tb_frame.f_code
        filename = Path(code.co_filename)
        if filename.name == "util.py" and filename.parent.name == "spacy":
            local = tb.tb_frame.f_locals
            if code.co_name == _CONFIG_STEP:
                found = Path(str(model)) / "config.cfg"
            elif code.co_name in _FILE_FRAMES:
                path_var, key_var = _FILE_FRAMES[code.co_name]
                if local.get(path_var) is not None:
                    found = Path(str(local[path_var]))
                    if key_var is not None and local.get(key_var) is not None:
                        found = found / str(local[key_var])
        tb = tb.tb_next
    if found is None:
        return None
    try:
        return found.resolve().relative_to(Path(str(model)).resolve()).as_posix()
    except (ValueError, OSError):
        return str(found)
