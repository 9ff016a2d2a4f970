"""Relation scorer: hand-computed strict / boundaries P, R, F, and the threshold sweep."""
from typing import Dict, List, Optional, Sequence, Tuple, Union

import pytest
import spacy
from hypothesis import given, settings
from hypothesis import strategies as st
from spacy.tokens import Doc, Span
from spacy.training import Example

from spacy_ie import Relation
from spacy_ie.scorer import (
    argument_errors,
    count_relations,
    make_relation_scorer,
    score_relations,
    threshold_curves,
)

NLP = spacy.blank("en")
TEXT = "Ada Lovelace met Charles Babbage in London with Mary Somerville ."
ENTS = [
    ("Ada Lovelace", "PER"),
    ("Charles Babbage", "PER"),
    ("London", "LOC"),
    ("Mary Somerville", "PER"),
]
ADA, CHARLES, LONDON, MARY = (name for name, _ in ENTS)

# a span is given by its text (an entity of the doc) or by (text, label) for a span that is
# not one of the doc's entities
SpanRef = Union[str, Tuple[str, str]]


def make_doc(
    rels: Sequence[tuple],
    ents: Sequence[Tuple[str, str]] = tuple(ENTS),
    text: str = TEXT,
    words: Optional[List[str]] = None,
) -> Doc:
    """A Doc of `text` with `ents` and relations (head, tail, label[, score])."""
    if words is None:
        doc = NLP(text)
    else:
        doc = Doc(NLP.vocab, words=words, spaces=_spaces(text, words))
        assert doc.text == text
    spans: Dict[str, Span] = {}
    for ent_text, label in ents:
        spans[ent_text] = _char_span(doc, ent_text, label)
    doc.ents = list(spans.values())

    def span_of(ref: SpanRef) -> Span:
        if isinstance(ref, tuple):
            return _char_span(doc, *ref)
        return spans[ref]

    doc._.relations = [
        Relation(span_of(h), span_of(t), label, *score) for h, t, label, *score in rels
    ]
    return doc


def _char_span(doc: Doc, span_text: str, label: str) -> Span:
    start = doc.text.index(span_text)
    span = doc.char_span(start, start + len(span_text), label=label)
    assert span is not None, span_text
    return span


def _spaces(text: str, words: List[str]) -> List[bool]:
    spaces, pos = [], 0
    for word in words:
        pos = text.index(word, pos) + len(word)
        spaces.append(text[pos : pos + 1] == " ")
    return spaces


def example(pred_rels, gold_rels, pred_ents=tuple(ENTS)) -> Example:
    return Example(make_doc(pred_rels, ents=pred_ents), make_doc(gold_rels))


GOLD = [(ADA, CHARLES, "knows"), (CHARLES, LONDON, "lives_in")]


def assert_prf(scores, key, p, r, f):
    assert scores[f"{key}_p"] == pytest.approx(p)
    assert scores[f"{key}_r"] == pytest.approx(r)
    assert scores[f"{key}_f"] == pytest.approx(f)


def test_perfect_prediction():
    scores = score_relations([example(GOLD, GOLD)])
    for key in ("rel_micro", "rel_macro", "rel_boundary_micro", "rel_boundary_macro"):
        assert_prf(scores, key, 1.0, 1.0, 1.0)
    assert scores["rel_per_type"] == {
        "knows": {"p": 1.0, "r": 1.0, "f": 1.0},
        "lives_in": {"p": 1.0, "r": 1.0, "f": 1.0},
    }


def test_one_false_positive():
    pred = GOLD + [(MARY, LONDON, "lives_in")]
    scores = score_relations([example(pred, GOLD)])
    assert_prf(scores, "rel_micro", 2 / 3, 1.0, 0.8)
    assert scores["rel_per_type"]["lives_in"] == pytest.approx({"p": 0.5, "r": 1.0, "f": 2 / 3})
    assert scores["rel_per_type"]["knows"] == pytest.approx({"p": 1.0, "r": 1.0, "f": 1.0})


def test_one_false_negative():
    scores = score_relations([example(GOLD[:1], GOLD)])
    assert_prf(scores, "rel_micro", 1.0, 0.5, 2 / 3)
    assert scores["rel_per_type"]["lives_in"] == {"p": 0.0, "r": 0.0, "f": 0.0}
    assert_prf(scores, "rel_macro", 0.5, 0.5, 0.5)


def test_counts_add_up_over_examples():
    egs = [example(GOLD, GOLD), example(GOLD[:1], GOLD), example(GOLD + [(MARY, ADA, "knows")], GOLD)]
    counts = count_relations(egs)
    assert {k: (v.tp, v.fp, v.fn) for k, v in counts.items()} == {
        "knows": (3, 1, 0),
        "lives_in": (2, 0, 1),
    }
    assert_prf(score_relations(egs), "rel_micro", 5 / 6, 5 / 6, 5 / 6)


def test_wrong_entity_label_is_strict_miss_but_boundary_hit():
    pred_ents = [(ADA, "ORG")] + ENTS[1:]
    scores = score_relations([example(GOLD[:1], GOLD[:1], pred_ents=pred_ents)])
    assert_prf(scores, "rel_micro", 0.0, 0.0, 0.0)
    assert_prf(scores, "rel_boundary_micro", 1.0, 1.0, 1.0)
    assert_prf(scores, "rel_boundary_macro", 1.0, 1.0, 1.0)


def test_wrong_boundary_is_a_miss_in_both_modes():
    pred = [(("Lovelace", "PER"), CHARLES, "knows")]
    scores = score_relations([example(pred, GOLD[:1])])
    assert_prf(scores, "rel_micro", 0.0, 0.0, 0.0)
    assert_prf(scores, "rel_boundary_micro", 0.0, 0.0, 0.0)


def test_reversed_direction_is_a_miss():
    eg = example([(CHARLES, ADA, "knows")], [(ADA, CHARLES, "knows")])
    scores = score_relations([eg])
    assert_prf(scores, "rel_micro", 0.0, 0.0, 0.0)
    assert_prf(scores, "rel_boundary_micro", 0.0, 0.0, 0.0)


def test_reversed_direction_matches_for_symmetric_label():
    eg = example([(CHARLES, ADA, "knows")], [(ADA, CHARLES, "knows")])
    scores = score_relations([eg], symmetric_labels=["knows"])
    assert_prf(scores, "rel_micro", 1.0, 1.0, 1.0)
    assert_prf(scores, "rel_boundary_micro", 1.0, 1.0, 1.0)


def test_symmetric_label_both_directions_count_once():
    both = [(ADA, CHARLES, "knows"), (CHARLES, ADA, "knows")]
    counts = count_relations([example(both, both)], symmetric_labels=["knows"])
    assert (counts["knows"].tp, counts["knows"].fp, counts["knows"].fn) == (1, 0, 0)
    counts = count_relations([example(both, both)])
    assert (counts["knows"].tp, counts["knows"].fp, counts["knows"].fn) == (2, 0, 0)


def test_relation_on_non_gold_entity_is_false_positive():
    pred = GOLD[:1] + [(("met", "PER"), ("Babbage", "PER"), "knows")]
    scores = score_relations([example(pred, GOLD[:1])])
    assert_prf(scores, "rel_micro", 0.5, 1.0, 2 / 3)
    assert_prf(scores, "rel_boundary_micro", 0.5, 1.0, 2 / 3)


def test_argument_errors_attribute_misses_and_false_positives_to_the_entities():
    # predicted: London mislabelled ORG, Mary not found; gold: three relations
    pred_ents = [(ADA, "PER"), (CHARLES, "PER"), (LONDON, "ORG")]
    gold = GOLD + [(MARY, ADA, "knows")]
    pred = [
        (ADA, CHARLES, "knows"),  # correct
        (CHARLES, LONDON, "lives_in"),  # London's label is wrong: a wrong-argument error
        (CHARLES, ADA, "knows"),  # both arguments gold: the relation model's own error
    ]
    eg = Example(make_doc(pred, ents=pred_ents), make_doc(gold))
    errors = argument_errors([eg], lambda doc: doc.ents)
    assert errors == {
        "gold": 3,
        "reachable": 1,  # only Ada-Charles has both arguments among the predicted entities
        "recall_ceiling": pytest.approx(1 / 3),
        "false_positives": 2,
        "false_positives_wrong_argument": 1,
    }
    assert argument_errors([eg], lambda doc: doc.ents, labels=["lives_in"])["gold"] == 1
    assert argument_errors([], lambda doc: doc.ents)["recall_ceiling"] == 0.0


def test_duplicates_count_once():
    scores = score_relations([example(GOLD + GOLD[:1], GOLD + GOLD)])
    assert_prf(scores, "rel_micro", 1.0, 1.0, 1.0)


def test_different_tokenization_still_matches():
    text = "They don't know that Ada Lovelace met Charles Babbage in London."
    ents = [(ADA, "PER"), (CHARLES, "PER"), (LONDON, "LOC")]
    rels = [(ADA, CHARLES, "knows"), (CHARLES, LONDON, "lives_in")]
    pred = make_doc(rels, ents, text)  # spaCy's tokenizer: "do", "n't"
    words = ["They", "don't", "know", "that", "Ada", "Lovelace", "met", "Charles",
             "Babbage", "in", "London", "."]  # fmt: skip
    gold = make_doc(rels, ents, text, words=words)
    assert len(pred) != len(gold)
    assert pred._.relations[0].head.start != gold._.relations[0].head.start
    scores = score_relations([Example(pred, gold)])
    assert_prf(scores, "rel_micro", 1.0, 1.0, 1.0)


def test_macro_and_micro_differ_on_unbalanced_labels():
    gold = [(ADA, CHARLES, "knows"), (ADA, MARY, "knows"), (CHARLES, MARY, "knows"),
            (ADA, LONDON, "lives_in")]  # fmt: skip
    pred = gold[:3]
    scores = score_relations([example(pred, gold)])
    # knows: tp 3 -> P=R=F=1; lives_in: fn 1 -> P=R=F=0
    assert_prf(scores, "rel_micro", 1.0, 3 / 4, 6 / 7)  # 2 * 1 * 0.75 / 1.75
    assert_prf(scores, "rel_macro", 0.5, 0.5, 0.5)
    # with an explicit label set, an unseen label counts as 0 in the macro average
    scores = score_relations([example(pred, gold)], labels=["knows", "lives_in", "born_in"])
    assert_prf(scores, "rel_micro", 1.0, 3 / 4, 6 / 7)
    assert_prf(scores, "rel_macro", 1 / 3, 1 / 3, 1 / 3)
    assert scores["rel_per_type"]["born_in"] == {"p": 0.0, "r": 0.0, "f": 0.0}


def test_labels_restrict_what_is_scored():
    pred = GOLD + [(MARY, LONDON, "lives_in")]
    scores = score_relations([example(pred, GOLD)], labels=["knows"])
    assert set(scores["rel_per_type"]) == {"knows"}
    assert_prf(scores, "rel_micro", 1.0, 1.0, 1.0)


def test_empty_input_gives_zeros():
    for egs in ([], [example([], [])]):
        scores = score_relations(egs)
        for key, value in scores.items():
            if key.endswith("per_type"):
                assert value == {}
            else:
                assert value == 0.0 and isinstance(value, float), key
    expected = {f"rel{m}_{avg}_{k}" for m in ("", "_boundary") for avg in ("micro", "macro")
                for k in "prf"} | {"rel_per_type", "rel_boundary_per_type"}  # fmt: skip
    assert set(score_relations([])) == expected


def test_prefix():
    scores = score_relations([example(GOLD, GOLD)], prefix="re")
    assert scores["re_micro_f"] == 1.0 and scores["re_boundary_micro_f"] == 1.0


def test_registered_scorer():
    scorer = spacy.registry.scorers.get("spacy_ie.relation_scorer.v1")()
    assert scorer is score_relations is make_relation_scorer()
    scores = scorer([example(GOLD, GOLD)], labels=["knows", "lives_in"], symmetric_labels=[])
    assert scores["rel_micro_f"] == 1.0


# --- property tests -------------------------------------------------------------------------

PROP_WORDS = "a b c d e f".split()
PROP_DOC_TEXT = " ".join(PROP_WORDS)
REL_LABELS = ["A", "B", "S"]  # "S" is symmetric
rel_strategy = st.tuples(
    st.integers(0, len(PROP_WORDS) - 1),
    st.integers(0, len(PROP_WORDS) - 1),
    st.sampled_from(REL_LABELS),
).filter(lambda r: r[0] != r[1])


def _prop_doc(rels, ent_labels) -> Doc:
    doc = NLP(PROP_DOC_TEXT)
    doc.ents = [Span(doc, i, i + 1, label=ent_labels[i]) for i in range(len(doc))]
    doc._.relations = [Relation(doc.ents[h], doc.ents[t], label) for h, t, label in rels]
    return doc


def _distinct(rels, symmetric):
    return {(lab, *sorted((h, t))) if lab in symmetric else (lab, h, t) for h, t, lab in rels}


@settings(max_examples=60, deadline=None)
@given(
    gold=st.lists(rel_strategy, max_size=8),
    pred=st.lists(rel_strategy, max_size=8),
    pred_ent_labels=st.lists(st.sampled_from(["PER", "ORG"]), min_size=6, max_size=6),
    symmetric=st.sampled_from([(), ("S",)]),
)
def test_scores_properties(gold, pred, pred_ent_labels, symmetric):
    gold_doc = _prop_doc(gold, ["PER"] * len(PROP_WORDS))
    pred_doc = _prop_doc(pred, pred_ent_labels)
    egs = [Example(pred_doc, gold_doc)]
    scores = score_relations(egs, symmetric_labels=symmetric)
    for mode in ("rel", "rel_boundary"):
        prfs = [
            (scores[f"{mode}_{avg}_p"], scores[f"{mode}_{avg}_r"], scores[f"{mode}_{avg}_f"])
            for avg in ("micro", "macro")
        ]
        prfs += [(v["p"], v["r"], v["f"]) for v in scores[f"{mode}_per_type"].values()]
        for p, r, f in prfs:
            assert 0.0 <= p <= 1.0 and 0.0 <= r <= 1.0 and 0.0 <= f <= 1.0
        micro_p, micro_r, micro_f = prfs[0]
        harmonic = 2 * micro_p * micro_r / (micro_p + micro_r) if micro_p + micro_r else 0.0
        assert micro_f == pytest.approx(harmonic)
        for p, r, f in prfs[2:]:
            assert f == pytest.approx(2 * p * r / (p + r) if p + r else 0.0)
    # micro TP + FN = distinct gold relations; TP + FP = distinct predicted relations
    for mode in ("strict", "boundaries"):
        counts = count_relations(egs, mode=mode, symmetric_labels=symmetric)
        assert sum(c.tp + c.fn for c in counts.values()) == len(_distinct(gold, symmetric))
        assert sum(c.tp + c.fp for c in counts.values()) == len(_distinct(pred, symmetric))
    # boundaries matching is never stricter than strict matching
    strict_tp = sum(c.tp for c in count_relations(egs, symmetric_labels=symmetric).values())
    bound_tp = sum(
        c.tp for c in count_relations(egs, mode="boundaries", symmetric_labels=symmetric).values()
    )
    assert bound_tp >= strict_tp
    # gold against itself is perfect (or all zeros when there is nothing to find)
    self_scores = score_relations([Example(gold_doc, gold_doc)], symmetric_labels=symmetric)
    expected = 1.0 if gold else 0.0
    for key in ("rel_micro_p", "rel_micro_r", "rel_micro_f", "rel_macro_f", "rel_boundary_micro_f"):
        assert self_scores[key] == pytest.approx(expected)


# --- threshold sweep ------------------------------------------------------------------------


def _sweep_example() -> Example:
    gold = [(ADA, CHARLES, "knows"), (CHARLES, MARY, "knows"), (ADA, LONDON, "lives_in")]
    pred = [
        (ADA, CHARLES, "knows", 0.9),  # TP
        (ADA, MARY, "knows", 0.4),  # FP, exactly at threshold 0.4
        (CHARLES, MARY, "knows", 0.3),  # TP
        (ADA, LONDON, "lives_in", 0.5),  # TP
        (ADA, CHARLES, "knows", 0.1),  # duplicate of the first: counts once, max score
    ]
    return example(pred, gold)


def _counts_at(eg: Example, thresholds, labels=None):
    """count_relations of `eg` with only the predictions scoring at least each threshold."""
    counts = []
    for t in thresholds:
        pred = eg.predicted.copy()
        pred._.relations = [r for r in eg.predicted._.relations if r.score >= t]
        counts.append(count_relations([Example(pred, eg.reference)], labels=labels))
    return counts


def test_threshold_curves_hand_computed():
    thresholds = [0.2, 0.4, 0.7, 0.95]
    result = threshold_curves(thresholds, _counts_at(_sweep_example(), thresholds))
    assert result["thresholds"] == thresholds
    knows = result["per_type"]["knows"]
    # t=0.2: 3 predicted, 2 TP of 2 gold; t=0.4: {0.9, 0.4} -> 1 TP; t=0.7: {0.9}; t=0.95: none
    assert knows["p"] == pytest.approx([2 / 3, 1 / 2, 1.0, 0.0])
    assert knows["r"] == pytest.approx([1.0, 1 / 2, 1 / 2, 0.0])
    assert knows["f"] == pytest.approx([0.8, 0.5, 2 / 3, 0.0])
    assert knows["best_threshold"] == 0.2 and knows["best_f"] == pytest.approx(0.8)
    lives_in = result["per_type"]["lives_in"]
    assert lives_in["f"] == pytest.approx([1.0, 1.0, 0.0, 0.0])
    assert lives_in["best_threshold"] == 0.2  # the lowest of the tied best thresholds
    micro = result["micro"]
    # t=0.2: 4 predicted, 3 TP, 3 gold; t=0.4: 3 predicted, 2 TP; t=0.7: 1 predicted, 1 TP
    assert micro["p"] == pytest.approx([3 / 4, 2 / 3, 1.0, 0.0])
    assert micro["r"] == pytest.approx([1.0, 2 / 3, 1 / 3, 0.0])
    assert micro["f"] == pytest.approx([6 / 7, 2 / 3, 0.5, 0.0])
    assert micro["best_threshold"] == 0.2
    assert (micro["best_p"], micro["best_r"]) == pytest.approx((3 / 4, 1.0))


def test_threshold_curves_empty_labels_and_errors():
    result = threshold_curves([0.5], [count_relations([], labels=["knows"])])
    assert result["per_type"]["knows"]["f"] == [0.0]
    assert result["micro"] == {
        "p": [0.0], "r": [0.0], "f": [0.0],
        "best_threshold": 0.5, "best_p": 0.0, "best_r": 0.0, "best_f": 0.0,
    }  # fmt: skip
    result = threshold_curves([0.5], _counts_at(_sweep_example(), [0.5], labels=["lives_in"]))
    assert set(result["per_type"]) == {"lives_in"}
    assert result["micro"]["f"] == [1.0]
    with pytest.raises(ValueError):
        threshold_curves([0.5, 0.6], [{}])
    with pytest.raises(ValueError):
        threshold_curves([], [])
