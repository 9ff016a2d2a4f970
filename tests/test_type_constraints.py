"""Type constraints of `spacy_ie.EntityPairCandidates`: given ones are hard, learned ones (v2,
`unseen_type_weight`) penalize type pairs unseen in training instead of forbidding them; the
relation_extractor multiplies probabilities by the weights; old (v1) pipelines load as before;
`evaluate` reports the gold relations outside the constraints."""
import shutil

import numpy
import pytest
import spacy
from spacy.tokens import Doc, Span
from spacy.util import registry
from thinc.api import Config

from spacy_ie.candidates import Candidates, EntityPairCandidates, span_list
from spacy_ie.evaluation import evaluate_relations, load_examples

NLP = spacy.blank("en")
# Learned from training: WORKS_FOR (PER, ORG); LOCATED_IN (ORG, LOC).
TRAIN = [("WORKS_FOR", "PER", "ORG"), ("LOCATED_IN", "ORG", "LOC")]
LABELS = ["WORKS_FOR", "LOCATED_IN"]


def doc_with_ents(labels):
    doc = Doc(NLP.vocab, words=[f"w{i}" for i in range(len(labels))])
    doc.ents = [Span(doc, i, i + 1, label=label) for i, label in enumerate(labels)]
    return doc


def weights_by_types(gen, doc):
    """{(head label, tail label): weights per label} of the candidates of `doc`."""
    spans = span_list(doc.ents)
    cands = Candidates.from_spans([doc], [spans], gen)
    weights = gen.label_weights(cands, LABELS, NLP.vocab.strings)
    return {(spans[h].label_, spans[t].label_): w.tolist() for (h, t), w in zip(cands.pairs, weights)}


def learned(weight):
    gen = EntityPairCandidates(learn_types=True, unseen_type_weight=weight)
    gen.initialize(TRAIN)
    return gen


def test_learned_constraints_penalize_unseen_type_pairs():
    found = weights_by_types(learned(0.75), doc_with_ents(["PER", "ORG", "LOC"]))
    # every ordered pair is a candidate, (LOC, PER) too, which no training relation had
    assert set(found) == {(h, t) for h in ("PER", "ORG", "LOC") for t in ("PER", "ORG", "LOC") if h != t}
    assert found[("PER", "ORG")] == [1.0, 0.75]
    assert found[("ORG", "LOC")] == [0.75, 1.0]
    assert found[("LOC", "PER")] == [0.75, 0.75]


def test_weight_zero_and_given_constraints_are_hard():
    doc = doc_with_ents(["PER", "ORG", "LOC"])
    for gen in (learned(0.0), EntityPairCandidates(type_constraints={"WORKS_FOR": [["PER", "ORG"]],
                                                                     "LOCATED_IN": [["ORG", "LOC"]]},
                                                   unseen_type_weight=0.75)):
        assert not gen.soft_types
        found = weights_by_types(gen, doc)
        # only type pairs allowed for some label are candidates; the other label is forbidden
        assert found == {("PER", "ORG"): [1.0, 0.0], ("ORG", "LOC"): [0.0, 1.0]}
        assert not gen.admits("WORKS_FOR", "LOC", "PER")


def test_type_coverage_counts_unseen_and_forbidden():
    held_out = TRAIN + [("WORKS_FOR", "PER", "LOC"), ("LOCATED_IN", "PER", "ORG")]
    assert learned(0.75).type_coverage(held_out) == {"relations": 4, "unseen": 2, "forbidden": 0}
    assert learned(0.0).type_coverage(held_out) == {"relations": 4, "unseen": 2, "forbidden": 2}
    assert EntityPairCandidates().type_coverage(held_out)["unseen"] == 0


def test_registered_versions_and_bad_weight():
    v1 = registry.resolve(Config({"x": {"@misc": "spacy_ie.EntityPairCandidates.v1", "learn_types": True}}))["x"]
    v2 = registry.resolve(Config({"x": {"@misc": "spacy_ie.EntityPairCandidates.v2", "learn_types": True}}))["x"]
    assert v1.unseen_type_weight == 0.0 and v2.unseen_type_weight == 0.75
    with pytest.raises(ValueError, match="unseen_type_weight"):
        EntityPairCandidates(unseen_type_weight=1.5)


def _rel(nlp):
    return nlp.get_pipe("relation_extractor")


def test_predict_multiplies_probabilities_by_the_type_weight(trained_pipeline, demo_corpus):
    nlp = spacy.load(trained_pipeline)
    rel = _rel(nlp)
    assert rel.candidates.soft_types  # the config learns types, v2
    docs = [eg.reference for eg in load_examples(nlp, demo_corpus["dev"])][:20]
    gold_docs = [nlp.make_doc(d.text) for d in docs]
    for doc, ref in zip(gold_docs, docs):
        doc.ents = [doc.char_span(e.start_char, e.end_char, e.label_) for e in ref.ents]
    rel.candidates.unseen_type_weight = 1.0
    plain = rel.predict(gold_docs)
    rel.candidates.unseen_type_weight = 0.5
    penalized = rel.predict(gold_docs)
    weights = rel.candidates.label_weights(plain.candidates, rel.labels, nlp.vocab.strings)
    assert (weights == 0.5).any() and (weights == 1.0).any()
    numpy.testing.assert_allclose(penalized.probs, plain.probs * weights, rtol=1e-6)
    assert penalized.allowed.all()
    rel.candidates.unseen_type_weight = 0.0  # hard: fewer candidates, the rest forbidden
    hard = rel.predict(gold_docs)
    assert len(hard.candidates) < len(plain.candidates)
    assert not hard.allowed.all()


def test_v1_pipeline_without_the_setting_loads_with_hard_constraints(trained_pipeline, tmp_path):
    old = tmp_path / "old"
    shutil.copytree(trained_pipeline, old)
    cfg = (old / "config.cfg").read_text()
    assert 'spacy_ie.EntityPairCandidates.v2"' in cfg
    cfg = cfg.replace('spacy_ie.EntityPairCandidates.v2"', 'spacy_ie.EntityPairCandidates.v1"')
    cfg = "\n".join(line for line in cfg.splitlines() if not line.startswith("unseen_type_weight"))
    (old / "config.cfg").write_text(cfg)
    rel = _rel(spacy.load(old))
    assert rel.candidates.unseen_type_weight == 0.0 and not rel.candidates.soft_types
    assert rel.candidates.type_constraints == _rel(spacy.load(trained_pipeline)).candidates.type_constraints


@pytest.mark.parametrize("weight", [0.0, 0.75])
def test_evaluate_reports_gold_relations_outside_the_constraints(trained_pipeline, demo_corpus, weight):
    nlp = spacy.load(trained_pipeline)
    rel = _rel(nlp)
    examples = load_examples(nlp, demo_corpus["test"])[:10]
    gold = [(r.label, r.head.label_, r.tail.label_) for eg in examples for r in eg.reference._.relations]
    # keep only the first gold relation's type pair: the others become unseen
    label, head, tail = gold[0]
    rel.candidates.set_type_constraints({label: [[head, tail]]})
    rel.candidates.unseen_type_weight = weight
    results = evaluate_relations(nlp, examples)
    coverage = results["type_coverage"]
    unseen = sum(1 for g in gold if g != (label, head, tail))
    assert coverage == {"relations": len(gold), "unseen": unseen, "forbidden": unseen if weight == 0 else 0}
    notes = " ".join(results["notes"])
    assert f"{unseen} of {len(gold)} gold relations" in notes
    assert ("can NEVER be predicted" in notes) == (weight == 0)
