"""A neo4j-graphrag entity-relation extractor backed by a spacy-ie pipeline.

neo4j-graphrag builds knowledge graphs with a pipeline of components (loader -> splitter ->
chunk embedder -> **entity-relation extractor** -> pruning -> KG writer -> entity resolver); its
extractor, ``LLMEntityRelationExtractor``, prompts an LLM once per chunk. `SpacyIEExtractor`
implements the same interface (``EntityRelationExtractor.run(chunks, document_info,
lexical_graph_config, ...) -> Neo4jGraph``) with a trained spaCy pipeline instead: no LLM call,
no API key, deterministic output with a probability per relation.

Per chunk, each entity key (`spacy_ie.graph.model.entity_key`: the label and normalized text,
or a linker's kb_id) becomes one node, labelled with the entity label, with the properties
``name`` (the first mention's text: what graphrag's resolvers compare), ``key``, and
``start``/``end`` (the first mention's character offsets in the chunk). Each extracted relation
becomes a relationship of the relation label's type with ``score`` and the head and tail
offsets. As the LLM extractor does, node ids are prefixed with the chunk id
(``EntityRelationExtractor.update_ids``) and, unless ``create_lexical_graph=False``, the lexical
graph (Document and Chunk nodes, ``FROM_CHUNK`` relationships) is added. To merge the nodes of
one key across chunks, run graphrag's ``SinglePropertyExactMatchResolver`` with
``resolve_property="key"`` after the writer.

A ``schema`` passed to ``run`` is not used to extract (the pipeline predicts the labels it was
trained on); graphrag's ``GraphPruning`` component, placed after the extractor, applies it.
Source: neo4j-graphrag 1.22, ``neo4j_graphrag.components.entity_relation_extractor`` and the
user guide's "Entity and Relation Extractor" section (https://neo4j.com/docs/neo4j-graphrag-python/).
"""
import asyncio
import logging
from typing import Any, Dict, List, Optional, Union

from spacy.language import Language

from .model import key_function
from .store import import_optional

graphrag_extractor = import_optional(
    "neo4j_graphrag.components.entity_relation_extractor", "The neo4j-graphrag adapter"
)
graphrag_lexical = import_optional("neo4j_graphrag.components.lexical_graph", "The adapter")
graphrag_types = import_optional("neo4j_graphrag.components.types", "The adapter")
graphrag_schema = import_optional("neo4j_graphrag.components.schema", "The adapter")

EntityRelationExtractor = graphrag_extractor.EntityRelationExtractor
OnError = graphrag_extractor.OnError
LexicalGraphBuilder = graphrag_lexical.LexicalGraphBuilder
LexicalGraphConfig = graphrag_types.LexicalGraphConfig
Neo4jGraph = graphrag_types.Neo4jGraph
Neo4jNode = graphrag_types.Neo4jNode
Neo4jRelationship = graphrag_types.Neo4jRelationship
TextChunk = graphrag_types.TextChunk
TextChunks = graphrag_types.TextChunks
DocumentInfo = graphrag_types.DocumentInfo
GraphSchema = graphrag_schema.GraphSchema

logger = logging.getLogger(__name__)


def record_to_graph(record: Dict[str, Any], min_score: float = 0.0) -> Neo4jGraph:
    """The ``Neo4jGraph`` of one extraction record (`doc_to_record`'s dict), before the ids get
    their chunk prefix: a node per entity key, a relationship per relation whose score is at
    least `min_score`."""
    nodes: Dict[str, Any] = {}
    key_of = key_function(record)

    def node_id(span: Dict[str, Any]) -> str:
        key = key_of(span)
        if key not in nodes:
            nodes[key] = Neo4jNode(
                id=key,
                label=span["label"],
                properties={"name": span["text"], "key": key, "start": int(span["start"]),
                            "end": int(span["end"])},  # fmt: skip
            )
        return key

    for span in record["entities"]:
        node_id(span)
    relationships = []
    for rel in record["relations"]:
        if rel["score"] < min_score:
            continue
        head, tail = rel["head"], rel["tail"]
        relationships.append(
            Neo4jRelationship(
                start_node_id=node_id(head),
                end_node_id=node_id(tail),
                type=rel["label"],
                properties={"score": float(rel["score"]), "head_start": int(head["start"]),
                            "head_end": int(head["end"]), "tail_start": int(tail["start"]),
                            "tail_end": int(tail["end"])},  # fmt: skip
            )
        )
    return Neo4jGraph(nodes=list(nodes.values()), relationships=relationships)


class SpacyIEExtractor(EntityRelationExtractor):
    """neo4j-graphrag's ``EntityRelationExtractor`` with a spacy-ie pipeline (see the module
    docstring for the nodes and relationships it makes).

    nlp (Union[Language, str]): a loaded pipeline, or a path or package name to load with
        `spacy_ie.util.load_pipeline`. It should set ``doc.ents`` and ``doc._.relations``.
    create_lexical_graph (bool): add the Document and Chunk nodes and the entities' FROM_CHUNK
        relationships, as graphrag's extractors do.
    on_error (OnError): a chunk the pipeline fails on: ``OnError.RAISE`` re-raises,
        ``OnError.IGNORE`` (the default, as the base class) logs it and gives it an empty graph.
    batch_size (int): ``nlp.pipe`` batch size.
    min_score (float): drop relations scored below it (the pipeline's thresholds apply first).
    RAISES (GraphDependencyError): on import, without neo4j-graphrag.
    """

    def __init__(
        self,
        nlp: Union[Language, str],
        *,
        create_lexical_graph: bool = True,
        on_error: Any = OnError.IGNORE,
        batch_size: int = 64,
        min_score: float = 0.0,
    ) -> None:
        super().__init__(on_error=on_error, create_lexical_graph=create_lexical_graph)
        if not isinstance(nlp, Language):
            from ..util import load_pipeline

            nlp = load_pipeline(nlp)
        from ..records import entity_spans_key

        self.nlp = nlp
        self.spans_key = entity_spans_key(nlp)
        self.batch_size = batch_size
        self.min_score = min_score

    def extract(self, texts: List[str]) -> List[Neo4jGraph]:
        """The ``Neo4jGraph`` of each text, ids not prefixed (the synchronous core of `run`).
        A text the pipeline fails on gives an empty graph with ``OnError.IGNORE``.
        RAISES: the pipeline's error with ``OnError.RAISE``."""
        from ..records import doc_to_record

        try:
            docs = list(self.nlp.pipe(texts, batch_size=self.batch_size))
        except Exception:  # noqa: BLE001 - one bad text: retry one by one to find it
            docs = []
            for index, text in enumerate(texts):
                try:
                    docs.append(self.nlp(text))
                except Exception as err:  # noqa: BLE001
                    if self.on_error == OnError.RAISE:
                        raise
                    logger.error("spacy-ie failed on chunk %d: %s: %s", index,
                                 type(err).__name__, err)  # fmt: skip
                    docs.append(None)
        return [
            Neo4jGraph()
            if doc is None
            else record_to_graph(doc_to_record(doc, spans_key=self.spans_key), self.min_score)
            for doc in docs
        ]

    async def run(  # type: ignore[override]
        self,
        chunks: TextChunks,
        document_info: Optional[DocumentInfo] = None,
        lexical_graph_config: Optional[LexicalGraphConfig] = None,
        schema: Optional[GraphSchema] = None,
        examples: str = "",
        **kwargs: Any,
    ) -> Neo4jGraph:
        """Extract entities and relations from every chunk of `chunks` (``TextChunks``) and
        return them as one ``Neo4jGraph`` (with the lexical graph unless
        ``create_lexical_graph=False``). The pipeline runs in a worker thread (``nlp.pipe`` is
        CPU-bound and would block the event loop). `schema` and `examples` are accepted for
        the interface and not used (see the module docstring).
        """
        lexical_graph_builder = None
        lexical_graph = None
        if self.create_lexical_graph:
            config = lexical_graph_config or LexicalGraphConfig()
            lexical_graph_builder = LexicalGraphBuilder(config=config)
            lexical_result = await lexical_graph_builder.run(
                text_chunks=chunks, document_info=document_info
            )
            lexical_graph = lexical_result.graph
        elif lexical_graph_config:
            lexical_graph_builder = LexicalGraphBuilder(config=lexical_graph_config)
        chunk_list = list(chunks.chunks)
        graphs = await asyncio.to_thread(self.extract, [chunk.text for chunk in chunk_list])
        for chunk, chunk_graph in zip(chunk_list, graphs):
            self.update_ids(chunk_graph, chunk)
            if lexical_graph_builder is not None:
                await lexical_graph_builder.process_chunk_extracted_entities(chunk_graph, chunk)
        graph = lexical_graph.model_copy(deep=True) if lexical_graph else Neo4jGraph()
        for chunk_graph in graphs:
            graph.nodes.extend(chunk_graph.nodes)
            graph.relationships.extend(chunk_graph.relationships)
        return graph
