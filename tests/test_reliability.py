"""Reliability (issue #15): what a fault/fuzz harness found must not come back.

- F2: storing and reading ``doc._.relations`` does no per-relation work that grows with the Doc
  (no ``doc.text`` rebuild per head and tail);
- F5 and damaged pipelines: every way of loading a pipeline (``spacy.load``, our shared loader,
  each CLI command) fails with one clear message naming the component or file, never loads a
  damaged pipeline silently and never shows a traceback;
- odd span groups (empty, duplicate, nested, whole-doc spans) and random thresholds: prediction
  never crashes, never gives duplicate relations, and only connects spans of the group.
"""
import json
import shutil
from pathlib import Path
from typing import Callable, Dict, List, Tuple

import pytest
import spacy
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from spacy.tokens import Doc, DocBin, Span
from typer.testing import CliRunner

from spacy_ie import Relation
from spacy_ie.cli import app
from spacy_ie.util import PipelineLoadError, load_pipeline

NLP = spacy.blank("en")
SENTENCE = "Ada Lovelace worked with Charles Babbage in London for many years ."
TEXT = "Ada Lovelace was born in London . She worked with Charles Babbage at the Analytical Engine ."


def one_line(text: str) -> str:
    """`text` with wasabi's line wrapping undone."""
    return " ".join(text.split())


# --- F2: relations cost O(relations), whatever the Doc's length ------------------------------------


class TextCountingDoc(Doc):
    """A Doc that counts how often its text is rebuilt (``Doc.text`` joins every token: O(n))."""

    text_reads = 0

    @property
    def text(self) -> str:
        TextCountingDoc.text_reads += 1
        return super().text


def long_doc(n_sentences: int) -> Doc:
    words = SENTENCE.split() * n_sentences
    doc = TextCountingDoc(NLP.vocab, words=words, spaces=[True] * (len(words) - 1) + [False])
    # every "Ada Lovelace", and the final "." (so a relation reaches the Doc's last character)
    doc.ents = [Span(doc, i, i + 2, "PER") for i in range(0, len(doc), 12)] + [Span(doc, len(doc) - 1, len(doc), "END")]
    return doc


def test_storing_and_reading_relations_never_rebuilds_the_text():
    doc = long_doc(500)  # 6,000 tokens, 500 entities
    ents = doc.ents
    relations = [Relation(ents[i], ents[i + 1], "knows", 0.5) for i in range(len(ents) - 1)]
    TextCountingDoc.text_reads = 0
    doc._.relations = relations
    read = doc._.relations
    assert TextCountingDoc.text_reads == 0
    assert len(read) == len(relations)
    # the last relation, to the Doc's last character, comes back exactly
    assert (read[-1].head.start, read[-1].tail.start, read[-1].tail.end) == (ents[-2].start, len(doc) - 1, len(doc))
    assert read[-1].tail.end_char == len(super(TextCountingDoc, doc).text)


def test_spans_of_a_copy_compare_the_text_once_not_per_relation():
    """Relations whose spans belong to a copy of the Doc (same text) are accepted, and the two
    texts are compared once for the whole assignment, not once per head and tail."""
    doc = long_doc(200)
    other = doc.copy()
    ents = other.ents
    relations = [Relation(ents[i], ents[i + 1], "knows", 0.5) for i in range(len(ents) - 1)]
    TextCountingDoc.text_reads = 0
    doc._.relations = relations
    assert TextCountingDoc.text_reads <= 1
    assert [(r.head.start, r.tail.start) for r in doc._.relations] == [(r.head.start, r.tail.start) for r in relations]
    assert all(r.head.doc is doc for r in doc._.relations)


def test_offsets_past_the_end_are_still_rejected():
    doc = long_doc(3)
    end = len(super(TextCountingDoc, doc).text)
    record = {"head": [0, 3, "PER"], "tail": [end - 1, end + 1, "PER"], "label": "x"}
    with pytest.raises(ValueError, match="do not fall on tokens"):
        doc._.relations = [record]
    record["tail"] = [end - 1, end, "PER"]
    doc._.relations = [record]
    assert doc._.relations[0].tail.text == "."


# --- odd span groups and random thresholds ---------------------------------------------------------


@pytest.fixture(scope="module")
def nlp_and_doc(trained_pipeline):
    """The trained pipeline, its relation extractor reading the span group "grp", and a Doc
    that went through it (so the tok2vec output is on ``doc.tensor`` for the listener)."""
    nlp = spacy.load(trained_pipeline)
    rel = nlp.get_pipe("relation_extractor")
    rel.cfg["spans_key"] = "grp"
    return nlp, rel, nlp(TEXT)


SPAN_LABELS = ["PERSON", "ORG", "LOC", "UNSEEN"]


@st.composite
def span_groups(draw, n_tokens: int) -> List[Tuple[int, int, str]]:
    """Spans as (start, end, label): empty, nested, overlapping, whole-doc, and duplicates."""
    spans = draw(
        st.lists(
            st.one_of(
                st.tuples(st.integers(0, n_tokens), st.integers(0, 4)).map(
                    lambda t: (t[0], min(n_tokens, t[0] + t[1]))
                ),
                st.just((0, n_tokens)),
                st.integers(0, n_tokens).map(lambda i: (i, i)),
            ).flatmap(lambda se: st.sampled_from(SPAN_LABELS).map(lambda label: (*se, label))),
            max_size=12,
        )
    )
    duplicates = draw(st.lists(st.sampled_from(spans), max_size=4)) if spans else []
    return spans + duplicates


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


@settings(max_examples=25, deadline=None)
@given(data=st.data())
def test_relations_between_any_group_spans_round_trip(data):
    """Whatever spans relations connect (nested, whole-doc, identical head and tail spans of
    different labels), storing and reading them gives them back."""
    doc = NLP(TEXT)
    spans = [
        Span(doc, s, e, label)
        for s, e, label in data.draw(span_groups(len(doc)), label="spans")
        if e > s
    ]
    pairs = data.draw(
        st.lists(st.tuples(st.sampled_from(spans), st.sampled_from(spans)), max_size=10)
        if spans
        else st.just([]),
        label="pairs",
    )
    relations = [Relation(h, t, "rel", 0.5) for h, t in pairs]
    doc._.relations = relations
    read = doc._.relations
    assert [(r.head, r.tail) for r in read] == [(r.head, r.tail) for r in relations]
    assert [(r.head.label_, r.tail.label_) for r in read] == [(r.head.label_, r.tail.label_) for r in relations]
