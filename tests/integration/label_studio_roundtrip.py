"""The annotation loop against a real Label Studio: pre-annotations in, corrections, export out.

    python tests/integration/label_studio_roundtrip.py /work/venvs/labelstudio/bin/label-studio \\
        [--save-fixtures tests/data/label_studio] [--port 8089]

Run it with spacy-ie installed (or ``PYTHONPATH=.`` from the repository root); Label Studio
lives in its own venv (``python -m venv /work/venvs/labelstudio && /work/venvs/labelstudio/bin/pip
install label-studio``): it pins Django and much else.

Steps (every request to 127.0.0.1 only, a fixed number of them, each with a timeout):

1. Pre-annotations: the first documents of the demo test split (``assets/demo/test.jsonl``,
   written for this project) and one sentence with emoji, as Label Studio tasks written by
   ``spacy_ie.training.converters.label_studio.doc_to_label_studio`` (the gold entities and
   relations stand in for a model's predictions, scores made up), and the labeling config of
   ``label_studio_config``.
2. Start ``label-studio start`` (its own venv, a fresh data directory, 127.0.0.1), create a
   project with that config through its REST API, import the tasks (with ``predictions``).
3. Correct them as an annotator would, through the API (``POST /api/tasks/ID/annotations``):
   accept one task as predicted; delete a relation; flip a relation's arrow (``direction``
   ``"left"``, the same relation); draw a new entity and a relation to it; cancel (skip) a task;
   leave the rest unannotated.
4. Export the project (``GET /api/projects/ID/export?exportType=JSON``), convert the export with
   ``spacy_ie``'s ``label-studio`` converter and compare each Doc's entities and relations with
   the corrections applied to the original Docs in Python, independently of any tool format.

Prints the comparison and exits 0 when every Doc matches, 1 otherwise. With
``--save-fixtures DIR`` it writes ``tasks.json`` (what was imported), ``label_config.xml``,
``export.json`` (Label Studio's own export, as it came) and ``expected.json`` (the expected
entities and relations per converted Doc), which the CI tests read (tests/test_annotation_tools.py).
"""
import argparse
import copy
import json
import os
import secrets
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import requests
import spacy
from spacy.tokens import Doc

from spacy_ie import Relation
from spacy_ie.training.converters.label_studio import doc_to_label_studio, label_studio_config
from spacy_ie.training.converters import convert_file

REPO_ROOT = Path(__file__).resolve().parents[2]

DEMO_TEST = REPO_ROOT / "assets" / "demo" / "test.jsonl"
EMOJI_TEXT = "Ada Lovelace \U0001F642 was born in London \u2764\ufe0f and wrote to Charles Babbage."
N_DEMO_DOCS = 7
# What the "annotator" does to task i (tasks after the list are left unannotated).
CORRECTIONS = ["accept", "delete-relation", "flip-arrow", "add-entity-and-relation", "cancel",
               "accept-emoji"]  # fmt: skip
TIMEOUT = 30  # seconds per request
MAX_START_SECONDS = 300

CharEntity = Tuple[int, int, str]
CharRelation = Tuple[CharEntity, CharEntity, str]


def source_docs() -> List[Doc]:
    """The first demo test documents (gold) and the emoji sentence, relations scored 0.3-0.9."""
    docs, _ = convert_file(DEMO_TEST, "prodigy")
    docs = [doc for doc in docs if doc._.relations][:N_DEMO_DOCS]
    nlp = spacy.blank("en")
    doc = nlp(EMOJI_TEXT)
    ada, london, babbage = (
        doc.char_span(EMOJI_TEXT.index(name), EMOJI_TEXT.index(name) + len(name), label)
        for name, label in (("Ada Lovelace", "PERSON"), ("London", "LOC"),
                            ("Charles Babbage", "PERSON"))
    )  # fmt: skip
    doc.ents = [ada, london, babbage]
    doc.spans["entities"] = list(doc.ents)
    doc._.relations = [Relation(ada, london, "BORN_IN", 1.0)]
    docs.insert(CORRECTIONS.index("accept-emoji"), doc)
    for i, doc in enumerate(docs):
        doc._.relations = [
            rel._replace(score=0.3 + 0.6 * ((i + j) % 4) / 3)
            for j, rel in enumerate(doc._.relations)
        ]
    return docs


def doc_entities(doc: Doc) -> List[CharEntity]:
    return sorted({(s.start_char, s.end_char, s.label_) for s in doc.spans["entities"]})


def doc_relations(doc: Doc) -> List[CharRelation]:
    return sorted(
        ((r.head.start_char, r.head.end_char, r.head.label_),
         (r.tail.start_char, r.tail.end_char, r.tail.label_), r.label)
        for r in doc._.relations
    )  # fmt: skip


def free_token(doc: Doc, entities: List[CharEntity]) -> Tuple[int, int]:
    """Character offsets of the first alphabetic token outside every entity."""
    for token in doc:
        start, end = token.idx, token.idx + len(token)
        if token.is_alpha and all(end <= s or start >= e for s, e, _ in entities):
            return start, end
    raise ValueError(f"no free token in {doc.text!r}")


def correct(
    kind: str, doc: Doc, result: List[Dict[str, Any]], relation_label: str
) -> Tuple[Optional[List[Dict[str, Any]]], List[CharEntity], List[CharRelation]]:
    """The annotation result after correction `kind` of the prediction `result` (None: the task
    is cancelled), and the entities and relations expected from it, computed on the Doc."""
    entities, relations = doc_entities(doc), doc_relations(doc)
    result = copy.deepcopy(result)
    rel_items = [item for item in result if item["type"] == "relation"]
    if kind in ("accept", "accept-emoji"):
        return result, entities, relations
    if kind == "cancel":
        return None, entities, relations
    if kind == "delete-relation":
        first = rel_items[0]
        result.remove(first)
        regions = {item["id"]: item["value"] for item in result if item["type"] == "labels"}
        head, tail = regions[first["from_id"]], regions[first["to_id"]]
        removed = ((head["start"], head["end"], head["labels"][0]),
                   (tail["start"], tail["end"], tail["labels"][0]), first["labels"][0])  # fmt: skip
        relations = list(relations)
        relations.remove(removed)
        return result, entities, relations
    if kind == "flip-arrow":
        first = rel_items[0]
        first["from_id"], first["to_id"] = first["to_id"], first["from_id"]
        first["direction"] = "left"
        return result, entities, relations
    if kind == "add-entity-and-relation":
        start, end = free_token(doc, entities)
        label = entities[0][2]
        first_region = next(item for item in result if item["type"] == "labels")
        result.append(
            {"id": "drawn1", "type": "labels", "from_name": "label", "to_name": "text",
             "origin": "manual",
             "value": {"start": start, "end": end, "text": doc.text[start:end], "labels": [label]}}
        )  # fmt: skip
        result.append({"type": "relation", "from_id": first_region["id"], "to_id": "drawn1",
                       "direction": "right", "labels": [relation_label]})  # fmt: skip
        value = first_region["value"]
        head = (value["start"], value["end"], value["labels"][0])
        new = (start, end, label)
        return result, sorted(entities + [new]), sorted(relations + [(head, new, relation_label)])
    raise ValueError(kind)


class LabelStudio:
    """A Label Studio server started for this run (127.0.0.1, fresh data dir), and its API."""

    def __init__(self, executable: str, port: int, data_dir: Path) -> None:
        self.url = f"http://127.0.0.1:{port}"
        self.token = secrets.token_hex(20)
        env = {**os.environ, "LABEL_STUDIO_BASE_DATA_DIR": str(data_dir),
               "LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN": "true", "DJANGO_DEBUG": "false"}  # fmt: skip
        self.log = (data_dir / "server.log").open("w")
        self.process = subprocess.Popen(
            [executable, "start", "--no-browser", "--internal-host", "127.0.0.1", "--port",
             str(port), "--data-dir", str(data_dir), "--username", "annotator@example.com",
             "--password", secrets.token_hex(8), "--user-token", self.token,
             "--enable-legacy-api-token", "--log-level", "WARNING"],
            env=env, stdout=self.log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Token {self.token}"
        try:
            self.version = self._wait()
        except BaseException:
            self.stop()
            raise

    def _wait(self) -> str:
        deadline = time.monotonic() + MAX_START_SECONDS
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"label-studio exited with {self.process.returncode}; see "
                                   f"{self.log.name}")  # fmt: skip
            try:
                response = self.session.get(f"{self.url}/api/version", timeout=5)
                if response.ok:
                    return response.json().get("release", "?")
            except requests.RequestException:
                pass
            time.sleep(3)
        raise RuntimeError(f"label-studio did not answer within {MAX_START_SECONDS}s")

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self.session.request(method, f"{self.url}{path}", timeout=TIMEOUT, **kwargs)
        if not response.ok:
            raise RuntimeError(f"{method} {path}: {response.status_code} {response.text[:500]}")
        return response.json()

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.log.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def run_roundtrip(
    executable: str, work_dir: Path, port: Optional[int] = None
) -> Dict[str, Any]:
    """Run the loop (see the module docstring) in `work_dir`. RETURNS: {"version", "tasks",
    "label_config", "export", "expected", "converted", "summary", "n_requests"}."""
    docs = source_docs()
    entity_labels = sorted({label for doc in docs for _, _, label in doc_entities(doc)})
    relation_labels = sorted({rel.label for doc in docs for rel in doc._.relations})
    config = label_studio_config(entity_labels, relation_labels)
    tasks = [doc_to_label_studio(doc, {"source": f"doc {i}"}, model_version="demo-gold")
             for i, doc in enumerate(docs)]  # fmt: skip
    server = LabelStudio(executable, port or free_port(), work_dir)
    n_requests = 0
    try:
        project = server.call("POST", "/api/projects",
                              json={"title": "spacy-ie round trip", "label_config": config})
        server.call("POST", f"/api/projects/{project['id']}/import", json=tasks)
        listed = server.call("GET", "/api/tasks",
                             params={"project": project["id"], "page_size": 100})
        task_ids = [task["id"] for task in sorted(listed["tasks"], key=lambda t: t["id"])]
        assert len(task_ids) == len(tasks), (len(task_ids), len(tasks))
        n_requests = 3
        expected = []
        for kind, task_id, doc, task in zip(CORRECTIONS, task_ids, docs, tasks):
            result, entities, relations = correct(
                kind, doc, task["predictions"][0]["result"], relation_labels[0]
            )
            annotation = {"result": result or [], "was_cancelled": result is None}
            server.call("POST", f"/api/tasks/{task_id}/annotations", json=annotation)
            n_requests += 1
            if result is not None:
                expected.append({"task": task_id, "correction": kind, "text": doc.text,
                                 "entities": entities, "relations": relations})  # fmt: skip
        export = server.call("GET", f"/api/projects/{project['id']}/export",
                             params={"exportType": "JSON", "download_all_tasks": "true"})
        n_requests += 1
    finally:
        server.stop()
    export_path = work_dir / "export.json"
    export_path.write_text(json.dumps(export, ensure_ascii=False, indent=1), encoding="utf8")
    converted, summary = convert_file(export_path, "label-studio")
    return {"version": server.version, "tasks": tasks, "label_config": config, "export": export,
            "expected": json.loads(json.dumps(expected)), "n_requests": n_requests,
            "converted": [{"text": doc.text, "entities": doc_entities(doc),
                           "relations": doc_relations(doc)} for doc in converted],
            "summary": summary}  # fmt: skip


def compare(run: Dict[str, Any]) -> List[str]:
    """The differences between converted and expected Docs ([] when they match)."""
    converted = json.loads(json.dumps(run["converted"]))
    problems = []
    if len(converted) != len(run["expected"]):
        problems.append(f"{len(converted)} docs converted, {len(run['expected'])} expected")
    for got, want in zip(converted, run["expected"]):
        for key in ("text", "entities", "relations"):
            if got[key] != want[key]:
                problems.append(f"task {want['task']} ({want['correction']}): {key} differ: "
                                f"got {got[key]}, expected {want[key]}")  # fmt: skip
    return problems


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("label_studio", help="the label-studio executable (of its own venv)")
    parser.add_argument("--save-fixtures", type=Path, help="directory for the CI fixtures")
    parser.add_argument("--port", type=int, help="port on 127.0.0.1 (default: a free one)")
    args = parser.parse_args()
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="ls-roundtrip-") as tmp:
        run = run_roundtrip(args.label_studio, Path(tmp), args.port)
    problems = compare(run)
    summary = run["summary"]
    print(f"Label Studio {run['version']}: {len(run['tasks'])} tasks imported with predictions, "
          f"{len(run['expected'])} annotated, exported, converted to {summary.n_docs} docs "
          f"({summary.n_entities} entities, {summary.n_relations} relations) in "
          f"{time.perf_counter() - start:.0f}s, {run['n_requests']} API requests")  # fmt: skip
    for reason, count in {**summary.skipped, **summary.changed, **summary.notes}.items():
        print(f"  {reason}: {count}")
    for want in run["expected"]:
        print(f"  task {want['task']}: {want['correction']}: {len(want['entities'])} entities, "
              f"{len(want['relations'])} relations")  # fmt: skip
    if args.save_fixtures:
        out = args.save_fixtures
        out.mkdir(parents=True, exist_ok=True)
        dump = lambda obj: json.dumps(obj, ensure_ascii=False, indent=1) + "\n"  # noqa: E731
        (out / "tasks.json").write_text(dump(run["tasks"]), encoding="utf8")
        (out / "label_config.xml").write_text(run["label_config"], encoding="utf8")
        (out / "export.json").write_text(dump(run["export"]), encoding="utf8")
        (out / "expected.json").write_text(
            dump({"label_studio_version": run["version"], "docs": run["expected"]}),
            encoding="utf8",
        )
        print(f"Fixtures written to {out}")
    if problems:
        print("MISMATCH:\n  " + "\n  ".join(problems))
        sys.exit(1)
    print("Round trip OK: every converted doc equals the corrected pre-annotations")


if __name__ == "__main__":
    main()
