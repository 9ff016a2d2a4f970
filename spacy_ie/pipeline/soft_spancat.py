"""`spancat_singlelabel_soft`: spaCy's single-label span categorizer that also learns from soft
targets, a teacher's span probabilities stored on the reference Docs (issue 27: distillation).

Knowledge distillation with soft targets (Hinton, Vinyals & Dean 2015, "Distilling the Knowledge
in a Neural Network"): the student's loss mixes the cross-entropy with the hard labels and the
cross-entropy with the teacher's probability distribution, weighted ``1 - soft_weight`` and
``soft_weight`` (temperature 1). For a softmax output both gradients with respect to the logits
are ``probabilities - target``, so the mix is the gradient of spaCy's own loss
(`spacy.pipeline.SpanCategorizer.get_loss`, ``scores - target``) with the target
``(1 - w) * hard + w * soft`` on the spans the teacher scored.

The soft targets are written by `set_soft_spans` (``spacy_ie distill --soft-spans``, from the
teacher's ``spancat_singlelabel``) into ``doc.user_data``, which a ``DocBin(store_user_data=True)``
keeps; Docs without them (gold data) train on their hard labels only. At inference the component
is spaCy's ``spancat_singlelabel`` unchanged.
"""
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple

import numpy
from spacy.language import Language
from spacy.pipeline.spancat import DEFAULT_SPANCAT_SINGLELABEL_MODEL, DEFAULT_SPANS_KEY, SpanCategorizer, Suggester
from spacy.tokens import Doc
from spacy.training import Example
from thinc.api import Model
from thinc.types import Floats2d, Ints2d, Ragged

SOFT_SPANS_KEY = "spacy_ie_soft_spans"
DEFAULT_SOFT_WEIGHT = 0.5


def set_soft_spans(
    doc: Doc, spans_key: str, labels: Sequence[str], spans: Ints2d, probs: Floats2d
) -> None:
    """Store a teacher's span probabilities on `doc` for the span group `spans_key`.

    labels: the teacher's entity labels, in the order of `probs`' first ``len(labels)``
        columns; the last column is "no entity".
    spans: int array (n_spans, 2), token start and end (exclusive) of each scored span.
    probs: float array (n_spans, len(labels) + 1), each row a probability distribution.
    RAISES (ValueError): shapes that do not match.
    """
    spans, probs = numpy.asarray(spans, dtype="int32"), numpy.asarray(probs, dtype="float16")
    if spans.ndim != 2 or spans.shape[1] != 2 or probs.shape != (spans.shape[0], len(labels) + 1):
        raise ValueError(
            f"set_soft_spans: spans {spans.shape} and probs {probs.shape} do not fit "
            f"{len(labels)} labels (expected (n, 2) and (n, {len(labels) + 1}))"
        )
    store = doc.user_data.setdefault(SOFT_SPANS_KEY, {})
    store[spans_key] = {"labels": tuple(labels), "spans": spans, "probs": probs}


def get_soft_spans(doc: Doc, spans_key: str) -> Optional[Dict[str, Any]]:
    """The soft targets `set_soft_spans` stored on `doc` for `spans_key` ({"labels", "spans",
    "probs"}), or None."""
    return doc.user_data.get(SOFT_SPANS_KEY, {}).get(spans_key)


class SoftTargetSpanCategorizer(SpanCategorizer):
    """spaCy's single-label `SpanCategorizer` whose loss also uses soft targets (see the module
    docstring). soft_weight: the soft targets' share of the target, in [0, 1]; 0 is
    ``spancat_singlelabel``'s training exactly."""

    def __init__(self, *args: Any, soft_weight: float = DEFAULT_SOFT_WEIGHT, **kwargs: Any) -> None:
        if not 0.0 <= soft_weight <= 1.0:
            raise ValueError(f"spancat_singlelabel_soft: soft_weight must be in [0, 1], not {soft_weight}")
        super().__init__(*args, **kwargs)
        self.cfg["soft_weight"] = soft_weight

    def get_loss(
        self, examples: Iterable[Example], spans_scores: Tuple[Ragged, Floats2d]
    ) -> Tuple[float, Floats2d]:
        """spaCy's loss and gradient, with the rows of teacher-scored spans replaced by
        ``(1 - w) * hard_gradient + w * (scores - soft)``. A Doc's soft targets are used only
        when its reference and predicted tokens are the same (a teacher's Doc re-read), and for
        the labels the student has (the teacher's other labels' mass goes to "no entity").
        RETURNS (Tuple[float, Floats2d]): the summed squared gradient (spaCy's loss) and the
        gradient, (n_spans, n_labels + 1)."""
        examples = list(examples)
        loss, d_scores = super().get_loss(examples, spans_scores)
        weight = float(self.cfg.get("soft_weight", 0.0))
        if weight == 0.0:
            return loss, d_scores
        spans, scores = spans_scores
        starts_ends = self.model.ops.to_numpy(spans.data)
        lengths = self.model.ops.to_numpy(spans.lengths)
        rows: List[numpy.ndarray] = []
        targets: List[numpy.ndarray] = []
        offset = 0
        for eg, n in zip(examples, lengths):
            soft = get_soft_spans(eg.reference, self.key)
            if soft is not None and len(soft["spans"]) and _same_tokens(eg):
                # the suggested row of each teacher-scored span, by its (start, end) as one key
                width = len(eg.predicted) + 1
                suggested = starts_ends[offset : offset + n] @ numpy.array([width, 1])
                scored = numpy.asarray(soft["spans"]) @ numpy.array([width, 1])
                row, k = numpy.nonzero(suggested[:, None] == scored[None, :])
                rows.append(offset + row)
                targets.append(self._to_student(soft["labels"], soft["probs"][k], scores.shape[1]))
            offset += int(n)
        if rows:
            ops = self.model.ops
            soft_target = ops.asarray2f(numpy.concatenate(targets))
            row_index = ops.asarray1i(numpy.concatenate(rows).astype("int32"))
            d_scores[row_index] = (1.0 - weight) * d_scores[row_index] + weight * (scores[row_index] - soft_target)
            loss = float((d_scores**2).sum())
        return loss, d_scores

    def _to_student(self, teacher_labels: Sequence[str], probs: numpy.ndarray, n_columns: int) -> numpy.ndarray:
        """The teacher's distributions (n_spans, len(teacher_labels) + 1; "no entity" last) in
        the student's columns, (n_spans, n_columns): a teacher label the student lacks adds its
        mass to the student's "no entity"; rows renormalized (the teacher's are float16)."""
        negative = self._negative_label_i
        columns = [self._label_map.get(label, negative) for label in teacher_labels] + [negative]
        mapping = numpy.zeros((len(columns), n_columns), dtype="float32")
        mapping[numpy.arange(len(columns)), columns] = 1.0
        target = numpy.asarray(probs, dtype="float32") @ mapping
        return target / numpy.maximum(target.sum(axis=1, keepdims=True), 1e-8)


def _same_tokens(eg: Example) -> bool:
    x, y = eg.predicted, eg.reference
    return len(x) == len(y) and x.text == y.text and numpy.array_equal(x.to_array("IDX"), y.to_array("IDX"))


@Language.factory(
    "spancat_singlelabel_soft",
    assigns=["doc.spans"],
    default_config={  # spancat_singlelabel's (spacy.pipeline.factories) and soft_weight
        "spans_key": DEFAULT_SPANS_KEY,
        "model": DEFAULT_SPANCAT_SINGLELABEL_MODEL,
        "negative_weight": 1.0,
        "suggester": {"@misc": "spacy.ngram_suggester.v1", "sizes": [1, 2, 3]},
        "scorer": {"@scorers": "spacy.spancat_scorer.v1"},
        "allow_overlap": True,
        "soft_weight": DEFAULT_SOFT_WEIGHT,
    },
    default_score_weights={"spans_sc_f": 1.0, "spans_sc_p": 0.0, "spans_sc_r": 0.0},
)
def make_spancat_singlelabel_soft(
    nlp: Language,
    name: str,
    suggester: Suggester,
    model: Model[Tuple[List[Doc], Ragged], Floats2d],
    spans_key: str,
    negative_weight: float,
    allow_overlap: bool,
    scorer: Optional[Callable],
    soft_weight: float,
) -> SoftTargetSpanCategorizer:
    """``spancat_singlelabel`` with `soft_weight` (see `SoftTargetSpanCategorizer`); the other
    settings are spaCy's (https://spacy.io/api/spancategorizer#config)."""
    return SoftTargetSpanCategorizer(
        nlp.vocab, model=model, suggester=suggester, name=name, spans_key=spans_key,
        negative_weight=negative_weight, allow_overlap=allow_overlap, max_positive=1,
        add_negative_label=True, threshold=None, scorer=scorer, soft_weight=soft_weight,
    )  # fmt: skip
