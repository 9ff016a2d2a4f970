"""The `relation_extractor` pipeline component: predicts `doc._.relations` between entities."""
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

from ..candidates import EntityPairCandidates
from ..ml import DEFAULT_TOK2VEC_CONFIG
from ..ml.relation_model import Candidates, RelationScores
from ..relations import Relation, register_extensions

register_extensions()

DEFAULT_MODEL_CONFIG = """
[model]
@architectures = "spacy_ie.RelationModel.v1"
hidden_width = 128
dropout = 0.1
label_width = 16
distance_width = 16
context_window = 10
"""
DEFAULT_MODEL = Config().from_str(DEFAULT_MODEL_CONFIG + DEFAULT_TOK2VEC_CONFIG)["model"]


@Language.factory(
    "relation_extractor",
    assigns=["doc._.relations"],
    default_config={
        "model": DEFAULT_MODEL,
        "candidates": {"@misc": "spacy_ie.EntityPairCandidates.v1"},
        "span_source": "ents",
        "threshold": 0.5,
        "thresholds": None,
        "exclusive_classes": False,
        "one_relation_per_pair": False,
        "symmetric_labels": [],
        "store_attention": False,
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
    span_source: str,
    threshold: float,
    thresholds: Optional[Dict[str, float]],
    exclusive_classes: bool,
    one_relation_per_pair: bool,
    symmetric_labels: List[str],
    store_attention: bool,
    scorer: Optional[Callable],
) -> "RelationExtractor":
    """Create a `RelationExtractor` (see its docstring for the settings)."""
    return RelationExtractor(
        nlp.vocab,
        model,
        name,
        candidates=candidates,
        span_source=span_source,
        threshold=threshold,
        thresholds=thresholds,
        exclusive_classes=exclusive_classes,
        one_relation_per_pair=one_relation_per_pair,
        symmetric_labels=symmetric_labels,
        store_attention=store_attention,
        scorer=scorer,
    )


class RelationPredictions(NamedTuple):
    """What `RelationExtractor.predict` returns for a batch.

    candidates (Candidates): per Doc, the (head, tail) pairs that were scored.
    probs (numpy array): (n_pairs, n_labels) probability of each label per pair (CPU).
    scores (RelationScores): the model output (logits, contexts, attention).
    """

    candidates: Candidates
    probs: numpy.ndarray
    scores: RelationScores


class RelationExtractor(TrainablePipe):
    """Predict directed, labelled relations between entity pairs; writes `doc._.relations`.

    For every candidate pair (see `spacy_ie.EntityPairCandidates.v1`) among the spans of
    `span_source` (``"ents"`` for ``doc.ents``, else the key of a span group), the model gives
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
    early mistakes; at inference they come from the predicted spans (e.g. from `ner`).
    """

    def __init__(
        self,
        vocab: Vocab,
        model: Model,
        name: str = "relation_extractor",
        *,
        candidates: Optional[EntityPairCandidates] = None,
        span_source: str = "ents",
        threshold: float = 0.5,
        thresholds: Optional[Dict[str, float]] = None,
        exclusive_classes: bool = False,
        one_relation_per_pair: bool = False,
        symmetric_labels: Sequence[str] = (),
        store_attention: bool = False,
        scorer: Optional[Callable] = None,
    ) -> None:
        register_extensions()
        if not 0.0 <= threshold <= 1.0:
            raise ValueError(f"threshold must be in [0, 1], got {threshold}")
        self.vocab = vocab
        self.model = model
        self.name = name
        self.candidates = candidates if candidates is not None else EntityPairCandidates()
        self.scorer = scorer
        self.cfg: Dict[str, Any] = {
            "labels": [],
            "span_source": span_source,
            "threshold": threshold,
            "thresholds": dict(thresholds or {}),
            "exclusive_classes": exclusive_classes,
            "one_relation_per_pair": one_relation_per_pair,
            "symmetric_labels": list(symmetric_labels),
            "store_attention": store_attention,
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
        """The spans of `doc` that relations may connect, sorted by position."""
        source = self.cfg["span_source"]
        spans = doc.ents if source == "ents" else doc.spans.get(source, [])
        return sorted(spans, key=lambda s: (s.start, s.end))

    # --- prediction ---------------------------------------------------------------------

    def predict(self, docs: Iterable[Doc]) -> RelationPredictions:
        """Score every candidate pair of `docs`. RETURNS (RelationPredictions)."""
        docs = list(docs)
        candidates = [self.candidates(doc, self.get_spans(doc)) for doc in docs]
        scores = self.model.predict((docs, candidates))
        return RelationPredictions(candidates, self._probabilities(scores.logits), scores)

    def set_annotations(self, docs: Iterable[Doc], predictions: RelationPredictions) -> None:
        """Write `doc._.relations` from `predictions`, replacing what the Docs had."""
        labels = self.labels
        docs = list(docs)
        pairs = [(i, h, t) for i, doc_pairs in enumerate(predictions.candidates) for h, t in doc_pairs]
        # (doc, tail, head) row of each pair: needed for symmetric labels and one_relation_per_pair
        needs_reverse = self.cfg["symmetric_labels"] or self.cfg["one_relation_per_pair"]
        reverse = _reverse_rows(pairs) if needs_reverse else None
        probs = self._symmetrize(pairs, reverse, predictions.probs[:, : len(labels)])
        allowed = self._allowed_mask(pairs)
        thresholds = numpy.asarray(
            [self.cfg["thresholds"].get(label, self.cfg["threshold"]) for label in labels],
            dtype="float32",
        )
        keep = allowed & (probs >= thresholds[None, :])
        if self.cfg["exclusive_classes"] and len(pairs):
            best = numpy.zeros_like(keep)
            best[numpy.arange(len(pairs)), numpy.where(allowed, probs, -1.0).argmax(axis=1)] = True
            keep &= best
        if self.cfg["one_relation_per_pair"] and len(pairs):
            # Of a pair's two directions, keep only the one whose kept relation is likeliest
            # (ties: the direction scored first).
            top = numpy.where(keep, probs, -1.0).max(axis=1)
            rows = numpy.arange(len(pairs))
            beaten = (top[reverse] > top) | ((top[reverse] == top) & (reverse < rows))
            keep[beaten & (reverse != rows)] = False
        relations: List[List[Relation]] = [[] for _ in docs]
        contexts = predictions.scores.contexts
        attention = offsets = None
        if self.cfg["store_attention"] and len(pairs):
            attention = self.model.ops.to_numpy(predictions.scores.attention)
            lengths = contexts[:, 1] - contexts[:, 0]
            offsets = numpy.cumsum(lengths) - lengths
        for row, col in zip(*numpy.nonzero(keep)):
            i, head, tail = pairs[row]
            context = weights = None
            if attention is not None:
                start, end = contexts[row]
                context = docs[i][start:end]
                weights = tuple(attention[offsets[row] : offsets[row] + end - start].tolist())
            relations[i].append(
                Relation(head, tail, labels[col], float(probs[row, col]), context, weights)
            )
        for doc, doc_relations in zip(docs, relations):
            doc._.relations = doc_relations

    def _probabilities(self, logits: Floats2d) -> numpy.ndarray:
        ops = self.model.ops
        if self.cfg["exclusive_classes"]:
            return ops.to_numpy(ops.softmax(logits)) if len(logits) else ops.to_numpy(logits)
        return ops.to_numpy(ops.sigmoid(logits))

    def _symmetrize(
        self,
        pairs: List[Tuple[int, Span, Span]],
        reverse: Optional[numpy.ndarray],
        probs: numpy.ndarray,
    ) -> numpy.ndarray:
        """Mean of both directions for symmetric labels, kept on the earlier-head direction only
        (the other direction, when it was scored too, is zeroed)."""
        columns = [c for c, label in enumerate(self.labels) if label in self.cfg["symmetric_labels"]]
        if not columns or not pairs:
            return probs
        later = numpy.asarray([(h.start, h.end) > (t.start, t.end) for _, h, t in pairs])
        probs = probs.copy()
        mean = (probs[:, columns] + probs[reverse][:, columns]) / 2
        probs[:, columns] = numpy.where((later & (reverse != numpy.arange(len(pairs))))[:, None], 0.0, mean)
        return probs

    def _allowed_mask(self, pairs: List[Tuple[int, Span, Span]]) -> numpy.ndarray:
        """(n_pairs, n_labels) True where the type constraints allow the label for the pair."""
        if not self.candidates.type_constraints:
            return numpy.ones((len(pairs), len(self.labels)), dtype=bool)
        cache: Dict[Tuple[str, str], List[bool]] = {}
        rows = []
        for _, head, tail in pairs:
            key = (head.label_, tail.label_)
            if key not in cache:
                cache[key] = self.candidates.allowed_labels(*key, self.labels)
            rows.append(cache[key])
        return numpy.asarray(rows, dtype=bool).reshape(len(pairs), len(self.labels))

    # --- training -----------------------------------------------------------------------

    def update(
        self,
        examples: Iterable[Example],
        *,
        drop: float = 0.0,
        sgd: Optional[Callable] = None,
        losses: Optional[Dict[str, float]] = None,
    ) -> Dict[str, float]:
        """Learn from a batch of examples, with candidates from their gold spans.

        A batch without candidates has zero loss and still completes the backward pass, so
        a shared encoder's update is never left waiting on this listener.
        """
        if losses is None:
            losses = {}
        losses.setdefault(self.name, 0.0)
        validate_examples(examples, "RelationExtractor.update")
        examples = list(examples)
        docs = [eg.predicted for eg in examples]
        candidates, truths = self._examples_to_truth(examples)
        set_dropout_rate(self.model, drop)
        scores, backprop = self.model.begin_update((docs, candidates))
        loss, d_logits = self._loss(scores.logits, truths)
        backprop(d_logits)
        if sgd is not None:
            self.finish_update(sgd)
        losses[self.name] += loss
        return losses

    def get_loss(self, examples: Iterable[Example], scores: RelationScores) -> Tuple[float, Floats2d]:
        """Loss and gradient of the logits for `scores`, computed on the examples' gold
        candidates (as `update` does). RETURNS (Tuple[float, Floats2d])."""
        _, truths = self._examples_to_truth(list(examples))
        return self._loss(scores.logits, truths)

    def _loss(self, logits: Floats2d, truths: numpy.ndarray) -> Tuple[float, Floats2d]:
        ops = self.model.ops
        if len(truths) == 0:
            return 0.0, ops.alloc2f(*logits.shape)
        truths = ops.asarray2f(truths)
        eps = 1e-7
        if self.cfg["exclusive_classes"]:
            probs = ops.softmax(logits)
            loss = -(truths * ops.xp.log(probs + eps)).sum(axis=1).mean()
        else:
            probs = ops.sigmoid(logits)
            loss = -(
                truths * ops.xp.log(probs + eps) + (1 - truths) * ops.xp.log(1 - probs + eps)
            ).mean()
        # d(cross-entropy)/d(logits) for both the sigmoid and the softmax case.
        return float(loss), probs - truths

    def _examples_to_truth(self, examples: List[Example]) -> Tuple[Candidates, numpy.ndarray]:
        """Candidates from each example's gold spans (aligned to its predicted Doc) and their
        targets: (n_pairs, n_outputs), with a last no-relation column for exclusive classes."""
        labels = {label: i for i, label in enumerate(self.labels)}
        symmetric = set(self.cfg["symmetric_labels"])
        exclusive = self.cfg["exclusive_classes"]
        candidates: Candidates = []
        rows: List[numpy.ndarray] = []
        for eg in examples:
            gold_spans = self.get_spans(eg.reference)
            gold = eg.reference._.relations
            n_spans, n_gold = len(gold_spans), len(gold)
            aligned = align_spans(
                eg, gold_spans + [r.head for r in gold] + [r.tail for r in gold]
            )
            spans = [s for s in aligned[:n_spans] if s is not None]
            pairs = self.candidates(eg.predicted, spans)
            candidates.append(pairs)
            truth = numpy.zeros((len(pairs), len(labels) + exclusive), dtype="float32")
            row_of = {(h.start, h.end, t.start, t.end): r for r, (h, t) in enumerate(pairs)}
            heads = aligned[n_spans : n_spans + n_gold]
            tails = aligned[n_spans + n_gold :]
            for rel, head, tail in zip(gold, heads, tails):
                if rel.label not in labels or head is None or tail is None:
                    continue
                keys = [(head.start, head.end, tail.start, tail.end)]
                if rel.label in symmetric:
                    keys.append((tail.start, tail.end, head.start, head.end))
                for key in keys:
                    if key in row_of and not (exclusive and truth[row_of[key]].any()):
                        truth[row_of[key], labels[rel.label]] = 1.0
            if exclusive and len(pairs):
                truth[:, -1] = truth[:, :-1].sum(axis=1) == 0
            rows.append(truth)
        truths = numpy.concatenate(rows) if rows else numpy.zeros((0, len(labels) + exclusive), dtype="float32")
        return candidates, truths

    def initialize(
        self,
        get_examples: Callable[[], Iterable[Example]],
        *,
        nlp: Optional[Language] = None,
        labels: Optional[Iterable[str]] = None,
    ) -> None:
        """Collect the labels (from the gold `doc._.relations`, unless given), learn the
        candidates' type constraints when asked, and initialize the model.

        RAISES (ValueError): if there are no labels.
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
        self.candidates.initialize(
            (r.label, r.head.label_, r.tail.label_)
            for eg in get_examples()
            for r in eg.reference._.relations
        )
        self.cfg["type_constraints"] = self.candidates.to_dict()
        self.model.set_dim("nO", len(self.labels) + self.cfg["exclusive_classes"])
        sample = list(islice(get_examples(), 10))
        docs = [eg.reference for eg in sample]
        candidates = [self.candidates(doc, self.get_spans(doc)) for doc in docs]
        self.model.initialize(X=(docs, candidates))

    def score(self, examples: Iterable[Example], **kwargs) -> Dict[str, Any]:
        """Relation scores of `examples` (see `spacy_ie.scorer.score_relations`)."""
        validate_examples(examples, "RelationExtractor.score")
        kwargs.setdefault("labels", self.labels)
        kwargs.setdefault("symmetric_labels", self.cfg["symmetric_labels"])
        return self.scorer(examples, **kwargs)

    # --- serialization: the learned type constraints travel in cfg ------------------------

    def from_disk(self, path, *, exclude=tuple()) -> "RelationExtractor":
        super().from_disk(path, exclude=exclude)
        self.candidates.from_dict(self.cfg.get("type_constraints", {}))
        return self

    def from_bytes(self, bytes_data, *, exclude=tuple()) -> "RelationExtractor":
        super().from_bytes(bytes_data, exclude=exclude)
        self.candidates.from_dict(self.cfg.get("type_constraints", {}))
        return self


def _reverse_rows(pairs: List[Tuple[int, Span, Span]]) -> numpy.ndarray:
    """For each (doc index, head, tail) row, the row of (doc index, tail, head), or itself when
    that direction was not scored: (n_pairs,)."""
    row_of = {(i, h.start, h.end, t.start, t.end): r for r, (i, h, t) in enumerate(pairs)}
    return numpy.asarray(
        [row_of.get((i, t.start, t.end, h.start, h.end), r) for r, (i, h, t) in enumerate(pairs)],
        dtype="int64",
    ).reshape(len(pairs))


def align_spans(eg: Example, spans: Sequence[Span]) -> List[Optional[Span]]:
    """Map spans of ``eg.reference`` onto ``eg.predicted`` (same label), one per span; None
    where the predicted tokens cannot hold the span. Matches by character offsets when the two
    texts are identical (the usual case), else by spaCy's token alignment."""
    predicted = eg.predicted
    if predicted.text == eg.reference.text:
        return [
            predicted.char_span(s.start_char, s.end_char, label=s.label, alignment_mode="expand")
            for s in spans
        ]
    aligned = []
    for span in spans:
        found = eg.get_aligned_spans_y2x([span], allow_overlap=True)
        aligned.append(found[0] if found else None)
    return aligned
