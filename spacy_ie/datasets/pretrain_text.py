"""Raw text for `spacy pretrain` from the training splits of the datasets here -> JSONL.

    python -m spacy_ie.datasets.pretrain_text ../shared/datasets corpus/pretrain/raw_text.jsonl

Writes one ``{"text": ...}`` line per sentence (spaCy's ``spacy.JsonlCorpus.v1`` format) from:
- CoNLL-2003 ``train.txt`` and ``valid.txt`` (Reuters news; the first column of each token line;
  ``-DOCSTART-`` lines are dropped; tokens are joined with spaces);
- CoNLL04 ``conll04_train.json`` (news; read with the SpERT converter);
- SemEval-2010 Task 8 ``TRAIN_FILE.TXT`` (read with the SemEval converter, which removes the
  ``<e1>``/``<e2>`` markers);
- TREC ``TREC.train`` (questions).
No test split is read, and neither is the CoNLL04 dev split, so the text a pretrained tok2vec has
seen does not include what CoNLL04 models are selected or scored on, apart from the sentences
that CoNLL04 itself repeats across its splits (12 of dev's and 18 of test's are also in train). Only the text is kept; no
label of any dataset is used. Prints the number of texts and words per source.
"""
from pathlib import Path
from typing import Dict, Iterator, List

import srsly
import typer

from .trec import read_trec
from spacy_ie.training.converters import convert_file


def conll2003_sentences(path: Path) -> Iterator[str]:
    """The sentences of a CoNLL-2003 file (``token POS chunk NER`` lines, blank line between
    sentences), each as its tokens joined with single spaces."""
    tokens: List[str] = []
    for line in path.read_text(encoding="utf8").splitlines():
        fields = line.split()
        if fields and fields[0] != "-DOCSTART-":
            tokens.append(fields[0])
        elif tokens:
            yield " ".join(tokens)
            tokens = []
    if tokens:
        yield " ".join(tokens)


def raw_texts(data_dir: Path) -> Dict[str, List[str]]:
    """The texts of each source, keyed by a short name (see the module docstring).

    RAISES (FileNotFoundError): if a source file is missing; (ConversionError): if one is
        malformed.
    """
    semeval = data_dir / "semeval2010_task8" / "SemEval2010_task8_all_data"
    semeval_train = semeval / "SemEval2010_task8_training" / "TRAIN_FILE.TXT"
    return {
        "conll2003": [
            text
            for split in ("train.txt", "valid.txt")
            for text in conll2003_sentences(data_dir / "conll2003" / split)
        ],
        "conll04": [doc.text for doc in convert_file(data_dir / "conll04" / "conll04_train.json", "spert")[0]],
        "semeval": [doc.text for doc in convert_file(semeval_train, "semeval")[0]],
        "trec": [text for text, _ in read_trec(data_dir / "trec" / "TREC.train")],
    }


def main(
    data_dir: Path = typer.Argument(..., help="The folder that holds the datasets (../shared/datasets)"),
    output_path: Path = typer.Argument(..., help="The JSONL file to write"),
) -> None:
    """Write the raw text of the datasets' training splits to OUTPUT_PATH for `spacy pretrain`."""
    texts = raw_texts(data_dir)
    output_path.parent.mkdir(parents=True, exist_ok=True)
    srsly.write_jsonl(output_path, ({"text": text} for source in texts.values() for text in source))
    for source, source_texts in texts.items():
        n_words = sum(len(text.split()) for text in source_texts)
        print(f"{source}: {len(source_texts)} texts, {n_words} words")
    print(f"Wrote {sum(map(len, texts.values()))} texts to {output_path}")


if __name__ == "__main__":
    typer.run(main)
