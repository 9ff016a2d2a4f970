"""Sourcing a trained `ner` into a corpus with other labels (spacy_ie.training.transfer and
configs/ner_rel_sourced.cfg): the label mapping keeps what the source knows.

The source pipeline is built in the test (tok2vec + ner trained briefly on the demo corpus, with
the demo's labels PERSON, LOC, ORG, DATE); no pretrained package is needed.
"""
import numpy
import pytest
import spacy
from spacy.tokens import DocBin
from spacy.training import Example
from spacy.util import minibatch
from thinc.api import Config

from conftest import REPO_ROOT, SMALL_OVERRIDES, train_briefly
from spacy_ie.training.transfer import SWITCHED_OFF_BIAS, copy_layer_weights, map_entity_labels

SOURCED_CONFIG = REPO_ROOT / "configs" / "ner_rel_sourced.cfg"
# A 1:1 part (PERSON, ORG), a many-to-one part (LOC, DATE -> Place) and nothing for nothing.
LABEL_MAP = {"PERSON": "Per", "ORG": "Organisation", "LOC": "Place", "DATE": "Place"}


@pytest.fixture(scope="module")
def source_pipeline(tmp_path_factory, demo_corpus):
    """tok2vec (width 48) + ner trained on the demo corpus for a few epochs, saved to disk."""
    tok2vec_overrides = {k: v for k, v in SMALL_OVERRIDES.items() if k.startswith("components.tok2vec")}
    return train_briefly(
        REPO_ROOT / "configs" / "ner_conll2003_tok2vec.cfg", tok2vec_overrides, demo_corpus["train"],
        tmp_path_factory.mktemp("source"), epochs=8,
    )


def _entities(nlp, texts):
    return [[(e.start, e.end, e.label_) for e in doc.ents] for doc in nlp.pipe(texts)]


def _texts(demo_corpus, nlp):
    return [doc.text for doc in DocBin().from_disk(demo_corpus["dev"]).get_docs(nlp.vocab)]


def test_one_to_one_mapping_keeps_every_entity(source_pipeline, demo_corpus):
    nlp = spacy.load(source_pipeline)
    texts = _texts(demo_corpus, nlp)
    before = _entities(nlp, texts)
    assert sum(map(len, before)) > 20, "the source pipeline should find entities"
    one_to_one = {"PERSON": "Per", "ORG": "Organisation", "LOC": "Place", "DATE": "When"}
    map_entity_labels(nlp.get_pipe("ner"), one_to_one)
    after = _entities(nlp, texts)
    assert after == [[(s, e, one_to_one[label]) for s, e, label in doc] for doc in before]


def test_many_to_one_target_starts_from_the_first_source(source_pipeline, demo_corpus):
    nlp = spacy.load(source_pipeline)
    texts = _texts(demo_corpus, nlp)
    before = _entities(nlp, texts)
    ner = nlp.get_pipe("ner")
    sources = map_entity_labels(ner, LABEL_MAP)
    assert sources == {"Per": ["PERSON"], "Organisation": ["ORG"], "Place": ["LOC", "DATE"]}
    after = _entities(nlp, texts)
    predicted = {label for doc in after for _, _, label in doc}
    assert predicted <= {"Per", "Organisation", "Place"}
    # PERSON and ORG keep their weights exactly, so their entities are kept wherever the
    # switched-off DATE did not win the same tokens.
    kept = [[(s, e, LABEL_MAP[label]) for s, e, label in doc if label in ("PERSON", "ORG")] for doc in before]
    found = sum(len(set(k) & set(a)) for k, a in zip(kept, after))
    assert found >= 0.9 * sum(map(len, kept))
    # The source labels are switched off: their B- bias is the switched-off bias.
    upper = ner.model.get_ref("upper")
    names = [ner.moves.get_class_name(i) for i in range(ner.moves.n_moves)]
    for label in LABEL_MAP:
        assert upper.get_param("b")[names.index(f"B-{label}")] == SWITCHED_OFF_BIAS
        assert not numpy.any(upper.get_param("W")[names.index(f"U-{label}")])
    assert not ner.model.attrs["unseen_classes"] & {names.index(f"B-{t}") for t in sources}


def test_unmapped_labels_are_never_predicted(source_pipeline, demo_corpus):
    nlp = spacy.load(source_pipeline)
    texts = _texts(demo_corpus, nlp)
    map_entity_labels(nlp.get_pipe("ner"), {"PERSON": "Per"})
    assert {label for doc in _entities(nlp, texts) for _, _, label in doc} <= {"Per"}


def test_a_target_that_is_a_source_label_takes_the_first_source(source_pipeline, demo_corpus):
    """OntoNotes -> CoNLL-2003 style: LOC stays a label but starts from DATE's weights when
    DATE is listed first for it, and DATE itself is switched off."""
    nlp = spacy.load(source_pipeline)
    texts = _texts(demo_corpus, nlp)
    before = _entities(nlp, texts)
    map_entity_labels(nlp.get_pipe("ner"), {"DATE": "LOC", "LOC": "LOC", "PERSON": "PERSON", "ORG": "ORG"})
    after = _entities(nlp, texts)
    dates = {(i, s, e) for i, doc in enumerate(before) for s, e, label in doc if label == "DATE"}
    found = {(i, s, e) for i, doc in enumerate(after) for s, e, label in doc if label == "LOC"}
    assert dates and len(dates & found) >= 0.9 * len(dates)
    assert "DATE" not in {label for doc in after for _, _, label in doc}


def test_unknown_source_label_is_an_error(source_pipeline):
    nlp = spacy.load(source_pipeline)
    with pytest.raises(ValueError, match="GPE"):
        map_entity_labels(nlp.get_pipe("ner"), {"GPE": "Loc"})


def test_sourced_config_starts_from_the_mapped_source(source_pipeline, demo_corpus):
    """configs/ner_rel_sourced.cfg through spaCy's own `init_nlp` (what `spacy train` runs
    first): after initialization the pipeline finds the source's entities under the mapped
    labels, and it trains and saves."""
    from spacy.training.initialize import init_nlp

    overrides = {
        "paths.source": str(source_pipeline),
        "paths.train": str(demo_corpus["train"]),
        "paths.dev": str(demo_corpus["dev"]),
        "components.relation_extractor.model.tok2vec.width": 48,
        "components.relation_extractor.model.hidden_width": 48,
        "initialize.after_init.label_map": {"PERSON": "Per", "ORG": "Organisation", "LOC": "Place", "DATE": "When"},
    }
    config = Config().from_disk(SOURCED_CONFIG, overrides=overrides)
    nlp = init_nlp(config)
    source = spacy.load(source_pipeline)
    texts = _texts(demo_corpus, nlp)
    mapping = overrides["initialize.after_init.label_map"]
    expected = [[(s, e, mapping[label]) for s, e, label in doc] for doc in _entities(source, texts)]
    assert _entities(nlp, texts) == expected
    docs = DocBin().from_disk(demo_corpus["train"]).get_docs(nlp.vocab)
    examples = [Example(nlp.make_doc(doc.text), doc) for doc in docs]
    optimizer = nlp.create_optimizer()
    losses = {}
    for batch in minibatch(examples[:64], 16):
        nlp.update(batch, sgd=optimizer, losses=losses)
    assert losses["relation_extractor"] > 0 and losses["ner"] > 0


def _cnn(width: int) -> dict:
    return {"@architectures": "spacy.HashEmbedCNN.v2", "width": width, "depth": 2, "embed_size": 500,
            "window_size": 1, "maxout_pieces": 3, "subword_features": True, "pretrained_vectors": None}


def _tok2vec_pipeline(width: int):
    nlp = spacy.blank("en")
    nlp.add_pipe("tok2vec", config={"model": _cnn(width)})
    nlp.initialize()
    return nlp


def test_copy_layer_weights_starts_a_shared_tok2vec_from_a_components_own_encoder():
    """The `tok2vec` ref of a `ner` with its own encoder is that encoder followed by a Linear
    projection; the encoder alone is copied into a tok2vec component of the same shape, which
    then computes the same vectors."""
    source = spacy.blank("en")
    ner = source.add_pipe("ner", config={"model": {
        "@architectures": "spacy.TransitionBasedParser.v2", "state_type": "ner", "extra_state_tokens": False,
        "hidden_width": 16, "maxout_pieces": 2, "use_upper": True, "nO": None, "tok2vec": _cnn(32)}})
    ner.add_label("X")
    source.initialize()
    target = _tok2vec_pipeline(32)
    docs = [target.make_doc("Ada Lovelace worked with Charles Babbage in London .")]
    encoder = ner.model.get_ref("tok2vec").layers[0]
    assert not numpy.allclose(target.get_pipe("tok2vec").model.predict(docs)[0], encoder.predict(docs)[0])
    copy_layer_weights(source, "ner", "tok2vec", target, "tok2vec")
    numpy.testing.assert_array_equal(target.get_pipe("tok2vec").model.predict(docs)[0], encoder.predict(docs)[0])
    with pytest.raises(ValueError, match="'ner' \\(layer 'tok2vec'\\) into 'tok2vec'"):
        copy_layer_weights(source, "ner", "tok2vec", _tok2vec_pipeline(16), "tok2vec")
