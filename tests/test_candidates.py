"""EntityPairCandidates against its plain definition, on random spans (hypothesis)."""
import numpy
import spacy
from hypothesis import given, settings
from hypothesis import strategies as st
from spacy.tokens import Span

from spacy_ie.candidates import Candidates, EntityPairCandidates, span_list

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


doc_strategy = st.tuples(
    st.integers(1, 20),  # tokens
    st.lists(st.tuples(st.integers(0, 19), st.integers(1, 3), st.sampled_from(LABELS)), max_size=8),
    st.one_of(st.none(), st.sets(st.integers(1, 19), max_size=3)),  # sentence starts
)


def make_doc(n_tokens, raw_spans, sent_starts):
    doc = NLP.make_doc(" ".join(["w"] * n_tokens))
    if sent_starts is not None:
        for token in doc:
            token.is_sent_start = token.i == 0 or token.i in sent_starts
    return doc, span_list(Span(doc, s, min(s + w, n_tokens), label) for s, w, label in raw_spans if s < n_tokens)


@settings(max_examples=100, deadline=None)
@given(
    docs=st.lists(doc_strategy, max_size=6),
    max_distance=st.integers(0, 10),
    max_candidates=st.integers(0, 12),
    constraints=st.sampled_from([None, "hard", "soft"]),
)
def test_batch_candidates_are_each_docs_own(docs, max_distance, max_candidates, constraints):
    """Candidates.from_spans proposes, for a batch, each Doc's pairs as the generator does for
    that Doc alone (vectorized over the batch: same pairs, same order, same cap), with each
    span's offsets, label and sentence; and label_weights gives each pair its type pair's row."""
    rules = {"R1": [["A", "B"], ["B", "B"]], "R2": [["C", "A"]]}
    generator = EntityPairCandidates(
        max_distance, max_candidates, rules if constraints else None,
        learn_types=constraints == "soft", unseen_type_weight=0.5 if constraints == "soft" else 0.0,
    )
    made = [make_doc(*doc) for doc in docs]
    batch = Candidates.from_spans([d for d, _ in made], [s for _, s in made], generator)
    assert batch.pairs.dtype == numpy.int32 and batch.pair_lengths.dtype == numpy.int32
    assert batch.span_lengths.tolist() == [len(s) for _, s in made]
    expected = [generator(doc, spans) for doc, spans in made]
    assert batch.pair_lengths.tolist() == [len(p) for p in expected]
    assert batch.pairs.tolist() == [pair for p in expected for pair in p.tolist()]
    spans = [s for _, s in made for s in s]
    assert batch.spans.tolist() == [[s.start, s.end] for s in spans]
    assert batch.span_chars.tolist() == [[s.start_char, s.end_char] for s in spans]
    assert batch.span_labels.tolist() == [s.label for s in spans]
    assert batch.span_sents.tolist() == [  # sentence_bounds: first token's sentence to last token's
        [s[0].sent.start, s[-1].sent.end] if s.doc.has_annotation("SENT_START") else [0, len(s.doc)] for s in spans
    ]
    weights = generator.label_weights(batch, ["R1", "R2", "R3"], NLP.vocab.strings)
    pairs = batch.global_pairs
    for row, (h, t) in enumerate(pairs.tolist()):
        seen = generator.allowed_labels(spans[h].label_, spans[t].label_, ["R1", "R2", "R3"])
        unseen = generator.unseen_type_weight if generator.soft_types else 0.0
        assert weights[row].tolist() == [1.0 if s else unseen for s in seen]
