"""`spancat_singlelabel_soft` (spacy_ie.pipeline.soft_spancat): soft targets stored on Docs, the
loss's mix of hard and soft targets, and the factory as spaCy's single-label spancat."""
import numpy
import pytest
import spacy
from spacy.tokens import DocBin, Span
from spacy.training import Example
from thinc.types import Ragged

from spacy_ie.pipeline.soft_spancat import SoftTargetSpanCategorizer, get_soft_spans, set_soft_spans

KEY = "entities"
TEACHER_LABELS = ["PER", "LOC", "ORG"]  # the student below has no ORG
SOFT_SPANS = numpy.array([[0, 1], [4, 5], [1, 2], [6, 7]])  # (6, 7): a span the student did not suggest
SOFT_PROBS = numpy.array([[0.7, 0.1, 0.0, 0.2], [0.1, 0.6, 0.1, 0.2], [0.25, 0.0, 0.25, 0.5], [0.5, 0.0, 0.0, 0.5]])
SUGGESTED = [(0, 1), (1, 2), (2, 3), (4, 5)]


def _component(soft_weight: float) -> SoftTargetSpanCategorizer:
    nlp = spacy.blank("en")
    spancat = nlp.add_pipe("spancat_singlelabel_soft", config={"spans_key": KEY, "soft_weight": soft_weight})
    for label in ("PER", "LOC"):
        spancat.add_label(label)
    return spancat


def _batch(nlp, soft: bool = True, retokenized: bool = False):
    """Two examples, four suggested spans each, softmax scores (8, 3): the first example's
    reference has the soft targets (unless `soft` is false)."""
    text = "Ada met Bob in Paris with Carl"
    reference = nlp(text)
    reference.spans[KEY] = [Span(reference, 0, 1, "PER")]
    if soft:
        set_soft_spans(reference, KEY, TEACHER_LABELS, SOFT_SPANS, SOFT_PROBS)
    predicted = nlp.make_doc(text)
    if retokenized:
        with predicted.retokenize() as retokenizer:
            retokenizer.merge(predicted[0:2])
    other = nlp("Bob lives in Rome")
    other.spans[KEY] = [Span(other, 3, 4, "LOC")]
    examples = [Example(predicted, reference), Example(nlp.make_doc(other.text), other)]
    spans = Ragged(numpy.array(SUGGESTED * 2, dtype="int32"), numpy.array([4, 4], dtype="int32"))
    logits = numpy.random.default_rng(0).normal(size=(8, 3)).astype("float32")
    scores = numpy.exp(logits) / numpy.exp(logits).sum(axis=1, keepdims=True)
    return examples, (spans, scores)


def test_soft_spans_round_trip_through_a_docbin():
    nlp = spacy.blank("en")
    doc = nlp("Ada met Bob in Paris with Carl")
    assert get_soft_spans(doc, KEY) is None
    set_soft_spans(doc, KEY, TEACHER_LABELS, SOFT_SPANS, SOFT_PROBS)
    (loaded,) = DocBin(docs=[doc], store_user_data=True).get_docs(nlp.vocab)
    soft = get_soft_spans(loaded, KEY)
    assert list(soft["labels"]) == TEACHER_LABELS
    numpy.testing.assert_array_equal(soft["spans"], SOFT_SPANS)
    numpy.testing.assert_allclose(soft["probs"], SOFT_PROBS, atol=1e-3)  # stored as float16
    with pytest.raises(ValueError, match="do not fit"):
        set_soft_spans(doc, KEY, TEACHER_LABELS[:2], SOFT_SPANS, SOFT_PROBS)


@pytest.mark.parametrize("weight", [0.0, 0.5, 1.0])
def test_loss_mixes_hard_and_soft_targets_on_the_teacher_scored_spans(weight):
    spancat = _component(weight)
    examples, (spans, scores) = _batch(spacy.blank("en"))
    hard_loss, hard_d = spacy.pipeline.spancat.SpanCategorizer.get_loss(spancat, examples, (spans, scores))
    loss, d_scores = spancat.get_loss(examples, (spans, scores))
    # the student's columns: PER, LOC, "no entity"; the teacher's ORG mass goes to "no entity"
    soft = {(0, 1): [0.7, 0.1, 0.2], (4, 5): [0.1, 0.6, 0.3], (1, 2): [0.25, 0.0, 0.75]}
    expected = hard_d.copy()
    for row, span in enumerate(SUGGESTED):  # first example only; (6, 7) was not suggested
        if span in soft:
            expected[row] = (1 - weight) * hard_d[row] + weight * (scores[row] - numpy.array(soft[span]))
    numpy.testing.assert_allclose(d_scores, expected, atol=1e-3)  # the soft targets are float16
    assert loss == pytest.approx(float((d_scores**2).sum()), rel=1e-6)
    if weight == 0.0:
        assert loss == hard_loss
    else:  # the second example (no soft targets) and the unscored span keep the hard gradient
        numpy.testing.assert_array_equal(d_scores[2], hard_d[2])
        numpy.testing.assert_array_equal(d_scores[4:], hard_d[4:])
        assert not numpy.allclose(d_scores[:2], hard_d[:2])


def test_soft_targets_are_ignored_when_the_tokens_differ_or_are_absent():
    spancat = _component(1.0)
    nlp = spacy.blank("en")
    for examples, spans_scores in (_batch(nlp, retokenized=True), _batch(nlp, soft=False)):
        _, hard_d = spacy.pipeline.spancat.SpanCategorizer.get_loss(spancat, examples, spans_scores)
        _, d_scores = spancat.get_loss(examples, spans_scores)
        numpy.testing.assert_array_equal(d_scores, hard_d)


def test_factory_is_spancat_singlelabel_with_a_soft_weight():
    spancat = _component(0.25)
    assert spancat.cfg["soft_weight"] == 0.25 and spancat.cfg["max_positive"] == 1
    assert spancat.add_negative_label and spancat.key == KEY
    with pytest.raises(ValueError, match="soft_weight"):
        _component(1.5)
