"""`spacy-ie extract --graph`: the graph written in the same pass as the records, with the local
engine and with Ray (the same graph), RDF, re-runs, and the failures (a clear message, no
output file, the committed batches kept)."""
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, List

import pytest
from typer.testing import CliRunner

pytest.importorskip("ladybug")

from conftest import stderr_has  # noqa: E402
from spacy_ie.cli import app  # noqa: E402
from spacy_ie.graph import GraphBatch, entity_key, query_graph  # noqa: E402
from spacy_ie.graph.store import LadybugStore  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parent.parent
DEMO_TEST = REPO_ROOT / "assets" / "demo" / "test.jsonl"


def run_cli(*args):
    return CliRunner().invoke(app, [*map(str, args)])


def demo_input(tmp_path: Path, n: int = 30) -> Path:
    with DEMO_TEST.open(encoding="utf8") as file:
        texts = [json.loads(line)["text"] for line in file if line.strip()][:n]
    path = tmp_path / "input.jsonl"
    path.write_text("".join(json.dumps({"text": t, "source": i}) + "\n" for i, t in enumerate(texts)),
                    encoding="utf8")  # fmt: skip
    return path


def graph_of_records(records: List[Dict[str, Any]]) -> Dict[str, Any]:
    """What the graph of `records` must hold, computed from the records alone."""
    keys, mentions, relations = set(), set(), []
    for i, record in enumerate(records):
        spans = list(record["entities"])
        for rel in record["relations"]:
            spans += [rel["head"], rel["tail"]]
            relations.append((entity_key(rel["head"]), entity_key(rel["tail"]), rel["label"], str(i),
                              rel["head"]["start"], rel["tail"]["start"]))  # fmt: skip
        for span in spans:
            keys.add(entity_key(span))
            mentions.add((i, entity_key(span), span["start"], span["end"]))
    return {"counts": {"documents": len(records), "entities": len(keys),
                       "mentions": len(mentions), "relations": len(relations)},
            "relations": sorted(relations)}  # fmt: skip


def graph_contents(path: Path) -> Dict[str, Any]:
    with LadybugStore(path, read_only=True) as store:
        counts = store.counts()
    _, rows = query_graph(path, "MATCH (h:Entity)-[r:RELATION]->(t:Entity) RETURN h.key, t.key, "
                                "r.label, r.doc_id, r.head_start, r.tail_start")  # fmt: skip
    return {"counts": counts, "relations": sorted(tuple(row.values()) for row in rows)}


def test_local_extract_graph(trained_pipeline, tmp_path):
    input_path = demo_input(tmp_path)
    out, graph = tmp_path / "out.jsonl", tmp_path / "kg.lbug"
    result = run_cli("extract", trained_pipeline, input_path, "-o", out, "--graph", graph)
    assert result.exit_code == 0, result.stderr
    records = [json.loads(line) for line in out.read_text(encoding="utf8").splitlines()]
    assert sum(len(r["relations"]) for r in records) > 0, "the test pipeline found no relation"
    expected = graph_of_records(records)
    assert graph_contents(graph) == expected
    assert stderr_has(result, f"{expected['counts']['relations']} relations written")
    # A re-run adds nothing; without --output, no records are written anywhere.
    result = run_cli("extract", trained_pipeline, input_path, "--graph", graph)
    assert result.exit_code == 0, result.stderr
    assert result.stdout == "" and stderr_has(result, "0 relations written, 30 already there")
    assert graph_contents(graph) == expected
    # RDF: the same counts.
    ttl = tmp_path / "kg.ttl"
    result = run_cli("extract", trained_pipeline, input_path, "--graph", ttl)
    assert result.exit_code == 0, result.stderr
    result = run_cli("graph-query", ttl, "PREFIX sie: <urn:spacy-ie:vocab#> "
                     "SELECT (COUNT(?r) AS ?n) WHERE { ?r a sie:Relation }")  # fmt: skip
    assert json.loads(result.stdout) == {"n": expected["counts"]["relations"]}


def test_extract_graph_failures(trained_pipeline, tmp_path):
    input_path = demo_input(tmp_path, 5)
    out = tmp_path / "out.jsonl"
    (tmp_path / "adir").mkdir()
    result = run_cli("extract", trained_pipeline, input_path, "-o", out, "--graph", tmp_path / "adir")
    assert result.exit_code == 1 and stderr_has(result, "Cannot open the graph")
    assert "Traceback" not in result.stderr and not out.exists()
    # A graph another process writes to cannot be opened for writing (LadybugDB's file lock).
    held = tmp_path / "held.lbug"
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys; from spacy_ie.graph.store import LadybugStore; "
         f"store = LadybugStore({str(held)!r}); print('held', flush=True); sys.stdin.read()"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == "held"
        result = run_cli("extract", trained_pipeline, input_path, "-o", out, "--graph", held)
    finally:
        holder.communicate("", timeout=60)
    assert result.exit_code == 1 and stderr_has(result, "Cannot open the graph")
    assert stderr_has(result, "Could not set lock") and not out.exists()
    # RDF output of another kind.
    result = run_cli("extract", trained_pipeline, input_path, "-o", out, "--graph", tmp_path / "kg.rdf")
    assert result.exit_code == 0  # not an RDF suffix: an embedded graph file named kg.rdf
    assert (tmp_path / "kg.rdf").is_file()


def test_failed_write_keeps_committed_batches(trained_pipeline, tmp_path, monkeypatch):
    """The graph fails during the run: the command says so, writes no output file, and the
    batch committed before stays (a re-run completes the graph)."""
    import spacy_ie.cli.graph as graph_cli
    from spacy_ie.graph import GraphError, open_graph

    input_path = demo_input(tmp_path, 30)
    out, graph = tmp_path / "out.jsonl", tmp_path / "kg.lbug"
    monkeypatch.setattr(graph_cli, "open_graph", lambda target: open_graph(target, batch_size=10))
    real_write = LadybugStore.write
    calls = []

    def failing_write(self, batch):
        calls.append(len(batch))
        if len(calls) == 2:
            raise GraphError("disk full")
        return real_write(self, batch)

    monkeypatch.setattr(LadybugStore, "write", failing_write)
    result = run_cli("extract", trained_pipeline, input_path, "-o", out, "--graph", graph)
    assert result.exit_code == 1, result.stderr
    assert stderr_has(result, "Cannot write the graph") and stderr_has(result, "disk full")
    assert "Traceback" not in result.stderr and not out.exists()
    monkeypatch.setattr(LadybugStore, "write", real_write)
    with LadybugStore(graph, read_only=True) as store:
        assert store.counts()["documents"] == 10
    result = run_cli("extract", trained_pipeline, input_path, "-o", out, "--graph", graph)
    assert result.exit_code == 0 and stderr_has(result, "10 already there")
    records = [json.loads(line) for line in out.read_text(encoding="utf8").splitlines()]
    assert graph_contents(graph) == graph_of_records(records)


@pytest.fixture(scope="module")
def local_ray():
    ray = pytest.importorskip("ray")
    os.environ.setdefault("RAY_ENABLE_UV_RUN_RUNTIME_ENV", "0")
    started = not ray.is_initialized()
    if started:
        ray.init(num_cpus=2, include_dashboard=False, logging_level="WARNING", log_to_driver=False)
    yield
    if started:
        ray.shutdown()


def test_ray_and_local_write_the_same_graph(local_ray, trained_pipeline, tmp_path):
    input_path = demo_input(tmp_path, 40)
    local_graph, ray_graph = tmp_path / "local.lbug", tmp_path / "ray.lbug"
    result = run_cli("extract", trained_pipeline, input_path, "--batch-size", 8,
                     "-o", tmp_path / "local.jsonl", "--graph", local_graph)  # fmt: skip
    assert result.exit_code == 0, result.stderr
    result = run_cli("extract", trained_pipeline, input_path, "--engine", "ray", "--workers", 2,
                     "--batch-size", 8, "-o", tmp_path / "shards.parquet", "--graph", ray_graph)  # fmt: skip
    assert result.exit_code == 0, result.stderr
    assert stderr_has(result, "relations written")
    local = graph_contents(local_graph)
    assert local["counts"]["relations"] > 0
    assert graph_contents(ray_graph) == local
    # Scores too (rounded to 4 places in both records).
    query = "MATCH ()-[r:RELATION]->() RETURN r.doc_id, r.head_start, r.tail_start, r.label, r.score"
    scores = [sorted(tuple(row.values()) for row in query_graph(g, query)[1])
              for g in (local_graph, ray_graph)]  # fmt: skip
    for a, b in zip(*scores):
        assert a[:4] == b[:4] and a[4] == pytest.approx(b[4], abs=1e-4)


def test_records_carry_kb_ids_through_both_engines():
    """An entity linker's kb_id is in the record only when set, and survives the Ray engine's
    Arrow rows; the graph keys the entity by it."""
    import spacy

    from spacy_ie.records import doc_to_record
    from spacy_ie.relations import Relation, register_extensions

    register_extensions()
    nlp = spacy.blank("en")
    doc = nlp("Ada Lovelace met Charles Babbage .")
    ada = doc.char_span(0, 12, label="PER", kb_id="Q7259")
    babbage = doc.char_span(17, 32, label="PER")
    doc.ents = [ada, babbage]
    doc._.relations = [Relation(ada, babbage, "Knows", 0.8)]
    record = doc_to_record(doc)
    assert record["entities"][0]["kb_id"] == "Q7259" and "kb_id" not in record["entities"][1]
    assert entity_key(record["entities"][0]) == "kb:Q7259"
    # doc._.relations keeps offsets, not kb_ids: the graph gives the argument the entity's key.
    batch = GraphBatch()
    batch.add_record(record, "0")
    assert [(r["head"], r["tail"]) for r in batch.relations] == [("kb:Q7259", "PER:charles babbage")]
    assert sorted(row["key"] for row in batch.entities) == ["PER:charles babbage", "kb:Q7259"]
    ray_module = pytest.importorskip("spacy_ie.ray")
    import pyarrow as pa

    table = pa.table({name: pa.array([record.get(name)], type=dtype)
                      for name, dtype in ray_module.COLUMN_TYPES.items()})  # fmt: skip
    assert ray_module.row_to_record(table.to_pylist()[0]) == record
