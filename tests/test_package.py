"""`spacy package` round trip: the packaged pipeline loads by name, without --code.

spaCy's error E002 ("Can't find factory for 'relation_extractor'") is the problem most reported
with the rel_component tutorial: its packaged pipeline needs the tutorial's code at load time.
Ours must load with `spacy.load(name)` in a fresh environment that has spacy-ie installed, with
nothing imported beforehand: spaCy finds our factory and architectures through the entry points
of setup.cfg. Here a virtualenv with `--system-site-packages` gets spacy and spacy-ie from the
test environment (spacy-ie "installed together") and the pipeline wheel alone (`--no-deps`).
"""
import json
import os
import site
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path
from typing import Any, Dict, List

import pytest
from spacy.tokens import DocBin

from spacy_ie.records import doc_to_record

NAME, VERSION = "rel_test", "0.0.1"
PACKAGE = f"en_{NAME}"
N_TEXTS = 20

LOAD_SCRIPT = textwrap.dedent(
    """
    import json
    import sys

    import spacy

    assert "spacy_ie" not in sys.modules, "spacy_ie was imported before spacy.load"
    texts = json.loads(open(sys.argv[1], encoding="utf8").read())
    nlp = spacy.load(%r)
    imported_by_load = "spacy_ie" in sys.modules
    from spacy_ie.records import doc_to_record  # after load: spacy.load must not need it

    docs = [doc_to_record(doc) for doc in nlp.pipe(texts)]
    print(json.dumps({
        "pipe_names": nlp.pipe_names,
        "package_path": str(spacy.util.get_package_path(%r)),
        "spacy_ie_imported_by_load": imported_by_load,
        "docs": docs,
    }))
    """
    % (PACKAGE, PACKAGE)
)


def annotations(nlp, texts: List[str]) -> List[Dict[str, Any]]:
    """What LOAD_SCRIPT prints for each text, from a pipeline loaded in this process."""
    return [doc_to_record(doc) for doc in nlp.pipe(texts)]


def run(cmd: List[str], **kwargs) -> subprocess.CompletedProcess:
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=300, **kwargs)
    assert result.returncode == 0, (cmd, result.stdout[-3000:], result.stderr[-3000:])
    return result


def build_wheel(pipeline: Path, out: Path) -> Path:
    """`spacy package --build wheel`, as project.yml's package-demo runs it (spaCy needs the
    `build` distribution for wheels: it is in our `test` and `package` extras)."""
    run(
        [sys.executable, "-m", "spacy", "package", str(pipeline), str(out),
         "--name", NAME, "--version", VERSION, "--force", "--build", "wheel"],
    )
    return out / f"{PACKAGE}-{VERSION}" / "dist" / f"{PACKAGE}-{VERSION}-py3-none-any.whl"


def make_venv(path: Path) -> Path:
    """A virtualenv that sees this environment's packages; RETURNS its python."""
    run([sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", str(path)])
    python = path / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    if sys.prefix != sys.base_prefix:
        # Running in a virtualenv: --system-site-packages would expose the base
        # interpreter's packages, not this environment's, so add ours (with their .pth
        # files: an editable spacy-ie install is one).
        site_dirs = run([str(python), "-c", "import site; print(site.getsitepackages()[0])"])
        paths = [p for p in site.getsitepackages() if Path(p).is_dir()]
        lines = "".join(f"import site; site.addsitedir({p!r})\n" for p in paths)
        (Path(site_dirs.stdout.strip()) / "_outer_env.pth").write_text(lines, encoding="utf8")
    return python


def test_packaged_pipeline_loads_without_code(trained_pipeline, demo_corpus, tmp_path):
    import spacy

    nlp = spacy.load(trained_pipeline)
    docs = DocBin().from_disk(demo_corpus["test"]).get_docs(nlp.vocab)
    texts = [doc.text for doc in docs][:N_TEXTS]
    expected = annotations(nlp, texts)
    assert any(doc["relations"] for doc in expected), "the fixture predicts no relations"

    (tmp_path / "packages").mkdir()
    wheel = build_wheel(trained_pipeline, tmp_path / "packages")
    assert wheel.is_file(), sorted(p.name for p in wheel.parent.glob("*"))
    # spaCy adds the distributions of the registered functions that the config uses to the
    # package's requirements (spacy.cli.package.get_third_party_dependencies): spacy-ie is a
    # dependency of the wheel, so `pip install` of the wheel installs spacy-ie too.
    with zipfile.ZipFile(wheel) as zf:
        metadata = next(n for n in zf.namelist() if n.endswith(".dist-info/METADATA"))
        requires = [
            line.split(":", 1)[1].strip()
            for line in zf.read(metadata).decode("utf8").splitlines()
            if line.startswith("Requires-Dist:")
        ]
    assert any(req.replace("_", "-").startswith("spacy-ie") for req in requires), requires

    python = make_venv(tmp_path / "venv")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    run(
        [str(python), "-m", "pip", "install", "--no-deps", "--no-index", "--no-cache-dir",
         "--disable-pip-version-check", str(wheel)],
        env=env,
    )
    workdir = tmp_path / "elsewhere"  # not the repository: nothing importable from the cwd
    workdir.mkdir()
    (workdir / "load.py").write_text(LOAD_SCRIPT, encoding="utf8")
    (workdir / "texts.json").write_text(json.dumps(texts), encoding="utf8")
    result = run([str(python), "load.py", "texts.json"], cwd=workdir, env=env)
    loaded = json.loads(result.stdout.strip().splitlines()[-1])

    assert Path(loaded["package_path"]).resolve().is_relative_to((tmp_path / "venv").resolve())
    assert "relation_extractor" in loaded["pipe_names"]
    assert loaded["pipe_names"] == nlp.pipe_names
    assert loaded["spacy_ie_imported_by_load"]  # through the entry points, not by the script
    assert len(loaded["docs"]) == len(expected)
    for got, want in zip(loaded["docs"], expected):
        assert got["entities"] == want["entities"]
        strip = lambda rels: [{k: v for k, v in r.items() if k != "score"} for r in rels]  # noqa: E731
        assert strip(got["relations"]) == strip(want["relations"])
        assert [r["score"] for r in got["relations"]] == pytest.approx(
            [r["score"] for r in want["relations"]], abs=2e-4
        )
