"""Loading a pipeline (`spacy_ie.util.load_pipeline`): every way of loading one (``spacy.load``,
the shared loader, each CLI command, the Ray engine) fails on a damaged pipeline with one clear
message naming the component or file, never loads it silently and never shows a traceback."""
import json
import shutil
from pathlib import Path
from typing import Callable, Dict, List, Tuple

import pytest
import spacy
from typer.testing import CliRunner

from spacy_ie.cli import app
from spacy_ie.util import PipelineLoadError, load_pipeline


TEXT = "Ada Lovelace was born in London . She worked with Charles Babbage at the Analytical Engine ."


def one_line(text: str) -> str:
    """`text` with wasabi's line wrapping undone."""
    return " ".join(text.split())


def break_section_header(path: Path) -> None:
    """The harness's reproducer: a section header that lost its opening bracket, so its keys
    fall into the previous section (configparser.DuplicateOptionError)."""
    config = path / "config.cfg"
    lines = config.read_text(encoding="utf8").splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("[components.ner.model]"))
    lines[header] = lines[header][1:]
    config.write_text("\n".join(lines) + "\n", encoding="utf8")


def truncate_model(path: Path) -> None:
    model = path / "relation_extractor" / "model"
    data = model.read_bytes()
    model.write_bytes(data[: len(data) // 2])


def delete_cfg(path: Path) -> None:
    (path / "relation_extractor" / "cfg").unlink()


def cut_labels(path: Path) -> None:
    cfg_path = path / "relation_extractor" / "cfg"
    cfg = json.loads(cfg_path.read_text(encoding="utf8"))
    assert len(cfg["labels"]) > 2
    cfg["labels"] = cfg["labels"][:2]
    cfg_path.write_text(json.dumps(cfg), encoding="utf8")


def bad_setting(path: Path) -> None:
    config = path / "config.cfg"
    text = config.read_text(encoding="utf8")
    assert "\nthreshold = 0.5\n" in text
    config.write_text(text.replace("\nthreshold = 0.5\n", '\nthreshold = "high"\n', 1), encoding="utf8")


def unknown_factory(path: Path) -> None:
    config = path / "config.cfg"
    text = config.read_text(encoding="utf8")
    config.write_text(text.replace('factory = "relation_extractor"', 'factory = "relation_extractr"'), encoding="utf8")


# name -> (damage, text the error must contain: the component or file that is wrong)
DAMAGES: Dict[str, Tuple[Callable[[Path], None], List[str]]] = {
    "malformed_section_header": (break_section_header, ["config.cfg", "DuplicateOptionError"]),
    "truncated_model": (truncate_model, ["relation_extractor/model"]),
    "missing_cfg": (delete_cfg, ["relation_extractor"]),
    "cut_label_list": (cut_labels, ["relation_extractor"]),
    "bad_setting": (bad_setting, ["config.cfg", "threshold"]),
    "unknown_factory": (unknown_factory, ["config.cfg", "relation_extractr"]),
}


@pytest.fixture(scope="module")
def damaged(trained_pipeline, tmp_path_factory) -> Dict[str, Path]:
    """One copy of the trained pipeline per damage in `DAMAGES`."""
    root = tmp_path_factory.mktemp("damaged")
    paths = {}
    for name, (damage, _) in DAMAGES.items():
        paths[name] = root / name
        shutil.copytree(trained_pipeline, paths[name])
        damage(paths[name])
    return paths


@pytest.mark.parametrize("name", list(DAMAGES))
def test_damaged_pipeline_fails_to_load_with_spacy_load(damaged, name):
    """Not only our CLI: plain ``spacy.load`` refuses each damaged pipeline (nothing loads
    silently and predicts fewer relations)."""
    with pytest.raises(Exception) as info:
        spacy.load(damaged[name])
    if name in ("missing_cfg", "cut_label_list"):  # our own check at load: it names the component
        assert "relation_extractor" in str(info.value)


@pytest.mark.parametrize("name", list(DAMAGES))
def test_damaged_pipeline_gives_one_line_naming_the_file(damaged, name):
    _, expected = DAMAGES[name]
    with pytest.raises(PipelineLoadError) as info:
        load_pipeline(damaged[name])
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"Cannot load the pipeline {str(damaged[name])!r}")
    for text in expected:
        assert text in message, message


def test_missing_pipeline_gives_one_line(tmp_path):
    with pytest.raises(PipelineLoadError) as info:
        load_pipeline(tmp_path / "nowhere")
    assert "nowhere" in str(info.value) and "\n" not in str(info.value)
    assert info.value.file is None


@pytest.fixture(scope="module")
def small_inputs(demo_corpus, tmp_path_factory) -> Dict[str, Path]:
    tmp = tmp_path_factory.mktemp("inputs")
    (tmp / "in.txt").write_text(TEXT + "\n", encoding="utf8")
    return {"text": tmp / "in.txt", "data": demo_corpus["dev"], "out": tmp}


@pytest.mark.parametrize("command", ["extract", "evaluate", "tune-thresholds"])
@pytest.mark.parametrize("name", ["malformed_section_header", "truncated_model", "cut_label_list"])
def test_every_command_reports_a_damaged_pipeline_in_one_message(damaged, small_inputs, command, name):
    model = str(damaged[name])
    args = {
        "extract": [model, str(small_inputs["text"])],
        "evaluate": [model, str(small_inputs["data"])],
        "tune-thresholds": [model, str(small_inputs["data"]), str(small_inputs["out"] / f"tuned-{name}")],
    }[command]
    result = CliRunner().invoke(app, [command, *args])
    output = one_line(result.output)  # stdout and stderr (click >= 8.2)
    assert result.exit_code == 1, output
    assert isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in output
    assert f"Cannot load the pipeline {model!r}" in output
    for text in DAMAGES[name][1]:
        assert text in output
    assert not (small_inputs["out"] / f"tuned-{name}").exists()


def test_config_check_without_loading(damaged, trained_pipeline):
    """`check_pipeline_config` parses config.cfg and meta.json only: a damaged config fails in
    one line, a damaged model file is left to the loader, a package name is not checked."""
    from spacy_ie.util import check_pipeline_config

    with pytest.raises(PipelineLoadError, match=r"\(config\.cfg\): DuplicateOptionError"):
        check_pipeline_config(damaged["malformed_section_header"])
    check_pipeline_config(damaged["truncated_model"])
    check_pipeline_config(trained_pipeline)
    check_pipeline_config("en_no_such_package")


def test_ray_engine_reports_a_damaged_config_before_starting_ray(damaged, small_inputs, tmp_path):
    pytest.importorskip("ray.data")
    model = str(damaged["malformed_section_header"])
    out = tmp_path / "shards"
    result = CliRunner().invoke(
        app, ["extract", model, str(small_inputs["text"]), "--engine", "ray", "-o", str(out)]
    )
    output = one_line(result.output)
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit), output
    assert f"Cannot load the pipeline {model!r} (config.cfg): DuplicateOptionError" in output
    assert "Traceback" not in output and not out.exists()
