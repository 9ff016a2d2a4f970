"""Corpus converters: relation extraction datasets and annotation tool exports -> spaCy Docs
with gold relations.

Each converter turns one input format into Docs whose entities are in
``doc.spans[spans_key]`` (all of them) and ``doc.ents`` (the non-overlapping ones), and whose
gold relations are in ``doc._.relations`` (score 1.0). ``python -m spacy_ie convert`` writes
them to a ``.spacy`` file. For CoNLL IOB NER data, use spaCy's own ``spacy convert``.

>>> docs, summary = convert_file("conll04_train.json", "spert")
>>> write_docbin(docs, "corpus/train.spacy")
"""
from functools import lru_cache
from pathlib import Path
from functools import partial
from typing import Callable, Dict, Iterator, List, Optional, Tuple, Union

import spacy
from spacy.language import Language
from spacy.tokens import Doc

from .brat import brat_to_docs
from .doccano import doccano_to_docs
from .label_studio import label_studio_to_docs
from .prodigy import prodigy_to_docs
from .semeval import semeval_to_docs
from .spert import spert_to_docs
from .util import (
    ConversionError,
    ConversionSummary,
    check,
    check_label,
    write_docbin,
    write_types_sidecar,
)

Converter = Callable[[Path, Language, ConversionSummary], Iterator[Doc]]

CONVERTERS: Dict[str, Converter] = {
    "spert": spert_to_docs,
    "prodigy": prodigy_to_docs,
    "semeval": semeval_to_docs,
    "brat": brat_to_docs,
    "label-studio": label_studio_to_docs,
    "doccano": doccano_to_docs,
}

__all__ = [
    "CONVERTERS",
    "ConversionError",
    "ConversionSummary",
    "convert",
    "convert_file",
    "write_docbin",
    "spert_to_docs",
    "prodigy_to_docs",
    "semeval_to_docs",
    "brat_to_docs",
    "label_studio_to_docs",
    "doccano_to_docs",
]


def convert_file(
    input_path: Union[str, Path],
    fmt: str,
    *,
    lang: str = "en",
    spans_key: str = "entities",
    types_path: Optional[Union[str, Path]] = None,
) -> Tuple[List[Doc], ConversionSummary]:
    """Convert a corpus file (or, for brat, a directory) to Docs with entities and relations.

    input_path: the file to read (brat: a directory of .txt/.ann pairs, or one .ann file).
    fmt: one of ``CONVERTERS``: "spert", "prodigy", "semeval", "brat", "label-studio"
        (Label Studio's JSON export), "doccano" (doccano's JSONL export).
    lang: the language whose blank tokenizer and vocab build the Docs.
    spans_key: the ``doc.spans`` key that holds all the entities.
    types_path: "spert" only: the dataset's ``*_types.json`` (default: the one beside the
        input, if any), read for its symmetric relation labels (see ``spert_to_docs``).
    RETURNS: the Docs in input order, and the summary of what was converted, skipped, changed.
    RAISES (ConversionError): for an unknown format or language, a missing input, and any
        malformed input; the message names the file, the record and the problem.
    """
    input_path = Path(input_path)
    check(
        fmt in CONVERTERS,
        input_path,
        "",
        f"unknown format {fmt!r}; choose one of {', '.join(CONVERTERS)}",
    )
    check(input_path.exists(), input_path, "", "no such file or directory")
    check_label(spans_key, input_path, "", "spans_key")
    nlp = _blank(lang, input_path)
    summary = ConversionSummary(fmt=fmt, spans_key=spans_key)
    converter = CONVERTERS[fmt]
    if types_path is not None:
        check(
            fmt == "spert",
            types_path,
            "",
            f"a types file is read for the spert format only, not {fmt!r}",
        )
        converter = partial(spert_to_docs, types_path=Path(types_path))
    docs = list(converter(input_path, nlp, summary))
    return docs, summary


def convert(
    input_path: Union[str, Path],
    output_path: Union[str, Path],
    fmt: str,
    *,
    lang: str = "en",
    spans_key: str = "entities",
    types_path: Optional[Union[str, Path]] = None,
) -> ConversionSummary:
    """Convert `input_path` (see :func:`convert_file`) and write the Docs to `output_path`,
    and, when a relation types file was read, its symmetric labels beside it (see
    :func:`.util.write_types_sidecar`: ``train.types.json`` for ``train.spacy``).

    The output is written atomically (see :func:`write_docbin`): on any error no new file
    exists at `output_path`, and a file already there is left untouched.
    RAISES (ConversionError): as :func:`convert_file`, or if `output_path` is a directory.
        (OSError): if the output cannot be written.
    """
    output_path = Path(output_path)
    check(not output_path.is_dir(), output_path, "", "the output path is a directory")
    docs, summary = convert_file(
        input_path, fmt, lang=lang, spans_key=spans_key, types_path=types_path
    )
    write_docbin(docs, output_path)
    write_types_sidecar(summary, output_path)
    return summary


def _blank(lang: str, input_path: Path) -> Language:
    try:
        return _blank_cached(lang)
    except ImportError:
        raise ConversionError(input_path, "", f"unknown language code {lang!r}") from None


@lru_cache(maxsize=8)
def _blank_cached(lang: str) -> Language:
    return spacy.blank(lang)
