"""Every config in configs/ passes `spacy debug config` (no --code: entry points only)."""
import subprocess
import sys
from pathlib import Path

import pytest
from thinc.api import Config
from conftest import REPO_ROOT

# assemble_*.cfg are `spacy assemble` configs (sourced components, no [training]); each has its
# own test (assemble_ner_markers.cfg: tests/test_marker_model.py)
CONFIGS = sorted(c for c in (REPO_ROOT / "configs").glob("*.cfg") if not c.name.startswith("assemble_"))


def extra_paths(config: Path, trained_pipeline: Path) -> list:
    """Config-specific [paths] every config of that kind needs."""
    text = config.read_text(encoding="utf8")
    extra = []
    if "${paths.source}" in text:
        extra += ["--paths.source", str(trained_pipeline)]
    if "transformer_name" in text:
        minilm = pytest.importorskip("spacy_ie.transformers").local_minilm_path
        try:
            extra += ["--paths.transformer_name", str(minilm())]
        except Exception as err:  # the local weights are an optional package
            pytest.skip(f"no local transformer weights: {err}")
    return extra


def test_there_are_configs_for_each_encoder():
    names = {c.name for c in CONFIGS}
    assert {"ner_rel_tok2vec.cfg", "ner_rel_bilstm.cfg", "ner_rel_trf.cfg", "rel_tok2vec_gold.cfg"} <= names


@pytest.mark.parametrize("config", CONFIGS, ids=lambda p: p.name)
def test_debug_config_is_clean(config, demo_corpus, trained_pipeline):
    cmd = [sys.executable, "-m", "spacy", "debug", "config", str(config),
           "--paths.train", str(demo_corpus["train"]), "--paths.dev", str(demo_corpus["dev"])]
    result = subprocess.run(cmd + extra_paths(config, trained_pipeline), capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert "Config is valid" in result.stdout


@pytest.mark.parametrize("config", CONFIGS, ids=lambda p: p.name)
def test_init_tok2vec_is_offered_only_with_a_pretraining_block(config):
    """spaCy's `init_nlp` loads `[initialize] init_tok2vec` only when the config has a non-empty
    `[pretraining]` block (it names the component to load the weights into); without one the
    weights are silently not loaded. So a config that reads `paths.init_tok2vec` must have one."""
    cfg = Config().from_disk(config, interpolate=False)
    if cfg["initialize"].get("init_tok2vec") is not None:
        assert cfg.get("pretraining", {}).get("component") == "tok2vec"
        assert cfg["corpora"]["pretrain"]["path"] == "${paths.raw_text}"
