"""SemEval-2010 Task 8: our strict macro F1 is the task's official score, and the data split.

The official score (SemEval2010_task8_scorer-v1.2, README in the release) is the macro-averaged
F1 over the 9 relations, Other excluded, "as a (9+1)-way classification, with directionality
taken into account": per relation R, P = correct / predicted as R and R = correct / gold R,
where a prediction is correct only when relation and direction both match, and a prediction
of R with the wrong direction counts as predicted as R (and misses the gold R).
"""
from collections import Counter
from pathlib import Path
from typing import Dict, List, Tuple

import pytest
from spacy.tokens import DocBin
from spacy.training import Example

from spacy_ie import Relation
from spacy_ie.scorer import score_relations
from spacy_ie.training.converters import convert_file

from spacy_ie.datasets import semeval as prepare_semeval


# The 9 relations of the official score (Other excluded), as the split script defines them.
RELATIONS = list(prepare_semeval.RELATIONS)


# (gold, predicted) directed labels, one sentence each.
CORE = [
    ("Cause-Effect(e1,e2)", "Cause-Effect(e1,e2)"),  # correct
    ("Cause-Effect(e2,e1)", "Cause-Effect(e1,e2)"),  # right relation, wrong direction
    ("Other", "Component-Whole(e1,e2)"),  # a relation predicted for an Other sentence
    ("Component-Whole(e2,e1)", "Component-Whole(e2,e1)"),  # correct
    ("Message-Topic(e1,e2)", "Other"),  # missed
    ("Entity-Destination(e1,e2)", "Entity-Destination(e1,e2)"),  # correct
    ("Other", "Other"),  # correct, and not scored
]
# One correct sentence for each relation CORE lacks, so that all 9 occur in the key.
REST = [
    (f"{r}(e1,e2)", f"{r}(e1,e2)")
    for r in RELATIONS
    if r not in {"Cause-Effect", "Component-Whole", "Message-Topic", "Entity-Destination"}
]


def official_scores(pairs: List[Tuple[str, str]]) -> Dict[str, float]:
    """Macro P/R/F1 and micro F1 of scorer v1.2, evaluation (iii), from (gold, predicted)
    directed labels: P, R, F1 per relation of the key (Other excluded); the macro scores are
    their means over the relations that occur in the key (macro F1 is the mean of the F1s, not
    the F1 of macro P and R: the release's result_scores1.txt gives 64.09 = mean of its nine
    F1s). Predictions of a relation absent from the key count nowhere, as in the Perl code."""

    def relation(label: str) -> str:
        return label.split("(")[0]

    correct, predicted, gold = Counter(), Counter(), Counter()
    for gold_label, pred_label in pairs:
        gold[relation(gold_label)] += 1
        predicted[relation(pred_label)] += 1  # a wrong direction counts as predicted R too
        correct[relation(gold_label)] += gold_label == pred_label
    in_key = sorted(r for r in gold if r != "Other")
    p = {r: correct[r] / predicted[r] if predicted[r] else 0.0 for r in in_key}
    r_ = {r: correct[r] / gold[r] for r in in_key}
    f = {r: 2 * p[r] * r_[r] / (p[r] + r_[r]) if p[r] + r_[r] else 0.0 for r in in_key}
    n_correct = sum(correct[r] for r in in_key)
    micro_p = n_correct / sum(predicted[r] for r in in_key)
    micro_r = n_correct / sum(gold[r] for r in in_key)
    return {
        "macro_p": sum(p.values()) / len(in_key),
        "macro_r": sum(r_.values()) / len(in_key),
        "macro_f": sum(f.values()) / len(in_key),
        "micro_f": 2 * micro_p * micro_r / (micro_p + micro_r),
    }


def make_examples(pairs: List[Tuple[str, str]], tmp_path: Path) -> List[Example]:
    """Gold Docs from a SemEval-format file through our converter; each predicted Doc has the
    same two nominals and the predicted directed label as its only relation (none for Other)."""
    lines = []
    for i, (gold_label, _) in enumerate(pairs, start=1):
        lines += [
            f'{i}\t"The <e1>nominal{i}</e1> is next to the <e2>thing{i}</e2> here."',
            gold_label,
            "Comment:",
            "",
        ]
    path = tmp_path / "TEST_FILE_FULL.TXT"
    path.write_text("\r\n".join(lines) + "\r\n", encoding="utf8")
    gold_docs, _ = convert_file(path, "semeval")
    assert len(gold_docs) == len(pairs)
    prepare = prepare_semeval
    examples = []
    for doc, (gold_label, pred_label) in zip(gold_docs, pairs):
        assert prepare.directed_label(doc) == gold_label
        predicted = doc.copy()
        e1, e2 = predicted.spans["entities"]
        assert e1.label_ == e2.label_ == "NOMINAL"
        if pred_label == "Other":
            predicted._.relations = []
        else:
            label, direction = pred_label[:-7], pred_label[-6:-1]
            head, tail = (e1, e2) if direction == "e1,e2" else (e2, e1)
            predicted._.relations = [Relation(head, tail, label)]
        assert prepare.directed_label(predicted) == pred_label
        examples.append(Example(predicted, doc))
    return examples


def test_strict_macro_f_is_the_official_score(tmp_path):
    pairs = CORE + REST
    official = official_scores(pairs)
    # By hand: Cause-Effect P = 1/2 (one correct of two predicted, the wrong direction
    # included), R = 1/2, F = 1/2; Component-Whole P = 1/2 (the Other sentence), R = 1, F = 2/3;
    # Message-Topic P = 0 (none predicted), R = 0, F = 0; the other six P = R = F = 1.
    assert official["macro_p"] == pytest.approx((0.5 + 0.5 + 0 + 6) / 9)
    assert official["macro_r"] == pytest.approx((0.5 + 1 + 0 + 6) / 9)
    assert official["macro_f"] == pytest.approx((0.5 + 2 / 3 + 0 + 6) / 9)
    # Micro: 8 correct of 10 predicted (Other excluded), of 10 gold.
    assert official["micro_f"] == pytest.approx(0.8)

    scores = score_relations(make_examples(pairs, tmp_path), labels=RELATIONS)
    assert scores["rel_macro_f"] == pytest.approx(official["macro_f"])
    assert scores["rel_macro_p"] == pytest.approx(official["macro_p"])
    assert scores["rel_macro_r"] == pytest.approx(official["macro_r"])
    assert scores["rel_micro_f"] == pytest.approx(official["micro_f"])
    per_type = scores["rel_per_type"]
    assert per_type["Cause-Effect"]["p"] == pytest.approx(0.5)
    assert per_type["Cause-Effect"]["r"] == pytest.approx(0.5)
    assert per_type["Component-Whole"]["p"] == pytest.approx(0.5)
    assert per_type["Message-Topic"]["r"] == 0.0
    # Boundaries matching ignores entity labels, not direction: the same figure here.
    assert scores["rel_boundary_macro_f"] == pytest.approx(official["macro_f"])


def test_relations_absent_from_the_key(tmp_path):
    """The Perl scorer averages over the relations that occur in the key (here 4 of 9);
    `labels=` the 9 relations averages over 9, with 0 for the 5 absent ones. On the full test
    set (and our stratified dev split) all 9 occur and the two agree; on a subset pass the
    relations of the key as `labels` to get the Perl scorer's figure."""
    examples = make_examples(CORE, tmp_path)
    official = official_scores(CORE)
    assert official["macro_f"] == pytest.approx((0.5 + 2 / 3 + 0 + 1) / 4)
    over_nine = score_relations(examples, labels=RELATIONS)["rel_macro_f"]
    assert over_nine == pytest.approx((0.5 + 2 / 3 + 0 + 1) / 9)
    in_key = sorted({g.split("(")[0] for g, _ in CORE} - {"Other"})
    assert score_relations(examples, labels=in_key)["rel_macro_f"] == pytest.approx(
        official["macro_f"]
    )


def test_dev_quotas_are_proportional_and_cover_every_label():
    prepare = prepare_semeval
    counts = {"A": 5000, "B": 2000, "C": 995, "D": 4, "E": 1}
    quota = prepare.dev_quotas(counts, 800)
    assert sum(quota.values()) == 800
    assert all(quota[label] >= 1 for label in counts)
    assert all(abs(quota[label] - n * 800 / 8000) <= 1 for label, n in counts.items())
    with pytest.raises(ValueError):
        prepare.dev_quotas(counts, 3)
    labels = ["A"] * 50 + ["B"] * 30 + ["C"] * 20
    dev = prepare.stratified_split(labels, 10, seed=0)
    assert dev == prepare.stratified_split(labels, 10, seed=0)
    assert Counter(labels[i] for i in dev) == {"A": 5, "B": 3, "C": 2}


@pytest.fixture(scope="module")
def semeval_corpus(datasets_dir, tmp_path_factory):
    data_dir = datasets_dir / "semeval2010_task8" / "SemEval2010_task8_all_data"
    if not data_dir.is_dir():
        pytest.skip(f"SemEval-2010 Task 8 not found at {data_dir}")
    out = tmp_path_factory.mktemp("semeval")
    prepare_semeval.main(data_dir, out, dev_size=800, seed=0)
    return out


def test_prepare_semeval_splits(semeval_corpus):
    import spacy

    prepare = prepare_semeval
    vocab = spacy.blank("en").vocab
    labels = {}
    for split in ("train", "dev", "test"):
        docs = list(DocBin().from_disk(semeval_corpus / f"{split}.spacy").get_docs(vocab))
        labels[split] = Counter(prepare.directed_label(doc) for doc in docs)
    assert {split: sum(c.values()) for split, c in labels.items()} == {
        "train": 7200,
        "dev": 800,
        "test": 2717,
    }
    assert set(labels["dev"]) == set(prepare.DIRECTED_LABELS)
    assert len(prepare.DIRECTED_LABELS) == 19
    # Stratified: each label's dev share is within one sentence of 10%.
    for label, n in (labels["train"] + labels["dev"]).items():
        assert abs(labels["dev"][label] - n / 10) <= 1, label
    # The release's counts (TRAIN_TEST_DISTRIB.TXT): train + dev = 8,000, e.g. Other 1,410.
    assert (labels["train"] + labels["dev"])["Other"] == 1410
    assert labels["test"]["Other"] == 454
