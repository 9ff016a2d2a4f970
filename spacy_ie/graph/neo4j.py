"""Neo4j as a graph store (``extract --graph bolt://...``), through the official ``neo4j`` driver.

Same graph model and same Cypher statement bodies as the embedded store
(`spacy_ie.graph.model`); rows are passed as a list parameter, ``UNWIND $rows AS row WITH row.a
AS a, ...`` (`spacy_ie.graph.model.unwind_statement`). A batch is one managed write transaction
(``Session.execute_write``, which the driver retries on transient errors: the batch is
idempotent). The schema is uniqueness constraints on ``Document.id`` and ``Entity.key`` and an
index on ``RELATION.doc_id`` (`spacy_ie.graph.model.NEO4J_SCHEMA`).

Connection: the URI (``bolt://``, ``bolt+s://``, ``neo4j://``, ``neo4j+s://``...; user and
password may be given in it, ``bolt://user:password@host:7687``), else the environment variables
``NEO4J_USERNAME`` (or ``NEO4J_USER``) and ``NEO4J_PASSWORD``; the database is
``NEO4J_DATABASE`` or the server's default. Without a password the driver connects without
authentication.
Source: Neo4j Python driver manual, https://neo4j.com/docs/python-manual/current/ (transactions,
``execute_write``; result values).

Needs the optional extra: ``pip install "spacy-ie[graph]"``.
"""
import os
from typing import Any, Dict, Iterator, List, Optional, Tuple
from urllib.parse import unquote, urlsplit, urlunsplit

from .model import (
    COLUMNS,
    EXISTING_DOCUMENTS_BODY,
    NEO4J_SCHEMA,
    WRITE_BODIES,
    GraphBatch,
    WriteResult,
    filter_new,
    unwind_statement,
)
from .store import GraphError, count_graph, import_optional

NEO4J_SCHEMES = ("bolt", "bolt+s", "bolt+ssc", "neo4j", "neo4j+s", "neo4j+ssc")


def is_neo4j_uri(target: str) -> bool:
    """Whether `target` is a Neo4j URI (one of `NEO4J_SCHEMES`)."""
    scheme, separator, _ = str(target).partition("://")
    return bool(separator) and scheme.lower() in NEO4J_SCHEMES


def connection_settings(uri: str) -> Tuple[str, Optional[Tuple[str, str]], Optional[str]]:
    """(URI without user info, (user, password) or None, database or None) from `uri` and the
    ``NEO4J_*`` environment variables (see the module docstring)."""
    parts = urlsplit(uri)
    user = unquote(parts.username) if parts.username else None
    password = unquote(parts.password) if parts.password else None
    if parts.username is not None:
        host = parts.hostname or ""
        netloc = f"{host}:{parts.port}" if parts.port else host
        uri = urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
    user = user or os.environ.get("NEO4J_USERNAME") or os.environ.get("NEO4J_USER") or "neo4j"
    password = password or os.environ.get("NEO4J_PASSWORD")
    auth = (user, password) if password else None
    return uri, auth, os.environ.get("NEO4J_DATABASE") or None


# The statements a batch runs, built once: (kind, Cypher).
EXISTING_STATEMENT = unwind_statement(["id"], EXISTING_DOCUMENTS_BODY)
WRITE_STATEMENTS: Tuple[Tuple[str, str], ...] = tuple(
    (kind, unwind_statement(COLUMNS[kind], body)) for kind, body in WRITE_BODIES
)


def write_batch_tx(tx: Any, batch: GraphBatch) -> WriteResult:
    """The transaction function of one batch: skip the documents already in the graph, then
    run the write statements on the rest. `tx` is a ``neo4j.ManagedTransaction`` (or anything
    with its ``run(query, parameters)``)."""
    ids = [{"id": row["id"]} for row in batch.documents]
    existing = [record["id"] for record in tx.run(EXISTING_STATEMENT, {"rows": ids})]
    new, result = filter_new(batch, existing)
    for kind, statement in WRITE_STATEMENTS:
        rows = new.rows(kind)
        if rows:
            tx.run(statement, {"rows": rows}).consume()
    return result


class Neo4jStore:
    """A Neo4j database as a graph store of the spacy-ie graph model.

    uri (str): a Neo4j URI (see the module docstring for credentials).
    create_schema (bool): create the constraints and index if missing (needs the right to).
    RAISES (GraphDependencyError): without the ``neo4j`` package. (GraphError): a server that
        cannot be reached, refused credentials, or a schema statement that fails.
    """

    def __init__(self, uri: str, *, create_schema: bool = True) -> None:
        neo4j = import_optional("neo4j", "Writing to Neo4j")
        self.exceptions = neo4j.exceptions
        self.uri, auth, self.database = connection_settings(uri)
        try:
            self.driver = neo4j.GraphDatabase.driver(self.uri, auth=auth)
            self.driver.verify_connectivity()
            if create_schema:
                with self._session() as session:
                    for statement in NEO4J_SCHEMA:
                        session.run(statement).consume()
        except (neo4j.exceptions.Neo4jError, neo4j.exceptions.DriverError, ValueError) as err:
            self.close()
            raise GraphError(f"{self.uri}: cannot open the graph: {err}") from err

    def _session(self) -> Any:
        return self.driver.session(database=self.database)

    def write(self, batch: GraphBatch) -> WriteResult:
        """Write `batch` in one managed transaction (see `write_batch_tx`).
        RAISES (GraphError): a failed transaction (rolled back)."""
        try:
            with self._session() as session:
                return session.execute_write(write_batch_tx, batch)
        except (self.exceptions.Neo4jError, self.exceptions.DriverError) as err:
            raise GraphError(f"{self.uri}: a write failed (rolled back): {err}") from err

    def query(
        self, cypher: str, parameters: Optional[Dict[str, Any]] = None
    ) -> Tuple[List[str], Iterator[Dict[str, Any]]]:
        """Run one Cypher statement (auto-commit). RETURNS: the column names and the rows as
        dicts of JSON-able values (`to_json_value`). RAISES (GraphError): a failed query."""
        try:
            with self._session() as session:
                result = session.run(cypher, parameters or {})
                columns = list(result.keys())
                rows = [{c: to_json_value(record[c]) for c in columns} for record in result]
        except (self.exceptions.Neo4jError, self.exceptions.DriverError) as err:
            raise GraphError(f"{self.uri}: {err}") from err
        return columns, iter(rows)

    def counts(self) -> Dict[str, int]:
        """The number of Document and Entity nodes and of MENTIONED_IN and RELATION edges."""
        return count_graph(self)

    def close(self) -> None:
        """Close the driver."""
        driver = getattr(self, "driver", None)
        self.driver = None
        if driver is not None:
            driver.close()

    def __enter__(self) -> "Neo4jStore":
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()


def to_json_value(value: Any) -> Any:
    """A Neo4j driver value as JSON, in the form of `spacy_ie.graph.store.to_json_value`: a
    node as ``{"_label": its first label, property: value...}``, a relationship as ``{"_type":
    type, ...}``, a path as ``{"nodes", "relationships"}``, temporal and spatial values as
    ``str``."""
    from neo4j.graph import Node, Path, Relationship

    if isinstance(value, Node):
        labels = sorted(value.labels)
        props = {k: to_json_value(v) for k, v in value.items()}
        return {"_label": labels[0] if labels else None, **props}
    if isinstance(value, Relationship):
        return {"_type": value.type, **{k: to_json_value(v) for k, v in value.items()}}
    if isinstance(value, Path):
        return {"nodes": [to_json_value(n) for n in value.nodes],
                "relationships": [to_json_value(r) for r in value.relationships]}  # fmt: skip
    if isinstance(value, dict):
        return {str(k): to_json_value(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_json_value(v) for v in value]
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)
