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


# --- item 6: Docs with relations go through Doc.to_bytes/from_bytes (n_process, DocBin) cheaply ---


def test_doc_bytes_with_relations_do_not_look_up_msgpack_hooks_again(monkeypatch):
    """A Doc with relations has a non-empty user_data: two more srsly msgpack calls per
    to_bytes/from_bytes. None of them may scan the installed packages' entry points or walk
    catalogue's registry again (spacy_ie/_srsly.py), when no package extends srsly's hooks."""
    import catalogue
    from srsly.msgpack import msgpack_decoders, msgpack_encoders

    if msgpack_encoders.get_entry_points() or msgpack_decoders.get_entry_points():
        pytest.skip("an installed package extends srsly's msgpack hooks: the stock lookup is kept")
    doc = long_doc(2)
    doc._.relations = [Relation(doc.ents[0], doc.ents[1], "knows", 0.5)]
    Doc(NLP.vocab).from_bytes(doc.to_bytes())  # the cache is filled
    lookups = []
    real_get_all = catalogue.Registry.get_all
    monkeypatch.setattr(catalogue.Registry, "get_all", lambda self: lookups.append(self) or real_get_all(self))
    back = Doc(NLP.vocab).from_bytes(doc.to_bytes())
    assert lookups == []
    assert back._.relations_data == doc._.relations_data


def test_msgpack_hooks_registered_later_are_still_used(monkeypatch):
    """The cached lookup sees an encoder/decoder pair registered after spacy_ie was imported."""
    import catalogue
    import srsly

    class Point:
        def __init__(self, x):
            self.x = x

    def encode(obj, chain=None):
        return {"__point__": obj.x} if isinstance(obj, Point) else (chain(obj) if chain else obj)

    def decode(obj, chain=None):
        return Point(obj["__point__"]) if "__point__" in obj else (chain(obj) if chain else obj)

    assert srsly.msgpack_loads(srsly.msgpack_dumps({"a": 1})) == {"a": 1}  # cache filled
    monkeypatch.setitem(catalogue.REGISTRY, ("srsly", "msgpack_encoders", "point"), encode)
    monkeypatch.setitem(catalogue.REGISTRY, ("srsly", "msgpack_decoders", "point"), decode)
    assert srsly.msgpack_loads(srsly.msgpack_dumps([Point(3)]))[0].x == 3


def test_the_stock_lookup_is_kept_when_a_package_extends_msgpack(monkeypatch):
    from srsly.msgpack import msgpack_encoders

    from spacy_ie._srsly import CachedHooks, cache_msgpack_hooks

    monkeypatch.delattr(msgpack_encoders, "get_all", raising=False)  # the stock lookup
    monkeypatch.setattr(msgpack_encoders, "entry_points", True)
    monkeypatch.setattr(msgpack_encoders, "get_entry_points", lambda: {"custom": lambda obj, chain=None: obj})
    assert "srsly_msgpack_encoders" not in cache_msgpack_hooks()
    assert msgpack_encoders.entry_points is True
    assert not isinstance(msgpack_encoders.__dict__.get("get_all"), CachedHooks)


# --- F5 and damaged pipelines: clear errors from every loader -------------------------------------


def break_section_header(path: Path) -> None:
    """The harness's reproducer: a section header that lost its opening bracket, so its keys
    fall into the previous section (configparser.DuplicateOptionError)."""
    config = path / "config.cfg"
    lines = config.read_text(encoding="utf8").splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("[components.ner.model]"))
    lines[header] = lines[header][1:]
    config.write_text("\n".join(lines) + "\n", encoding="utf8")


def truncate_model(path: Path) -> None:
    model = path / "relation_extractor" / "model"
    data = model.read_bytes()
    model.write_bytes(data[: len(data) // 2])


def delete_cfg(path: Path) -> None:
    (path / "relation_extractor" / "cfg").unlink()


def cut_labels(path: Path) -> None:
    cfg_path = path / "relation_extractor" / "cfg"
    cfg = json.loads(cfg_path.read_text(encoding="utf8"))
    assert len(cfg["labels"]) > 2
    cfg["labels"] = cfg["labels"][:2]
    cfg_path.write_text(json.dumps(cfg), encoding="utf8")


def bad_setting(path: Path) -> None:
    config = path / "config.cfg"
    text = config.read_text(encoding="utf8")
    assert "\nthreshold = 0.5\n" in text
    config.write_text(text.replace("\nthreshold = 0.5\n", '\nthreshold = "high"\n', 1), encoding="utf8")


def unknown_factory(path: Path) -> None:
    config = path / "config.cfg"
    text = config.read_text(encoding="utf8")
    config.write_text(text.replace('factory = "relation_extractor"', 'factory = "relation_extractr"'), encoding="utf8")


# name -> (damage, text the error must contain: the component or file that is wrong)
DAMAGES: Dict[str, Tuple[Callable[[Path], None], List[str]]] = {
    "malformed_section_header": (break_section_header, ["config.cfg", "DuplicateOptionError"]),
    "truncated_model": (truncate_model, ["relation_extractor/model"]),
    "missing_cfg": (delete_cfg, ["relation_extractor"]),
    "cut_label_list": (cut_labels, ["relation_extractor"]),
    "bad_setting": (bad_setting, ["config.cfg", "threshold"]),
    "unknown_factory": (unknown_factory, ["config.cfg", "relation_extractr"]),
}


@pytest.fixture(scope="module")
def damaged(trained_pipeline, tmp_path_factory) -> Dict[str, Path]:
    """One copy of the trained pipeline per damage in `DAMAGES`."""
    root = tmp_path_factory.mktemp("damaged")
    paths = {}
    for name, (damage, _) in DAMAGES.items():
        paths[name] = root / name
        shutil.copytree(trained_pipeline, paths[name])
        damage(paths[name])
    return paths


@pytest.mark.parametrize("name", list(DAMAGES))
def test_damaged_pipeline_fails_to_load_with_spacy_load(damaged, name):
    """Not only our CLI: plain ``spacy.load`` refuses each damaged pipeline (nothing loads
    silently and predicts fewer relations)."""
    with pytest.raises(Exception) as info:
        spacy.load(damaged[name])
    if name in ("missing_cfg", "cut_label_list"):  # our own check at load: it names the component
        assert "relation_extractor" in str(info.value)


@pytest.mark.parametrize("name", list(DAMAGES))
def test_damaged_pipeline_gives_one_line_naming_the_file(damaged, name):
    _, expected = DAMAGES[name]
    with pytest.raises(PipelineLoadError) as info:
        load_pipeline(damaged[name])
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"Cannot load the pipeline {str(damaged[name])!r}")
    for text in expected:
        assert text in message, message


def test_missing_pipeline_gives_one_line(tmp_path):
    with pytest.raises(PipelineLoadError) as info:
        load_pipeline(tmp_path / "nowhere")
    assert "nowhere" in str(info.value) and "\n" not in str(info.value)
    assert info.value.file is None


@pytest.fixture(scope="module")
def small_inputs(demo_corpus, tmp_path_factory) -> Dict[str, Path]:
    tmp = tmp_path_factory.mktemp("inputs")
    (tmp / "in.txt").write_text(TEXT + "\n", encoding="utf8")
    return {"text": tmp / "in.txt", "data": demo_corpus["dev"], "out": tmp}


@pytest.mark.parametrize("command", ["extract", "evaluate", "tune-thresholds"])
@pytest.mark.parametrize("name", ["malformed_section_header", "truncated_model", "cut_label_list"])
def test_every_command_reports_a_damaged_pipeline_in_one_message(damaged, small_inputs, command, name):
    model = str(damaged[name])
    args = {
        "extract": [model, str(small_inputs["text"])],
        "evaluate": [model, str(small_inputs["data"])],
        "tune-thresholds": [model, str(small_inputs["data"]), str(small_inputs["out"] / f"tuned-{name}")],
    }[command]
    result = CliRunner().invoke(app, [command, *args])
    output = one_line(result.output)  # stdout and stderr (click >= 8.2)
    assert result.exit_code == 1, output
    assert isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in output
    assert f"Cannot load the pipeline {model!r}" in output
    for text in DAMAGES[name][1]:
        assert text in output
    assert not (small_inputs["out"] / f"tuned-{name}").exists()


def test_config_check_without_loading(damaged, trained_pipeline):
    """`check_pipeline_config` parses config.cfg and meta.json only: a damaged config fails in
    one line, a damaged model file is left to the loader, a package name is not checked."""
    from spacy_ie.util import check_pipeline_config

    with pytest.raises(PipelineLoadError, match=r"\(config\.cfg\): DuplicateOptionError"):
        check_pipeline_config(damaged["malformed_section_header"])
    check_pipeline_config(damaged["truncated_model"])
    check_pipeline_config(trained_pipeline)
    check_pipeline_config("en_no_such_package")


def test_ray_engine_reports_a_damaged_config_before_starting_ray(damaged, small_inputs, tmp_path):
    pytest.importorskip("ray.data")
    model = str(damaged["malformed_section_header"])
    out = tmp_path / "shards"
    result = CliRunner().invoke(
        app, ["extract", model, str(small_inputs["text"]), "--engine", "ray", "-o", str(out)]
    )
    output = one_line(result.output)
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit), output
    assert f"Cannot load the pipeline {model!r} (config.cfg): DuplicateOptionError" in output
    assert "Traceback" not in output and not out.exists()


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
