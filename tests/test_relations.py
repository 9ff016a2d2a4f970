"""`doc._.relations`: the Relation record and every path a Doc is stored or shipped through."""
import json
import os
import pickle
import subprocess
import sys
import textwrap
import warnings

import pytest
import spacy
from hypothesis import given, settings
from hypothesis import strategies as st
from spacy.tokens import Doc, DocBin, Span

from spacy_ie import Relation, register_extensions
from spacy_ie.relations import USER_DATA_KEY

from conftest import span_groups

NLP = spacy.blank("en")
TEXT = "Ada Lovelace met Charles Babbage in London."


def make_doc() -> Doc:
    doc = NLP(TEXT)
    doc.ents = [Span(doc, 0, 2, "PER"), Span(doc, 3, 5, "PER"), Span(doc, 6, 7, "LOC")]
    ada, charles, london = doc.ents
    context = doc[0:7]
    attention = (0.05, 0.05, 0.1, 0.3, 0.3, 0.1, 0.1)
    doc._.relations = [
        Relation(ada, charles, "knows", 0.9, context, attention),
        Relation(charles, ada, "knows", 0.8),  # the other direction: a distinct record
        Relation(charles, london, "lives_in", 0.25),
    ]
    return doc


def snapshot(doc: Doc):
    """Everything a relation carries, in plain types (spans by text, offsets and label)."""

    def span(s):
        return None if s is None else (s.text, s.start, s.end, s.start_char, s.end_char, s.label_)

    return [
        (span(r.head), span(r.tail), r.label, r.score, span(r.context), r.attention)
        for r in doc._.relations
    ]


EXPECTED = [
    (
        ("Ada Lovelace", 0, 2, 0, 12, "PER"),
        ("Charles Babbage", 3, 5, 17, 32, "PER"),
        "knows",
        0.9,
        ("Ada Lovelace met Charles Babbage in London", 0, 7, 0, 42, ""),
        (0.05, 0.05, 0.1, 0.3, 0.3, 0.1, 0.1),
    ),
    (("Charles Babbage", 3, 5, 17, 32, "PER"), ("Ada Lovelace", 0, 2, 0, 12, "PER"), "knows", 0.8, None, None),
    (("Charles Babbage", 3, 5, 17, 32, "PER"), ("London", 6, 7, 36, 42, "LOC"), "lives_in", 0.25, None, None),
]  # fmt: skip


def assert_roundtrip(doc: Doc) -> None:
    assert snapshot(doc) == EXPECTED
    for rel in doc._.relations:
        assert rel.head.doc is doc and rel.tail.doc is doc


def test_relations_on_the_doc():
    doc = make_doc()
    assert_roundtrip(doc)
    assert isinstance(doc._.relations, tuple)
    assert all(isinstance(r, Relation) for r in doc._.relations)


def test_docbin_bytes():
    doc_bin = DocBin(store_user_data=True, docs=[make_doc()])
    loaded = DocBin().from_bytes(doc_bin.to_bytes())
    (doc,) = loaded.get_docs(NLP.vocab)
    assert_roundtrip(doc)
    # a fresh vocab (e.g. another process): the labels travel with the DocBin's strings
    (doc,) = DocBin().from_bytes(doc_bin.to_bytes()).get_docs(spacy.blank("en").vocab)
    assert_roundtrip(doc)


def test_docbin_disk(tmp_path):
    path = tmp_path / "docs.spacy"
    DocBin(store_user_data=True, docs=[make_doc(), NLP("No relations here.")]).to_disk(path)
    doc, empty = DocBin().from_disk(path).get_docs(spacy.blank("en").vocab)
    assert_roundtrip(doc)
    assert empty._.relations == ()


def test_docbin_without_user_data_drops_relations():
    doc_bin = DocBin(store_user_data=False, docs=[make_doc()])
    (doc,) = DocBin().from_bytes(doc_bin.to_bytes()).get_docs(NLP.vocab)
    assert doc._.relations == ()


def test_doc_to_bytes():
    doc = Doc(NLP.vocab).from_bytes(make_doc().to_bytes())
    assert_roundtrip(doc)


def test_pickle():
    doc = pickle.loads(pickle.dumps(make_doc()))
    assert_roundtrip(doc)


def test_json():
    data = make_doc().to_json(underscore=["relations_data"])
    data = json.loads(json.dumps(data))  # through an actual JSON string
    doc = Doc(NLP.vocab).from_json(data)
    assert_roundtrip(doc)
    assert [(e.text, e.label_) for e in doc.ents] == [
        ("Ada Lovelace", "PER"),
        ("Charles Babbage", "PER"),
        ("London", "LOC"),
    ]


def test_relations_data_is_plain():
    data = make_doc()._.relations_data
    assert json.loads(json.dumps(data)) == data
    assert data[1] == {"head": [17, 32, "PER"], "tail": [0, 12, "PER"], "label": "knows", "score": 0.8}  # character offsets
    assert data[0]["context"] == [0, 42] and len(data[0]["attention"]) == 7


def test_doc_copy():
    original = make_doc()
    copy = original.copy()
    assert_roundtrip(copy)
    copy._.relations = copy._.relations[:1]  # the copy's relations are its own
    assert len(copy._.relations) == 1
    assert_roundtrip(original)


# --- nlp.pipe(n_process=2) with fork and spawn ----------------------------------------------

COMPONENT = '''
import os

from spacy.language import Language
from spacy.tokens import Span

from spacy_ie import Relation

ENT_LABELS = {"Ada": "PER", "Charles": "PER", "Mary": "PER", "London": "LOC", "Paris": "LOC"}


@Language.component("toy_relations")
def toy_relations(doc):
    doc.ents = [Span(doc, t.i, t.i + 1, ENT_LABELS[t.text]) for t in doc if t.text in ENT_LABELS]
    relations = []
    for i, head in enumerate(doc.ents):
        for tail in doc.ents[i + 1 :]:
            score = 1.0 / (1 + tail.start - head.start)
            relations.append(Relation(head, tail, "before", score))
            relations.append(Relation(tail, head, "after", score / 2, doc[head.start : tail.end],
                                      tuple([1.0 / (tail.end - head.start)] * (tail.end - head.start))))
    doc._.relations = relations
    doc.user_data["pid"] = os.getpid()
    return doc
'''

DRIVER = """
import json
import multiprocessing
import os
import sys

TEXTS = json.loads(os.environ["TOY_TEXTS"])


def run(nlp, method):
    multiprocessing.set_start_method(method, force=True)
    docs = list(nlp.pipe(TEXTS, n_process=2, batch_size=1))
    return {
        "start_method": multiprocessing.get_start_method(),
        "main_pid": os.getpid(),
        "worker_pids": sorted({doc.user_data["pid"] for doc in docs}),
        "docs": [
            {
                "text": doc.text,
                "relations": [
                    [r.head.text, r.head.start, r.head.end, r.head.label_,
                     r.tail.text, r.tail.start, r.tail.end, r.tail.label_,
                     r.label, r.score,
                     None if r.context is None else [r.context.start, r.context.end],
                     None if r.attention is None else list(r.attention)]
                    for r in doc._.relations
                ],
            }
            for doc in docs
        ],
    }


def main():
    # One interpreter for all start methods: importing spaCy dominates the run time.
    multiprocessing.set_start_method(sys.argv[1], force=True)
    import spacy
    import toy_component  # noqa: F401  (registers "toy_relations")

    nlp = spacy.blank("en")
    nlp.add_pipe("toy_relations")
    print(json.dumps({method: run(nlp, method) for method in sys.argv[1:]}))


if __name__ == "__main__":
    main()
"""

TEXTS = [
    "Ada met Charles in London.",
    "Nothing to see here.",
    "Mary moved from Paris to London.",
    "Charles wrote to Ada.",
    "Paris and London and Ada and Mary.",
    "Ada Ada.",
]
START_METHODS = ["fork", "spawn"]


def expected_relations(text):
    """What toy_relations computes, rebuilt here independently."""
    labels = {"Ada": "PER", "Charles": "PER", "Mary": "PER", "London": "LOC", "Paris": "LOC"}
    doc = NLP(text)
    ents = [(t.text, t.i, labels[t.text]) for t in doc if t.text in labels]
    out = []
    for i, (h_text, h, h_label) in enumerate(ents):
        for t_text, t, t_label in ents[i + 1 :]:
            score = 1.0 / (1 + t - h)
            n = t + 1 - h
            out.append([h_text, h, h + 1, h_label, t_text, t, t + 1, t_label, "before", score, None, None])
            out.append([t_text, t, t + 1, t_label, h_text, h, h + 1, h_label, "after", score / 2,
                        [h, t + 1], [1.0 / n] * n])  # fmt: skip
    return out


@pytest.fixture(scope="module")
def pipe_outputs(tmp_path_factory):
    """Run nlp.pipe(n_process=2) under each start method in a fresh interpreter."""
    tmp_path = tmp_path_factory.mktemp("multiprocessing")
    (tmp_path / "toy_component.py").write_text(textwrap.dedent(COMPONENT))
    (tmp_path / "driver.py").write_text(textwrap.dedent(DRIVER))
    env = dict(os.environ, TOY_TEXTS=json.dumps(TEXTS))
    env["PYTHONPATH"] = os.pathsep.join(
        [str(tmp_path)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else [])
    )
    proc = subprocess.run(
        [sys.executable, str(tmp_path / "driver.py"), *START_METHODS],
        env=env,
        cwd=str(tmp_path),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("method", START_METHODS)
def test_nlp_pipe_multiprocessing(pipe_outputs, method):
    out = pipe_outputs[method]
    assert out["start_method"] == method
    # the component really ran in worker processes
    assert out["worker_pids"] and out["main_pid"] not in out["worker_pids"]
    assert [d["text"] for d in out["docs"]] == TEXTS  # the order of the inputs
    for doc_out in out["docs"]:
        assert doc_out["relations"] == expected_relations(doc_out["text"])
    first = out["docs"][0]["relations"]
    assert [r[0] + " " + r[8] + " " + r[4] for r in first] == [
        "Ada before Charles",
        "Charles after Ada",
        "Ada before London",
        "London after Ada",
        "Charles before London",
        "London after Charles",
    ]
    assert first[1][10:] == [[0, 3], [1 / 3, 1 / 3, 1 / 3]]  # context and attention
    assert out["docs"][1]["relations"] == []


# --- the extension itself -------------------------------------------------------------------


def test_register_extensions_is_idempotent():
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any warning fails the test
        register_extensions()
        register_extensions()
    assert Doc.has_extension("relations") and Doc.has_extension("relations_data")
    assert_roundtrip(make_doc())


def test_register_extensions_replaces_foreign_extension_with_warning():
    try:
        Doc.set_extension("relations", default=None, force=True)
        with pytest.warns(UserWarning, match="relations"):
            register_extensions()
    finally:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            register_extensions()
    assert_roundtrip(make_doc())


def test_head_tail_order_and_record_order_are_kept():
    doc = make_doc()
    rels = doc._.relations
    assert (rels[0].head.text, rels[0].tail.text) == ("Ada Lovelace", "Charles Babbage")
    assert (rels[1].head.text, rels[1].tail.text) == ("Charles Babbage", "Ada Lovelace")
    assert rels[0] != rels[1]
    doc._.relations = list(reversed(rels))
    assert [r.label for r in doc._.relations] == ["lives_in", "knows", "knows"]
    assert doc._.relations[0].score == 0.25


def test_getter_returns_a_fresh_tuple():
    doc = make_doc()
    rels = doc._.relations
    assert isinstance(rels, tuple)
    assert doc._.relations == rels
    assert NLP("Empty.")._.relations == ()


@pytest.mark.parametrize(
    "bad",
    ["knows", ("Ada Lovelace", "Charles Babbage", "knows"), 3, None],
)
def test_assigning_a_non_relation_raises_type_error(bad):
    doc = make_doc()
    with pytest.raises(TypeError):
        doc._.relations = [bad]
    assert_roundtrip(doc)  # nothing was changed


@pytest.mark.parametrize(
    "head",
    [[0, 99, "PER"], [-1, 2, "PER"], [2, 2, "PER"], [5, 3, "PER"]],
)
def test_out_of_range_offsets_raise_value_error(head):
    doc = make_doc()
    bad = {"head": head, "tail": [3, 5, "PER"], "label": "knows"}
    with pytest.raises(ValueError):
        doc._.relations = list(doc._.relations) + [bad]
    assert_roundtrip(doc)  # validated before anything was stored


def test_malformed_record_raises_value_error():
    doc = make_doc()
    with pytest.raises(ValueError):
        doc._.relations = [{"head": [0, 2, "PER"], "label": "knows"}]  # no tail


def test_span_from_a_longer_doc_raises_value_error():
    long_doc = NLP(TEXT + " " + TEXT)
    short_doc = NLP("Ada Lovelace.")
    with pytest.raises(ValueError):
        short_doc._.relations = [Relation(long_doc[0:2], long_doc[10:12], "knows")]


def test_dict_records_are_accepted_and_none_clears():
    doc = NLP(TEXT)
    doc._.relations = [{"head": [0, 12, "PER"], "tail": [17, 32, "PER"], "label": "knows"}]
    (rel,) = doc._.relations
    assert (rel.head.text, rel.tail.text, rel.label, rel.score) == (
        "Ada Lovelace",
        "Charles Babbage",
        "knows",
        1.0,
    )
    assert rel.head.label_ == "PER" and rel.context is None and rel.attention is None
    doc._.relations = None
    assert doc._.relations == ()
    assert USER_DATA_KEY in doc.user_data


def test_relations_data_setter():
    doc = NLP(TEXT)
    doc._.relations_data = make_doc()._.relations_data
    assert_roundtrip(doc)


def test_relations_on_overlapping_span_group_spans():
    doc = NLP("She studied at New York University in 1990.")
    university = Span(doc, 3, 6, "ORG")
    city = Span(doc, 3, 5, "GPE")  # overlaps `university`: doc.ents could not hold both
    doc.spans["sc"] = [university, city]
    with pytest.raises(ValueError):
        doc.ents = [university, city]
    doc._.relations = [Relation(university, city, "located_in", 0.7)]

    def check(d):
        (rel,) = d._.relations
        assert (rel.head.text, rel.head.label_) == ("New York University", "ORG")
        assert (rel.tail.text, rel.tail.label_) == ("New York", "GPE")
        assert (rel.label, rel.score) == ("located_in", 0.7)
        assert [(s.text, s.label_) for s in d.spans["sc"]] == [
            ("New York University", "ORG"),
            ("New York", "GPE"),
        ]

    check(doc)
    (loaded,) = DocBin(store_user_data=True, docs=[doc]).get_docs(NLP.vocab)
    check(loaded)
    check(pickle.loads(pickle.dumps(doc)))
    data = json.loads(json.dumps(doc.to_json(underscore=["relations_data"])))
    check(Doc(NLP.vocab).from_json(data))


# --- known issues in spacy_ie/relations.py (reported; remove the marks once fixed) ----------



def test_relations_survive_retokenization():
    doc = make_doc()
    with doc.retokenize() as retokenizer:  # what merge_entities does
        for ent in doc.ents:
            retokenizer.merge(ent)
    assert [(r.head.text, r.tail.text) for r in doc._.relations] == [
        ("Ada Lovelace", "Charles Babbage"),
        ("Charles Babbage", "Ada Lovelace"),
        ("Charles Babbage", "London"),
    ]



def test_span_from_another_doc_raises_value_error():
    other = NLP("The cat sat on the mat and the dog sat too.")
    with pytest.raises(ValueError):
        other._.relations = make_doc()._.relations



def test_dict_record_with_numpy_values_is_json_serializable():
    import numpy

    doc = NLP(TEXT)
    doc._.relations = [
        {"head": [numpy.int64(0), 2, "PER"], "tail": [3, 5, "PER"], "label": "knows",
         "score": numpy.float32(0.5)}  # fmt: skip
    ]
    json.dumps(doc.to_json(underscore=["relations_data"]))


# --- storing and reading relations costs O(relations), whatever the Doc's length --------------------

LONG_SENTENCE = "Ada Lovelace worked with Charles Babbage in London for many years ."


class TextCountingDoc(Doc):
    """A Doc that counts how often its text is rebuilt (``Doc.text`` joins every token: O(n))."""

    text_reads = 0

    @property
    def text(self) -> str:
        TextCountingDoc.text_reads += 1
        return super().text


def long_doc(n_sentences: int) -> Doc:
    words = LONG_SENTENCE.split() * n_sentences
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


GROUP_TEXT = "Ada Lovelace was born in London . She worked with Charles Babbage at the Analytical Engine ."


@settings(max_examples=25, deadline=None)
@given(data=st.data())
def test_relations_between_any_group_spans_round_trip(data):
    """Whatever spans relations connect (nested, whole-doc, identical head and tail spans of
    different labels), storing and reading them gives them back."""
    doc = NLP(GROUP_TEXT)
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
