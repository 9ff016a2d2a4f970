"""``spacy-ie extract`` and the library behind it (`spacy_ie.records`, `spacy_ie.extraction`,
`spacy_ie.display`): input formats, records, order, HTML, errors."""
import html
import json
import re
from pathlib import Path
from typing import List

import pytest
import spacy
from click.testing import Result
from spacy.tokens import Doc, Span
from spacy.util import escape_html
from typer.testing import CliRunner

from conftest import stderr_has

from spacy_ie import Relation
from spacy_ie.cli import app
from spacy_ie.display import (
    ARROWHEAD_GAP,
    HTML_MAX_CHARS,
    HTML_MAX_WIDTH,
    LABEL_PALETTE,
    SPAN_CHUNK_TOKENS,
    _span_chunks,
    doc_to_attention_html,
    doc_to_displacy,
    label_colors,
    relations_table,
    render_html,
)
from spacy_ie.extraction import DocSink, HTMLPage, LineWriter, extract
from spacy_ie.records import (
    InputError,
    count_documents,
    doc_to_record,
    entity_spans,
    entity_spans_key,
    read_documents,
)

DEMO_TEST = Path(__file__).resolve().parent.parent / "assets" / "demo" / "test.jsonl"


def demo_texts() -> List[str]:
    with DEMO_TEST.open(encoding="utf8") as file:
        return [json.loads(line)["text"] for line in file if line.strip()]


def run_cli(*args) -> Result:
    return CliRunner().invoke(app, ["extract", *map(str, args)], catch_exceptions=False)


def read_records(path: Path) -> List[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf8").splitlines()]


def assert_span(span: dict, text: str) -> None:
    assert set(span) == {"text", "label", "start", "end"}
    assert 0 <= span["start"] < span["end"] <= len(text)
    assert text[span["start"] : span["end"]] == span["text"]
    assert span["label"]


# --- one run over the demo texts, shared by the record and HTML tests ----------------------------


@pytest.fixture(scope="module")
def demo_run(trained_pipeline, tmp_path_factory):
    """The demo test texts as a .txt file with empty lines mixed in, extracted with --html."""
    tmp = tmp_path_factory.mktemp("extract")
    texts = demo_texts()[:30]
    texts[3:3] = ["", ""]
    texts.append("")
    input_path = tmp / "input.txt"
    input_path.write_text("\n".join(texts) + "\n", encoding="utf8")
    output, page = tmp / "out" / "records.jsonl", tmp / "page.html"
    result = run_cli(trained_pipeline, input_path, "-o", output, "--html", page)
    assert result.exit_code == 0, result.output
    return texts, read_records(output), page.read_text(encoding="utf8"), result


def test_txt_lines_in_order_with_empty_lines(demo_run):
    texts, records, _, result = demo_run
    assert [r["text"] for r in records] == texts
    assert records[3] == {"text": "", "entities": [], "relations": [], "cats": {}}
    assert stderr_has(result, f"Extracted {len(texts)} docs") and stderr_has(result, "words/s")


def test_record_structure_and_offsets(demo_run):
    _, records, _, _ = demo_run
    for record in records:
        assert set(record) == {"text", "entities", "relations", "cats"}
        text = record["text"]
        for ent in record["entities"]:
            assert_span(ent, text)
        for rel in record["relations"]:
            assert set(rel) == {"head", "tail", "label", "score"}
            assert_span(rel["head"], text)
            assert_span(rel["tail"], text)
            assert rel["head"] in record["entities"] and rel["tail"] in record["entities"]
            assert isinstance(rel["label"], str) and 0.0 <= rel["score"] <= 1.0
    assert sum(len(r["entities"]) for r in records) > 0
    assert sum(len(r["relations"]) for r in records) > 0, "the test pipeline found no relation"


def test_html_page(demo_run):
    _, records, page, result = demo_run
    assert page.startswith("<!DOCTYPE html>") and page.count("<figure") == len(records)
    empty = sum(1 for record in records if not record["text"].strip())
    assert empty == 3 and page.count("empty document") == empty
    assert page.count("<svg") >= len(records) - empty  # one or more rows of arcs per doc
    for record in records:
        for ent in record["entities"]:
            assert escape_html(ent["text"]) in page
        for rel in record["relations"]:
            assert rel["label"] in page
    assert stderr_has(result, f"Drew {len(records)} of {len(records)} docs")


# --- input formats ----------------------------------------------------------------------------


def test_txt_paragraphs(trained_pipeline, tmp_path):
    input_path = tmp_path / "input.txt"
    input_path.write_text(
        "\n\nAda Lovelace met Charles Babbage.\nThey worked in London.\n\n \n\n"
        "Acme Corp hired John Smith .\n",
        encoding="utf8",
    )
    expected = [
        "Ada Lovelace met Charles Babbage.\nThey worked in London.",
        "Acme Corp hired John Smith .",
    ]
    assert [text for text, _ in read_documents(input_path, paragraphs=True)] == expected
    output = tmp_path / "out.jsonl"
    result = run_cli(trained_pipeline, input_path, "--paragraphs", "-o", output)
    assert result.exit_code == 0, result.output
    records = read_records(output)
    assert [r["text"] for r in records] == expected
    for record in records:
        for ent in record["entities"]:
            assert_span(ent, record["text"])


def test_jsonl_meta_and_stdout(trained_pipeline, tmp_path):
    rows = [
        {"text": "John Smith works for Acme Corp in Boston .", "id": 7, "source": {"a": [1]}},
        {"text": ""},
        {"id": "x", "text": "Ada Lovelace was born in London ."},
    ]
    input_path = tmp_path / "input.jsonl"
    input_path.write_text("\n".join(json.dumps(r) for r in rows) + "\n\n", encoding="utf8")
    result = run_cli(trained_pipeline, input_path)
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["text"] for r in records] == [r["text"] for r in rows]
    assert [r["meta"] for r in records] == [{"id": 7, "source": {"a": [1]}}, {}, {"id": "x"}]
    assert stderr_has(result, "Extracted 3 docs") and "Extracted" not in result.stdout


def test_n_process_2_keeps_order(trained_pipeline, tmp_path):
    texts = demo_texts()[:20] + ["", "Bern ."] * 5
    input_path = tmp_path / "input.jsonl"
    input_path.write_text(
        "".join(json.dumps({"text": t, "i": i}) + "\n" for i, t in enumerate(texts)),
        encoding="utf8",
    )
    output = tmp_path / "out.jsonl"
    result = run_cli(
        trained_pipeline, input_path, "-o", output, "--n-process", 2, "--batch-size", 3
    )
    assert result.exit_code == 0, result.output
    records = read_records(output)
    assert [(r["text"], r["meta"]["i"]) for r in records] == [(t, i) for i, t in enumerate(texts)]


# --- errors -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name,content,problem",
    [
        ("bad.jsonl", '{"text": "ok"}\n[1, 2]\n', "line 2"),
        ("bad.jsonl", '{"text": "ok"}\n\n{"text": 3}\n', "line 3"),
        ("bad.jsonl", '{"text": "ok"}\n{"title": "no text"}\n', "line 2"),
        ("bad.jsonl", '{"text": "ok"}\n{"text": "unclosed\n', "line 2"),
        ("bad.csv", "text\nhello\n", "unsupported input format"),
    ],
)
def test_bad_input_fails_and_writes_nothing(trained_pipeline, tmp_path, name, content, problem):
    input_path = tmp_path / name
    input_path.write_text(content, encoding="utf8")
    with pytest.raises(InputError, match=problem):
        count_documents(input_path)
    output, page = tmp_path / "out.jsonl", tmp_path / "page.html"
    result = run_cli(trained_pipeline, input_path, "-o", output, "--html", page)
    assert result.exit_code == 1
    assert stderr_has(result, problem) and stderr_has(result, str(input_path))
    assert "Traceback" not in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == [name]


def test_missing_model_and_input_keep_existing_output(trained_pipeline, tmp_path):
    input_path = tmp_path / "input.txt"
    input_path.write_text("John Smith works for Acme Corp .\n", encoding="utf8")
    output = tmp_path / "out.jsonl"
    output.write_text("previous\n", encoding="utf8")
    result = run_cli(tmp_path / "no_such_model", input_path, "-o", output)
    assert result.exit_code == 1 and stderr_has(result, "Cannot load the pipeline")
    result = run_cli(trained_pipeline, tmp_path / "missing.txt", "-o", output)
    assert result.exit_code == 1 and stderr_has(result, "no such file")
    assert output.read_text(encoding="utf8") == "previous\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["input.txt", "out.jsonl"]


@pytest.mark.parametrize("name,content", [("empty.txt", ""), ("blank.jsonl", "\n  \n")])
def test_empty_input_warns(trained_pipeline, tmp_path, name, content):
    """No documents in the input: a warning on stderr naming the file, exit 0, empty output."""
    input_path = tmp_path / name
    input_path.write_text(content, encoding="utf8")
    output, page = tmp_path / "out.jsonl", tmp_path / "page.html"
    result = run_cli(trained_pipeline, input_path, "-o", output, "--html", page)
    assert result.exit_code == 0, result.output
    assert stderr_has(result, f"{input_path} holds no documents")
    assert output.read_text(encoding="utf8") == "" and "no documents" not in result.stdout
    assert stderr_has(result, "Extracted 0 docs")
    # A file with one empty line is one (empty) document: no warning.
    (tmp_path / "one.txt").write_text("\n", encoding="utf8")
    result = run_cli(trained_pipeline, tmp_path / "one.txt", "-o", output)
    assert result.exit_code == 0 and not stderr_has(result, "holds no documents")
    assert read_records(output) == [{"text": "", "entities": [], "relations": [], "cats": {}}]


# --- library: records and displaCy input ------------------------------------------------------


@pytest.fixture
def annotated_doc():
    nlp = spacy.blank("en")
    doc = nlp("Ada Lovelace met Charles Babbage in London, England.")
    ada, babbage = Span(doc, 0, 2, "PER"), Span(doc, 3, 5, "PER")
    london, england = Span(doc, 6, 7, "LOC"), Span(doc, 8, 9, "LOC")
    doc.ents = [ada, babbage, london, england]
    doc._.relations = [
        Relation(ada, babbage, "KNOWS", 0.9),
        Relation(england, london, "CONTAINS", 0.8),
        Relation(ada, ada, "SELF", 0.7),  # same word: not drawn
        Relation(Span(doc, 0, 1, "PER"), ada, "PART", 0.6),  # overlapping: not drawn
    ]
    return doc


def test_doc_to_record(annotated_doc):
    record = doc_to_record(annotated_doc, meta={"id": 1})
    assert record["meta"] == {"id": 1} and record["cats"] == {}
    assert [e["text"] for e in record["entities"]] == ["Ada Lovelace", "Charles Babbage",
                                                       "London", "England"]  # fmt: skip
    assert record["relations"][0] == {
        "head": {"text": "Ada Lovelace", "label": "PER", "start": 0, "end": 12},
        "tail": {"text": "Charles Babbage", "label": "PER", "start": 17, "end": 32},
        "label": "KNOWS",
        "score": 0.9,
    }
    json.dumps(record)


def test_span_pipeline_records_hold_the_span_group():
    """A span pipeline's entities are in the span group its relation extractor reads
    (`spans_key`), not in doc.ents: the records, the pre-annotations and the summary take them
    from there, in text order, overlapping ones included; a doc.ents pipeline is unchanged."""
    nlp = spacy.blank("en")

    @spacy.Language.component("test_write_span_group")
    def write_span_group(doc):
        spans = [Span(doc, 3, 4, "LOC"), Span(doc, 0, 2, "PER"), Span(doc, 1, 2, "PER")]  # by score
        doc.spans["entities"] = spans
        return doc

    nlp.add_pipe("test_write_span_group")
    assert entity_spans_key(nlp) is None  # no relation extractor: doc.ents
    nlp.add_pipe("relation_extractor", config={"spans_key": "entities"})
    nlp.disable_pipe("relation_extractor")  # not trained here; its spans_key still counts
    assert entity_spans_key(nlp) == "entities"
    doc = nlp("Ada Lovelace in London .")
    assert [s.text for s in entity_spans(doc, "entities")] == ["Ada Lovelace", "Lovelace", "London"]
    assert list(entity_spans(doc)) == [] and entity_spans(doc, "other") == []
    record = doc_to_record(doc, spans_key="entities")
    assert [(e["text"], e["label"], e["start"]) for e in record["entities"]] == [
        ("Ada Lovelace", "PER", 0), ("Lovelace", "PER", 4), ("London", "LOC", 16)]  # fmt: skip
    assert doc_to_record(doc)["entities"] == []
    jsonl, label_studio, doccano = [], [], []
    writers = [LineWriter(jsonl.append, spans_key="entities"),
               LineWriter(label_studio.append, "label-studio", spans_key="entities"),
               LineWriter(doccano.append, "doccano", spans_key="entities")]  # fmt: skip
    summary = extract(nlp, [("Ada Lovelace in London .", None)], writers)
    assert summary.n_entities == 3 and len(json.loads(jsonl[0])["entities"]) == 3
    regions = json.loads("".join(label_studio))[0]["predictions"][0]["result"]
    assert [r["value"]["text"] for r in regions] == ["Ada Lovelace", "Lovelace", "London"]
    assert [e["start_offset"] for e in json.loads(doccano[0])["entities"]] == [0, 4, 16]


def test_doc_to_displacy(annotated_doc):
    parse, skipped = doc_to_displacy(annotated_doc, title="<doc>")
    words = [(w["text"], w["tag"]) for w in parse["words"]]
    assert words == [
        ("Ada Lovelace", "PER"), ("met", ""), ("Charles Babbage", "PER"), ("in", ""),
        ("London,", "LOC"), ("England.", "LOC"),
    ]  # fmt: skip
    assert parse["arcs"] == [
        {"start": 0, "end": 2, "label": "KNOWS 0.90", "dir": "right"},
        {"start": 4, "end": 5, "label": "CONTAINS 0.80", "dir": "left"},
    ]
    assert skipped == 2 and parse["title"] == "&lt;doc&gt;"
    page = render_html([parse, doc_to_displacy(annotated_doc[:0].as_doc())[0]])
    assert page.count("<svg") == 1 and "CONTAINS 0.80" in page and "Charles Babbage" in page


def test_doc_to_attention_html():
    doc = spacy.blank("en")("AT&T hired <Ann> .")  # AT&T | hired | < | Ann | > | .
    assert doc_to_attention_html(doc) == ""  # no textcat_attention weights: nothing to draw
    doc._.textcat_attention = [[0.1, 0.1, 0.0, 0.6, 0.0, 0.2], [0.3, 0.1, 0.0, 0.2, 0.0, 0.4]]
    doc.cats = {"B": 0.2, "A": 0.9, "C": 0.5, "D": 0.1}
    markup = doc_to_attention_html(doc, top_k=2)
    spans = re.findall(r'rgba\(255, 140, 0, ([0-9.]+)\); [^"]*">([^<]*)</span>', markup)
    # mean over the heads (0.2, 0.1, 0, 0.4, 0, 0.3) divided by its max
    assert spans == [("0.500", "AT&amp;T"), ("0.250", "hired"), ("0.000", "&lt;"),
                     ("1.000", "Ann"), ("0.000", "&gt;"), ("0.750", ".")]  # fmt: skip
    assert "<b>A</b> 0.90, <b>C</b> 0.50</div>" in markup and "<b>B</b>" not in markup
    empty = spacy.blank("en")("")
    empty._.textcat_attention = [[], []]
    assert 'class="attention"' in doc_to_attention_html(empty)
    page = render_html([doc_to_displacy(doc)[0], doc_to_displacy(empty)[0]], below=[markup, ""])
    assert page.count("<svg") == 1 and page.count(markup) == 1
    # under its own figure
    assert page.index("<svg") < page.index(markup) < page.index("<figure", page.index("<svg"))
    with pytest.raises(ValueError):
        render_html([doc_to_displacy(doc)[0]], below=[])


# --- the HTML view: wrapped rows, entity colours, the relations table --------------------------


def svg_widths(page: str) -> List[float]:
    return [float(w) for w in re.findall(r'<svg [^>]*?width="([0-9.]+)"', page)]


def test_html_relations_table_is_escaped(annotated_doc):
    doc = annotated_doc
    doc._.relations = list(doc._.relations) + [
        Relation(doc.ents[0], doc.ents[3], "<b>&VISITED", 0.25)
    ]
    page = render_html([doc_to_displacy(doc)[0]])
    table = page[page.index('<table class="relations"'):page.index("</table>")]
    assert "<th>head</th><th>label</th><th>tail</th><th>score</th>" in table
    rows = re.findall(r"<tr><td>(.*?)</td><td><b>(.*?)</b></td><td>(.*?)</td>.*?([0-9.]+)</td></tr>", table)
    assert [(label, score) for _, label, _, score in rows] == [
        ("KNOWS", "0.90"), ("CONTAINS", "0.80"), ("SELF", "0.70"), ("PART", "0.60"),
        ("&lt;b&gt;&amp;VISITED", "0.25"),
    ]  # every relation, the undrawn ones too, in order; the label escaped  # fmt: skip
    assert "Ada Lovelace" in rows[0][0] and "Charles Babbage" in rows[0][2]
    assert "<b>&VISITED" not in page
    assert 'class="relations"' not in render_html([doc_to_displacy(doc[:0].as_doc())[0]])


def test_html_entity_colours():
    nlp = spacy.blank("en")
    doc = nlp("Ada Lovelace of Acme Labs visited London with Zed.")
    ada, acme, london, zed = Span(doc, 0, 2, "PERSON"), Span(doc, 3, 5, "ORG"), Span(doc, 6, 7, "LOC"), Span(doc, 8, 9, "ODD<X>")
    doc.ents = [ada, acme, london, zed]
    doc._.relations = [Relation(ada, acme, "WORKS_FOR", 0.9), Relation(ada, zed, "KNOWS", 0.6)]
    page = render_html([doc_to_displacy(doc)[0]])
    colors = label_colors(["PERSON", "ORG", "LOC", "ODD&lt;X&gt;"])
    assert colors["PERSON"] == "#aa9cfc" and colors["ORG"] == "#7aecec"  # displaCy's own
    assert colors["ODD&lt;X&gt;"] == LABEL_PALETTE[0]  # a label displaCy has no colour for
    assert len(set(colors.values())) == 4
    for label, color in colors.items():
        assert f"background: {color}" in page, label  # entity view (span style) and badges
        tag = re.search(r'<tspan class="displacy-tag" dy="2em" fill="(#[0-9a-f]{6})"[^>]*>' + re.escape(label) + "<", page)
        assert tag is not None, label  # the word's tag in the arc drawing is coloured too
    assert "ODD<X>" not in page


def test_html_long_doc_wraps_and_keeps_arcs():
    """A 120-word document: its arcs are drawn on rows no wider than HTML_MAX_WIDTH px (rows
    holding a long arc scaled down to fit), not on one 10,000-px line."""
    nlp = spacy.blank("en")
    words = []
    for i in range(12):
        words += [f"Person{i}", "met", "a", "friend", "at", f"Place{i}", "on", "a", "day", "."]
    doc = Doc(nlp.vocab, words=words)
    people = [Span(doc, 10 * i, 10 * i + 1, "PERSON") for i in range(12)]
    places = [Span(doc, 10 * i + 5, 10 * i + 6, "LOC") for i in range(12)]
    doc.ents = people + places
    rels = [Relation(p, l, "MET_AT", 0.8) for p, l in zip(people, places)]
    rels.append(Relation(people[0], places[2], "FAR", 0.7))  # 25 tokens apart
    doc._.relations = rels
    parse, skipped = doc_to_displacy(doc)
    assert skipped == 0 and len(parse["rows"]) > 1
    page = render_html([parse])
    widths = svg_widths(page)
    assert len(widths) == len(parse["rows"]) and max(widths) <= HTML_MAX_WIDTH
    assert page.count("MET_AT 0.80") == 12 and "FAR 0.70" in page
    assert 'viewBox="0 0 ' in page  # the row with the long arc is scaled, not cut
    # rows cover the words in order, each arc inside one row
    bounds = [(r["start"], r["end"]) for r in parse["rows"]]
    assert bounds[0][0] == 0 and bounds[-1][1] == len(parse["words"])
    assert all(a[1] == b[0] for a, b in zip(bounds, bounds[1:]))
    for arc in parse["arcs"]:
        assert any(s <= arc["start"] and arc["end"] < e for s, e in bounds)


def test_html_nested_entities_in_span_view():
    """Nested spans of a span group (as spancat writes) are drawn in the entity view; a relation
    between a span and the one inside it is in the table though it cannot be an arc."""
    nlp = spacy.blank("en")
    doc = nlp("Ann teaches at the University of Ohio with Bob .")
    ann, uni, ohio = Span(doc, 0, 1, "PERSON"), Span(doc, 4, 7, "ORG"), Span(doc, 6, 7, "LOC")
    doc.spans["entities"] = [ann, uni, ohio, Span(doc, 8, 9, "PERSON")]
    doc._.relations = [Relation(ann, uni, "WORKS_FOR", 0.9), Relation(uni, ohio, "LOCATED_IN", 0.8)]
    parse, skipped = doc_to_displacy(doc)
    assert skipped == 1
    assert parse["spans"]["spans"] == [
        {"start_token": 0, "end_token": 1, "label": "PERSON"},
        {"start_token": 4, "end_token": 7, "label": "ORG"},
        {"start_token": 6, "end_token": 7, "label": "LOC"},
        {"start_token": 8, "end_token": 9, "label": "PERSON"},
    ]
    # in the arc drawing, the outer span is the word; a group span without relations is tagged
    assert [(w["text"], w["tag"]) for w in parse["words"] if w["tag"]] == [
        ("Ann", "PERSON"), ("University of Ohio", "ORG"), ("Bob", "PERSON")
    ]  # fmt: skip
    page = render_html([parse])
    assert page.count('class="spans"') == 1 and "WORKS_FOR 0.90" in page
    assert re.search(r"<td><b>LOCATED_IN</b></td>", page)


def test_span_view_pieces_of_a_long_doc():
    """A long doc's entity view is drawn in pieces (displaCy's span renderer is quadratic in a
    piece's tokens x spans): the pieces cover the tokens in order and cut no span."""
    n = 3 * SPAN_CHUNK_TOKENS + 17
    tokens = [f"t{i}" for i in range(n)]
    spans = [{"start_token": i, "end_token": i + 3, "label": "A"} for i in range(0, n - 3, 7)]
    spans += [{"start_token": i, "end_token": i + 1, "label": "B"} for i in range(1, n - 3, 7)]
    spans.append({"start_token": SPAN_CHUNK_TOKENS - 2, "end_token": SPAN_CHUNK_TOKENS + 40, "label": "L"})
    pieces = list(_span_chunks(tokens, spans))
    assert len(pieces) > 1 and [t for p in pieces for t in p["tokens"]] == tokens
    offset, back = 0, []
    for piece in pieces:
        for s in piece["spans"]:
            assert 0 <= s["start_token"] < s["end_token"] <= len(piece["tokens"])  # not cut
            back.append((s["start_token"] + offset, s["end_token"] + offset, s["label"]))
        offset += len(piece["tokens"])
    assert sorted(back) == sorted((s["start_token"], s["end_token"], s["label"]) for s in spans)


# --- the HTML view's defects (issue 26) ---------------------------------------------------------


def span_view_text(page: str) -> str:
    """The text of a page's entity views as a browser shows it (labels left out): displaCy's
    span markers dropped, each token's inline block reduced to its text (a browser drops the
    whitespace at the edges of an inline block), whitespace runs collapsed."""
    views = re.findall(r'<div class="spans"[^>]*>(.*?)</div>', page, flags=re.S)
    text = " | ".join(views)
    marker = (r'<span style="background:[^"]*position: absolute;">\s*'
              r"(?:<span[^>]*>[^<]*</span>\s*)?</span>")  # fmt: skip
    text = re.sub(marker, "", text)
    token = r'<span style="font-weight: bold; display: inline-block;[^"]*">\s*(.*?)\s*</span>'
    text = re.sub(token, r"\1", text, flags=re.S)
    return " ".join(html.unescape(re.sub(r"<[^>]+>", "", text)).split())


def test_html_span_view_keeps_the_texts_spacing():
    """Tokens are followed by their own whitespace: "US Navy." not "US Navy ." (displaCy's span
    renderer puts a space after every token)."""
    nlp = spacy.blank("en")
    doc = nlp("Grace Hopper worked for the US Navy. (Acme)Corp's staff")
    doc.ents = [Span(doc, 0, 2, "PERSON"), Span(doc, 5, 7, "ORG"), Span(doc, 9, 10, "ORG")]
    doc._.relations = [Relation(doc.ents[0], doc.ents[1], "WORKS_FOR", 0.9)]
    text = span_view_text(render_html([doc_to_displacy(doc)[0]]))
    assert text == "Grace Hopper worked for the US Navy. (Acme)Corp's staff"


def test_html_empty_document_says_so():
    nlp = spacy.blank("en")
    page = render_html([doc_to_displacy(nlp(""), title="#1")[0],
                        doc_to_displacy(nlp("  \n "), title="#2")[0]])  # fmt: skip
    figures = page.split("<figure")[1:]
    assert len(figures) == 2
    for figure in figures:
        assert "empty document" in figure and "<svg" not in figure
        assert "no relations" not in figure and 'class="spans"' not in figure


def test_html_no_relations_says_so(annotated_doc):
    annotated_doc._.relations = []
    parse = doc_to_displacy(annotated_doc)[0]
    assert "no relations" in relations_table(parse)
    page = render_html([parse])
    assert "no relations" in page and 'class="relations"' not in page
    assert page.index("<svg") < page.index("no relations")  # where the table would be


def arrowhead_tips(page: str) -> List[float]:
    return [float(x) for x in re.findall(r'class="displacy-arrowhead" d="M([0-9.]+),', page)]


def test_html_arrowheads_on_one_word_side_by_side():
    """Four relations pointing at one entity, two from the left and two from the right:
    displaCy draws the arrowheads of those from the right on one point (and those from the left
    3 px apart). Here they are ARROWHEAD_GAP px apart, the arcs from further away outside those
    from nearer (so that no leg crosses an arc), and each arc ends at its arrowhead."""
    nlp = spacy.blank("en")
    doc = nlp("Ann and Bob met Cyd near Dan and Eve in Fay today .")
    ann, bob, cyd, dan, fay = (Span(doc, i, i + 1, "PERSON") for i in (0, 2, 4, 6, 10))
    doc.ents = [ann, bob, cyd, dan, fay]
    doc._.relations = [
        Relation(ann, cyd, "FAR_LEFT", 0.9), Relation(bob, cyd, "NEAR_LEFT", 0.8),
        Relation(dan, cyd, "NEAR_RIGHT", 0.7), Relation(fay, cyd, "FAR_RIGHT", 0.6),
        Relation(ann, bob, "ALONE", 0.5),
    ]  # fmt: skip
    parse, skipped = doc_to_displacy(doc)
    assert skipped == 0 and len(parse["rows"]) == 1
    page = render_html([parse])
    labels = re.findall(r'class="displacy-label"[^>]*>([A-Z_]+) ', page)
    tips = dict(zip(labels, arrowhead_tips(page)))
    assert len(tips) == 5
    order = sorted(("FAR_LEFT", "NEAR_LEFT", "NEAR_RIGHT", "FAR_RIGHT"), key=tips.get)
    assert order == ["NEAR_LEFT", "FAR_LEFT", "FAR_RIGHT", "NEAR_RIGHT"]  # far ones outside
    xs = [tips[label] for label in order]
    assert [b - a for a, b in zip(xs, xs[1:])] == [ARROWHEAD_GAP] * 3
    arcs = re.findall(r'class="displacy-arc"[^>]* d="([^"]+)".*?'
                      r'class="displacy-arrowhead" d="M([0-9.]+),', page, flags=re.S)  # fmt: skip
    assert len(arcs) == 5
    for path, head in arcs:
        ends = [float(point.split(",")[0]) for point in path[1:].split(" ")]
        assert float(head) in (ends[0], ends[-1])  # the arc's leg ends at its arrowhead


def test_html_long_document_is_cut_and_says_so():
    """A 200,000-character document: the page draws its first HTML_MAX_CHARS characters, says
    how much it leaves out, and stays small (it was 12-18 MB); the relations table lists the
    relations drawn."""
    nlp = spacy.blank("en")
    sentence = "Person{i} met a friend at Place{i} on a sunny day ."
    text = " ".join(sentence.format(i=i) for i in range(4000))
    doc = nlp(text[: text.rindex(" ", 0, 200_000)])
    assert len(doc.text) > 199_000
    people = [Span(doc, i, i + 1, "PERSON") for i in range(0, len(doc) - 5, 11)]
    places = [Span(doc, i + 5, i + 6, "LOC") for i in range(0, len(doc) - 5, 11)]
    doc.ents = sorted(people + places)
    doc._.relations = [Relation(p, q, "MET_AT", 0.8) for p, q in zip(people, places)]
    parse, _ = doc_to_displacy(doc)
    cut = parse["cut"]
    assert cut["of_chars"] == len(doc.text) and HTML_MAX_CHARS - 60 < cut["chars"] <= HTML_MAX_CHARS
    shown = len(parse["relations"])
    assert 0 < shown < len(people) and cut["relations"] == len(people) - shown
    assert cut["entities"] == len(doc.ents) - len(parse["spans"]["spans"])
    page = render_html([parse])
    assert len(page) < 500_000, len(page)
    assert f"Only the first {cut['chars']:,} of {len(doc.text):,} characters" in page
    assert page.count("MET_AT 0.80") == shown
    sink = HTMLPage(limit=5)
    sink.write(doc, None)
    sink.write(nlp("Ann met Bob ."), None)
    assert (sink.n_drawn, sink.n_cut) == (2, 1)


# --- the run: pluggable sinks ---------------------------------------------------------------------


def test_extract_gives_each_doc_to_every_sink():
    """`extract` hands every Doc, in order, to each sink, then closes them: a sink of one's own
    (here one that keeps the texts) beside the line writers."""
    nlp = spacy.blank("en")

    class Texts(DocSink):
        def __init__(self) -> None:
            self.texts, self.closed = [], False

        def write(self, doc, meta) -> None:
            self.texts.append((doc.text, meta))

        def close(self) -> None:
            self.closed = True

    texts, jsonl, label_studio = Texts(), [], []
    documents = [("Ada met Bob .", None), ("", {"id": 2}), ("Cyd .", {"k": "é"})]
    summary = extract(nlp, iter(documents), [LineWriter(jsonl.append), texts,
                      LineWriter(label_studio.append, "label-studio")], batch_size=2)  # fmt: skip
    assert texts.texts == documents and texts.closed
    assert [json.loads(line)["text"] for line in jsonl] == [t for t, _ in documents]
    assert json.loads("".join(label_studio))[2]["data"] == {"k": "é", "text": "Cyd ."}
    assert (summary.n_docs, summary.n_words) == (3, 6)
    empty: List[str] = []
    extract(nlp, [], [LineWriter(empty.append, "label-studio")])
    assert "".join(empty) == "[\n]\n"  # as before: an empty JSON array
    with pytest.raises(ValueError, match="unknown output format"):
        LineWriter(empty.append, "csv")
