"""Distillation (`spacy_ie distill`, `spacy_ie.training.distill`): the teacher's annotations,
the student's training and dev sets, reuse, gold data, and the command's errors."""
import json

import pytest
import spacy
from spacy.tokens import DocBin, Span
from typer.testing import CliRunner

from spacy_ie.cli import app
from spacy_ie.training.distill import TEACHER_DOCS, complete_entities, distill, gold_copies
from conftest import REPO_ROOT, SMALL_OVERRIDES, stderr_has

CONFIG = REPO_ROOT / "configs" / "ner_rel_tok2vec.cfg"
STUDENT_OVERRIDES = {**SMALL_OVERRIDES, "training.max_steps": 2, "training.eval_frequency": 1}


def relation_tuples(doc):
    return [(r.head.start_char, r.head.end_char, r.tail.start_char, r.tail.end_char, r.label)
            for r in doc._.relations]  # fmt: skip


@pytest.fixture(scope="module")
def teacher(trained_pipeline):
    return spacy.load(trained_pipeline)


@pytest.fixture(scope="module")
def raw_text(tmp_path_factory, demo_corpus, teacher):
    """The first 20 texts of the demo corpus's train split, one per line."""
    texts = [doc.text for doc in DocBin().from_disk(demo_corpus["train"]).get_docs(teacher.vocab)]
    path = tmp_path_factory.mktemp("raw") / "raw.txt"
    path.write_text("\n".join(texts[:20]) + "\n", encoding="utf8")
    return path


def test_complete_entities_from_a_span_group_and_from_ents():
    nlp = spacy.blank("en")
    doc = nlp("Ada Lovelace met Charles Babbage in London")
    doc.spans["entities"] = [Span(doc, 0, 2, "PER"), Span(doc, 1, 2, "PER"), Span(doc, 6, 7, "LOC")]
    complete_entities(doc)  # a spancat teacher: overlaps dropped, the longest kept
    assert [(e.start, e.end, e.label_) for e in doc.ents] == [(0, 2, "PER"), (6, 7, "LOC")]
    assert len(doc.spans["entities"]) == 3
    doc = nlp("Ada Lovelace met Charles Babbage")
    doc.ents = [Span(doc, 3, 5, "PER")]
    complete_entities(doc, "ents_copy")  # an ner teacher: the group is doc.ents
    assert [(s.start, s.end, s.label_) for s in doc.spans["ents_copy"]] == [(3, 5, "PER")]
    empty = complete_entities(nlp("nothing here"))
    assert not empty.ents and not len(empty.spans.get("entities", []))


def test_distill_trains_a_student_on_the_teachers_annotations(tmp_path, trained_pipeline, teacher, raw_text):
    out = tmp_path / "distilled"
    summary = distill(trained_pipeline, raw_text, CONFIG, out, overrides=STUDENT_OVERRIDES,
                      heldout_every=4, show_progress=False)  # fmt: skip
    texts = raw_text.read_text(encoding="utf8").splitlines()
    annotated = list(DocBin().from_disk(out / TEACHER_DOCS).get_docs(teacher.vocab))
    assert [d.text for d in annotated] == texts
    # the teacher's own entities and relations, in both entity forms
    for doc, expected in zip(annotated, teacher.pipe(texts)):
        assert [(e.start, e.end, e.label_) for e in doc.ents] == [(e.start, e.end, e.label_) for e in expected.ents]
        assert [(s.start, s.end) for s in doc.spans["entities"]] == [(e.start, e.end) for e in doc.ents]
        assert relation_tuples(doc) == relation_tuples(expected)
        assert set(doc.user_data) <= {("._.", "relations", None, None)}  # no other user data
    assert summary.n_annotated == 20 and summary.n_relations == sum(len(d._.relations) for d in annotated)
    assert summary.n_relations > 0
    # without a gold dev set: every 4th teacher document is the dev set, the rest train
    dev = [d.text for d in DocBin().from_disk(out / "dev.spacy").get_docs(teacher.vocab)]
    train = [d.text for d in DocBin().from_disk(out / "train.spacy").get_docs(teacher.vocab)]
    assert dev == texts[3::4] and train == [t for i, t in enumerate(texts) if i % 4 != 3]
    assert (summary.dev_source, summary.n_dev, summary.n_teacher_train, summary.n_gold_train) == ("teacher", 5, 15, 0)
    assert json.loads((out / "distill.json").read_text())["n_dev"] == 5
    student = spacy.load(out / "model-best")
    assert student.pipe_names == ["tok2vec", "ner", "relation_extractor"]
    # a re-run reuses the annotations
    again = distill(trained_pipeline, raw_text, CONFIG, out, overrides=STUDENT_OVERRIDES,
                    heldout_every=4, show_progress=False)  # fmt: skip
    assert again.reused_annotations and again.n_relations == summary.n_relations


@pytest.mark.parametrize("gold_share", [0.0, 0.5])
def test_distill_with_gold_train_and_dev(tmp_path, trained_pipeline, teacher, raw_text, demo_corpus, gold_share):
    gold = list(DocBin().from_disk(demo_corpus["train"]).get_docs(teacher.vocab))[:6]
    gold_path = tmp_path / "gold.spacy"
    DocBin(docs=gold, store_user_data=True).to_disk(gold_path)
    out = tmp_path / "distilled"
    overrides = {**STUDENT_OVERRIDES, "paths.train": str(gold_path), "paths.dev": str(demo_corpus["dev"])}
    summary = distill(trained_pipeline, raw_text, CONFIG, out, overrides=overrides, gold_share=gold_share,
                      show_progress=False)  # fmt: skip
    assert not (out / "dev.spacy").exists()
    assert summary.dev_source == "gold" and summary.n_dev > 0
    # the six gold texts are also raw lines: their gold Docs replace the teacher's
    train = list(DocBin().from_disk(out / "train.spacy").get_docs(teacher.vocab))
    assert (summary.n_teacher_train, summary.n_gold_train) == (14, 6)
    assert len({d.text for d in train}) == 20
    teacher_tokens = sum(len(d) for d in train[:14])
    gold_tokens = sum(len(d) for d in gold)
    # the gold Docs follow the teacher's, as many times as it takes to reach the share
    assert summary.gold_copies == (1 if gold_share == 0 else gold_copies(teacher_tokens, gold_tokens, gold_share))
    assert (summary.gold_copies > 1) == (gold_share > 0)
    assert len(train) == 14 + 6 * summary.gold_copies
    for copy in range(summary.gold_copies):
        repeated = train[14 + 6 * copy : 20 + 6 * copy]
        assert [d.text for d in repeated] == [d.text for d in gold]
        assert [relation_tuples(d) for d in repeated] == [relation_tuples(d) for d in gold]
    share = summary.gold_copies * gold_tokens / (summary.gold_copies * gold_tokens + teacher_tokens)
    assert share >= gold_share


def test_gold_copies():
    assert gold_copies(900, 100, 0.5) == 9  # 900 / 1800
    assert gold_copies(901, 100, 0.5) == 10
    assert gold_copies(100, 300, 0.5) == 1  # already above the share: once
    assert gold_copies(900, 100, 0.75) == 27
    assert gold_copies(900, 100, 0.0) == gold_copies(900, 0, 0.5) == 1
    for bad in (-0.1, 1.0, 1.5):
        with pytest.raises(ValueError, match="gold_share"):
            gold_copies(900, 100, bad)


def test_distill_errors(tmp_path, trained_pipeline):
    empty = tmp_path / "empty.txt"
    empty.write_text("", encoding="utf8")
    with pytest.raises(ValueError, match="no documents"):
        distill(trained_pipeline, empty, CONFIG, tmp_path / "a", show_progress=False)
    nothing = tmp_path / "nothing.txt"
    nothing.write_text("ok\n.\n", encoding="utf8")
    with pytest.raises(ValueError, match="found no relation"):
        distill(trained_pipeline, nothing, CONFIG, tmp_path / "b", show_progress=False)
    with pytest.raises(ValueError, match="heldout_every"):
        distill(trained_pipeline, nothing, CONFIG, tmp_path / "c", heldout_every=1)
    with pytest.raises(ValueError, match="gold_share"):
        distill(trained_pipeline, nothing, CONFIG, tmp_path / "d", gold_share=1.0)
    with pytest.raises(ValueError, match="soft_spans"):
        distill(trained_pipeline, nothing, CONFIG, tmp_path / "e", soft_spans=1.5)
    # soft span targets need a spancat_singlelabel in the student config and in the teacher
    with pytest.raises(ValueError, match="ner_rel_tok2vec.cfg: soft span targets need a student"):
        distill(trained_pipeline, nothing, CONFIG, tmp_path / "f", soft_spans=0.5)
    spancat_student = REPO_ROOT / "configs" / "spancat_rel_sourced.cfg"
    with pytest.raises(ValueError, match="need a teacher with a spancat_singlelabel"):
        distill(trained_pipeline, nothing, spancat_student, tmp_path / "g", soft_spans=0.5, show_progress=False)


def test_distill_cli_errors(tmp_path, trained_pipeline, raw_text):
    runner = CliRunner()
    cases = [
        ([str(tmp_path / "no_model"), str(raw_text), str(CONFIG)], "No such pipeline"),
        ([str(trained_pipeline), str(raw_text), str(tmp_path / "no.cfg")], "No such config"),
        ([str(trained_pipeline), str(tmp_path / "raw.csv"), str(CONFIG)], "Cannot read the raw text"),
        ([str(trained_pipeline), str(raw_text), str(CONFIG), "--paths.dev", str(tmp_path / "dev.spacy")],
         "No such file for --paths.dev"),
    ]  # fmt: skip
    for args, message in cases:
        result = runner.invoke(app, ["distill", *args, "-o", str(tmp_path / "out")])
        assert result.exit_code == 1, result.output
        assert stderr_has(result, message), result.stderr
