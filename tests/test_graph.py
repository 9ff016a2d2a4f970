"""spacy_ie.graph: the graph model, the embedded LadybugDB store (counts, MERGE idempotence,
provenance, a killed write and its resume), RDF output, and `spacy-ie graph-query`."""
import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any, Dict, List, Set, Tuple

import pytest
from typer.testing import CliRunner

pytest.importorskip("ladybug")
pytest.importorskip("pyoxigraph")

from spacy_ie.cli import app  # noqa: E402
from spacy_ie.graph import (  # noqa: E402
    GraphBatch,
    GraphError,
    GraphWriter,
    document_id,
    entity_key,
    normalize_text,
    open_graph,
    query_graph,
    write_graph,
)
from spacy_ie.graph.rdf import PREFIXES, sparql_query  # noqa: E402
from spacy_ie.graph.store import LadybugStore  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parent.parent


def span(text: str, label: str, start: int, **extra: Any) -> Dict[str, Any]:
    return {"text": text, "label": label, "start": start, "end": start + len(text), **extra}


def make_record(text: str, ents: List[Tuple[str, str]], rels: List[Tuple[int, int, str, float]],
                **extra: Any) -> Dict[str, Any]:  # fmt: skip
    """A `doc_to_record`-shaped record: `ents` as (text, label) at their first occurrence,
    `rels` as (head index, tail index, label, score)."""
    spans = [span(t, label, text.index(t)) for t, label in ents]
    relations = [{"head": spans[h], "tail": spans[t], "label": label, "score": score}
                 for h, t, label, score in rels]  # fmt: skip
    return {"text": text, "entities": spans, "relations": relations, "cats": {}, **extra}


def corpus(n: int = 30) -> List[Dict[str, Any]]:
    """`n` records over a few recurring entities (differently cased and spaced), some without
    relations, one with a relation whose tail is not among the entities."""
    people = ["Ada Lovelace", "ADA  LOVELACE", "Charles Babbage", "Alan Turing"]
    orgs = ["Analytical Society", "Bletchley Park", "analytical society"]
    records = []
    for i in range(n):
        person, org = people[i % len(people)], orgs[i % len(orgs)]
        text = f"Doc {i}: {person} worked for {org} in London."
        if i % 5 == 4:
            records.append(make_record(text, [(person, "PER")], []))
        else:
            records.append(make_record(
                text, [(person, "PER"), (org, "ORG"), ("London", "LOC")],
                [(0, 1, "Work_For", 0.5 + (i % 7) / 20), (0, 2, "Live_In", 0.6)],
            ))  # fmt: skip
    # A relation argument that is not in doc.ents (e.g. from a span group).
    records[1]["relations"].append(
        {"head": records[1]["entities"][1], "tail": span("London", "GPE", records[1]["text"].index("London")),
         "label": "Located_In", "score": 0.7}  # fmt: skip
    )
    return records


def expected_counts(records: List[Dict[str, Any]]) -> Dict[str, int]:
    """The counts the graph model gives, computed independently of the writer."""
    keys: Set[str] = set()
    mentions: Set[Tuple[int, str, int, int]] = set()
    n_relations = 0
    for i, record in enumerate(records):
        spans = list(record["entities"])
        for rel in record["relations"]:
            spans += [rel["head"], rel["tail"]]
            n_relations += 1
        for s in spans:
            key = f"{s['label']}:{' '.join(s['text'].lower().split())}"
            keys.add(key)
            mentions.add((i, key, s["start"], s["end"]))
    return {"documents": len(records), "entities": len(keys), "mentions": len(mentions),
            "relations": n_relations}  # fmt: skip


def relation_rows(target: Any) -> List[Tuple[Any, ...]]:
    """Every RELATION edge with its endpoints' keys and its provenance, sorted."""
    _, rows = query_graph(
        target,
        "MATCH (h:Entity)-[r:RELATION]->(t:Entity) RETURN h.key AS h, t.key AS t, r.label AS l, "
        "r.score AS s, r.doc_id AS d, r.head_start AS hs, r.head_end AS he, "
        "r.tail_start AS ts, r.tail_end AS te",
    )
    return sorted(tuple(row.values()) for row in rows)


def counts(path: Path) -> Dict[str, int]:
    with LadybugStore(path, read_only=True) as store:
        return store.counts()


# --- the model ----------------------------------------------------------------------------------


def test_normalize_text_and_entity_keys():
    assert normalize_text("  Ada\u00a0 LOVELACE\n") == "ada lovelace"  # NBSP folded by NFKC
    assert normalize_text("Straße") == "strasse"  # case folding, not lower()
    assert normalize_text("\uff21\uff44\uff41") == "ada"  # full-width letters
    assert entity_key(span("Ada  Lovelace", "PER", 0)) == "PER:ada lovelace"
    assert entity_key(span("Ada", "ORG", 0)) != entity_key(span("Ada", "PER", 0))
    # An entity linker's kb_id wins, unnormalized, whatever the text and label.
    assert entity_key(span("Lovelace", "PER", 0, kb_id="Q7259")) == "kb:Q7259"
    assert entity_key(span("Countess of Lovelace", "PER", 0, kb_id="Q7259")) == "kb:Q7259"
    assert entity_key(span("Ada", "PER", 0, kb_id="")) == "PER:ada"  # spaCy's "no kb_id"


def test_document_id_precedence():
    assert document_id({"text": "x"}, 7) == "7"
    assert document_id({"id": 3, "text": "x"}, 7) == "3"  # the Ray engine's running number
    assert document_id({"id": 3, "meta": {"id": "doc-a"}}, 7) == "doc-a"  # the input's own id
    assert document_id({"meta": {"source": "s"}}, 7) == "7"


def test_batch_rows():
    batch = GraphBatch()
    records = corpus(6)
    for i, record in enumerate(records):
        assert batch.add_record(record, str(i))
    assert not batch.add_record(records[0], "0")  # the same id again: ignored
    assert not batch.add_record({"text": None, "entities": [], "relations": [], "error": "x"}, "9")
    assert len(batch.documents) == 6
    expected = expected_counts(records)
    assert len(batch.entities) == expected["entities"]
    assert len(batch.mentions) == expected["mentions"]
    assert len(batch.relations) == expected["relations"]
    # The relation argument outside doc.ents is a mention (and an entity) of its document.
    assert {"key": "GPE:london", "doc_id": "1", "start_char": records[1]["text"].index("London"),
            "end_char": records[1]["text"].index("London") + 6} in batch.mentions  # fmt: skip
    rest = batch.without_documents(["0", "1"])
    assert [row["id"] for row in rest.documents] == ["2", "3", "4", "5"]
    assert {row["doc_id"] for row in rest.mentions + rest.relations} <= {"2", "3", "4", "5"}


# --- the embedded store -------------------------------------------------------------------------


def test_counts_and_provenance(tmp_path):
    records = corpus()
    path = tmp_path / "kg.lbug"
    summary = write_graph(records, path, batch_size=7)
    expected = expected_counts(records)
    assert counts(path) == expected
    assert (summary.n_documents, summary.n_relations, summary.n_batches) == (30, expected["relations"], 5)
    # One RELATION edge per extracted relation, with its document and offsets.
    got = relation_rows(path)
    want = sorted(
        (entity_key(rel["head"]), entity_key(rel["tail"]), rel["label"], rel["score"], str(i),
         rel["head"]["start"], rel["head"]["end"], rel["tail"]["start"], rel["tail"]["end"])
        for i, record in enumerate(records) for rel in record["relations"]
    )  # fmt: skip
    assert got == want
    # Differently cased and spaced mentions are one node, with both mentions.
    _, rows = query_graph(path, "MATCH (e:Entity {key: 'PER:ada lovelace'})-[m:MENTIONED_IN]->"
                                "(d:Document) RETURN e.text AS text, d.id AS doc ORDER BY doc")  # fmt: skip
    rows = list(rows)
    assert {row["doc"] for row in rows} == {str(i) for i in range(30) if i % 4 in (0, 1)}
    assert rows[0]["text"] == "Ada Lovelace"  # the first mention's text
    # The document's text and the mention's offsets point at the mention.
    _, rows = query_graph(path, "MATCH (e:Entity)-[m:MENTIONED_IN]->(d:Document {id: '3'}) "
                                "RETURN e.text AS text, m.start AS s, m.`end` AS e, d.text AS doc")  # fmt: skip
    for row in rows:
        assert row["doc"][row["s"]:row["e"]] == row["text"] or row["text"] == "ADA  LOVELACE"


def test_merge_is_idempotent_and_resumes(tmp_path):
    records = corpus()
    path = tmp_path / "kg.lbug"
    write_graph(records, path, batch_size=8)
    before, edges = counts(path), relation_rows(path)
    again = write_graph(records, path, batch_size=5)  # other batch boundaries
    assert (again.n_documents, again.n_skipped, again.n_relations) == (0, 30, 0)
    assert counts(path) == before and relation_rows(path) == edges
    # Half first, then everything: the same graph as in one go.
    half = tmp_path / "half.lbug"
    write_graph(records[:13], half, batch_size=4)
    rest = write_graph(records, half, batch_size=4)
    assert (rest.n_documents, rest.n_skipped) == (17, 13)
    assert counts(half) == before and relation_rows(half) == edges


def test_error_records_and_duplicate_ids(tmp_path):
    records = corpus(6)
    records[2] = {"id": 2, "text": None, "entities": [], "relations": [], "cats": {}, "error": "x"}
    records[4]["meta"] = {"id": "shared"}
    records[5]["meta"] = {"id": "shared"}  # a repeated input id: the first record wins
    path = tmp_path / "kg.lbug"
    summary = write_graph(records, path, batch_size=2)
    assert (summary.n_records, summary.n_errors, summary.n_documents, summary.n_skipped) == (6, 1, 4, 1)
    _, rows = query_graph(path, "MATCH (d:Document) RETURN d.id AS id ORDER BY id")
    assert [row["id"] for row in rows] == ["0", "1", "3", "shared"]
    _, rows = query_graph(path, "MATCH (d:Document {id: 'shared'}) RETURN d.text AS text")
    assert next(rows)["text"] == records[4]["text"]


def test_background_writer_gives_the_same_graph(tmp_path):
    records = corpus()
    write_graph(records, tmp_path / "a.lbug", batch_size=4)
    with open_graph(tmp_path / "b.lbug", batch_size=4, background=True) as writer:
        writer.add_all(records)
    assert writer.summary.n_batches == 8
    assert counts(tmp_path / "b.lbug") == counts(tmp_path / "a.lbug")
    assert relation_rows(tmp_path / "b.lbug") == relation_rows(tmp_path / "a.lbug")


KILL_SCRIPT = textwrap.dedent(
    """
    import json, os, signal, sys
    from spacy_ie.graph import open_graph
    records = [json.loads(line) for line in open(sys.argv[2], encoding="utf8")]
    kill_at = int(sys.argv[3])
    writer = open_graph(sys.argv[1], batch_size=4)
    conn = writer.store.conn
    commits = 0

    class Killing:
        # The store's connection, killing the process at the kill_at-th COMMIT, before it
        # runs: that batch's statements have run in its open transaction.
        def execute(self, query, *args):
            global commits
            if query == "COMMIT":
                commits += 1
                if commits == kill_at:
                    print("killing", flush=True)
                    os.kill(os.getpid(), signal.SIGKILL)
            return conn.execute(query, *args)

        def close(self):
            conn.close()

    writer.store.conn = Killing()
    writer.add_all(records)
    writer.close()
    """
)


def test_killed_write_keeps_committed_batches_and_resumes(tmp_path):
    records = corpus()
    data = tmp_path / "records.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf8")
    path = tmp_path / "kg.lbug"
    result = subprocess.run(
        [sys.executable, "-c", KILL_SCRIPT, str(path), str(data), "3"],
        capture_output=True, text=True, timeout=300, cwd=REPO_ROOT,
    )  # fmt: skip
    assert result.returncode == -signal.SIGKILL, result.stderr
    assert "killing" in result.stdout
    # Two batches of 4 committed; the third, killed before its COMMIT, left nothing.
    assert counts(path) == expected_counts(records[:8])
    _, rows = query_graph(path, "MATCH (d:Document) RETURN d.id AS id")
    assert sorted(int(row["id"]) for row in rows) == list(range(8))
    # The re-run writes the rest, and the graph is the one an uninterrupted run writes.
    resumed = write_graph(records, path, batch_size=4)
    assert (resumed.n_skipped, resumed.n_documents) == (8, 22)
    write_graph(records, tmp_path / "whole.lbug", batch_size=4)
    assert counts(path) == counts(tmp_path / "whole.lbug")
    assert relation_rows(path) == relation_rows(tmp_path / "whole.lbug")


def test_store_errors(tmp_path):
    with pytest.raises(GraphError, match="is a directory"):
        LadybugStore(tmp_path)
    with pytest.raises(GraphError, match="no such graph"):
        LadybugStore(tmp_path / "missing.lbug", read_only=True)
    path = tmp_path / "kg.lbug"
    write_graph(corpus(3), path)
    with pytest.raises(GraphError, match="Entty"):
        query_graph(path, "MATCH (e:Entty) RETURN e")
    with pytest.raises(ValueError, match="batch_size"):
        GraphWriter(LadybugStore(tmp_path / "other.lbug"), batch_size=0)


def test_a_failed_batch_rolls_back(tmp_path):
    """A statement failing mid-batch (here the relations' statement, after the documents,
    entities and mentions of the batch were written in its transaction) leaves nothing of the
    batch, and the store stays usable."""
    path = tmp_path / "kg.lbug"
    records = corpus(8)
    store = LadybugStore(path)
    conn = store.conn

    class Failing:
        def execute(self, query, *args):
            if "RELATION {" in query:
                raise RuntimeError("disk full")
            return conn.execute(query, *args)

        def close(self):
            conn.close()

    writer = GraphWriter(store, batch_size=4)
    writer.add_all(records[:4])  # written
    store.conn = Failing()
    with pytest.raises(GraphError, match="rolled back.*disk full"):
        writer.add_all(records[4:])
    store.conn = conn
    assert store.counts() == expected_counts(records[:4])
    writer.close()
    assert write_graph(records, path).n_documents == 4  # the failed batch, on a re-run
    assert counts(path) == expected_counts(records)


def test_a_statement_the_database_rejects_rolls_back(tmp_path):
    """LadybugDB rolls a transaction back itself when one of its statements fails (here a
    document id twice in one batch, which `GraphBatch.add_record` never writes): the store
    reports LadybugDB's error, and stays usable."""
    path = tmp_path / "kg.lbug"
    twice = GraphBatch(documents=[{"id": "a", "text": "x"}, {"id": "a", "text": "y"}])
    with LadybugStore(path) as store:
        with pytest.raises(GraphError, match="rolled back.*duplicated primary key"):
            store.write(twice)
        assert store.counts()["documents"] == 0
    assert write_graph(corpus(4), path).n_documents == 4


def test_checkpoint_threshold(tmp_path):
    """A writing store leaves committed batches in the write-ahead log until the log passes
    `checkpoint_mb` (0: a checkpoint after every commit), and checkpoints on close."""
    for checkpoint_mb, wal_kept in ((1024, True), (0, False)):
        path = tmp_path / f"kg{checkpoint_mb}.lbug"
        wal = path.with_name(path.name + ".wal")
        store = LadybugStore(path, checkpoint_mb=checkpoint_mb)
        GraphWriter(store, batch_size=4).add_all(corpus(4))
        assert wal.exists() == wal_kept
        store.close()
        assert not wal.exists()
        assert counts(path) == expected_counts(corpus(4))


# --- RDF ----------------------------------------------------------------------------------------


SPARQL_PREFIXES = "".join(f"PREFIX {p}: <{iri}> " for p, iri in PREFIXES.items())


def test_rdf_turtle_and_ntriples(tmp_path):
    import pyoxigraph as ox

    records = corpus()
    expected = expected_counts(records)
    triples = {}
    for suffix in ("ttl", "nt"):
        path = tmp_path / f"kg.{suffix}"
        summary = write_graph(records, path, batch_size=7)
        assert summary.n_relations == expected["relations"]
        assert not list(tmp_path.glob(".*part"))  # no temporary file left
        triples[suffix] = set(ox.parse(path=str(path)))
        for cls, kind in (("Document", "documents"), ("Entity", "entities"),
                          ("Mention", "mentions"), ("Relation", "relations")):  # fmt: skip
            _, rows = sparql_query(path, SPARQL_PREFIXES +
                                   f"SELECT (COUNT(?x) AS ?n) WHERE {{ ?x a sie:{cls} }}")  # fmt: skip
            assert next(rows)["n"] == expected[kind], (suffix, cls)
    assert triples["ttl"] == triples["nt"]  # the same graph (no blank nodes)
    assert (tmp_path / "kg.ttl").read_text(encoding="utf8").startswith("@prefix")
    # The fact and its provenance.
    _, rows = sparql_query(tmp_path / "kg.ttl", SPARQL_PREFIXES + """
        SELECT ?name ?score ?doc ?hs WHERE {
          ?h rel:Work_For ?t . ?t sie:key "ORG:bletchley park" . ?h rdfs:label ?name .
          ?s rdf:subject ?h ; rdf:predicate rel:Work_For ; rdf:object ?t ; sie:score ?score ;
             sie:document ?d ; sie:headStart ?hs . ?d sie:id ?doc
        } ORDER BY ?doc""")  # fmt: skip
    rows = list(rows)
    want = [(str(i), r["relations"][0]["score"]) for i, r in enumerate(records)
            if i % 3 == 1 and i % 5 != 4]  # fmt: skip
    assert sorted((row["doc"], row["score"]) for row in rows) == sorted(want)
    assert all(isinstance(row["hs"], int) for row in rows)


def test_rdf_abort_leaves_no_file(tmp_path):
    path = tmp_path / "kg.ttl"
    with pytest.raises(RuntimeError):
        with open_graph(path, batch_size=2) as writer:
            writer.add_all(corpus(5))
            raise RuntimeError("the extraction failed")
    assert not path.exists() and not list(tmp_path.iterdir())


# --- graph-query --------------------------------------------------------------------------------


def test_graph_query_cli(tmp_path):
    records = corpus()
    path = tmp_path / "kg.lbug"
    write_graph(records, path)
    write_graph(records, tmp_path / "kg.nt")
    runner = CliRunner()
    result = runner.invoke(app, [
        "graph-query", str(path),
        "MATCH (p:Entity)-[r:RELATION {label: 'Work_For'}]->(o:Entity) WHERE r.score >= $min "
        "RETURN p.text AS person, o.text AS org, r ORDER BY r.score DESC, r.doc_id LIMIT 3",
        "--param", "min:=0.8",
    ])  # fmt: skip
    assert result.exit_code == 0, result.stderr
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(rows) == 3 and list(rows[0]) == ["person", "org", "r"]
    assert rows[0]["r"]["_type"] == "RELATION" and rows[0]["r"]["score"] >= rows[2]["r"]["score"] >= 0.8
    result = runner.invoke(app, ["graph-query", str(path), "MATCH (e:Entity {key: $k}) RETURN e",
                                 "-p", "k=LOC:london"])  # fmt: skip
    assert json.loads(result.stdout) == {"e": {"_label": "Entity", "key": "LOC:london",
                                               "text": "London", "label": "LOC"}}  # fmt: skip
    # NAME=VALUE is a string, even when it looks like a number (document ids are strings).
    result = runner.invoke(app, ["graph-query", str(path), "MATCH (d:Document {id: $doc}) "
                                 "RETURN d.id AS id", "-p", "doc=12"])  # fmt: skip
    assert json.loads(result.stdout) == {"id": "12"}
    result = runner.invoke(app, ["graph-query", str(tmp_path / "kg.nt"), SPARQL_PREFIXES +
                                 "ASK { ?h rel:Live_In ?t }"])  # fmt: skip
    assert json.loads(result.stdout) == {"result": True}
    for args, problem in (
        ([str(tmp_path / "missing.lbug"), "MATCH (n) RETURN n"], "No such graph"),
        ([str(path), "MATCH (n RETURN n"], "The query failed"),
        ([str(path), "MATCH (n) RETURN n", "-p", "novalue"], "expected NAME=VALUE"),
        ([str(path), "MATCH (n) RETURN n", "-p", "x:=[1,"], "not JSON"),
    ):
        result = runner.invoke(app, ["graph-query", *args])
        assert result.exit_code == 1 and problem in result.stderr, result.stderr
        assert not result.stdout and "Traceback" not in result.stderr


def test_draw_graph(tmp_path):
    """docs/images/graph.png's drawing: an image of the chosen documents; no entity, an error."""
    pytest.importorskip("networkx")
    pytest.importorskip("matplotlib")
    from spacy_ie.graph.draw import draw_graph, read_subgraph

    path = tmp_path / "kg.lbug"
    write_graph(corpus(6), path)
    entities, mentions, relations = read_subgraph(path, ["1", "2"])
    assert {row["doc"] for row in mentions + relations} == {"1", "2"}
    assert len(relations) == len(corpus(6)[1]["relations"]) + len(corpus(6)[2]["relations"])
    png = draw_graph(path, tmp_path / "out" / "graph.png", doc_ids=["1", "2"], title="t")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ValueError, match="no entities"):
        draw_graph(path, tmp_path / "none.png", doc_ids=["404"])
