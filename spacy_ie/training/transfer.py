"""Transfer a trained entity recognizer to a corpus with other entity labels.

A `ner` sourced from another pipeline (spaCy's en_core_web_sm with OntoNotes labels, or a model
trained on CoNLL-2003 with PER/LOC/ORG/MISC) knows where entities are, but its labels are not the
corpus's (CoNLL04's Peop/Loc/Org/Other). Adding the corpus's labels as new, untrained classes
throws that knowledge away for the label decision: the new classes start from zero weights and
must be learned from the small corpus. A **label mapping** keeps it: each target label's output
rows start as a copy of its source label's rows, so before any fine-tuning the sourced `ner`
finds the same entities as before, under the mapped labels.

spaCy's transition-based `ner` (Honnibal & Johnson 2015; spaCy's `TransitionBasedParser.v2`)
scores one class per move: B-, I-, L- and U-label for each label, plus O. Its output layer
(`upper`, a Linear layer) holds one weight row and one bias per class. `map_entity_labels` adds
the target labels (spaCy's `add_label`, which resizes `upper` with zero rows for them), copies
each mapped source label's four rows (B, I, L, U) to its target label's rows, and switches the
source labels off: their rows are zeroed and their biases set to `SWITCHED_OFF_BIAS`, so the
softmax gives them no probability and no gradient, and fine-tuning starts from the mapped model.
Source labels that the mapping leaves out (OntoNotes DATE, CARDINAL, ... for CoNLL04) are
switched off the same way: the corpus does not annotate them, so they are not entities there.
Several source labels may map to one target (OntoNotes GPE, LOC and FAC to Loc): the target
starts from the first of them in the mapping's order, so put the most frequent first.

The switched-off labels stay in the component's label set (spaCy cannot remove a label from a
trained transition-based model), so `ner.labels` still lists them; they are never predicted.

Register as an `[initialize.after_init]` callback, which runs after spaCy has set up the
sourced components (see configs/ner_rel_sourced.cfg):

    [initialize.after_init]
    @callbacks = "spacy_ie.map_entity_labels.v1"
    component = "ner"
    label_map = {"PERSON": "Peop", "ORG": "Org", "GPE": "Loc"}
"""
from typing import Callable, Dict, List

from spacy.language import Language
from spacy.pipeline import EntityRecognizer
from spacy.util import registry

# The bias of a switched-off class: exp(-1e4) is 0 in float32, so such a class never wins.
SWITCHED_OFF_BIAS = -1e4
BILUO_ACTIONS = ("B", "I", "L", "U")


def map_entity_labels(ner: EntityRecognizer, label_map: Dict[str, str]) -> Dict[str, List[str]]:
    """Give a trained `ner` the target labels of `label_map` (source label -> target label),
    each starting from the weights of its source label, and switch the source labels off.

    ner (EntityRecognizer): a trained spaCy `ner` with an output layer (`use_upper = true`,
        the default of `spacy.TransitionBasedParser.v2`).
    label_map (Dict[str, str]): source label -> target label. A target may also be a label of
        `ner` (OntoNotes -> CoNLL-2003: "ORG" -> "ORG", or "GPE" -> "LOC" and "LOC" -> "LOC"); it
        too starts from the weights of the first source label mapped to it.
    RETURNS (Dict[str, List[str]]): target label -> the source labels mapped to it.
    RAISES (ValueError): if a source label is not a label of `ner`, or if `ner` has no output
        layer (`use_upper = false`) to copy rows of.
    """
    unknown = sorted(set(label_map) - set(ner.labels))
    if unknown:
        raise ValueError(
            f"label_map names labels that the sourced '{ner.name}' does not have: {unknown}. "
            f"Its labels are: {sorted(ner.labels)}"
        )
    if not ner.model.attrs.get("has_upper"):
        raise ValueError(
            f"'{ner.name}' has no output layer (use_upper = false), so its labels cannot be mapped"
        )
    sources: Dict[str, List[str]] = {}
    for source, target in label_map.items():
        sources.setdefault(target, []).append(source)
    source_labels = set(ner.labels)
    for target in sources:
        ner.add_label(target)
    index = {ner.moves.get_class_name(i): i for i in range(ner.moves.n_moves)}
    upper = ner.model.get_ref("upper")
    W0, b0 = upper.get_param("W"), upper.get_param("b")
    W, b = W0.copy(), b0.copy()
    unseen = ner.model.attrs["unseen_classes"]
    for target, from_labels in sources.items():
        for action in BILUO_ACTIONS:
            row, source_row = index[f"{action}-{target}"], index[f"{action}-{from_labels[0]}"]
            W[row] = W0[source_row]
            b[row] = b0[source_row]
            unseen.discard(row)
    for label in source_labels - set(sources):
        for action in BILUO_ACTIONS:
            row = index[f"{action}-{label}"]
            W[row] = 0.0
            b[row] = SWITCHED_OFF_BIAS
    upper.set_param("W", W)
    upper.set_param("b", b)
    return sources


@registry.callbacks("spacy_ie.map_entity_labels.v1")
def make_map_entity_labels(component: str, label_map: Dict[str, str]) -> Callable[[Language], Language]:
    """An `[initialize.after_init]` callback that maps the labels of the sourced entity
    recognizer `component` with `map_entity_labels` and prints what it did.

    RAISES (ValueError): from `map_entity_labels`, naming the component; (KeyError) if the
        pipeline has no component `component`.
    """

    def map_labels(nlp: Language) -> Language:
        from wasabi import msg

        sources = map_entity_labels(nlp.get_pipe(component), label_map)
        mapped = "; ".join(f"{target} <- {', '.join(labels)}" for target, labels in sources.items())
        msg.info(f"Mapped the labels of '{component}': {mapped}")
        return nlp

    return map_labels

