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
from typing import Callable, Dict, List, Optional

import spacy
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


def copy_layer_weights(source: Language, component: str, layer: Optional[str], nlp: Language, target: str) -> None:
    """Copy the weights of `source`'s component `component` (its model's `layer` ref, or the
    whole model when `layer` is None) into `nlp`'s component `target`, whose model must have
    the same layers and shapes (e.g. a `tok2vec` component built with the configuration of
    en_core_web_sm's `ner` tok2vec: `spacy.Tok2Vec.v2`, MultiHashEmbed NORM/PREFIX/SUFFIX/SHAPE
    with rows 5000/1000/2500/2500, MaxoutWindowEncoder width 96, depth 4).

    This is how a shared tok2vec starts from a component's *internal* encoder (spaCy's
    `source` copies whole components only): en_core_web_sm's `ner` reads its own tok2vec,
    trained for OntoNotes entities, not the shared one that its tagger and parser train.
    The copied layer is `layer` itself or, when its shapes differ from the target's, the
    first of its sublayers (``Model.walk`` order) with the target's layers and shapes: the
    `tok2vec` ref of a transition-based `ner` is its Tok2Vec followed by a Linear projection
    to the parser's hidden width, and only the Tok2Vec is copied.
    RAISES (ValueError): if no such layer exists, naming both sides' layers and shapes.
    """
    model = source.get_pipe(component).model
    if layer is not None:
        model = model.get_ref(layer)
    dest = nlp.get_pipe(target).model

    def shapes(m) -> List[tuple]:
        return [
            (node.name, name, node.get_param(name).shape)
            for node in m.walk()
            for name in node.param_names
            if node.has_param(name)
        ]

    wanted = shapes(dest)
    match = next((node for node in model.walk() if shapes(node) == wanted), None)
    if match is None:
        where = f"'{component}'" + (f" (layer '{layer}')" if layer else "")
        raise ValueError(
            f"Cannot copy the weights of {where} into '{target}': neither it nor any of its "
            f"layers has the target's layers and shapes.\nsource: {shapes(model)}\n"
            f"target: {wanted}"
        )
    dest.from_bytes(match.to_bytes())


@registry.callbacks("spacy_ie.copy_layer_weights.v1")
def make_copy_layer_weights(
    source: str, component: str, target: str, layer: Optional[str] = "tok2vec"
) -> Callable[[Language], Language]:
    """An `[initialize.after_init]` callback: `copy_layer_weights` from the pipeline `source`
    (a package name or a directory) into this pipeline's component `target`, e.g. to start
    the shared tok2vec of configs/spancat_rel_sourced.cfg from en_core_web_sm's `ner` encoder:

        [initialize.after_init]
        @callbacks = "spacy_ie.copy_layer_weights.v1"
        source = ${paths.source}
        component = "ner"
        layer = "tok2vec"
        target = "tok2vec"

    RAISES (ValueError): from `copy_layer_weights`; (OSError) if `source` cannot be loaded.
    """

    def copy_weights(nlp: Language) -> Language:
        from wasabi import msg

        copy_layer_weights(spacy.load(source), component, layer, nlp, target)
        msg.info(f"Copied the weights of '{component}'{f' ({layer})' if layer else ''} of {source} into '{target}'")
        return nlp

    return copy_weights
