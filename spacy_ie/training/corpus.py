"""`spacy_ie.RelationCorpus.v1`: read DocBins with relations, optionally with gold entities."""
from pathlib import Path
from typing import Callable, Iterable, Iterator, Optional, Union

from spacy.language import Language
from spacy.training import Corpus, Example
from spacy.util import filter_spans, registry

from ..pipeline.relation_extractor import align_spans


@registry.readers("spacy_ie.RelationCorpus.v1")
def create_relation_corpus(
    path: Optional[Union[str, Path]],
    gold_entities: bool = False,
    gold_preproc: bool = False,
    max_length: int = 0,
    limit: int = 0,
    shuffle: bool = False,
) -> Callable[[Language], Iterable[Example]]:
    """Read a `.spacy` DocBin (from `python -m spacy_ie convert`) as spaCy's `Corpus` does.

    gold_entities (bool): copy the gold entities (``doc.ents`` and every span group) onto each
        example's predicted Doc. Use it to train or evaluate relation classification on gold
        entities in a pipeline without `ner`; leave it off for end-to-end evaluation, where
        the pipeline's own `ner` predicts the entities.
    gold_preproc, max_length, limit, shuffle: as for `spacy.Corpus.v1`.
    RETURNS (Callable[[Language], Iterable[Example]]): the reader.
    """
    corpus = Corpus(
        path, gold_preproc=gold_preproc, max_length=max_length, limit=limit, shuffle=shuffle
    )

    def read(nlp: Language) -> Iterator[Example]:
        for eg in corpus(nlp):
            if gold_entities:
                copy_gold_spans(eg)
            yield eg

    return read


def copy_gold_spans(eg: Example) -> None:
    """Set ``eg.predicted.ents`` and its span groups to the gold ones, aligned to its tokens."""
    reference = eg.reference
    eg.predicted.ents = filter_spans([s for s in align_spans(eg, reference.ents) if s is not None])
    for key, group in reference.spans.items():
        eg.predicted.spans[key] = [s for s in align_spans(eg, list(group)) if s is not None]
