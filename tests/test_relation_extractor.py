"""The relation_extractor component: registration, training, prediction, settings, serialization."""
import logging
import subprocess
import sys
from typing import List

import numpy
import pytest
import srsly
import spacy
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from spacy.tokens import DocBin, Span
from spacy.training import Example
from thinc.api import fix_random_seed

from conftest import annotated_doc, span_groups
from spacy_ie import Relation
from spacy_ie.candidates import EntityPairCandidates

SMALL_MODEL = {
    "@architectures": "spacy_ie.RelationModel.v1",
    "hidden_width": 32,
    "tok2vec": {
        "@architectures": "spacy.HashEmbedCNN.v2",
        "pretrained_vectors": None,
        "width": 32,
        "depth": 2,
        "embed_size": 500,
        "window_size": 1,
        "maxout_pieces": 2,
        "subword_features": True,
    },
}

# (text, entities as (text, label), relations as (head index, tail index, label))
DATA = [
    ("Alice works for Acme in Paris.", [("Alice", "PER"), ("Acme", "ORG"), ("Paris", "LOC")],
     [(0, 1, "WORKS_FOR"), (1, 2, "LOCATED_IN")]),
    ("Bob was born in Rome and joined Globex.", [("Bob", "PER"), ("Rome", "LOC"), ("Globex", "ORG")],
     [(0, 1, "BORN_IN"), (0, 2, "WORKS_FOR")]),
    ("Carol married Dave in Oslo.", [("Carol", "PER"), ("Dave", "PER"), ("Oslo", "LOC")],
     [(0, 1, "SPOUSE_OF")]),
    ("Erin visited Berlin.", [("Erin", "PER"), ("Berlin", "LOC")], []),
    ("Nothing to see here.", [], []),
]


def make_examples(nlp, gold_entities=True) -> List[Example]:
    examples = []
    for text, ents, rels in DATA:
        reference = annotated_doc(nlp, text, ents, rels)
        predicted = nlp.make_doc(text)
        if gold_entities:
            predicted.ents = [predicted.char_span(e.start_char, e.end_char, e.label_) for e in reference.ents]
        examples.append(Example(predicted, reference))
    return examples


def train(nlp, examples, steps=60):
    optimizer = nlp.initialize(lambda: examples)
    for _ in range(steps):
        nlp.update(examples, sgd=optimizer, losses={})
    return nlp


def predicted_triples(nlp, examples):
    docs = nlp.pipe([eg.predicted.copy() for eg in examples])
    return [
        sorted((r.head.text, r.label, r.tail.text) for r in doc._.relations) for doc in docs
    ]


def gold_triples(examples):
    return [
        sorted((r.head.text, r.label, r.tail.text) for r in eg.reference._.relations)
        for eg in examples
    ]


@pytest.fixture
def nlp():
    fix_random_seed(0)
    return spacy.blank("en")


def test_registered_by_entry_points_without_import():
    """A fresh interpreter finds every registered name without importing spacy_ie."""
    code = """
import sys, spacy
from spacy.util import registry
assert "spacy_ie" not in sys.modules
nlp = spacy.blank("en")
nlp.add_pipe("relation_extractor")
for reg, name in [("architectures", "spacy_ie.RelationModel.v1"),
                  ("architectures", "spacy_ie.AttentionPooling.v1"),
                  ("architectures", "spacy_ie.PairContextAttention.v1"),
                  ("misc", "spacy_ie.EntityPairCandidates.v1"),
                  ("readers", "spacy_ie.RelationCorpus.v1"),
                  ("scorers", "spacy_ie.relation_scorer.v1")]:
    assert callable(registry.get(reg, name)), name
doc = nlp.make_doc("x")
assert doc._.relations == ()
print("ok")
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_learns_training_data_multilabel(nlp):
    examples = make_examples(nlp)
    nlp.add_pipe("relation_extractor", config={"model": SMALL_MODEL})
    train(nlp, examples)
    assert predicted_triples(nlp, examples) == gold_triples(examples)
    scores = nlp.evaluate(examples)
    assert scores["rel_micro_f"] == 1.0


def test_learns_training_data_exclusive_classes(nlp):
    examples = make_examples(nlp)
    re = nlp.add_pipe("relation_extractor", config={"model": SMALL_MODEL, "exclusive_classes": True})
    train(nlp, examples)
    assert re.model.get_dim("nO") == len(re.labels) + 1  # the no-relation class
    assert predicted_triples(nlp, examples) == gold_triples(examples)
    for doc in nlp.pipe(eg.predicted.copy() for eg in examples):
        pairs = [(r.head.start, r.tail.start) for r in doc._.relations]
        assert len(pairs) == len(set(pairs))  # at most one label per pair


def test_symmetric_label_is_written_once_with_earlier_head(nlp):
    examples = make_examples(nlp)
    re = nlp.add_pipe(
        "relation_extractor", config={"model": SMALL_MODEL, "symmetric_labels": ["SPOUSE_OF"]}
    )
    train(nlp, examples)
    doc = re(examples[2].predicted.copy())
    spouses = [(r.head.text, r.tail.text) for r in doc._.relations if r.label == "SPOUSE_OF"]
    assert spouses == [("Carol", "Dave")]
    # Scored against the reversed gold direction, a symmetric label still matches.
    reference = examples[2].reference.copy()
    reference._.relations = [Relation(reference.ents[1], reference.ents[0], "SPOUSE_OF")]
    assert re.score([Example(doc, reference)])["rel_micro_f"] == 1.0


def test_thresholds_global_and_per_label(nlp):
    examples = make_examples(nlp)
    re = nlp.add_pipe("relation_extractor", config={"model": SMALL_MODEL})
    train(nlp, examples)
    re.cfg["thresholds"] = {"WORKS_FOR": 1.01}  # unreachable: no WORKS_FOR at all
    triples = [t for doc_triples in predicted_triples(nlp, examples) for t in doc_triples]
    assert triples and all(label != "WORKS_FOR" for _, label, _ in triples)
    re.cfg["thresholds"] = {}
    re.cfg["threshold"] = 0.0  # every candidate gets every label
    doc = re(examples[0].predicted.copy())
    assert len(doc._.relations) == 6 * len(re.labels)  # 3 entities: 6 ordered pairs


def test_learned_type_constraints_filter_candidates_and_labels(nlp):
    examples = make_examples(nlp)
    re = nlp.add_pipe(
        "relation_extractor",
        config={"model": SMALL_MODEL, "threshold": 0.0, "candidates": {
            "@misc": "spacy_ie.EntityPairCandidates.v1", "learn_types": True}},
    )
    train(nlp, examples, steps=2)
    assert re.cfg["type_constraints"]["BORN_IN"] == [["PER", "LOC"]]
    doc = re(examples[0].predicted.copy())
    for rel in doc._.relations:
        assert [rel.head.label_, rel.tail.label_] in re.cfg["type_constraints"][rel.label]
    # (LOC, PER) is allowed for no label: never a candidate.
    assert all((r.head.label_, r.tail.label_) != ("LOC", "PER") for r in doc._.relations)


def test_store_attention_keeps_context_weights(nlp):
    examples = make_examples(nlp)
    re = nlp.add_pipe("relation_extractor", config={"model": SMALL_MODEL, "store_attention": True})
    train(nlp, examples, steps=30)
    doc = re(examples[0].predicted.copy())
    assert doc._.relations
    for rel in doc._.relations:
        assert rel.context is not None and len(rel.attention) == len(rel.context)
        assert sum(rel.attention) == pytest.approx(1.0, abs=1e-4)
        assert rel.context.start <= min(rel.head.start, rel.tail.start)


@pytest.mark.parametrize("store_attention", [False, True])
def test_written_records_are_what_the_validating_setter_stores(nlp, store_attention):
    """write_relations stores its records without the setter's round trip: they must be the
    records `doc._.relations = ...` would have stored (same offsets, labels, score, context,
    attention; plain Python types)."""
    from spacy_ie.relations import USER_DATA_KEY, _to_records

    examples = make_examples(nlp)
    nlp.add_pipe("relation_extractor", config={"model": SMALL_MODEL, "threshold": 0.0, "store_attention": store_attention})
    train(nlp, examples, steps=2)
    docs = list(nlp.pipe([eg.predicted.copy() for eg in examples]))
    assert sum(len(doc._.relations) for doc in docs) > 4
    for doc in docs:
        stored = doc.user_data[USER_DATA_KEY]
        assert stored == _to_records(doc, stored)
        for record in stored:
            assert type(record["score"]) is float and all(type(c) is int for c in record["head"][:2] + record["tail"][:2])
            assert ("attention" in record) == store_attention


def test_docs_and_batches_without_candidates_are_quiet(nlp, caplog):
    examples = make_examples(nlp)
    nlp.add_pipe("relation_extractor", config={"model": SMALL_MODEL})
    optimizer = nlp.initialize(lambda: examples)
    empty = [eg for eg in examples if len(eg.reference.ents) < 2]
    with caplog.at_level(logging.DEBUG):
        losses = nlp.update(empty, sgd=optimizer, losses={})
        docs = list(nlp.pipe(["No entities at all.", ""]))
    assert losses["relation_extractor"] == 0.0
    assert [d._.relations for d in docs] == [(), ()]
    assert not [r for r in caplog.records if r.name.startswith(("spacy", "spacy_ie"))]


def test_span_group_source_with_overlapping_spans(nlp):
    doc = nlp.make_doc("New York University hired Ann .")
    doc.spans["entities"] = [Span(doc, 0, 3, "ORG"), Span(doc, 0, 2, "LOC"), Span(doc, 4, 5, "PER")]
    doc._.relations = [
        Relation(doc.spans["entities"][2], doc.spans["entities"][0], "WORKS_FOR"),
        Relation(doc.spans["entities"][0], doc.spans["entities"][1], "LOCATED_IN"),
    ]
    predicted = nlp.make_doc(doc.text)
    predicted.spans["entities"] = [Span(predicted, s.start, s.end, s.label_) for s in doc.spans["entities"]]
    examples = [Example(predicted, doc)]
    nlp.add_pipe("relation_extractor", config={"model": SMALL_MODEL, "spans_key": "entities"})
    train(nlp, examples, steps=40)
    assert predicted_triples(nlp, examples) == [
        sorted([("Ann", "WORKS_FOR", "New York University"), ("New York University", "LOCATED_IN", "New York")])
    ]


def test_serialization_round_trip(nlp, tmp_path):
    examples = make_examples(nlp)
    nlp.add_pipe(
        "relation_extractor",
        config={"model": SMALL_MODEL, "symmetric_labels": ["SPOUSE_OF"], "candidates": {
            "@misc": "spacy_ie.EntityPairCandidates.v1", "learn_types": True}},
    )
    train(nlp, examples, steps=30)
    re = nlp.get_pipe("relation_extractor")
    expected = [[(r.head.text, r.label, r.tail.text, round(r.score, 5)) for r in d._.relations]
                for d in nlp.pipe(eg.predicted.copy() for eg in examples)]
    nlp.to_disk(tmp_path / "model")
    loaded = spacy.load(tmp_path / "model")
    re2 = loaded.get_pipe("relation_extractor")
    assert re2.labels == re.labels
    assert re2.cfg == re.cfg
    assert re2.candidates.type_constraints == re.candidates.type_constraints
    # Docs made by the loaded pipeline's own vocab, entities copied over.
    docs = []
    for eg in examples:
        doc = loaded.make_doc(eg.predicted.text)
        doc.ents = [doc.char_span(e.start_char, e.end_char, e.label_) for e in eg.predicted.ents]
        docs.append(doc)
    got = [[(r.head.text, r.label, r.tail.text, round(r.score, 5)) for r in d._.relations]
           for d in re2.pipe(docs)]
    assert got == expected
    re3 = spacy.blank("en").add_pipe("relation_extractor", config={"model": SMALL_MODEL})
    re3.from_bytes(re.to_bytes())
    assert re3.labels == re.labels and re3.candidates.type_constraints == re.candidates.type_constraints


def test_initialize_without_relations_raises(nlp):
    examples = [Example(nlp.make_doc("Alice met Bob."), nlp.make_doc("Alice met Bob."))]
    nlp.add_pipe("relation_extractor", config={"model": SMALL_MODEL})
    with pytest.raises(ValueError, match="No relation labels"):
        nlp.initialize(lambda: examples)


def test_learns_from_gold_entities_when_predicted_doc_has_none(nlp):
    """With ner in the pipeline, update() sees predicted Docs without entities: the relation
    extractor must train on the gold entities (aligned to the predicted tokens)."""
    examples = make_examples(nlp, gold_entities=False)
    assert all(not eg.predicted.ents for eg in examples)
    nlp.add_pipe("relation_extractor", config={"model": SMALL_MODEL})
    train(nlp, examples)
    assert predicted_triples(nlp, make_examples(nlp)) == gold_triples(examples)


def test_candidates_sentence_distance_and_cap(nlp):
    doc = nlp.make_doc("A met B . C saw D far away from everyone else .")
    doc.ents = [Span(doc, 0, 1, "P"), Span(doc, 2, 3, "P"), Span(doc, 4, 5, "P"), Span(doc, 6, 7, "P")]
    spans = list(doc.ents)
    pairs = EntityPairCandidates()(doc, spans)
    assert len(pairs) == 12  # no sentence boundaries: all ordered pairs
    assert len(EntityPairCandidates(max_distance=1)(doc, spans)) == 6  # gaps 1: A-B, B-C, C-D
    capped = [(spans[h], spans[t]) for h, t in EntityPairCandidates(max_candidates=2)(doc, spans)]
    assert len(capped) == 2 and all(max(h.start, t.start) - min(h.end, t.end) == 1 for h, t in capped)
    for i, token in enumerate(doc):
        token.is_sent_start = i in (0, 4)
    pairs = EntityPairCandidates()(doc, spans)
    assert sorted((spans[h].text, spans[t].text) for h, t in pairs) == [("A", "B"), ("B", "A"), ("C", "D"), ("D", "C")]


def test_one_relation_per_pair_keeps_the_likelier_direction(nlp):
    examples = make_examples(nlp)
    re = nlp.add_pipe(
        "relation_extractor",
        config={"model": SMALL_MODEL, "exclusive_classes": True, "threshold": 0.0},
    )
    train(nlp, examples, steps=20)
    doc = examples[0].predicted.copy()
    both = re(doc.copy())._.relations  # threshold 0: one label for each of the 6 directions
    assert len(both) == 6
    re.cfg["one_relation_per_pair"] = True
    single = re(doc.copy())._.relations
    assert len(single) == 3  # 3 entities: 3 unordered pairs, one relation each
    by_pair = {}
    for rel in both:
        key = frozenset([(rel.head.start, rel.head.end), (rel.tail.start, rel.tail.end)])
        by_pair.setdefault(key, []).append(rel)
    expected = sorted((max(rels, key=lambda r: r.score).head.text, max(rels, key=lambda r: r.score).label) for rels in by_pair.values())
    assert sorted((r.head.text, r.label) for r in single) == expected


# --- odd span groups, damaged pipelines, unreachable gold (issue: reliability) ----------------


def test_empty_and_duplicate_spans_are_skipped(nlp):
    examples = make_examples(nlp)
    rel = nlp.add_pipe("relation_extractor", config={"model": SMALL_MODEL, "threshold": 0.0, "spans_key": "grp"})
    for eg in examples:
        eg.reference.spans["grp"] = list(eg.reference.ents)
    train(nlp, examples, steps=2)
    doc = nlp.make_doc("Ann Lee met Acme Corp staff")
    # the reproducer: a zero-length span between two real ones, and a duplicate
    doc.spans["grp"] = [Span(doc, 0, 2, "PER"), Span(doc, 3, 3, "ORG"), Span(doc, 3, 5, "ORG"), Span(doc, 3, 5, "ORG")]
    relations = rel(doc)._.relations
    pairs = [(r.head.start, r.head.end, r.tail.start, r.tail.end, r.label) for r in relations]
    assert relations and all(len(r.head) and len(r.tail) for r in relations)
    assert len(pairs) == len(set(pairs))  # each relation once
    assert {p[:4] for p in pairs} <= {(0, 2, 3, 5), (3, 5, 0, 2)}


def test_damaged_component_fails_to_load_naming_it(nlp, tmp_path):
    examples = make_examples(nlp)
    nlp.add_pipe("relation_extractor", config={"model": SMALL_MODEL})
    train(nlp, examples, steps=2)
    nlp.to_disk(tmp_path / "ok")
    spacy.load(tmp_path / "ok")  # intact: loads
    nlp.to_disk(tmp_path / "no_cfg")
    (tmp_path / "no_cfg" / "relation_extractor" / "cfg").unlink()
    with pytest.raises(ValueError, match=r"\[relation_extractor\].*4 outputs.*0 labels"):
        spacy.load(tmp_path / "no_cfg")
    nlp.to_disk(tmp_path / "short")
    cfg_path = tmp_path / "short" / "relation_extractor" / "cfg"
    cfg = srsly.read_json(cfg_path)
    cfg["labels"] = cfg["labels"][:3]
    srsly.write_json(cfg_path, cfg)
    with pytest.raises(ValueError, match=r"relation_extractor/cfg and .*relation_extractor/model"):
        spacy.load(tmp_path / "short")
    with pytest.raises(ValueError, match="3 labels"):
        spacy.blank("en").add_pipe("relation_extractor", config={"model": SMALL_MODEL}).from_bytes(
            _with_labels(nlp.get_pipe("relation_extractor"), cfg["labels"])
        )


def _with_labels(component, labels) -> bytes:
    saved = list(component.cfg["labels"])
    component.cfg["labels"] = list(labels)
    try:
        return component.to_bytes()
    finally:
        component.cfg["labels"] = saved


def test_unreachable_gold_relations_warn_once_with_counts(nlp):
    examples = make_examples(nlp)
    # Alice-Acme: Acme left out of doc.ents (as an overlapping entity would be)
    ref = examples[0].reference
    ref.spans["entities"] = list(ref.ents)
    ref.ents = [e for e in ref.ents if e.text != "Acme"]
    nlp.add_pipe(
        "relation_extractor",
        config={"model": SMALL_MODEL, "candidates": {
            "@misc": "spacy_ie.EntityPairCandidates.v1", "type_constraints": {"BORN_IN": [["PER", "ORG"]]}}},
    )
    with pytest.warns(UserWarning) as record:
        nlp.initialize(lambda: examples)
    messages = [str(w.message) for w in record if "can never be predicted" in str(w.message)]
    assert len(messages) == 1
    message = messages[0]
    # Alice-Acme and Acme-Paris: no span; Bob-Rome (PER, LOC) and Carol-Dave (PER, PER): types
    assert "4 of 5 gold relations" in message
    assert "2 because a head or tail is not among the spans of doc.ents" in message
    assert "2 because their (head label, tail label) is outside the type constraints" in message


def _cross_entropy_sum(logits, truths, weights, exclusive):
    """The summed (weighted) cross-entropy of `logits`: the reference for get_loss."""
    if exclusive:
        probs = numpy.exp(logits - logits.max(axis=1, keepdims=True))
        probs /= probs.sum(axis=1, keepdims=True)
        row_weights = (truths * weights).sum(axis=1, keepdims=True)
        return -(row_weights * truths * numpy.log(probs + 1e-7)).sum(), probs
    probs = 1 / (1 + numpy.exp(-logits))
    terms = weights * truths * numpy.log(probs + 1e-7) + (1 - truths) * numpy.log(1 - probs + 1e-7)
    return -terms.sum(), probs


@pytest.mark.parametrize("exclusive", [False, True])
@pytest.mark.parametrize("class_weights", [None, {"WORKS_FOR": 3.0}])
def test_get_loss_is_the_cross_entropy_that_update_uses(nlp, exclusive, class_weights):
    examples = make_examples(nlp)
    config = {"model": SMALL_MODEL, "exclusive_classes": exclusive, "class_weights": class_weights}
    rel = nlp.add_pipe("relation_extractor", config=config)
    train(nlp, examples, steps=3)
    candidates = rel.training_candidates(examples)
    scores = rel.model.predict(([eg.predicted for eg in examples], candidates))
    loss, d_logits = rel.get_loss(examples, (candidates, scores))
    logits = numpy.asarray(scores.logits, dtype="float64")
    truths = numpy.zeros_like(logits)
    labels = list(rel.labels)
    offset = 0
    for eg, n in zip(examples, candidates.pair_lengths):
        spans = rel.get_spans(eg.reference)
        for r in eg.reference._.relations:
            pair = [spans.index(r.head), spans.index(r.tail)]
            row = offset + candidates.pairs[offset : offset + n].tolist().index(pair)
            truths[row, labels.index(r.label)] = 1.0
        offset += n
    if exclusive:
        truths[:, -1] = truths.sum(axis=1) == 0
    weights = numpy.ones((1, logits.shape[1]))
    for label, weight in (class_weights or {}).items():
        weights[0, labels.index(label)] = weight
    assert truths[:, labels.index("WORKS_FOR")].sum() > 0  # the weighted label has positives
    total, probs = _cross_entropy_sum(logits, truths, weights, exclusive)
    # reported: the mean over pairs (softmax) or over pairs and labels (sigmoids)
    assert loss == pytest.approx(total / (len(logits) if exclusive else logits.size), rel=1e-4)
    # d_logits: the gradient of the sum, here by central differences
    numeric = numpy.zeros_like(logits)
    for index in numpy.ndindex(*logits.shape):
        step = numpy.zeros_like(logits)
        step[index] = 1e-5
        up, _ = _cross_entropy_sum(logits + step, truths, weights, exclusive)
        down, _ = _cross_entropy_sum(logits - step, truths, weights, exclusive)
        numeric[index] = (up - down) / 2e-5
    numpy.testing.assert_allclose(d_logits, numeric, atol=1e-4)
    if class_weights is None:
        numpy.testing.assert_allclose(d_logits, probs - truths, atol=1e-5)
    losses = rel.update(examples, losses={})  # update reports the same loss (no dropout, no step)
    assert losses["relation_extractor"] == pytest.approx(loss, rel=1e-4)


def test_class_weights_errors(nlp):
    with pytest.raises(ValueError, match="class_weights must be positive"):
        nlp.add_pipe("relation_extractor", config={"model": SMALL_MODEL, "class_weights": {"WORKS_FOR": 0.0}})
    nlp.add_pipe("relation_extractor", config={"model": SMALL_MODEL, "class_weights": {"WORKSFOR": 2.0}})
    with pytest.raises(ValueError, match=r"class_weights for unknown labels \['WORKSFOR'\]"):
        nlp.initialize(lambda: make_examples(nlp))


# --- odd span groups (empty, duplicate, nested, whole-doc spans) and random thresholds --------------

GROUP_TEXT = "Ada Lovelace was born in London . She worked with Charles Babbage at the Analytical Engine ."


@pytest.fixture(scope="module")
def nlp_and_doc(trained_pipeline):
    """The trained pipeline, its relation extractor reading the span group "grp", and a Doc
    that went through it (so the tok2vec output is on ``doc.tensor`` for the listener)."""
    nlp = spacy.load(trained_pipeline)
    rel = nlp.get_pipe("relation_extractor")
    rel.cfg["spans_key"] = "grp"
    return nlp, rel, nlp(GROUP_TEXT)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_odd_span_groups_and_thresholds_never_crash_or_duplicate(nlp_and_doc, data):
    nlp, rel, template = nlp_and_doc
    doc = template.copy()
    spans = data.draw(span_groups(len(doc)), label="spans")
    doc.spans["grp"] = [Span(doc, s, e, label) for s, e, label in spans]
    threshold = data.draw(st.floats(0.0, 1.0), label="threshold")
    per_label = data.draw(
        st.dictionaries(st.sampled_from(list(rel.labels)), st.floats(0.0, 1.0), max_size=3),
        label="thresholds",
    )
    saved = rel.cfg["threshold"], dict(rel.cfg["thresholds"])
    rel.cfg["threshold"], rel.cfg["thresholds"] = threshold, per_label
    try:
        doc = rel(doc)
    finally:
        rel.cfg["threshold"], rel.cfg["thresholds"] = saved
    group = {(s, e, label) for s, e, label in spans if e > s}
    keys = [
        ((r.head.start, r.head.end, r.head.label_), (r.tail.start, r.tail.end, r.tail.label_), r.label)
        for r in doc._.relations
    ]
    assert len(keys) == len(set(keys)), "duplicate relations"
    for head, tail, label in keys:
        assert head in group and tail in group
        assert head != tail
    for r in doc._.relations:
        assert 0.0 <= r.score <= 1.0
        assert r.score >= per_label.get(r.label, threshold) - 1e-6
    # and they survive a DocBin trip, as training data and n_process do
    (back,) = DocBin(store_user_data=True, docs=[doc]).get_docs(nlp.vocab)
    assert back._.relations_data == doc._.relations_data
