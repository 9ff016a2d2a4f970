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
entities      list<struct<text, label, start, end>> ``doc.ents``, character offsets
relations     list<struct<head, tail, label,        ``doc._.relations``; head and tail as
              score>>                               the entities, score rounded to 4 places
cats          map<string, float64>                  ``doc.cats``
error         string                                null, or why the row could not be processed
(others)      as in the input                       carried over unchanged (e.g. ``meta``)
============  ====================================  ===========================================

`row_to_record` turns a row back into the local engine's JSON record
(`spacy_ie.cli.extract.doc_to_record`, plus ``"id"``, plus ``"error"`` on error rows), which is
what the JSONL shards hold. A record that cannot be processed (a text that is not a string, a
text over ``nlp.max_length``, a component raising on it) becomes an error row with empty
entities, relations and cats: the job goes on, every input row appears once in the output.

Ids of `read_input` (the CLI's reader): running numbers from 0, in input order (files in sorted
path order, documents in file order, as `spacy_ie.cli.extract.read_documents` yields them), so
id ``i`` is the ``i``-th line the local engine writes for the same single input file.
"""

import glob
import json
import os
import time
from pathlib import Path
from typing import Any, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple, Union

try:
    import pyarrow as pa
    import pyarrow.parquet as pq
    import ray
    import ray.data
    from ray.data import ActorPoolStrategy, Dataset
    from ray.data.block import BlockAccessor
    from ray.data.datasource import BlockBasedFileDatasink
except ImportError as err:  # pragma: no cover - depends on the installed extras
    raise ImportError(
        'spacy_ie.ray needs Ray Data: pip install "spacy-ie[ray]" (ray[data])'
    ) from err

import spacy
from spacy.language import Language

from .cli.extract import INPUT_FORMATS, InputDoc, InputError, doc_to_record, read_documents
from .util import load_pipeline

# Input files the Ray engine reads: the local engine's formats, and Parquet.
RAY_INPUT_FORMATS = tuple(INPUT_FORMATS) + (".parquet",)
# The output formats `write_records` writes.
RAY_OUTPUT_FORMATS = ("jsonl", "parquet")
# The columns `extract_dataset` writes (besides "id" and the carried-over ones).
RECORD_COLUMNS = ("text", "entities", "relations", "cats", "error")

SPAN_TYPE = pa.struct(
    [("text", pa.string()), ("label", pa.string()), ("start", pa.int64()), ("end", pa.int64())]
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
        # The CLI's loader: a pipeline that cannot load fails with one line naming the file.
        self.nlp: Language = load_pipeline(model, disable=list(disable))
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
                records[i] = doc_to_record(doc)
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
            return doc_to_record(doc)
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
    record["entities"] = list(row["entities"] or [])
    record["relations"] = list(row["relations"] or [])
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


# --- reading the CLI's input --------------------------------------------------------------------


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
    with the local engine's JSON settings (so the lines equal the local ones plus "id").
    Ray Data's ``BlockBasedFileDatasink`` (one file per write task); Ray's own ``write_json``
    goes through pandas, which changes nested values and float digits."""

    def __init__(self, path: str, **kwargs: Any) -> None:
        super().__init__(path, file_format="jsonl", **kwargs)

    def write_block_to_file(self, block: BlockAccessor, file: "pa.NativeFile") -> None:
        for row in block.to_arrow().to_pylist():
            line = json.dumps(
                row_to_record(row), ensure_ascii=False, separators=(",", ":"), default=str
            )
            file.write((line + "\n").encode("utf8"))


def write_records(
    dataset: Dataset, output_dir: Union[str, Path], output_format: str = "jsonl"
) -> None:
    """Run `dataset` (from `extract_dataset`) and write it as shards into `output_dir` (a local
    directory, created; or a URI pyarrow can write, e.g. ``s3://bucket/out``): ``jsonl`` with
    `JSONLRecordDatasink`, ``parquet`` with ``Dataset.write_parquet`` (the columns as they
    are). Shards come in no particular order: sort by id. On a multi-node cluster a local path
    is written on each writing node: give shared storage or a URI.

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


def read_records(output_dir: Union[str, Path]) -> List[Dict[str, Any]]:
    """The records of the shards in `output_dir` (``*.jsonl`` or ``*.parquet``, as
    `write_records` writes them), sorted by id (then by text for rows without id), in
    `row_to_record` form. Reads on the driver: for checks and small outputs."""
    output_dir = Path(output_dir)
    records: List[Dict[str, Any]] = []
    for path in sorted(output_dir.iterdir()):
        if path.suffix == ".jsonl":
            with path.open(encoding="utf8") as file:
                records.extend(json.loads(line) for line in file if line.strip())
        elif path.suffix == ".parquet":
            records.extend(row_to_record(row) for row in pq.read_table(path).to_pylist())
    return sorted(records, key=lambda r: (r.get("id") is None, r.get("id"), r.get("text") or ""))


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
