"""The graph model: what an extraction record becomes in a graph, and the Cypher that writes it.

One model for every store (the embedded LadybugDB store, Neo4j, RDF)::

    (:Document {id, text})
    (:Entity {key, text, label})
    (:Entity)-[:MENTIONED_IN {start, end}]->(:Document)
    (:Entity)-[:RELATION {label, score, doc_id, head_start, head_end, tail_start, tail_end}]->(:Entity)

- A **Document** is one input document. Its ``id`` is the input's own id when it has one (an
  ``"id"`` field of a JSONL object or Parquet row, under the record's ``"meta"``), else its
  position in the input from 0 (the ``"id"`` of ``extract --engine ray`` records, the line
  number from 0 of the local engine): see `document_id`. Ids are strings.
- An **Entity** is one node per `entity_key`: the mentions that share a key are one node.
  ``text`` and ``label`` are those of the first mention written.
- **MENTIONED_IN**: one edge per mention (an entity of ``doc.ents``, or a relation argument
  outside them), with the mention's character offsets into the document's text.
- **RELATION**: one edge per extracted relation. Its provenance (document, head and tail
  offsets, label) is unique among the edges, so the graph holds exactly as many RELATION
  edges as the records hold relations (for the documents written).

Entity keys (`entity_key`): the span's ``kb_id`` (``Span.kb_id_``, set by spaCy's
``entity_linker``) when a linker set one, as ``"kb:" + kb_id`` (a relation argument takes the
kb_id of the entity at its offsets: `key_function`); otherwise the entity label
and the normalized text, ``label + ":" + normalize_text(text)``. `normalize_text` is Unicode
NFKC, then case folding (``str.casefold``), then every run of whitespace as one space, with
none at either end: "Ada  Lovelace" and "ADA LOVELACE" are one ``PER:ada lovelace`` node;
"Lovelace" and "Ada Lovelace" are two (no coreference or alias resolution: an entity linker
is the tool for that).

Writes (`GraphBatch`): a batch of documents is one transaction. Entities are ``MERGE``d on
their key; a document's node and all its edges are created in the transaction that adds the
document, and only when the document is not in the graph yet: a document already there is
skipped whole. As every edge carries its document id, this is ``MERGE`` on each edge's full
provenance, done per document: a re-run of the same input adds nothing, and a run killed
midway keeps every committed batch (whole documents) and resumes where it stopped. (Per-edge
``MERGE`` costs a scan of the relationship table per batch in LadybugDB, whose planner does
not use an index for it: in a one-off comparison on 50,000 synthetic documents, 2,100
relations/s against 6,000 for this scheme, and slowing as the graph grows.)

The Cypher statements are the same for every Cypher store: a store feeds each statement
``*_BODY`` its rows as variables named after the columns of `COLUMNS` (LadybugDB:
``LOAD FROM $rows <body>`` over an Arrow table; Neo4j: ``UNWIND $rows AS row WITH row.c AS c,
... <body>``, see `unwind_statement`).
"""
import unicodedata
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Iterable, List, Set, Tuple

# --- keys ---------------------------------------------------------------------------------------

KB_PREFIX = "kb:"


def normalize_text(text: str) -> str:
    """The normalized form of an entity's text used in its key: Unicode NFKC normalization
    (compatibility characters folded: full-width letters, ligatures, non-breaking spaces), then
    ``str.casefold`` (Unicode case folding, stronger than ``lower``: "Straße" -> "strasse"),
    then whitespace runs collapsed to one space and stripped at both ends.
    Source: Unicode Standard Annex #15 (normalization forms), Unicode 3.13 (default case
    folding), as implemented by Python's ``unicodedata`` and ``str.casefold``.
    """
    return " ".join(unicodedata.normalize("NFKC", text).casefold().split())


def entity_key(span: Dict[str, Any]) -> str:
    """The key of the Entity node for one span record (``{"text", "label", "start", "end",
    "kb_id"?}`` as `doc_to_record` writes it): ``"kb:" + kb_id`` when the span has a non-empty
    ``kb_id`` (an entity linker's answer; taken as it is, not normalized), else ``label + ":" +
    normalize_text(text)``. RAISES (KeyError): a span without "text" or "label"."""
    kb_id = span.get("kb_id")
    if kb_id:
        return KB_PREFIX + str(kb_id)
    return f"{span['label']}:{normalize_text(span['text'])}"


def key_function(record: Dict[str, Any]) -> Callable[[Dict[str, Any]], str]:
    """`entity_key` for the spans of one record, where a relation argument without a kb_id
    takes the kb_id of the entity with its offsets and label (``doc._.relations`` keeps
    offsets and labels, not kb_ids, so a linked entity and the same span as a relation
    argument get one key)."""
    linked = {(s["start"], s["end"], s["label"]): s["kb_id"]
              for s in record["entities"] if s.get("kb_id")}  # fmt: skip
    if not linked:
        return entity_key

    def key(span: Dict[str, Any]) -> str:
        if not span.get("kb_id"):
            kb_id = linked.get((span["start"], span["end"], span["label"]))
            if kb_id:
                return KB_PREFIX + str(kb_id)
        return entity_key(span)

    return key


def document_id(record: Dict[str, Any], position: int) -> str:
    """The Document id of an extraction record: the input's own ``"id"`` (a JSONL object's or
    Parquet row's ``"id"`` field, which the record keeps under ``"meta"``), else the record's
    ``"id"`` (its position in the input, as ``extract --engine ray`` writes it), else
    `position` (the record's position in the input, from 0). Always a string."""
    meta = record.get("meta")
    if isinstance(meta, dict) and meta.get("id") is not None:
        return str(meta["id"])
    if record.get("id") is not None:
        return str(record["id"])
    return str(position)


# --- rows ---------------------------------------------------------------------------------------

# The columns of each kind of row, in order: the variables the statement bodies read.
COLUMNS: Dict[str, Tuple[str, ...]] = {
    "documents": ("id", "text"),
    "entities": ("key", "text", "label"),
    "mentions": ("key", "doc_id", "start_char", "end_char"),
    "relations": ("head", "tail", "label", "score", "doc_id", "head_start", "head_end",
                  "tail_start", "tail_end"),  # fmt: skip
}


@dataclass
class GraphBatch:
    """The rows that a batch of records adds to the graph, as plain dicts with the `COLUMNS`.

    documents: ``{"id", "text"}`` per document. entities: ``{"key", "text", "label"}``, one per
    key (its first mention in the batch). mentions: ``{"key", "doc_id", "start_char",
    "end_char"}``, one per distinct mention of a document. relations: ``{"head", "tail" (entity
    keys), "label", "score", "doc_id", "head_start", "head_end", "tail_start", "tail_end"}``,
    one per distinct extracted relation of a document.
    """

    documents: List[Dict[str, Any]] = field(default_factory=list)
    entities: List[Dict[str, Any]] = field(default_factory=list)
    mentions: List[Dict[str, Any]] = field(default_factory=list)
    relations: List[Dict[str, Any]] = field(default_factory=list)
    _entity_keys: Set[str] = field(default_factory=set, repr=False)
    _doc_ids: Set[str] = field(default_factory=set, repr=False)

    def __len__(self) -> int:
        return len(self.documents)

    def add_record(self, record: Dict[str, Any], doc_id: str) -> bool:
        """Add one record's rows under `doc_id`. A record with an ``"error"`` (a text that
        could not be processed, as ``extract --engine ray`` writes it) and a second record
        with an id already in the batch add nothing. RETURNS (bool): whether it was added.
        RAISES (KeyError): a record without "entities" or "relations", or a span without
        "text", "label", "start" or "end"."""
        if record.get("error") is not None or doc_id in self._doc_ids:
            return False
        self._doc_ids.add(doc_id)
        self.documents.append({"id": doc_id, "text": record.get("text")})
        mentions: Set[Tuple[str, int, int]] = set()

        key_of = key_function(record)

        def add_span(span: Dict[str, Any]) -> str:
            key = key_of(span)
            if key not in self._entity_keys:
                self._entity_keys.add(key)
                self.entities.append({"key": key, "text": span["text"], "label": span["label"]})
            mention = (key, int(span["start"]), int(span["end"]))
            if mention not in mentions:
                mentions.add(mention)
                self.mentions.append(
                    {"key": key, "doc_id": doc_id, "start_char": mention[1],
                     "end_char": mention[2]}
                )  # fmt: skip
            return key

        for span in record["entities"]:
            add_span(span)
        relations: Set[Tuple[Any, ...]] = set()
        for rel in record["relations"]:
            head, tail = rel["head"], rel["tail"]
            row = {
                "head": add_span(head),
                "tail": add_span(tail),
                "label": rel["label"],
                "score": float(rel["score"]),
                "doc_id": doc_id,
                "head_start": int(head["start"]),
                "head_end": int(head["end"]),
                "tail_start": int(tail["start"]),
                "tail_end": int(tail["end"]),
            }
            identity = (row["head"], row["tail"], row["label"], row["head_start"],
                        row["head_end"], row["tail_start"], row["tail_end"])  # fmt: skip
            if identity not in relations:
                relations.add(identity)
                self.relations.append(row)
        return True

    def without_documents(self, doc_ids: Iterable[str]) -> "GraphBatch":
        """This batch less the documents `doc_ids` and their mentions and relations (entities
        are kept: they are merged). Used to skip the documents already in the graph."""
        skip = set(doc_ids)
        if not skip:
            return self
        return GraphBatch(
            documents=[row for row in self.documents if row["id"] not in skip],
            entities=self.entities,
            mentions=[row for row in self.mentions if row["doc_id"] not in skip],
            relations=[row for row in self.relations if row["doc_id"] not in skip],
        )

    def rows(self, kind: str) -> List[Dict[str, Any]]:
        """The rows of one kind: "documents", "entities", "mentions" or "relations"."""
        return getattr(self, kind)


# --- Cypher -------------------------------------------------------------------------------------

# Statement bodies, shared by every Cypher store; their variables are the `COLUMNS` of a kind.
# Separate MATCH clauses (not "MATCH (a), (b)"): LadybugDB plans each as a primary-key lookup,
# the comma form as a cross product of the two node tables.
EXISTING_DOCUMENTS_BODY = "MATCH (d:Document {id: id}) RETURN d.id AS id"
WRITE_BODIES: Tuple[Tuple[str, str], ...] = (
    ("documents", "CREATE (:Document {id: id, text: text})"),
    ("entities", "MERGE (e:Entity {key: key}) ON CREATE SET e.text = text, e.label = label"),
    (
        "mentions",
        "MATCH (e:Entity {key: key}) MATCH (d:Document {id: doc_id}) "
        "CREATE (e)-[:MENTIONED_IN {start: start_char, `end`: end_char}]->(d)",
    ),
    (
        "relations",
        "MATCH (h:Entity {key: head}) MATCH (t:Entity {key: tail}) "
        "CREATE (h)-[:RELATION {label: label, score: score, doc_id: doc_id, "
        "head_start: head_start, head_end: head_end, tail_start: tail_start, "
        "tail_end: tail_end}]->(t)",
    ),
)


def unwind_statement(columns: Iterable[str], body: str, parameter: str = "rows") -> str:
    """The statement that runs `body` once per row of the list parameter `parameter` (a list
    of maps), binding each column to a variable: ``UNWIND $rows AS row WITH row.a AS a, ...
    <body>``. Standard Cypher (Neo4j; openCypher)."""
    bindings = ", ".join(f"row.{column} AS {column}" for column in columns)
    return f"UNWIND ${parameter} AS row WITH {bindings} {body}"


# LadybugDB schema (its Cypher dialect declares tables; primary keys are hash-indexed).
LADYBUG_SCHEMA: Tuple[str, ...] = (
    "CREATE NODE TABLE IF NOT EXISTS Document(id STRING, text STRING, PRIMARY KEY(id))",
    "CREATE NODE TABLE IF NOT EXISTS Entity(key STRING, text STRING, label STRING, "
    "PRIMARY KEY(key))",
    "CREATE REL TABLE IF NOT EXISTS MENTIONED_IN(FROM Entity TO Document, start INT64, "
    "`end` INT64)",
    "CREATE REL TABLE IF NOT EXISTS RELATION(FROM Entity TO Entity, label STRING, score DOUBLE, "
    "doc_id STRING, head_start INT64, head_end INT64, tail_start INT64, tail_end INT64)",
)

# Neo4j schema: uniqueness constraints (each backed by an index) on the node keys, and an index
# on the relations' document id (relations by source document).
NEO4J_SCHEMA: Tuple[str, ...] = (
    "CREATE CONSTRAINT spacy_ie_document_id IF NOT EXISTS "
    "FOR (d:Document) REQUIRE d.id IS UNIQUE",
    "CREATE CONSTRAINT spacy_ie_entity_key IF NOT EXISTS FOR (e:Entity) REQUIRE e.key IS UNIQUE",
    "CREATE INDEX spacy_ie_relation_doc_id IF NOT EXISTS FOR ()-[r:RELATION]-() ON (r.doc_id)",
)


@dataclass
class WriteResult:
    """What one batch's transaction did: documents written, and documents skipped because they
    were already in the graph (with their mentions and relations)."""

    n_documents: int = 0
    n_skipped: int = 0
    n_mentions: int = 0
    n_relations: int = 0


def filter_new(batch: GraphBatch, existing: Iterable[str]) -> Tuple[GraphBatch, WriteResult]:
    """`batch` less the documents of `existing` (ids already in the graph), and the counts it
    will write."""
    existing = set(existing)
    new = batch.without_documents(existing)
    result = WriteResult(
        n_documents=len(new.documents),
        n_skipped=len(batch.documents) - len(new.documents),
        n_mentions=len(new.mentions),
        n_relations=len(new.relations),
    )
    return new, result

