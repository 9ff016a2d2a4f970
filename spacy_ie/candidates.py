"""Which entity pairs a relation extractor scores: `spacy_ie.EntityPairCandidates.v1`, and the
integer form in which the candidates of a batch travel from the component to the model and to the
decision rule (`Candidates`), as spaCy's spancat passes its suggester's span indices."""
from typing import Dict, Iterable, List, NamedTuple, Optional, Sequence, Set, Tuple

import numpy
from spacy.attrs import SENT_START
from spacy.tokens import Doc, Span
from spacy.util import registry

TypePair = Tuple[str, str]


def span_list(spans: Iterable[Span]) -> List[Span]:
    """The spans relations may connect, as the relation extractor indexes them: sorted by
    (start, end, label), each distinct (start, end, label) once, zero-length spans left out
    (they hold no token to represent them)."""
    distinct = {(s.start, s.end, s.label): s for s in spans if s.end > s.start}
    return [distinct[key] for key in sorted(distinct)]


def sentence_bounds(doc: Doc, starts: numpy.ndarray, ends: numpy.ndarray) -> numpy.ndarray:
    """The token range of the sentence(s) holding each span, as ``Span.sent`` gives it: from the
    start of the sentence of the span's first token to the end of the sentence of its last token.

    starts, ends (numpy int arrays): (n_spans,) token offsets of non-empty spans of `doc`.
    RETURNS (numpy int32 array): (n_spans, 2) start, end; (0, len(doc)) for every span when the
        Doc has no sentence boundaries.
    """
    n = len(starts)
    if not doc.has_annotation("SENT_START"):
        return numpy.tile(numpy.asarray([0, len(doc)], dtype="int32"), (n, 1))
    is_start = doc.to_array(SENT_START) == 1
    is_start[0] = True
    sent_of_token = numpy.cumsum(is_start) - 1
    sent_starts = numpy.flatnonzero(is_start)
    sent_ends = numpy.append(sent_starts[1:], len(doc))
    first = sent_of_token[numpy.asarray(starts, dtype="int64")]
    last = sent_of_token[numpy.asarray(ends, dtype="int64") - 1]
    return numpy.stack([sent_starts[first], sent_ends[last]], axis=1).astype("int32").reshape(n, 2)


class Candidates(NamedTuple):
    """The candidate pairs of a batch of Docs as integer arrays (numpy, CPU), Docs one after
    another. Built by `Candidates.from_spans`; read by `spacy_ie.RelationModel.v1` and the
    relation_extractor's decision rule (`spacy_ie.pipeline.relation_extractor.decide`).

    spans: (n_spans, 2) int32 Doc-local start, end token of each span of each Doc's span list.
    span_chars: (n_spans, 2) int64 start, end character of each span.
    span_labels: (n_spans,) uint64 hash of each span's label.
    span_sents: (n_spans, 2) int32 Doc-local token range of each span's sentence(s)
        (`sentence_bounds`).
    span_lengths: (n_docs,) int32 spans per Doc.
    pairs: (n_pairs, 2) int32 (head, tail) rows into the spans of the pair's own Doc.
    pair_lengths: (n_docs,) int32 pairs per Doc.
    """

    spans: numpy.ndarray
    span_chars: numpy.ndarray
    span_labels: numpy.ndarray
    span_sents: numpy.ndarray
    span_lengths: numpy.ndarray
    pairs: numpy.ndarray
    pair_lengths: numpy.ndarray

    @classmethod
    def from_spans(
        cls,
        docs: Sequence[Doc],
        spans: Sequence[Sequence[Span]],
        generator: "EntityPairCandidates",
    ) -> "Candidates":
        """The candidates that `generator` proposes among each Doc's `spans` (e.g. from
        `span_list`): O(n_spans) Python per Doc, the pairs vectorized."""
        bounds, chars, labels, sents, pairs = [], [], [], [], []
        for doc, doc_spans in zip(docs, spans):
            starts = numpy.asarray([s.start for s in doc_spans], dtype="int32")
            ends = numpy.asarray([s.end for s in doc_spans], dtype="int32")
            bounds.append(numpy.stack([starts, ends], axis=1).reshape(-1, 2))
            chars.append(numpy.asarray([(s.start_char, s.end_char) for s in doc_spans], dtype="int64").reshape(-1, 2))
            labels.append(numpy.asarray([s.label for s in doc_spans], dtype="uint64"))
            doc_sents = sentence_bounds(doc, starts, ends) if len(starts) else numpy.zeros((0, 2), "int32")
            sents.append(doc_sents)
            pairs.append(generator.pair_indices(starts, ends, doc_sents[:, 0], labels[-1], doc.vocab.strings))
        return cls(
            spans=_concat(bounds, (0, 2), "int32"),
            span_chars=_concat(chars, (0, 2), "int64"),
            span_labels=_concat(labels, (0,), "uint64"),
            span_sents=_concat(sents, (0, 2), "int32"),
            span_lengths=numpy.asarray([len(b) for b in bounds], dtype="int32"),
            pairs=_concat(pairs, (0, 2), "int32"),
            pair_lengths=numpy.asarray([len(p) for p in pairs], dtype="int32"),
        )

    def __len__(self) -> int:
        return len(self.pairs)

    @property
    def doc_of_pair(self) -> numpy.ndarray:
        """(n_pairs,) the index of each pair's Doc in the batch."""
        return numpy.repeat(numpy.arange(len(self.pair_lengths)), self.pair_lengths)

    @property
    def global_pairs(self) -> numpy.ndarray:
        """(n_pairs, 2) int64 (head, tail) rows into the spans of the whole batch."""
        offsets = numpy.cumsum(self.span_lengths, dtype="int64") - self.span_lengths
        return self.pairs.astype("int64") + offsets[self.doc_of_pair][:, None]


def _concat(arrays: List[numpy.ndarray], empty_shape: Tuple[int, ...], dtype: str) -> numpy.ndarray:
    return numpy.concatenate(arrays).astype(dtype) if arrays else numpy.zeros(empty_shape, dtype=dtype)


class EntityPairCandidates:
    """Ordered (head, tail) pairs of distinct spans that may stand in a relation.

    A pair is a candidate when both spans lie in the same sentence (if the Doc has sentence
    boundaries) and at most `max_distance` tokens apart (the gap between the spans), and,
    when type constraints are set, its (head label, tail label) is allowed for some relation
    label. At most `max_candidates` pairs are kept per Doc, the closest first, so cost stays
    bounded on very long Docs. Both orders of a pair are candidates: head and tail are
    directed. Zero-length spans are never candidates.

    Type constraints map a relation label to its allowed (head label, tail label) pairs. They
    are given, or learned from the gold relations at `initialize` when `learn_types` is true.
    The relation_extractor also uses them per pair and label at prediction time
    (`label_weights`): a label is *seen* for a type pair in its constraints (weight 1).

    - Given constraints (`learn_types` false) are hard: a type pair allowed for no label is no
      candidate, and a label outside its constraints is forbidden (weight 0). Use them when the
      schema is known.
    - Learned constraints are soft when `unseen_type_weight` > 0: a training set shows only the
      type pairs it happens to contain, so on new data a relation between types never seen
      together is possible. Every pair stays a candidate (in training, pairs of unseen types
      are negatives, so the model learns how unlikely they are), and the probability of a label
      for a type pair it was never seen with is multiplied by `unseen_type_weight`: with
      threshold t, such a relation is kept when its probability reaches t / unseen_type_weight.
      It is a fixed prior factor on unseen (label, type pair) combinations, as a soft constraint
      in place of a hard one. With `unseen_type_weight` = 0 learned constraints are hard too.
    """

    def __init__(
        self,
        max_distance: int = 100,
        max_candidates: int = 1000,
        type_constraints: Optional[Dict[str, Iterable[Sequence[str]]]] = None,
        learn_types: bool = False,
        unseen_type_weight: float = 0.0,
    ) -> None:
        if max_distance < 0 or max_candidates < 0:
            raise ValueError("max_distance and max_candidates must not be negative")
        if not 0.0 <= unseen_type_weight <= 1.0:
            raise ValueError(f"unseen_type_weight must be in [0, 1], got {unseen_type_weight}")
        self.max_distance = max_distance
        self.max_candidates = max_candidates
        self.learn_types = learn_types
        self.unseen_type_weight = float(unseen_type_weight)
        self.set_type_constraints(type_constraints or {})

    @property
    def soft_types(self) -> bool:
        """Whether the type constraints only penalize (learned, `unseen_type_weight` > 0)."""
        return bool(self.learn_types and self.unseen_type_weight > 0 and self.type_constraints)

    def set_type_constraints(self, constraints: Dict[str, Iterable[Sequence[str]]]) -> None:
        self.type_constraints = {
            label: {(str(h), str(t)) for h, t in pairs} for label, pairs in constraints.items()
        }
        self._allowed: Set[TypePair] = set().union(*self.type_constraints.values())

    def __call__(self, doc: Doc, spans: Sequence[Span]) -> numpy.ndarray:
        """The candidate pairs among `spans` (spans of `doc`, e.g. from `span_list`).

        RETURNS (numpy int32 array): (n_pairs, 2) (head, tail) indices into `spans`, in (head,
            tail) order; when capped, the `max_candidates` closest pairs (ties in that order).
        """
        starts = numpy.asarray([s.start for s in spans], dtype="int32")
        ends = numpy.asarray([s.end for s in spans], dtype="int32")
        nonempty = ends > starts
        sents = numpy.zeros(len(spans), dtype="int32")
        if nonempty.any():
            sents[nonempty] = sentence_bounds(doc, starts[nonempty], ends[nonempty])[:, 0]
        labels = numpy.asarray([s.label for s in spans], dtype="uint64")
        return self.pair_indices(starts, ends, sents, labels, doc.vocab.strings)

    def pair_indices(
        self,
        starts: numpy.ndarray,
        ends: numpy.ndarray,
        sents: numpy.ndarray,
        labels: numpy.ndarray,
        strings,
    ) -> numpy.ndarray:
        """The candidates among spans given as arrays, vectorized over the (n_spans, n_spans)
        pair matrix.

        starts, ends (numpy int arrays): (n_spans,) token offsets.
        sents (numpy int array): (n_spans,) the start of each span's sentence (equal values:
            same sentence; all 0 without sentence boundaries).
        labels (numpy uint64 array): (n_spans,) label hashes; `strings` resolves them.
        RETURNS (numpy int32 array): (n_pairs, 2) (head, tail) indices, as `__call__`.
        """
        if len(starts) < 2:
            return numpy.zeros((0, 2), dtype="int32")
        # gap[i, j]: tokens between head i and tail j, 0 when adjacent or overlapping
        gap = numpy.maximum(starts[None, :] - ends[:, None], starts[:, None] - ends[None, :])
        gap = numpy.maximum(gap, 0)
        same_span = (starts[:, None] == starts[None, :]) & (ends[:, None] == ends[None, :])
        nonempty = ends > starts
        ok = (gap <= self.max_distance) & ~same_span & nonempty[:, None] & nonempty[None, :]
        ok &= sents[:, None] == sents[None, :]
        if self.type_constraints and not self.soft_types:
            distinct, ids = numpy.unique(labels, return_inverse=True)
            names = [strings[int(key)] for key in distinct]
            allowed = numpy.asarray([[(h, t) in self._allowed for t in names] for h in names])
            ok &= allowed[ids[:, None], ids[None, :]]
        heads, tails = numpy.nonzero(ok)
        if len(heads) > self.max_candidates:
            keep = numpy.sort(numpy.argsort(gap[heads, tails], kind="stable")[: self.max_candidates])
            heads, tails = heads[keep], tails[keep]
        return numpy.stack([heads, tails], axis=1).astype("int32").reshape(-1, 2)

    def initialize(self, gold_relations: Iterable[Tuple[str, str, str]]) -> None:
        """Learn the type constraints from (relation label, head label, tail label) triples,
        when `learn_types` is set; otherwise do nothing."""
        if not self.learn_types:
            return
        learned: Dict[str, Set[TypePair]] = {}
        for label, head_label, tail_label in gold_relations:
            learned.setdefault(label, set()).add((head_label, tail_label))
        self.set_type_constraints(learned)

    def allowed_labels(self, head_label: str, tail_label: str, labels: Sequence[str]) -> List[bool]:
        """For each of `labels`, whether it is *seen* with this type pair: in the type
        constraints (every label is, when there are no constraints, or none for that label)."""
        if not self.type_constraints:
            return [True] * len(labels)
        pair = (head_label, tail_label)
        return [
            label not in self.type_constraints or pair in self.type_constraints[label]
            for label in labels
        ]

    def admits(self, label: str, head_label: str, tail_label: str) -> bool:
        """Whether a `label` relation from a `head_label` to a `tail_label` span can ever be
        predicted under the type constraints: always when they are soft (`soft_types`: an
        unseen combination is only penalized), else when it is `seen`."""
        return not self.type_constraints or self.soft_types or self.seen(label, head_label, tail_label)

    def seen(self, label: str, head_label: str, tail_label: str) -> bool:
        """Whether the type constraints hold this combination: the type pair is allowed for
        some label and for `label` itself (True without constraints). A learned constraint
        holds only what the training data had."""
        if not self.type_constraints:
            return True
        pair = (head_label, tail_label)
        return pair in self._allowed and self.allowed_labels(head_label, tail_label, [label])[0]

    def type_coverage(self, relations: Iterable[Tuple[str, str, str]]) -> Dict[str, int]:
        """How many of the (relation label, head label, tail label) triples `relations` (e.g.
        the gold relations of held-out data) are outside the type constraints, and how many of
        those can never be predicted.

        RETURNS (Dict[str, int]): ``{"relations": n, "unseen": not `seen`, "forbidden": not
            `admits` (0 when the constraints are soft)}``.
        """
        counts = {"relations": 0, "unseen": 0, "forbidden": 0}
        for label, head_label, tail_label in relations:
            counts["relations"] += 1
            if not self.seen(label, head_label, tail_label):
                counts["unseen"] += 1
                counts["forbidden"] += not self.admits(label, head_label, tail_label)
        return counts

    def label_weights(self, candidates: Candidates, labels: Sequence[str], strings) -> numpy.ndarray:
        """(n_pairs, n_labels) float32: the factor each label's probability is multiplied by
        for each candidate pair: 1 where the label is seen with the pair's (head label, tail
        label) (everywhere without constraints), else `unseen_type_weight` when the constraints
        are soft (`soft_types`), else 0 (forbidden). One `allowed_labels` call per distinct
        (head label, tail label) hash pair of the batch, then a gather."""
        n_pairs = len(candidates)
        if not self.type_constraints or not n_pairs:
            return numpy.ones((n_pairs, len(labels)), dtype="float32")
        pair_labels = candidates.span_labels[candidates.global_pairs]  # (n_pairs, 2)
        distinct, inverse = numpy.unique(pair_labels, axis=0, return_inverse=True)
        seen = numpy.asarray(
            [self.allowed_labels(strings[int(h)], strings[int(t)], labels) for h, t in distinct],
            dtype=bool,
        ).reshape(len(distinct), len(labels))
        unseen = self.unseen_type_weight if self.soft_types else 0.0
        table = numpy.where(seen, 1.0, unseen).astype("float32")
        return table[inverse.reshape(-1)]

    def to_dict(self) -> Dict[str, List[List[str]]]:
        """The (learned) type constraints as JSON-serializable data."""
        return {label: sorted(map(list, pairs)) for label, pairs in self.type_constraints.items()}

    def from_dict(self, data: Dict[str, List[List[str]]]) -> "EntityPairCandidates":
        self.set_type_constraints(data or {})
        return self


@registry.misc("spacy_ie.EntityPairCandidates.v1")
def make_entity_pair_candidates(
    max_distance: int = 100,
    max_candidates: int = 1000,
    type_constraints: Optional[Dict[str, List[List[str]]]] = None,
    learn_types: bool = False,
) -> EntityPairCandidates:
    """Candidate pairs: same sentence (when sentence boundaries exist), within `max_distance`
    tokens, optional (head type, tail type) constraints per relation label, given or learned
    from the training data (`learn_types`), and at most `max_candidates` pairs per Doc."""
    return EntityPairCandidates(max_distance, max_candidates, type_constraints, learn_types)


@registry.misc("spacy_ie.EntityPairCandidates.v2")
def make_entity_pair_candidates_v2(
    max_distance: int = 100,
    max_candidates: int = 1000,
    type_constraints: Optional[Dict[str, List[List[str]]]] = None,
    learn_types: bool = False,
    unseen_type_weight: float = 0.75,
) -> EntityPairCandidates:
    """As v1, plus `unseen_type_weight` (see `EntityPairCandidates`): learned type constraints
    are soft by default, a label's probability for a type pair never seen with it in training
    multiplied by 0.75 (kept at threshold 0.5 when the model gives it 0.67 or more), instead of
    forbidden; set 0 for v1's hard learned constraints. Given `type_constraints` (without
    `learn_types`) stay hard. v1 is unchanged, so pipelines saved with it predict as before."""
    return EntityPairCandidates(max_distance, max_candidates, type_constraints, learn_types, unseen_type_weight)
