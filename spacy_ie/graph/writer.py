"""Writing extraction records into a graph: `open_graph` picks the store from the target, a
`GraphWriter` batches the records into transactions.

Targets (`open_store`):

- ``bolt://...``, ``neo4j://...`` (and their ``+s`` / ``+ssc`` forms): Neo4j
  (`spacy_ie.graph.neo4j.Neo4jStore`);
- a path ending in ``.ttl`` or ``.nt``: an RDF file (`spacy_ie.graph.rdf.RDFWriter`);
- any other path: an embedded LadybugDB database file (`spacy_ie.graph.store.LadybugStore`).

The records are those of ``spacy-ie extract`` (`doc_to_record`, identical for ``--engine local``
and ``--engine ray``), so both engines give the same graph.
"""
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Iterable, Optional, Protocol, Union

from .model import GraphBatch, WriteResult, document_id
from .neo4j import is_neo4j_uri
from .rdf import RDF_SUFFIXES

# Documents per transaction.
DEFAULT_BATCH_SIZE = 5000


class GraphStore(Protocol):
    """What a `GraphWriter` writes to: `LadybugStore`, `Neo4jStore` or `RDFWriter`."""

    def write(self, batch: GraphBatch) -> WriteResult: ...

    def close(self) -> None: ...


def target_kind(target: Union[str, Path]) -> str:
    """"neo4j", "rdf" or "ladybug" for a ``--graph`` target (see the module docstring)."""
    if is_neo4j_uri(str(target)):
        return "neo4j"
    if Path(str(target)).suffix.lower() in RDF_SUFFIXES:
        return "rdf"
    return "ladybug"


def open_store(target: Union[str, Path], *, read_only: bool = False) -> Any:
    """The store of `target` (see the module docstring), opened. `read_only` applies to the
    LadybugDB store (a query-only handle; the file must exist).
    RAISES (GraphDependencyError): a package of the ``graph`` extra is missing. (GraphError):
        the store cannot be opened (see each store)."""
    kind = target_kind(target)
    if kind == "neo4j":
        from .neo4j import Neo4jStore

        return Neo4jStore(str(target))
    if kind == "rdf":
        from .rdf import RDFWriter

        return RDFWriter(target)
    from .store import LadybugStore

    return LadybugStore(target, read_only=read_only)


@dataclass
class GraphWriteSummary:
    """Counts of a `GraphWriter`: records received, documents written, documents skipped
    (already in the graph), error records (not written), mentions and relations written, and
    the seconds spent in the store's transactions (`seconds`) and waiting for them
    (`wait_seconds`: with ``background=True``, the part that did not overlap other work)."""

    n_records: int = 0
    n_documents: int = 0
    n_skipped: int = 0
    n_errors: int = 0
    n_mentions: int = 0
    n_relations: int = 0
    n_batches: int = 0
    seconds: float = 0.0
    wait_seconds: float = 0.0

    @property
    def relations_per_second(self) -> float:
        return self.n_relations / self.seconds if self.seconds > 0 else 0.0


class GraphWriter:
    """Writes extraction records into a graph store, `batch_size` documents per transaction.

    ``add(record)`` takes one record (`doc_to_record`'s, with ``"id"`` from the Ray engine); its
    Document id is `spacy_ie.graph.model.document_id` with the number of records added before
    it as the position. ``close()`` writes the last batch and closes the store; leaving a
    ``with`` block on an exception closes it without writing the pending batch (the batches
    written so far stay: re-running the same input completes the graph), and removes a partial
    RDF file.

    store (GraphStore): from `open_store`.
    batch_size (int): documents per transaction.
    background (bool): run each transaction in a worker thread while the caller prepares the
        next batch (at most one transaction in flight; LadybugDB and the Neo4j driver release
        the GIL while they work). A failed transaction raises from the next `add` or `close`.
    RAISES (ValueError): `batch_size` below 1.
    """

    def __init__(
        self, store: GraphStore, *, batch_size: int = DEFAULT_BATCH_SIZE, background: bool = False
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"GraphWriter: batch_size must be >= 1, not {batch_size}")
        self.store = store
        self.batch_size = batch_size
        self.summary = GraphWriteSummary()
        self._batch = GraphBatch()
        self._executor = ThreadPoolExecutor(max_workers=1) if background else None
        self._pending: Optional[Future] = None
        self._closed = False

    def add(self, record: Dict[str, Any]) -> None:
        """Add one record; writes a batch when `batch_size` documents are pending.
        RAISES (GraphError): a failed transaction. (KeyError): a record without "entities" or
        "relations", or a span without "text", "label", "start" or "end"."""
        position = self.summary.n_records
        self.summary.n_records += 1
        if record.get("error") is not None:
            self.summary.n_errors += 1
            return
        self._batch.add_record(record, document_id(record, position))
        if len(self._batch) >= self.batch_size:
            self.flush()

    def add_all(self, records: Iterable[Dict[str, Any]]) -> None:
        """`add` each of `records`."""
        for record in records:
            self.add(record)

    def flush(self) -> None:
        """Write the pending batch (in the background with ``background=True``)."""
        batch, self._batch = self._batch, GraphBatch()
        self._wait()
        if not len(batch):
            return
        if self._executor is not None:
            self._pending = self._executor.submit(self._write, batch)
        else:
            self._write(batch)

    def _write(self, batch: GraphBatch) -> None:
        start = time.perf_counter()
        result = self.store.write(batch)
        summary = self.summary
        summary.seconds += time.perf_counter() - start
        summary.n_batches += 1
        summary.n_documents += result.n_documents
        summary.n_skipped += result.n_skipped
        summary.n_mentions += result.n_mentions
        summary.n_relations += result.n_relations

    def _wait(self) -> None:
        if self._pending is not None:
            start = time.perf_counter()
            pending, self._pending = self._pending, None
            try:
                pending.result()
            finally:
                self.summary.wait_seconds += time.perf_counter() - start

    def close(self) -> GraphWriteSummary:
        """Write the pending batch, wait for it, close the store. RETURNS: the summary."""
        if self._closed:
            return self.summary
        try:
            self.flush()
            self._wait()
        except BaseException:
            self.abort()
            raise
        self._closed = True
        self._shutdown()
        self.store.close()
        return self.summary

    def abort(self) -> None:
        """Stop without writing the pending batch: wait for a transaction in flight (it
        commits or rolls back whole), then close the store (an RDF file is not written)."""
        if self._closed:
            return
        self._closed = True
        try:
            if self._pending is not None:
                try:
                    self._pending.result()
                except BaseException:  # noqa: BLE001 - the first error is the one that counts
                    pass
        finally:
            self._shutdown()
            abort = getattr(self.store, "abort", None)
            (abort or self.store.close)()

    def _shutdown(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None

    def __enter__(self) -> "GraphWriter":
        return self

    def __exit__(self, exc_type: Any, *exc_info: Any) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


def open_graph(
    target: Union[str, Path], *, batch_size: int = DEFAULT_BATCH_SIZE, background: bool = False
) -> GraphWriter:
    """A `GraphWriter` on the store of `target` (see `open_store`).
    RAISES: as `open_store`."""
    return GraphWriter(open_store(target), batch_size=batch_size, background=background)


def write_graph(
    records: Iterable[Dict[str, Any]],
    target: Union[str, Path],
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> GraphWriteSummary:
    """Write extraction `records` (e.g. a JSONL output of ``spacy-ie extract``, read with
    ``srsly.read_jsonl``) into `target`. RETURNS: the summary. RAISES: as `open_store` and
    `GraphWriter.add`."""
    with open_graph(target, batch_size=batch_size) as writer:
        writer.add_all(records)
    return writer.summary
