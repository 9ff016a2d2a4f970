"""Time of `extract --html`'s drawing on one long document, without a trained pipeline.

    python benchmarks/html_render.py [--n-tokens 100000] [--every 100] [--max-chars 5000]

Builds a Doc of `n_tokens` tokens with, every `every` tokens, two 2-token entities 10 tokens
apart and a relation between them (100,000 tokens: 2,000 entities, 1,000 relations), then
prints the seconds of `doc_to_displacy` (the displaCy input, including one read
of ``doc._.relations``, timed alone first) and of `render_html` (the page), the rows of arcs and
the page size. The page draws the first `max_chars` characters of a document
(`spacy_ie.display.HTML_MAX_CHARS` by default, as ``extract --html``); give a larger value to
time the drawing of the whole document, which must stay linear in its length: displaCy's span
renderer alone is quadratic (tokens x spans) and is fed pieces of ~300 tokens.
"""
import time

import spacy
import typer
from spacy.tokens import Doc, Span

from spacy_ie import Relation
from spacy_ie.display import HTML_MAX_CHARS, doc_to_displacy, render_html


def main(
    n_tokens: int = typer.Option(100_000, help="Tokens in the document."),
    every: int = typer.Option(100, help="A pair of related entities every this many tokens."),
    max_chars: int = typer.Option(HTML_MAX_CHARS, help="Characters drawn per document."),
) -> None:
    nlp = spacy.blank("en")
    doc = Doc(nlp.vocab, words=[f"w{i % 97}" for i in range(n_tokens)])
    starts = range(0, n_tokens - 12, every)
    heads = [Span(doc, i, i + 2, "PERSON") for i in starts]
    tails = [Span(doc, i + 10, i + 12, "ORG") for i in starts]
    ents = sorted(heads + tails)
    doc.ents = ents
    doc._.relations = [Relation(head, tail, "WORKS_FOR", 0.9) for head, tail in zip(heads, tails)]
    start = time.perf_counter()
    n_relations = len(doc._.relations)
    read = time.perf_counter() - start
    start = time.perf_counter()
    parse, skipped = doc_to_displacy(doc, max_chars=max_chars)
    to_displacy = time.perf_counter() - start
    start = time.perf_counter()
    page = render_html([parse])
    render = time.perf_counter() - start
    print(f"{n_tokens:,} tokens, {len(ents):,} entities, {n_relations:,} relations")
    drawn = parse.get("cut", {}).get("chars", len(doc.text))
    print(f"drawn: {drawn:,} of {len(doc.text):,} characters (--max-chars {max_chars:,})")
    print(f"read doc._.relations once: {read:.2f} s")
    print(f"doc_to_displacy (with one read): {to_displacy:.2f} s; {len(parse['rows']):,} rows, "
          f"{skipped} relations not drawn as arcs")
    print(f"render_html: {render:.2f} s; {len(page) / 1e6:.1f} MB of HTML")


if __name__ == "__main__":
    typer.run(main)
