"""`spacy pretrain` with configs/ner_rel_tok2vec.cfg, and the raw text it is run on."""
import json

import numpy
import spacy
import srsly
from spacy.tokens import DocBin
from spacy.training.initialize import init_nlp
from spacy.training.pretrain import pretrain
from thinc.api import Config

from conftest import REPO_ROOT, SMALL_OVERRIDES

from spacy_ie.datasets import pretrain_text as prepare_pretrain_text


def test_conll2003_sentences_keep_the_tokens_and_drop_docstart(tmp_path):
    path = tmp_path / "train.txt"
    path.write_text(
        "-DOCSTART- -X- -X- O\n\nEU NNP B-NP B-ORG\nrejects VBZ B-VP O\n. . O O\n\n"
        "Peter NNP B-NP B-PER\nBlackburn NNP I-NP I-PER\n",
        encoding="utf8",
    )
    assert list(prepare_pretrain_text.conll2003_sentences(path)) == ["EU rejects .", "Peter Blackburn"]


def test_raw_text_comes_from_training_splits_only(datasets_dir):
    texts = prepare_pretrain_text.raw_texts(datasets_dir)
    # The published sizes: CoNLL-2003 train + valid sentences (14,041 + 3,250), the CoNLL04
    # training split, SemEval's training file, TREC's training file.
    assert {name: len(source) for name, source in texts.items()} == {
        "conll2003": 14041 + 3250,
        "conll04": 922,
        "semeval": 8000,
        "trec": 5452,
    }

    def conll04(split):
        records = json.loads((datasets_dir / "conll04" / f"conll04_{split}.json").read_text("utf8"))
        return {" ".join(record["tokens"]) for record in records}

    assert set(texts["conll04"]) == conll04("train")
    # CoNLL04's own splits share a few sentences (12 of dev's, 18 of test's are also in train);
    # no other source adds any dev or test sentence.
    others = {text for name, source in texts.items() if name != "conll04" for text in source}
    assert not others & (conll04("dev") | conll04("test"))

def test_pretrained_weights_initialize_the_tok2vec(tmp_path, demo_corpus):
    """One epoch of `spacy pretrain` on the demo text; `[initialize] init_tok2vec` then loads
    exactly those weights into the tok2vec of the pipeline that `spacy train` builds."""
    nlp = spacy.blank("en")
    docs = DocBin().from_disk(demo_corpus["train"]).get_docs(nlp.vocab)
    srsly.write_jsonl(tmp_path / "raw.jsonl", ({"text": doc.text} for doc in docs))
    overrides = {
        **SMALL_OVERRIDES,
        "paths.raw_text": str(tmp_path / "raw.jsonl"),
        "paths.train": str(demo_corpus["train"]),
        "paths.dev": str(demo_corpus["dev"]),
        "pretraining.max_epochs": 1,
    }
    config_path = REPO_ROOT / "configs" / "ner_rel_tok2vec.cfg"
    (tmp_path / "pretrain").mkdir()
    pretrain(Config().from_disk(config_path, overrides=overrides), tmp_path / "pretrain")
    weights = tmp_path / "pretrain" / "model0.bin"
    assert weights.exists()

    def initialized_tok2vec(init_tok2vec):
        config = Config().from_disk(config_path, overrides={**overrides, "paths.init_tok2vec": init_tok2vec})
        return init_nlp(config).get_pipe("tok2vec").model

    def embedding_table(tok2vec):
        return next(node for node in tok2vec.walk() if node.name.startswith("hashembed")).get_param("E")

    pretrained = initialized_tok2vec(str(weights))
    fresh = initialized_tok2vec(None)
    fresh_table = embedding_table(fresh).copy()
    expected = fresh.from_bytes(weights.read_bytes())  # the same architecture, so the same params
    for node, node_expected in zip(pretrained.walk(), expected.walk()):
        for name in node.param_names:
            if node.has_param(name):
                numpy.testing.assert_array_equal(node.get_param(name), node_expected.get_param(name))
    # ...and they are not what initialization alone gives.
    assert not numpy.allclose(fresh_table, embedding_table(pretrained))
