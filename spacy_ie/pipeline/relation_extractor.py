"""The `relation_extractor` pipeline component: predicts `doc._.relations` between entities."""
import warnings
from collections import Counter
from itertools import islice
from typing import Any, Callable, Dict, Iterable, List, NamedTuple, Optional, Sequence, Tuple

import numpy
from spacy.errors import Errors
from spacy.language import Language
from spacy.pipeline.trainable_pipe import TrainablePipe
from spacy.tokens import Doc, Span
from spacy.training import Example, validate_examples, validate_get_examples
from spacy.vocab import Vocab
from thinc.api import Config, Model, set_dropout_rate
from thinc.types import Floats2d

from ..candidates import Candidates, EntityPairCandidates, span_list
from ..ml import DEFAULT_TOK2VEC_CONFIG
from ..ml.relation_model import RelationScores
from ..relations import register_extensions, set_relation_records
from ..training.align import align_spans

register_extensions()

DEFAULT_MODEL_CONFIG = """
[model]
@architectures = "spacy_ie.RelationModel.v1"
hidden_width = 128
dropout = 0.1
label_width = 16
distance_width = 16
context_window = 0
"""
DEFAULT_MODEL = Config().from_str(DEFAULT_MODEL_CONFIG + DEFAULT_TOK2VEC_CONFIG)["model"]


@Language.factory(
    "relation_extractor",
    assigns=["doc._.relations"],
    default_config={
        "model": DEFAULT_MODEL,
        "candidates": {"@misc": "spacy_ie.EntityPairCandidates.v2"},
        "spans_key": None,
        "threshold": 0.5,
        "thresholds": None,
        "exclusive_classes": False,
        "one_relation_per_pair": False,
        "symmetric_labels": [],
        "store_attention": False,
        "train_on_predicted": False,
        "class_weights": None,
        "scorer": {"@scorers": "spacy_ie.relation_scorer.v1"},
    },
    default_score_weights={
        "rel_micro_f": 1.0,
        "rel_micro_p": 0.0,
        "rel_micro_r": 0.0,
        "rel_macro_f": 0.0,
    },
)
def make_relation_extractor(
    nlp: Language,
    name: str,
    model: Model,
    candidates: EntityPairCandidates,
    spans_key: Optional[str],
    threshold: float,
    thresholds: Optional[Dict[str, float]],
    exclusive_classes: bool,
    one_relation_per_pair: bool,
    symmetric_labels: List[str],
    store_attention: bool,
    scorer: Optional[Callable],
    train_on_predicted: bool = False,
    class_weights: Optional[Dict[str, float]] = None,
) -> "RelationExtractor":
    """Create a `RelationExtractor` (see its docstring for the settings)."""
    return RelationExtractor(
        nlp.vocab,
        model,
        name,
        candidates=candidates,
        spans_key=spans_key,
        threshold=threshold,
        thresholds=thresholds,
        exclusive_classes=exclusive_classes,
        one_relation_per_pair=one_relation_per_pair,
        symmetric_labels=symmetric_labels,
        store_attention=store_attention,
        train_on_predicted=train_on_predicted,
        class_weights=class_weights,
        scorer=scorer,
    )


class RelationPredictions(NamedTuple):
    """What `RelationExtractor.predict` returns for a batch: everything `decide` and
    `write_relations` need, as arrays (numpy, CPU), so a batch can be decided again at other
    thresholds without the model.

    candidates (Candidates): the (head, tail) pairs that were scored, as integer arrays.
    probs (numpy float32 array): (n_pairs, n_labels) probability of each label per pair (for
        exclusive classes, the softmax column of "no relation" is left out), times the type
        constraints' weight (`EntityPairCandidates.label_weights`: 1 for a label seen with the
        pair's entity types, `unseen_type_weight` for one never seen with them, 0 forbidden).
    allowed (numpy bool array): (n_pairs, n_labels) whether the type constraints allow each label
        for each pair (weight > 0).
    contexts (numpy int32 array): (n_pairs, 2) Doc-local start and end token of each pair's
        context.
    attention (Optional[numpy float32 array]): (sum of context lengths,) the context attention
        weights, pair after pair, when the component keeps them (`store_attention`); else None.
    """

    candidates: Candidates
    probs: numpy.ndarray
    allowed: numpy.ndarray
    contexts: numpy.ndarray
    attention: Optional[numpy.ndarray] = None


class Decisions(NamedTuple):
    """The relations `decide` keeps.

    keep (numpy bool array): (n_pairs, n_labels) True where the pair gets the label.
    scores (numpy float32 array): (n_pairs, n_labels) the score each relation is written with
        (the probability; for a symmetric label, the mean of the pair's two directions).
    """

    keep: numpy.ndarray
    scores: numpy.ndarray


def decide(
    predictions: RelationPredictions,
    thresholds: numpy.ndarray,
    *,
    symmetric: Optional[numpy.ndarray] = None,
    exclusive: bool = False,
    one_relation_per_pair: bool = False,
) -> Decisions:
    """The decision rule: which scored candidate pairs become relations. The one place where it
    is written; `RelationExtractor.set_annotations`, evaluation, the threshold sweep and
    threshold tuning all call it. Pure: it changes nothing it is given.

    In this order, vectorized over the batch:
    1. symmetric labels: each direction of a pair gets the mean probability of both directions
       (when both were scored), and only the direction whose head comes first (by token start,
       then end) keeps it; the other gets 0;
    2. a label is kept where the type constraints allow it and its score reaches its threshold;
    3. exclusive classes: at most the likeliest allowed label of a pair is kept;
    4. `one_relation_per_pair`: of a pair's two directions, only the one whose best kept score
       is higher keeps its relations (ties: the direction scored first). SemEval-2010 Task 8
       asks for one directed relation per entity pair.

    predictions (RelationPredictions): a batch from `RelationExtractor.predict`.
    thresholds (numpy array): (n_labels,) the threshold of each label, compared in float32.
    symmetric (Optional[numpy bool array]): (n_labels,) which labels are symmetric.
    RETURNS (Decisions): keep (n_pairs, n_labels) and the scores to write.
    """
    probs = predictions.probs
    n_pairs, n_labels = probs.shape
    rows = numpy.arange(n_pairs)
    symmetric_any = symmetric is not None and bool(symmetric.any())
    # (the reverse direction of each pair: only the symmetric and one-per-pair steps need it)
    needs_reverse = n_pairs and (symmetric_any or one_relation_per_pair)
    pairs = predictions.candidates.global_pairs if needs_reverse else None
    reverse = _reverse_rows(pairs) if needs_reverse else rows
    if symmetric_any and n_pairs:
        spans = predictions.candidates.spans[pairs]  # (n_pairs, 2 (head, tail), 2 (start, end))
        heads, tails = spans[:, 0], spans[:, 1]
        later = (heads[:, 0] > tails[:, 0]) | ((heads[:, 0] == tails[:, 0]) & (heads[:, 1] > tails[:, 1]))
        probs = probs.copy()
        mean = (probs[:, symmetric] + probs[reverse][:, symmetric]) / 2
        probs[:, symmetric] = numpy.where((later & (reverse != rows))[:, None], 0.0, mean)
    thresholds = numpy.asarray(thresholds, dtype="float32").reshape(n_labels)
    keep = predictions.allowed & (probs >= thresholds[None, :])
    if exclusive and n_pairs:
        best = numpy.zeros_like(keep)
        best[rows, numpy.where(predictions.allowed, probs, -1.0).argmax(axis=1)] = True
        keep &= best
    if one_relation_per_pair and n_pairs:
        top = numpy.where(keep, probs, -1.0).max(axis=1)
        beaten = (top[reverse] > top) | ((top[reverse] == top) & (reverse < rows))
        keep[beaten & (reverse != rows)] = False
    return Decisions(keep, probs)


def _reverse_rows(pairs: numpy.ndarray) -> numpy.ndarray:
    """(n_pairs,) for `pairs` (n_pairs, 2) of (head, tail) rows into a batch's spans, the row of
    each pair's reverse direction (tail, head), or the row itself when that direction is not a
    candidate. Vectorized: a sorted search over pair keys."""
    n_spans = int(pairs.max()) + 1
    keys = pairs[:, 0] * n_spans + pairs[:, 1]
    order = numpy.argsort(keys)
    wanted = pairs[:, 1] * n_spans + pairs[:, 0]
    pos = numpy.minimum(numpy.searchsorted(keys[order], wanted), len(keys) - 1)
    found = keys[order][pos] == wanted
    return numpy.where(found, order[pos], numpy.arange(len(keys)))


def write_relations(
    docs: Sequence[Doc],
    predictions: RelationPredictions,
    decisions: Decisions,
    labels: Sequence[str],
) -> None:
    """Set each Doc's ``doc._.relations`` to the kept relations of its pairs (replacing what it
    had), in pair order, then label order; with the context and its attention weights when the
    predictions hold attention. O(kept relations), plus O(n_docs): the arrays are gathered for
    the kept relations at once, and the records, built from the candidates' own spans, are
    stored without the setter's validation (`set_relation_records`), as
    `Relation.to_dict` would write them.

    docs (Sequence[Doc]): the batch's Docs, in the order given to `predict`.
    RAISES (ValueError): if `docs` is not the predicted batch (a different number of Docs).
    """
    candidates = predictions.candidates
    if len(docs) != len(candidates.pair_lengths):
        raise ValueError(f"write_relations: {len(docs)} Docs for predictions of {len(candidates.pair_lengths)}")
    records: List[List[Dict[str, Any]]] = [[] for _ in docs]
    rows, cols = numpy.nonzero(decisions.keep)
    if len(rows):
        doc_of = candidates.doc_of_pair[rows].tolist()
        pairs = candidates.global_pairs[rows]
        head_chars = candidates.span_chars[pairs[:, 0]].tolist()
        tail_chars = candidates.span_chars[pairs[:, 1]].tolist()
        head_labels = candidates.span_labels[pairs[:, 0]].tolist()
        tail_labels = candidates.span_labels[pairs[:, 1]].tolist()
        scores = decisions.scores[rows, cols].tolist()
        attention = offsets = None
        if predictions.attention is not None:
            lengths = predictions.contexts[:, 1] - predictions.contexts[:, 0]
            offsets = numpy.cumsum(lengths) - lengths
            attention = predictions.attention
        for j, (row, col, i) in enumerate(zip(rows.tolist(), cols.tolist(), doc_of)):
            strings = docs[i].vocab.strings
            record: Dict[str, Any] = {
                "head": [*head_chars[j], strings[head_labels[j]]],
                "tail": [*tail_chars[j], strings[tail_labels[j]]],
                "label": labels[col],
                "score": scores[j],
            }
            if attention is not None:
                start, end = predictions.contexts[row].tolist()
                context = docs[i][start:end]
                record["context"] = [context.start_char, context.end_char]
                record["attention"] = attention[offsets[row] : offsets[row] + end - start].tolist()
            records[i].append(record)
    for doc, doc_records in zip(docs, records):
        set_relation_records(doc, doc_records)


class RelationExtractor(TrainablePipe):
    """Predict directed, labelled relations between entity pairs; writes `doc._.relations`.

    For every candidate pair (see `spacy_ie.EntityPairCandidates.v2`) among the spans of
    ``doc.ents`` (`spans_key` null) or the span group ``doc.spans[spans_key]``, the model gives
    one score per label:
    - ``exclusive_classes = false``: independent sigmoids, binary cross-entropy loss, every label
      whose probability reaches its threshold is predicted (like spaCy's textcat_multilabel);
    - ``exclusive_classes = true``: a softmax over the labels plus a no-relation class,
      cross-entropy loss, at most one label per pair (like spaCy's textcat).
    `threshold` applies to every label without an entry in `thresholds`. For a label in
    `symmetric_labels` the two directions of a pair get their mean probability and one relation
    is written, with the earlier span as head. With `one_relation_per_pair`, of a pair's two
    directions only the likelier keeps its relations (SemEval-2010 Task 8: one directed relation
    per sentence). With `store_attention`, each predicted relation
    keeps its context span and the context attention weights.

    During training the candidates come from the gold spans of each example (aligned to the
    predicted Doc), so a jointly trained NER does not feed the relation extractor its own
    early mistakes; at inference they come from the predicted spans (e.g. from `ner`). With
    `train_on_predicted`, the spans of each example's predicted Doc whose boundaries no gold
    span has are added as candidates too (see `training_candidates`): the model then also learns
    to reject pairs with a spurious or mis-bounded argument, the end-to-end errors that gold
    spans never show it. Their entities must be on the predicted Docs: from entities predicted
    by models that did not see those texts (k-fold: `python -m spacy_ie cross-annotate`, read by
    `spacy_ie.RelationCorpus.v1`'s `predicted_entities`), or from an annotating `ner`.

    `class_weights` (label -> weight, default 1) weighs the loss of each label's positive
    examples, for rare labels: with sigmoids, the positive term of the label's binary
    cross-entropy (PyTorch's ``BCEWithLogitsLoss(pos_weight=...)``); with a softmax, the
    cross-entropy of the pairs whose gold label it is (``CrossEntropyLoss(weight=...)``, the
    no-relation class weighing 1). Inverse class frequency (King & Zeng 2001; scikit-learn's
    ``class_weight="balanced"``) is the usual start.
    """

    def __init__(
        self,
        vocab: Vocab,
        model: Model,
        name: str = "relation_extractor",
        *,
        candidates: Optional[EntityPairCandidates] = None,
        spans_key: Optional[str] = None,
        threshold: float = 0.5,
        thresholds: Optional[Dict[str, float]] = None,
        exclusive_classes: bool = False,
        one_relation_per_pair: bool = False,
        symmetric_labels: Sequence[str] = (),
        store_attention: bool = False,
        train_on_predicted: bool = False,
        class_weights: Optional[Dict[str, float]] = None,
        scorer: Optional[Callable] = None,
    ) -> None:
        """RAISES (ValueError): a `threshold` outside [0, 1], or a class weight that is not
        positive."""
        register_extensions()
        if not 0.0 <= threshold <= 1.0:
            raise ValueError(f"threshold must be in [0, 1], got {threshold}")
        bad = {label: w for label, w in (class_weights or {}).items() if not w > 0}
        if bad:
            raise ValueError(f"[{name}] class_weights must be positive, got {bad}")
        self.vocab = vocab
        self.model = model
        self.name = name
        self.candidates = candidates if candidates is not None else EntityPairCandidates()
        self.scorer = scorer
        self.cfg: Dict[str, Any] = {
            "labels": [],
            "spans_key": spans_key,
            "threshold": threshold,
            "thresholds": dict(thresholds or {}),
            "exclusive_classes": exclusive_classes,
            "one_relation_per_pair": one_relation_per_pair,
            "symmetric_labels": list(symmetric_labels),
            "store_attention": store_attention,
            "train_on_predicted": train_on_predicted,
            "class_weights": dict(class_weights or {}),
            "type_constraints": self.candidates.to_dict(),
        }

    @property
    def labels(self) -> Tuple[str, ...]:
        """The relation labels, in output column order."""
        return tuple(self.cfg["labels"])

    @property
    def label_data(self) -> List[str]:
        return list(self.labels)

    def add_label(self, label: str) -> int:
        """Add a relation label; only before the model is initialized.

        RETURNS (int): 0 if the label was present, else 1.
        RAISES (ValueError): if `label` is not a string, or the output layer is already sized.
        """
        if not isinstance(label, str):
            raise ValueError(Errors.E187)
        if label in self.labels:
            return 0
        self._allow_extra_label()
        self.cfg["labels"].append(label)
        self.vocab.strings.add(label)
        return 1

    def get_spans(self, doc: Doc) -> List[Span]:
        """The spans of `doc` that relations may connect (``doc.ents``, or the span group
        `spans_key`), as `span_list` orders them: sorted, distinct, none empty."""
        key = self.cfg["spans_key"]
        return span_list(doc.ents if key is None else doc.spans.get(key, []))

    # --- prediction ---------------------------------------------------------------------

    def predict(self, docs: Iterable[Doc]) -> RelationPredictions:
        """Score every candidate pair of `docs`. RETURNS (RelationPredictions)."""
        docs = list(docs)
        candidates = Candidates.from_spans(docs, [self.get_spans(doc) for doc in docs], self.candidates)
        if not any(len(doc) for doc in docs):
            # As spaCy's own components: a batch without a token skips the model (a transformer
            # listener cannot pool a batch of empty Docs).
            n_labels = len(self.labels)
            return RelationPredictions(
                candidates=candidates,
                probs=numpy.zeros((0, n_labels), dtype="float32"),
                allowed=numpy.zeros((0, n_labels), dtype=bool),
                contexts=numpy.zeros((0, 2), dtype="int32"),
                attention=numpy.zeros((0,), dtype="float32") if self.cfg["store_attention"] else None,
            )
        scores = self.model.predict((docs, candidates))
        ops = self.model.ops
        logits = scores.logits
        if self.cfg["exclusive_classes"]:
            probs = ops.softmax(logits) if len(logits) else logits
        else:
            probs = ops.sigmoid(logits)
        weights = self.candidates.label_weights(candidates, self.labels, self.vocab.strings)
        return RelationPredictions(
            candidates=candidates,
            probs=ops.to_numpy(probs)[:, : len(self.labels)] * weights,
            allowed=weights > 0,
            contexts=scores.contexts,
            attention=ops.to_numpy(scores.attention) if self.cfg["store_attention"] else None,
        )

    def decide(
        self, predictions: RelationPredictions, thresholds: Optional[Dict[str, float]] = None
    ) -> Decisions:
        """`decide` with this component's settings; `thresholds` (label -> threshold, every label)
        replaces the configured ones for this call only. Changes nothing."""
        if thresholds is None:
            thresholds = self.label_thresholds()
        symmetric = set(self.cfg["symmetric_labels"])
        return decide(
            predictions,
            numpy.asarray([thresholds[label] for label in self.labels], dtype="float32"),
            symmetric=numpy.asarray([label in symmetric for label in self.labels], dtype=bool),
            exclusive=self.cfg["exclusive_classes"],
            one_relation_per_pair=self.cfg["one_relation_per_pair"],
        )

    def label_thresholds(self) -> Dict[str, float]:
        """The configured threshold of each label: its entry in `thresholds`, else `threshold`."""
        per_label, default = self.cfg["thresholds"], self.cfg["threshold"]
        return {label: float(per_label.get(label, default)) for label in self.labels}

    def set_annotations(self, docs: Iterable[Doc], predictions: RelationPredictions) -> None:
        """Write `doc._.relations` from `predictions` at the configured thresholds, replacing
        what the Docs had (`decide`, then `write_relations`)."""
        write_relations(list(docs), predictions, self.decide(predictions), self.labels)

    # --- training -----------------------------------------------------------------------

    def update(
        self,
        examples: Iterable[Example],
        *,
        drop: float = 0.0,
        sgd: Optional[Callable] = None,
        losses: Optional[Dict[str, float]] = None,
    ) -> Dict[str, float]:
        """Learn from a batch of examples, with candidates from their gold spans (and their
        predicted spans with `train_on_predicted`; see `training_candidates`).

        A batch without candidates has zero loss and still completes the backward pass, so
        a shared encoder's update is never left waiting on this listener. A batch without a
        token is skipped, as spaCy's own components skip it (there is nothing to update).
        """
        if losses is None:
            losses = {}
        losses.setdefault(self.name, 0.0)
        validate_examples(examples, "RelationExtractor.update")
        examples = list(examples)
        if not any(len(eg.predicted) for eg in examples):
            return losses
        docs = [eg.predicted for eg in examples]
        candidates = self.training_candidates(examples)
        set_dropout_rate(self.model, drop)
        scores, backprop = self.model.begin_update((docs, candidates))
        loss, d_logits = self.get_loss(examples, (candidates, scores))
        backprop(d_logits)
        if sgd is not None:
            self.finish_update(sgd)
        losses[self.name] += loss
        return losses

    def training_candidates(self, examples: Sequence[Example]) -> Candidates:
        """The candidates among each example's gold spans, aligned to its predicted Doc (so a
        jointly trained NER does not feed the relation extractor its own early mistakes).

        With `train_on_predicted`, also among the predicted Doc's own spans (``doc.ents`` or
        ``doc.spans[spans_key]``) whose boundaries differ from every gold span's: a gold
        relation never has such an argument, so all their pairs are negatives. A predicted span
        with a gold span's boundaries is left out (the gold one, with the gold label, stands for
        it). The predicted entities should come from models that did not see the training texts:
        k-fold ("jackknifed") predictions, as parsers are trained on jackknifed part-of-speech
        tags (e.g. Chen & Manning 2014, "A Fast and Accurate Dependency Parser using Neural
        Networks", Sec. 4.1); see `spacy_ie cross-annotate`.
        """
        docs = [eg.predicted for eg in examples]
        on_predicted = self.cfg.get("train_on_predicted", False)  # absent in older models
        spans = []
        for eg in examples:
            gold = [s for s in align_spans(eg, self.get_spans(eg.reference)) if s is not None]
            predicted_only = []
            if on_predicted:
                bounds = {(s.start, s.end) for s in gold}
                predicted_only = [s for s in self.get_spans(eg.predicted) if (s.start, s.end) not in bounds]
            spans.append(span_list(gold + predicted_only))
        return Candidates.from_spans(docs, spans, self.candidates)

    def get_loss(
        self, examples: Iterable[Example], scores: Tuple[Candidates, RelationScores]
    ) -> Tuple[float, Floats2d]:
        """Loss and gradient of the logits for `scores` = (candidates, model output), the
        candidates usually from `training_candidates`: binary cross-entropy over sigmoids, or
        cross-entropy over a softmax with a no-relation class (`exclusive_classes`); a label's
        positive examples weighted by its `class_weights` entry.

        RETURNS (Tuple[float, Floats2d]): the loss, averaged over pairs and labels (for
            reporting), and d_logits (n_pairs, nO), the gradient of the loss SUMMED over them
            (``probs - truths``): spaCy's convention, as its ``textcat`` reports a mean squared
            error and returns ``scores - truths``. Wrap the model in
            ``spacy_ie.MeanOverCandidates.v1`` to average the gradient instead.
        """
        candidates, model_scores = scores
        logits = model_scores.logits
        truths = self._truths(list(examples), candidates)
        ops = self.model.ops
        if len(truths) == 0:
            return 0.0, ops.alloc2f(*logits.shape)
        truths = ops.asarray2f(truths)
        eps = 1e-7
        weights = self._class_weights()
        if self.cfg["exclusive_classes"]:
            probs = ops.softmax(logits)
            # each pair's loss times the weight of its gold class
            row_weights = (truths * weights).sum(axis=1, keepdims=True) if weights is not None else 1.0
            loss = -(row_weights * truths * ops.xp.log(probs + eps)).sum(axis=1).mean()
            return float(loss), row_weights * (probs - truths)
        probs = ops.sigmoid(logits)
        positive = truths * weights if weights is not None else truths
        loss = -(positive * ops.xp.log(probs + eps) + (1 - truths) * ops.xp.log(1 - probs + eps)).mean()
        # d/d(logits) of -(w y log p + (1 - y) log(1 - p)) = p (w y + 1 - y) - w y: p - y at w = 1
        return float(loss), probs * (positive + 1 - truths) - positive

    def _class_weights(self) -> Optional[Floats2d]:
        """(1, nO) weight of each output column from `class_weights` (1 when a label has none;
        1 for the no-relation column), or None without any class weight."""
        given = self.cfg.get("class_weights") or {}  # absent in older models
        if not given:
            return None
        weights = [given.get(label, 1.0) for label in self.labels] + [1.0] * self.cfg["exclusive_classes"]
        return self.model.ops.asarray2f([weights])

    def _truths(self, examples: List[Example], candidates: Candidates) -> numpy.ndarray:
        """Targets of the candidates: (n_pairs, n_outputs), with a last no-relation column for
        exclusive classes. A gold relation is the target of the candidate whose head and tail
        have its (aligned) head's and tail's boundaries; of a symmetric one, of both directions."""
        labels = {label: i for i, label in enumerate(self.labels)}
        symmetric = set(self.cfg["symmetric_labels"])
        exclusive = self.cfg["exclusive_classes"]
        truth = numpy.zeros((len(candidates), len(labels) + exclusive), dtype="float32")
        bounds = candidates.spans[candidates.global_pairs].reshape(-1, 4).tolist()
        docs = candidates.doc_of_pair.tolist()
        row_of = {(i, *b): r for r, (i, b) in enumerate(zip(docs, bounds))}  # per Doc, as before
        for i, eg in enumerate(examples):
            gold = eg.reference._.relations
            aligned = align_spans(eg, [r.head for r in gold] + [r.tail for r in gold])
            for rel, head, tail in zip(gold, aligned[: len(gold)], aligned[len(gold) :]):
                if rel.label not in labels or head is None or tail is None:
                    continue
                keys = [(head.start, head.end, tail.start, tail.end)]
                if rel.label in symmetric:
                    keys.append((tail.start, tail.end, head.start, head.end))
                for key in keys:
                    row = row_of.get((i, *key))
                    if row is not None and not (exclusive and truth[row].any()):
                        truth[row, labels[rel.label]] = 1.0
        if exclusive and len(truth):
            truth[:, -1] = truth[:, :-1].sum(axis=1) == 0
        return truth

    def initialize(
        self,
        get_examples: Callable[[], Iterable[Example]],
        *,
        nlp: Optional[Language] = None,
        labels: Optional[Iterable[str]] = None,
    ) -> None:
        """Collect the labels (from the gold `doc._.relations`, unless given), learn the
        candidates' type constraints when asked, and initialize the model.

        RAISES (ValueError): if there are no labels, or `class_weights` names a label that is
            not one of them.
        """
        validate_get_examples(get_examples, "RelationExtractor.initialize")
        if labels is None:
            labels = sorted({r.label for eg in get_examples() for r in eg.reference._.relations})
        for label in labels:
            self.add_label(label)
        if not self.labels:
            raise ValueError(
                f"[{self.name}] No relation labels: the training data has no doc._.relations "
                "(convert it with `python -m spacy_ie convert`) and no labels were given."
            )
        unknown = sorted(set(self.cfg.get("class_weights") or {}) - set(self.labels))
        if unknown:
            raise ValueError(f"[{self.name}] class_weights for unknown labels {unknown}; the labels are {list(self.labels)}")
        self.candidates.initialize(
            (r.label, r.head.label_, r.tail.label_)
            for eg in get_examples()
            for r in eg.reference._.relations
        )
        self.cfg["type_constraints"] = self.candidates.to_dict()
        self.model.set_dim("nO", len(self.labels) + self.cfg["exclusive_classes"])
        docs = [eg.reference for eg in islice(get_examples(), 10)]
        spans = [self.get_spans(doc) for doc in docs]
        self.model.initialize(X=(docs, Candidates.from_spans(docs, spans, self.candidates)))
        self._warn_unreachable(get_examples)

    def _warn_unreachable(self, get_examples: Callable[[], Iterable[Example]]) -> None:
        """Warn once, with counts, when gold relations can never be predicted: a head or tail
        outside the span source, a (head label, tail label) the type constraints forbid, or a
        head and tail that are no candidate pair (sentence, distance, cap)."""
        counts: Counter = Counter()
        total = 0
        for eg in get_examples():
            gold = eg.reference._.relations
            if not gold:
                continue
            spans = self.get_spans(eg.reference)
            index = {(s.start, s.end, s.label_): i for i, s in enumerate(spans)}
            pairs = set(map(tuple, self.candidates(eg.reference, spans).tolist()))
            for rel in gold:
                total += 1
                head = index.get((rel.head.start, rel.head.end, rel.head.label_))
                tail = index.get((rel.tail.start, rel.tail.end, rel.tail.label_))
                if head is None or tail is None:
                    counts["span"] += 1
                elif not self.candidates.admits(rel.label, rel.head.label_, rel.tail.label_):
                    counts["type"] += 1
                elif (head, tail) not in pairs:
                    counts["pair"] += 1
        key = self.cfg["spans_key"]
        source = "doc.ents" if key is None else f"doc.spans[{key!r}]"
        gen = self.candidates
        reasons = {
            "span": f"a head or tail is not among the spans of {source} (e.g. overlapping or "
            "nested entities, which doc.ents cannot hold): set spans_key to a "
            "span group that holds every entity (the converters write doc.spans[\"entities\"])",
            "type": "their (head label, tail label) is outside the type constraints (of their "
            "relation label, or of every label), which are hard: widen "
            "`candidates.type_constraints`, or learn them (learn_types) with unseen_type_weight > 0 "
            "(spacy_ie.EntityPairCandidates.v2) so that unseen type pairs are penalized, not "
            "forbidden",
            "pair": "head and tail are no candidate pair (different sentences, more than "
            f"max_distance = {gen.max_distance} tokens apart, or beyond max_candidates = "
            f"{gen.max_candidates}): raise those settings of `candidates`",
        }
        found = [f"{counts[key]} because {text}" for key, text in reasons.items() if counts[key]]
        if found:
            warnings.warn(
                f"[{self.name}] {sum(counts.values())} of {total} gold relations in the training "
                f"data can never be predicted: {'; '.join(found)}.",
                UserWarning,
                stacklevel=2,
            )

    def score(self, examples: Iterable[Example], **kwargs) -> Dict[str, Any]:
        """Relation scores of `examples` (see `spacy_ie.scorer.score_relations`)."""
        validate_examples(examples, "RelationExtractor.score")
        kwargs.setdefault("labels", self.labels)
        kwargs.setdefault("symmetric_labels", self.cfg["symmetric_labels"])
        return self.scorer(examples, **kwargs)

    # --- serialization: the learned type constraints travel in cfg ------------------------

    def from_disk(self, path, *, exclude=tuple()) -> "RelationExtractor":
        """Load as every TrainablePipe does, then restore the type constraints and check that
        the model's output width fits the labels. RAISES (ValueError): if it does not."""
        super().from_disk(path, exclude=exclude)
        self.candidates.from_dict(self.cfg.get("type_constraints", {}))
        self._check_output_width(f"{path}/cfg and {path}/model")
        return self

    def from_bytes(self, bytes_data, *, exclude=tuple()) -> "RelationExtractor":
        """As `from_disk`. RAISES (ValueError): if the output width does not fit the labels."""
        super().from_bytes(bytes_data, exclude=exclude)
        self.candidates.from_dict(self.cfg.get("type_constraints", {}))
        self._check_output_width("the serialized component")
        return self

    def _check_output_width(self, source: str) -> None:
        """RAISES (ValueError): if the loaded model's output width is not the number of labels
        (+1 for the no-relation class of exclusive classes): a damaged or mismatched cfg."""
        if not self.model.has_dim("nO") or self.model.get_dim("nO") is None:
            return
        expected = len(self.labels) + bool(self.cfg["exclusive_classes"])
        width = self.model.get_dim("nO")
        if width != expected:
            raise ValueError(
                f"[{self.name}] The model predicts {width} outputs but the component has "
                f"{len(self.labels)} labels{' and a no-relation class' if self.cfg['exclusive_classes'] else ''} "
                f"({expected} outputs): {source} do not belong together (a missing or damaged cfg?)."
            )
