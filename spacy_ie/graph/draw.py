"""A picture of a small graph written by ``extract --graph`` (docs/images/graph.png), drawn with
networkx's layouts and matplotlib.

    python -m spacy_ie.graph.draw kg.lbug graph.png [--doc ID ...] [--title TEXT]

Entities are circles coloured by entity label, with their text; documents grey squares with
their id; each RELATION edge an arrow labelled with its relation label and score (several
edges between two entities are drawn as arcs of different curvature); MENTIONED_IN edges thin
grey lines. Meant for tens of nodes: a whole graph is better explored with a graph tool.
Needs matplotlib and networkx (``pip install "spacy-ie[graph,plots]"``).
"""
import math
from collections import Counter
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import typer

from . import query_graph
from .store import import_optional

NODE_SIZE = 420
# Colours for the entity labels, in order of first appearance (matplotlib's tab10 without grey).
PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
           "#bcbd22", "#17becf")  # fmt: skip


def read_subgraph(
    target: Union[str, Path], doc_ids: Optional[Sequence[str]] = None
) -> Tuple[List[Dict], List[Dict], List[Dict]]:
    """(entities, mentions, relations) of the documents `doc_ids` (all when None) of a Cypher
    graph, as rows: entities ``{"key", "text", "label"}``, mentions ``{"key", "doc"}``,
    relations ``{"head", "tail", "label", "score", "doc"}``."""
    where = "WHERE d.id IN $docs " if doc_ids is not None else ""
    params = {"docs": list(doc_ids)} if doc_ids is not None else {}
    _, mentions = query_graph(target, "MATCH (e:Entity)-[:MENTIONED_IN]->(d:Document) " + where +
                              "RETURN e.key AS key, e.text AS text, e.label AS label, "
                              "d.id AS doc", params)  # fmt: skip
    mentions = list(mentions)
    where = "WHERE r.doc_id IN $docs " if doc_ids is not None else ""
    _, relations = query_graph(target, "MATCH (h:Entity)-[r:RELATION]->(t:Entity) " + where +
                               "RETURN h.key AS head, t.key AS tail, r.label AS label, "
                               "r.score AS score, r.doc_id AS doc", params)  # fmt: skip
    entities = {row["key"]: {k: row[k] for k in ("key", "text", "label")} for row in mentions}
    return list(entities.values()), mentions, list(relations)


def component_layout(nx: Any, graph: Any) -> Dict[Any, Tuple[float, float]]:
    """Node positions: each connected component laid out alone (Kamada-Kawai, scaled with the
    square root of its size; a layout of the whole graph pushes the components apart), the
    components placed left to right in rows, largest first."""
    components = sorted(nx.connected_components(graph), key=lambda c: (-len(c), sorted(map(str, c))))
    columns = max(1, math.ceil(math.sqrt(len(components))))
    layout: Dict[Any, Tuple[float, float]] = {}
    x = y = row_height = 0.0
    for i, nodes in enumerate(components):
        if i and i % columns == 0:
            x, y, row_height = 0.0, y - row_height - 0.6, 0.0
        size = 0.5 + 0.6 * math.sqrt(len(nodes))
        sub = graph.subgraph(nodes)
        positions = nx.circular_layout(sub, scale=size)
        if len(nodes) > 2:
            positions = nx.kamada_kawai_layout(sub, pos=positions, scale=size)
        for node, (px, py) in positions.items():
            layout[node] = (x + size + px, y - size + py)
        x += 2 * size + 0.6
        row_height = max(row_height, 2 * size)
    return layout


def draw_graph(
    target: Union[str, Path],
    output: Union[str, Path],
    *,
    doc_ids: Optional[Sequence[str]] = None,
    title: Optional[str] = None,
) -> Path:
    """Draw the documents `doc_ids` (all when None) of the graph `target` into the image
    `output` (PNG, SVG or PDF, by extension; 150 dpi). RETURNS: the output path.
    RAISES (GraphDependencyError): without matplotlib or networkx. (GraphError): as
    `query_graph`. (ValueError): a graph with no entity among those documents."""
    nx = import_optional("networkx", "Drawing a graph")
    import_optional("matplotlib", "Drawing a graph")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    entities, mentions, relations = read_subgraph(target, doc_ids)
    if not entities:
        raise ValueError(f"{target}: no entities in documents {list(doc_ids or [])}")
    graph = nx.MultiDiGraph()
    docs = sorted({row["doc"] for row in mentions})
    for doc in docs:
        graph.add_node(("doc", doc))
    for entity in entities:
        graph.add_node(("entity", entity["key"]))
    for row in mentions:
        graph.add_edge(("entity", row["key"]), ("doc", row["doc"]), kind="mention")
    for row in relations:
        graph.add_edge(("entity", row["head"]), ("entity", row["tail"]), kind="relation")
    layout = component_layout(nx, nx.Graph(graph))

    labels = sorted({e["label"] for e in entities})
    colors = {label: PALETTE[i % len(PALETTE)] for i, label in enumerate(labels)}
    fig, ax = plt.subplots(figsize=(13, 9))
    mention_edges = [(u, v) for u, v, d in graph.edges(data=True) if d["kind"] == "mention"]
    nx.draw_networkx_edges(graph, layout, edgelist=mention_edges, ax=ax, edge_color="#cccccc",
                           width=0.8, arrows=False, style="dashed")  # fmt: skip
    seen: Counter = Counter()
    for row in relations:
        u, v = ("entity", row["head"]), ("entity", row["tail"])
        pair = tuple(sorted([u, v]))
        rad = 0.15 + 0.2 * seen[pair]
        seen[pair] += 1
        nx.draw_networkx_edges(graph, layout, edgelist=[(u, v)], ax=ax, edge_color="#444444",
                               width=1.6, arrows=True, arrowsize=16, node_size=NODE_SIZE,
                               connectionstyle=f"arc3,rad={rad}")  # fmt: skip
        (x1, y1), (x2, y2) = layout[u], layout[v]
        mx, my = (x1 + x2) / 2, (y1 + y2) / 2
        ox, oy = -(y2 - y1) * rad / 2, (x2 - x1) * rad / 2
        ax.text(mx + ox, my + oy, f"{row['label']} {row['score']:.2f}", fontsize=8,
                ha="center", va="center", color="#222222",
                bbox={"boxstyle": "round,pad=0.2", "fc": "white", "ec": "none", "alpha": 0.85})  # fmt: skip
    nx.draw_networkx_nodes(graph, layout, nodelist=[("doc", d) for d in docs], ax=ax,
                           node_shape="s", node_color="#e0e0e0", node_size=450)  # fmt: skip
    nx.draw_networkx_labels(graph, layout, labels={("doc", d): f"doc {d}" for d in docs}, ax=ax,
                            font_size=8, font_color="#555555")  # fmt: skip
    for entity in entities:
        node = ("entity", entity["key"])
        nx.draw_networkx_nodes(graph, layout, nodelist=[node], ax=ax, node_size=NODE_SIZE,
                               node_color=colors[entity["label"]], alpha=0.9)  # fmt: skip
        x, y = layout[node]
        text = entity["text"] if len(entity["text"]) <= 28 else entity["text"][:26] + "…"
        ax.annotate(text, (x, y), xytext=(0, -16), textcoords="offset points", fontsize=9,
                    ha="center", va="top", color="#111111")  # fmt: skip
    handles = [Line2D([], [], marker="o", ls="", ms=10, color=colors[label], label=label)
               for label in labels]  # fmt: skip
    handles.append(Line2D([], [], marker="s", ls="", ms=10, color="#e0e0e0", label="Document"))
    handles.append(Line2D([], [], ls="--", color="#cccccc", label="MENTIONED_IN"))
    handles.append(Line2D([], [], color="#444444", label="RELATION (label, score)"))
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8,
              frameon=False)  # fmt: skip
    if title:
        ax.set_title(title, fontsize=11)
    ax.axis("off")
    ax.margins(0.08)
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(output, dpi=150, bbox_inches="tight")
    plt.close(fig)
    return output


def main(
    graph: str = typer.Argument(..., help="A LadybugDB file or a Neo4j URI"),
    output: Path = typer.Argument(..., help="The image to write (.png, .svg, .pdf)"),
    doc: Optional[List[str]] = typer.Option(None, "--doc", help="A document id to draw (repeat; default: all)"),
    title: Optional[str] = typer.Option(None, "--title", help="A title above the graph"),
) -> None:
    """Draw a small graph written by extract --graph."""
    print(draw_graph(graph, output, doc_ids=doc or None, title=title))


if __name__ == "__main__":
    typer.run(main)
