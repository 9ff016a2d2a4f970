"""`spacy_ie.ray` and ``extract --engine ray`` on a real local Ray cluster (2 CPUs).

Two Ray jobs run (each starts its actors and loads the pipeline in them): the CLI over a JSONL
file, compared with the local engine's output; and the Python API over a Dataset where one
record makes its actor's process die once, one makes a component raise and one has no string
text, checked for ids in == ids out. The rest runs without Ray jobs.
"""

import json
import os
from pathlib import Path
from typing import List

import pytest

pytest.importorskip("ray.data")
import pyarrow as pa  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402
import ray  # noqa: E402
import spacy  # noqa: E402
from ray.data.block import BlockAccessor  # noqa: E402
from typer.testing import CliRunner  # noqa: E402

from conftest import stderr_has  # noqa: E402

from spacy_ie.cli import app  # noqa: E402
from spacy_ie.cli.extract import InputError, _check_shards, doc_to_record  # noqa: E402
from spacy_ie.ray import (  # noqa: E402
    JSONLRecordDatasink,
    RelationExtractorActor,
    extract_dataset,
    input_files,
    iter_input,
    read_records,
    row_to_record,
    write_records,
)

DEMO_TEST = Path(__file__).resolve().parent.parent / "assets" / "demo" / "test.jsonl"

# Imported by each Ray actor (extract_dataset(code=...)) and by this process: a component that
# raises on texts with "BOOM", and kills its own process on texts with "DIE" unless the marker
# file exists (it writes the marker first, so the restarted actor goes through).
FAULT_CODE = """
import os
from pathlib import Path
from spacy.language import Language


@Language.factory("fault_injector", default_config={"marker": ""})
def make_fault_injector(nlp, name, marker):
    def fault_injector(doc):
        if "BOOM" in doc.text:
            raise ValueError("injected failure")
        if "DIE" in doc.text and not Path(marker).exists():
            Path(marker).write_text(str(os.getpid()))
            os._exit(1)
        return doc
    return fault_injector
"""


@pytest.fixture(scope="session")
def ray_cluster():
    """A local Ray instance with 2 CPUs for the whole session, as Ray's own tests start one."""
    os.environ.setdefault("RAY_ENABLE_UV_RUN_RUNTIME_ENV", "0")
    ray.init(num_cpus=2, include_dashboard=False, logging_level="WARNING", log_to_driver=False)
    yield
    ray.shutdown()


def demo_texts() -> List[str]:
    with DEMO_TEST.open(encoding="utf8") as file:
        return [json.loads(line)["text"] for line in file if line.strip()]


def assert_same_record(got: dict, expected: dict) -> None:
    """`got` (a Ray row as a record) is `expected` (doc_to_record), its "id" aside; scores
    within 1e-4 (their rounding), since batches differ between the two runs."""
    got = {k: v for k, v in got.items() if k != "id"}
    for name in ("text", "entities", "meta"):
        assert got.get(name) == expected.get(name)
    strip = lambda rels: [{k: v for k, v in r.items() if k != "score"} for r in rels]  # noqa: E731
    assert strip(got["relations"]) == strip(expected["relations"])
    for a, b in zip(got["relations"], expected["relations"]):
        assert a["score"] == pytest.approx(b["score"], abs=1e-4)
    assert got["cats"] == pytest.approx(expected["cats"], abs=1e-6)


def run_cli(*args):
    return CliRunner().invoke(app, ["extract", *map(str, args)], catch_exceptions=False)


# --- with Ray jobs ------------------------------------------------------------------------------


def test_cli_ray_equals_local(ray_cluster, trained_pipeline, tmp_path):
    texts = demo_texts()[:40]
    texts[5:5] = ["", "Bern ."]
    rows = [
        {"text": t, "n": i, "source": {"k": [i]}} if i % 3 else {"text": t}
        for i, t in enumerate(texts)
    ]
    input_path = tmp_path / "input.jsonl"
    input_path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf8")
    local_out = tmp_path / "local.jsonl"
    result = run_cli(trained_pipeline, input_path, "-o", local_out)
    assert result.exit_code == 0, result.output
    local = [json.loads(line) for line in local_out.read_text(encoding="utf8").splitlines()]

    ray_out = tmp_path / "ray_out.parquet"  # the format from the extension
    ray_out.mkdir()
    (ray_out / "old.parquet").write_bytes(b"shard of an earlier run")
    result = run_cli(
        trained_pipeline, input_path, "--engine", "ray", "--workers", 1, "--batch-size", 8,
        "-o", ray_out, "--overwrite",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    shards = sorted(ray_out.iterdir())
    assert shards and all(p.suffix == ".parquet" for p in shards)
    assert not (ray_out / "old.parquet").exists()
    records = read_records(ray_out)
    assert [r["id"] for r in records] == list(range(len(texts)))
    assert [{k: v for k, v in r.items() if k != "id"} for r in records] == local
    assert sum(len(r["relations"]) for r in local) > 0, "the test pipeline found no relation"
    assert stderr_has(result, f"Extracted {len(texts)} docs")
    assert not list(tmp_path.glob(".ray_out*"))  # no temporary directory left
    # The Parquet columns are typed, not JSON text.
    schema = pq.read_schema(shards[0])
    assert schema.field("id").type == pa.int64() and schema.field("error").type == pa.string()
    assert pa.types.is_list(schema.field("relations").type)


def test_worker_death_and_bad_records_lose_nothing(ray_cluster, trained_pipeline, tmp_path):
    code = tmp_path / "fault_code.py"
    code.write_text(FAULT_CODE, encoding="utf8")
    spacy.util.import_file("fault_code", code)
    marker = tmp_path / "died"
    nlp = spacy.load(trained_pipeline)
    nlp.add_pipe("fault_injector", config={"marker": str(marker)})
    model = tmp_path / "model"
    nlp.to_disk(model)

    texts = demo_texts()[:60]
    texts[17] = "A DIE record ."
    texts[41] = "A BOOM record ."
    items = [{"doc_id": f"doc-{i}", "body": t, "source": i} for i, t in enumerate(texts)]
    items.append({"doc_id": "doc-none", "body": None, "source": -1})
    dataset = ray.data.from_items(items, override_num_blocks=6)
    records_ds = extract_dataset(
        dataset, model, text_column="body", id_column="doc_id", workers=2, batch_size=5, code=code
    )
    out = tmp_path / "out"
    write_records(records_ds, out, "jsonl")

    assert marker.exists(), "the injected worker death did not happen"
    lines = [line for path in sorted(out.glob("*.jsonl")) for line in path.open(encoding="utf8")]
    ids = [json.loads(line)["id"] for line in lines]
    assert sorted(ids) == sorted(i["doc_id"] for i in items)  # each id once, none lost
    records = {r["id"]: r for r in map(json.loads, lines)}
    assert set(records["doc-41"]) == {
        "id",
        "text",
        "entities",
        "relations",
        "cats",
        "source",
        "error",
    }
    assert (
        "fault_injector" in records["doc-41"]["error"]
        and "injected failure" in records["doc-41"]["error"]
    )
    assert records["doc-none"]["text"] is None and "NoneType" in records["doc-none"]["error"]
    errors = {doc_id for doc_id, r in records.items() if "error" in r}
    assert errors == {"doc-41", "doc-none"}
    assert records["doc-17"]["text"] == "A DIE record ." and records["doc-17"]["source"] == 17
    # The records are the pipeline's own (those of the BOOM batch, redone one by one, too).
    nlp = spacy.load(model)
    for i in (0, 17, 40, 42, 59):
        assert_same_record(records[f"doc-{i}"], doc_to_record(nlp(texts[i])))


# --- without Ray jobs ---------------------------------------------------------------------------


def test_actor_batch_in_process(trained_pipeline):
    """The actor class is a plain class: run it here on a pyarrow batch."""
    actor = RelationExtractorActor(str(trained_pipeline), batch_size=4)
    texts = demo_texts()[:6] + ["", None]
    batch = pa.table({"id": pa.array(range(8), pa.int64()), "text": texts, "meta": ["{}"] * 8})
    out = actor(batch)
    assert out.column_names == ["id", "text", "entities", "relations", "cats", "error", "meta"]
    assert out.column("id").to_pylist() == list(range(8))
    assert out.column("error").to_pylist()[:7] == [None] * 7
    assert "NoneType" in out.column("error")[7].as_py()
    rows = [row_to_record(row) for row in out.to_pylist()]
    for row, text in zip(rows[:7], texts):
        assert_same_record(row, doc_to_record(actor.nlp(text), {}))
    assert actor.load_seconds > 0
    with pytest.raises(ValueError, match="no column 'text'"):
        actor(pa.table({"id": [1], "body": ["x"]}))
    actor.id_column = None  # rows without ids: no "id" column, the rest as before
    out = actor(pa.table({"text": texts[:2], "n": [1, 2]}))
    assert out.column_names == ["text", "entities", "relations", "cats", "error", "n"]
    with pytest.raises(ValueError, match="entities would be overwritten"):
        actor(pa.table({"id": [1], "text": ["x"], "entities": ["y"]}))


def test_error_rows_name_the_step(trained_pipeline):
    actor = RelationExtractorActor(str(trained_pipeline), batch_size=4)
    actor.nlp.max_length = 50
    texts = ["John Smith works for Acme Corp .", "y" * 60, "Ada Lovelace lives in London ."]
    records = actor.process(texts)
    assert "error" not in records[0] and "error" not in records[2]
    assert records[1]["error"].startswith("tokenizer: ValueError") and records[1]["entities"] == []
    expected = [actor.nlp(t) for t in (texts[0], texts[2])]
    assert [r["text"] for r in (records[0], records[2])] == [d.text for d in expected]


def test_row_to_record_round_trip(tmp_path):
    row = {
        "id": 3, "text": "Ada met Bob .",
        "entities": [{"text": "Ada", "label": "Peop", "start": 0, "end": 3}],
        "relations": [], "cats": [("A", 0.25)], "error": None, "meta": '{"k": [1]}',
    }  # fmt: skip
    assert row_to_record(row) == {
        "id": 3, "text": "Ada met Bob .", "entities": row["entities"], "relations": [],
        "cats": {"A": 0.25}, "meta": {"k": [1]},
    }  # fmt: skip
    assert row_to_record({**row, "meta": None, "error": "x: y"})["error"] == "x: y"
    assert "meta" not in row_to_record({**row, "meta": None})


def test_input_files_and_ids(tmp_path):
    (tmp_path / "b").mkdir()
    (tmp_path / "a.txt").write_text("one\n\nthree\n", encoding="utf8")
    (tmp_path / "b" / "c.jsonl").write_text('{"text": "four", "n": 1}\n', encoding="utf8")
    pq.write_table(
        pa.table({"text": ["five", "six"], "lang": ["en", "de"]}), tmp_path / "d.parquet"
    )
    (tmp_path / "notes.md").write_text("ignored in a directory\n", encoding="utf8")
    assert [p.name for p in input_files(tmp_path)] == ["a.txt", "c.jsonl", "d.parquet"]
    assert [p.name for p in input_files(str(tmp_path / "**" / "*.jsonl"))] == ["c.jsonl"]
    assert list(iter_input(tmp_path)) == [
        (0, "one", None), (1, "", None), (2, "three", None), (3, "four", {"n": 1}),
        (4, "five", {"lang": "en"}), (5, "six", {"lang": "de"}),
    ]  # fmt: skip
    with pytest.raises(InputError, match="unsupported input format"):
        input_files(str(tmp_path / "*"))
    with pytest.raises(InputError, match="no file matches"):
        input_files(str(tmp_path / "*.csv"))
    pq.write_table(pa.table({"body": ["x"]}), tmp_path / "e.parquet")
    with pytest.raises(InputError, match="e.parquet: no 'text' column"):
        list(iter_input(tmp_path / "e.parquet"))


def test_cli_ray_bad_input_and_options_write_nothing(trained_pipeline, tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "ok"}\n{"title": "no text"}\n', encoding="utf8")
    out = tmp_path / "out"
    result = run_cli(trained_pipeline, bad, "--engine", "ray", "-o", out)
    assert result.exit_code == 1 and stderr_has(result, "line 2") and not out.exists()
    good = tmp_path / "good.txt"
    good.write_text("Ada met Bob .\n", encoding="utf8")
    result = run_cli(trained_pipeline, good, "--engine", "ray")
    assert result.exit_code == 1 and stderr_has(result, "--output DIR")
    result = run_cli(trained_pipeline, good, "--engine", "ray", "-o", out, "--format", "csv")
    assert result.exit_code == 1 and stderr_has(result, "jsonl or parquet")
    result = run_cli(trained_pipeline, good, "-o", tmp_path / "x.parquet", "--format", "parquet")
    assert result.exit_code == 1 and stderr_has(result, "needs --engine ray")
    result = run_cli(trained_pipeline, good, "--engine", "ray", "-o", out, "--html", "x.html")
    assert result.exit_code == 1 and stderr_has(result, "--html is for --engine local")
    result = run_cli(trained_pipeline, good, "--engine", "spark", "-o", out)
    assert result.exit_code == 1 and stderr_has(result, "Unknown --engine")
    out.mkdir()
    (out / "old.jsonl").write_text("{}\n", encoding="utf8")
    result = run_cli(trained_pipeline, good, "--engine", "ray", "-o", out)
    assert result.exit_code == 1 and stderr_has(result, "exists")
    (out / "notes.txt").write_text("mine\n", encoding="utf8")
    result = run_cli(trained_pipeline, good, "--engine", "ray", "-o", out, "--overwrite")
    assert result.exit_code == 1 and stderr_has(result, "notes.txt")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.jsonl", "good.txt", "out"]


def test_jsonl_lines_equal_local_lines(trained_pipeline, tmp_path):
    """The JSONL shards' lines are the local engine's lines with "id" first, byte for byte."""
    actor = RelationExtractorActor(str(trained_pipeline), batch_size=4)
    texts = demo_texts()[:5] + [""]
    metas = [None, {"k": [1, "é"]}, None, {}, None, None]
    batch = pa.table(
        {
            "id": pa.array(range(6), pa.int64()),
            "text": texts,
            "meta": [None if m is None else json.dumps(m) for m in metas],
        }
    )
    sink = pa.BufferOutputStream()
    JSONLRecordDatasink(str(tmp_path / "unused")).write_block_to_file(
        BlockAccessor.for_block(actor(batch)), sink
    )
    lines = sink.getvalue().to_pybytes().decode("utf8").splitlines()
    for i, (line, text, meta) in enumerate(zip(lines, texts, metas)):
        local = json.dumps(
            doc_to_record(actor.nlp(text), meta), ensure_ascii=False, separators=(",", ":")
        )
        assert line == f'{{"id":{i},' + local[1:]
    assert len(lines) == 6


def test_check_shards_counts_ids_and_errors(tmp_path):
    (tmp_path / "a.jsonl").write_text(
        '{"id":1,"text":"x"}\n{"id":0,"text":null,"error":"text is int, expected str"}\n',
        encoding="utf8",
    )
    assert _check_shards(tmp_path, 2) == (2, True, [(0, "text is int, expected str")])
    assert _check_shards(tmp_path, 3)[:2] == (2, False)
    (tmp_path / "b.jsonl").write_text('{"id":1,"text":"x"}\n', encoding="utf8")
    assert _check_shards(tmp_path, 3)[:2] == (3, False)  # id 1 twice, id 2 missing


def test_extract_dataset_checks_columns_before_running(ray_cluster, trained_pipeline):
    dataset = ray.data.from_items([{"text": "Ada met Bob .", "cats": 1}])
    with pytest.raises(ValueError, match="no column 'id'.*id_column=None"):
        extract_dataset(dataset, trained_pipeline)
    with pytest.raises(ValueError, match="cats would be overwritten"):
        extract_dataset(dataset, trained_pipeline, id_column=None)
    with pytest.raises(ValueError, match="workers"):
        extract_dataset(dataset.drop_columns(["cats"]), trained_pipeline, id_column=None, workers=0)
