"""The graph model as RDF (Turtle or N-Triples), for SPARQL users, written with pyoxigraph.

Vocabulary (prefixes as the Turtle output declares them; every IRI is a URN, ``urn:spacy-ie:``,
which names without pretending to resolve)::

    @prefix sie: <urn:spacy-ie:vocab#> .          classes and properties
    @prefix rel: <urn:spacy-ie:relation#> .       one predicate per relation label
    @prefix doc: <urn:spacy-ie:document:> .       documents, by id
    @prefix ent: <urn:spacy-ie:entity:> .         entities, by key
    @prefix men: <urn:spacy-ie:mention:> .        mentions, by document, offsets and key
    @prefix stm: <urn:spacy-ie:statement:> .      extracted relations, by their provenance

    doc:0 a sie:Document ; sie:id "0" ; sie:text "Ada Lovelace worked with ..." .
    ent:PER%3Aada%20lovelace a sie:Entity ; sie:key "PER:ada lovelace" ; sie:label "PER" ;
        rdfs:label "Ada Lovelace" ; sie:mentionedIn doc:0 .
    men:0/0-12/PER%3Aada%20lovelace a sie:Mention ; sie:entity ent:PER%3Aada%20lovelace ;
        sie:document doc:0 ; sie:start 0 ; sie:end 12 .
    ent:PER%3Aada%20lovelace rel:Work_For ent:ORG%3A... .            the fact, for plain SPARQL
    stm:0/PER%3Aada%20lovelace/0-12/ORG%3A.../25-40/Work_For          its provenance (RDF reification)
        a sie:Relation, rdf:Statement ; rdf:subject ent:... ; rdf:predicate rel:Work_For ;
        rdf:object ent:... ; sie:label "Work_For" ; sie:score 0.93 ; sie:document doc:0 ;
        sie:headStart 0 ; sie:headEnd 12 ; sie:tailStart 25 ; sie:tailEnd 40 .

Ids, keys and labels are percent-encoded (RFC 3986) in IRIs. Offsets are ``xsd:integer``, scores
``xsd:double``. One ``sie:Relation`` per extracted relation (as RELATION edges in the property
graph), one ``sie:Mention`` per MENTIONED_IN edge.
Sources: RDF 1.1 Concepts (reification: RDF Schema 1.1, section 5.3, ``rdf:Statement``),
pyoxigraph's streaming ``serialize`` (https://pyoxigraph.readthedocs.io).

The file appears only once everything is written: triples go to a temporary N-Triples file
beside it, batch by batch (constant memory, less the entity keys seen), which becomes the
output (``.nt``) or is converted to Turtle in a streaming pass (``.ttl``).
"""
import os
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Set, Tuple, Union
from urllib.parse import quote

from .model import GraphBatch, WriteResult, filter_new
from .store import GraphError, import_optional, to_json_value

RDF_SUFFIXES = (".ttl", ".nt")
BASE = "urn:spacy-ie:"
PREFIXES: Dict[str, str] = {
    "sie": BASE + "vocab#",
    "rel": BASE + "relation#",
    "doc": BASE + "document:",
    "ent": BASE + "entity:",
    "men": BASE + "mention:",
    "stm": BASE + "statement:",
    "rdf": "http://www.w3.org/1999/02/22-rdf-syntax-ns#",
    "rdfs": "http://www.w3.org/2000/01/rdf-schema#",
    "xsd": "http://www.w3.org/2001/XMLSchema#",
}


def _pct(text: str) -> str:
    return quote(str(text), safe="")


def document_iri(doc_id: str) -> str:
    """The IRI of a document: ``urn:spacy-ie:document:`` + the percent-encoded id."""
    return PREFIXES["doc"] + _pct(doc_id)


def entity_iri(key: str) -> str:
    """The IRI of an entity: ``urn:spacy-ie:entity:`` + the percent-encoded key."""
    return PREFIXES["ent"] + _pct(key)


def relation_predicate(label: str) -> str:
    """The predicate of a relation label: ``urn:spacy-ie:relation#`` + the encoded label."""
    return PREFIXES["rel"] + _pct(label)


class RDFWriter:
    """Writes `GraphBatch` es as RDF into `path` (``.ttl`` Turtle or ``.nt`` N-Triples), with the
    vocabulary of the module docstring. Same interface as the Cypher stores (`write`,
    `close`), plus `abort`. A document id written once is skipped afterwards (as a store
    skips the documents it holds); an entity's triples are written once.

    RAISES (GraphDependencyError): without pyoxigraph. (GraphError): another extension, or a
        path that is a directory.
    """

    def __init__(self, path: Union[str, Path]) -> None:
        self.ox = import_optional("pyoxigraph", "RDF output")
        self.path = Path(path)
        if self.path.suffix.lower() not in RDF_SUFFIXES:
            raise GraphError(f"{self.path}: RDF output is .ttl (Turtle) or .nt (N-Triples)")
        if self.path.is_dir():
            raise GraphError(f"{self.path} is a directory; give a file name")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.nt.part")
        self.file: Optional[Any] = self.tmp.open("wb")
        self.doc_ids: Set[str] = set()
        self.entity_keys: Set[str] = set()
        ox = self.ox
        self._iri: Dict[str, Any] = {}
        self.a = ox.NamedNode(PREFIXES["rdf"] + "type")
        self.rdfs_label = ox.NamedNode(PREFIXES["rdfs"] + "label")

    def _node(self, iri: str) -> Any:
        node = self._iri.get(iri)
        if node is None:
            node = self._iri[iri] = self.ox.NamedNode(iri)
        return node

    def _term(self, name: str) -> Any:
        prefix, local = name.split(":", 1)
        return self._node(PREFIXES[prefix] + local)

    def triples(self, batch: GraphBatch) -> Iterator[Any]:
        """The triples of `batch` (all of it; `write` drops what was written before)."""
        ox, T, t = self.ox, self.ox.Triple, self._term
        lit = ox.Literal
        for row in batch.documents:
            d = self._node(document_iri(row["id"]))
            yield T(d, self.a, t("sie:Document"))
            yield T(d, t("sie:id"), lit(row["id"]))
            if row["text"] is not None:
                yield T(d, t("sie:text"), lit(row["text"]))
        for row in batch.entities:
            e = self._node(entity_iri(row["key"]))
            yield T(e, self.a, t("sie:Entity"))
            yield T(e, t("sie:key"), lit(row["key"]))
            yield T(e, t("sie:label"), lit(row["label"]))
            yield T(e, self.rdfs_label, lit(row["text"]))
        for row in batch.mentions:
            e, d = self._node(entity_iri(row["key"])), self._node(document_iri(row["doc_id"]))
            m = self._node(
                f"{PREFIXES['men']}{_pct(row['doc_id'])}/{row['start_char']}-{row['end_char']}/"
                f"{_pct(row['key'])}"
            )
            yield T(e, t("sie:mentionedIn"), d)
            yield T(m, self.a, t("sie:Mention"))
            yield T(m, t("sie:entity"), e)
            yield T(m, t("sie:document"), d)
            yield T(m, t("sie:start"), lit(row["start_char"]))
            yield T(m, t("sie:end"), lit(row["end_char"]))
        for row in batch.relations:
            h, tl = self._node(entity_iri(row["head"])), self._node(entity_iri(row["tail"]))
            p = self._node(relation_predicate(row["label"]))
            s = self._node(
                f"{PREFIXES['stm']}{_pct(row['doc_id'])}/{_pct(row['head'])}/"
                f"{row['head_start']}-{row['head_end']}/{_pct(row['tail'])}/"
                f"{row['tail_start']}-{row['tail_end']}/{_pct(row['label'])}"
            )
            yield T(h, p, tl)
            yield T(s, self.a, t("sie:Relation"))
            yield T(s, self.a, t("rdf:Statement"))
            yield T(s, t("rdf:subject"), h)
            yield T(s, t("rdf:predicate"), p)
            yield T(s, t("rdf:object"), tl)
            yield T(s, t("sie:label"), lit(row["label"]))
            yield T(s, t("sie:score"), lit(float(row["score"])))
            yield T(s, t("sie:document"), self._node(document_iri(row["doc_id"])))
            for column, name in (("head_start", "headStart"), ("head_end", "headEnd"),
                                 ("tail_start", "tailStart"), ("tail_end", "tailEnd")):  # fmt: skip
                yield T(s, t(f"sie:{name}"), lit(row[column]))

    def write(self, batch: GraphBatch) -> WriteResult:
        """Append the triples of `batch`'s documents not written before (and of its entities
        not written before) to the temporary file. RETURNS (WriteResult): the counts."""
        if self.file is None:
            raise GraphError(f"{self.path}: the RDF writer is closed")
        new, result = filter_new(batch, [row["id"] for row in batch.documents
                                         if row["id"] in self.doc_ids])  # fmt: skip
        self.doc_ids.update(row["id"] for row in new.documents)
        entities = [row for row in new.entities if row["key"] not in self.entity_keys]
        self.entity_keys.update(row["key"] for row in entities)
        new = GraphBatch(new.documents, entities, new.mentions, new.relations)
        self._iri.clear()
        self.ox.serialize(self.triples(new), self.file, self.ox.RdfFormat.N_TRIPLES)
        return result

    def close(self) -> None:
        """Finish the file: rename the N-Triples into place, or convert them to Turtle.
        RAISES (OSError): the file cannot be written (nothing is left at `path`)."""
        if self.file is None:
            return
        self.file.close()
        self.file = None
        try:
            if self.path.suffix.lower() == ".nt":
                os.replace(self.tmp, self.path)
                return
            ttl = self.path.with_name(f".{self.path.name}.{os.getpid()}.part")
            try:
                triples = self.ox.parse(path=str(self.tmp), format=self.ox.RdfFormat.N_TRIPLES)
                self.ox.serialize(triples, str(ttl), self.ox.RdfFormat.TURTLE, prefixes=PREFIXES)
                os.replace(ttl, self.path)
            finally:
                ttl.unlink(missing_ok=True)
        finally:
            self.tmp.unlink(missing_ok=True)

    def abort(self) -> None:
        """Stop without output: delete the temporary file."""
        if self.file is not None:
            self.file.close()
            self.file = None
        self.tmp.unlink(missing_ok=True)


def sparql_query(path: Union[str, Path], query: str) -> Tuple[List[str], Iterator[Dict[str, Any]]]:
    """Run a SPARQL SELECT or ASK query on an RDF file (loaded into an in-memory pyoxigraph
    store). RETURNS: the variable names and the rows (IRIs as strings, literals as their
    Python values: numbers for ``xsd:integer`` and ``xsd:double``, else the lexical form; an
    ASK query gives one row ``{"result": bool}``; a CONSTRUCT or DESCRIBE query one row per
    triple ``{"subject", "predicate", "object"}``).
    RAISES (GraphError): a missing file, or a query that does not parse or fails."""
    ox = import_optional("pyoxigraph", "Querying RDF")
    path = Path(path)
    if not path.is_file():
        raise GraphError(f"{path}: no such file")
    store = ox.Store()
    try:
        store.bulk_load(path=str(path), format=ox.RdfFormat.from_extension(path.suffix[1:]))
        result = store.query(query)
    except (SyntaxError, ValueError, OSError) as err:
        raise GraphError(f"{path}: {err}") from err
    if isinstance(result, ox.QueryBoolean):
        return ["result"], iter([{"result": bool(result)}])
    if isinstance(result, ox.QueryTriples):
        columns = ["subject", "predicate", "object"]
        return columns, ({c: _term_value(getattr(tr, c)) for c in columns} for tr in result)
    columns = [v.value for v in result.variables]
    return columns, ({c: _term_value(sol[c]) for c in columns} for sol in result)


def _term_value(term: Any) -> Any:
    if term is None:
        return None
    if hasattr(term, "datatype"):
        datatype = term.datatype.value
        if datatype.endswith("#integer") or datatype.endswith("#int"):
            return int(term.value)
        if datatype.endswith("#double") or datatype.endswith("#decimal"):
            return float(term.value)
        if datatype.endswith("#boolean"):
            return term.value == "true"
    return to_json_value(term.value)
