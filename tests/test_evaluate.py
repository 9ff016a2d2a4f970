"""`spacy_ie.evaluation` and ``spacy-ie evaluate``: both views, one prediction pass decided like
a normal run, a pipeline left unchanged, gold-entity view, plots, JSON, CLI errors; and
``spacy-ie tune-thresholds``, whose thresholds reach the saved config."""
import copy
import json
import re
import sys

import pytest
import spacy
from spacy.tokens import DocBin
from typer.testing import CliRunner

from conftest import stderr_has
from spacy_ie.cli import app
from spacy_ie.cli.evaluate import print_results
from spacy_ie.evaluation import (
    EvaluationError,
    EvaluationWarning,
    apply_thresholds,
    cross_validate_thresholds,
    evaluate_relations,
    find_relation_extractor,
    load_examples,
    predict_view,
    score_view,
    shrink_threshold,
    tune_thresholds,
)
from spacy_ie.plots import PlotsUnavailable, write_plots

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
    for name, view in metrics["views"].items():
        assert set(view) == VIEW_KEYS | ({"arguments"} if name == "end_to_end" else set())
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
    e2e = metrics["views"]["end_to_end"]
    arguments, scores = e2e["arguments"], e2e["scores"]
    assert arguments["gold"] > 0 and arguments["reachable"] <= arguments["gold"]
    # strict recall can never pass the share of gold relations whose arguments were predicted
    assert scores["rel_micro_r"] <= arguments["recall_ceiling"] + 1e-9
    assert arguments["false_positives_wrong_argument"] <= arguments["false_positives"]
    assert "the recall ceiling" in printed


def test_cli_plots_are_pngs(cli_run):
    result, out = cli_run
    metrics = json.loads((out / "metrics.json").read_text())
    files = [f for view_files in metrics["plots"].values() for f in view_files]
    assert set(metrics["plots"]) == {"end_to_end", "gold_entities"} and len(files) == 4
    for name in files:
        data = open(name, "rb").read()
        assert data.startswith(PNG_SIGNATURE) and len(data) > len(PNG_SIGNATURE)


def test_configured_scores_equal_a_normal_run(nlp, examples):
    """Scores decided from the one prediction pass = nlp.evaluate at the configured
    thresholds, also with per-label thresholds and one relation per pair."""
    _, rel = find_relation_extractor(nlp)
    saved = copy.deepcopy(rel.cfg)
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
            normal = nlp.evaluate(examples)
            ours = results["views"]["end_to_end"]["scores"]
            assert ours["rel_micro_f"] > 0
            assert ours["rel_micro_f"] == normal["rel_micro_f"]
            assert ours["rel_per_type"] == normal["rel_per_type"]
            assert ours["rel_boundary_micro_f"] == normal["rel_boundary_micro_f"]
            assert results["ner"]["ents_f"] == normal["ents_f"]
            assert results["thresholds"]["BORN_IN"] == per_label.get("BORN_IN", threshold)
    finally:
        rel.cfg.clear()
        rel.cfg.update(saved)


def test_evaluation_leaves_the_pipeline_unchanged(nlp, examples):
    """All views, the sweep and the tuning: the component's cfg and nlp.config stay as they were."""
    _, rel = find_relation_extractor(nlp)
    cfg, config = copy.deepcopy(rel.cfg), nlp.config.to_str()
    results = evaluate_relations(nlp, examples)
    assert set(results["views"]) == {"end_to_end", "gold_entities"}
    assert rel.cfg == cfg and nlp.config.to_str() == config
    assert nlp.pipe_names == ["tok2vec", "ner", "relation_extractor"] and not nlp.disabled


def test_one_pass_decided_like_a_normal_run(nlp, examples):
    _, rel = find_relation_extractor(nlp)
    view = predict_view(nlp, examples, "end_to_end")
    assert view.disabled == [] and view.seconds > 0
    apply_thresholds(rel, view, dict.fromkeys(rel.labels, 0.0))  # every allowed label
    scores = [r.score for eg in view.examples for r in eg.predicted._.relations]
    assert min(scores) < 0.5 <= max(scores)
    score_view(view, rel)  # leaves the configured predictions on the Docs
    normal = nlp.pipe(eg.reference.text for eg in examples)
    assert [relation_set(eg.predicted) for eg in view.examples] == [relation_set(d) for d in normal]
    assert all(eg.predicted is not ex.predicted for eg, ex in zip(view.examples, examples))


def test_gold_entity_view_uses_only_gold_entities(nlp, examples):
    view = predict_view(nlp, examples, "gold_entities")
    assert view.disabled == ["ner"] and "ner" in nlp.pipe_names  # disabled for the run only
    _, rel = find_relation_extractor(nlp)
    apply_thresholds(rel, view, rel.label_thresholds())
    n_relations = 0
    for eg in view.examples:
        gold = {(e.start_char, e.end_char, e.label_) for e in eg.reference.ents}
        for r in eg.predicted._.relations:
            n_relations += 1
            assert (r.head.start_char, r.head.end_char, r.head.label_) in gold
            assert (r.tail.start_char, r.tail.end_char, r.tail.label_) in gold
    assert n_relations > 0


def test_tune_thresholds_saves_them_in_the_component_and_the_config(trained_pipeline, demo_corpus, tmp_path):
    out = tmp_path / "tuned"
    result = CliRunner().invoke(
        app, ["tune-thresholds", str(trained_pipeline), str(demo_corpus["dev"]), str(out)]
    )
    assert result.exit_code == 0, result.output
    tuned = spacy.load(out)
    rel = tuned.get_pipe("relation_extractor")
    thresholds = rel.cfg["thresholds"]
    assert set(thresholds) == set(rel.labels)
    # (srsly's JSON reader may give 0.35000000000000003 for 0.35: equal in float32, as decided)
    assert tuned.config["components"]["relation_extractor"]["thresholds"] == pytest.approx(thresholds)
    saved = spacy.util.load_config(out / "config.cfg")
    assert saved["components"]["relation_extractor"]["thresholds"] == pytest.approx(thresholds)
    # A pipeline built from the saved config (as `spacy train` builds it) starts with them.
    rebuilt = spacy.util.load_model_from_config(saved, auto_fill=True)
    assert rebuilt.get_pipe("relation_extractor").cfg["thresholds"] == pytest.approx(thresholds)
    assert result.output.count("Threshold") >= 1


def test_shrink_threshold_weighs_by_support():
    # 1 dev relation against a prior worth 20: (nearly) the prior
    assert shrink_threshold(0.1, 0.5, 1, 20) == pytest.approx(0.5 - 0.4 / 21)
    # large support: (nearly) its own best
    assert abs(shrink_threshold(0.1, 0.5, 2000, 20) - 0.1) < 0.005
    assert shrink_threshold(0.1, 0.5, 0, 20) == 0.5
    assert shrink_threshold(0.1, 0.5, 3, 0) == 0.1  # no shrinkage
    assert shrink_threshold(0.1, 0.5, 0, 0) == 0.5
    with pytest.raises(ValueError, match="negative"):
        shrink_threshold(0.1, 0.5, 3, -1)


@pytest.mark.parametrize("prior_count", [0.0, 20.0, 1e9])
def test_tune_thresholds_shrinks_toward_the_global_threshold(trained_pipeline, demo_corpus, tmp_path, prior_count):
    result = tune_thresholds(trained_pipeline, demo_corpus["dev"], tmp_path / "tuned", prior_count=prior_count)
    g = result["global"]
    nlp = spacy.load(trained_pipeline)
    rel = nlp.get_pipe("relation_extractor")
    examples = load_examples(nlp, demo_corpus["dev"])
    assert g["support"] == sum(len(eg.reference._.relations) for eg in examples)
    assert set(result["labels"]) == set(rel.labels)
    for label, c in result["labels"].items():
        assert c["support"] == sum(r.label == label for eg in examples for r in eg.reference._.relations)
        assert c["final"] == result["thresholds"][label]
        w = c["support"] / (c["support"] + prior_count)
        assert c["final"] == pytest.approx(w * c["raw"] + (1 - w) * g["final"])
    if prior_count == 0:  # every label its own best
        assert g["final"] == g["raw"]
        assert all(c["final"] == c["raw"] for c in result["labels"].values())
    if prior_count == 1e9:  # a prior worth everything: the configured threshold everywhere
        assert all(t == pytest.approx(0.5, abs=1e-5) for t in result["thresholds"].values())
    assert spacy.load(tmp_path / "tuned").get_pipe("relation_extractor").cfg["thresholds"] == pytest.approx(result["thresholds"])


def test_tune_thresholds_label_with_one_dev_relation_keeps_the_global_threshold(trained_pipeline, demo_corpus, tmp_path):
    """A dev set where one label has a single gold relation: its threshold stays within
    1/21 of the way from the global threshold to its raw best (prior count 20); the labels
    with many relations move most of the way."""
    from spacy.tokens import DocBin

    nlp = spacy.load(trained_pipeline)
    docs = list(DocBin().from_disk(demo_corpus["dev"]).get_docs(nlp.vocab))
    counts = {}
    for doc in docs:
        for r in doc._.relations:
            counts[r.label] = counts.get(r.label, 0) + 1
    rare = min(counts, key=counts.get)
    seen = 0
    for doc in docs:
        kept = []
        for r in doc._.relations:
            if r.label == rare:
                seen += 1
                if seen > 1:
                    continue
            kept.append(r)
        doc._.relations = kept
    path = tmp_path / "dev.spacy"
    DocBin(docs=docs, store_user_data=True).to_disk(path)
    result = tune_thresholds(trained_pipeline, path, tmp_path / "tuned", prior_count=20)
    g, c = result["global"], result["labels"][rare]
    assert c["support"] == 1
    assert abs(c["final"] - g["final"]) <= abs(c["raw"] - g["final"]) / 21 + 1e-9
    for label, other in result["labels"].items():
        if other["support"] >= 20:
            assert abs(other["final"] - other["raw"]) <= abs(other["raw"] - g["final"]) / 2 + 1e-9


def _dev_folds(nlp, dev_path, k):
    examples = load_examples(nlp, dev_path)
    return [predict_view(nlp, examples[i::k], "end_to_end") for i in range(k)], predict_view(nlp, examples, "end_to_end")


def test_cross_validate_thresholds_pools_the_folds(trained_pipeline, demo_corpus):
    """The configured thresholds' pooled F over disjoint folds is the whole dev set's F at
    those thresholds; a prior worth everything keeps the configured thresholds, so tuned and
    configured agree; the folds are left at the configured thresholds."""
    nlp = spacy.load(trained_pipeline)
    _, rel = find_relation_extractor(nlp)
    folds, whole = _dev_folds(nlp, demo_corpus["dev"], 3)
    cv = cross_validate_thresholds(folds, rel, prior_count=0.0)
    assert cv["folds"] == 3
    assert cv["configured_f"] == pytest.approx(score_view(whole, rel)["scores"]["rel_micro_f"])
    assert 0.0 <= cv["tuned_f"] <= 1.0
    everything = cross_validate_thresholds(folds, rel, prior_count=1e12)
    assert everything["tuned_f"] == pytest.approx(everything["configured_f"])
    for fold in folds:  # left at the configured thresholds
        before = [list(eg.predicted._.relations) for eg in fold.examples]
        apply_thresholds(rel, fold, rel.label_thresholds())
        assert [list(eg.predicted._.relations) for eg in fold.examples] == before
    with pytest.raises(ValueError, match="at least 2 folds"):
        cross_validate_thresholds(folds[:1], rel, prior_count=20.0)


def test_tune_thresholds_reports_the_cross_validated_estimate(trained_pipeline, demo_corpus, tmp_path):
    with_cv = tune_thresholds(trained_pipeline, demo_corpus["dev"], tmp_path / "a", folds=2)
    without = tune_thresholds(trained_pipeline, demo_corpus["dev"], tmp_path / "b", folds=0)
    assert without["cross_validation"] is None
    cv = with_cv["cross_validation"]
    assert cv["folds"] == 2
    assert cv["configured_f"] == pytest.approx(with_cv["dev_micro_f_before"])
    # predicting dev in parts changes nothing of the tuning itself
    assert with_cv["thresholds"] == pytest.approx(without["thresholds"])
    assert with_cv["dev_micro_f_after"] == pytest.approx(without["dev_micro_f_after"])
    with pytest.raises(ValueError, match="folds"):
        tune_thresholds(trained_pipeline, demo_corpus["dev"], tmp_path / "c", folds=-1)


def test_tune_thresholds_cli_prints_support_raw_and_final(trained_pipeline, demo_corpus, tmp_path):
    result = CliRunner().invoke(app, ["tune-thresholds", str(trained_pipeline), str(demo_corpus["dev"]),
                                      str(tmp_path / "tuned"), "--prior-count", "5"])
    assert result.exit_code == 0, result.output
    for column in ("Dev support", "Best on dev", "Threshold", "global (micro)", "shrunk toward", "Out of sample (2-fold"):
        assert column in result.output
    bad = CliRunner().invoke(app, ["tune-thresholds", str(trained_pipeline), str(demo_corpus["dev"]),
                                   str(tmp_path / "bad"), "--prior-count", "-1"])
    assert bad.exit_code != 0


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
    assert stderr_has(result, expected) and expected not in " ".join(result.stdout.split())


# --- data with nothing (or only entities) to score ------------------------------------------


def strip_annotations(source, path, *, entities):
    """The DocBin `source` written to `path` without gold relations, and without entities
    unless `entities`."""
    nlp = spacy.blank("en")
    docs = list(DocBin().from_disk(source).get_docs(nlp.vocab))
    for doc in docs:
        doc._.relations = []
        if not entities:
            doc.ents = []
            doc.spans.clear()
    DocBin(docs=docs, store_user_data=True).to_disk(path)
    return path


def test_cli_without_gold_annotations_fails_and_writes_nothing(trained_pipeline, demo_corpus, tmp_path):
    """No gold entities and no gold relations: nothing can be scored. One message naming the
    file on stderr, exit code 1, no traceback, no metrics file."""
    data = strip_annotations(demo_corpus["test"], tmp_path / "raw.spacy", entities=False)
    output = tmp_path / "metrics.json"
    result = CliRunner().invoke(app, ["evaluate", str(trained_pipeline), str(data), "--output", str(output)])
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit), repr(result.exception)
    assert stderr_has(result, f"{data}: no gold relations") and stderr_has(result, "nothing to evaluate")
    assert "Traceback" not in result.output and result.stdout == ""
    assert not output.exists() and list(tmp_path.iterdir()) == [data]


def test_cli_warns_when_there_are_no_gold_relations(trained_pipeline, demo_corpus, tmp_path):
    """Gold entities but no gold relations: the entity scores are written, and a warning on
    stderr names the file and says the relation scores are undefined."""
    data = strip_annotations(demo_corpus["test"], tmp_path / "no_relations.spacy", entities=True)
    output = tmp_path / "metrics.json"
    result = CliRunner().invoke(app, ["evaluate", str(trained_pipeline), str(data), "--output", str(output)])
    assert result.exit_code == 0, result.output
    assert stderr_has(result, f"{data}: no gold relations") and stderr_has(result, "undefined")
    assert "no gold relations" not in result.stdout
    metrics = json.loads(output.read_text())
    assert metrics["ner"]["ents_f"] is not None and metrics["type_coverage"]["relations"] == 0


def test_no_gold_relations_in_the_library(trained_pipeline, examples):
    """`evaluate_relations` warns (EvaluationWarning) with gold entities but no gold relations,
    and fails before predicting when nothing can be scored: no gold relations and either no
    gold entities or no entity component to score them."""
    without_relations = []
    for eg in examples[:10]:
        reference = eg.reference.copy()
        reference._.relations = []
        without_relations.append(spacy.training.Example(eg.predicted, reference))
    nlp = spacy.load(trained_pipeline)
    with pytest.warns(EvaluationWarning, match="dev.spacy: no gold relations .* undefined"):
        results = evaluate_relations(nlp, without_relations, source="dev.spacy")
    assert results["views"]["end_to_end"]["scores"]["rel_micro_f"] == 0.0
    no_ner = spacy.load(trained_pipeline, exclude=["ner"])
    with pytest.raises(EvaluationError, match="no entity component before 'relation_extractor'"):
        evaluate_relations(no_ner, without_relations)
    for eg in without_relations:
        eg.reference.ents = []
        eg.reference.spans.clear()
    with pytest.raises(EvaluationError, match="no gold entities: nothing to evaluate"):
        evaluate_relations(nlp, without_relations)


def test_tune_thresholds_without_gold_relations_fails_and_writes_nothing(trained_pipeline, demo_corpus, tmp_path):
    data = strip_annotations(demo_corpus["dev"], tmp_path / "dev.spacy", entities=True)
    out = tmp_path / "tuned"
    result = CliRunner().invoke(app, ["tune-thresholds", str(trained_pipeline), str(data), str(out)])
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit), repr(result.exception)
    assert stderr_has(result, f"{data}: no gold relations") and stderr_has(result, "no thresholds to tune")
    assert "Traceback" not in result.output and result.stdout == ""
    assert not out.exists()


def test_printing_undefined_entity_scores(capsys):
    """spaCy's entity scores are None without gold and predicted entities: printed as "-"."""
    curve = {"p": [0.0], "r": [0.0], "f": [0.0], "best_threshold": 0.5, "best_p": 0.0, "best_r": 0.0, "best_f": 0.0}
    tuning = {"configured_threshold": 0.5, "configured_f": 0.0, "best_threshold": 0.5, "best_f": 0.0, "gain": 0.0}
    prf = {k: 0.0 for k in ("p", "r", "f")}
    scores = {f"{prefix}_{avg}_{k}": 0.0 for prefix in ("rel", "rel_boundary") for avg in ("micro", "macro") for k in "prf"}
    scores.update(rel_per_type={"R": prf}, rel_boundary_per_type={"R": prf})
    view = {"disabled": [], "words_per_second": 1.0, "seconds": 1.0, "scores": scores,
            "sweep": {"thresholds": [0.5], "micro": curve, "per_type": {"R": curve}},
            "tuning": {"micro": tuning, "per_type": {"R": tuning}, "tuned_micro_f": 0.0, "tuned_gain": 0.0}}
    results = {"n_docs": 1, "ner": {"ents_p": None, "ents_r": None, "ents_f": None, "ents_per_type": None},
               "views": {"end_to_end": view}, "notes": []}
    print_results(results)
    printed = capsys.readouterr().out
    assert "Entities, ents" in printed
    assert re.search(r"^Precision +-$", printed, re.M) and re.search(r"^F-score +-$", printed, re.M)
