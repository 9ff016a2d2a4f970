"""k-fold ("jackknife") entity predictions on a training set, for a `relation_extractor` trained
on predicted as well as gold entities (`train_on_predicted`; read the output with
`spacy_ie.RelationCorpus.v1`'s `predicted_entities`)."""
from pathlib import Path
from typing import Any, Dict, List, Optional, Union

import spacy
from spacy.cli.train import train as spacy_train
from spacy.scorer import Scorer
from spacy.tokens import Doc, DocBin
from spacy.training import Example
from spacy.vocab import Vocab
from wasabi import msg


def fold_of(index: int, folds: int) -> int:
    """The fold of the `index`-th Doc of the file: ``index % folds`` (folds of equal size,
    every part of the file in each)."""
    return index % folds


def cross_annotate(
    config_path: Union[str, Path],
    train_path: Union[str, Path],
    output_path: Union[str, Path],
    output_dir: Union[str, Path],
    *,
    folds: int = 5,
    overrides: Optional[Dict[str, Any]] = None,
    use_gpu: int = -1,
) -> List[float]:
    """Jackknife the entities of `train_path`: for each of `folds` folds, train `config_path`
    with ``spacy train`` on the other folds, predict the held-out fold with its model-best,
    and write all predictions, in the order of `train_path`, to `output_path`.

    The k-fold ("jackknife") predictions that parsers train on for part-of-speech tags (e.g.
    Chen & Manning 2014, "A Fast and Accurate Dependency Parser using Neural Networks", Sec. 4.1):
    the entities a pipeline predicts on its own training texts are nearly the gold ones, so
    only held-out predictions show a relation model the end-to-end errors (read them with
    `spacy_ie.RelationCorpus.v1`'s `predicted_entities`).

    config_path: a ``spacy train`` config with an entity-producing component (e.g. `ner`).
    train_path: the training DocBin (gold entities).
    output_path: the DocBin to write: the Docs of `train_path` (same tokens) as the fold models
        annotated them (``doc.ents``, span groups and token attributes; no user data).
    output_dir: where fold ``k`` keeps its files: ``fold_k/train.spacy``, ``fold_k/heldout.spacy``
        and the trained ``fold_k/model-best``; a fold whose model-best exists is not trained
        again (an interrupted run resumes).
    folds: k >= 2; Doc i is held out in fold ``i % k``.
    overrides: config overrides as for ``spacy train`` (e.g. ``{"paths.dev": ...}``; the dev
        set picks each fold's model-best, so give one that no fold trains on).
        ``paths.train`` is set per fold.
    use_gpu: GPU id, or -1 for CPU.
    RETURNS (List[float]): each fold's entity F1 (``ents_f``, strict) on its held-out Docs.
    RAISES (ValueError): for fewer than 2 folds or fewer Docs than folds.
    """
    if folds < 2:
        raise ValueError(f"cross-annotate needs at least 2 folds, got {folds}")
    docs = list(DocBin().from_disk(train_path).get_docs(Vocab()))
    if len(docs) < folds:
        raise ValueError(f"{train_path}: {len(docs)} Docs, fewer than the {folds} folds")
    output_dir = Path(output_dir)
    predicted: List[Optional[Doc]] = [None] * len(docs)
    scores = []
    for k in range(folds):
        msg.divider(f"Fold {k + 1} of {folds}")
        fold_dir = output_dir / f"fold_{k}"
        fold_dir.mkdir(parents=True, exist_ok=True)
        held = [i for i in range(len(docs)) if fold_of(i, folds) == k]
        rest = [d for i, d in enumerate(docs) if fold_of(i, folds) != k]
        DocBin(docs=rest, store_user_data=True).to_disk(fold_dir / "train.spacy")
        held_docs = [docs[i] for i in held]
        DocBin(docs=held_docs, store_user_data=True).to_disk(fold_dir / "heldout.spacy")
        model_dir = fold_dir / "model-best"
        if model_dir.exists():
            msg.info(f"Reusing {model_dir}")
        else:
            spacy_train(
                config_path,
                fold_dir,
                use_gpu=use_gpu,
                overrides={**(overrides or {}), "paths.train": str(fold_dir / "train.spacy")},
            )
        nlp = spacy.load(model_dir)
        gold = list(DocBin().from_disk(fold_dir / "heldout.spacy").get_docs(nlp.vocab))
        # fresh Docs of the gold tokens: a `ner` keeps entities a Doc already has
        inputs = (
            Doc(nlp.vocab, words=[t.text for t in d], spaces=[bool(t.whitespace_) for t in d])
            for d in gold
        )
        examples = [Example(doc, ref) for doc, ref in zip(nlp.pipe(inputs), gold)]
        for i, eg in zip(held, examples):
            predicted[i] = eg.predicted
        f = Scorer.score_spans(examples, "ents")["ents_f"] or 0.0
        scores.append(f)
        msg.good(f"Fold {k + 1}: {len(held)} held-out Docs, entity F1 {f * 100:.2f}")
    DocBin(docs=predicted).to_disk(output_path)
    msg.good(f"Saved {len(docs)} Docs with predicted entities to {output_path}")
    return scores
