"""`GraphSink`: the graph as one more output of `spacy_ie.extraction.extract` (``extract --graph``
with the local engine), beside the JSONL lines and the HTML page."""
from pathlib import Path
from typing import Any, Dict, Optional, Union

from spacy.tokens import Doc

from ..extraction import DocSink
from ..records import doc_to_record
from .writer import DEFAULT_BATCH_SIZE, GraphWriter, open_graph


class GraphSink(DocSink):
    """Writes each Doc's record (`doc_to_record` with its meta) into a graph
    (`spacy_ie.graph.open_graph`), `batch_size` documents per transaction; `close` writes the
    last batch. `extract` does not close its sinks when the run fails: use the sink as a context
    manager (or call `abort`), which then stops without the pending batch (what was committed
    stays, and a re-run completes it) and leaves no partial RDF file.

    target (Union[str, Path, GraphWriter]): a ``--graph`` target, or an open `GraphWriter`.
    spans_key (Optional[str]): where the entities are: None for ``doc.ents``, else a span group
        (`spacy_ie.records.entity_spans_key` of the pipeline).
    RAISES: as `spacy_ie.graph.open_store`.
    """

    def __init__(
        self,
        target: Union[str, Path, GraphWriter],
        batch_size: int = DEFAULT_BATCH_SIZE,
        spans_key: Optional[str] = None,
    ) -> None:
        self.spans_key = spans_key
        if isinstance(target, GraphWriter):
            self.writer = target
        else:
            self.writer = open_graph(target, batch_size=batch_size)

    def write(self, doc: Doc, meta: Optional[Dict[str, Any]]) -> None:
        self.writer.add(doc_to_record(doc, meta, self.spans_key))

    def close(self) -> None:
        self.writer.close()

    def abort(self) -> None:
        """Stop without the pending batch (see the class docstring)."""
        self.writer.abort()

    def __enter__(self) -> "GraphSink":
        return self

    def __exit__(self, exc_type: Any, *exc_info: Any) -> None:
        if exc_type is not None:
            self.abort()
