"""spacy_ie.graph.neo4j: the Neo4j store. Without a server: its connection settings, and its
exact Cypher statements run on the embedded LadybugDB (which speaks the same openCypher), giving
the graph the embedded store writes. Live, against a real Neo4j, only when NEO4J_URI is set
(with NEO4J_USERNAME / NEO4J_PASSWORD, optionally NEO4J_DATABASE), as the Label Studio round trip
runs only against a real Label Studio: the test's documents and entities carry a unique prefix
and are deleted afterwards."""
import json
import os
import uuid
from typing import Any, Dict, List

import pytest
from typer.testing import CliRunner

pytest.importorskip("neo4j")
pytest.importorskip("ladybug")

from spacy_ie.graph import GraphBatch, open_graph  # noqa: E402
from spacy_ie.graph.model import COLUMNS, WRITE_BODIES  # noqa: E402
from spacy_ie.graph.neo4j import (  # noqa: E402
    EXISTING_STATEMENT,
    WRITE_STATEMENTS,
    connection_settings,
    is_neo4j_uri,
    write_batch_tx,
)
from spacy_ie.graph.store import LadybugStore  # noqa: E402

from test_graph import corpus, expected_counts, relation_rows  # noqa: E402

NEO4J_URI = os.environ.get("NEO4J_URI")


def test_neo4j_targets_and_credentials(monkeypatch):
    for uri in ("bolt://localhost:7687", "neo4j+s://x.databases.neo4j.io", "BOLT://h"):
        assert is_neo4j_uri(uri)
    for target in ("kg.lbug", "bolt.lbug", "http://localhost:7474", "out.ttl"):
        assert not is_neo4j_uri(target)
    for name in ("NEO4J_USERNAME", "NEO4J_USER", "NEO4J_PASSWORD", "NEO4J_DATABASE"):
        monkeypatch.delenv(name, raising=False)
    assert connection_settings("bolt://localhost:7687") == ("bolt://localhost:7687", None, None)
    # Credentials in the URI are taken out of it.
    assert connection_settings("bolt://ann:p%40ss@db:7687") == ("bolt://db:7687", ("ann", "p@ss"), None)
    monkeypatch.setenv("NEO4J_USERNAME", "bob")
    monkeypatch.setenv("NEO4J_PASSWORD", "secret")
    monkeypatch.setenv("NEO4J_DATABASE", "kg")
    assert connection_settings("neo4j://db") == ("neo4j://db", ("bob", "secret"), "kg")


def test_statements_share_the_bodies():
    """The Neo4j statements are the embedded store's bodies behind UNWIND ... WITH."""
    assert [kind for kind, _ in WRITE_STATEMENTS] == [kind for kind, _ in WRITE_BODIES]
    for (kind, statement), (_, body) in zip(WRITE_STATEMENTS, WRITE_BODIES):
        assert statement.startswith("UNWIND $rows AS row WITH ") and statement.endswith(body)
        for column in COLUMNS[kind]:
            assert f"row.{column} AS {column}" in statement


class LadybugTx:
    """A ``neo4j.ManagedTransaction`` stand-in that runs the statements on LadybugDB: `run`
    returns the rows as dicts, with a ``consume``."""

    class Result(list):
        def consume(self) -> None:
            return None

    def __init__(self, store: LadybugStore) -> None:
        self.store = store
        self.statements: List[str] = []

    def run(self, query: str, parameters: Dict[str, Any]) -> "LadybugTx.Result":
        self.statements.append(query)
        _, rows = self.store.query(query, parameters)
        return LadybugTx.Result(rows)


def test_neo4j_statements_write_the_same_graph(tmp_path):
    """`write_batch_tx`, the Neo4j store's transaction function, with its exact Cypher run on
    LadybugDB, writes the graph the embedded store writes, and skips the documents there."""
    records = corpus(12)
    reference = tmp_path / "reference.lbug"
    with open_graph(reference, batch_size=5) as writer:
        writer.add_all(records)
    path = tmp_path / "via_neo4j_statements.lbug"
    with LadybugStore(path) as store:
        tx = LadybugTx(store)
        for first in range(0, len(records), 5):
            batch = GraphBatch()
            for i in range(first, min(first + 5, len(records))):
                batch.add_record(records[i], str(i))
            result = write_batch_tx(tx, batch)
            assert result.n_documents == len(batch.documents)
        assert tx.statements[0] == EXISTING_STATEMENT
        assert store.counts() == expected_counts(records)
        batch = GraphBatch()
        for i, record in enumerate(records):
            batch.add_record(record, str(i))
        again = write_batch_tx(tx, batch)  # a re-run adds nothing
        assert (again.n_documents, again.n_skipped, again.n_relations) == (0, 12, 0)
    assert relation_rows(path) == relation_rows(reference)


class FakeDriver:
    """``neo4j.GraphDatabase.driver``'s result, for `Neo4jStore` without a server: schema
    statements are recorded, transactions and queries run on LadybugDB (`LadybugTx`)."""

    def __init__(self, store: LadybugStore) -> None:
        self.store, self.schema, self.closed, self.databases = store, [], False, []

    def verify_connectivity(self) -> None:
        return None

    def session(self, database=None):
        self.databases.append(database)
        return FakeSession(self)

    def close(self) -> None:
        self.closed = True


class FakeSession:
    def __init__(self, driver: FakeDriver) -> None:
        self.driver = driver

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        return None

    def run(self, query, parameters=None):
        if query.startswith("CREATE CONSTRAINT") or query.startswith("CREATE INDEX"):
            self.driver.schema.append(query)
            return LadybugTx.Result()
        columns, rows = self.driver.store.query(query, parameters)
        result = LadybugTx.Result(rows)
        result.keys = lambda: columns
        return result

    def execute_write(self, fn, *args):
        return fn(LadybugTx(self.driver.store), *args)


def test_neo4j_store_through_the_driver_interface(tmp_path, monkeypatch):
    """`open_graph("bolt://...")` -> `Neo4jStore`: schema first, then one managed write
    transaction per batch through ``session.execute_write``, and queries through
    ``session.run``; a driver error becomes a `GraphError` naming the URI."""
    import neo4j

    from spacy_ie.graph import GraphError, query_graph
    from spacy_ie.graph.model import NEO4J_SCHEMA

    monkeypatch.setenv("NEO4J_DATABASE", "kg")
    backing = LadybugStore(tmp_path / "backing.lbug")
    driver = FakeDriver(backing)
    seen = {}

    def fake_driver(uri, auth=None):
        seen["uri"], seen["auth"] = uri, auth
        return driver

    monkeypatch.setattr(neo4j.GraphDatabase, "driver", fake_driver)
    records = corpus(9)
    with open_graph("bolt://ann:pw@localhost:7687", batch_size=4) as writer:
        writer.add_all(records)
    assert seen == {"uri": "bolt://localhost:7687", "auth": ("ann", "pw")}
    assert driver.schema == list(NEO4J_SCHEMA) and driver.closed
    assert set(driver.databases) == {"kg"}
    assert writer.summary.n_batches == 3 and backing.counts() == expected_counts(records)
    _, rows = query_graph("bolt://localhost:7687", "MATCH (d:Document) RETURN count(d) AS n")
    assert list(rows) == [{"n": 9}]

    def unreachable(uri, auth=None):
        raise neo4j.exceptions.ServiceUnavailable("Couldn't connect to localhost:7687")

    monkeypatch.setattr(neo4j.GraphDatabase, "driver", unreachable)
    with pytest.raises(GraphError, match="bolt://localhost:7687: cannot open the graph"):
        open_graph("bolt://localhost:7687")
    backing.close()


# --- live -----------------------------------------------------------------------------------------


@pytest.mark.skipif(not NEO4J_URI, reason="NEO4J_URI is not set: no Neo4j server to test against")
def test_live_neo4j(tmp_path):
    """Write, re-write (nothing added) and query the test corpus on the Neo4j of NEO4J_URI."""
    from spacy_ie.cli import app
    from spacy_ie.graph.neo4j import Neo4jStore

    tag = f"t{uuid.uuid4().hex[:8]}"
    records = corpus(12)
    for i, record in enumerate(records):
        record["meta"] = {"id": f"{tag}-{i}"}
        for rel in record["relations"]:
            for arg in (rel["head"], rel["tail"]):
                arg["label"] = arg["label"] if arg["label"].startswith(tag) else f"{tag}_{arg['label']}"
        for ent in record["entities"]:
            ent["label"] = ent["label"] if ent["label"].startswith(tag) else f"{tag}_{ent['label']}"
    store = Neo4jStore(NEO4J_URI)
    count_query = (
        "MATCH (d:Document) WHERE d.id STARTS WITH $tag WITH count(d) AS documents "
        "MATCH (h:Entity)-[r:RELATION]->(:Entity) WHERE r.doc_id STARTS WITH $tag "
        "WITH documents, count(r) AS relations "
        "MATCH (:Entity)-[m:MENTIONED_IN]->(d:Document) WHERE d.id STARTS WITH $tag "
        "RETURN documents, relations, count(m) AS mentions"
    )
    try:
        with open_graph(NEO4J_URI, batch_size=5) as writer:
            writer.add_all(records)
        expected = expected_counts(records)
        _, rows = store.query(count_query, {"tag": tag})
        assert next(rows) == {k: expected[k] for k in ("documents", "relations", "mentions")}
        with open_graph(NEO4J_URI, batch_size=4) as writer:
            writer.add_all(records)
        assert writer.summary.n_skipped == 12 and writer.summary.n_relations == 0
        _, rows = store.query(count_query, {"tag": tag})
        assert next(rows)["relations"] == expected["relations"]
        result = CliRunner().invoke(app, [
            "graph-query", NEO4J_URI,
            "MATCH (p:Entity)-[r:RELATION]->(o:Entity) WHERE r.doc_id = $doc "
            "RETURN p.key AS head, r.label AS label, o.key AS tail ORDER BY label",
            "--param", f"doc={tag}-0",
        ])  # fmt: skip
        assert result.exit_code == 0, result.stderr
        rows = [json.loads(line) for line in result.stdout.splitlines()]
        assert [row["label"] for row in rows] == ["Live_In", "Work_For"]
    finally:
        store.query("MATCH (d:Document) WHERE d.id STARTS WITH $tag DETACH DELETE d", {"tag": tag})
        store.query("MATCH (e:Entity) WHERE e.label STARTS WITH $tag DETACH DELETE e", {"tag": tag})
        store.close()
