"""Spans of a gold Doc mapped onto the predicted Doc of the same Example."""
from typing import List, Optional, Sequence

from spacy.tokens import Span
from spacy.training import Example


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
