"""Int8 pipelines for CPU inference: dynamic quantization of a pipeline's transformers.

What is quantized: every ``torch.nn.Linear`` layer of each Hugging Face transformer that a
pipeline holds through spacy-transformers' `HFShim`: the shared ``transformer`` component
(``spacy-transformers.TransformerModel.v3``) and the typed-marker relation model's own
(``spacy_ie.TypedMarkerRelationModel.v1``). That is the query, key, value and output
projections of self-attention and both feed-forward layers of every transformer block (and the
pooler). Each weight matrix is stored as int8 with one scale per output row (or per matrix,
`per_channel` false); at run time each layer's input is quantized to 8 bits with scales
taken from that input's own range (hence "dynamic": nothing is calibrated beforehand; one
scale per wordpiece or one per call, below), multiplied in int8 with int32 accumulation, and
returned as float32. The embeddings, the layer norms, the attention products (softmax(QK^T)V)
and everything outside the transformers (the relation classifier, ``ner``, ...) stay float32.
Shapes are unchanged: the transformer's hidden states are (n_passes, n_wordpieces, width) as
before, so every listener and model after it runs as with the float32 pipeline.

Two schemes for the activations (``activations``):

- ``"per_token"`` (the default): each row of a layer's input (one wordpiece) gets its own
  scale, from its own largest absolute value; symmetric int8 for both operands, the product in
  int32 by ``torch._int_mm`` (the kernel torchao's int8 dynamic quantization uses), scaled back
  per row and per output column (`Int8Linear`). ZeroQuant's token-wise activation quantization
  (Yao et al. 2022, "ZeroQuant: Efficient and Affordable Post-Training Quantization for
  Large-Scale Transformers", Sec. 4.1) and LLM.int8's vector-wise quantization (Dettmers et al.
  2022, Sec. 3.1): a wordpiece with an outlier channel costs only its own row resolution.
- ``"per_tensor"``: PyTorch's dynamic quantization, one scale for the whole input of a call
  (all the wordpieces of a batch; see the method below).

On the hidden-layer MiniLM joint pipeline (CoNLL04 test, 3 seeds), per tensor lost 2.7 points
end to end and per token 0.1, at 9% fewer words/s (BENCHMARKS.md, "Per-token int8").

Method (``per_tensor``): PyTorch post-training dynamic quantization (``torch.ao.quantization.quantize_dynamic``;
https://pytorch.org/docs/stable/quantization.html, and the "Dynamic quantization on BERT"
tutorial, https://pytorch.org/tutorials/intermediate/dynamic_quantization_bert_tutorial.html).
Zafrir et al. 2019, "Q8BERT: Quantized 8Bit BERT", quantize the same fully connected layers
(and the embeddings) to 8 bits, with quantization-aware training; here nothing is retrained.
torchao's ``quantize_`` (``Int8DynamicActivationInt8WeightConfig``), which PyTorch names as the
successor of ``torch.ao.quantization``, ran all-MiniLM-L6-v2 slower than float32 in eager mode
on this project's CPU (its int8 kernels need ``torch.compile``). So ``per_tensor`` uses the
eager ``torch.ao`` path (its deprecation warnings are silenced around our own calls), and
``per_token`` calls the same int8 product as torchao, ``torch._int_mm``, from `Int8Linear`.

How it is saved (the output is a normal spaCy pipeline directory, loaded by ``spacy.load``
with no extra code): each quantized component's model block in ``config.cfg`` is wrapped in
``spacy_ie.QuantizedTransformerModel.v1`` (`build_quantized_transformer_model`, registered by
entry point), whose ``model`` is the original block. spacy-transformers rebuilds a transformer
from its saved Hugging Face config and then loads the saved ``state_dict``; an int8 state_dict
does not fit a float32 module, so the wrapper gives the model's shims `QuantizedHFShim`, which
builds the module from the config, quantizes it, and then loads the saved int8 weights (the
files on disk hold the int8 weights, about a third smaller for MiniLM, whose word embeddings
stay float32). A float32 state_dict under the wrapper (e.g. a hand-written config) is loaded and
then quantized.

Accuracy: BERT-style models have a few outlier channels in the inputs of their feed-forward
layers (LayerNorm outputs up to ~30 where most channels stay under 2, in all-MiniLM-L6-v2), and
one activation scale per input costs the other channels resolution (Bondarenko et al. 2021,
"Understanding and Overcoming the Challenges of Efficient Transformer Quantization"): measure
the quantized pipeline before shipping it (BENCHMARKS.md has the figures).

Inference only, on CPU: the int8 layers have no gradient (train the float32 pipeline and
quantize it again), and the quantized kernels (fbgemm / oneDNN) run on the CPU.
"""
import os
import shutil
import tempfile
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Dict, Iterator, List, NamedTuple, Optional, Union

import srsly
import torch
from confection import Config
from spacy.language import Language
from spacy.util import registry
from spacy_transformers.layers.hf_shim import HFShim
from thinc.api import Model, get_torch_default_device
from transformers import AutoModel

from .util import load_pipeline

QUANTIZED_ARCHITECTURE = "spacy_ie.QuantizedTransformerModel.v1"
# What `QuantizedHFShim.to_bytes` records beside the weights: they are int8, and how.
QUANTIZATION_KEY = "spacy_ie_quantization"

# torch.ao.quantization warns on every call that it will move to torchao, quantized tensors
# that they will be removed, and torch.load's own rebuilding of a quantized tensor that
# TypedStorage will: all about a future PyTorch, none about this call.
_TORCH_DEPRECATIONS = (
    r"torch\.ao\.quantization is deprecated",
    r"torch\.quantize_per_tensor, torch\.quantize_per_channel",
    r"TypedStorage is deprecated",
)


class NoTransformerError(ValueError):
    """The pipeline (or model) holds no spacy-transformers transformer to quantize."""


@contextmanager
def _quiet_torch_deprecations() -> Iterator[None]:
    with warnings.catch_warnings():
        for message in _TORCH_DEPRECATIONS:
            warnings.filterwarnings("ignore", message=message)
        yield


class Int8Linear(torch.nn.Module):
    """A ``torch.nn.Linear`` run in int8 with one activation scale per input row (the
    ``per_token`` scheme of the module docstring).

    Weights: symmetric int8, one scale per output row (`per_channel`) or one for the matrix,
    stored transposed, (in_features, out_features), as ``torch._int_mm`` takes them. Forward:
    x (..., in_features) float32 -> each row scaled by its largest absolute value / 127 and
    rounded to int8 -> int8 x int8 product with int32 accumulation -> float32, times the row's
    and the column's scales, plus the float32 bias -> (..., out_features). No gradient.
    Source: ZeroQuant (Yao et al. 2022, Sec. 4.1), LLM.int8 (Dettmers et al. 2022, Sec. 3.1).
    """

    block_rows = 1024  # rows per block in `forward`: fastest of 256 to 2,048 for MiniLM's shapes
    # PyTorch runs ``torch._int_mm`` on the CPU through oneDNN only where the CPU has VNNI
    # (int8 dot-product instructions); elsewhere it falls back to a reference loop, measured
    # 50 times slower than float32 ``torch.mm`` on an AVX2-only AMD EPYC (1.1 s against 21 ms
    # for 1,024 x 384 x 1,536). There the product runs as a float32 matrix product of the same
    # int8 values, which gives the same result (exact while a row's sum stays below 2^24; past
    # that, float32 rounding) at float32 speed: per-token int8 keeps its accuracy and gives up
    # its speed-up on such CPUs, where `--activations per-tensor` (fbgemm's AVX2 kernels) is
    # the fast scheme.
    native_int_mm = bool(
        torch.backends.mkldnn.is_available() and getattr(torch.cpu, "_is_vnni_supported", lambda: True)()
    )

    def __init__(self, in_features: int, out_features: int, bias: bool = True, per_channel: bool = True) -> None:
        super().__init__()
        self.in_features, self.out_features, self.per_channel = in_features, out_features, per_channel
        self.register_buffer("weight_int8", torch.zeros(in_features, out_features, dtype=torch.int8))
        self.register_buffer("weight_scale", torch.ones(out_features))
        self.register_buffer("bias", torch.zeros(out_features) if bias else None)

    @classmethod
    def from_float(cls, linear: torch.nn.Linear, per_channel: bool = True) -> "Int8Linear":
        """The int8 copy of `linear` (weights quantized, bias kept float32)."""
        new = cls(linear.in_features, linear.out_features, linear.bias is not None, per_channel)
        with torch.no_grad():
            weight = linear.weight.detach().float()
            limit = weight.abs().amax(dim=1) if per_channel else weight.abs().amax().expand(weight.shape[0])
            scale = limit.clamp(min=1e-12) / 127
            new.weight_int8.copy_(torch.round(weight / scale[:, None]).t().to(torch.int8))
            new.weight_scale.copy_(scale)
            if linear.bias is not None:
                new.bias.copy_(linear.bias.detach())
        return new

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rows = x.reshape(-1, self.in_features)
        out = torch.empty(rows.shape[0], self.out_features, dtype=torch.float32)
        # In blocks of rows: the int32 products and the scaled inputs of a block stay small and
        # in cache; whole-batch temporaries (tens of MB, fresh pages on every call) made the
        # layer twice as slow as PyTorch's fused dynamic Linear.
        for start in range(0, rows.shape[0], self.block_rows):
            block = rows[start : start + self.block_rows]
            scale = block.abs().amax(dim=1, keepdim=True).clamp_(min=1e-12).div_(127)
            block_q = torch.div(block, scale).round_()  # integers in [-127, 127], float32
            block_out = out[start : start + self.block_rows]
            if self.native_int_mm:
                torch.mul(torch._int_mm(block_q.to(torch.int8), self.weight_int8), scale, out=block_out)
            else:
                torch.mm(block_q, self._float_weight(), out=block_out).mul_(scale)
            block_out.mul_(self.weight_scale)
            if self.bias is not None:
                block_out.add_(self.bias)
        return out.reshape(*x.shape[:-1], self.out_features)

    def _float_weight(self) -> torch.Tensor:
        """The int8 weights as float32 (in_features, out_features), for CPUs without a native
        int8 product; cached, and rebuilt when the weights change (e.g. `load_state_dict`)."""
        cached = getattr(self, "_float_weight_cache", None)
        if cached is None or cached[0] != self.weight_int8._version:
            cached = (self.weight_int8._version, self.weight_int8.to(torch.float32))
            self._float_weight_cache = cached
        return cached[1]

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"


ACTIVATION_SCHEMES = ("per_token", "per_tensor")
# The int8 Linear layers `quantize_module` writes, one per scheme.
INT8_LINEAR = (Int8Linear, torch.ao.nn.quantized.dynamic.Linear)


def quantize_module(
    module: torch.nn.Module, per_channel: bool = True, activations: str = "per_token"
) -> torch.nn.Module:
    """Replace every ``torch.nn.Linear`` of `module` by an int8 counterpart, in place, and
    return the module in eval mode. Input and output shapes are unchanged; the module must be
    on the CPU.

    per_channel (bool): one int8 scale per output row of each weight matrix (PyTorch's
        ``per_channel_dynamic_qconfig``), else one per matrix (``default_dynamic_qconfig``).
        Per channel follows each row's own range, so a row of small weights keeps its
        resolution beside a row of large ones (Krishnamoorthi 2018, "Quantizing deep
        convolutional networks for efficient inference: A whitepaper", Sec. 3.1); on the
        rel_component MiniLM pipeline it lost less than per tensor (BENCHMARKS.md).
    activations (str): ``"per_token"``, `Int8Linear` (one scale per input row), or
        ``"per_tensor"``, PyTorch's ``torch.ao.nn.quantized.dynamic.Linear`` (one scale per call).
    RAISES (ValueError): if the module is on another device (the int8 kernels are CPU only), or
        `activations` is not one of the schemes.
    """
    if activations not in ACTIVATION_SCHEMES:
        raise ValueError(f"activations must be one of {', '.join(ACTIVATION_SCHEMES)}, got {activations!r}")
    devices = {p.device.type for p in module.parameters()}
    if devices - {"cpu"}:
        raise ValueError(f"int8 dynamic quantization runs on the CPU; the transformer is on {sorted(devices)}")
    if activations == "per_token":
        for parent in list(module.modules()):
            for name, child in list(parent.named_children()):
                if type(child) is torch.nn.Linear:
                    setattr(parent, name, Int8Linear.from_float(child, per_channel))
        return module.eval()
    qconfig = (
        torch.ao.quantization.per_channel_dynamic_qconfig
        if per_channel
        else torch.ao.quantization.default_dynamic_qconfig
    )
    with _quiet_torch_deprecations():
        quantized = torch.ao.quantization.quantize_dynamic(
            module, {torch.nn.Linear: qconfig}, dtype=torch.qint8, inplace=True
        )
    return quantized.eval()


def is_quantized(module: Optional[torch.nn.Module]) -> bool:
    """Whether `module` holds dynamically quantized Linear layers (and no float32 one)."""
    if module is None:
        return False
    kinds = [type(m) for m in module.modules()]
    return bool(set(kinds) & set(INT8_LINEAR)) and torch.nn.Linear not in kinds


def count_linear(module: torch.nn.Module) -> Dict[str, int]:
    """The number of float32 and int8 Linear layers of `module`: ``{"float32": n, "int8": m}``."""
    kinds = [type(m) for m in module.modules()]
    return {
        "float32": kinds.count(torch.nn.Linear),
        "int8": sum(kinds.count(kind) for kind in INT8_LINEAR),
    }


class _QuantizedAutoModel:
    """``AutoModel`` whose ``from_config`` returns the model already quantized, so that
    `HFShim.from_bytes` loads an int8 state_dict into a module of the same structure."""

    def __init__(self, per_channel: bool, activations: str) -> None:
        self.per_channel = per_channel
        self.activations = activations

    def from_config(self, config: Any) -> torch.nn.Module:
        return quantize_module(AutoModel.from_config(config), self.per_channel, self.activations)


class QuantizedHFShim(HFShim):
    """spacy-transformers' `HFShim` for an int8 transformer: `to_bytes` records that the saved
    weights are int8, `from_bytes` builds the module from its saved config, quantizes it and
    loads the int8 weights (a float32 state_dict is loaded, then quantized). Otherwise, the
    same shim: same tokenizer, config and message layout, plus one entry that says the
    weights are int8 and how they were quantized.

    per_channel (bool), activations (str): how a float32 transformer is quantized
        (`quantize_module`); saved int8 weights are rebuilt as they were saved (a pipeline saved
        before `activations` existed is ``"per_tensor"``).
    RAISES (ValueError, from `from_bytes`): if thinc's torch device is not the CPU.
    """

    per_channel: bool = True
    activations: str = "per_token"

    @classmethod
    def from_shim(
        cls, shim: HFShim, per_channel: bool = True, activations: str = "per_token"
    ) -> "QuantizedHFShim":
        """The same shim (all its state, including a loaded transformer), as this class."""
        new = cls.__new__(cls)
        new.__dict__.update(shim.__dict__)
        new.per_channel = per_channel
        new.activations = activations
        return new

    def quantize(self) -> None:
        """Quantize the loaded transformer in place (nothing when none is loaded or it is
        already quantized)."""
        transformer = self._hfmodel.transformer
        if transformer is None or is_quantized(transformer):
            return
        quantized = quantize_module(transformer, self.per_channel, self.activations)
        self._hfmodel.transformer = quantized
        self._model = quantized

    def to_bytes(self) -> bytes:
        data = super().to_bytes()
        if not is_quantized(self._hfmodel.transformer):
            return data
        msg = srsly.msgpack_loads(data)
        msg[QUANTIZATION_KEY] = {
            "dtype": "qint8",
            "layers": "Linear",
            "per_channel": _is_per_channel(self._model),
            "activations": _activations(self._model),
        }
        return srsly.msgpack_dumps(msg)

    def from_bytes(self, bytes_data: bytes) -> "QuantizedHFShim":
        msg = srsly.msgpack_loads(bytes_data)
        if not msg.get("config"):  # an uninitialized transformer: nothing to quantize yet
            return super().from_bytes(bytes_data)
        device = get_torch_default_device()
        if device.type != "cpu":
            raise ValueError(
                f"This pipeline's transformer is int8 ({QUANTIZED_ARCHITECTURE}), which runs on "
                f"the CPU only; thinc's torch device is {device}: load it without a GPU"
            )
        saved = msg.get(QUANTIZATION_KEY)
        if saved:
            scheme = _QuantizedAutoModel(bool(saved["per_channel"]), saved.get("activations", "per_tensor"))
            model_cls, self.model_cls = self.model_cls, scheme
            try:
                with _quiet_torch_deprecations():
                    super().from_bytes(bytes_data)
            finally:
                self.model_cls = model_cls
        else:
            super().from_bytes(bytes_data)
            self.quantize()
        return self


def _is_per_channel(module: torch.nn.Module) -> bool:
    """Whether the int8 Linear layers of `module` have one weight scale per output row."""
    for layer in module.modules():
        if isinstance(layer, Int8Linear):
            return layer.per_channel
        if isinstance(layer, torch.ao.nn.quantized.dynamic.Linear):
            return layer.weight().qscheme() in (torch.per_channel_affine, torch.per_channel_symmetric)
    return False


def _activations(module: torch.nn.Module) -> str:
    """The activation scheme of the int8 Linear layers of `module` (`quantize_module`)."""
    return "per_token" if any(isinstance(m, Int8Linear) for m in module.modules()) else "per_tensor"


def hf_shims(model: Model) -> List[HFShim]:
    """Every spacy-transformers `HFShim` in `model`'s layers (e.g. one in a
    ``TransformerModel.v3``, one in a ``TypedMarkerRelationModel.v1``; none in a model that
    only listens to a transformer component)."""
    return [shim for node in model.walk() for shim in node.shims if isinstance(shim, HFShim)]


@registry.architectures(QUANTIZED_ARCHITECTURE)
def build_quantized_transformer_model(
    model: Model, per_channel: bool = True, activations: str = "per_token"
) -> Model:
    """`model` with its transformer(s) run in int8 (see the module docstring): its
    spacy-transformers shims become `QuantizedHFShim`, which quantize the transformer when it
    is loaded (from a saved pipeline, or by `initialize`). The same Model object is returned,
    so its name, attrs, refs and input/output types are those of `model`.

    model (Model): a model holding spacy-transformers transformers, e.g.
        ``spacy-transformers.TransformerModel.v3`` or ``spacy_ie.TypedMarkerRelationModel.v1``;
        inference only: the int8 layers have no gradient.
    per_channel (bool): one weight scale per output row, else per matrix (`quantize_module`),
        for a transformer loaded as float32 (saved int8 weights keep their own).
    activations (str): ``"per_token"`` or ``"per_tensor"`` (`quantize_module`), likewise.
    RETURNS (Model): `model`, quantized once its transformer is loaded.
    RAISES (NoTransformerError): if `model` holds no spacy-transformers transformer.
    """
    found = 0
    for node in model.walk():
        for i, shim in enumerate(node.shims):
            if isinstance(shim, HFShim):
                if not isinstance(shim, QuantizedHFShim):
                    node.shims[i] = QuantizedHFShim.from_shim(shim, per_channel, activations)
                found += 1
    if not found:
        raise NoTransformerError(
            f"{QUANTIZED_ARCHITECTURE}: the model {model.name!r} holds no spacy-transformers "
            "transformer to quantize"
        )
    inner_init = model.init

    def init(model_: Model, X: Any = None, Y: Any = None) -> None:
        if inner_init is not None:
            inner_init(model_, X=X, Y=Y)
        for shim in hf_shims(model_):
            shim.quantize()

    model.init = init
    return model


def quantize_pipeline(nlp: Language, per_channel: bool = True, activations: str = "per_token") -> List[str]:
    """Quantize, in place, the transformers of every component of `nlp` that holds one (see
    the module docstring). Components without their own transformer (listeners, ``ner``,
    tok2vec pipelines) are left as they are.

    per_channel (bool): one weight scale per output row, else per matrix (`quantize_module`).
    activations (str): ``"per_token"`` or ``"per_tensor"`` (`quantize_module`).

    RETURNS (List[str]): the names of the quantized components, in pipeline order.
    RAISES (NoTransformerError): if no component holds a transformer.
    """
    names = []
    for name, pipe in nlp.components:
        model = getattr(pipe, "model", None)
        if not isinstance(model, Model):
            continue
        shims = hf_shims(model)
        if not shims:
            continue
        build_quantized_transformer_model(model, per_channel, activations)
        for shim in hf_shims(model):
            shim.quantize()
        names.append(name)
    if not names:
        raise NoTransformerError(
            "no component holds a transformer (spacy-transformers' `transformer`, or a relation "
            f"model with its own, such as spacy_ie.TypedMarkerRelationModel.v1); components: "
            f"{', '.join(nlp.pipe_names) or 'none'}"
        )
    return names


def quantized_config(
    config: Config, components: List[str], per_channel: bool = True, activations: str = "per_token"
) -> Config:
    """`config` (a pipeline's config.cfg, not interpolated) with the model block of each of
    `components` wrapped in ``spacy_ie.QuantizedTransformerModel.v1``; already wrapped blocks
    are left as they are."""
    config = config.copy()
    for name in components:
        block = config["components"][name]["model"]
        if block.get("@architectures") != QUANTIZED_ARCHITECTURE:
            config["components"][name]["model"] = {
                "@architectures": QUANTIZED_ARCHITECTURE,
                "per_channel": per_channel,
                "activations": activations,
                "model": block,
            }
    return config


def directory_size(path: Union[str, Path]) -> int:
    """Bytes of all files under `path`."""
    return sum(f.stat().st_size for f in Path(path).rglob("*") if f.is_file())


class QuantizeResult(NamedTuple):
    """What `quantize_to_disk` did.

    components: the quantized components, in pipeline order.
    linear_layers: component -> {"float32": n, "int8": m} Linear layers after quantization.
    size_before, size_after: bytes on disk of the input and the output pipeline directories.
    """

    components: List[str]
    linear_layers: Dict[str, Dict[str, int]]
    size_before: int
    size_after: int


def quantize_to_disk(
    model: Union[str, Path],
    output: Union[str, Path],
    per_channel: bool = True,
    activations: str = "per_token",
) -> QuantizeResult:
    """Load the pipeline `model`, quantize its transformer(s) (`quantize_pipeline`) and save it
    to `output`, a pipeline that ``spacy.load`` reads in any process with this package
    installed. The output is written to a temporary directory beside `output`, loaded back and
    checked (same components and labels, int8 Linear layers), and only then moved to `output`,
    so a failure leaves no partial output.

    model: a pipeline directory (or installed package name) with a transformer.
    output: a directory to create; it must not exist, or be empty.
    per_channel: one weight scale per output row, else per matrix (`quantize_module`).
    activations: ``"per_token"`` or ``"per_tensor"`` (`quantize_module`).
    RETURNS (QuantizeResult): components, Linear layer counts and sizes on disk.
    RAISES (FileExistsError): `output` exists and is not an empty directory.
        (spacy_ie.util.PipelineLoadError): `model` cannot be loaded (names it and the file).
        (NoTransformerError): the pipeline holds no transformer.
        (RuntimeError): the written pipeline does not load back as the quantized one.
    """
    output = Path(output)
    if output.exists() and not (output.is_dir() and not any(output.iterdir())):
        raise FileExistsError(f"{output} exists and is not an empty directory: choose a new OUTPUT")
    nlp = load_pipeline(model)
    components = quantize_pipeline(nlp, per_channel, activations)
    labels = {name: list(getattr(pipe, "labels", ()) or ()) for name, pipe in nlp.components}
    parent = output.absolute().parent
    parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{output.name}.", dir=parent))
    try:
        nlp.to_disk(tmp)
        config_path = tmp / "config.cfg"
        config = Config().from_disk(config_path, interpolate=False)
        quantized_config(config, components, per_channel, activations).to_disk(config_path)
        linear_layers = _check_output(tmp, nlp.pipe_names, labels, components)
        if output.exists():
            output.rmdir()
        os.replace(tmp, output)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    size_before = directory_size(model) if Path(str(model)).is_dir() else 0
    return QuantizeResult(components, linear_layers, size_before, directory_size(output))


def _check_output(
    path: Path, pipe_names: List[str], labels: Dict[str, List[str]], components: List[str]
) -> Dict[str, Dict[str, int]]:
    """Load the written pipeline and check it: same components and labels, every Linear layer
    of the quantized components int8. RETURNS the Linear layer counts per component.
    RAISES (RuntimeError): if anything differs."""
    try:
        loaded = load_pipeline(path)
    except ValueError as err:
        raise RuntimeError(f"the quantized pipeline does not load back: {err}") from err
    if loaded.pipe_names != pipe_names:
        raise RuntimeError(f"the quantized pipeline has components {loaded.pipe_names}, not {pipe_names}")
    counts = {}
    for name, pipe in loaded.components:
        if list(getattr(pipe, "labels", ()) or ()) != labels[name]:
            raise RuntimeError(f"the quantized pipeline's {name!r} labels differ from the original's")
        if name in components:
            shims = hf_shims(pipe.model)
            modules = [shim._hfmodel.transformer for shim in shims]
            if not modules or not all(is_quantized(m) for m in modules):
                raise RuntimeError(f"the quantized pipeline's {name!r} transformer did not load as int8")
            counts[name] = {k: sum(count_linear(m)[k] for m in modules) for k in ("float32", "int8")}
    return counts


__all__ = [
    "NoTransformerError",
    "QUANTIZED_ARCHITECTURE",
    "QuantizeResult",
    "Int8Linear",
    "QuantizedHFShim",
    "build_quantized_transformer_model",
    "count_linear",
    "hf_shims",
    "is_quantized",
    "quantize_module",
    "quantize_pipeline",
    "quantize_to_disk",
    "quantized_config",
]
