"""EntityPairCandidates against its plain definition, on random spans (hypothesis)."""
import spacy
from hypothesis import given, settings
from hypothesis import strategies as st
from spacy.tokens import Span

from spacy_ie.candidates import EntityPairCandidates

NLP = spacy.blank("en")
LABELS = ["A", "B", "C"]


def reference(doc, spans, max_distance, max_candidates, allowed):
    """The definition, one pair at a time: distinct spans, same sentence, gap <= max_distance,
    allowed type pair; capped to the closest pairs, ties in (head, tail) order."""
    pairs = []
    for i, head in enumerate(spans):
        for j, tail in enumerate(spans):
            if (head.start, head.end) == (tail.start, tail.end):
                continue
            if doc.has_annotation("SENT_START") and head.sent.start != tail.sent.start:
                continue
            gap = max(tail.start - head.end, head.start - tail.end, 0)
            if gap > max_distance or (allowed is not None and (head.label_, tail.label_) not in allowed):
                continue
            pairs.append((gap, i, j))
    if len(pairs) > max_candidates:
        pairs = sorted(sorted(pairs)[:max_candidates], key=lambda p: (p[1], p[2]))
    return [(i, j) for _, i, j in pairs]


@settings(max_examples=150, deadline=None)
@given(
    n_tokens=st.integers(2, 30),
    raw_spans=st.lists(st.tuples(st.integers(0, 29), st.integers(1, 4), st.sampled_from(LABELS)), max_size=12),
    sent_starts=st.one_of(st.none(), st.sets(st.integers(1, 29), max_size=4)),
    max_distance=st.integers(0, 10),
    max_candidates=st.integers(0, 40),
    constrained=st.booleans(),
)
def test_vectorized_candidates_match_definition(n_tokens, raw_spans, sent_starts, max_distance, max_candidates, constrained):
    doc = NLP.make_doc(" ".join(["w"] * n_tokens))
    if sent_starts is not None:
        for token in doc:
            token.is_sent_start = token.i == 0 or token.i in sent_starts
    spans = sorted(
        (Span(doc, s, min(s + w, n_tokens), label) for s, w, label in raw_spans if s < n_tokens),
        key=lambda span: (span.start, span.end),
    )
    constraints = {"R1": [["A", "B"], ["B", "B"]], "R2": [["C", "A"]]} if constrained else None
    generator = EntityPairCandidates(max_distance, max_candidates, constraints)
    allowed = {("A", "B"), ("B", "B"), ("C", "A")} if constrained else None
    got = [tuple(pair) for pair in generator(doc, spans).tolist()]
    assert got == reference(doc, spans, max_distance, max_candidates, allowed)
