"""Training the relation extractor on predicted as well as gold entities: the candidates
(`train_on_predicted`), the reader (`RelationCorpus.v1`'s `predicted_entities`) and the k-fold
predictions (`spacy_ie cross-annotate`)."""
import numpy
import pytest
import spacy
from spacy.tokens import Doc, DocBin, Span
from spacy.training import Example
from spacy.cli.train import train as spacy_train
from spacy.util import registry
from thinc.api import fix_random_seed

from spacy_ie.training.cross_annotate import cross_annotate, fold_of
from test_relation_extractor import SMALL_MODEL, make_examples
from conftest import DEMO_DIR, REPO_ROOT, SMALL_OVERRIDES, annotated_doc

TEXT = "Alice works for Acme in Paris."
ENTS = [("Alice", "PER"), ("Acme", "ORG"), ("Paris", "LOC")]
RELS = [(0, 1, "WORKS_FOR"), (1, 2, "LOCATED_IN")]


def example_with_predicted(nlp):
    """Gold: Alice PER, Acme ORG, Paris LOC. Predicted: Alice PER (right), "Acme in" ORG
    (mis-bounded), "works" ORG (spurious), Paris ORG (gold boundaries, wrong label)."""
    reference = annotated_doc(nlp, TEXT, ENTS, RELS)
    predicted = nlp.make_doc(TEXT)
    predicted.ents = [
        predicted.char_span(0, 5, "PER"),
        predicted.char_span(6, 11, "ORG"),
        predicted.char_span(16, 23, "ORG"),
        predicted.char_span(24, 29, "ORG"),
    ]
    return Example(predicted, reference)


@pytest.mark.parametrize("train_on_predicted", [False, True])
def test_training_candidates_add_predicted_spans_as_negatives(train_on_predicted):
    fix_random_seed(0)
    nlp = spacy.blank("en")
    rel = nlp.add_pipe(
        "relation_extractor", config={"model": SMALL_MODEL, "train_on_predicted": train_on_predicted}
    )
    eg = example_with_predicted(nlp)
    nlp.initialize(lambda: [eg])
    candidates = rel.training_candidates([eg])
    texts = sorted(eg.predicted[s:e].text for s, e in candidates.spans.tolist())
    expected = ["Acme", "Alice", "Paris"] + (["Acme in", "works"] if train_on_predicted else [])
    assert texts == sorted(expected)
    truths = rel._truths([eg], candidates)
    # the two gold relations, and no positive on a pair with a predicted-only argument
    assert truths.sum() == 2
    gold_rows = {(0, 5), (16, 20), (24, 29)}
    chars = candidates.span_chars.tolist()
    for row, (head, tail) in enumerate(candidates.pairs.tolist()):
        if truths[row].any():
            assert tuple(chars[head]) in gold_rows and tuple(chars[tail]) in gold_rows


def test_train_on_predicted_is_saved_and_trains(tmp_path):
    fix_random_seed(0)
    nlp = spacy.blank("en")
    rel = nlp.add_pipe("relation_extractor", config={"model": SMALL_MODEL, "train_on_predicted": True})
    examples = make_examples(nlp) + [example_with_predicted(nlp)]
    optimizer = nlp.initialize(lambda: examples)
    losses = [nlp.update(examples, sgd=optimizer, losses={})["relation_extractor"] for _ in range(30)]
    assert losses[-1] < losses[0] / 2
    nlp.to_disk(tmp_path / "model")
    assert spacy.load(tmp_path / "model").get_pipe("relation_extractor").cfg["train_on_predicted"] is True
    assert rel.cfg["train_on_predicted"] is True


def write_docbin(path, docs):
    DocBin(docs=docs, store_user_data=True).to_disk(path)
    return path


def test_relation_corpus_reads_predicted_entities(tmp_path):
    nlp = spacy.blank("en")
    gold = [annotated_doc(nlp, TEXT, ENTS, RELS), annotated_doc(nlp, "Bob met Carol.", [("Bob", "PER")], [])]
    predicted = [nlp.make_doc("Bob met Carol."), nlp.make_doc(TEXT)]  # another order
    predicted[0].ents = [predicted[0].char_span(8, 13, "PER")]
    predicted[1].ents = [predicted[1].char_span(16, 23, "ORG")]
    reader = registry.readers.get("spacy_ie.RelationCorpus.v1")(
        write_docbin(tmp_path / "gold.spacy", gold),
        predicted_entities=write_docbin(tmp_path / "predicted.spacy", predicted),
    )
    for _ in range(2):  # a second epoch finds the Docs again
        examples = list(reader(nlp))
        assert [[(e.text, e.label_) for e in eg.predicted.ents] for eg in examples] == [
            [("Acme in", "ORG")],
            [("Carol", "PER")],
        ]
        assert [len(eg.reference._.relations) for eg in examples] == [2, 0]


def test_relation_corpus_predicted_entities_errors(tmp_path):
    nlp = spacy.blank("en")
    gold = write_docbin(tmp_path / "gold.spacy", [annotated_doc(nlp, TEXT, ENTS, RELS)])
    create = registry.readers.get("spacy_ie.RelationCorpus.v1")
    with pytest.raises(ValueError, match="not both"):
        create(gold, gold_entities=True, predicted_entities=gold)
    other = write_docbin(tmp_path / "other.spacy", [nlp.make_doc("Something else.")])
    with pytest.raises(ValueError, match="other.spacy: no Doc with the text"):
        list(create(gold, predicted_entities=other)(nlp))
    # the same text in other tokens: "Par" is no span of the example's tokens
    words = ["Alice", "works", "for", "Acme", "in", "Par", "is", "."]
    retokenized = Doc(nlp.vocab, words=words, spaces=[True] * 5 + [False] * 3)
    retokenized.ents = [Span(retokenized, 5, 6, "LOC")]
    assert retokenized.text == TEXT
    bad = write_docbin(tmp_path / "bad.spacy", [retokenized])
    with pytest.raises(ValueError, match="bad.spacy: the predicted span 'Par'.*token boundaries"):
        list(create(gold, predicted_entities=bad)(nlp))


def test_fold_of_balances_the_folds():
    counts = numpy.bincount([fold_of(i, 3) for i in range(10)])
    assert counts.tolist() == [4, 3, 3]


def test_cross_annotate_predicts_every_doc_with_a_model_that_did_not_see_it(tmp_path, demo_corpus):
    nlp = spacy.blank("en")
    train = list(DocBin().from_disk(demo_corpus["train"]).get_docs(nlp.vocab))[:24]
    train_path = write_docbin(tmp_path / "train.spacy", train)
    overrides = {
        **SMALL_OVERRIDES,
        "paths.dev": str(demo_corpus["dev"]),
        "training.max_steps": 4,
        "training.eval_frequency": 2,
    }
    output = tmp_path / "predicted.spacy"
    config = REPO_ROOT / "configs" / "ner_rel_tok2vec.cfg"
    scores = cross_annotate(config, train_path, output, tmp_path / "folds", folds=2, overrides=overrides)
    assert len(scores) == 2 and all(0.0 <= f <= 1.0 for f in scores)
    predicted = list(DocBin().from_disk(output).get_docs(nlp.vocab))
    assert [d.text for d in predicted] == [d.text for d in train]
    assert [[t.text for t in d] for d in predicted] == [[t.text for t in d] for d in train]
    for k in range(2):
        fold = tmp_path / "folds" / f"fold_{k}"
        held = [d.text for d in DocBin().from_disk(fold / "heldout.spacy").get_docs(nlp.vocab)]
        seen = [d.text for d in DocBin().from_disk(fold / "train.spacy").get_docs(nlp.vocab)]
        assert held == [d.text for i, d in enumerate(train) if i % 2 == k]
        assert not set(held) & set(seen)
        assert (fold / "model-best").is_dir()
    # a second run reuses the folds' models and writes the same predictions
    again = tmp_path / "again.spacy"
    assert cross_annotate(config, train_path, again, tmp_path / "folds", folds=2, overrides=overrides) == scores
    ents = lambda path: [[(e.start, e.end, e.label_) for e in d.ents] for d in DocBin().from_disk(path).get_docs(nlp.vocab)]
    assert ents(again) == ents(output)
    # and `spacy train` trains a relation extractor on them
    spacy_train(
        REPO_ROOT / "configs" / "rel_tok2vec_gold.cfg",
        tmp_path / "rel",
        overrides={
            "paths.train": str(train_path),
            "paths.dev": str(demo_corpus["dev"]),
            "corpora.train.gold_entities": False,
            "corpora.train.predicted_entities": str(output),
            "components.relation_extractor.train_on_predicted": True,
            "components.tok2vec.model.encode.width": 32,
            "components.relation_extractor.model.hidden_width": 32,
            "training.max_steps": 2,
            "training.eval_frequency": 1,
        },
    )
    rel = spacy.load(tmp_path / "rel" / "model-last").get_pipe("relation_extractor")
    assert rel.cfg["train_on_predicted"] is True and rel.labels


def test_cross_annotate_errors(tmp_path):
    nlp = spacy.blank("en")
    path = write_docbin(tmp_path / "train.spacy", [nlp.make_doc("One."), nlp.make_doc("Two.")])
    with pytest.raises(ValueError, match="at least 2 folds"):
        cross_annotate("config.cfg", path, tmp_path / "out.spacy", tmp_path, folds=1)
    with pytest.raises(ValueError, match="2 Docs, fewer than the 3 folds"):
        cross_annotate("config.cfg", path, tmp_path / "out.spacy", tmp_path, folds=3)


def test_cross_annotate_cli_names_the_bad_input(tmp_path):
    from typer.testing import CliRunner

    from spacy_ie.cli import app

    nlp = spacy.blank("en")
    path = write_docbin(tmp_path / "train.spacy", [nlp.make_doc("One.")])
    config = REPO_ROOT / "configs" / "ner_rel_tok2vec.cfg"
    missing = CliRunner().invoke(app, ["cross-annotate", str(tmp_path / "nope.cfg"), str(path), str(tmp_path / "o.spacy")])
    assert missing.exit_code == 1 and "No such file" in missing.output and "nope.cfg" in missing.output
    few = CliRunner().invoke(app, ["cross-annotate", str(config), str(path), str(tmp_path / "o.spacy"), "--folds", "2"])
    assert few.exit_code == 1 and "1 Docs, fewer than the 2 folds" in " ".join(few.output.split())
