"""`spacy_ie.ray` and ``extract --engine ray`` on a real local Ray cluster (2 CPUs).

Three Ray jobs run (each starts its actors and loads the pipeline in them): the CLI twice over
a JSONL file with 2 workers (JSONL, then Parquet shards), compared with the local engine's
output, with Ray Data's log watched for its "will hang" warning; and the Python API over a
Dataset where one record makes its actor's process die once, one makes a component raise and
one has no string text, checked for ids in == ids out. The rest runs without Ray jobs.
"""

import json
import logging
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
from ray.util.debug import reset_log_once  # noqa: E402
from typer.testing import CliRunner  # noqa: E402

from conftest import stderr_has  # noqa: E402

from spacy_ie.cli import app  # noqa: E402
from spacy_ie.ray import (  # noqa: E402
    CPUS_LEFT_FREE,
    InputOrderDatasink,
    JSONLRecordDatasink,
    RelationExtractorActor,
    check_shard_ids,
    extract_dataset,
    fit_cpus_per_worker,
    input_files,
    iter_input,
    read_records,
    row_to_record,
    write_records,
)
from spacy_ie.records import InputError, doc_to_record  # noqa: E402

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


class RayDataLog(logging.Handler):
    """Keeps the messages of Ray Data's loggers (which do not propagate to the root logger)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: List[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def test_cli_ray_equals_local(ray_cluster, trained_pipeline, tmp_path):
    """Both engines write the same records: the JSONL shards, read in name order, are the local
    output byte for byte; the Parquet shards hold the same records. Two jobs of 2 workers back
    to back on the 2 CPUs, and Ray Data never warns that the job "will hang unless more CPUs
    are freed up" (it did: the actors took every CPU, and Ray counted the CPUs of its own
    metadata tasks as taken just after they ended)."""
    texts = demo_texts()[:40]
    texts[5:5] = ["", "Bern ."]
    rows = [
        {"text": t, "n": i, "source": {"k": [i], "é": "ü"}} if i % 3 else {"text": t}
        for i, t in enumerate(texts)
    ]
    input_path = tmp_path / "input.jsonl"
    input_path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf8")
    local_out = tmp_path / "local.jsonl"
    result = run_cli(trained_pipeline, input_path, "-o", local_out)
    assert result.exit_code == 0, result.output
    local_bytes = local_out.read_bytes()
    local = [json.loads(line) for line in local_bytes.decode("utf8").splitlines()]
    assert sum(len(r["relations"]) for r in local) > 0, "the test pipeline found no relation"

    log = RayDataLog()
    logging.getLogger("ray.data").addHandler(log)
    reset_log_once("cpu_warning")  # Ray Data warns once per process
    try:
        ray_out = tmp_path / "ray_out"
        result = run_cli(
            trained_pipeline, input_path, "--engine", "ray", "--workers", 2, "--batch-size", 8,
            "-o", ray_out,
        )  # fmt: skip
        assert result.exit_code == 0, result.output
        shards = sorted(ray_out.iterdir())
        assert len(shards) > 1 and all(p.suffix == ".jsonl" for p in shards)
        assert b"".join(p.read_bytes() for p in shards) == local_bytes
        assert stderr_has(result, f"Extracted {len(texts)} docs")

        parquet_out = tmp_path / "ray_out.parquet"  # the format from the extension
        parquet_out.mkdir()
        (parquet_out / "old.parquet").write_bytes(b"shard of an earlier run")
        result = run_cli(
            trained_pipeline, input_path, "--engine", "ray", "--workers", 2, "--batch-size", 8,
            "-o", parquet_out, "--overwrite",
        )  # fmt: skip
        assert result.exit_code == 0, result.output
    finally:
        logging.getLogger("ray.data").removeHandler(log)
    assert not [m for m in log.messages if "will hang" in m], log.messages
    shards = sorted(parquet_out.iterdir())
    assert shards and all(p.suffix == ".parquet" for p in shards)
    assert not (parquet_out / "old.parquet").exists()
    assert read_records(parquet_out) == local
    assert not list(tmp_path.glob(".ray_out*"))  # no temporary directory left
    # The Parquet columns are typed, not JSON text; no "id".
    schema = pq.read_schema(shards[0])
    assert "id" not in schema.names and schema.field("error").type == pa.string()
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


@pytest.mark.parametrize("output_format", ["jsonl", "parquet"])
def test_input_order_shards(trained_pipeline, tmp_path, output_format):
    """A block of rows out of order and with a gap in its ids is written as one shard per run of
    consecutive ids, named by its first id, sorted, without "id"; the write returns the shards'
    first ids, rows and errors, which `check_shard_ids` checks against the input."""
    actor = RelationExtractorActor(str(trained_pipeline), batch_size=4)
    texts = demo_texts()[:6]
    ids = [4, 2, 3, 0, 9, 1]  # runs: 0-4 and 9
    texts[4] = None  # id 9: an error row
    batch = pa.table({"id": pa.array(ids, pa.int64()), "text": texts, "meta": [None] * 6})
    sink = InputOrderDatasink(tmp_path / "out", output_format)
    sink.on_write_start()
    shards = sink.write([actor(batch)], ctx=None)
    by_id = {i: text for i, text in zip(ids, texts)}
    assert [(first, n) for first, n, _ in shards] == [(0, 5), (9, 1)]
    assert shards[1][2] == [(9, "text is NoneType, expected str")]
    names = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert names == [f"000000000000.{output_format}", f"000000000009.{output_format}"]
    records = read_records(tmp_path / "out")
    assert [r["text"] for r in records] == [by_id[i] for i in (0, 1, 2, 3, 4, 9)]
    assert all("id" not in r for r in records) and "error" in records[-1]
    if output_format == "jsonl":
        lines = (tmp_path / "out" / "000000000000.jsonl").read_text(encoding="utf8").splitlines()
        expected = [json.dumps(doc_to_record(actor.nlp(by_id[i])), ensure_ascii=False,
                               separators=(",", ":")) for i in range(5)]  # fmt: skip
        assert lines == expected  # the local engine's lines
    assert check_shard_ids(shards, 10) == (6, False)  # ids 5-8 missing
    assert check_shard_ids(shards + [(5, 4, [])], 10) == (10, True)
    assert check_shard_ids(shards + [(4, 5, [])], 10) == (11, False)  # id 4 twice


def test_fit_cpus_per_worker():
    """Actors that would take every CPU leave CPUS_LEFT_FREE for the write tasks."""
    assert fit_cpus_per_worker(2, 1.0, 2.0) == pytest.approx((2.0 - CPUS_LEFT_FREE) / 2)
    assert fit_cpus_per_worker(1, 1.0, 2.0) == 1.0  # room to spare
    assert fit_cpus_per_worker(4, 1.0, 2.0) == 1.0  # more than the cluster: left as asked
    assert fit_cpus_per_worker(8, 1.0, 64.0) == 1.0
    assert fit_cpus_per_worker(2, 0.0, 2.0) == 0.0


def test_extract_dataset_checks_columns_before_running(ray_cluster, trained_pipeline):
    dataset = ray.data.from_items([{"text": "Ada met Bob .", "cats": 1}])
    with pytest.raises(ValueError, match="no column 'id'.*id_column=None"):
        extract_dataset(dataset, trained_pipeline)
    with pytest.raises(ValueError, match="cats would be overwritten"):
        extract_dataset(dataset, trained_pipeline, id_column=None)
    with pytest.raises(ValueError, match="workers"):
        extract_dataset(dataset.drop_columns(["cats"]), trained_pipeline, id_column=None, workers=0)
