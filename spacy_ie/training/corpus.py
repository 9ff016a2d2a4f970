"""`spacy_ie.RelationCorpus.v1`: read DocBins with relations, optionally with gold entities or
with entities predicted by other models."""
from collections import defaultdict, deque
from pathlib import Path
from typing import Callable, Deque, Dict, Iterable, Iterator, List, Optional, Union

from spacy.language import Language
from spacy.tokens import Doc, DocBin, Span
from spacy.training import Corpus, Example
from spacy.util import filter_spans, registry

from .align import align_spans


@registry.readers("spacy_ie.RelationCorpus.v1")
def create_relation_corpus(
    path: Optional[Union[str, Path]],
    gold_entities: bool = False,
    gold_preproc: bool = False,
    max_length: int = 0,
    limit: int = 0,
    shuffle: bool = False,
    predicted_entities: Optional[Union[str, Path]] = None,
) -> Callable[[Language], Iterable[Example]]:
    """Read a `.spacy` DocBin (from `python -m spacy_ie convert`) as spaCy's `Corpus` does.

    gold_entities (bool): copy the gold entities (``doc.ents`` and every span group) onto each
        example's predicted Doc. Use it to train or evaluate relation classification on gold
        entities in a pipeline without `ner`; leave it off for end-to-end evaluation, where
        the pipeline's own `ner` predicts the entities.
    predicted_entities (Optional[path]): a DocBin of the same texts with entities predicted by
        other models (``python -m spacy_ie cross-annotate``: k-fold predictions); each
        example's predicted Doc gets the entities and span groups of the Doc with its text.
        For a `relation_extractor` with `train_on_predicted`.
    gold_preproc, max_length, limit, shuffle: as for `spacy.Corpus.v1`.
    RETURNS (Callable[[Language], Iterable[Example]]): the reader.
    RAISES (ValueError): with both `gold_entities` and `predicted_entities`; when reading, for a
        text that `predicted_entities` lacks, or a predicted span whose boundaries do not fall
        on the example's token boundaries (the file, the Doc and the span named).
    """
    if gold_entities and predicted_entities is not None:
        raise ValueError("RelationCorpus.v1: set gold_entities or predicted_entities, not both")
    corpus = Corpus(
        path, gold_preproc=gold_preproc, max_length=max_length, limit=limit, shuffle=shuffle
    )

    def read(nlp: Language) -> Iterator[Example]:
        predicted = None if predicted_entities is None else _by_text(nlp, predicted_entities)
        for eg in corpus(nlp):
            if gold_entities:
                copy_gold_spans(eg)
            elif predicted is not None:
                copy_predicted_spans(eg, predicted, predicted_entities)
            yield eg

    return read


def copy_gold_spans(eg: Example) -> None:
    """Set ``eg.predicted.ents`` and its span groups to the gold ones, aligned to its tokens."""
    reference = eg.reference
    eg.predicted.ents = filter_spans([s for s in align_spans(eg, reference.ents) if s is not None])
    for key, group in reference.spans.items():
        eg.predicted.spans[key] = [s for s in align_spans(eg, list(group)) if s is not None]


def _by_text(nlp: Language, path: Union[str, Path]) -> Dict[str, Deque[Doc]]:
    """The Docs of the DocBin at `path`, by text, in file order (a text may occur twice)."""
    docs: Dict[str, Deque[Doc]] = defaultdict(deque)
    for doc in DocBin().from_disk(path).get_docs(nlp.vocab):
        docs[doc.text].append(doc)
    return docs


def copy_predicted_spans(
    eg: Example, predicted: Dict[str, Deque[Doc]], path: Union[str, Path]
) -> None:
    """Set ``eg.predicted.ents`` and its span groups to those of the Doc of `predicted` with
    the example's text (the Docs of a repeated text taken in turn).

    RAISES (ValueError): for a text `predicted` lacks, or a span off the example's token
        boundaries; the message names `path`.
    """
    doc = eg.predicted
    source = predicted.get(eg.reference.text)
    if not source:
        raise ValueError(
            f"{path}: no Doc with the text of this example: {eg.reference.text[:80]!r}"
        )
    other = source.popleft()
    # kept: a text that the corpus repeats more often than the file still finds one
    source.append(other)

    def spans(group: Iterable[Span]) -> List[Span]:
        out = []
        for s in group:
            span = doc.char_span(s.start_char, s.end_char, label=s.label_)
            if span is None:
                raise ValueError(
                    f"{path}: the predicted span {s.text!r} ({s.start_char}-{s.end_char}, "
                    f"{s.label_}) does not fall on token boundaries of {doc.text[:80]!r}"
                )
            out.append(span)
        return out

    doc.ents = spans(other.ents)
    for key, group in other.spans.items():
        doc.spans[key] = spans(group)
