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
        `span_list`). O(n_spans) Python for the whole batch (one pass reading each span's
        offsets and label), one `sentence_bounds` call per Doc that has sentence boundaries,
        and the pairs of all Docs at once (`EntityPairCandidates.batch_pair_indices`)."""
        span_lengths = numpy.asarray([len(doc_spans) for doc_spans in spans], dtype="int32").reshape(len(spans))
        flat = [s for doc_spans in spans for s in doc_spans]
        data = numpy.asarray(
            [(s.start, s.end, s.start_char, s.end_char) for s in flat], dtype="int64"
        ).reshape(len(flat), 4)
        labels = numpy.fromiter((s.label for s in flat), dtype="uint64", count=len(flat))
        bounds = data[:, :2].astype("int32")
        sents = numpy.zeros((len(flat), 2), dtype="int32")
        offsets = numpy.cumsum(span_lengths) - span_lengths
        for i, doc in enumerate(docs):
            n = int(span_lengths[i])
            if not n:
                continue
            rows = slice(int(offsets[i]), int(offsets[i]) + n)
            if doc.has_annotation("SENT_START"):
                sents[rows] = sentence_bounds(doc, bounds[rows, 0], bounds[rows, 1])
            else:
                sents[rows, 1] = len(doc)
        pairs, pair_lengths = generator.batch_pair_indices(
            bounds[:, 0], bounds[:, 1], sents[:, 0], labels, span_lengths, docs[0].vocab.strings if len(docs) else None
        )
        return cls(
            spans=bounds,
            span_chars=numpy.ascontiguousarray(data[:, 2:]),
            span_labels=labels,
            span_sents=sents,
            span_lengths=span_lengths,
            pairs=pairs,
            pair_lengths=pair_lengths,
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
        """The candidates among the spans of one Doc, given as arrays (`batch_pair_indices`
        for a batch of one).

        starts, ends (numpy int arrays): (n_spans,) token offsets.
        sents (numpy int array): (n_spans,) the start of each span's sentence (equal values:
            same sentence; all 0 without sentence boundaries).
        labels (numpy uint64 array): (n_spans,) label hashes; `strings` resolves them.
        RETURNS (numpy int32 array): (n_pairs, 2) (head, tail) indices, as `__call__`.
        """
        lengths = numpy.asarray([len(starts)], dtype="int32")
        return self.batch_pair_indices(starts, ends, sents, labels, lengths, strings)[0]

    def batch_pair_indices(
        self,
        starts: numpy.ndarray,
        ends: numpy.ndarray,
        sents: numpy.ndarray,
        labels: numpy.ndarray,
        span_lengths: numpy.ndarray,
        strings,
    ) -> Tuple[numpy.ndarray, numpy.ndarray]:
        """The candidates among the spans of a batch of Docs, given as arrays, the spans of
        each Doc one after another. Vectorized over every ordered (head, tail) pair of spans of
        the same Doc (sum of n_spans^2 over the Docs: each Doc's pair matrix, flattened row by
        row), with no Python loop per Doc or pair, except for a Doc over `max_candidates`.

        starts, ends (numpy int arrays): (n_spans,) Doc-local token offsets.
        sents (numpy int array): (n_spans,) the start of each span's sentence (equal values:
            same sentence; all 0 without sentence boundaries).
        labels (numpy uint64 array): (n_spans,) label hashes; `strings` resolves them.
        span_lengths (numpy int array): (n_docs,) spans per Doc.
        RETURNS (Tuple[numpy int32 array, numpy int32 array]): (n_pairs, 2) (head, tail)
            indices into each Doc's own spans, Doc after Doc, each Doc's pairs in (head, tail)
            order (when capped, its `max_candidates` closest pairs, ties in that order); and
            (n_docs,) pairs per Doc.
        """
        starts = numpy.asarray(starts, dtype="int32").reshape(-1)
        ends = numpy.asarray(ends, dtype="int32").reshape(-1)
        sents = numpy.asarray(sents).reshape(-1)
        n_docs = len(span_lengths)
        n = numpy.asarray(span_lengths, dtype="int64").reshape(n_docs)
        sizes = numpy.where(n >= 2, n * n, 0)
        total = int(sizes.sum())
        if total == 0:
            return numpy.zeros((0, 2), dtype="int32"), numpy.zeros(n_docs, dtype="int32")
        # each Doc's (n, n) pair matrix, flattened row by row: k -> (k // n, k % n)
        index = "int32" if total < 2**31 else "int64"  # (the arrays below are O(total))
        doc_of = numpy.repeat(numpy.arange(n_docs, dtype=index), sizes)
        k = numpy.arange(total, dtype=index) - numpy.repeat((numpy.cumsum(sizes) - sizes).astype(index), sizes)
        n_of = n.astype(index)[doc_of]
        heads_local = k // n_of
        tails_local = k - heads_local * n_of
        del k
        first = (numpy.cumsum(n) - n).astype(index)[doc_of]
        h = first + heads_local
        t = first + tails_local
        del first, n_of
        # gap: tokens between head and tail, 0 when adjacent or overlapping
        gap = numpy.maximum(numpy.maximum(starts[t] - ends[h], starts[h] - ends[t]), 0)
        nonempty = ends > starts
        ok = (gap <= self.max_distance) & ~((starts[h] == starts[t]) & (ends[h] == ends[t]))
        ok &= nonempty[h] & nonempty[t] & (sents[h] == sents[t])
        if self.type_constraints and not self.soft_types:
            distinct, ids = numpy.unique(labels, return_inverse=True)
            names = [strings[int(key)] for key in distinct]
            allowed = numpy.asarray([[(a, b) in self._allowed for b in names] for a in names], dtype=bool)
            ids = ids.reshape(-1)
            ok &= allowed.reshape(len(names), len(names))[ids[h], ids[t]]
        keep = numpy.flatnonzero(ok)
        counts = numpy.bincount(doc_of[keep], minlength=n_docs)
        if (counts > self.max_candidates).any():
            keep = self._cap(keep, gap[keep], counts)
            counts = numpy.bincount(doc_of[keep], minlength=n_docs)
        pairs = numpy.stack([heads_local[keep], tails_local[keep]], axis=1).astype("int32").reshape(-1, 2)
        return pairs, counts.astype("int32")

    def _cap(self, keep: numpy.ndarray, gap: numpy.ndarray, counts: numpy.ndarray) -> numpy.ndarray:
        """`keep` (the kept pairs' positions, Doc after Doc; `gap` their gaps; `counts` pairs
        per Doc) with each Doc over `max_candidates` cut to its `max_candidates` closest pairs
        (stable: ties in (head, tail) order), the pairs left in their order. A Python loop over
        the capped Docs only."""
        mask = numpy.ones(len(keep), dtype=bool)
        ends = numpy.cumsum(counts)
        for i in numpy.flatnonzero(counts > self.max_candidates).tolist():
            start, end = int(ends[i] - counts[i]), int(ends[i])
            chosen = numpy.argsort(gap[start:end], kind="stable")[: self.max_candidates]
            mask[start:end] = False
            mask[start + chosen] = True
        return keep[mask]

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
        (head label, tail label) pair of the batch, then a gather."""
        n_pairs = len(candidates)
        if not self.type_constraints or not n_pairs:
            return numpy.ones((n_pairs, len(labels)), dtype="float32")
        # the distinct span labels of the pairs, then the distinct (head, tail) label-id pairs
        # as one integer key each (1-d unique: numpy's unique over rows sorts a structured view)
        distinct, ids = numpy.unique(candidates.span_labels[candidates.global_pairs], return_inverse=True)
        ids = ids.reshape(n_pairs, 2)
        keys, inverse = numpy.unique(ids[:, 0] * len(distinct) + ids[:, 1], return_inverse=True)
        names = [strings[int(key)] for key in distinct]
        seen = numpy.asarray(
            [self.allowed_labels(names[k // len(distinct)], names[k % len(distinct)], labels) for k in keys.tolist()],
            dtype=bool,
        ).reshape(len(keys), len(labels))
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
