"""benchmarks/speed_accuracy.py: one row per pipeline, the evaluation's own scores, the plot."""
import json

import pytest
import typer
from typer.testing import CliRunner

from conftest import load_benchmark

speed_accuracy = load_benchmark("speed_accuracy")


def test_rows_scores_and_plot(tmp_path, trained_pipeline, demo_corpus):
    pytest.importorskip("matplotlib")
    app = typer.Typer()
    app.command()(speed_accuracy.main)
    out, png = tmp_path / "sa.json", tmp_path / "sa.png"
    result = CliRunner().invoke(app, [str(demo_corpus["test"]), f"a={trained_pipeline}", f"b={trained_pipeline}",
                                      "--repeats", "1", "--output", str(out), "--plot", str(png)])  # fmt: skip
    assert result.exit_code == 0, result.output
    results = json.loads(out.read_text())
    rows = results["pipelines"]
    assert list(rows) == ["a", "b"] and results["gpu_id"] == -1 and not results["mixed_precision"]
    # the same pipeline scores the same, and its scores are the evaluation's
    assert rows["a"]["rel_micro_f"] == rows["b"]["rel_micro_f"]
    assert rows["a"]["entity_f"] is not None and rows["a"]["wps_cpu"] > 0 and rows["a"]["size_mb"] > 0
    assert rows["a"]["speedup_cpu"] == 1.0 and rows["b"]["speedup_cpu"] > 0
    assert rows["a"]["speedup_wall"] == 1.0 and rows["b"]["speedup_wall"] > 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    bad = CliRunner().invoke(app, [str(demo_corpus["test"]), str(trained_pipeline)])
    assert bad.exit_code != 0 and "NAME=MODEL_DIR" in bad.output
    # mixed precision is a GPU setting: asked for on the CPU, the run stops before loading anything
    amp = CliRunner().invoke(app, [str(demo_corpus["test"]), f"a={trained_pipeline}", "--mixed-precision"])
    assert amp.exit_code != 0 and "--gpu-id" in amp.output


def test_entity_f_reads_ner_or_span_scores():
    assert speed_accuracy.entity_f({"ents_p": 0.5, "ents_f": 0.8123}) == 81.23
    assert speed_accuracy.entity_f({"spans_entities_p": 0.1, "spans_entities_f": 0.5}) == 50.0
    assert speed_accuracy.entity_f({"ents_f": None}) is None
