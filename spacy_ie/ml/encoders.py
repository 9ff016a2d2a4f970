"""Token encoders for spaCy's tok2vec slots: a self-attention context encoder, and case features
beside an (uncased) shared encoder.

`spacy_ie.SelfAttentionEncoder.v1` is an `encode` layer for spaCy's `spacy.Tok2Vec.v2`, beside
`spacy.MaxoutWindowEncoder.v2` (a CNN window) and `spacy.TorchBiLSTMEncoder.v1`::

    embed (List[Floats2d], each (n_tokens, width))
      ─ pad into (n_docs, max_len, width), key padding mask (n_docs, max_len)
      ─ + sinusoidal position encoding
      ─ depth x torch.nn.TransformerEncoderLayer (pre-LN multi-head self-attention + FFN)
      ─ LayerNorm ─ unpad -> List[Floats2d], each (n_tokens, width)

It wraps torch's `nn.TransformerEncoder` with thinc's `PyTorchWrapper_v2` inside `with_padded`,
as spaCy wraps `torch.nn.LSTM` for `spacy.TorchBiLSTMEncoder.v1` (spacy/ml/models/tok2vec.py,
thinc's `PyTorchRNNWrapper`).

`spacy_ie.CaseFeatures.v1` wraps a tok2vec sub-model (usually a listener) for `ner` or
`relation_extractor`::

    docs ─┬ tok2vec (e.g. TransformerListener)          -> (n_tokens, n_t2v)
          └ MultiHashEmbed.v2(SHAPE, PREFIX, SUFFIX)      -> (n_tokens, case_width)
      concatenate ─ [Maxout(width) + LayerNorm]          -> (n_tokens, width or n_t2v + case_width)

An uncased transformer (all-MiniLM-L6-v2 lower-cases its input) never sees capitalization; the
hash embeddings of the word shape ("Xxxx", "dd", "X.") and of the affixes, read from the
original text, give it back to the component, as spaCy's CNN tok2vec has it.
"""
import math
from typing import Callable, List, Optional, Sequence, Tuple

from spacy.util import registry
from spacy.ml.models.tok2vec import MultiHashEmbed
from spacy.tokens import Doc
from thinc.api import Maxout, Model, PyTorchWrapper_v2, chain, with_array, with_padded
from thinc.compat import has_torch, torch
from thinc.types import ArgsKwargs, Floats2d, Padded
from thinc.util import torch2xp, xp2torch

# --- self-attention encoder -------------------------------------------------------------------

_TorchModule = torch.nn.Module if has_torch else object


def sinusoidal_positions(length: int, width: int) -> "torch.Tensor":
    """The fixed position encoding of Vaswani et al. (2017) "Attention Is All You Need", §3.5:
    ``PE[p, 2i] = sin(p / 10000^(2i / width))``, ``PE[p, 2i + 1] = cos(p / 10000^(2i / width))``.

    length (int): number of positions (tokens).
    width (int): encoding width (an odd width drops the last cosine column).
    RETURNS (torch.Tensor): (length, width) float32, values in [-1, 1], on the CPU.
    """
    position = torch.arange(length, dtype=torch.float32).unsqueeze(1)
    frequency = torch.exp(torch.arange(0, width, 2, dtype=torch.float32) * (-math.log(10000.0) / width))
    table = torch.zeros(length, width + width % 2)
    table[:, 0::2] = torch.sin(position * frequency)
    table[:, 1::2] = torch.cos(position * frequency)
    return table[:, :width]


class SelfAttentionStack(_TorchModule):
    """`depth` pre-LN `torch.nn.TransformerEncoderLayer`s (batch_first) over sinusoidal position
    encodings, and a final LayerNorm (torch docs: torch.nn.TransformerEncoder; Vaswani et al.
    2017; pre-LN as Xiong et al. 2020, which trains without warm-up).

    Input ``X`` is time-major (max_len, n_docs, width), as thinc's `Padded`, with ``lengths``
    (n_docs,) int; the key padding mask (n_docs, max_len) is True from each length on. An
    empty doc keeps its first (zero) position unmasked, so that no query has only masked keys
    (a softmax over nothing; torch 2.13 returns finite values there, not every version
    may). The output has the shape of X; its padding rows are dropped by `with_padded`.
    Positions are encoded for any length (nothing is learned per position), so texts longer
    than any seen in training run, with positions the model has not been trained on.
    """

    def __init__(self, width: int, depth: int, n_heads: int, ffn_width: int, dropout: float):
        super().__init__()
        layer = torch.nn.TransformerEncoderLayer(
            d_model=width,
            nhead=n_heads,
            dim_feedforward=ffn_width,
            dropout=dropout,
            activation="gelu",
            batch_first=True,
            norm_first=True,
        )
        # enable_nested_tensor speeds up padded inference only for post-LN layers.
        self.encoder = torch.nn.TransformerEncoder(
            layer, num_layers=depth, norm=torch.nn.LayerNorm(width), enable_nested_tensor=False
        )
        self.width = width

    def forward(self, X: "torch.Tensor", lengths: "torch.Tensor") -> "torch.Tensor":
        X = X.transpose(0, 1)
        positions_index = torch.arange(X.shape[1], device=X.device)
        padding_mask = positions_index[None, :] >= lengths.clamp(min=1)[:, None]
        positions = sinusoidal_positions(X.shape[1], self.width).to(device=X.device, dtype=X.dtype)
        Y = self.encoder(X + positions, src_key_padding_mask=padding_mask)
        return Y.transpose(0, 1)


def _convert_padded_inputs(model: Model, Xp: Padded, is_train: bool) -> Tuple[ArgsKwargs, Callable]:
    """Padded (max_len, n_docs, width) -> torch args (X, lengths (n_docs,))."""
    shim = model.shims[0]
    X = xp2torch(Xp.data, requires_grad=is_train, device=shim.device)
    lengths = torch.as_tensor(model.ops.to_numpy(Xp.lengths), dtype=torch.long, device=shim.device)

    def convert_from_torch_backward(d_inputs: ArgsKwargs) -> Padded:
        return Padded(torch2xp(d_inputs.args[0]), Xp.size_at_t, Xp.lengths, Xp.indices)

    return ArgsKwargs(args=(X, lengths), kwargs={}), convert_from_torch_backward


def _convert_padded_outputs(model: Model, inputs_outputs: Tuple, is_train: bool) -> Tuple[Padded, Callable]:
    """torch output (max_len, n_docs, width) -> Padded with the input's lengths and order."""
    shim = model.shims[0]
    Xp, Ytorch = inputs_outputs

    def convert_for_torch_backward(dYp: Padded) -> ArgsKwargs:
        dYtorch = xp2torch(dYp.data, device=shim.device)
        return ArgsKwargs(args=(Ytorch,), kwargs={"grad_tensors": dYtorch})

    return Padded(torch2xp(Ytorch), Xp.size_at_t, Xp.lengths, Xp.indices), convert_for_torch_backward


@registry.architectures("spacy_ie.SelfAttentionEncoder.v1")
def build_self_attention_encoder(
    width: int,
    depth: int = 2,
    n_heads: int = 4,
    ffn_width: Optional[int] = None,
    dropout: float = 0.1,
) -> Model[List[Floats2d], List[Floats2d]]:
    """Encode context with multi-head self-attention over each Doc (a Transformer encoder,
    Vaswani et al. 2017), as the `encode` of `spacy.Tok2Vec.v2`. Requires PyTorch.

    Every token attends to every token of its own Doc (padding is masked with
    `src_key_padding_mask`); word order enters through fixed sinusoidal position encodings
    added to the input, defined for any length (see `SelfAttentionStack`). Cost is quadratic in
    the Doc length. Layers are pre-LN (`norm_first=True`) with GELU feed-forward blocks and a
    final LayerNorm (torch.nn.TransformerEncoderLayer / TransformerEncoder).

    width (int): input and output width (the embed width), divisible by n_heads.
    depth (int): number of encoder layers; 0 returns the input unchanged.
    n_heads (int): attention heads per layer.
    ffn_width (Optional[int]): hidden width of each feed-forward block; 4 * width when None
        (the paper's ratio).
    dropout (float): dropout on attention weights, the feed-forward block and the residual
        branches, in training only.
    RETURNS (Model[List[Floats2d], List[Floats2d]]): one (n_tokens, width) array per Doc in,
        one (n_tokens, width) array per Doc out.
    RAISES (ValueError): width not divisible by n_heads, or a negative depth.
    RAISES (ImportError): PyTorch is not installed (`pip install spacy-ie[torch]`).
    """
    if depth < 0:
        raise ValueError(f"spacy_ie.SelfAttentionEncoder.v1: depth must be >= 0, got {depth}")
    if depth == 0:
        from thinc.api import noop

        return noop()
    if n_heads < 1 or width % n_heads:
        raise ValueError(
            f"spacy_ie.SelfAttentionEncoder.v1: width {width} must be a multiple of n_heads {n_heads}"
        )
    if not has_torch:
        raise ImportError("spacy_ie.SelfAttentionEncoder.v1 needs PyTorch: pip install 'spacy-ie[torch]'")
    stack = SelfAttentionStack(width, depth, n_heads, ffn_width or 4 * width, dropout)
    wrapped = PyTorchWrapper_v2(
        stack, convert_inputs=_convert_padded_inputs, convert_outputs=_convert_padded_outputs
    )
    wrapped.set_dim("nI", width)
    wrapped.set_dim("nO", width)
    padded = with_padded(wrapped)
    return Model(
        "self_attention_encoder",
        _forward_self_attention,
        init=_init_self_attention,
        layers=[padded],
        dims={"nI": width, "nO": width},
    )


def _init_self_attention(model: Model, X: Optional[List[Floats2d]] = None, Y=None) -> None:
    model.layers[0].initialize(X=X, Y=Y)


def _forward_self_attention(
    model: Model[List[Floats2d], List[Floats2d]], Xs: List[Floats2d], is_train: bool
) -> Tuple[List[Floats2d], Callable]:
    """with_padded(torch encoder), except that a batch without tokens passes through as is
    (torch cannot attend over zero positions)."""
    if not any(len(X) for X in Xs):
        return Xs, lambda dYs: dYs
    return model.layers[0](Xs, is_train)


# --- case features beside a shared encoder ------------------------------------------------------


@registry.architectures("spacy_ie.CaseFeatures.v1")
def build_case_features(
    tok2vec: Model[List[Doc], List[Floats2d]],
    width: Optional[int] = None,
    case_width: int = 64,
    attrs: Sequence[str] = ("SHAPE", "PREFIX", "SUFFIX"),
    rows: Sequence[int] = (1000, 2500, 2500),
) -> Model[List[Doc], List[Floats2d]]:
    """Concatenate a tok2vec's token vectors with hash embeddings of orthographic features
    (word shape, prefix, suffix), for a component that listens to an uncased encoder.

    The features come from spaCy's `spacy.MultiHashEmbed.v2` (hash embeddings of the token
    attributes, concatenated and mixed by a Maxout layer with LayerNorm; Svenstrup et al.
    2017 hash embeddings, spaCy's tok2vec docs), so they need no vocabulary. With `width`,
    a Maxout layer (2 pieces, LayerNorm) projects the concatenation to a fixed width.

    tok2vec (Model[List[Doc], List[Floats2d]]): the wrapped token encoder, e.g.
        `spacy-transformers.TransformerListener.v1` or `spacy.Tok2VecListener.v1`; its
        gradients flow back to it (and through a listener to the shared encoder).
    width (Optional[int]): output width after the projection; None: no projection, the output
        width is the tok2vec's plus case_width.
    case_width (int): width of the case-feature embedding.
    attrs (Sequence[str]): spaCy token attributes to embed (names as in MultiHashEmbed).
    rows (Sequence[int]): hash table rows per attribute, one per attrs entry.
    RETURNS (Model[List[Doc], List[Floats2d]]): one (n_tokens, nO) array per Doc; its first
        n_t2v columns are the tok2vec's output when width is None. nO is set at construction
        when width is given or the tok2vec has an nO (Tok2VecListener), otherwise at
        initialization (a transformer listener's width is known only then; spaCy's `ner` and
        the relation model infer it there).
    RAISES (ValueError): attrs and rows differ in length.
    """
    if len(attrs) != len(rows):
        raise ValueError(
            f"spacy_ie.CaseFeatures.v1: attrs {list(attrs)} and rows {list(rows)} differ in length"
        )
    case_embed = MultiHashEmbed(
        width=case_width, attrs=list(attrs), rows=list(rows), include_static_vectors=False
    )
    features = Model(
        "case_features",
        _forward_case_features,
        init=_init_case_features,
        layers=[tok2vec, case_embed],
        dims={"nO": tok2vec.get_dim("nO") + case_width if tok2vec.has_dim("nO") else None},
    )
    if width is None:
        model = features
    else:
        model = chain(features, with_array(Maxout(width, nP=2, normalize=True)))
        model.set_dim("nO", width)
    model.set_ref("tok2vec", tok2vec)
    model.set_ref("case_embed", case_embed)
    return model


def _init_case_features(model: Model, X: Optional[List[Doc]] = None, Y=None) -> None:
    tok2vec, case_embed = model.layers
    tok2vec.initialize(X=X)
    case_embed.initialize(X=X)
    if tok2vec.has_dim("nO"):
        model.set_dim("nO", tok2vec.get_dim("nO") + case_embed.get_dim("nO"), force=True)


def _forward_case_features(
    model: Model[List[Doc], List[Floats2d]], docs: List[Doc], is_train: bool
) -> Tuple[List[Floats2d], Callable]:
    """[tok2vec(doc); case_embed(doc)] per Doc. Like thinc's `concatenate`, but the backward
    pass does not add up the sub-models' return values (a transformer listener returns None, a
    Tok2VecListener []): Docs have no gradient."""
    tok2vec, case_embed = model.layers
    tokvecs, backprop_tokvecs = tok2vec(docs, is_train)
    case_vecs, backprop_case = case_embed(docs, is_train)
    width = tokvecs[0].shape[1] if tokvecs else 0
    outputs = [model.ops.xp.hstack((t, c)) for t, c in zip(tokvecs, case_vecs)]

    def backprop(d_outputs: List[Floats2d]) -> List[Doc]:
        backprop_tokvecs([model.ops.as_contig(d[:, :width]) for d in d_outputs])
        backprop_case([model.ops.as_contig(d[:, width:]) for d in d_outputs])
        return []

    return outputs, backprop
