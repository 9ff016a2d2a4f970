"""benchmarks/relation_speed.py: its training timer really trains the relation extractor."""
import numpy
import pytest
import spacy
import typer
from spacy.tokens import DocBin

from conftest import load_benchmark

relation_speed = load_benchmark("relation_speed")


def _weights(nlp, name):
    model = nlp.get_pipe(name).model
    return numpy.concatenate([layer.get_param(p).ravel() for layer in model.walk()
                              for p in layer.param_names if layer.has_param(p)])


def test_measure_training_updates_the_relation_extractor(trained_pipeline, demo_corpus):
    nlp = spacy.load(trained_pipeline)
    # as `spacy train` saves it: the schedule refers to another setting by a variable
    nlp.config["training"]["optimizer"]["learn_rate"] = "${training.dropout}"
    docs = list(DocBin().from_disk(demo_corpus["train"]).get_docs(nlp.vocab))
    assert any(doc._.relations for doc in docs)
    before = _weights(nlp, "relation_extractor")
    seconds = relation_speed.measure_training(nlp, docs, batch_size=4, n_batches=2,
                                              keep=["tok2vec", "relation_extractor"])
    assert seconds > 0
    assert not numpy.array_equal(before, _weights(nlp, "relation_extractor"))


def test_measure_training_needs_enough_docs(trained_pipeline, demo_corpus):
    nlp = spacy.load(trained_pipeline)
    docs = list(DocBin().from_disk(demo_corpus["train"]).get_docs(nlp.vocab))[:4]
    with pytest.raises(typer.BadParameter, match="need 3"):
        relation_speed.measure_training(nlp, docs, batch_size=4, n_batches=2, keep=["relation_extractor"])
