"""benchmarks/span_errors.py: error classes of predicted entities against gold."""
import json

import typer
from typer.testing import CliRunner

from conftest import load_benchmark

span_errors = load_benchmark("span_errors")


def test_each_entity_falls_in_one_class():
    gold = {(0, 5): "PER", (10, 20): "ORG", (30, 35): "LOC", (40, 45): "LOC"}
    predicted = {
        (0, 5): "PER",  # exact
        (10, 20): "LOC",  # wrong label
        (30, 33): "LOC",  # boundary
        (50, 55): "PER",  # spurious
    }  # (40, 45) is missed
    counts = span_errors.count_errors(gold, predicted)
    assert counts == {
        ("PER", "gold", "exact"): 1,
        ("ORG", "gold", "wrong label"): 1,
        ("LOC", "gold", "boundary"): 1,
        ("LOC", "gold", "missed"): 1,
        ("LOC", "predicted", "wrong label"): 1,
        ("LOC", "predicted", "boundary"): 1,
        ("PER", "predicted", "spurious"): 1,
    }
    # gold classes sum to the gold count, exact + predicted classes to the predicted count
    assert sum(n for (_, side, _), n in counts.items() if side == "gold") == len(gold)
    assert counts["PER", "gold", "exact"] + sum(n for (_, side, _), n in counts.items() if side == "predicted") == len(predicted)


def test_cli_counts_a_pipeline(tmp_path, trained_pipeline, demo_corpus):
    app = typer.Typer()
    app.command()(span_errors.main)
    out = tmp_path / "errors.json"
    result = CliRunner().invoke(app, [str(trained_pipeline), str(demo_corpus["test"]), "--output", str(out)])
    assert result.exit_code == 0, result.output
    table = json.loads(out.read_text())["counts"]
    assert table and all(set(row) == {"gold", "predicted"} for row in table.values())
    assert sum(row["gold"]["exact"] for row in table.values()) > 0
