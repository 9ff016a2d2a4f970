"""`spacy_ie.cli.evaluate` and ``spacy-ie evaluate``: both views, one lowered-threshold pass equal
to a normal run, threshold restored, gold-entity view, plots, JSON, CLI errors."""
import json
import sys

import pytest
import spacy
from typer.testing import CliRunner

from spacy_ie.cli import app
from spacy_ie.cli.evaluate import (
    PlotsUnavailable,
    evaluate_relations,
    find_relation_extractor,
    load_examples,
    predict_view,
    write_plots,
)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
VIEW_KEYS = {"entities", "disabled", "n_docs", "seconds", "words_per_second", "scores", "sweep", "tuning"}


@pytest.fixture(scope="module")
def nlp(trained_pipeline):
    return spacy.load(trained_pipeline)


@pytest.fixture(scope="module")
def examples(nlp, demo_corpus):
    return load_examples(nlp, demo_corpus["test"])


@pytest.fixture(scope="module")
def cli_run(trained_pipeline, demo_corpus, tmp_path_factory):
    out = tmp_path_factory.mktemp("evaluate")
    args = ["evaluate", str(trained_pipeline), str(demo_corpus["test"]),
            "--output", str(out / "metrics.json"), "--plots", str(out / "plots")]
    result = CliRunner().invoke(app, args)
    return result, out


def relation_set(doc):
    return {
        (tuple(r["head"]), tuple(r["tail"]), r["label"], r["score"]) for r in doc._.relations_data
    }


def test_cli_writes_json_with_both_views(cli_run):
    result, out = cli_run
    assert result.exit_code == 0, result.output
    printed = " ".join(result.output.split())
    assert "Relations: end to end (predicted entities)" in printed
    assert "pick thresholds on dev data" in printed
    assert printed.count("words/s") == 2
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics["views"]) == {"end_to_end", "gold_entities"}
    assert metrics["views_coincide"] is False
    assert {"ents_p", "ents_r", "ents_f", "ents_per_type"} <= set(metrics["ner"])
    for view in metrics["views"].values():
        assert set(view) == VIEW_KEYS
        assert view["seconds"] > 0 and view["words_per_second"] > 0
        scores = view["scores"]
        for key in ("rel_micro_f", "rel_macro_f", "rel_per_type", "rel_boundary_micro_f",
                    "rel_boundary_macro_p", "rel_boundary_per_type"):
            assert key in scores
        sweep = view["sweep"]
        assert len(sweep["micro"]["f"]) == len(sweep["thresholds"])
        assert set(sweep["per_type"]) == set(metrics["labels"])
        tuning = view["tuning"]
        assert set(tuning["per_type"]) == set(metrics["labels"])
        assert tuning["micro"]["configured_f"] == scores["rel_micro_f"]
        for label, t in tuning["per_type"].items():
            # the configured thresholds are on the sweep grid: tuning never loses
            assert t["best_f"] >= t["configured_f"] - 1e-9
    assert metrics["views"]["gold_entities"]["disabled"] == ["ner"]


def test_cli_plots_are_pngs(cli_run):
    result, out = cli_run
    metrics = json.loads((out / "metrics.json").read_text())
    files = [f for view_files in metrics["plots"].values() for f in view_files]
    assert set(metrics["plots"]) == {"end_to_end", "gold_entities"} and len(files) == 4
    for name in files:
        data = open(name, "rb").read()
        assert data.startswith(PNG_SIGNATURE) and len(data) > len(PNG_SIGNATURE)


def test_configured_scores_equal_a_normal_run(nlp, examples):
    """Scores filtered from the lowered-threshold pass = nlp.evaluate at the configured
    thresholds, also with a per-label threshold; the thresholds are restored afterwards."""
    _, rel = find_relation_extractor(nlp)
    saved = rel.cfg["threshold"], rel.cfg["thresholds"], rel.cfg["one_relation_per_pair"]
    settings = [
        (0.5, {}, False),
        (0.6, {"BORN_IN": 0.3, "WORKS_FOR": 0.45}, False),
        (0.2, {"BORN_IN": 0.3, "WORKS_FOR": 0.45}, True),  # direction chosen after thresholds
    ]
    try:
        for threshold, per_label, single in settings:
            rel.cfg["threshold"], rel.cfg["thresholds"] = threshold, per_label
            rel.cfg["one_relation_per_pair"] = single
            results = evaluate_relations(nlp, examples)
            assert rel.cfg["threshold"] == threshold and rel.cfg["thresholds"] is per_label
            assert rel.cfg["one_relation_per_pair"] is single
            normal = nlp.evaluate(examples)
            ours = results["views"]["end_to_end"]["scores"]
            assert ours["rel_micro_f"] > 0
            assert ours["rel_micro_f"] == normal["rel_micro_f"]
            assert ours["rel_per_type"] == normal["rel_per_type"]
            assert ours["rel_boundary_micro_f"] == normal["rel_boundary_micro_f"]
            assert results["ner"]["ents_f"] == normal["ents_f"]
            assert results["thresholds"]["BORN_IN"] == per_label.get("BORN_IN", threshold)
    finally:
        rel.cfg["threshold"], rel.cfg["thresholds"], rel.cfg["one_relation_per_pair"] = saved


def test_lowered_pass_holds_low_scores_and_filters_to_a_normal_run(nlp, examples):
    from spacy_ie.cli.evaluate import score_view

    _, rel = find_relation_extractor(nlp)
    predicted, disabled = predict_view(nlp, examples, "end_to_end")
    assert disabled == []
    scores = [r.score for eg in predicted for r in eg.predicted._.relations]
    assert min(scores) < 0.5 <= max(scores)
    assert rel.cfg["threshold"] == 0.5
    score_view(predicted, rel)  # leaves the configured predictions on the Docs
    normal = nlp.pipe(eg.reference.text for eg in examples)
    assert [relation_set(eg.predicted) for eg in predicted] == [relation_set(d) for d in normal]
    assert all(eg.predicted is not ex.predicted for eg, ex in zip(predicted, examples))


def test_threshold_restored_on_error(nlp, examples, monkeypatch):
    _, rel = find_relation_extractor(nlp)
    saved = rel.cfg["threshold"], rel.cfg["thresholds"]

    def fail(docs):
        assert rel.cfg["threshold"] < saved[0]  # lowered during the run
        raise RuntimeError("boom")

    monkeypatch.setattr(rel, "predict", fail)
    with pytest.raises(RuntimeError, match="boom"):
        predict_view(nlp, examples[:2], "end_to_end")
    assert (rel.cfg["threshold"], rel.cfg["thresholds"]) == saved
    assert rel.cfg["thresholds"] is saved[1]


def test_gold_entity_view_uses_only_gold_entities(nlp, examples):
    predicted, disabled = predict_view(nlp, examples, "gold_entities")
    assert disabled == ["ner"] and "ner" in nlp.pipe_names  # disabled for the run only
    n_relations = 0
    for eg in predicted:
        gold = {(e.start_char, e.end_char, e.label_) for e in eg.reference.ents}
        for rel in eg.predicted._.relations:
            n_relations += 1
            assert (rel.head.start_char, rel.head.end_char, rel.head.label_) in gold
            assert (rel.tail.start_char, rel.tail.end_char, rel.tail.label_) in gold
    assert n_relations > 0


def test_pipeline_without_ner_reports_one_view(trained_pipeline, examples):
    nlp = spacy.load(trained_pipeline, exclude=["ner"])
    results = evaluate_relations(nlp, examples[:10])
    assert results["views_coincide"] is True and results["ner"] is None
    assert set(results["views"]) == {"gold_entities"}
    assert any("coincide" in note for note in results["notes"])


def test_plots_need_matplotlib(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)  # import fails
    with pytest.raises(PlotsUnavailable, match=r"pip install spacy-ie\[plots\]"):
        write_plots({"views": {}, "threshold": 0.5}, tmp_path)


@pytest.mark.parametrize("what", ["model", "data", "no_relation_extractor"])
def test_cli_errors_exit_1(what, trained_pipeline, demo_corpus, tmp_path):
    model, data = str(trained_pipeline), str(demo_corpus["test"])
    if what == "model":
        model = str(tmp_path / "missing_model")
    elif what == "data":
        data = str(tmp_path / "missing.spacy")
    else:
        model = str(tmp_path / "blank")
        spacy.blank("en").to_disk(model)
    result = CliRunner().invoke(app, ["evaluate", model, data])
    printed = " ".join(result.output.split())
    assert result.exit_code == 1, result.output
    assert "Traceback" not in printed
    expected = {"model": "missing_model", "data": "missing.spacy: no such file",
                "no_relation_extractor": "no relation_extractor"}[what]
    assert expected in printed
