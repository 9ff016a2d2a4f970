"""Corpus converters and ``spacy-ie convert``: real data, a brat fixture, errors, properties."""
import json
import re
import shlex
import subprocess
import sys
import tempfile
from collections import Counter
from functools import lru_cache
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import pytest
import spacy
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from spacy.language import Language
from spacy.tokens import Doc, DocBin
from spacy.vocab import Vocab
from typer.testing import CliRunner

from conftest import stderr_has
from spacy_ie.cli import app
from spacy_ie.training.converters import (
    ConversionError,
    ConversionSummary,
    convert,
    convert_file,
    write_docbin,
)
from spacy_ie.training.converters.spert import SWAPPED_REASON as SWAPPED
from spacy_ie.training.converters.util import doc_from_text, is_int, trim_entity

SEMEVAL = "semeval2010_task8/SemEval2010_task8_all_data"
SEMEVAL_FILES = {
    "train": "SemEval2010_task8_training/TRAIN_FILE.TXT",
    "test": "SemEval2010_task8_testing_keys/TEST_FILE_FULL.TXT",
}
PROPERTY_SETTINGS = settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


# --- helpers -------------------------------------------------------------------------------


def require(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"{path} not found")
    return path


@lru_cache(maxsize=1)
def blank_nlp() -> Language:
    return spacy.blank("en")


def blank_vocab() -> Vocab:
    return blank_nlp().vocab


def read_docbin(path: Path) -> List[Doc]:
    return list(DocBin().from_disk(path).get_docs(blank_vocab()))


def entity_tuples(doc: Doc, key: str = "entities") -> List[Tuple[int, int, str]]:
    return [(span.start, span.end, span.label_) for span in doc.spans[key]]


def relation_tuples(doc: Doc) -> List[Tuple[str, str, str]]:
    return [(rel.head.text, rel.tail.text, rel.label) for rel in doc._.relations]


def relation_offsets(doc: Doc) -> List[tuple]:
    """((head start, end, label), (tail start, end, label), label, score) per relation."""
    return [
        ((r.head.start, r.head.end, r.head.label_), (r.tail.start, r.tail.end, r.tail.label_),
         r.label, r.score)
        for r in doc._.relations
    ]  # fmt: skip


def convert_and_read(
    input_path: Path, fmt: str, out_dir: Path, step: int = 1
) -> Tuple[List[Doc], ConversionSummary, List[Doc]]:
    """Convert, write every `step`-th doc, read them back and check they round-trip.

    RETURNS: the converted docs, the summary, the docs read back from the .spacy file.
    """
    docs, summary = convert_file(input_path, fmt)
    output = write_docbin(docs[::step], out_dir / f"{input_path.stem}.spacy")
    read = read_docbin(output)
    assert_same_docs(docs[::step], read)
    return docs, summary, read


def assert_same_docs(docs: List[Doc], read: List[Doc]) -> None:
    assert len(read) == len(docs)
    for doc, back in zip(docs, read):
        assert back.text == doc.text
        assert [t.text for t in back] == [t.text for t in doc]
        assert entity_tuples(back) == entity_tuples(doc)
        assert [(e.start, e.end, e.label_) for e in back.ents] == [
            (e.start, e.end, e.label_) for e in doc.ents
        ]
        assert relation_offsets(back) == relation_offsets(doc)


def assert_consistent(doc: Doc) -> None:
    """Invariants of every converted doc."""
    spans = set(entity_tuples(doc))
    ents = [(e.start, e.end, e.label_) for e in doc.ents]
    assert set(ents) <= spans
    for rel in doc._.relations:
        assert rel.score == 1.0
        assert (rel.head.start, rel.head.end, rel.head.label_) in spans
        assert (rel.tail.start, rel.tail.end, rel.tail.label_) in spans


def assert_fails_cleanly(
    err: ConversionError, input_dir: Path, output: Path, before: Optional[bytes]
) -> None:
    """A ConversionError names a file of the input; the output is untouched, no temp file left."""
    assert err.path.startswith(str(input_dir)), str(err)
    assert err.path in str(err) and err.problem in str(err)
    if before is None:
        assert not output.exists()
    else:
        assert output.read_bytes() == before
    assert [p.name for p in output.parent.iterdir() if p.name.endswith(".tmp")] == []


# --- real data -----------------------------------------------------------------------------

# From datasets/conll04/PROVENANCE.md ("Counts").
CONLL04 = {
    "train": (922, 26525, dict(Loc=1219, Org=616, Peop=1087, Other=455),
              dict(Kill=179, Live_In=330, Located_In=247, OrgBased_In=271, Work_For=256)),
    "dev": (231, 6993, dict(Loc=322, Org=170, Peop=283, Other=118),
            dict(Kill=42, Live_In=91, Located_In=65, OrgBased_In=76, Work_For=69)),
    "test": (288, 8336, dict(Loc=427, Org=198, Peop=321, Other=133),
             dict(Kill=47, Live_In=100, Located_In=94, OrgBased_In=105, Work_For=76)),
}  # fmt: skip


@pytest.fixture(scope="module")
def conll04(datasets_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("conll04")
    paths = {s: require(datasets_dir / "conll04" / f"conll04_{s}.json") for s in CONLL04}
    return {split: (path, *convert_and_read(path, "spert", out)) for split, path in paths.items()}


@pytest.fixture(scope="module")
def rel_component(datasets_dir, tmp_path_factory):
    path = require(datasets_dir / "rel_component" / "annotations.jsonl")
    return (path, *convert_and_read(path, "prodigy", tmp_path_factory.mktemp("rel")))


@pytest.fixture(scope="module")
def semeval(datasets_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("semeval")
    paths = {s: require(datasets_dir / SEMEVAL / f) for s, f in SEMEVAL_FILES.items()}
    # DocBin costs a few ms per doc here (srsly looks up its msgpack entry points on every
    # call), so round-trip every 10th doc of the 10,717.
    return {s: (p, *convert_and_read(p, "semeval", out, step=10)) for s, p in paths.items()}


def test_conll04_counts(conll04):
    n_entities = n_relations = 0
    for split, (n_docs, n_tokens, ent_counts, rel_counts) in CONLL04.items():
        _, docs, summary, read = conll04[split]
        assert summary.n_docs == len(read) == n_docs
        assert summary.n_tokens == sum(len(doc) for doc in read) == n_tokens
        assert summary.entity_labels == Counter(ent_counts)
        assert summary.relation_labels == Counter(rel_counts)
        assert Counter(s.label_ for d in read for s in d.spans["entities"]) == Counter(ent_counts)
        assert Counter(r.label for doc in read for r in doc._.relations) == Counter(rel_counts)
        # No overlaps in CoNLL04: every entity is in doc.ents, nothing skipped or changed.
        assert sum(len(doc.ents) for doc in read) == sum(ent_counts.values())
        assert not summary.skipped and not summary.changed and not summary.notes
        n_entities += summary.n_entities
        n_relations += summary.n_relations
    assert (n_entities, n_relations) == (5349, 2048)


def test_conll04_matches_source(conll04):
    for path, docs, _, read in conll04.values():
        records = json.loads(path.read_text(encoding="utf8"))
        assert len(records) == len(read)
        for record, doc in zip(records, read):
            assert [t.text for t in doc] == record["tokens"]
            ents = record["entities"]
            expected = [
                (" ".join(record["tokens"][ents[r["head"]]["start"] : ents[r["head"]]["end"]]),
                 " ".join(record["tokens"][ents[r["tail"]]["start"] : ents[r["tail"]]["end"]]),
                 r["type"])
                for r in record["relations"]
            ]  # fmt: skip
            assert relation_tuples(doc) == expected
            assert_consistent(doc)


def test_rel_component(rel_component):
    path, docs, summary, read = rel_component
    assert summary.n_docs == len(read) == 149
    assert summary.relation_labels == Counter(
        {"Pos-Reg": 107, "Reg": 49, "Neg-Reg": 42, "Binds": 35, "No-rel": 34}
    )
    assert sum(len(doc._.relations) for doc in read) == 267
    assert summary.entity_labels == Counter({"GGP": 466})
    assert sum(summary.notes.values()) == 4  # 4 duplicate relations, kept
    assert not summary.skipped and not summary.changed
    tasks = [json.loads(line) for line in path.read_text(encoding="utf8").splitlines()]
    for task, doc in zip(tasks, read):
        assert doc.text.strip() == task["text"].strip()
        by_last_token = {s["token_end"]: s["text"] for s in task["spans"]}
        expected = [
            (by_last_token[r["head"]], by_last_token[r["child"]], r["label"])
            for r in task["relations"]
        ]
        assert relation_tuples(doc) == expected
        assert_consistent(doc)


def parse_distribution(path: Path) -> Dict[str, Counter]:
    """TRAIN_TEST_DISTRIB.TXT -> {"TRAINING": Counter(label -> n), "TEST": ...} (undirected)."""
    sections: Dict[str, Counter] = {}
    current: Optional[Counter] = None
    for line in path.read_text(encoding="utf8").splitlines():
        header = re.fullmatch(r"<<<Distribution for (\w+) examples>>>", line.strip())
        count = re.fullmatch(r"\s*([\w-]+) :\s+(\d+) \(.*\)", line)
        if header:
            current = sections[header.group(1)] = Counter()
        elif count and current is not None:
            current[count.group(1)] = int(count.group(2))
    return sections


def directed_labels(doc: Doc) -> str:
    """The SemEval label of a converted doc: direction from the order of head and tail."""
    if not doc._.relations:
        return "Other"
    (rel,) = doc._.relations
    return f"{rel.label}(e1,e2)" if rel.head.start < rel.tail.start else f"{rel.label}(e2,e1)"


def test_semeval(semeval, datasets_dir):
    distribution = parse_distribution(
        require(datasets_dir / SEMEVAL / "SemEval2010_task8_training/TRAIN_TEST_DISTRIB.TXT")
    )
    expected_docs = {"train": 8000, "test": 2717}
    for split, section in (("train", "TRAINING"), ("test", "TEST")):
        path, docs, summary, read = semeval[split]
        assert summary.n_docs == len(docs) == expected_docs[split]
        assert len(read) == len(docs[::10])  # the round-tripped sample
        # The release's distribution file is undirected (9 relations + Other): compare to it.
        undirected = Counter(directed_labels(doc).split("(")[0] for doc in docs)
        assert undirected == distribution[section]
        n_other = len(docs) - summary.n_relations
        assert summary.relation_labels + Counter(Other=n_other) == undirected
        assert summary.entity_labels == Counter(NOMINAL=2 * len(docs))
        # Directed (19 labels), doc by doc, against the label lines of the source file.
        lines = path.read_text(encoding="utf8").splitlines()
        source = [
            (line, lines[i + 1].strip()) for i, line in enumerate(lines) if re.match(r"\d+\t", line)
        ]
        assert len(source) == len(docs)
        assert [directed_labels(doc) for doc in docs] == [label for _, label in source]
        assert len(set(directed_labels(doc) for doc in docs)) == 19
        # Relation arguments are the nominals, with their original text.
        for (line, _), doc in zip(source, docs):
            e1 = re.search(r"<e1>(.*?)</e1>", line).group(1)
            e2 = re.search(r"<e2>(.*?)</e2>", line).group(1)
            first, second = doc.spans["entities"]
            assert (first.text, second.text) == (e1, e2)
            assert first.end <= second.start  # e1 precedes e2: direction is recoverable
            assert [e.text for e in doc.ents] == [e1, e2]
            for rel in doc._.relations:
                assert {rel.head.text, rel.tail.text} == {e1, e2}


def test_semeval_train_matches_answer_key(semeval, datasets_dir):
    key_path = require(datasets_dir / SEMEVAL / "SemEval2010_task8_scorer-v1.2/answer_key2.txt")
    key = [line.split("\t")[1] for line in key_path.read_text().splitlines() if line.strip()]
    _, docs, _, _ = semeval["train"]
    assert [directed_labels(doc) for doc in docs] == key


def test_semeval_boundaries_without_spaces(tmp_path):
    """Nominals glued to other words ('The<e1>staff</e1>') still become whole tokens."""
    path = tmp_path / "s.txt"
    path.write_bytes(
        b'1\t"The<e1>staff</e1> in the shop of<e2>neurons</e2>s."\r\nOther\r\nComment:\r\n\r\n'
        b'2\t"A <e1>talon</e1> is the claw of a <e2>bird</e2>."\r\nComponent-Whole(e1,e2)\r\n'
    )
    (doc1, doc2), summary = convert_file(path, "semeval")
    assert doc1.text == "Thestaff in the shop ofneuronss."
    assert [s.text for s in doc1.spans["entities"]] == ["staff", "neurons"]
    assert doc1._.relations == ()
    assert relation_tuples(doc2) == [("talon", "bird", "Component-Whole")]
    assert summary.n_docs == 2 and summary.n_relations == 1 and sum(summary.skipped.values()) == 1


# --- brat ----------------------------------------------------------------------------------

BRAT_TEXT = "Ada Lovelace worked with Charles Babbage in London.\nThestaff met them."
BRAT_ANN = "\n".join(
    [
        "T1\tPER 0 12\tAda Lovelace",
        "T2\tPER 25 40\tCharles Babbage",
        "T3\tLOC 44 50\tLondon",
        "T4\tPER 0 3\tAda",  # nested in T1: not in doc.ents
        "T5\tLOC 20 24;44 50\twith London",  # discontinuous: skipped
        "T6\tGROUP 55 60\tstaff",  # inside the word 'Thestaff'
        "R1\tCollaborates Arg1:T1 Arg2:T2",
        "R2\tLocated_In Arg2:T3 Arg1:T2",
        "R3\tNear Arg1:T5 Arg2:T1",  # on a skipped entity: skipped
        "R4\tNickname Arg1:T4 Arg2:T1",  # on an overlapping entity: kept
        "A1\tNegated T1",
        "#1\tAnnotatorNotes T1\ta note",
        "",
    ]
)


@pytest.fixture
def brat_dir(tmp_path) -> Path:
    corpus = tmp_path / "brat"
    (corpus / "sub").mkdir(parents=True)
    (corpus / "a.txt").write_text(BRAT_TEXT, encoding="utf8")
    (corpus / "a.ann").write_text(BRAT_ANN, encoding="utf8")
    (corpus / "sub" / "b.txt").write_text("Paris is nice.", encoding="utf8")
    (corpus / "sub" / "b.ann").write_text("T1\tLOC 0 5\tParis\n", encoding="utf8")
    (corpus / "c.txt").write_text("No annotations here.", encoding="utf8")
    return corpus


def test_brat(brat_dir, tmp_path):
    output = tmp_path / "brat.spacy"
    summary = convert(brat_dir, output, "brat")
    doc, doc_b = read_docbin(output)
    assert doc.text == BRAT_TEXT
    assert [(s.text, s.label_) for s in doc.spans["entities"]] == [
        ("Ada Lovelace", "PER"), ("Charles Babbage", "PER"), ("London", "LOC"), ("Ada", "PER"),
        ("staff", "GROUP"),
    ]  # fmt: skip
    assert [e.text for e in doc.ents] == ["Ada Lovelace", "Charles Babbage", "London", "staff"]
    assert relation_tuples(doc) == [
        ("Ada Lovelace", "Charles Babbage", "Collaborates"),
        ("Charles Babbage", "London", "Located_In"),
        ("Ada", "Ada Lovelace", "Nickname"),
    ]
    assert [(s.text, s.label_) for s in doc_b.ents] == [("Paris", "LOC")]
    assert summary.n_docs == 2
    assert summary.entity_labels == Counter(PER=3, LOC=2, GROUP=1)
    skipped = {reason.split(" (")[0]: n for reason, n in summary.skipped.items()}
    assert skipped == {
        "discontinuous entities": 1,
        "relations with a discontinuous entity as argument": 1,
        "brat attribute lines": 1,
        "brat note lines": 1,
        ".txt files without an .ann file": 1,
    }
    assert list(summary.notes.values()) == [1]  # T4 is not in doc.ents
    assert "doc.spans['entities']" in next(iter(summary.notes))


def test_brat_single_file_and_trimming(tmp_path):
    (tmp_path / "x.txt").write_bytes(b"Hello  Ada Lovelace\r\nbye")
    (tmp_path / "x.ann").write_text("T1\tPER 6 19\tAda Lovelace\nR1\tSelf Arg1:T1 Arg2:T1\n")
    (doc,), summary = convert_file(tmp_path / "x.ann", "brat", spans_key="gold")
    assert doc.text == "Hello  Ada Lovelace\r\nbye"
    assert [s.text for s in doc.spans["gold"]] == ["Ada Lovelace"]
    assert summary.changed == Counter({"entity offsets trimmed of surrounding whitespace": 1})
    assert relation_tuples(doc) == [("Ada Lovelace", "Ada Lovelace", "Self")]


def test_cli_convert_prints_summary(brat_dir, tmp_path):
    output = tmp_path / "out" / "brat.spacy"
    result = CliRunner().invoke(app, ["convert", str(brat_dir), str(output), "--format", "brat"])
    assert result.exit_code == 0, result.output
    printed = " ".join(result.output.split())  # wasabi wraps long lines
    assert "Converted 2 docs (brat)" in printed
    assert "Skipped 1: discontinuous entities (several fragments)" in printed
    # the summary on stdout, what was skipped (a warning) on stderr
    assert "Converted 2 docs" in result.stdout and "Skipped" not in result.stdout
    assert stderr_has(result, "Skipped 1: discontinuous entities (several fragments)")
    assert "entities overlapping another entity, not in doc.ents" in printed
    assert "spans_key = 'entities'" in printed
    assert len(read_docbin(output)) == 2


# --- errors --------------------------------------------------------------------------------


GOOD_SPERT = {
    "tokens": ["Ada", "met", "Bob"],
    "entities": [{"type": "P", "start": 0, "end": 1}, {"type": "P", "start": 2, "end": 3}],
    "relations": [{"type": "Met", "head": 0, "tail": 1}],
}


def spert_json(**changes) -> str:
    """Two records: a good one, then one with `changes`."""
    return json.dumps([GOOD_SPERT, {**GOOD_SPERT, **changes}])


def prodigy_task(spans=None, relations=None, shift=0) -> str:
    tokens, start = [], 0
    for i, word in enumerate(["Smad", "binds", "Id1", "."]):
        end, ws = start + len(word), i < 2
        tokens.append({"text": word, "start": start, "end": end, "id": i, "ws": ws})
        start = end + ws
    if spans is None:
        spans = [
            {"start": 0 + shift, "end": 4, "token_start": 0, "token_end": 0, "label": "GGP"},
            {"start": 11, "end": 14, "token_start": 2, "token_end": 2, "label": "GGP"},
        ]
    if relations is None:
        relations = [{"head": 0, "child": 2, "label": "Binds"}]
    task = {"text": "Smad binds Id1.", "tokens": tokens, "spans": spans, "relations": relations}
    return json.dumps({**task, "answer": "accept"})


SEMEVAL_OK = '1\t"The <e1>a</e1> b <e2>c</e2>."\r\nOther\r\nComment:\r\n\r\n'
BRAT_OK = {"a.txt": "Ada met Bob", "a.ann": "T1\tP 0 3\tAda\nT2\tP 8 11\tBob\n"}


def case(name, fmt, files, input_name, location, problem):
    """An input that must fail: ConversionError at `location` saying `problem`."""
    return pytest.param(fmt, files, input_name, location, problem, id=name)


ERROR_CASES = [
    case("spert-json", "spert", {"d.json": '[{"tokens": ["a"],'}, "d.json",
         "line 1, column", "malformed JSON"),
    case("spert-not-array", "spert", {"d.json": "{}"}, "d.json", "", "expected a JSON array"),
    case("spert-missing-entity", "spert",
         {"d.json": spert_json(relations=[{"type": "Met", "head": 0, "tail": 2}])}, "d.json",
         "record 1", "tail = 2 points at a missing entity"),
    case("spert-out-of-range", "spert",
         {"d.json": spert_json(entities=[{"type": "P", "start": 2, "end": 4}])}, "d.json",
         "record 1", "tokens [2, 4) are out of range for 3 tokens"),
    case("spert-missing-field", "spert", {"d.json": '[{"tokens": ["a"], "entities": []}]'},
         "d.json", "record 0", "missing field 'relations'"),
    case("spert-wrong-type", "spert", {"d.json": spert_json(tokens=["a", 3, "b"])}, "d.json",
         "record 1", "token 1 must be a non-empty string"),
    case("prodigy-char-offsets", "prodigy",
         {"p.jsonl": prodigy_task() + "\n" + prodigy_task(shift=1)}, "p.jsonl",
         "line 2", "characters [1, 4) do not match its tokens 0..0, which cover [0, 4)"),
    case("prodigy-missing-entity", "prodigy",
         {"p.jsonl": prodigy_task(relations=[{"head": 1, "child": 2, "label": "X"}])}, "p.jsonl",
         "line 1", "head = 1 points at a missing entity"),
    case("prodigy-json", "prodigy", {"p.jsonl": prodigy_task() + "\n\n{oops\n"}, "p.jsonl",
         "line 3", "malformed JSON"),
    case("prodigy-answer", "prodigy", {"p.jsonl": '{"tokens": []}'}, "p.jsonl",
         "line 1", "missing field 'answer'"),
    case("prodigy-token-range", "prodigy",
         {"p.jsonl": prodigy_task(spans=[{"token_start": 3, "token_end": 4, "label": "X"}])},
         "p.jsonl", "line 1", "tokens 3..4 (inclusive) are out of range for 4 tokens"),
    case("semeval-marker", "semeval",
         {"s.txt": SEMEVAL_OK + '2\t"The <e1>a</e1> b <e2>c."\r\nOther\r\n'}, "s.txt",
         "line 5, sentence 2", "expected one </e2> marker, found 0"),
    case("semeval-label", "semeval",
         {"s.txt": SEMEVAL_OK + '2\t"<e1>a</e1> <e2>c</e2>"\r\nCause-Effect(e1,e3)\r\n'},
         "s.txt", "line 6, sentence 2", "expected a label like 'Cause-Effect(e1,e2)'"),
    case("semeval-no-label", "semeval", {"s.txt": '7\t"<e1>a</e1> <e2>c</e2>"\n'}, "s.txt",
         "line 2, sentence 7", "missing relation label"),
    case("semeval-not-sentence", "semeval", {"s.txt": SEMEVAL_OK + "Other\r\n"}, "s.txt",
         "line 5", "expected a sentence line"),
    case("brat-missing-entity", "brat",
         {**BRAT_OK, "a.ann": BRAT_OK["a.ann"] + "R1\tMet Arg1:T1 Arg2:T9\n"}, ".",
         "line 3", "argument 'T9' points at a missing entity"),
    case("brat-offsets", "brat", {**BRAT_OK, "a.ann": "T1\tP 8 12\tBob\n"}, "a.ann",
         "line 1", "characters [8, 12) are out of range for a.txt (11 characters)"),
    case("brat-text-mismatch", "brat", {**BRAT_OK, "a.ann": "T1\tP 0 3\tBob\n"}, "a.ann",
         "line 1", "its text 'Bob' does not match a.txt[0:3] = 'Ada'"),
    case("brat-unknown-line", "brat", {**BRAT_OK, "a.ann": BRAT_OK["a.ann"] + "X1\tfoo\n"},
         "a.ann", "line 3", "unknown annotation line"),
    case("brat-duplicate-id", "brat", {**BRAT_OK, "a.ann": BRAT_OK["a.ann"] + "T1\tP 0 3\tAda"},
         "a.ann", "line 3", "duplicate annotation id 'T1'"),
    case("brat-no-txt", "brat", {"a.ann": BRAT_OK["a.ann"]}, "a.ann", "", "no text file a.txt"),
    case("unknown-format", "conll", {"d.json": "[]"}, "d.json", "", "unknown format 'conll'"),
    case("missing-input", "spert", {}, "nope.json", "", "no such file or directory"),
    case("spert-types-json", "spert", {"d_train.json": spert_json(), "d_types.json": "{"},
         "d_train.json", "line 1, column", "malformed JSON"),
    case("spert-types-flag", "spert",
         {"d_train.json": spert_json(),
          "d_types.json": '{"relations": {"Met": {"symmetric": "yes"}}}'},
         "d_train.json", "relation type 'Met'", "'symmetric' must be true or false"),
    case("spert-types-relations", "spert",
         {"d_train.json": spert_json(), "d_types.json": '{"entities": {}}'},
         "d_train.json", "", "'relations' must be an object"),
]


def write_files(directory: Path, files: Dict[str, str]) -> None:
    directory.mkdir(exist_ok=True)
    for file_name, content in files.items():
        (directory / file_name).write_text(content, encoding="utf8")


@pytest.mark.parametrize("fmt,files,input_name,location,problem", ERROR_CASES)
@pytest.mark.parametrize("previous", [None, b"previous output"], ids=["new", "existing"])
def test_errors(tmp_path, fmt, files, input_name, location, problem, previous):
    write_files(tmp_path / "in", files)
    output = tmp_path / "out.spacy"
    if previous is not None:
        output.write_bytes(previous)
    with pytest.raises(ConversionError) as info:
        convert(tmp_path / "in" / input_name, output, fmt)
    err = info.value
    assert err.location.startswith(location) and problem in err.problem, str(err)
    assert_fails_cleanly(err, tmp_path / "in", output, previous)


def test_unknown_language(tmp_path):
    (tmp_path / "d.json").write_text("[]")
    with pytest.raises(ConversionError, match="unknown language code 'zz'"):
        convert(tmp_path / "d.json", tmp_path / "o.spacy", "spert", lang="zz")
    assert not (tmp_path / "o.spacy").exists()


@pytest.mark.parametrize(
    "fmt,files,input_name,location,problem",
    [p for p in ERROR_CASES if p.id in ("spert-missing-entity", "semeval-marker", "missing-input")],
)
def test_cli_errors(tmp_path, fmt, files, input_name, location, problem):
    write_files(tmp_path / "in", files)
    output = tmp_path / "out.spacy"
    args = ["convert", str(tmp_path / "in" / input_name), str(output), "-f", fmt]
    result = CliRunner().invoke(app, args)
    printed = " ".join(result.output.split())  # wasabi wraps long lines
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit)
    assert f"{input_name} ({location})" in printed if location else input_name in printed
    assert problem in printed and "Traceback" not in printed
    assert stderr_has(result, problem) and problem not in " ".join(result.stdout.split())
    assert not output.exists()


def test_cli_subprocess_error(tmp_path):
    """`python -m spacy_ie convert` on a missing file: message on stderr, exit code 1, no
    traceback."""
    output = tmp_path / "out.spacy"
    args = ["convert", str(tmp_path / "missing.json"), str(output), "--format", "spert"]
    proc = subprocess.run(
        [sys.executable, "-m", "spacy_ie", *args], capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 1
    assert "missing.json: no such file or directory" in " ".join(proc.stderr.split())
    assert proc.stdout == ""
    assert "Traceback" not in proc.stdout + proc.stderr
    assert not output.exists()


# --- properties: malformed input gives a ConversionError or a correct doc ------------------

json_scalars = st.none() | st.booleans() | st.integers(-2, 12) | st.floats(allow_nan=False)
json_values = st.recursive(
    json_scalars | st.text(max_size=4),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner),
    max_leaves=6,
)
words = st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=6)
labels = st.sampled_from(["Peop", "Org", "Loc"])


def mostly(valid, junk=json_values, odds: int = 12):
    """`valid` about `odds` times in `odds` + 1, else `junk` (a malformed value)."""
    return st.integers(0, odds).flatmap(lambda i: junk if i == 0 else valid)


@st.composite
def maybe_drop_key(draw, mapping: dict, odds: int = 15) -> dict:
    """`mapping`, or rarely `mapping` without one of its keys."""
    if mapping and draw(st.integers(0, odds)) == 0:
        mapping = dict(mapping)
        mapping.pop(draw(st.sampled_from(sorted(mapping))))
    return mapping


@st.composite
def spert_records(draw):
    tokens = draw(mostly(st.lists(mostly(words, odds=30), min_size=1, max_size=6), st.just([])))
    n = len(tokens)
    entities = []
    for _ in range(draw(st.integers(0, 3))):
        start = draw(mostly(st.integers(0, max(n - 1, 0)), st.integers(-1, n + 1) | json_values))
        valid_start = is_int(start) and 0 <= start < n
        end = draw(mostly(st.integers(start + 1, n) if valid_start else st.just(1)))
        entity = {"type": draw(mostly(labels)), "start": start, "end": end}
        entities.append(draw(maybe_drop_key(entity)))
    relations = []
    for _ in range(draw(st.integers(0, 2))):
        m = len(entities)
        index = mostly(st.integers(0, max(m - 1, 0)), st.integers(-1, m + 1))
        relation = {"type": draw(mostly(labels)), "head": draw(index), "tail": draw(index)}
        relations.append(draw(maybe_drop_key(relation)))
    record = {"tokens": tokens, "entities": entities, "relations": relations}
    return draw(mostly(maybe_drop_key(record), odds=15))


def check_property(fmt: str, write_input) -> Optional[Tuple[List[Doc], ConversionSummary]]:
    """Write an input, convert it: a clean ConversionError, or docs that round-trip."""
    with tempfile.TemporaryDirectory() as tmp:
        corpus, out_dir = Path(tmp) / "in", Path(tmp) / "out"
        corpus.mkdir()
        out_dir.mkdir()
        input_path = write_input(corpus)
        output = out_dir / "o.spacy"
        output.write_bytes(b"old")
        try:
            summary = convert(input_path, output, fmt)
        except ConversionError as err:
            assert_fails_cleanly(err, corpus, output, b"old")
            # Tokenization never fails: every entity boundary becomes a token boundary.
            assert "internal error" not in err.problem and "does not align" not in err.problem
            event("ConversionError")
            return None
        event("converted")
        docs = read_docbin(output)
        assert len(docs) == summary.n_docs
        assert sum(len(doc.spans["entities"]) for doc in docs) == summary.n_entities
        assert sum(len(doc._.relations) for doc in docs) == summary.n_relations
        for doc in docs:
            assert_consistent(doc)
        return docs, summary


@PROPERTY_SETTINGS
@given(st.lists(spert_records(), max_size=2))
def test_spert_property(records):
    def write(corpus: Path) -> Path:
        (corpus / "d.json").write_text(json.dumps(records), encoding="utf8")
        return corpus / "d.json"

    result = check_property("spert", write)
    if result is None:
        return
    docs, _ = result
    for record, doc in zip(records, docs):  # success: exactly the input's annotations
        ents = [(e["start"], e["end"], e["type"]) for e in record["entities"]]
        assert [t.text for t in doc] == record["tokens"]
        assert entity_tuples(doc) == list(dict.fromkeys(ents))
        expected = [(ents[r["head"]], ents[r["tail"]], r["type"]) for r in record["relations"]]
        assert [r[:3] for r in relation_offsets(doc)] == expected


@st.composite
def prodigy_lines(draw):
    if draw(st.integers(0, 20)) == 0:
        return draw(st.sampled_from(["", "{", "[]", "null", '{"answer": "accept"}', "nope"]))
    some_words = st.lists(mostly(words, odds=30), min_size=1, max_size=5)
    token_words = draw(mostly(some_words, st.just([])))
    tokens, start = [], 0
    for i, word in enumerate(token_words):
        ws = draw(st.booleans())
        length = len(word) if isinstance(word, str) else 1
        token = {"text": word, "start": start, "end": start + length, "id": i, "ws": ws}
        tokens.append(draw(maybe_drop_key(token, odds=40)))
        start += length + ws
    n = max(len(tokens), 1)
    spans = []
    for _ in range(draw(st.integers(0, 3))):
        first = draw(mostly(st.integers(0, n - 1), st.integers(-1, n)))
        lowest = min(max(first, 0), n - 1)
        last = draw(mostly(st.integers(lowest, n - 1), st.integers(-1, n) | json_values))
        span = {"token_start": first, "token_end": last, "label": draw(mostly(labels, odds=20))}
        if is_int(last) and 0 <= first <= last < len(tokens) and draw(st.booleans()):
            span["start"] = tokens[first].get("start", 0) + draw(mostly(st.just(0), st.just(1)))
            span["end"] = tokens[last].get("end", 0)
        spans.append(draw(maybe_drop_key(span)))
    ends = [s.get("token_end") for s in spans if is_int(s.get("token_end"))]
    index = mostly(st.sampled_from(ends), st.integers(-1, n)) if ends else st.integers(-1, n)
    relations = []
    for _ in range(draw(st.integers(0, 2))):
        relation = {"head": draw(index), "child": draw(index), "label": draw(mostly(labels))}
        relations.append(draw(maybe_drop_key(relation)))
    answers = st.sampled_from(["accept", "accept", "reject", "ignore"])
    answer = draw(mostly(answers, st.just("maybe")))
    task = {"tokens": tokens, "spans": spans, "relations": relations, "answer": answer}
    task = draw(maybe_drop_key(task))
    if draw(st.integers(0, 15)) == 0:  # a random value in a random field
        task[draw(st.sampled_from(["tokens", "spans", "relations", "answer"]))] = draw(json_values)
    return json.dumps(task)


@PROPERTY_SETTINGS
@given(st.lists(prodigy_lines(), max_size=3))
def test_prodigy_property(lines):
    def write(corpus: Path) -> Path:
        (corpus / "p.jsonl").write_text("\n".join(lines), encoding="utf8")
        return corpus / "p.jsonl"

    result = check_property("prodigy", write)
    if result is None:
        return
    docs, summary = result
    tasks = [json.loads(line) for line in lines if line.strip()]
    accepted = [t for t in tasks if t["answer"] == "accept"]
    assert len(docs) == len(accepted)
    assert sum(summary.skipped.values()) == len(tasks) - len(accepted)
    for task, doc in zip(accepted, docs):
        assert [t.text for t in doc] == [t["text"] for t in task["tokens"]]
        ents = [(s["token_start"], s["token_end"] + 1, s["label"]) for s in task.get("spans", [])]
        assert entity_tuples(doc) == list(dict.fromkeys(ents))
        for rel, source in zip(doc._.relations, task.get("relations", [])):
            got = (rel.head.end - 1, rel.tail.end - 1, rel.label)
            assert got == (source["head"], source["child"], source["label"])


semeval_words = st.lists(
    mostly(
        st.sampled_from([" ", "the", "cat", " .", '"', "'s", "Mr.", "é", "  "]),
        st.text(max_size=3),
    ),
    max_size=4,
).map("".join)
semeval_markers = st.sampled_from(["<e1>", "</e1>", "<e2>", "</e2>", "<e3>", "<e1", "e1>"])


@st.composite
def semeval_blocks(draw):
    pieces = [draw(semeval_words)]
    for marker in ("<e1>", "</e1>", "<e2>", "</e2>"):
        pieces += [draw(mostly(st.just(marker), st.just(""), odds=15)), draw(semeval_words)]
    if draw(st.integers(0, 5)) == 0:  # a stray marker somewhere
        pieces.insert(draw(st.integers(0, len(pieces))), draw(semeval_markers))
    sentence = "".join(pieces).replace("\n", " ").replace("\r", " ")
    label = draw(mostly(
        st.sampled_from(["Other", "Cause-Effect(e1,e2)", "Entity-Origin(e2,e1)"]),
        st.sampled_from(["Cause-Effect", "X(e1,e2", "", "(e1,e2)", "1\t\"x\""]),
    ))  # fmt: skip
    block = [f'{draw(st.integers(1, 99))}\t"{sentence}"', label]
    if draw(st.booleans()):
        block.append("Comment: " + draw(st.sampled_from(["", "<e1>x</e2>", "ok"])))
    return sentence, label, block


@PROPERTY_SETTINGS
@given(st.lists(semeval_blocks(), min_size=1, max_size=3), st.sampled_from(["\r\n", "\n"]))
def test_semeval_property(blocks, newline):
    def write(corpus: Path) -> Path:
        content = newline.join(newline.join(block) + newline for _, _, block in blocks)
        (corpus / "s.txt").write_bytes(content.encode("utf8"))
        return corpus / "s.txt"

    result = check_property("semeval", write)
    if result is None:
        return
    docs, _ = result
    assert len(docs) == len(blocks)
    for (sentence, label, _), doc in zip(blocks, docs):
        assert doc.text == re.sub(r"</?e[12]>", "", sentence)
        e1, e2 = (
            re.sub(r"</?e[12]>", "", re.search(f"<{e}>(.*)</{e}>", sentence).group(1)).strip()
            for e in ("e1", "e2")
        )
        texts = [s.text for s in doc.spans["entities"]]
        assert Counter(texts) == Counter([e1, e2]) or (e1 == e2 and texts == [e1])
        if label == "Other":
            assert doc._.relations == ()
        else:
            (rel,) = doc._.relations
            head, tail = (e1, e2) if "(e1,e2)" in label else (e2, e1)
            assert (rel.head.text, rel.tail.text, rel.label) == (head, tail, label.split("(")[0])


brat_texts = st.text(st.sampled_from("aaabbcé  .\n\r\t"), max_size=20)


@st.composite
def brat_documents(draw):
    text = draw(brat_texts)
    n = len(text)
    lines = []
    for i in range(draw(st.integers(0, 4))):
        start = draw(mostly(st.integers(0, max(n - 1, 0)), st.integers(0, n + 1)))
        end = draw(mostly(st.integers(start + 1, max(n, start + 1)), st.integers(0, n + 1)))
        fragment = f"{start} {end}"
        if draw(st.integers(0, 8)) == 0:
            fragment += f";{draw(st.integers(0, n))} {draw(st.integers(0, n))}"
        mention = text[start:end].replace("\n", " ").replace("\r", " ").replace("\t", " ")
        mention = draw(mostly(st.just(mention), st.text("xyz", max_size=3), odds=15))
        lines.append(f"T{i + 1}\t{draw(labels)} {fragment}\t{mention}")
    n_entities = len(lines)
    known = [f"T{i + 1}" for i in range(n_entities)] or ["T1"]
    ids = mostly(st.sampled_from(known), st.sampled_from(["E1", "T9"]))
    for i in range(draw(st.integers(0, 3))):
        lines.append(f"R{i + 1}\t{draw(labels)} Arg1:{draw(ids)} Arg2:{draw(ids)}")
    for _ in range(draw(st.integers(0, 2))):
        lines.append(draw(mostly(
            st.sampled_from(
                ["E1\tEv:T1", "A1\tNeg T1", "#1\tnote", "*\tEquiv T1 T2", "N1\tRef T1 W:1\tx", ""]
            ),
            st.sampled_from(["X1\tjunk", "R7\tbroken", "T\tP 1", " T5\tP 0 1\ta", "T8\tP 0 1;\ta"]),
            odds=4,
        )))  # fmt: skip
    lines = draw(st.permutations(lines))
    return text, lines


@PROPERTY_SETTINGS
@given(brat_documents())
def test_brat_property(document):
    text, lines = document

    def write(corpus: Path) -> Path:
        with open(corpus / "a.txt", "w", encoding="utf8", newline="") as file_:
            file_.write(text)
        (corpus / "a.ann").write_text("\n".join(lines), encoding="utf8")
        return corpus

    result = check_property("brat", write)
    if result is None:
        return
    (doc,), _ = result
    assert doc.text == text
    expected = set()
    for line in lines:
        match = re.fullmatch(r"T\d+\t(\w+) (\d+) (\d+)\t.*", line)
        if match:
            start, end = int(match.group(2)), int(match.group(3))
            while text[start].isspace():
                start += 1
            while text[end - 1].isspace():
                end -= 1
            expected.add((start, end, match.group(1)))
    spans = doc.spans["entities"]
    assert sorted((s.start_char, s.end_char, s.label_) for s in spans) == sorted(expected)
    assert len(spans) == len(expected)


@st.composite
def texts_with_entities(draw):
    any_char = st.characters(blacklist_categories=("Cs",))
    text = draw(st.text(any_char | st.sampled_from(list(" \n\t.,'-()\"$%")), max_size=40))
    entities = []
    for _ in range(draw(st.integers(0, 5)) if text else 0):
        start = draw(st.integers(0, len(text) - 1))
        start, end = trim_entity(text, start, draw(st.integers(start + 1, len(text))))
        if start < end:
            entities.append((start, end, "X"))
    return text, entities


@PROPERTY_SETTINGS
@given(texts_with_entities())
def test_doc_from_text_property(case):
    """Any text, any entities: the Doc keeps the text and every entity is whole tokens."""
    text, entities = case
    doc, token_entities = doc_from_text(blank_nlp(), text, entities, Path("x.txt"), "")
    assert doc.text == text
    for (start, end, _), (token_start, token_end, _) in zip(entities, token_entities):
        span = doc[token_start:token_end]
        assert (span.start_char, span.end_char) == (start, end)


# --- SpERT *_types.json: symmetric relation labels -------------------------------------------


def spert_types(**symmetric: bool) -> str:
    """A SpERT types file with one entity type and the given relation types."""
    relations = {
        label: {"short": label, "verbose": label, "symmetric": flag}
        for label, flag in symmetric.items()
    }
    return json.dumps({"entities": {"P": {"short": "P", "verbose": "Person"}}, "relations": relations})


def test_conll04_types_file_is_read(conll04, datasets_dir):
    """CoNLL04 ships conll04_types.json beside the splits: found, and all 5 labels directed."""
    types = json.loads((datasets_dir / "conll04" / "conll04_types.json").read_text())
    for _, _, summary, _ in conll04.values():
        assert summary.types_path == str(datasets_dir / "conll04" / "conll04_types.json")
        assert summary.symmetric_labels == []
        assert set(summary.relation_labels) == set(types["relations"])


# Two records; in the second, "Married" has its later span as head and "Met" (directed) too.
SYMMETRIC_RECORDS = [
    {"tokens": ["Ada", "married", "Bob"],
     "entities": [{"type": "P", "start": 0, "end": 1}, {"type": "P", "start": 2, "end": 3}],
     "relations": [{"type": "Married", "head": 0, "tail": 1}]},
    {"tokens": ["Cy", "met", "and", "married", "Di"],
     "entities": [{"type": "P", "start": 0, "end": 1}, {"type": "P", "start": 4, "end": 5}],
     "relations": [{"type": "Married", "head": 1, "tail": 0}, {"type": "Met", "head": 1, "tail": 0},
                   {"type": "Knows", "head": 0, "tail": 1}]},
]  # fmt: skip


def test_spert_types_beside_input(tmp_path):
    """X_types.json beside X_train.json: symmetric labels recorded, printed with the override,
    written beside the DocBin; symmetric relations get the earlier span as head."""
    write_files(tmp_path / "in", {
        "toy_train.json": json.dumps(SYMMETRIC_RECORDS),
        "toy_types.json": spert_types(Married=True, Met=False),
    })  # fmt: skip
    output = tmp_path / "out" / "train.spacy"
    result = CliRunner().invoke(
        app, ["convert", str(tmp_path / "in" / "toy_train.json"), str(output), "-f", "spert"]
    )
    assert result.exit_code == 0, result.output
    printed = " ".join(result.output.split())
    assert f"Symmetric relation labels ({tmp_path / 'in' / 'toy_types.json'}): Married" in printed
    override = "--components.relation_extractor.symmetric_labels \'[\"Married\"]\'"
    assert override in printed
    assert "Changed 1: symmetric relations (per the types file) with the later span" in printed
    assert "relation labels not in toy_types.json (treated as directed): Knows: 1" in printed
    # The printed override, as a shell passes it, is one spaCy accepts and means ["Married"].
    from spacy.cli._util import parse_config_overrides

    assert parse_config_overrides(shlex.split(override)) == {
        "components.relation_extractor.symmetric_labels": ["Married"]
    }
    sidecar = json.loads((tmp_path / "out" / "train.types.json").read_text())
    assert sidecar["symmetric_labels"] == ["Married"]
    assert sidecar["relation_labels"] == ["Knows", "Married", "Met"]
    assert sidecar["override"] == override
    docs = read_docbin(output)
    # "Married" (symmetric) is swapped to Cy -> Di; "Met" (directed) and "Knows" stay as given.
    assert relation_tuples(docs[0]) == [("Ada", "Bob", "Married")]
    assert relation_tuples(docs[1]) == [("Cy", "Di", "Married"), ("Di", "Cy", "Met"),
                                        ("Cy", "Di", "Knows")]  # fmt: skip


def test_spert_types_given_and_absent(tmp_path):
    """--types PATH elsewhere is read; no types file: nothing recorded, a stale sidecar removed;
    --types with another format, or a missing --types file, is an error naming the file."""
    write_files(tmp_path / "in", {"d.json": json.dumps(SYMMETRIC_RECORDS)})
    write_files(tmp_path / "meta", {"types.json": spert_types(Married=False, Met=True, Knows=False)})
    output = tmp_path / "o.spacy"
    summary = convert(tmp_path / "in" / "d.json", output, "spert",
                      types_path=tmp_path / "meta" / "types.json")  # fmt: skip
    assert summary.symmetric_labels == ["Met"] and not summary.notes
    assert summary.changed == Counter({SWAPPED: 1})
    assert relation_tuples(read_docbin(output)[1])[1] == ("Cy", "Di", "Met")
    assert (tmp_path / "o.types.json").exists()
    summary = convert(tmp_path / "in" / "d.json", output, "spert")
    assert summary.types_path is None and summary.symmetric_labels == []
    assert not (tmp_path / "o.types.json").exists()  # no stale record of the earlier types
    assert relation_tuples(read_docbin(output)[1])[0] == ("Di", "Cy", "Married")  # as given
    with pytest.raises(ConversionError, match="no such types file"):
        convert(tmp_path / "in" / "d.json", output, "spert", types_path=tmp_path / "nope.json")
    write_files(tmp_path / "p", {"p.jsonl": prodigy_task()})
    with pytest.raises(ConversionError, match="spert format only, not 'prodigy'"):
        convert(tmp_path / "p" / "p.jsonl", output, "prodigy",
                types_path=tmp_path / "meta" / "types.json")  # fmt: skip
