"""The decision rule (`decide`) against its plain per-pair definition, and the one rule shared by
`set_annotations` and evaluation (hypothesis over random spans, probabilities and settings)."""
import numpy
import spacy
from hypothesis import given, settings
from hypothesis import strategies as st
from spacy.tokens import Span
from spacy.training import Example

from spacy_ie.candidates import Candidates, EntityPairCandidates, span_list
from spacy_ie.evaluation import ViewPredictions, apply_thresholds
from spacy_ie.pipeline.relation_extractor import RelationPredictions, decide

NLP = spacy.blank("en")
LABELS = ["R1", "R2", "R3"]
ENTITY_LABELS = ["A", "B"]


def reference(pairs, spans, probs, allowed, thresholds, symmetric, exclusive, single):
    """The rule, one pair at a time, as the relation_extractor documents it."""
    n_pairs, n_labels = probs.shape
    row_of = {pair: r for r, pair in enumerate(pairs)}
    reverse = [row_of.get((d, t, h), r) for r, (d, h, t) in enumerate(pairs)]
    scores = probs.copy()
    for r, (d, h, t) in enumerate(pairs):
        later = (spans[d][h].start, spans[d][h].end) > (spans[d][t].start, spans[d][t].end)
        for c in range(n_labels):
            if symmetric[c]:
                mean = (probs[r, c] + probs[reverse[r], c]) / numpy.float32(2)
                scores[r, c] = 0.0 if later and reverse[r] != r else mean
    keep = numpy.zeros((n_pairs, n_labels), dtype=bool)
    for r in range(n_pairs):
        for c in range(n_labels):
            keep[r, c] = allowed[r, c] and scores[r, c] >= numpy.float32(thresholds[c])
        if exclusive:
            best = max(range(n_labels), key=lambda c: (scores[r, c] if allowed[r, c] else -1.0, -c))
            keep[r] &= numpy.arange(n_labels) == best
    if single:
        top = [max([scores[r, c] for c in range(n_labels) if keep[r, c]], default=-1.0) for r in range(n_pairs)]
        beaten = [
            reverse[r] != r and (top[reverse[r]] > top[r] or (top[reverse[r]] == top[r] and reverse[r] < r))
            for r in range(n_pairs)
        ]
        for r in range(n_pairs):
            if beaten[r]:
                keep[r] = False
    return keep, scores


@st.composite
def batches(draw):
    """1-2 Docs with random span groups (nested, duplicate, empty and whole-Doc spans), random
    probabilities, type mask and settings."""
    docs, spans = [], []
    for _ in range(draw(st.integers(1, 2))):
        n_tokens = draw(st.integers(1, 12))
        doc = NLP.make_doc(" ".join(["w"] * n_tokens))
        raw = draw(st.lists(st.tuples(st.integers(0, n_tokens), st.integers(0, 4), st.sampled_from(ENTITY_LABELS)), max_size=6))
        group = [Span(doc, min(s, n_tokens), min(s + w, n_tokens), label) for s, w, label in raw]
        if draw(st.booleans()):
            group.append(Span(doc, 0, n_tokens, "A"))
        docs.append(doc)
        spans.append(span_list(group))
    candidates = Candidates.from_spans(docs, spans, EntityPairCandidates(max_distance=draw(st.integers(0, 12))))
    rng = numpy.random.default_rng(draw(st.integers(0, 2**16)))
    n = len(candidates)
    probs = rng.choice([0.1, 0.3, 0.5, 0.7, 0.9], size=(n, len(LABELS))).astype("float32")  # ties too
    allowed = rng.random((n, len(LABELS))) > 0.2
    predictions = RelationPredictions(candidates, probs, allowed, numpy.zeros((n, 2), "int32"))
    thresholds = numpy.asarray(draw(st.lists(st.sampled_from([0.0, 0.3, 0.5, 0.7, 1.0]), min_size=3, max_size=3)), "float32")
    symmetric = numpy.asarray(draw(st.lists(st.booleans(), min_size=3, max_size=3)))
    return docs, spans, predictions, thresholds, symmetric, draw(st.booleans()), draw(st.booleans())


@settings(max_examples=150, deadline=None)
@given(batches())
def test_decide_matches_the_per_pair_definition(batch):
    docs, spans, predictions, thresholds, symmetric, exclusive, single = batch
    probs_before = predictions.probs.copy()
    got = decide(predictions, thresholds, symmetric=symmetric, exclusive=exclusive, one_relation_per_pair=single)
    c = predictions.candidates
    pairs = [(int(d), int(h), int(t)) for d, (h, t) in zip(c.doc_of_pair, c.pairs)]
    keep, scores = reference(pairs, spans, predictions.probs, predictions.allowed, thresholds, symmetric, exclusive, single)
    assert (got.keep == keep).all()
    assert numpy.array_equal(got.scores[keep], scores[keep])
    assert numpy.array_equal(predictions.probs, probs_before)  # pure
    # No span is empty, no relation is written twice.
    assert all(len(span) for doc_spans in spans for span in doc_spans)
    assert len(set(map(tuple, c.global_pairs.tolist()))) == len(c)


@settings(max_examples=60, deadline=None)
@given(batches())
def test_set_annotations_and_evaluation_write_the_same_relations(batch):
    docs, _, predictions, thresholds, symmetric, exclusive, single = batch
    nlp = spacy.blank("en")
    rel = nlp.add_pipe("relation_extractor")
    for label in LABELS:
        rel.add_label(label)
    rel.cfg["threshold"] = 0.5
    rel.cfg["thresholds"] = {label: float(t) for label, t in zip(LABELS, thresholds)}
    rel.cfg["symmetric_labels"] = [label for label, s in zip(LABELS, symmetric) if s]
    rel.cfg["exclusive_classes"], rel.cfg["one_relation_per_pair"] = exclusive, single
    annotated = [doc.copy() for doc in docs]
    rel.set_annotations(annotated, predictions)
    evaluated = [doc.copy() for doc in docs]
    view = ViewPredictions([Example(d, d) for d in evaluated], [(evaluated, predictions)], [], 0.0)
    apply_thresholds(rel, view, rel.label_thresholds())
    assert [d._.relations_data for d in annotated] == [d._.relations_data for d in evaluated]
    # and both are the kept cells of `decide`, one relation each
    kept = decide(predictions, thresholds, symmetric=symmetric, exclusive=exclusive, one_relation_per_pair=single).keep
    assert sum(len(d._.relations) for d in annotated) == int(kept.sum())
