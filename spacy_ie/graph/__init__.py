"""Extracted entities and relations as a knowledge graph (docs/graph.md).

``spacy-ie extract MODEL INPUT --graph TARGET`` writes its records into an embedded LadybugDB
file (the default), Neo4j (``bolt://...``) or RDF (``.ttl`` / ``.nt``); ``spacy-ie graph-query
TARGET QUERY`` reads them back. In Python::

    from spacy_ie.graph import open_graph, query_graph
    with open_graph("kg.lbug") as graph:
        for record in records:                 # doc_to_record(...) dicts
            graph.add(record)
    columns, rows = query_graph("kg.lbug", "MATCH (e:Entity) RETURN e.text LIMIT 5")

Modules: `model` (the graph model, entity keys, the Cypher), `store` (LadybugDB), `neo4j`,
`rdf`, `writer` (batching), `graphrag` (a neo4j-graphrag entity-relation extractor).
The databases and drivers are optional: ``pip install "spacy-ie[graph]"``.
"""
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Tuple, Union

from .model import GraphBatch, document_id, entity_key, normalize_text
from .store import GraphDependencyError, GraphError
from .writer import (
    GraphWriter,
    GraphWriteSummary,
    open_graph,
    open_store,
    target_kind,
    write_graph,
)


def query_graph(
    target: Union[str, Path], query: str, parameters: Optional[Dict[str, Any]] = None
) -> Tuple[List[str], Iterator[Dict[str, Any]]]:
    """Run `query` on the graph `target`: Cypher on a LadybugDB file (opened read-only) or on
    Neo4j, SPARQL on a ``.ttl`` / ``.nt`` file (`parameters` unused). RETURNS: the column names
    and the rows as dicts of JSON-able values (the rows are read before the store closes).
    RAISES (GraphError): a missing graph or a failed query. (GraphDependencyError): a missing
    package of the ``graph`` extra."""
    kind = target_kind(target)
    if kind == "rdf":
        from .rdf import sparql_query

        columns, rows = sparql_query(target, query)
        return columns, iter(list(rows))
    store = open_store(target, read_only=True)
    try:
        columns, rows = store.query(query, parameters)
        return columns, iter(list(rows))
    finally:
        store.close()


__all__ = [
    "GraphBatch",
    "GraphDependencyError",
    "GraphError",
    "GraphWriteSummary",
    "GraphWriter",
    "document_id",
    "entity_key",
    "normalize_text",
    "open_graph",
    "open_store",
    "query_graph",
    "target_kind",
    "write_graph",
]
