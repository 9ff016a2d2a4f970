"""Static word vectors for the CNN pipelines, made offline, for `spacy init vectors`.

The CNN tok2vec of the configs reads static vectors with `include_static_vectors = true`
(spaCy's `MultiHashEmbed.v2`); `spacy init vectors` turns a vectors file into the pipeline
directory that `[initialize] vectors` (`--paths.vectors`) names. Two sources, both keyed on the
lower-cased word (`spacy init vectors --attr LOWER`; the SHAPE feature of the tok2vec keeps
capitalization):

- **floret** (Explosion's fastText fork, https://github.com/explosion/floret; fastText:
  Bojanowski et al. 2017, "Enriching Word Vectors with Subword Information"): skipgram vectors
  trained on raw text, stored as a hash table of word and character n-gram rows (Bloom
  embeddings), so every word, also one never seen, gets a vector from its n-grams
  (`spacy init vectors --mode floret`).
  Use **skipgram**: on a corpus of this size (half a million words) floret's CBOW in floret
  mode collapses, and every word's nearest neighbour is at cosine 0.9999 (measured; BENCHMARKS.md
  "Static word vectors"). fastText's CBOW in its plain mode does not collapse on the same text.
- **model2vec** (Tulkens & van Dongen 2024, https://github.com/MinishLab/model2vec): static
  embeddings distilled from a sentence-transformers model (here the local all-MiniLM-L6-v2) for
  a vocabulary: each word is encoded alone, the output token vectors mean-pooled, and the
  vectors reduced with PCA and SIF weighting. Words outside the vocabulary get no vector
  (spaCy's zero row), so the vocabulary is the raw text's words plus the encoder's own
  whole-word vocabulary.

Commands (the `vectors` workflows of project.yml run them):

    python -m spacy_ie.vectors tokenize corpus/pretrain/raw_text.jsonl corpus/vectors/raw_lower.txt
    python -m spacy_ie.vectors floret corpus/vectors/raw_lower.txt corpus/vectors/words.floret
    python -m spacy init vectors en corpus/vectors/words.floret corpus/vectors/floret --mode floret --attr LOWER
    python -m spacy_ie.vectors model2vec $(python -m spacy_ie minilm-path) corpus/vectors/raw_lower.txt corpus/vectors/minilm.txt
    python -m spacy init vectors en corpus/vectors/minilm.txt corpus/vectors/model2vec --attr LOWER
    python -m spacy_ie.vectors neighbours corpus/vectors/floret paris killed
"""
from collections import Counter
from pathlib import Path
from typing import Dict, Iterable, List, Sequence, Tuple, Union

import numpy
import spacy
import srsly
import typer
from spacy.attrs import LOWER
from spacy.language import Language
from wasabi import msg

app = typer.Typer(help=__doc__.split("\n\n")[0], no_args_is_help=True, add_completion=False)


def write_tokenized(texts: Iterable[str], out: Path, lang: str = "en") -> Tuple[int, int]:
    """Write `texts` one per line as spaCy's tokens of `lang`, lower-cased and joined by single
    spaces: the input format of floret and of `vocabulary`, with the tokens spaCy will look
    the vectors up for.

    RETURNS (Tuple[int, int]): the number of lines and of tokens written.
    """
    nlp = spacy.blank(lang)
    out.parent.mkdir(parents=True, exist_ok=True)
    n_lines = n_tokens = 0
    with out.open("w", encoding="utf8") as file_:
        for doc in nlp.pipe(texts, batch_size=1000):
            words = [token.lower_ for token in doc if not token.is_space]
            file_.write(" ".join(words) + "\n")
            n_lines += 1
            n_tokens += len(words)
    return n_lines, n_tokens


def vocabulary(text_file: Path, min_count: int = 1) -> List[str]:
    """The distinct tokens of a whitespace-tokenized text file seen at least `min_count` times,
    most frequent first."""
    with text_file.open(encoding="utf8") as file_:
        counts = Counter(word for line in file_ for word in line.split())
    return [word for word, count in counts.most_common() if count >= min_count]


def train_floret(
    text_file: Path,
    out_file: Path,
    *,
    dim: int = 100,
    epochs: int = 10,
    min_count: int = 2,
    minn: int = 3,
    maxn: int = 5,
    bucket: int = 50000,
    hash_count: int = 2,
    threads: int = 1,
) -> Path:
    """Train floret skipgram vectors on `text_file` (one text per line, whitespace-tokenized)
    and write them in floret's vectors format (a `bucket` x `dim` table) for
    `spacy init vectors --mode floret`.

    The defaults are floret's and spaCy's floret demo's (https://github.com/explosion/floret,
    `minn` 3, `maxn` 5 here for short words, `hash_count` 2), with skipgram (see the module
    docstring for why not CBOW). Training time grows with `dim` x `epochs` x the corpus size.

    RAISES (ImportError): if floret is not installed (`pip install spacy-ie[vectors]`).
    """
    import floret

    model = floret.train_unsupervised(
        str(text_file),
        model="skipgram",
        mode="floret",
        dim=dim,
        epoch=epochs,
        minCount=min_count,
        minn=minn,
        maxn=maxn,
        bucket=bucket,
        hashCount=hash_count,
        thread=threads,
        verbose=0,
    )
    out_file.parent.mkdir(parents=True, exist_ok=True)
    model.save_floret_vectors(str(out_file))
    return out_file


def distil_model2vec(model_name: str, words: Sequence[str], out_file: Path, *, dims: int = 256) -> Path:
    """Distil static vectors for `words` from the sentence-transformers model `model_name` (a
    hub name or a local path) with model2vec, and write them in word2vec text format (a header
    line "n_words dims", then a word and its `dims` floats per line) for `spacy init vectors`.

    The vocabulary given to model2vec is `words` plus the model's own whole-word tokens; each
    of `words` gets the model2vec encoding of the word (the mean of its token vectors).

    RAISES (ImportError): if model2vec's distillation extra is not installed
        (`pip install spacy-ie[vectors]`).
    """
    from model2vec.distill import distill

    static = distill(model_name=model_name, vocabulary=list(words), pca_dims=dims)
    vectors = numpy.asarray(static.encode(list(words)), dtype="float32")
    out_file.parent.mkdir(parents=True, exist_ok=True)
    with out_file.open("w", encoding="utf8") as file_:
        file_.write(f"{len(words)} {vectors.shape[1]}\n")
        for word, row in zip(words, vectors):
            file_.write(word + " " + " ".join(f"{value:.5f}" for value in row) + "\n")
    return out_file


def nearest_neighbours(
    vectors_model: Union[str, Path, Language], queries: Sequence[str], candidates: Sequence[str], k: int = 5
) -> Dict[str, List[Tuple[str, float]]]:
    """The `k` nearest of `candidates` to each query by cosine similarity, with the vectors of
    the spaCy pipeline `vectors_model` (a loaded pipeline, or the path of the output of
    `spacy init vectors`; floret vectors
    give every word a vector, default-mode vectors give unknown words the zero vector). Words
    are looked up lower-cased when the vectors are keyed on LOWER, as the tok2vec does.

    RETURNS (Dict[str, List[Tuple[str, float]]]): query -> [(word, cosine)], most similar first,
        the query itself left out.
    """
    nlp = vectors_model if isinstance(vectors_model, Language) else spacy.load(vectors_model)
    lower = nlp.vocab.vectors.attr == LOWER

    def vector(word: str) -> numpy.ndarray:
        return nlp.vocab.get_vector(word.lower() if lower else word)

    words = [word for word in dict.fromkeys(candidates)]
    table = numpy.asarray([vector(word) for word in words], dtype="float32")
    norms = numpy.linalg.norm(table, axis=1, keepdims=True)
    table = table / numpy.maximum(norms, 1e-8)
    result = {}
    for query in queries:
        query_vector = vector(query)
        query_vector = query_vector / max(float(numpy.linalg.norm(query_vector)), 1e-8)
        sims = table @ query_vector
        order = [i for i in numpy.argsort(-sims) if words[i] != query][:k]
        result[query] = [(words[i], round(float(sims[i]), 3)) for i in order]
    return result


@app.command("tokenize")
def tokenize_cli(texts_jsonl: Path, out: Path, lang: str = "en") -> None:
    """Write the texts of a JSONL file ({"text": ...} per line, the output of
    `python -m spacy_ie.datasets.pretrain_text`) tokenized and lower-cased, one per line."""
    n_lines, n_tokens = write_tokenized((record["text"] for record in srsly.read_jsonl(texts_jsonl)), out, lang)
    msg.good(f"Wrote {n_lines} texts, {n_tokens} tokens to {out}")


@app.command("floret")
def floret_cli(
    text_file: Path,
    out: Path,
    dim: int = typer.Option(100, help="Vector width"),
    epochs: int = typer.Option(10, help="Passes over the text"),
    min_count: int = typer.Option(2, help="Words seen fewer times are not trained as words"),
    threads: int = typer.Option(1, help="Training threads"),
) -> None:
    """Train floret skipgram vectors on a tokenized text file (see `train_floret`)."""
    msg.info(f"Training floret skipgram vectors ({dim} dims, {epochs} epochs) on {text_file}")
    train_floret(text_file, out, dim=dim, epochs=epochs, min_count=min_count, threads=threads)
    msg.good(f"Wrote {out}; next: python -m spacy init vectors en {out} OUT_DIR --mode floret --attr LOWER")


@app.command("model2vec")
def model2vec_cli(
    model_name: str,
    text_file: Path,
    out: Path,
    dims: int = typer.Option(256, help="Vector width after PCA"),
    min_count: int = typer.Option(1, help="Words of the text seen fewer times are left out"),
) -> None:
    """Distil static vectors from a sentence-transformers model for the words of a tokenized
    text file (see `distil_model2vec`)."""
    words = vocabulary(text_file, min_count)
    msg.info(f"Distilling {len(words)} words from {model_name} ({dims} dims)")
    distil_model2vec(model_name, words, out, dims=dims)
    msg.good(f"Wrote {out}; next: python -m spacy init vectors en {out} OUT_DIR --attr LOWER")


@app.command("neighbours")
def neighbours_cli(
    vectors_model: str,
    queries: List[str],
    candidates_file: Path = typer.Option(None, help="Tokenized text whose words are the candidates (default: the pipeline's vector keys)"),
    k: int = typer.Option(5, help="Neighbours per query"),
) -> None:
    """Print the nearest neighbours of each query word (a sanity check of trained vectors)."""
    nlp = spacy.load(vectors_model)
    if candidates_file is not None:
        candidates = vocabulary(candidates_file)
    else:
        candidates = [nlp.vocab.strings[key] for key in nlp.vocab.vectors.keys() if key in nlp.vocab.strings]
        if not candidates:
            raise typer.BadParameter(f"{vectors_model} has no word list (floret vectors): pass --candidates-file")
    for query, neighbours in nearest_neighbours(nlp, queries, candidates, k).items():
        print(f"{query}: " + ", ".join(f"{word} {sim:.3f}" for word, sim in neighbours))


if __name__ == "__main__":
    app()
