"""`spacy_ie.TypedMarkerRelationModel.v1`: a relation model with its own transformer that reads
each candidate pair's sentence with **typed entity markers** around head and tail.

A drop-in replacement for `spacy_ie.RelationModel.v1`: same input (the Docs and a
`spacy_ie.candidates.Candidates` batch), same output (`RelationScores`, logits (n_pairs, nO)),
so the relation_extractor's losses, thresholds, `decide`, scorer, `doc._.relations` and
serialization are unchanged. Only the encoder differs: instead of pooling a shared tok2vec's
vectors, the transformer sees which two spans are asked about.

For a pair (head "John Smith" PER, tail "Acme" ORG) the transformer reads, in punctuation form
(Zhou & Chen 2021, "An Improved Baseline for Sentence-level Relation Extraction", Table 2: typed
markers in punctuation form beat new special tokens, which start untrained)::

    [CLS]  @ * PER * John Smith @  works for  # ^ ORG ^ Acme #  . [SEP]

and the pair is classified from the vectors of the two opening markers (`@` and `#`: "entity
start" pooling of Baldini Soares et al. 2019, "Matching the Blanks", Fig. 3f), optionally with
[CLS], the max-pooled tokens between the two entities (SpERT's context), entity-label
embeddings and a signed distance embedding:

    [H[@]; H[#]; (H[CLS]); (max H[between]); (E[head label]; E[tail label]); (D[distance])]
        ─ Maxout + LayerNorm ─ Linear -> logits (n_pairs, nO)

Cost (``mode``): a *pass* is one transformer input.
- ``"exact"``: one pass per candidate pair (Zhou & Chen 2021; PURE's exact relation model).
  Most accurate, cost O(n_pairs) passes: about n_entities^2 per sentence.
- ``"packed_head"``: one pass per head entity; the head carries the head markers and all its
  candidate tails carry tail markers in the same pass (PL-Marker's "packed" idea, Ye et al.
  2022, with solid instead of levitated markers). O(n_entities) passes per sentence.
- ``"packed"``: one pass per sentence; every entity of a candidate pair carries the head markers,
  and a pair is read from its two entities' marker-start vectors. One pass per sentence; the
  head/tail direction is only given by the order of concatenation. The approximation of PURE
  (Zhong & Chen 2021, "A Frustratingly Easy Approach for Entity and Relation Extraction",
  Sec. 4.3: 8-12x faster relation inference for about -1 F1 with levitated markers).
Passes are tokenized once per batch (fast tokenizer), sorted by length and run `batch_size` at a
time, padded to the longest of each group. Each pass is its candidates' sentence(s), cut to a
window of at most `max_length` subword tokens around the markers when longer (both markers are
always kept; see `select_window`). A packed pass whose markers cannot fit in `max_length`
falls back to one pass per head for its pairs, and a head's pass that cannot fit to one pass
per pair (long, entity-dense sentences would otherwise cost a pass per pair in packed mode).

The transformer is loaded and saved by spacy-transformers' machinery (`huggingface_from_pretrained`,
`HFShim`, `HFWrapper`), exactly as `spacy-transformers.TransformerModel.v3`: `name` is a Hugging
Face hub name (e.g. "roberta-base") or a local directory, read once at `initialize`; the weights,
tokenizer and model config are then stored in the pipeline, so ``spacy.load`` needs no hub. The
device is thinc's (``--gpu-id``); the inputs go to the transformer's device as in
spacy-transformers. Fine-tuning: the gradient of the logits flows into the transformer, whose
parameters are updated by the training config's `[training.optimizer]` (one optimizer for the
pipeline, as in spaCy; the configs use a warm-up + linear-decay schedule).
"""
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, NamedTuple, Optional, Sequence, Tuple

import numpy
from spacy.tokens import Doc
from spacy.util import registry
from thinc.api import HashEmbed, Embed, Linear, Maxout, Model, chain, torch2xp, xp2torch
from thinc.types import ArgsKwargs, Floats2d

from ..candidates import Candidates
from .pooling import max_pool
from .relation_model import N_DISTANCE_BUCKETS, RelationScores, _distance_buckets

InT = Tuple[List[Doc], Candidates]
MODES = ("exact", "packed_head", "packed")
HEAD, TAIL = 0, 1


@registry.architectures("spacy_ie.TypedMarkerRelationModel.v1")
def build_typed_marker_relation_model(
    name: str,
    mode: str = "exact",
    max_length: int = 512,
    batch_size: int = 64,
    head_marker: str = "@",
    head_type_marker: str = "*",
    tail_marker: str = "#",
    tail_type_marker: str = "^",
    typed: bool = True,
    use_cls: bool = False,
    use_between: bool = False,
    hidden_width: int = 256,
    dropout: float = 0.1,
    label_width: int = 16,
    distance_width: int = 16,
    tokenizer_config: Optional[Dict[str, Any]] = None,
    transformer_config: Optional[Dict[str, Any]] = None,
    mixed_precision: bool = False,
    grad_scaler_config: Optional[Dict[str, Any]] = None,
    gradient_checkpointing: bool = False,
    nO: Optional[int] = None,
) -> Model[InT, RelationScores]:
    """Build the typed-marker relation model (see the module docstring for the method).

    name (str): Hugging Face hub name or local directory of the relation transformer (as
        `spacy-transformers.TransformerModel.v3`); needs a fast tokenizer (character offsets).
    mode (str): "exact" (one pass per pair), "packed_head" (one per head) or "packed" (one per
        sentence).
    max_length (int): most subword tokens per pass, special tokens included (also capped by the
        tokenizer's model_max_length).
    batch_size (int): passes per transformer call (padded to the longest of the call).
    head_marker, head_type_marker, tail_marker, tail_type_marker (str): the punctuation of the
        markers: the head reads "@ * LABEL * text @", the tail "# ^ LABEL ^ text #".
    typed (bool): put the entity label inside the markers (false: "@ text @").
    use_cls (bool): add the first token's vector ([CLS] / <s>) to the pair features.
    use_between (bool): add the max-pooled vectors of the tokens between the two entities
        (after the first one's closing marker, before the second one's opening marker; zeros
        when they are adjacent, overlap or nest): SpERT's localized context (Eberts & Ulges
        2020, "Span-based Joint Entity and Relation Extraction with Transformer Pre-training").
    hidden_width (int), dropout (float): the Maxout hidden layer of the classifier.
    label_width (int): width of the head and tail label embeddings (0 disables them).
    distance_width (int): width of the signed token-gap embedding (0 disables it).
    tokenizer_config, transformer_config (Optional[dict]): passed to `from_pretrained`
        (tokenizer_config defaults to {"use_fast": true}).
    mixed_precision (bool), grad_scaler_config (Optional[dict]): as in TransformerModel.v3.
    gradient_checkpointing (bool): in training, keep only each transformer layer's input and
        recompute the layer in the backward pass (Hugging Face's `gradient_checkpointing_enable`,
        Chen et al. 2016, "Training Deep Nets with Sublinear Memory Cost"). The activations of
        every pass of a batch are otherwise held until the backward pass, and in exact mode a
        sentence with n entities makes n(n-1) passes: on CoNLL04 with MiniLM, 30 sentences
        (326 passes) peak at 6.9 GB without it and 2.4 GB with it, for 37% more time per update.
    nO (Optional[int]): number of outputs, set by the component from its labels.
    RETURNS (Model[Tuple[List[Doc], Candidates], RelationScores]): logits (n_pairs, nO); the
        contexts are the Doc-local token range of each pair's pass before the cut, the attention
        is zeros (this model has no context attention). The backward pass takes d_logits
        (n_pairs, nO) and fine-tunes the transformer.
    RAISES (ValueError): for an unknown `mode`, a `max_length` under 16, or an empty marker.
    """
    from spacy_transformers.data_classes import HFObjects
    from spacy_transformers.layers.hf_wrapper import HFWrapper

    if mode not in MODES:
        raise ValueError(f"TypedMarkerRelationModel: mode must be one of {MODES}, got {mode!r}")
    if max_length < 16:
        raise ValueError(f"TypedMarkerRelationModel: max_length must be at least 16, got {max_length}")
    markers = [head_marker, head_type_marker, tail_marker, tail_type_marker]
    if not all(m.strip() for m in markers):
        raise ValueError(f"TypedMarkerRelationModel: the markers must be non-blank, got {markers}")
    tok_cfg = dict({"use_fast": True}, **(tokenizer_config or {}))
    hf_objects = HFObjects(None, None, None, tok_cfg, dict(transformer_config or {}))
    encoder = HFWrapper(
        hf_objects,
        convert_inputs=_convert_inputs,
        convert_outputs=_convert_outputs,
        mixed_precision=mixed_precision,
        grad_scaler_config=dict(grad_scaler_config or {}),
    )
    output_layer = Linear(nO)
    classifier = chain(Maxout(hidden_width, nP=2, dropout=dropout, normalize=True), output_layer)
    refs = {"encoder": encoder, "classifier": classifier, "output_layer": output_layer}
    layers = [encoder, classifier]
    if label_width:
        refs["label_embed"] = HashEmbed(label_width, 64, seed=17)
        layers.append(refs["label_embed"])
    if distance_width:
        refs["distance_embed"] = Embed(distance_width, N_DISTANCE_BUCKETS)
        layers.append(refs["distance_embed"])
    return Model(
        "typed_marker_relation_model",
        forward,
        init=init,
        layers=layers,
        refs=refs,
        dims={"nO": nO},
        attrs={
            "name": str(name),
            "mode": mode,
            "max_length": max_length,
            "batch_size": batch_size,
            "markers": markers,
            "typed": typed,
            "use_cls": use_cls,
            "use_between": use_between,
            "gradient_checkpointing": gradient_checkpointing,
        },
    )


# --- markers and windows (pure functions, tested on their own) -------------------------------


@dataclass(frozen=True)
class MarkerStrings:
    """The marker punctuation: head "@ * LABEL * text @", tail "# ^ LABEL ^ text #"."""

    head: str = "@"
    head_type: str = "*"
    tail: str = "#"
    tail_type: str = "^"
    typed: bool = True

    def opening(self, role: int, label: str) -> str:
        """The opening marker of a head (role 0) or tail (role 1), spaces around it, the marker
        character at index 1."""
        outer, inner = (self.head, self.head_type) if role == HEAD else (self.tail, self.tail_type)
        return f" {outer} {inner} {label} {inner} " if self.typed else f" {outer} "

    def closing(self, role: int) -> str:
        return f" {self.head if role == HEAD else self.tail} "


def insert_markers(
    text: str, spans: Sequence[Tuple[int, int, int, str]], markers: MarkerStrings
) -> Tuple[str, numpy.ndarray]:
    """Insert the typed markers of `spans` into `text`.

    Markers are padded with spaces, so no tokenizer merges them with a neighbour. Where markers
    meet at one position, closing markers come before opening ones (adjacent spans), an outer
    span opens before and closes after an inner one (nested spans), and partly overlapping spans
    get crossing markers ("@ a # b @ c #").

    text (str): the context.
    spans (Sequence[Tuple[int, int, int, str]]): (start char, end char, role (0 head, 1 tail),
        label) per span, characters relative to `text`, end > start.
    RETURNS (Tuple[str, numpy int64 array]): the marked text, and (n_spans, 2) for each span the
        character index of its opening marker (the `@`/`#`) and of its closing marker.
    RAISES (ValueError): if a span is empty or outside `text`.
    """
    events = []
    for i, (start, end, role, label) in enumerate(spans):
        if not 0 <= start < end <= len(text):
            raise ValueError(f"insert_markers: span {i} ({start}, {end}) is empty or outside a text of {len(text)} characters")
        # closing before opening; nested: outer opens first, inner closes first
        events.append((end, 0, -start, -i, i, markers.closing(role)))
        events.append((start, 1, -end, i, i, markers.opening(role, label)))
    events.sort(key=lambda e: e[:4])
    pieces, positions, shift, last = [], numpy.zeros((len(spans), 2), dtype="int64"), 0, 0
    for pos, kind, _, _, i, marker in events:
        pieces.append(text[last:pos])
        shift += pos - last
        last = pos
        positions[i, 1 - kind] = shift + 1  # the marker character follows the leading space
        pieces.append(marker)
        shift += len(marker)
    pieces.append(text[last:])
    return "".join(pieces), positions


def char_to_token(offsets: numpy.ndarray, chars: numpy.ndarray) -> numpy.ndarray:
    """The token holding each character, from a fast tokenizer's offset mapping.

    offsets (numpy int array): (n_tokens, 2) start, end character of each token.
    chars (numpy int array): (n,) character indices.
    RETURNS (numpy int64 array): (n,) token indices.
    RAISES (ValueError): if a character is in no token (e.g. the tokenizer drops it).
    """
    index = numpy.searchsorted(offsets[:, 1], chars, side="right")
    ok = index < len(offsets)
    ok[ok] &= offsets[index[ok], 0] <= chars[ok]
    if not ok.all():
        raise ValueError(
            "TypedMarkerRelationModel: the tokenizer drops a marker character (no token covers "
            f"character {int(chars[~ok][0])}): choose marker strings it keeps"
        )
    return index


def select_window(n_tokens: int, required: Sequence[Tuple[int, int]], budget: int) -> Optional[numpy.ndarray]:
    """The token positions a pass keeps: all when they fit, else a window of `budget` tokens
    around the markers.

    n_tokens (int): tokens of the marked context (no special tokens).
    required (Sequence[Tuple[int, int]]): per marked span, (first token of its opening marker,
        token after its closing marker).
    budget (int): most tokens to keep.
    RETURNS (Optional[numpy int64 array]): sorted positions. Every opening and closing marker is
        kept when the marked region fits in `budget`: a contiguous window centred on it. When it
        does not and there are two spans (an exact pass), the two halves of the budget go to a
        window starting at each opening marker, so both markers and the start of both entities
        are kept. None when more than two spans do not fit (a packed pass: the caller splits it).
    """
    if n_tokens <= budget:
        return numpy.arange(n_tokens)
    lo = min(a for a, _ in required)
    hi = max(b for _, b in required)
    if hi - lo <= budget:
        start = max(0, min(lo - (budget - (hi - lo)) // 2, n_tokens - budget))
        return numpy.arange(start, start + budget)
    if len(required) > 2:
        return None
    (a1, _), (a2, _) = sorted(required)
    half = budget // 2
    first = numpy.arange(a1, min(a1 + half, n_tokens))
    second = numpy.arange(a2, min(a2 + budget - len(first), n_tokens))
    return numpy.union1d(first, second)


class MarkerBatch(NamedTuple):
    """The transformer inputs of a batch of candidates (numpy, CPU).

    texts (List[str]): the marked context of each pass (before the window cut).
    input_ids (List[List[int]]): the subword ids of each pass, special tokens included.
    pair_pass (numpy int64 array): (n_pairs,) the pass of each pair.
    positions (numpy int64 array): (n_pairs, 2) the position of the head's and the tail's
        opening marker in its pass's input_ids.
    between (numpy int64 array): (n_pairs, 2) the positions [start, end) of the tokens between
        the two entities in the pass's input_ids (start == end when there are none).
    contexts (numpy int32 array): (n_pairs, 2) Doc-local token range of each pair's pass.
    """

    texts: List[str]
    input_ids: List[List[int]]
    pair_pass: numpy.ndarray
    positions: numpy.ndarray
    between: numpy.ndarray
    contexts: numpy.ndarray


def build_marker_batch(
    docs: Sequence[Doc],
    candidates: Candidates,
    tokenizer: Any,
    markers: MarkerStrings,
    mode: str = "exact",
    max_length: int = 512,
) -> MarkerBatch:
    """Group the candidates into passes (`mode`), insert the typed markers, tokenize, and cut
    each pass to at most `max_length` subword tokens (special tokens included) with its markers.

    The context of a pass is the sentence(s) of its spans (`Candidates.span_sents`; the whole
    Doc without sentence boundaries). Marker tokens are found through the fast tokenizer's
    character offsets, so an entity or label of several subwords is handled.
    RETURNS (MarkerBatch).
    RAISES (ValueError): if the tokenizer is not a fast one (no offsets), or drops a marker.
    """
    if not getattr(tokenizer, "is_fast", False):
        raise ValueError(
            "TypedMarkerRelationModel needs a fast tokenizer (character offsets locate the "
            f"markers); got {type(tokenizer).__name__}: set tokenizer_config.use_fast = true"
        )
    n_pairs = len(candidates)
    pairs = candidates.global_pairs  # (n_pairs, 2) rows into the batch's spans
    doc_of_pair = candidates.doc_of_pair
    pair_sents = candidates.span_sents[pairs]  # (n_pairs, 2, 2)
    pair_ctx = numpy.stack([pair_sents[:, :, 0].min(axis=1), pair_sents[:, :, 1].max(axis=1)], axis=1)
    # group the pairs into passes: key -> pair rows
    if mode == "exact":
        keys = [(p,) for p in range(n_pairs)]
    elif mode == "packed_head":
        keys = [(int(h),) for h in pairs[:, 0]]
    elif mode == "packed":
        keys = [(int(d), int(s), int(e)) for d, (s, e) in zip(doc_of_pair, pair_ctx)]
    else:
        raise ValueError(f"TypedMarkerRelationModel: unknown mode {mode!r} (one of {MODES})")
    groups: Dict[tuple, List[int]] = {}
    for p, key in enumerate(keys):
        groups.setdefault(key, []).append(p)
    budget = min(max_length, int(getattr(tokenizer, "model_max_length", max_length) or max_length))
    probe_id = tokenizer.convert_tokens_to_ids(tokenizer.tokenize(markers.head))[0]
    probe = tokenizer.build_inputs_with_special_tokens([probe_id])
    n_prefix = probe.index(probe_id)
    prefix, suffix = probe[:n_prefix], probe[n_prefix + 1 :]
    budget -= len(probe) - 1
    if budget < 8:
        raise ValueError(f"TypedMarkerRelationModel: max_length {max_length} leaves no room for text")

    texts: List[str] = []
    input_ids: List[List[int]] = []
    pair_pass = numpy.zeros(n_pairs, dtype="int64")
    positions = numpy.zeros((n_pairs, 2), dtype="int64")
    between = numpy.zeros((n_pairs, 2), dtype="int64")
    contexts = numpy.zeros((n_pairs, 2), dtype="int32")

    def make_passes(pass_pairs: List[List[int]], pass_mode: str) -> None:
        exact = pass_mode == "exact"
        specs = []  # (pairs, marked span rows, roles, marked text, marker chars, context)
        for rows in pass_pairs:
            d = int(doc_of_pair[rows[0]])
            doc = docs[d]
            start = int(pair_ctx[rows, 0].min())
            end = int(pair_ctx[rows, 1].max())
            c0 = doc[start].idx
            c1 = doc[end - 1].idx + len(doc[end - 1])
            if exact:
                marked = [(int(pairs[rows[0], 0]), HEAD), (int(pairs[rows[0], 1]), TAIL)]
            else:  # every head of the pass in head markers; tails in tail markers ("packed_head")
                roles: Dict[int, int] = {}
                for r in rows:
                    roles[int(pairs[r, 0])] = HEAD
                for r in rows:
                    roles.setdefault(int(pairs[r, 1]), HEAD if pass_mode == "packed" else TAIL)
                marked = sorted(roles.items())
            strings = doc.vocab.strings
            spans = [
                (int(candidates.span_chars[s, 0]) - c0, int(candidates.span_chars[s, 1]) - c0, role,
                 strings[int(candidates.span_labels[s])])
                for s, role in marked
            ]
            text, chars = insert_markers(doc.text[c0:c1], spans, markers)
            specs.append((rows, [s for s, _ in marked], text, chars, (start, end)))
        if not specs:
            return
        encoded = tokenizer(
            [spec[2] for spec in specs], add_special_tokens=False, return_offsets_mapping=True
        )
        fallback: List[List[int]] = []
        for (rows, span_rows, text, chars, ctx), ids, offsets in zip(
            specs, encoded["input_ids"], encoded["offset_mapping"]
        ):
            offsets = numpy.asarray(offsets, dtype="int64").reshape(-1, 2)
            opening = char_to_token(offsets, chars[:, 0])
            closing = char_to_token(offsets, chars[:, 1])
            keep = select_window(len(ids), list(zip(opening.tolist(), (closing + 1).tolist())), budget)
            if keep is None:
                if exact:  # cannot happen: an exact pass always fits
                    raise ValueError(f"TypedMarkerRelationModel: no window of {budget} tokens holds the markers")
                fallback.extend(rows)
                continue
            new_pos = numpy.full(len(ids), -1, dtype="int64")
            new_pos[keep] = numpy.arange(len(keep)) + n_prefix
            index = len(input_ids)
            input_ids.append(prefix + [ids[k] for k in keep.tolist()] + suffix)
            texts.append(text)
            rows_a = numpy.asarray(rows)
            marked_rows = numpy.asarray(span_rows)
            order = numpy.argsort(marked_rows, kind="stable")
            two = order[numpy.searchsorted(marked_rows[order], pairs[rows_a])]  # (n, 2) head, tail slots
            pair_pass[rows_a] = index
            positions[rows_a] = new_pos[opening[two]]
            contexts[rows_a] = ctx
            between[rows_a] = _between(keep, opening[two], closing[two], n_prefix)
            if (positions[rows] < 0).any():  # select_window keeps every opening marker
                raise AssertionError(f"TypedMarkerRelationModel: a marker was cut from {text!r:.80}")
        if fallback:  # packed -> one pass per head -> one pass per pair
            if pass_mode == "packed":
                by_head: Dict[int, List[int]] = {}
                for r in fallback:
                    by_head.setdefault(int(pairs[r, 0]), []).append(r)
                make_passes(list(by_head.values()), "packed_head")
            else:
                make_passes([[r] for r in fallback], "exact")

    make_passes(list(groups.values()), mode)
    return MarkerBatch(texts, input_ids, pair_pass, positions, between, contexts)


def _between(keep: numpy.ndarray, opening: numpy.ndarray, closing: numpy.ndarray, n_prefix: int) -> numpy.ndarray:
    """[start, end) in a pass's input_ids of the tokens between the two marked spans of each
    pair: after the closing marker of the span that opens first, before the opening marker of
    the other; an empty range (0, 0) when the spans touch, overlap or nest.

    keep (numpy int array): (n_kept,) the sorted token positions the window kept.
    opening, closing (numpy int arrays): (n_pairs, 2) the head's and the tail's marker tokens
        before the cut.
    n_prefix (int): the special tokens before the text.
    RETURNS (numpy int64 array): (n_pairs, 2).
    """
    rows = numpy.arange(len(opening))
    first = (opening[:, 0] > opening[:, 1]).astype("int64")  # the span that opens first
    lo = closing[rows, first] + 1
    hi = opening[rows, 1 - first]
    ranges = numpy.stack([numpy.searchsorted(keep, lo), numpy.searchsorted(keep, hi)], axis=1) + n_prefix
    ranges[hi <= lo] = 0  # the window may drop tokens in between; searchsorted keeps what is left
    return ranges.astype("int64")


# --- the model ------------------------------------------------------------------------------


def _shim(model: Model):
    return model.get_ref("encoder").shims[0]


def get_tokenizer(model: Model) -> Any:
    """The relation transformer's tokenizer (None before `initialize` or loading)."""
    return _shim(model)._hfmodel.tokenizer


def get_transformer(model: Model) -> Any:
    """The relation transformer (a `transformers.PreTrainedModel`; None before `initialize`)."""
    return _shim(model)._hfmodel.transformer


def marker_strings(model: Model) -> MarkerStrings:
    head, head_type, tail, tail_type = model.attrs["markers"]
    return MarkerStrings(head, head_type, tail, tail_type, bool(model.attrs["typed"]))


def init(model: Model[InT, RelationScores], X: Optional[InT] = None, Y=None) -> None:
    """Load the transformer (once: not when it was loaded from a saved pipeline) with
    spacy-transformers' `huggingface_from_pretrained`, and size the classifier from its width."""
    from spacy_transformers.layers.transformer_model import huggingface_from_pretrained

    shim = _shim(model)
    hf = shim._hfmodel
    if hf.transformer is None:
        loaded = huggingface_from_pretrained(
            model.attrs["name"], dict(hf._init_tokenizer_config), dict(hf._init_transformer_config)
        )
        hf.tokenizer = loaded.tokenizer
        hf.transformer = loaded.transformer
        hf.vocab_file_contents = loaded.vocab_file_contents
        shim._model = loaded.transformer
    if not getattr(hf.tokenizer, "is_fast", False):
        raise ValueError(
            f"TypedMarkerRelationModel: {model.attrs['name']!r} has no fast tokenizer; the "
            "markers are located through character offsets (tokenizer_config.use_fast = true)"
        )
    width = int(hf.transformer.config.hidden_size)
    n_vectors = 2 + bool(model.attrs["use_cls"]) + bool(model.attrs["use_between"])
    features = n_vectors * width
    if model.has_ref("label_embed"):
        model.get_ref("label_embed").initialize()
        features += 2 * model.get_ref("label_embed").get_dim("nO")
    if model.has_ref("distance_embed"):
        model.get_ref("distance_embed").initialize()
        features += model.get_ref("distance_embed").get_dim("nO")
    if model.has_dim("nO") and model.get_dim("nO") is not None:
        model.get_ref("output_layer").set_dim("nO", model.get_dim("nO"), force=True)
    classifier = model.get_ref("classifier")
    classifier.layers[0].set_dim("nI", features, force=True)
    classifier.initialize(X=model.ops.alloc2f(2, features))


def _pool_between(ops, H: Floats2d, base: numpy.ndarray, between: numpy.ndarray) -> Tuple[Floats2d, Callable]:
    """Max-pool each pair's between-entity tokens: H (n_rows, nH), base (n_pairs,) the row of
    each pair's pass start, between (n_pairs, 2) [start, end) in the pass -> (n_pairs, nH),
    zeros for an empty range. The callback adds the gradient into dH (n_rows, nH)."""
    n = (between[:, 1] - between[:, 0]).astype("int32")
    starts = base + between[:, 0]
    rows = numpy.repeat(starts - (numpy.cumsum(n) - n), n) + numpy.arange(int(n.sum()))  # each range's rows
    rows_x = ops.asarray1i(rows.astype("int32"))
    pooled, backprop_max = max_pool(ops, H[rows_x], ops.asarray1i(n))

    def backprop(dH: Floats2d, d_pooled: Floats2d) -> None:
        ops.scatter_add(dH, rows_x, backprop_max(d_pooled))

    return pooled, backprop


def _set_gradient_checkpointing(transformer: Any, enabled: bool) -> None:
    """Switch Hugging Face gradient checkpointing on or off (not saved with the weights, so set
    on every training call; a no-op when it is already as asked)."""
    if getattr(transformer, "is_gradient_checkpointing", False) == enabled:
        return
    if enabled:
        transformer.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    else:
        transformer.gradient_checkpointing_disable()


def _convert_inputs(model: Model, inputs: Tuple[numpy.ndarray, numpy.ndarray], is_train: bool):
    """(input_ids, attention_mask) numpy (n_passes, length) -> the transformer's kwargs, on its
    device (as spacy-transformers' `_convert_transformer_inputs`)."""
    device = model.shims[0]._hfmodel.transformer.device
    ids, mask = inputs
    kwargs = {"input_ids": xp2torch(ids, device=device), "attention_mask": xp2torch(mask, device=device)}
    return ArgsKwargs(args=(), kwargs=kwargs), lambda d_inputs: []


def _convert_outputs(model: Model, inputs_outputs, is_train: bool):
    """The last hidden state as a float32 array of the current ops (n_passes, length, width);
    its gradient goes back as the `grad_tensors` of torch's backward."""
    _, output = inputs_outputs
    hidden = output.last_hidden_state
    Y = torch2xp(hidden.detach())  # (no gradient export through DLPack on a GPU)
    dtype = Y.dtype
    Y = Y.astype("float32", copy=False)

    def backprop(dY) -> ArgsKwargs:
        d_hidden = xp2torch(dY.astype(dtype, copy=False), device=hidden.device)
        return ArgsKwargs(args=(hidden,), kwargs={"grad_tensors": (d_hidden,)})

    return Y, backprop


def forward(model: Model[InT, RelationScores], inputs: InT, is_train: bool) -> Tuple[RelationScores, Callable]:
    docs, candidates = inputs
    ops = model.ops
    xp = ops.xp
    nO = model.get_dim("nO")
    n_pairs = len(candidates)
    if n_pairs == 0:
        empty = RelationScores(ops.alloc2f(0, nO), numpy.zeros((0, 2), dtype="int32"), ops.alloc1f(0))
        return empty, lambda d_logits: None
    tokenizer = get_tokenizer(model)
    if tokenizer is None:
        raise ValueError("TypedMarkerRelationModel: the model is not initialized (no transformer loaded)")
    batch = build_marker_batch(
        docs, candidates, tokenizer, marker_strings(model), model.attrs["mode"], model.attrs["max_length"]
    )
    encoder = model.get_ref("encoder")
    if is_train:
        _set_gradient_checkpointing(get_transformer(model), bool(model.attrs["gradient_checkpointing"]))
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    lengths = numpy.asarray([len(ids) for ids in batch.input_ids])
    order = numpy.argsort(lengths, kind="stable")
    size = max(1, int(model.attrs["batch_size"]))
    pass_base = numpy.zeros(len(lengths), dtype="int64")  # row of each pass's first token in H
    outputs, callbacks, shapes, offset = [], [], [], 0
    for i in range(0, len(order), size):
        chunk = order[i : i + size]
        width = int(lengths[chunk].max())
        ids = numpy.full((len(chunk), width), pad_id, dtype="int64")
        mask = numpy.zeros((len(chunk), width), dtype="int64")
        for row, p in enumerate(chunk.tolist()):
            ids[row, : lengths[p]] = batch.input_ids[p]
            mask[row, : lengths[p]] = 1
        H, bp_H = encoder((ids, mask), is_train)
        pass_base[chunk] = offset + numpy.arange(len(chunk)) * width
        offset += len(chunk) * width
        outputs.append(H.reshape(-1, H.shape[-1]))
        callbacks.append(bp_H)
        shapes.append(H.shape)
    H_all = xp.concatenate(outputs) if len(outputs) > 1 else outputs[0]  # (sum of padded tokens, nH)
    nH = H_all.shape[1]
    base = pass_base[batch.pair_pass]
    rows = [base + batch.positions[:, 0], base + batch.positions[:, 1]]
    if model.attrs["use_cls"]:
        rows.append(base)
    rows_x = [ops.asarray1i(r.astype("int32")) for r in rows]
    features = [H_all[r] for r in rows_x]
    bp_between = None
    if model.attrs["use_between"]:
        pooled, bp_between = _pool_between(ops, H_all, base, batch.between)
        features.append(pooled)
    bp_label = bp_distance = None
    pairs = candidates.global_pairs
    if model.has_ref("label_embed"):
        keys = numpy.concatenate([candidates.span_labels[pairs[:, 0]], candidates.span_labels[pairs[:, 1]]])
        E, bp_label = model.get_ref("label_embed")(ops.asarray(keys), is_train)
        features.extend((E[:n_pairs], E[n_pairs:]))
    if model.has_ref("distance_embed"):
        buckets = _distance_buckets(candidates.spans[pairs[:, 0]], candidates.spans[pairs[:, 1]])
        D, bp_distance = model.get_ref("distance_embed")(ops.asarray1i(buckets), is_train)
        features.append(D)
    logits, bp_classifier = model.get_ref("classifier")(xp.hstack(features), is_train)
    n_ctx = int((batch.contexts[:, 1] - batch.contexts[:, 0]).sum())
    scores = RelationScores(logits, batch.contexts, ops.alloc1f(n_ctx))

    def backprop(d_logits: Floats2d) -> None:
        d_features = bp_classifier(d_logits)
        dH = ops.alloc2f(*H_all.shape)
        for k, r in enumerate(rows_x):
            ops.scatter_add(dH, r, xp.ascontiguousarray(d_features[:, k * nH : (k + 1) * nH]))
        col = len(rows_x) * nH
        if bp_between is not None:
            bp_between(dH, xp.ascontiguousarray(d_features[:, col : col + nH]))
            col += nH
        if bp_label is not None:
            nL = model.get_ref("label_embed").get_dim("nO")
            bp_label(xp.vstack((d_features[:, col : col + nL], d_features[:, col + nL : col + 2 * nL])))
            col += 2 * nL
        if bp_distance is not None:
            bp_distance(xp.ascontiguousarray(d_features[:, col:]))
        start = 0
        for shape, bp_H in zip(shapes, callbacks):
            size_ = shape[0] * shape[1]
            bp_H(dH[start : start + size_].reshape(shape))
            start += size_

    return scores, backprop
