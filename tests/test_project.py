"""project.yml: every command's files are seen one by one, and the demo workflow runs."""
import shutil
import subprocess
import sys
from pathlib import Path

import srsly
from weasel.util import load_project_config
from conftest import REPO_ROOT

PATH_KEYS = ("deps", "outputs", "outputs_no_cache")


def project(overrides=None) -> dict:
    return load_project_config(REPO_ROOT, overrides=overrides or {})


def test_each_dep_and_output_is_one_path():
    """spaCy's rel_component tutorial fails with 'Missing dependency' because a list of several
    ${vars.*} entries was joined into one string; here every entry must stay one path."""
    config = project()
    for command in config["commands"]:
        for key in PATH_KEYS:
            paths = command.get(key, [])
            assert isinstance(paths, list), (command["name"], key)
            for path in paths:
                assert isinstance(path, str) and path, (command["name"], key, path)
                assert "${" not in path and " " not in path and "," not in path, (command["name"], path)


def test_repo_deps_exist_and_workflows_name_commands():
    config = project()
    names = {command["name"] for command in config["commands"]}
    produced = {p for c in config["commands"] for key in PATH_KEYS for p in c.get(key, [])}
    for command in config["commands"]:
        for dep in command.get("deps", []):
            if dep.startswith(("assets/demo", "configs/", "benchmarks/")):
                assert (REPO_ROOT / dep).exists(), (command["name"], dep)
            elif not dep.startswith("assets/"):
                # Made by an earlier command: corpus/, training/...
                assert dep in produced, (command["name"], dep)
    for workflow, steps in config["workflows"].items():
        assert set(steps) <= names, workflow
    assert {"all", "conll04", "rel-component"} <= set(config["workflows"])


def test_data_dir_points_at_real_datasets(datasets_dir):
    config = project({"vars.data_dir": str(datasets_dir)})
    for command in config["commands"]:
        for dep in command.get("deps", []):
            if dep.startswith(str(datasets_dir)):
                assert Path(dep).is_file(), (command["name"], dep)
    for asset in config["assets"]:
        assert Path(asset["dest"]).is_file(), asset["dest"]


def test_demo_workflow_runs_end_to_end(tmp_path):
    """The README's main job, shortened: convert, train, evaluate and extract with spacy project."""
    for name in ("project.yml", "configs", "assets/demo"):
        source = REPO_ROOT / name
        target = tmp_path / name
        if source.is_dir():
            shutil.copytree(source, target)
        else:
            shutil.copy(source, target)
    result = subprocess.run(
        [sys.executable, "-m", "spacy", "project", "run", "all", str(tmp_path),
         "--vars.demo_max_steps", "60"],
        capture_output=True, text=True, timeout=900,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    metrics = srsly.read_json(tmp_path / "metrics" / "demo.json")
    assert "end_to_end" in metrics["views"] and metrics["ner"]["ents_f"] is not None
    lines = (tmp_path / "extractions" / "demo.jsonl").read_text(encoding="utf8").splitlines()
    sample = (tmp_path / "assets" / "demo" / "sample.txt").read_text(encoding="utf8").splitlines()
    assert len(lines) == len(sample)  # one record per input line, blank lines included
    assert "<svg" in (tmp_path / "extractions" / "demo.html").read_text(encoding="utf8")
