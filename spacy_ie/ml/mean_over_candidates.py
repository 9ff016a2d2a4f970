"""`spacy_ie.MeanOverCandidates.v1`: turn a component's summed loss gradient into the gradient
of the mean over its candidates, so that components that listen to one encoder are balanced.

Through spaCy's listeners (`spacy.Tok2VecListener.v1`, `spacy-transformers.TransformerListener.v1`)
the gradients that the components send to the shared encoder are **summed**. spaCy's `spancat`
(`SpanCategorizer.get_loss`: ``d_scores = scores - target``) and the `relation_extractor`
(``d_logits = probs - truths``) both send the gradient of a loss *summed* over their candidates,
so each component's weight in the encoder's update is proportional to its number of candidates:
on CoNLL04 the n-gram suggester (widths 1..10) proposes about 244 spans per sentence against
about 13 candidate pairs, and the span classifier would outweigh the relation extractor about
20 to 1. (Adam makes each component's *own* weights insensitive to a constant scale; only the
shared encoder's weights see the ratio.)

SpERT (Eberts & Ulges 2020; `spert/loss.py`) trains one encoder on ``entity loss + relation
loss``, each averaged over its sampled candidates (the relation loss also over the relation
labels, its sigmoids being independent). This wrapper gives a spaCy component the same
balance without changing the component: its forward pass is the wrapped model's; its backward
pass divides the incoming gradient by the number of candidates, the rows of the output
(``n_rows * n_columns`` with `per_label`), before passing it on::

    forward:  Y = model(X)                       Y: (n_rows, nO) or RelationScores (.logits)
    backward: model.backprop(dY / n_rows)        (/ (n_rows * nO) with per_label)

The component's reported loss is not changed (spancat reports the sum of squares, the
relation_extractor the mean); only the gradient is. A batch without candidates passes its
(empty) gradient on unchanged. With `accumulate_gradient` k, each sub-batch is averaged on its
own and the k means are summed, for both components alike, so their ratio stays.
"""
from typing import Any, Callable, Tuple

from spacy.util import registry
from thinc.api import Model


@registry.architectures("spacy_ie.MeanOverCandidates.v1")
def build_mean_over_candidates(model: Model, per_label: bool = False) -> Model:
    """Wrap a component's model so that its output gradient is averaged over the candidates.

    model (Model): the wrapped model, whose output is the scores of the candidates, one row per
        candidate: a (n_rows, nO) array (spaCy's span categorizers,
        `spacy_ie.SpanCategorizer.v1`) or a NamedTuple with a `logits` (n_rows, nO) field
        (`spacy_ie.RelationScores`: the relation models).
    per_label (bool): also divide by the number of output columns: the mean over the labels of
        independent sigmoids (multi-label; SpERT's relation loss). Leave false for a softmax
        over exclusive classes, whose loss has one term per candidate.
    RETURNS (Model): the same input and output as `model`; the nO dimension is forwarded to
        and from the wrapped model (the components size their output through it).
    """
    return Model(
        "mean_over_candidates",
        forward,
        init=init,
        layers=[model],
        refs={"model": model},
        dims={"nO": model.get_dim("nO") if model.has_dim("nO") else None},
        attrs={"per_label": per_label},
    )


def init(model: Model, X: Any = None, Y: Any = None) -> None:
    inner = model.layers[0]
    if model.has_dim("nO") and inner.has_dim("nO") is not False:
        inner.set_dim("nO", model.get_dim("nO"), force=True)
    inner.initialize(X=X, Y=Y)
    if inner.has_dim("nO"):
        model.set_dim("nO", inner.get_dim("nO"), force=True)


def forward(model: Model, X: Any, is_train: bool) -> Tuple[Any, Callable]:
    Y, backprop_inner = model.layers[0](X, is_train)
    scores = getattr(Y, "logits", Y)
    n_rows, n_columns = scores.shape
    divisor = max(n_rows * (n_columns if model.attrs["per_label"] else 1), 1)

    def backprop(dY: Any) -> Any:
        return backprop_inner(dY / divisor)

    return Y, backprop
