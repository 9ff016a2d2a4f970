"""A large raw-text input for batch extraction: every CoNLL04 and SemEval-2010 Task 8 sentence,
repeated in order until there are N documents -> JSONL.

    python -m spacy_ie.datasets.extract_input ../shared/datasets corpus/extract/input.jsonl --n-docs 50000

Sources, in this order: CoNLL04 ``conll04_train.json``, ``conll04_dev.json``,
``conll04_test.json`` (1,441 news sentences, read with the SpERT converter: tokens joined with
spaces), then SemEval-2010 Task 8 ``TRAIN_FILE.TXT`` and ``TEST_FILE_FULL.TXT`` (10,717
sentences, read with the SemEval converter, which removes the ``<e1>``/``<e2>`` markers):
12,158 sentences, cycled until `n_docs`. Each line is ``{"text": str, "source": str}``, the
source being ``"{file stem}:{sentence number from 1}"``. Only the text is used (no label), as
input for `spacy-ie extract` and `benchmarks/extract_ray.py`, not for scoring.
"""

from itertools import cycle, islice
from pathlib import Path
from typing import Dict, Iterator, List, Tuple

import srsly
import typer

from spacy_ie.training.converters import convert_file

CONLL04_FILES = ("conll04_train.json", "conll04_dev.json", "conll04_test.json")
SEMEVAL_FILES = (
    Path("SemEval2010_task8_training") / "TRAIN_FILE.TXT",
    Path("SemEval2010_task8_testing_keys") / "TEST_FILE_FULL.TXT",
)


def source_sentences(data_dir: Path) -> List[Tuple[str, str]]:
    """``(source, text)`` for every sentence of the sources (see the module docstring), in order.

    RAISES (ConversionError): a missing or malformed source file (named in the message).
    """
    sentences: List[Tuple[str, str]] = []
    paths = [(data_dir / "conll04" / name, "spert") for name in CONLL04_FILES]
    semeval = data_dir / "semeval2010_task8" / "SemEval2010_task8_all_data"
    paths += [(semeval / name, "semeval") for name in SEMEVAL_FILES]
    for path, fmt in paths:
        docs, _ = convert_file(path, fmt)
        sentences.extend((f"{path.stem}:{i}", doc.text) for i, doc in enumerate(docs, 1))
    return sentences


def extract_input(data_dir: Path, n_docs: int) -> Iterator[Dict[str, str]]:
    """``{"text", "source"}`` for `n_docs` documents: the sentences of `source_sentences`,
    cycled. RAISES (ValueError): `n_docs` below 1."""
    if n_docs < 1:
        raise ValueError(f"n_docs must be >= 1, not {n_docs}")
    for source, text in islice(cycle(source_sentences(data_dir)), n_docs):
        yield {"text": text, "source": source}


def main(
    data_dir: Path = typer.Argument(
        ..., help="The folder that holds the datasets (../shared/datasets)"
    ),
    output_path: Path = typer.Argument(..., help="The JSONL file to write"),
    n_docs: int = typer.Option(50_000, "--n-docs", min=1, help="Documents to write"),
) -> None:
    """Write N_DOCS documents of CoNLL04 and SemEval sentences, cycled, to OUTPUT_PATH."""
    output_path.parent.mkdir(parents=True, exist_ok=True)
    srsly.write_jsonl(output_path, extract_input(data_dir, n_docs))
    print(f"Wrote {n_docs} documents to {output_path}")


if __name__ == "__main__":
    typer.run(main)
