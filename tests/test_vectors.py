"""spacy_ie.vectors: floret and model2vec vectors made offline, through `spacy init vectors`
(keyed on LOWER), and the nearest-neighbour check."""
import subprocess
import sys

import numpy
import pytest
import spacy

from spacy_ie.vectors import distil_model2vec, nearest_neighbours, train_floret, vocabulary, write_tokenized

CITIES = ["paris", "rome", "berlin", "madrid", "vienna", "lisbon"]
ANIMALS = ["cat", "dog", "horse", "cow", "sheep", "goat"]


def _corpus(n: int = 3000):
    """Sentences in which cities and animals occur in different contexts."""
    rng = numpy.random.default_rng(0)
    city_frames = ["She flew to {} last week .", "The mayor of {} spoke .", "Flights to {} were late ."]
    animal_frames = ["The {} ate the grass .", "A {} slept in the barn .", "The farmer fed the {} ."]
    for _ in range(n):
        if rng.random() < 0.5:
            yield rng.choice(city_frames).format(rng.choice(CITIES).capitalize())
        else:
            yield rng.choice(animal_frames).format(rng.choice(ANIMALS))


def _init_vectors(vectors_file, out, mode):
    cmd = [sys.executable, "-m", "spacy", "init", "vectors", "en", str(vectors_file), str(out), "--attr", "LOWER"]
    result = subprocess.run(cmd + ["--mode", mode], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    return out


def test_tokenized_text_is_lower_cased_spacy_tokens(tmp_path):
    out = tmp_path / "text.txt"
    assert write_tokenized(["Paris, France.", "Don't  stop"], out) == (2, 7)
    assert out.read_text().splitlines() == ["paris , france .", "do n't stop"]
    assert vocabulary(out) == ["paris", ",", "france", ".", "do", "n't", "stop"]
    assert vocabulary(out, min_count=2) == []


def test_floret_vectors_separate_contexts_and_cover_unseen_words(tmp_path):
    text = tmp_path / "text.txt"
    write_tokenized(_corpus(), text)
    floret_file = train_floret(text, tmp_path / "v.floret", dim=24, epochs=100, bucket=5000)
    model = _init_vectors(floret_file, tmp_path / "floret", "floret")
    nlp = spacy.load(model)
    # keyed on LOWER: case does not change the vector
    assert numpy.array_equal(nlp("Paris")[0].vector, nlp("paris")[0].vector)
    # floret gives a word never seen in training a non-zero vector from its character n-grams
    assert numpy.linalg.norm(nlp.vocab.get_vector("parisian")) > 0
    neighbours = nearest_neighbours(str(model), ["paris", "cat"], CITIES + ANIMALS, k=3)
    assert all(word in CITIES for word, _ in neighbours["paris"])
    assert all(word in ANIMALS for word, _ in neighbours["cat"])
    # Not collapsed: at 10 epochs on this corpus every pair is at cosine 1.0 (the vectors still
    # share one dominant direction: too few updates, the failure floret's CBOW shows on 474k words)
    assert min(sim for word, sim in nearest_neighbours(str(model), ["paris"], ANIMALS, k=6)["paris"]) < 0.9


@pytest.fixture(scope="module")
def tiny_sentence_encoder(tmp_path_factory):
    """A randomly initialised 2-layer BERT with a 70-token WordPiece vocabulary (words, letters
    and ##letters, so that every lower-case word tokenizes), saved as a local model."""
    transformers = pytest.importorskip("transformers")
    path = tmp_path_factory.mktemp("tiny_bert")
    words = sorted(set(CITIES + ANIMALS + ["the", "a", "of", "to", "##s", "##ing", "in", "."]))
    letters = list("abcdefghijklmnopqrstuvwxyz")
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + words + letters + ["##" + c for c in letters]
    (path / "vocab.txt").write_text("\n".join(vocab) + "\n")
    tokenizer = transformers.BertTokenizerFast(str(path / "vocab.txt"), do_lower_case=True)
    tokenizer.save_pretrained(path)
    config = transformers.BertConfig(
        vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64
    )
    transformers.BertModel(config).save_pretrained(path)
    return path


def test_model2vec_vectors_load_keyed_on_lower(tmp_path, tiny_sentence_encoder):
    pytest.importorskip("model2vec.distill")
    words = CITIES + ANIMALS + ["parisian"]
    out = distil_model2vec(str(tiny_sentence_encoder), words, tmp_path / "m2v.txt", dims=8)
    header, *lines = out.read_text().splitlines()
    assert header == f"{len(words)} 8"
    assert [line.split()[0] for line in lines] == words
    model = _init_vectors(out, tmp_path / "model2vec", "default")
    nlp = spacy.load(model)
    assert nlp.vocab.vectors.shape == (len(words), 8)
    # The tok2vec's StaticVectors look rows up by the vectors' key attribute (LOWER here), so
    # "Rome" and "rome" share a row and an unknown word has none (-1: a zero vector).
    rows = nlp.vocab.vectors.find(keys=nlp("Rome rome unknownword").to_array("LOWER"))
    assert rows[0] == rows[1] >= 0 and rows[2] == -1
    assert numpy.linalg.norm(nlp.vocab.vectors.data[rows[0]]) > 0
