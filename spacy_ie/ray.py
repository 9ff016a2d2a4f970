"""Batch extraction on Ray Data: the local ``extract`` records, from many machines.

The established Ray pattern for offline batch inference (Ray docs, "End-to-end: Offline Batch
Inference"; ``Dataset.map_batches`` with a callable class over an actor pool): each actor of an
``ActorPoolStrategy(size=workers)`` pool loads the spaCy pipeline once, in its constructor, and
runs ``nlp.pipe(texts, n_process=1)`` over each batch it receives; rows go in and out as Arrow
tables of plain columns (never Doc objects). Ray schedules the actors, moves the blocks and
restarts what dies: Ray Data creates its map actors with ``max_restarts=-1`` and
``max_task_retries=-1``, so a worker that dies is replaced and its batch is retried. No
scheduler, queue or worker pool of our own.

Sources: Ray Data batch inference, https://docs.ray.io/en/latest/data/batch_inference.html
(callable class, ``ActorPoolStrategy``, ``num_gpus`` per actor); ``Dataset.map_batches`` in Ray
2.60 (``concurrency=`` deprecated for ``compute=``); Ray actor fault tolerance,
https://docs.ray.io/en/latest/ray-core/fault_tolerance/actors.html (``max_restarts``,
``max_task_retries``); Ray Data's ``BlockBasedFileDatasink`` for the JSONL shards.

Needs the optional extra: ``pip install "spacy-ie[ray]"``.

Output rows (`extract_dataset`), one per input row, in Arrow columns:

============  ====================================  ===========================================
column        type                                  value
============  ====================================  ===========================================
id            the input id column's type            the id column's values, under "id"
text          string                                the input text (null when it is not a str)
entities      list<struct<text, label, start, end,  `records.entity_spans` (``doc.ents``, or a
              kb_id>>                               span pipeline's span group), character
                                                    offsets (kb_id: an entity linker's, else
                                                    null)
relations     list<struct<head, tail, label,        ``doc._.relations``; head and tail as
              score>>                               the entities, score rounded to 4 places
cats          map<string, float64>                  ``doc.cats``
error         string                                null, or why the row could not be processed
(others)      as in the input                       carried over unchanged (e.g. ``meta``)
============  ====================================  ===========================================

`row_to_record` turns a row back into the local engine's JSON record
(`spacy_ie.records.doc_to_record`, plus ``"id"``, plus ``"error"`` on error rows). A record that
cannot be processed (a text that is not a string, a text over ``nlp.max_length``, a component
raising on it) becomes an error row with empty entities, relations and cats: the job goes on,
every input row appears once in the output.

Ids of `read_input` (the CLI's reader): running numbers from 0, in input order (files in sorted
path order, documents in file order, as `spacy_ie.records.read_documents` yields them). They
order the output and are then dropped: `write_in_input_order` (what ``extract --engine ray``
writes) names each shard by the id of its first record and writes the records without id, so
that the shards read in name order are the local engine's records in its order, byte for byte
in JSONL (`write_records` keeps the ids, for datasets with ids of their own).

CPUs: an actor requests `cpus_per_worker` CPUs, and a write task `WRITE_TASK_CPUS`;
`fit_cpus_per_worker` shrinks the actors' request when they would take (nearly) every CPU of
the cluster, so that the shards are written while the actors run and Ray Data never waits for
CPUs that its own idle actors hold.
"""

import glob
import json
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple, Union

try:
    import pyarrow as pa
    import pyarrow.fs as pafs
    import pyarrow.parquet as pq
    import ray
    import ray.data
    from ray.data import ActorPoolStrategy, Dataset
    from ray.data.block import Block, BlockAccessor
    from ray.data.datasource import BlockBasedFileDatasink, Datasink
except ImportError as err:  # pragma: no cover - depends on the installed extras
    raise ImportError(
        'spacy_ie.ray needs Ray Data: pip install "spacy-ie[ray]" (ray[data])'
    ) from err

import spacy
from spacy.language import Language

from .records import (
    INPUT_FORMATS,
    InputDoc,
    InputError,
    doc_to_record,
    entity_spans_key,
    read_documents,
    record_to_line,
)
from .util import check_pipeline_config, load_pipeline

# Input files the Ray engine reads: the local engine's formats, and Parquet.
RAY_INPUT_FORMATS = tuple(INPUT_FORMATS) + (".parquet",)
# The output formats `write_records` writes.
RAY_OUTPUT_FORMATS = ("jsonl", "parquet")
# The columns `extract_dataset` writes (besides "id" and the carried-over ones).
RECORD_COLUMNS = ("text", "entities", "relations", "cats", "error")
# CPUs (Ray's logical units) each write task requests, and the CPUs `fit_cpus_per_worker` leaves
# free of actors: room for one write task at a time, and never no free CPU at all (Ray Data
# checks that there is some when a job starts).
WRITE_TASK_CPUS = 0.25
CPUS_LEFT_FREE = 1.5 * WRITE_TASK_CPUS

# "kb_id": null unless an entity linker set one (`row_to_record` leaves the nulls out).
SPAN_TYPE = pa.struct(
    [("text", pa.string()), ("label", pa.string()), ("start", pa.int64()), ("end", pa.int64()),
     ("kb_id", pa.string())]  # fmt: skip
)
RELATION_TYPE = pa.struct(
    [("head", SPAN_TYPE), ("tail", SPAN_TYPE), ("label", pa.string()), ("score", pa.float64())]
)
COLUMN_TYPES: Dict[str, pa.DataType] = {
    "text": pa.string(),
    "entities": pa.list_(SPAN_TYPE),
    "relations": pa.list_(RELATION_TYPE),
    "cats": pa.map_(pa.string(), pa.float64()),
    "error": pa.string(),
}


# --- the actor ----------------------------------------------------------------------------------


class RelationExtractorActor:
    """The callable class of `extract_dataset`'s ``map_batches``: one instance per Ray actor.

    The constructor loads the pipeline once (and imports `code` first, as spaCy's ``--code``);
    each call turns one ``pyarrow.Table`` batch of ``n`` rows into a table of ``n`` rows (see
    the module docstring for the columns). ``load_seconds`` is the time the load took.

    model (str): pipeline package name or directory, as for ``spacy.load``; it must be loadable
        on every node (installed there, or on storage they share).
    text_column (str), id_column (Optional[str]): the input columns.
    batch_size (int): ``nlp.pipe`` batch size (``n_process`` is always 1: Ray runs the actors).
    disable (Sequence[str]): components to disable, as ``spacy.load(disable=...)``.
    use_gpu (bool): ``spacy.require_gpu()`` before loading (Ray gives each actor its GPUs
        through ``CUDA_VISIBLE_DEVICES``).
    code (Optional[str]): a Python file to import before loading (custom components).
    RAISES (ValueError): a batch without `text_column` or `id_column`, or whose other columns
        collide with the output columns.
    """

    def __init__(
        self,
        model: str,
        *,
        text_column: str = "text",
        id_column: Optional[str] = "id",
        batch_size: int = 64,
        disable: Sequence[str] = (),
        use_gpu: bool = False,
        code: Optional[str] = None,
    ) -> None:
        start = time.perf_counter()
        if code:
            spacy.util.import_file("spacy_ie_ray_code", code)
        if use_gpu:
            spacy.require_gpu()
        # The shared loader: a pipeline that cannot load fails with one line naming the file.
        self.nlp: Language = load_pipeline(model, disable=list(disable))
        self.spans_key = entity_spans_key(self.nlp)
        self.text_column = text_column
        self.id_column = id_column
        self.batch_size = batch_size
        self.load_seconds = time.perf_counter() - start

    def __call__(self, batch: pa.Table) -> pa.Table:
        for column in (self.text_column, self.id_column):
            if column is not None and column not in batch.column_names:
                raise ValueError(
                    f"extract_dataset: the input has no column {column!r} "
                    f"(columns: {', '.join(batch.column_names)})"
                )
        carried = _carried_columns(batch.column_names, self.text_column, self.id_column)
        records = self.process(batch.column(self.text_column).to_pylist())
        return self.to_table(batch, records, carried)

    def to_table(
        self, batch: pa.Table, records: List[Dict[str, Any]], carried: Sequence[str]
    ) -> pa.Table:
        """The output table: the id column of `batch`, the `records` as typed Arrow columns
        (`COLUMN_TYPES`), then the `carried` columns of `batch`."""
        columns: Dict[str, Any] = {}
        if self.id_column is not None:
            columns["id"] = batch.column(self.id_column)
        for name, dtype in COLUMN_TYPES.items():
            columns[name] = pa.array([record.get(name) for record in records], type=dtype)
        for name in carried:
            columns[name] = batch.column(name)
        return pa.table(columns)

    def process(self, texts: List[Any]) -> List[Dict[str, Any]]:
        """One record per text (`doc_to_record`'s, or an error record with an "error" field).

        The texts go through ``nlp.pipe`` together; when that raises, each text goes through the
        pipeline alone, component by component, so that only the texts that fail become error
        records, each naming the component that raised.
        """
        records: List[Optional[Dict[str, Any]]] = [None] * len(texts)
        good = []
        for i, text in enumerate(texts):
            if isinstance(text, str):
                good.append(i)
            else:
                records[i] = error_record(None, f"text is {type(text).__name__}, expected str")
        try:
            docs = self.nlp.pipe([texts[i] for i in good], batch_size=self.batch_size)
            for i, doc in zip(good, docs):
                records[i] = doc_to_record(doc, spans_key=self.spans_key)
        except Exception:  # one bad text (or component) in the batch: retry one by one
            for i in good:
                records[i] = self.process_one(texts[i])
        return records  # type: ignore[return-value]

    def process_one(self, text: str) -> Dict[str, Any]:
        """`doc_to_record` of one text, or its error record (naming the failing step)."""
        step = "tokenizer"
        try:
            doc = self.nlp.make_doc(text)
            for step, component in self.nlp.pipeline:
                doc = component(doc)
            step = "doc_to_record"
            return doc_to_record(doc, spans_key=self.spans_key)
        except Exception as err:
            return error_record(text, f"{step}: {type(err).__name__}: {err}")


def error_record(text: Optional[str], error: str) -> Dict[str, Any]:
    """The record of a text that could not be processed: no entities, relations or cats."""
    return {"text": text, "entities": [], "relations": [], "cats": {}, "error": error}


def _carried_columns(
    columns: Iterable[str], text_column: str, id_column: Optional[str]
) -> List[str]:
    carried = [c for c in columns if c not in (text_column, id_column)]
    clash = [c for c in carried if c in RECORD_COLUMNS or c == "id"]
    if clash:
        raise ValueError(
            f"extract_dataset: input column(s) {', '.join(clash)} would be overwritten by the "
            f"output columns; rename them (e.g. Dataset.rename_columns)"
        )
    return carried


# --- the Dataset transform ----------------------------------------------------------------------


def extract_dataset(
    dataset: Dataset,
    model: Union[str, Path],
    *,
    text_column: str = "text",
    id_column: Optional[str] = "id",
    workers: int = 1,
    batch_size: int = 64,
    cpus_per_worker: float = 1.0,
    gpus_per_worker: float = 0.0,
    disable: Sequence[str] = (),
    code: Optional[Union[str, Path]] = None,
    max_tasks_in_flight_per_actor: Optional[int] = None,
) -> Dataset:
    """Run a spaCy pipeline over a Ray Dataset's texts: a lazy Dataset of records, one row per
    input row (columns in the module docstring). Nothing runs until the result is consumed
    (``write_parquet``, `write_records`, ``iter_rows``...).

    ``dataset.map_batches(RelationExtractorActor, compute=ActorPoolStrategy(size=workers),
    batch_size=batch_size, batch_format="pyarrow", num_cpus=cpus_per_worker,
    num_gpus=gpus_per_worker)``: the current Ray Data API (Ray 2.60 deprecates ``concurrency=``
    for ``compute=``); Ray's defaults give the actors ``max_restarts=-1`` and
    ``max_task_retries=-1`` (a dead worker is replaced and its batch retried).

    dataset (Dataset): rows with a string `text_column` and, unless `id_column` is None, an id.
    model (Union[str, Path]): pipeline package name or directory (see `RelationExtractorActor`).
    workers (int): actors in the pool. batch_size (int): rows per actor call and ``nlp.pipe``
        batch. cpus_per_worker, gpus_per_worker (float): Ray resources of each actor (a GPU
        share below 1 packs several actors on one GPU). disable (Sequence[str]): components to
        disable. code (Optional[Path]): Python file imported in each actor before loading.
    max_tasks_in_flight_per_actor (Optional[int]): passed to ``ActorPoolStrategy``.
    RAISES (ValueError): `workers` or `batch_size` below 1, or (when the schema is known) a
        missing text/id column or an input column named like an output column.
    """
    if workers < 1 or batch_size < 1:
        raise ValueError(
            f"extract_dataset: workers ({workers}) and batch_size ({batch_size}) must be >= 1"
        )
    schema = dataset.schema(fetch_if_missing=False)
    if schema is not None:
        for column in (text_column, id_column):
            if column is not None and column not in schema.names:
                hint = "; pass id_column=None for rows without ids" if column == id_column else ""
                raise ValueError(
                    f"extract_dataset: the input has no column {column!r} "
                    f"(columns: {', '.join(schema.names)}){hint}"
                )
        _carried_columns(schema.names, text_column, id_column)
    model_name = str(model)
    if Path(model_name).exists():
        model_name = str(Path(model_name).resolve())
    strategy_args = {}
    if max_tasks_in_flight_per_actor is not None:
        strategy_args["max_tasks_in_flight_per_actor"] = max_tasks_in_flight_per_actor
    return dataset.map_batches(
        RelationExtractorActor,
        fn_constructor_kwargs={
            "model": model_name,
            "text_column": text_column,
            "id_column": id_column,
            "batch_size": batch_size,
            "disable": list(disable),
            "use_gpu": gpus_per_worker > 0,
            "code": str(Path(code).resolve()) if code else None,
        },
        compute=ActorPoolStrategy(size=workers, **strategy_args),
        batch_size=batch_size,
        batch_format="pyarrow",
        zero_copy_batch=True,
        num_cpus=cpus_per_worker,
        num_gpus=gpus_per_worker or None,
        udf_modifying_row_count=False,
    )


def row_to_record(row: Dict[str, Any]) -> Dict[str, Any]:
    """A row of `extract_dataset` as the local engine's JSON record: ``{"id"?, "text",
    "entities", "relations", "cats", "meta"?, "error"?, ...}``. "id" leads when present;
    "meta", when it is a JSON string (as `read_input` writes it), is parsed; "error" appears
    only on error rows; other carried columns follow as they are."""
    record: Dict[str, Any] = {}
    if "id" in row:
        record["id"] = row["id"]
    record["text"] = row["text"]
    record["entities"] = [_span(span) for span in row["entities"] or []]
    record["relations"] = [
        {**rel, "head": _span(rel["head"]), "tail": _span(rel["tail"])}
        for rel in row["relations"] or []
    ]
    cats = row["cats"] or []
    record["cats"] = dict(cats) if not isinstance(cats, dict) else cats
    for name, value in row.items():
        if name in record or name == "error":
            continue
        if name == "meta":
            if value is None:
                continue
            value = json.loads(value) if isinstance(value, str) else value
        record[name] = value
    if row.get("error") is not None:
        record["error"] = row["error"]
    return record


def _span(span: Dict[str, Any]) -> Dict[str, Any]:
    """A span of a row as `span_to_dict` writes it: "kb_id" only when set."""
    if span.get("kb_id") is None and "kb_id" in span:
        span = {k: v for k, v in span.items() if k != "kb_id"}
    return span


# --- reading the input files ---------------------------------------------------------------------


def input_files(input_spec: Union[str, Path]) -> List[Path]:
    """The files of `input_spec`, sorted by path: a file; a directory (every file below it with
    an extension of `RAY_INPUT_FORMATS`, others ignored); or a glob pattern (``*``, ``?``,
    ``[``; ``**`` recursive), whose every match must have such an extension.

    RAISES (InputError): nothing found, a match with another extension, or a file that does not
        exist.
    """
    spec = str(input_spec)
    path = Path(spec)
    if path.is_dir():
        files = sorted(
            p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in RAY_INPUT_FORMATS
        )
        if not files:
            raise InputError(f"{path}: no {', '.join(RAY_INPUT_FORMATS)} files in this directory")
        return files
    if glob.has_magic(spec):
        files = sorted(Path(p) for p in glob.glob(spec, recursive=True) if Path(p).is_file())
        if not files:
            raise InputError(f"{spec}: no file matches")
    else:
        files = [path]
    for file in files:
        if file.suffix.lower() not in RAY_INPUT_FORMATS:
            raise InputError(
                f"{file}: unsupported input format {file.suffix or '(no extension)'!r}; "
                f"expected one of {', '.join(RAY_INPUT_FORMATS)}"
            )
        if not file.is_file():
            raise InputError(f"{file}: no such file")
    return files


def read_parquet_documents(
    path: Union[str, Path], text_column: str = "text", batch_rows: int = 4096
) -> Iterator[InputDoc]:
    """Yield ``(text, meta)`` per row of a Parquet file, as `read_documents` does for JSONL:
    `meta` holds the row's other columns. RAISES (InputError): an unreadable file, no
    `text_column`, or a row whose text is not a string (with the row number from 1)."""
    path = Path(path)
    try:
        parquet = pq.ParquetFile(path)
    except (OSError, pa.ArrowException) as err:
        raise InputError(f"{path}: cannot read as Parquet: {err}") from err
    if text_column not in parquet.schema_arrow.names:
        raise InputError(
            f"{path}: no {text_column!r} column (columns: {', '.join(parquet.schema_arrow.names)})"
        )
    row_no = 0
    for record_batch in parquet.iter_batches(batch_size=batch_rows):
        for row in record_batch.to_pylist():
            row_no += 1
            text = row.pop(text_column)
            if not isinstance(text, str):
                raise InputError(
                    f"{path}, row {row_no}: {text_column!r} is {type(text).__name__}; "
                    "expected a string"
                )
            yield text, row


def iter_input(
    input_spec: Union[str, Path], paragraphs: bool = False
) -> Iterator[Tuple[int, str, Optional[Dict[str, Any]]]]:
    """``(id, text, meta)`` for each document of the files of `input_spec` (see `input_files`),
    ids running from 0. RAISES (InputError): as `input_files`, `read_documents` and
    `read_parquet_documents`."""
    doc_id = 0
    for path in input_files(input_spec):
        if path.suffix.lower() == ".parquet":
            documents: Iterable[InputDoc] = read_parquet_documents(path)
        else:
            documents = read_documents(path, paragraphs=paragraphs)
        for text, meta in documents:
            yield doc_id, text, meta
            doc_id += 1


def read_input(
    input_spec: Union[str, Path], *, paragraphs: bool = False, block_size: int = 1024
) -> Dataset:
    """The documents of `input_spec` as a Ray Dataset with columns ``id`` (int64, see the module
    docstring), ``text`` (string) and ``meta`` (JSON text of a JSONL object's or Parquet row's
    other fields; null for ``.txt``).

    The driver reads the files (so they need only be on the driver's machine) and puts them
    into Ray's object store in blocks of `block_size` documents: the driver holds one block at
    a time; Ray spills the object store to disk when it fills. Every document is read and
    checked before this returns, so bad input fails before anything runs or is written. For
    data already on storage every node reads (S3, NFS), ``ray.data.read_parquet`` plus
    `extract_dataset` skips the driver.

    RAISES (InputError): as `iter_input`; also for an input without documents.
    """
    refs = []
    ids: List[int] = []
    texts: List[str] = []
    metas: List[Optional[str]] = []

    def flush() -> None:
        table = pa.table(
            {
                "id": pa.array(ids, pa.int64()),
                "text": pa.array(texts, pa.string()),
                "meta": pa.array(metas, pa.string()),
            }
        )
        refs.append(ray.put(table))
        ids.clear(), texts.clear(), metas.clear()

    for doc_id, text, meta in iter_input(input_spec, paragraphs=paragraphs):
        ids.append(doc_id)
        texts.append(text)
        metas.append(None if meta is None else json.dumps(meta, ensure_ascii=False, default=str))
        if len(ids) >= block_size:
            flush()
    if ids:
        flush()
    if not refs:
        raise InputError(f"{input_spec}: no documents")
    return ray.data.from_arrow_refs(refs)


# --- writing ------------------------------------------------------------------------------------


class JSONLRecordDatasink(BlockBasedFileDatasink):
    """Writes `extract_dataset` rows as JSONL shards (``*.jsonl``), one `row_to_record` per line
    with the local engine's JSON settings (`spacy_ie.records.record_to_line`), so the lines equal
    the local ones plus "id". Ray Data's ``BlockBasedFileDatasink`` (one file per write task);
    Ray's own ``write_json`` goes through pandas, which changes nested values and float
    digits."""

    def __init__(self, path: str, **kwargs: Any) -> None:
        super().__init__(path, file_format="jsonl", **kwargs)

    def write_block_to_file(self, block: BlockAccessor, file: "pa.NativeFile") -> None:
        for row in block.to_arrow().to_pylist():
            file.write(record_to_line(row_to_record(row)).encode("utf8"))


def write_records(
    dataset: Dataset, output_dir: Union[str, Path], output_format: str = "jsonl"
) -> None:
    """Run `dataset` (from `extract_dataset`) and write it as shards into `output_dir` (a local
    directory, created; or a URI pyarrow can write, e.g. ``s3://bucket/out``): ``jsonl`` with
    `JSONLRecordDatasink`, ``parquet`` with ``Dataset.write_parquet`` (the columns as they
    are). The rows keep their "id"; shards come in no particular order: sort by id. On a
    multi-node cluster a local path is written on each writing node: give shared storage or a
    URI.

    RAISES (ValueError): an unknown `output_format`.
    """
    if output_format == "jsonl":
        dataset.write_datasink(JSONLRecordDatasink(str(output_dir)))
    elif output_format == "parquet":
        dataset.write_parquet(str(output_dir))
    else:
        raise ValueError(
            f"write_records: unknown format {output_format!r}; "
            f"expected one of {', '.join(RAY_OUTPUT_FORMATS)}"
        )


# One shard of `InputOrderDatasink`: (id of its first record, records, [(id, error)]).
Shard = Tuple[int, int, List[Tuple[int, str]]]


class InputOrderDatasink(Datasink):
    """Writes the rows of `extract_dataset` over `read_input` (ids 0..n-1) as shards whose names
    give the input order: each block's rows sorted by id, one shard per run of consecutive ids,
    named by its first id (``000000000042.jsonl``), the "id" column dropped. Read in name order,
    the JSONL shards hold the lines the local engine writes for the same input; the Parquet
    shards hold the same columns as `write_records`' without "id".

    Each write task returns its shards (`Shard`); on the driver, ``shards`` holds them all once
    ``Dataset.write_datasink`` returns (see `check_shard_ids`).

    path (Union[str, Path]): a local directory (created; written on the driver's node only, so
        that it is complete where the driver reads it) or a URI pyarrow can write
        (``s3://...``, written from every node). It should be new or empty: shards of another
        run with other first ids would be read with these.
    output_format (str): "jsonl" or "parquet". RAISES (ValueError): for another one.
    """

    def __init__(self, path: Union[str, Path], output_format: str = "jsonl") -> None:
        if output_format not in RAY_OUTPUT_FORMATS:
            raise ValueError(f"InputOrderDatasink: unknown format {output_format!r}; "
                             f"expected one of {', '.join(RAY_OUTPUT_FORMATS)}")  # fmt: skip
        self.local = "://" not in str(path)
        self.path = str(Path(path).resolve()) if self.local else str(path)
        self.output_format = output_format
        self.shards: List[Shard] = []

    @property
    def supports_distributed_writes(self) -> bool:
        return not self.local

    def _filesystem(self) -> Tuple["pafs.FileSystem", str]:
        if self.local:
            return pafs.LocalFileSystem(), self.path
        return pafs.FileSystem.from_uri(self.path)

    def on_write_start(self, schema: Optional["pa.Schema"] = None) -> None:
        filesystem, path = self._filesystem()
        filesystem.create_dir(path, recursive=True)

    def write(self, blocks: Iterable[Block], ctx: Any) -> List[Shard]:
        filesystem, directory = self._filesystem()
        shards: List[Shard] = []
        for block in blocks:
            table = BlockAccessor.for_block(block).to_arrow()
            if table.num_rows == 0:
                continue
            table = table.sort_by("id")
            ids = table.column("id").to_pylist()
            starts = [0] + [k for k in range(1, len(ids)) if ids[k] != ids[k - 1] + 1]
            for start, end in zip(starts, starts[1:] + [len(ids)]):
                part = table.slice(start, end - start)
                name = f"{directory}/{ids[start]:012d}.{self.output_format}"
                column = part.column("error").to_pylist()
                errors = [(ids[start + k], error) for k, error in enumerate(column) if error]
                self._write_shard(filesystem, name, part.drop_columns(["id"]))
                shards.append((ids[start], end - start, errors))
        return shards

    def _write_shard(self, filesystem: "pafs.FileSystem", path: str, table: "pa.Table") -> None:
        if self.output_format == "parquet":
            pq.write_table(table, path, filesystem=filesystem)
            return
        with filesystem.open_output_stream(path) as file:
            for row in table.to_pylist():
                file.write(record_to_line(row_to_record(row)).encode("utf8"))

    def on_write_complete(self, write_result: Any) -> None:
        self.shards = sorted(shard for shards in write_result.write_returns for shard in shards)


def check_shard_ids(shards: Sequence[Shard], n_docs: int) -> Tuple[int, bool]:
    """(rows in `shards`, whether they hold the ids 0..n_docs-1 once each: sorted by first id,
    each shard starts where the previous one ended and the last ends at `n_docs`)."""
    expected = 0
    ok = True
    for first, n_rows, _ in sorted(shards):
        ok = ok and first == expected
        expected = first + n_rows
    n_rows = sum(shard[1] for shard in shards)
    return n_rows, ok and expected == n_docs and n_rows == n_docs


def write_in_input_order(
    dataset: Dataset,
    output_dir: Union[str, Path],
    output_format: str = "jsonl",
    concurrency: Optional[int] = None,
) -> List[Shard]:
    """Run `dataset` (from `extract_dataset` over `read_input`) and write it into `output_dir`
    with `InputOrderDatasink` (shards in input order, without ids), each write task requesting
    `WRITE_TASK_CPUS` CPUs, at most `concurrency` at a time (None: as many as the free CPUs
    hold, each one a Ray worker process of its own). RETURNS (List[Shard]): the shards written,
    sorted by first id. RAISES (ValueError): an unknown `output_format`."""
    sink = InputOrderDatasink(output_dir, output_format)
    remote_args = {"num_cpus": WRITE_TASK_CPUS}
    dataset.write_datasink(sink, ray_remote_args=remote_args, concurrency=concurrency)
    return sink.shards


def read_records(output_dir: Union[str, Path]) -> List[Dict[str, Any]]:
    """The records of the shards in `output_dir` (``*.jsonl`` or ``*.parquet``, as
    `write_records` or `write_in_input_order` write them), in `row_to_record` form: shards in
    name order, records in file order, then those with an id sorted by id (stable: records
    without one keep their order, which for `write_in_input_order` is the input order). Reads
    on the driver: for checks and small outputs."""
    output_dir = Path(output_dir)
    records: List[Dict[str, Any]] = []
    for path in sorted(output_dir.iterdir()):
        if path.suffix == ".jsonl":
            with path.open(encoding="utf8") as file:
                records.extend(json.loads(line) for line in file if line.strip())
        elif path.suffix == ".parquet":
            records.extend(row_to_record(row) for row in pq.read_table(path).to_pylist())
    return sorted(records, key=lambda r: (0, r["id"]) if r.get("id") is not None else (1, 0))


def iter_records(output_dir: Union[str, Path]) -> Iterator[Dict[str, Any]]:
    """The records of the shards in `output_dir`, streamed (one shard, one Parquet row group
    at a time), in `row_to_record` form, shards in name order and records in file order: for
    `write_in_input_order`'s shards, the local engine's records in input order."""
    for path in sorted(Path(output_dir).iterdir()):
        if path.suffix == ".jsonl":
            with path.open(encoding="utf8") as file:
                yield from (json.loads(line) for line in file if line.strip())
        elif path.suffix == ".parquet":
            for batch in pq.ParquetFile(path).iter_batches():
                yield from (row_to_record(row) for row in batch.to_pylist())


# --- the run of ``extract --engine ray`` ---------------------------------------------------------


def fit_cpus_per_worker(workers: int, cpus_per_worker: float, cluster_cpus: float) -> float:
    """The CPUs each actor requests: `cpus_per_worker`, unless `workers` actors of that size
    would fit the cluster's `cluster_cpus` but leave less than `CPUS_LEFT_FREE`; then an equal
    share of ``cluster_cpus - CPUS_LEFT_FREE``. Actors that hold every CPU leave none for the
    write tasks: the shards wait until every actor is done (held in Ray's object store), and
    Ray Data warns that "the Dataset job will hang unless more CPUs are freed up" when a job
    starts while the actors of the previous one hold every CPU. A CPU in Ray is a scheduling
    unit, not a limit: an actor of 0.8 CPU still runs on a whole core. More actors than the
    cluster holds (the CLI warns) are left as asked: those that do not fit wait.

    RETURNS (float): the CPUs per actor, e.g. 2 workers x 1 CPU on 2 CPUs: 0.8125.
    """
    total = workers * cpus_per_worker
    if total + CPUS_LEFT_FREE <= cluster_cpus or total > cluster_cpus or cpus_per_worker == 0:
        return cpus_per_worker
    return max(cluster_cpus - CPUS_LEFT_FREE, 0.0) / workers


def check_output_dir(output_dir: Union[str, Path], overwrite: bool = False) -> None:
    """RAISES (ValueError): when `output_dir` cannot take `extract_to_shards`' shards: it is a
    file; or it holds something and not `overwrite`; or, with `overwrite`, it holds anything
    but ``.jsonl`` / ``.parquet`` files (shards), which it would delete."""
    output_dir = Path(output_dir)
    if output_dir.is_file():
        raise ValueError(f"--output {output_dir} is a file; give a directory")
    if output_dir.is_dir() and any(output_dir.iterdir()):
        if not overwrite:
            raise ValueError(
                f"--output {output_dir} exists; remove it, give a new directory or --overwrite"
            )
        others = [p.name for p in output_dir.iterdir() if p.suffix not in (".jsonl", ".parquet")]
        if others:
            raise ValueError(
                f"--output {output_dir} holds other things than shards: "
                f"{', '.join(sorted(others)[:5])}; not replacing it"
            )


@dataclass
class RayExtractionSummary:
    """What `extract_to_shards` did: documents in, rows written, whether the rows hold every
    input id once, the error rows as ``(id, error)`` (id: the document's number from 0), the
    seconds (with Ray's start-up and the actors' pipeline loading) and the CPUs each actor
    requested."""

    n_docs: int = 0
    n_rows: int = 0
    ids_ok: bool = True
    errors: List[Tuple[int, str]] = field(default_factory=list)
    seconds: float = 0.0
    cpus_per_worker: float = 1.0


def wait_for_free_cpu(timeout: float = 10.0, interval: float = 0.1) -> bool:
    """Wait (at most `timeout` seconds) until Ray reports a free CPU; RETURNS (bool) whether it
    did. `read_input` builds its Dataset with ``ray.data.from_arrow_refs``, which runs one
    metadata task per block (1 CPU each): for a moment after they end, Ray still counts their
    CPUs as taken, and Ray Data, which checks for a free CPU when a job starts, would warn that
    the job "will hang unless more CPUs are freed up" (it would not: the CPUs come back within a
    second). A cluster whose CPUs stay taken (other jobs) keeps the warning, rightly."""
    deadline = time.monotonic() + timeout
    while not ray.available_resources().get("CPU"):
        if time.monotonic() > deadline:
            return False
        time.sleep(interval)
    return True


def count_input(input_spec: Union[str, Path], paragraphs: bool = False) -> int:
    """The number of documents of `input_spec`: a validating pass of `iter_input` (nothing
    kept), so that bad input fails before Ray starts. RAISES (InputError): as `iter_input`."""
    return sum(1 for _ in iter_input(input_spec, paragraphs=paragraphs))


def extract_to_shards(
    model: Union[str, Path],
    input_spec: Union[str, Path],
    output_dir: Union[str, Path],
    *,
    output_format: str = "jsonl",
    paragraphs: bool = False,
    batch_size: int = 64,
    workers: int = 1,
    cpus_per_worker: float = 1.0,
    gpus_per_worker: float = 0.0,
    disable: Sequence[str] = (),
    address: Optional[str] = None,
    code: Optional[Union[str, Path]] = None,
    overwrite: bool = False,
    n_docs: Optional[int] = None,
    graph: Optional[Any] = None,
) -> RayExtractionSummary:
    """``extract --engine ray`` without the command line: read `input_spec` (`input_files`) on
    this machine (`read_input`), run `extract_dataset` on a Ray cluster (`init_ray`: `address`,
    else ``$RAY_ADDRESS``, else a local Ray with all CPUs; actors sized by
    `fit_cpus_per_worker`) and write the records in input order without ids
    (`write_in_input_order`) into the local directory `output_dir`. The shards are written
    beside it under a temporary name, checked (every input id once), then renamed: the
    directory appears only once everything succeeded; an existing one is replaced only with
    `overwrite` (see `check_output_dir`). A job whose rows miss or repeat ids still keeps its
    output (``ids_ok`` False). Blocks hold at most 1,024 documents, at least 4 per worker; one
    write task runs at a time. The job starts once Ray reports a free CPU again after reading
    (`wait_for_free_cpu`).

    n_docs (Optional[int]): the documents of `input_spec` when the caller has counted them
        (`count_input`) and checked the pipeline's config; else both are done here, before
        Ray starts.
    graph (Optional[GraphWriter]): also write the records into this graph
        (`spacy_ie.graph.open_graph`), from the checked shards (`iter_records`) on the driver,
        and close it, before the shards are renamed into place.
    RAISES (ValueError): for `output_dir` (`check_output_dir`) or an unknown `output_format`.
        (PipelineLoadError): a damaged ``config.cfg`` / ``meta.json`` (before Ray starts).
        (InputError): unreadable input, or no documents (before Ray starts). Any error of the
        Ray job (nothing is written then).
    """
    if output_format not in RAY_OUTPUT_FORMATS:
        raise ValueError(f"--engine ray writes --format jsonl or parquet, not {output_format!r}")
    output_dir = Path(output_dir)
    check_output_dir(output_dir, overwrite)
    if n_docs is None:
        check_pipeline_config(model)
        n_docs = count_input(input_spec, paragraphs)
    if n_docs == 0:
        raise InputError(f"{input_spec}: no documents")
    start = time.perf_counter()
    init_ray(address=address)
    cpus = fit_cpus_per_worker(workers, cpus_per_worker, ray.cluster_resources().get("CPU", 0))
    output_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = output_dir.with_name(f".{output_dir.name}.{os.getpid()}.part")
    try:
        block_size = max(1, min(1024, -(-n_docs // (4 * workers))))
        dataset = read_input(input_spec, paragraphs=paragraphs, block_size=block_size)
        wait_for_free_cpu()
        records = extract_dataset(
            dataset, model, workers=workers, batch_size=batch_size, cpus_per_worker=cpus,
            gpus_per_worker=gpus_per_worker, disable=list(disable), code=code,
        )  # fmt: skip
        # One write task at a time: the shards go to this machine's disk, a line costs
        # microseconds against the milliseconds of the pipeline, and each task running at once
        # is a Ray worker process of its own.
        shards = write_in_input_order(records, tmp, output_format, concurrency=1)
        n_rows, ids_ok = check_shard_ids(shards, n_docs)
        if graph is not None:
            graph.add_all(iter_records(tmp))
            graph.close()
        if overwrite and output_dir.is_dir():
            shutil.rmtree(output_dir)
        os.replace(tmp, output_dir)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    errors = sorted(error for shard in shards for error in shard[2])
    return RayExtractionSummary(n_docs, n_rows, ids_ok, errors, time.perf_counter() - start, cpus)


def init_ray(address: Optional[str] = None, num_cpus: Optional[int] = None, **kwargs: Any) -> None:
    """``ray.init`` unless Ray is already initialized: connect to `address` (or to
    ``$RAY_ADDRESS`` when set), else start a local instance with `num_cpus` (default: all) and
    no dashboard. Other keyword arguments go to ``ray.init``."""
    if ray.is_initialized():
        return
    if address is None and not os.environ.get("RAY_ADDRESS"):
        kwargs.setdefault("num_cpus", num_cpus)
        kwargs.setdefault("include_dashboard", False)
    ray.init(address=address, **kwargs)
