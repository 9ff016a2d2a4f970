"""spacy_ie.graph.graphrag: the neo4j-graphrag entity-relation extractor backed by a spaCy
pipeline, with neo4j-graphrag installed (no Neo4j server: the extractor's output is checked, and
the extractor runs inside graphrag's own Pipeline)."""
import asyncio

import pytest
import spacy
from spacy.language import Language

pytest.importorskip("neo4j_graphrag")

from neo4j_graphrag.components.types import (  # noqa: E402
    DocumentInfo,
    Neo4jGraph,
    TextChunk,
    TextChunks,
)
from neo4j_graphrag.experimental.pipeline import Pipeline  # noqa: E402

from spacy_ie.graph.graphrag import OnError, SpacyIEExtractor, record_to_graph  # noqa: E402
from spacy_ie.relations import Relation, register_extensions  # noqa: E402

register_extensions()


@Language.component("test_graphrag_relations")
def first_works_for_second(doc):
    """Work_For(first PER, first ORG) with score 0.9, for the test pipeline; fails on "BOOM"."""
    if "BOOM" in doc.text:
        raise ValueError("cannot process BOOM")
    people = [e for e in doc.ents if e.label_ == "PER"]
    orgs = [e for e in doc.ents if e.label_ == "ORG"]
    doc._.relations = [Relation(people[0], orgs[0], "Work_For", 0.9)] if people and orgs else []
    return doc


@pytest.fixture(scope="module")
def nlp():
    nlp = spacy.blank("en")
    ruler = nlp.add_pipe("entity_ruler")
    ruler.add_patterns([
        {"label": "PER", "pattern": "Ada Lovelace"}, {"label": "PER", "pattern": "ada lovelace"},
        {"label": "ORG", "pattern": "Analytical Society"},
        {"label": "LOC", "pattern": "London"},
    ])  # fmt: skip
    nlp.add_pipe("test_graphrag_relations")
    return nlp


def chunks(*texts):
    return TextChunks(chunks=[TextChunk(text=t, index=i) for i, t in enumerate(texts)])


def test_record_to_graph():
    text = "Ada Lovelace met ada lovelace ."
    head = {"text": "Ada Lovelace", "label": "PER", "start": 0, "end": 12}
    other = {"text": "ada lovelace", "label": "PER", "start": 17, "end": 29}
    record = {"text": text, "entities": [head, other], "cats": {},
              "relations": [{"head": head, "tail": other, "label": "Same_As", "score": 0.4}]}  # fmt: skip
    graph = record_to_graph(record)
    assert [n.id for n in graph.nodes] == ["PER:ada lovelace"]  # one node per key
    assert graph.nodes[0].properties == {"name": "Ada Lovelace", "key": "PER:ada lovelace",
                                         "start": 0, "end": 12}  # fmt: skip
    assert graph.relationships[0].properties["tail_start"] == 17
    assert record_to_graph(record, min_score=0.5).relationships == []


def test_extractor_output(nlp):
    extractor = SpacyIEExtractor(nlp, create_lexical_graph=False)
    texts = ("Ada Lovelace joined the Analytical Society in London .", "Nothing here .")
    result = asyncio.run(extractor.run(chunks(*texts)))
    nodes = {n.properties["key"]: n for n in result.nodes}
    assert set(nodes) == {"PER:ada lovelace", "ORG:analytical society", "LOC:london"}
    assert nodes["PER:ada lovelace"].label == "PER"
    assert nodes["PER:ada lovelace"].properties["name"] == "Ada Lovelace"
    (rel,) = result.relationships
    assert rel.type == "Work_For" and rel.properties["score"] == pytest.approx(0.9)
    # Ids carry the chunk id as prefix (graphrag's update_ids), and relationships point at them.
    assert rel.start_node_id == nodes["PER:ada lovelace"].id
    assert rel.end_node_id == nodes["ORG:analytical society"].id
    assert rel.start_node_id.endswith(":PER:ada lovelace") and rel.start_node_id != "PER:ada lovelace"
    assert texts[0][rel.properties["head_start"]:rel.properties["head_end"]] == "Ada Lovelace"


def test_extractor_in_a_graphrag_pipeline_with_lexical_graph(nlp):
    """The extractor as a component of graphrag's Pipeline (its input and output types are
    checked by graphrag), with the lexical graph: Document and Chunk nodes, FROM_CHUNK
    relationships from each entity to its chunk."""
    pipe = Pipeline()
    pipe.add_component(SpacyIEExtractor(nlp), "extractor")
    data = {"extractor": {"chunks": chunks("Ada Lovelace joined the Analytical Society .",
                                           "ada lovelace lived in London ."),
                          "document_info": DocumentInfo(path="ada.txt")}}  # fmt: skip
    result = asyncio.run(pipe.run(data))
    graph = Neo4jGraph.model_validate(result.result["extractor"])  # the results are dumped
    labels = [n.label for n in graph.nodes]
    assert labels.count("Chunk") == 2 and labels.count("Document") == 1
    entities = [n for n in graph.nodes if n.label in ("PER", "ORG", "LOC")]
    # One PER node per chunk: graphrag resolves them afterwards (resolve_property="key").
    assert sorted(n.properties["key"] for n in entities) == [
        "LOC:london", "ORG:analytical society", "PER:ada lovelace", "PER:ada lovelace"]
    from_chunk = [r for r in graph.relationships if r.type == "FROM_CHUNK"]
    assert len(from_chunk) == len(entities)
    assert [r.type for r in graph.relationships].count("Work_For") == 1


def test_on_error(nlp):
    texts = ("Ada Lovelace joined the Analytical Society .", "BOOM", "London .")
    ignore = asyncio.run(SpacyIEExtractor(nlp, create_lexical_graph=False).run(chunks(*texts)))
    assert {n.properties["key"] for n in ignore.nodes} == {
        "PER:ada lovelace", "ORG:analytical society", "LOC:london"}
    with pytest.raises(ValueError, match="BOOM"):
        asyncio.run(SpacyIEExtractor(nlp, on_error=OnError.RAISE).run(chunks(*texts)))
