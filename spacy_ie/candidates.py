"""Which entity pairs a relation extractor scores: `spacy_ie.EntityPairCandidates.v1`."""
from typing import Dict, Iterable, List, Optional, Sequence, Set, Tuple

import numpy
from spacy.tokens import Doc, Span
from spacy.util import registry

TypePair = Tuple[str, str]


class EntityPairCandidates:
    """Ordered (head, tail) pairs of distinct spans that may stand in a relation.

    A pair is a candidate when both spans lie in the same sentence (if the Doc has sentence
    boundaries) and at most `max_distance` tokens apart (the gap between the spans), and,
    when type constraints are set, its (head label, tail label) is allowed for some relation
    label. At most `max_candidates` pairs are kept per Doc, the closest first, so cost stays
    bounded on very long Docs. Both orders of a pair are candidates: head and tail are
    directed.

    Type constraints map a relation label to its allowed (head label, tail label) pairs. They
    are given, or learned from the gold relations at `initialize` when `learn_types` is true.
    The relation_extractor also uses them to rule out labels per pair at prediction time.
    """

    def __init__(
        self,
        max_distance: int = 100,
        max_candidates: int = 1000,
        type_constraints: Optional[Dict[str, Iterable[Sequence[str]]]] = None,
        learn_types: bool = False,
    ) -> None:
        if max_distance < 0 or max_candidates < 0:
            raise ValueError("max_distance and max_candidates must not be negative")
        self.max_distance = max_distance
        self.max_candidates = max_candidates
        self.learn_types = learn_types
        self.set_type_constraints(type_constraints or {})

    def set_type_constraints(self, constraints: Dict[str, Iterable[Sequence[str]]]) -> None:
        self.type_constraints = {
            label: {(str(h), str(t)) for h, t in pairs} for label, pairs in constraints.items()
        }
        self._allowed: Set[TypePair] = set().union(*self.type_constraints.values())

    def __call__(self, doc: Doc, spans: Sequence[Span]) -> List[Tuple[Span, Span]]:
        """The candidate pairs among `spans` (spans of `doc`), in (head, tail) index order;
        when capped, the `max_candidates` closest pairs (ties in that order). Vectorized over
        the (n_spans, n_spans) pair matrix."""
        if len(spans) < 2:
            return []
        starts = numpy.asarray([s.start for s in spans])
        ends = numpy.asarray([s.end for s in spans])
        # gap[i, j]: tokens between head i and tail j, 0 when adjacent or overlapping
        gap = numpy.maximum(starts[None, :] - ends[:, None], starts[:, None] - ends[None, :])
        gap = numpy.maximum(gap, 0)
        same_span = (starts[:, None] == starts[None, :]) & (ends[:, None] == ends[None, :])
        ok = (gap <= self.max_distance) & ~same_span
        if doc.has_annotation("SENT_START"):
            sents = numpy.asarray([s.sent.start for s in spans])
            ok &= sents[:, None] == sents[None, :]
        if self.type_constraints:
            labels = sorted({s.label_ for s in spans})
            ids = numpy.asarray([labels.index(s.label_) for s in spans])
            allowed = numpy.asarray([[(h, t) in self._allowed for t in labels] for h in labels])
            ok &= allowed[ids[:, None], ids[None, :]]
        heads, tails = numpy.nonzero(ok)
        if len(heads) > self.max_candidates:
            keep = numpy.sort(numpy.argsort(gap[heads, tails], kind="stable")[: self.max_candidates])
            heads, tails = heads[keep], tails[keep]
        return [(spans[i], spans[j]) for i, j in zip(heads.tolist(), tails.tolist())]

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
        """For each of `labels`, whether the type constraints allow it for this type pair
        (every label is allowed when there are no constraints, or none for that label)."""
        if not self.type_constraints:
            return [True] * len(labels)
        pair = (head_label, tail_label)
        return [
            label not in self.type_constraints or pair in self.type_constraints[label]
            for label in labels
        ]

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
