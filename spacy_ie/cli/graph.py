"""`spacy-ie graph-query`: run a query on a graph written by ``extract --graph`` and print the
rows as JSON lines (`spacy_ie.graph`)."""
import json
import os
import sys
from typing import Annotated, Any, Dict, List, Optional, Tuple

import typer

from ..graph import (
    GraphDependencyError,
    GraphError,
    GraphWriter,
    GraphWriteSummary,
    open_graph,
    open_store,
    target_kind,
)
from ._app import app, fail

# What a failed graph write leaves, for the failure messages of `extract --graph`.
GRAPH_KEPT = ("the graph keeps the batches committed so far; re-running the same input adds "
              "only what is missing")  # fmt: skip


def open_graph_or_fail(target: str) -> GraphWriter:
    """`open_graph(target)` for ``extract --graph``, or exit with code 1 and a message."""
    try:
        return open_graph(target)
    except (GraphError, GraphDependencyError) as err:
        fail(f"Cannot open the graph {target}", str(err))


def graph_report(target: str, summary: GraphWriteSummary) -> Tuple[str, str]:
    """The title and text of ``extract --graph``'s closing message."""
    skipped = f", {summary.n_skipped} already there" if summary.n_skipped else ""
    errors = f", {summary.n_errors} error records left out" if summary.n_errors else ""
    title = (f"Graph {target}: {summary.n_documents} documents, {summary.n_mentions} mentions, "
             f"{summary.n_relations} relations written{skipped}{errors}")  # fmt: skip
    return title, f"{summary.seconds:.1f}s in {summary.n_batches} transactions"


def parse_params(params: List[str]) -> Dict[str, Any]:
    """Query parameters as HTTPie writes request fields: ``NAME=VALUE`` gives the string VALUE
    (``doc=42`` is the string "42", as document ids are), ``NAME:=JSON`` a JSON value
    (``min:=0.9``, ``keys:='["a", "b"]'``, ``flag:=true``).
    RAISES (ValueError): an item without "=", an empty name, or ``:=`` with invalid JSON."""
    parsed: Dict[str, Any] = {}
    for item in params:
        name, separator, value = item.partition("=")
        as_json = name.endswith(":")
        name = name[:-1] if as_json else name
        if not separator or not name.strip():
            raise ValueError(f"--param {item!r}: expected NAME=VALUE or NAME:=JSON")
        if as_json:
            try:
                parsed[name.strip()] = json.loads(value)
            except ValueError as err:
                raise ValueError(f"--param {item!r}: not JSON after ':=': {err}") from err
        else:
            parsed[name.strip()] = value
    return parsed


@app.command("graph-query")
def graph_query_cli(
    graph: Annotated[
        str,
        typer.Argument(
            metavar="GRAPH",
            help="A LadybugDB file, a Neo4j URI (bolt://..., neo4j://...; credentials from "
            "NEO4J_USERNAME / NEO4J_PASSWORD) or an RDF file (.ttl, .nt).",
            show_default=False,
        ),
    ],
    query: Annotated[
        str,
        typer.Argument(
            metavar="QUERY", help="Cypher; SPARQL for an RDF file.", show_default=False
        ),
    ],
    params: Annotated[
        Optional[List[str]],
        typer.Option(
            "--param",
            "-p",
            help="A query parameter ($NAME in Cypher): NAME=VALUE for a string, NAME:=JSON "
            "for a number, list, boolean... (min:=0.9). Repeatable.",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Run QUERY on GRAPH and print one JSON object per row (keys in the query's column
    order) on stdout.

    Nodes print as {"_label": ..., properties}, relationships as {"_type": ..., properties}.
    A LadybugDB file is opened read-only (a graph being written by another process cannot be
    opened). Examples in docs/graph.md.
    """
    try:
        parameters = parse_params(params or [])
    except ValueError as err:
        fail(str(err))
    kind = target_kind(graph)
    if kind == "ladybug" and not os.path.exists(graph):
        fail(f"No such graph: {graph}")
    if kind == "rdf" and parameters:
        fail("--param is for Cypher; write the values into the SPARQL query")
    store = None
    try:
        if kind == "rdf":
            from ..graph.rdf import sparql_query

            columns, rows = sparql_query(graph, query)
        else:
            store = open_store(graph, read_only=True)
            columns, rows = store.query(query, parameters)
        for row in rows:
            sys.stdout.write(json.dumps({c: row.get(c) for c in columns}, ensure_ascii=False))
            sys.stdout.write("\n")
    except (GraphError, GraphDependencyError) as err:
        fail("The query failed", str(err))
    except BrokenPipeError:  # the reader went away (e.g. `| head`)
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    finally:
        if store is not None:
            store.close()
