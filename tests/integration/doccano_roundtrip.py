"""The annotation loop against a real doccano: pre-annotations in, corrections, export out.

    python tests/integration/doccano_roundtrip.py /work/venvs/doccano \\
        [--save-fixtures tests/data/doccano]

Run it with spacy-ie installed (or ``PYTHONPATH=.``); doccano lives in its own venv (``python
-m venv /work/venvs/doccano && /work/venvs/doccano/bin/pip install doccano``): it pins Django
and much else. Steps (127.0.0.1 only, a fixed number of requests, each with a timeout):

1. The same documents as tests/integration/label_studio_roundtrip.py (demo test split, one
   sentence with emoji), written by ``spacy_ie.training.converters.doccano.doc_to_doccano`` as
   JSONL (through ``spacy_ie.extraction.doc_to_line``).
2. A fresh doccano (SQLite database and media in a temporary directory): ``doccano init``,
   ``doccano createuser``, an API token (``manage.py drf_create_token``), its WSGI app under its
   own gunicorn bound to 127.0.0.1 (``doccano webserver`` binds 0.0.0.0, so it is not used)
   and its celery worker (``doccano task``'s, which runs imports and exports). Then, through
   its REST API: a sequence labeling project with relations, the file uploaded and imported as
   "JSONL(Relation)".
3. Corrections through the API: a relation deleted; an entity drawn and a relation to it; a
   relation's label changed; the rest as imported.
4. Export (``JSONL``, all examples), convert with ``spacy_ie``'s ``doccano`` converter and
   compare each Doc with the corrections applied to the original Docs in Python.

Exits 0 when every Doc matches. ``--save-fixtures DIR`` writes ``import.jsonl`` (what was
imported), ``export.jsonl`` (doccano's own export, as it came) and ``expected.json``.
"""
import argparse
import importlib.util
import io
import json
import os
import secrets
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path
from typing import Any, Dict, List, Optional

import requests

from spacy_ie.extraction import doc_to_line
from spacy_ie.training.converters import convert_file

HERE = Path(__file__).resolve().parent
TIMEOUT = 30
MAX_WAIT = 300


def _load_sibling(name: str):
    spec = importlib.util.spec_from_file_location(name, HERE / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


ls = _load_sibling("label_studio_roundtrip")
CORRECTIONS = ["accept", "delete-relation", "add-entity-and-relation", "relabel-relation",
               "accept-emoji"]  # fmt: skip


class Doccano:
    """doccano's WSGI app (gunicorn, 127.0.0.1) and celery worker on a fresh SQLite database."""

    def __init__(self, venv: Path, work_dir: Path, port: int) -> None:
        site = next((venv / "lib").glob("python*/site-packages"))
        self.backend = site / "backend"
        self.url = f"http://127.0.0.1:{port}"
        self.env = {**os.environ, "DOCCANO_HOME": str(work_dir), "STANDALONE": "True",
                    "DJANGO_SETTINGS_MODULE": "config.settings.production",
                    "DATABASE_URL": f"sqlite:///{work_dir / 'db.sqlite3'}",
                    "MEDIA_ROOT": str(work_dir / "media"), "DEBUG": "False",
                    "SECRET_KEY": secrets.token_hex(24)}  # fmt: skip
        self.env.pop("PYTHONPATH", None)
        self.log = (work_dir / "server.log").open("w")
        bin_dir = venv / "bin"
        password = secrets.token_hex(8)
        for args in (["init"], ["createuser", "--username", "admin", "--password", password]):
            self._run([str(bin_dir / "doccano"), *args])
        out = self._run([str(bin_dir / "python"), "manage.py", "drf_create_token", "admin"])
        self.token = out.split()[2]  # "Generated token KEY for user admin"
        self.processes = [
            subprocess.Popen([str(bin_dir / "gunicorn"), "--bind", f"127.0.0.1:{port}",
                              "--workers", "1", "--chdir", str(self.backend), "config.wsgi"],
                             env=self.env, stdout=self.log, stderr=subprocess.STDOUT),
            subprocess.Popen([str(bin_dir / "celery"), "--app=config",
                              f"--workdir={self.backend}", "worker", "--pool=solo",
                              "--concurrency=1", "--loglevel=warning"],
                             env=self.env, stdout=self.log, stderr=subprocess.STDOUT,
                             cwd=self.backend),
        ]  # fmt: skip
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Token {self.token}"
        self.n_requests = 0
        try:
            self._wait()
        except BaseException:
            self.stop()
            raise

    def _run(self, args: List[str]) -> str:
        proc = subprocess.run(args, env=self.env, cwd=self.backend, capture_output=True,
                              text=True, timeout=MAX_WAIT)  # fmt: skip
        self.log.write(proc.stdout + proc.stderr)
        if proc.returncode != 0:
            raise RuntimeError(f"{' '.join(args[:3])} failed: {proc.stderr[-2000:]}")
        return proc.stdout

    def _wait(self) -> None:
        deadline = time.monotonic() + MAX_WAIT
        while time.monotonic() < deadline:
            for process in self.processes:
                if process.poll() is not None:
                    raise RuntimeError(f"a doccano process exited; see {self.log.name}")
            try:
                if self.session.get(f"{self.url}/v1/me", timeout=TIMEOUT).ok:
                    return
            except requests.RequestException:
                pass
            time.sleep(2)
        raise RuntimeError(f"doccano did not answer within {MAX_WAIT}s")

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        self.n_requests += 1
        response = self.session.request(method, f"{self.url}/v1{path}", timeout=TIMEOUT, **kwargs)
        if not response.ok:
            raise RuntimeError(f"{method} {path}: {response.status_code} {response.text[:500]}")
        if "json" in response.headers.get("Content-Type", ""):
            return response.json()
        return response.content

    def wait_task(self, task_id: str) -> Any:
        for _ in range(MAX_WAIT // 2):
            status = self.call("GET", f"/tasks/status/{task_id}")
            if status.get("ready"):
                if status.get("error"):
                    raise RuntimeError(f"doccano task failed: {status['error']}")
                return status.get("result")
            time.sleep(2)
        raise RuntimeError(f"doccano task {task_id} did not finish")

    def stop(self) -> None:
        for process in self.processes:
            process.terminate()
        for process in self.processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self.log.close()


def run_roundtrip(venv: Path, work_dir: Path, port: Optional[int] = None) -> Dict[str, Any]:
    """Run the loop (see the module docstring). RETURNS: {"imported", "export", "expected",
    "converted", "summary", "n_requests"}."""
    all_docs = ls.source_docs()
    docs = all_docs[:4] + [all_docs[ls.CORRECTIONS.index("accept-emoji")]]
    imported = "".join(doc_to_line(doc, None, "doccano", "demo-gold") for doc in docs)
    server = Doccano(venv, work_dir, port or ls.free_port())
    try:
        project = server.call("POST", "/projects", json={
            "name": "spacy-ie round trip", "description": "pre-annotations from spacy-ie",
            "project_type": "SequenceLabeling", "resourcetype": "SequenceLabelingProject",
            "use_relation": True, "guideline": ""})  # fmt: skip
        pid = project["id"]
        upload_id = server.call(
            "POST", "/fp/process/", files={"filepond": ("pre.jsonl", imported.encode("utf8"))}
        ).decode("utf8")
        task = server.call("POST", f"/projects/{pid}/upload", json={
            "format": "JSONL", "task": "RelationExtraction", "uploadIds": [upload_id]})
        result = server.wait_task(task["task_id"])
        if result and result.get("error"):
            raise RuntimeError(f"doccano import errors: {result['error']}")
        examples = server.call("GET", f"/projects/{pid}/examples", params={"limit": 100})
        examples = sorted(examples["results"], key=lambda e: e["id"])
        span_types = {t["text"]: t["id"] for t in server.call("GET", f"/projects/{pid}/span-types")}
        rel_types = {t["text"]: t["id"]
                     for t in server.call("GET", f"/projects/{pid}/relation-types")}  # fmt: skip
        rel_names = {v: k for k, v in rel_types.items()}
        expected = []
        for kind, example, doc in zip(CORRECTIONS, examples, docs):
            assert example["text"] == doc.text
            base = f"/projects/{pid}/examples/{example['id']}"
            entities, relations = ls.doc_entities(doc), ls.doc_relations(doc)
            spans = {s["id"]: (s["start_offset"], s["end_offset"]) for s in
                     server.call("GET", f"{base}/spans")}  # fmt: skip
            label_of = {(s, e, label) for s, e, label in entities}
            span_entity = {}
            for sid, (s, e) in spans.items():
                span_entity[sid] = next(x for x in label_of if x[:2] == (s, e))
            rels = server.call("GET", f"{base}/relations")
            if kind == "delete-relation":
                first = rels[0]
                server.call("DELETE", f"{base}/relations/{first['id']}")
                relations.remove((span_entity[first["from_id"]], span_entity[first["to_id"]],
                                  rel_names[first["type"]]))  # fmt: skip
            elif kind == "add-entity-and-relation":
                start, end = ls.free_token(doc, entities)
                label = entities[0][2]
                span = server.call("POST", f"{base}/spans", json={
                    "label": span_types[label], "start_offset": start, "end_offset": end})
                head_id = min(spans, key=lambda sid: spans[sid])
                rel_label = sorted(rel_types)[0]
                server.call("POST", f"{base}/relations", json={
                    "from_id": head_id, "to_id": span["id"], "type": rel_types[rel_label]})
                new = (start, end, label)
                entities = sorted(entities + [new])
                relations = sorted(relations + [(span_entity[head_id], new, rel_label)])
            elif kind == "relabel-relation":
                first = rels[0]
                old = rel_names[first["type"]]
                other = next(name for name in sorted(rel_types) if name != old)
                server.call("PATCH", f"{base}/relations/{first['id']}",
                            json={"type": rel_types[other]})
                head, tail = span_entity[first["from_id"]], span_entity[first["to_id"]]
                relations.remove((head, tail, old))
                relations = sorted(relations + [(head, tail, other)])
            expected.append({"example": example["id"], "correction": kind, "text": doc.text,
                             "entities": entities, "relations": relations})  # fmt: skip
        task = server.call("POST", f"/projects/{pid}/download",
                           json={"format": "JSONL", "exportApproved": False})
        server.wait_task(task["task_id"])
        archive = server.call("GET", f"/projects/{pid}/download",
                              params={"taskId": task["task_id"]})
        n_requests = server.n_requests
    finally:
        server.stop()
    with zipfile.ZipFile(io.BytesIO(archive)) as zipped:
        (name,) = zipped.namelist()
        export = zipped.read(name).decode("utf8")
    export_path = work_dir / "export.jsonl"
    export_path.write_text(export, encoding="utf8")
    converted, summary = convert_file(export_path, "doccano")
    by_id = dict(zip([json.loads(line)["id"] for line in export.splitlines() if line.strip()],
                     converted))  # fmt: skip
    return {"imported": imported, "export": export, "n_requests": n_requests,
            "expected": json.loads(json.dumps(expected)), "summary": summary,
            "converted": [{"text": by_id[want["example"]].text,
                           "entities": ls.doc_entities(by_id[want["example"]]),
                           "relations": ls.doc_relations(by_id[want["example"]])}
                          for want in expected]}  # fmt: skip


def compare(run: Dict[str, Any]) -> List[str]:
    """The differences between converted and expected Docs ([] when they match)."""
    converted = json.loads(json.dumps(run["converted"]))
    problems = []
    for got, want in zip(converted, run["expected"]):
        for key in ("text", "entities", "relations"):
            if got[key] != want[key]:
                problems.append(f"example {want['example']} ({want['correction']}): {key} "
                                f"differ: got {got[key]}, expected {want[key]}")  # fmt: skip
    return problems


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("venv", type=Path, help="the venv doccano is installed in")
    parser.add_argument("--save-fixtures", type=Path, help="directory for the CI fixtures")
    parser.add_argument("--port", type=int, help="port on 127.0.0.1 (default: a free one)")
    args = parser.parse_args()
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="doccano-roundtrip-") as tmp:
        run = run_roundtrip(args.venv, Path(tmp), args.port)
    problems = compare(run)
    summary = run["summary"]
    print(f"doccano: {len(run['expected'])} examples imported with pre-annotations, corrected, "
          f"exported, converted to {summary.n_docs} docs ({summary.n_entities} entities, "
          f"{summary.n_relations} relations) in {time.perf_counter() - start:.0f}s, "
          f"{run['n_requests']} API requests")  # fmt: skip
    for want in run["expected"]:
        print(f"  example {want['example']}: {want['correction']}: {len(want['entities'])} "
              f"entities, {len(want['relations'])} relations")  # fmt: skip
    if args.save_fixtures:
        out = args.save_fixtures
        out.mkdir(parents=True, exist_ok=True)
        (out / "import.jsonl").write_text(run["imported"], encoding="utf8")
        (out / "export.jsonl").write_text(run["export"], encoding="utf8")
        (out / "expected.json").write_text(
            json.dumps({"docs": run["expected"]}, ensure_ascii=False, indent=1) + "\n", "utf8"
        )
        print(f"Fixtures written to {out}")
    if problems:
        print("MISMATCH:\n  " + "\n  ".join(problems))
        sys.exit(1)
    print("Round trip OK: every converted doc equals the corrected pre-annotations")


if __name__ == "__main__":
    main()
