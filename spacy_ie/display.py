"""The displaCy HTML view of ``spacy-ie extract --html``: entities, relations and attention.

`doc_to_displacy` turns a processed Doc into displaCy's manual input plus what `render_html`
draws around it; `render_html` makes one page of many documents: per document the entities
(displaCy's ``span`` style, nested ones included), the relations as arcs (displaCy's ``dep``
style, compact, wrapped onto rows), the table of relations, and optionally the tokens
highlighted by `textcat_attention` weight (`doc_to_attention_html`). A document longer than
`HTML_MAX_CHARS` characters is drawn up to there, and the page says so: the page stays small
whatever the input (the JSONL records always hold everything).

Source: displaCy's manual input formats and renderers,
https://spacy.io/usage/visualizers#manual-usage (``spacy.displacy.render``; its
``DependencyRenderer`` and ``SpanRenderer``, subclassed here for the arrowheads and the
whitespace).
"""
import html
import re
from bisect import bisect_right
from itertools import accumulate
from typing import Any, Dict, Iterable, Iterator, List, Optional, Tuple

from spacy.displacy.render import (
    DEFAULT_ENTITY_COLOR,
    DEFAULT_LABEL_COLORS,
    DependencyRenderer,
    SpanRenderer,
)
from spacy.displacy.templates import TPL_FIGURE, TPL_PAGE, TPL_TITLE
from spacy.tokens import Doc, Span
from spacy.util import escape_html, filter_spans

from .pipeline.textcat_attention import ATTENTION_ATTR
from .pipeline.textcat_attention import register_extension as register_attention_extension
from .relations import register_extensions

register_extensions()
register_attention_extension()

# Layout of the relation arcs (displaCy's `dep` style, compact): the words wrap onto rows of at
# most HTML_MAX_WIDTH px, so a long sentence does not run to thousands of pixels. displaCy spaces
# a row's words evenly, so each row's spacing ("distance") comes from its longest word, within
# [HTML_MIN_DISTANCE, HTML_MAX_DISTANCE] px, and runs of plain words (no entity, no arc end)
# are drawn as one word (as displaCy's collapse_phrases does for noun chunks). A row is cut
# where no arc crosses; a relation spanning more words than fit gets a wider row, scaled down
# to HTML_MAX_WIDTH (at most to HTML_MIN_SCALE); only wider still is an arc cut (not drawn).
HTML_MAX_WIDTH = 1100
HTML_MIN_SCALE = 0.7  # a row holding a long arc may be this much narrower than life-size
HTML_MIN_DISTANCE = 80
HTML_MAX_DISTANCE = 280
HTML_CHAR_WIDTH = 7.5  # px per character at displaCy's 16px sans-serif, on average
HTML_WORD_SPACING = 30  # px between the arcs and the words (displaCy's default: 45)
# Colours of entity labels displaCy has none for, in order of first use (sorted labels).
LABEL_PALETTE = (
    "#a6cee3", "#b2df8a", "#fb9a99", "#fdbf6f", "#cab2d6", "#ffff99", "#8dd3c7", "#fccde5",
    "#d9d9d9", "#bc80bd", "#ccebc5", "#ffed6f",
)  # fmt: skip


# The most characters of one document the page draws. A longer document is drawn up to a token
# boundary at or before this many characters (a sentence end, when there is one in the second
# half) and the page says what is left out: a 200,000-character document made an 18 MB page.
HTML_MAX_CHARS = 5_000


def shown_tokens(doc: Doc, max_chars: int = HTML_MAX_CHARS) -> int:
    """How many of the Doc's first tokens the HTML view draws: all of them when the text has at
    most `max_chars` characters; else those ending at or before character `max_chars`, cut
    back to the last sentence start among them when the Doc has sentences and that keeps at
    least half of them."""
    if len(doc.text) <= max_chars:
        return len(doc)
    n = 0
    for token in doc:
        if token.idx + len(token) > max_chars:
            break
        n = token.i + 1
    if doc.has_annotation("SENT_START"):
        for i in range(n - 1, n // 2, -1):
            if doc[i].is_sent_start:
                return i
    return n


def doc_to_displacy(
    doc: Doc,
    title: Optional[str] = None,
    max_width: int = HTML_MAX_WIDTH,
    max_chars: int = HTML_MAX_CHARS,
) -> Tuple[Dict[str, Any], int]:
    """The Doc as displaCy's manual ``dep`` input, plus what `render_html` draws around it, and
    the number of relations not drawn as arcs.

    Each entity (of ``doc.ents``, of the span groups, or a relation argument; of overlapping
    ones, the longest) is merged into one "word" whose tag is its label; other tokens are words
    with no tag (whitespace tokens are dropped, punctuation joins the word before it, as in
    displaCy's default ``collapse_punct``; then runs of such plain words between the entities
    are joined, see `_collapse_plain_words`). Each relation is an arc from the head's word to
    the tail's word labelled "LABEL score"; ``dir`` is "right" when the arrow points to the
    later word and "left" when it points to the earlier one, as displaCy draws dependencies
    (arrow at the dependent). A relation whose head and tail overlap or fall on the same word
    cannot be drawn, nor one whose arc is wider than a row can be (below): it is left out and
    counted (the table under the drawing lists every relation).

    Rows: the words wrap onto rows of at most ``max_width`` px (see `_rows`), cut where no arc
    crosses; a row that must be wider (a relation spans more words than fit) is scaled down.

    Length: a Doc of more than `max_chars` characters is drawn up to `shown_tokens`; the
    entities and relations that end further on are left out of the drawing and of the table,
    and counted under ``"cut"``.

    RETURNS (Tuple[Dict[str, Any], int]): the parse ``{"words": [{"text", "tag"}], "arcs":
        [{"start", "end", "label", "dir"}], "title"?, "settings", "rows": [{"start", "end",
        "distance"}] (word indices, end exclusive; px per word), "spans": {"tokens", "spans":
        [{"start_token", "end_token", "label"}], "whitespace"} (displaCy's manual ``span``
        input: the entities, nested ones included: doc.ents, the span groups and the relation
        arguments; "whitespace": each token's ``whitespace_``), "relations": [{"head",
        "head_label", "label", "tail", "tail_label", "score"}], "cut"?: {"chars", "of_chars",
        "entities", "relations"} (only for a Doc cut at `max_chars`: the characters drawn, the
        Doc's characters, the entities and relations left out)}`` (all text HTML-escaped) and
        the number of relations not drawn as arcs (of those shown). Source: displaCy's manual
        input formats, https://spacy.io/usage/visualizers#manual-usage.
    """
    n_shown = shown_tokens(doc, max_chars)
    all_relations = doc._.relations
    relations = [r for r in all_relations if r.head.end <= n_shown and r.tail.end <= n_shown]
    all_groups = [s for group in doc.spans.values() for s in group if len(s)]
    groups = [s for s in all_groups if s.end <= n_shown]
    ents = [s for s in doc.ents if s.end <= n_shown]
    args = [s for r in relations for s in (r.head, r.tail)]
    merged = filter_spans(ents + groups + args)
    merged_at = {span.start: span for span in merged}
    words: List[Dict[str, str]] = []
    word_of_token: Dict[int, int] = {}
    sent_starts: set = set()
    has_sents = doc.has_annotation("SENT_START")
    i = 0
    while i < n_shown:
        if has_sents and doc[i].is_sent_start:
            sent_starts.add(len(words))
        span = merged_at.get(i)
        if span is not None:
            for j in range(span.start, span.end):
                word_of_token[j] = len(words)
            words.append({"text": span.text, "tag": html.escape(span.label_)})
            i = span.end
            continue
        token = doc[i]
        if token.is_punct and words and i > 0 and not doc[i - 1].whitespace_:
            # Attach punctuation to the word before, as displaCy's collapse_punct does.
            word_of_token[i] = len(words) - 1
            words[-1]["text"] += token.text
        elif not token.is_space:
            word_of_token[i] = len(words)
            words.append({"text": token.text, "tag": ""})
        i += 1
    arcs: List[Dict[str, Any]] = []
    skipped = 0
    for rel in relations:
        head_word = _word_of_span(rel.head, word_of_token)
        tail_word = _word_of_span(rel.tail, word_of_token)
        overlap = rel.head.start < rel.tail.end and rel.tail.start < rel.head.end
        if overlap or head_word is None or tail_word is None or head_word == tail_word:
            skipped += 1
            continue
        label = html.escape(f"{rel.label} {float(rel.score):.2f}")
        if head_word < tail_word:
            arcs.append({"start": head_word, "end": tail_word, "label": label, "dir": "right"})
        else:
            arcs.append({"start": tail_word, "end": head_word, "label": label, "dir": "left"})
    words, arcs, sent_starts = _collapse_plain_words(words, arcs, sent_starts)
    rows = _rows([len(w["text"]) for w in words], arcs, max_width, sent_starts)
    row_of = {i: k for k, row in enumerate(rows) for i in range(row["start"], row["end"])}
    skipped += sum(1 for arc in arcs if row_of[arc["start"]] != row_of[arc["end"]])
    entity_spans = {(s.start, s.end, s.label_) for s in ents + groups + args}
    shown = doc[:n_shown]
    parse: Dict[str, Any] = {
        "words": words,
        "arcs": arcs,
        "settings": {
            "lang": doc.lang_,
            "direction": doc.vocab.writing_system.get("direction", "ltr"),
        },
        "rows": rows,
        "spans": {
            "tokens": [t.text for t in shown],
            "spans": [
                {"start_token": s, "end_token": e, "label": html.escape(label)}
                for s, e, label in sorted(entity_spans)
            ],
            "whitespace": [t.whitespace_ for t in shown],
        },
        "relations": [
            {
                "head": html.escape(rel.head.text),
                "head_label": html.escape(rel.head.label_),
                "label": html.escape(rel.label),
                "tail": html.escape(rel.tail.text),
                "tail_label": html.escape(rel.tail.label_),
                "score": float(rel.score),
            }
            for rel in relations
        ],
    }
    if n_shown < len(doc):
        all_entities = {(s.start, s.end, s.label_) for s in list(doc.ents) + all_groups}
        parse["cut"] = {
            "chars": shown.end_char if n_shown else 0,
            "of_chars": len(doc.text),
            "entities": len(all_entities - entity_spans),
            "relations": len(all_relations) - len(relations),
        }
    if title:
        parse["title"] = html.escape(title)
    return parse, skipped


def _collapse_plain_words(
    words: List[Dict[str, str]], arcs: List[Dict[str, Any]], sent_starts: set
) -> Tuple[List[Dict[str, str]], List[Dict[str, Any]], set]:
    """Join runs of plain words (no tag, no arc end) into one word each, up to the length of the
    longest entity word (at least 16 characters) and never across a sentence start: the arc
    drawing needs only the entities, and fewer words fit more text on a row. RETURNS: the words,
    the arcs and the sentence starts, re-indexed."""
    ends = {a["start"] for a in arcs} | {a["end"] for a in arcs}
    limit = max([16] + [len(w["text"]) for w in words if w["tag"]])
    out: List[Dict[str, str]] = []
    new_index: List[int] = []
    plain_run = False  # whether out[-1] is a plain word that may take more
    for i, word in enumerate(words):
        plain = not word["tag"] and i not in ends
        if (plain and plain_run and i not in sent_starts
                and len(out[-1]["text"]) + 1 + len(word["text"]) <= limit):  # fmt: skip
            out[-1] = {"text": out[-1]["text"] + " " + word["text"], "tag": ""}
        else:
            out.append(dict(word))
        new_index.append(len(out) - 1)
        plain_run = plain
    new_arcs = [{**a, "start": new_index[a["start"]], "end": new_index[a["end"]]} for a in arcs]
    return out, new_arcs, {new_index[i] for i in sent_starts if i < len(words)}


def _rows(
    word_lengths: List[int], arcs: List[Dict[str, Any]], max_width: int, sent_starts: set
) -> List[Dict[str, int]]:
    """Cut the words into rows: ``[{"start", "end", "distance"}]`` (end exclusive; px per word).

    A row's width is ``distance * (n_words + 1/2)`` (displaCy: ``offset_x + n * distance``,
    with ``offset_x = distance / 2``), its distance from its longest word. From each row's
    first word, the row ends at the latest cut that keeps it within `max_width` and that no arc
    crosses (a sentence start wins when it is at least half-way). When there is none, or it
    would leave the row less than half full, the row runs on to the first cut no arc crosses,
    if the row then fits `max_width / HTML_MIN_SCALE` (`render_html` scales it down). Failing
    both, the row ends at the fitting cut crossed by the fewest arcs (those are not drawn). An
    empty doc gets one empty row.
    """

    def distance(longest: int) -> int:
        return int(min(max(longest * HTML_CHAR_WIDTH + 20, HTML_MIN_DISTANCE), HTML_MAX_DISTANCE))

    n = len(word_lengths)
    if n == 0:
        return [{"start": 0, "end": 0, "distance": HTML_MIN_DISTANCE}]
    # crossings[c]: arcs with start < c <= end, i.e. that a cut before word c would break
    delta = [0] * (n + 2)
    for arc in arcs:
        delta[arc["start"] + 1] += 1
        delta[arc["end"] + 1] -= 1
    crossings = list(accumulate(delta))
    rows: List[Dict[str, int]] = []
    start = 0
    while True:
        # cuts in order while the row fits (width grows with every word: stop at the first
        # that does not); then, for a scaled row, while it fits max_width / HTML_MIN_SCALE
        fits: List[int] = []
        scaled: List[int] = []
        longest = 0
        for end in range(start + 1, n + 1):
            longest = max(longest, word_lengths[end - 1])
            width = distance(longest) * (end - start + 0.5)
            if width <= max_width or not fits:
                fits.append(end)
            elif width * HTML_MIN_SCALE <= max_width:
                scaled.append(end)
            else:
                break
        free = [e for e in fits if not crossings[e]]
        sentence = [e for e in free if e in sent_starts and e - start >= len(fits) / 2]
        end = (sentence or free or [0])[-1]
        if fits[-1] == n:
            end = n  # the rest fits: no arc can cross the end of the doc
        elif end - start < len(fits) / 2:
            wider = next((e for e in scaled if not crossings[e]), 0)
            end = wider or end or min(reversed(fits), key=lambda e: crossings[e])
        longest = max(word_lengths[start:end], default=0)
        rows.append({"start": start, "end": end, "distance": distance(longest)})
        start = end
        if start >= n:
            return rows


def _word_of_span(span: Span, word_of_token: Dict[int, int]) -> Optional[int]:
    """The word of the span's first non-space token (None for an all-space span)."""
    for token in span:
        if token.i in word_of_token:
            return word_of_token[token.i]
    return None


def label_colors(labels: Iterable[str]) -> Dict[str, str]:
    """One background colour per entity label: displaCy's own for the labels it knows (PERSON,
    ORG, LOC...), then `LABEL_PALETTE` in order for the others (sorted, so the same labels get
    the same colours on every page)."""
    colors: Dict[str, str] = {}
    others = 0
    for label in sorted(set(labels)):
        known = DEFAULT_LABEL_COLORS.get(label.upper())
        if known is None:
            known = LABEL_PALETTE[others % len(LABEL_PALETTE)]
            others += 1
        colors[label] = known
    return colors


def _darken(color: str, factor: float = 0.55) -> str:
    """A "#rrggbb" colour with each channel scaled by `factor` (label text on white stays
    legible)."""
    rgb = [int(color[k : k + 2], 16) for k in (1, 3, 5)]
    return "#" + "".join(f"{int(c * factor):02x}" for c in rgb)


_TAG_RE = re.compile(
    r'(<tspan class="displacy-tag" dy="2em" )fill="currentColor"( x="[^"]*">)([^<]*)(</tspan>)'
)


def _color_tags(svg: str, colors: Dict[str, str]) -> str:
    """Colour each word tag (entity label) of a displaCy dep SVG with its label's colour."""

    def repl(match: "re.Match[str]") -> str:
        color = colors.get(match.group(3))
        if color is None:
            return match.group(0)
        return (f'{match.group(1)}fill="{_darken(color)}" font-weight="bold"{match.group(2)}'
                f"{match.group(3)}{match.group(4)}")  # fmt: skip

    return _TAG_RE.sub(repl, svg)


# displaCy's span renderer checks every span at every token: a long doc is drawn in pieces of
# about this many tokens, cut where no span crosses, to keep it linear.
SPAN_CHUNK_TOKENS = 300


def _span_chunks(tokens: List[str], spans: List[Dict[str, Any]]) -> Iterator[Dict[str, Any]]:
    """displaCy ``span`` inputs (``{"tokens", "spans"}``) for consecutive pieces of the tokens,
    each of at least `SPAN_CHUNK_TOKENS` tokens (but the last), cut where no span crosses."""
    spans = sorted(spans, key=lambda s: (s["start_token"], s["end_token"]))
    start = first = k = 0  # piece start token; its first span; spans starting before token t
    reach = 0  # the furthest end of the spans starting before token t
    for t in range(1, len(tokens) + 1):
        while k < len(spans) and spans[k]["start_token"] < t:
            reach = max(reach, spans[k]["end_token"])
            k += 1
        if t == len(tokens) or (t - start >= SPAN_CHUNK_TOKENS and reach <= t):
            inside = [
                {**s, "start_token": s["start_token"] - start, "end_token": s["end_token"] - start}
                for s in spans[first:k]
            ]
            yield {"tokens": tokens[start:t], "spans": inside}
            start, first = t, k


class _SpanView(SpanRenderer):
    """displaCy's span renderer, given each token with its trailing whitespace (spaCy's
    ``Token.text_with_ws``): it writes that whitespace after the token, where displaCy's own
    writes one space after every token ("US Navy ." for "US Navy."). The markup of a token
    inside spans is displaCy's, without the whitespace around its template."""

    def _render_markup(self, per_token_info: List[Dict[str, Any]]) -> str:
        markup = ""
        template = self.span_template.strip()
        for token in per_token_info:
            text = token["text"]
            word = text.rstrip()
            entities = token["entities"]
            if entities and word:
                total_height = (self.top_offset + self.span_label_offset
                                + self.offset_step * (len(entities) - 1))  # fmt: skip
                markup += template.format(
                    text=escape_html(word),
                    span_slices=self._get_span_slices(entities),
                    span_starts=self._get_span_starts(entities),
                    total_height=total_height,
                )
                markup += escape_html(text[len(word) :])
            else:
                markup += escape_html(text)
        return markup


# Arrowheads of arcs that end on the same word: this many px apart (at most; fewer when many
# share a word), side by side around the word's centre.
ARROWHEAD_GAP = 14


def _arrowhead_offsets(arcs: List[Dict[str, Any]], distance: float) -> List[Optional[float]]:
    """Per arc, where its arrowhead goes (px from the centre of its word) when other arcs end on
    the same word; None for an arc whose arrowhead is alone (displaCy places it). Of the arcs
    ending on one word, those coming from the left take the left places and those coming from
    the right the right ones, the longer ones further inside, so that their legs do not cross
    the other arcs."""
    ends: Dict[int, List[int]] = {}
    for i, arc in enumerate(arcs):
        ends.setdefault(arc["start"] if arc["dir"] == "left" else arc["end"], []).append(i)
    offsets: List[Optional[float]] = [None] * len(arcs)
    for members in ends.values():
        if len(members) < 2:
            continue
        # from the left (dir "right"): the nearer first; from the right: the farther first
        members.sort(key=lambda i: (1, -arcs[i]["end"]) if arcs[i]["dir"] == "left"
                     else (0, -arcs[i]["start"]))  # fmt: skip
        gap = min(ARROWHEAD_GAP, 0.8 * distance / (len(members) - 1))
        for k, i in enumerate(members):
            offsets[i] = (k - (len(members) - 1) / 2) * gap
    return offsets


class _ArcView(DependencyRenderer):
    """displaCy's dependency renderer, except that arcs ending on the same word get their
    arrowheads side by side (`_arrowhead_offsets`) instead of on one point: the arrowhead end
    of each such arc (its path and its head) moves, the rest is displaCy's drawing."""

    def render_svg(self, render_id: Any, words: List[Dict[str, Any]],
                   arcs: List[Dict[str, Any]]) -> str:  # fmt: skip
        self._offsets = _arrowhead_offsets(arcs, self.distance)
        self._moved: Optional[Tuple[str, float]] = None
        return super().render_svg(render_id, words, arcs)

    def render_arrow(self, label: str, start: int, end: int, direction: str, i: int) -> str:
        offset = self._offsets[i]
        self._moved = None
        if offset is not None:
            x = self.offset_x + (start if direction == "left" else end) * self.distance + offset
            self._moved = (direction, self.width - x if self.direction == "rtl" else x)
        return super().render_arrow(label, start, end, direction, i)

    def get_arc(self, x_start: Any, y: Any, y_curve: Any, x_end: Any) -> str:
        if self._moved is not None:
            direction, x = self._moved
            x_start, x_end = (x, x_end) if direction == "left" else (x_start, x)
        return super().get_arc(x_start, y, y_curve, x_end)

    def get_arrowhead(self, direction: str, x: Any, y: Any, end: Any) -> str:
        if self._moved is not None:
            x, end = (self._moved[1], end) if direction == "left" else (x, self._moved[1])
        return super().get_arrowhead(direction, x, y, end)


_SVG_SIZE_RE = re.compile(
    r'(<svg [^>]*?)width="([0-9.]+)" height="([0-9.]+)"([^>]*?)height: [0-9.]+px'
)


def _fit_width(svg: str, max_width: int) -> str:
    """Scale a displaCy SVG wider than `max_width` px down to that width (a viewBox keeps the
    drawing whole); narrower ones are returned unchanged."""
    match = _SVG_SIZE_RE.search(svg)
    if match is None or float(match.group(2)) <= max_width:
        return svg
    width, height = float(match.group(2)), float(match.group(3))
    scaled = height * max_width / width
    return _SVG_SIZE_RE.sub(
        f'\\1viewBox="0 0 {width:g} {height:g}" width="{max_width}" height="{scaled:.0f}"'
        f"\\4height: {scaled:.0f}px",
        svg,
        count=1,
    )


def _badge(text: str, label: str, colors: Dict[str, str]) -> str:
    color = colors.get(label, DEFAULT_ENTITY_COLOR)
    return (
        f'<mark class="entity" style="background: {color}; padding: 0.1em 0.4em; '
        f'border-radius: 0.3em">{text} <b style="font-size: 0.75em">{label}</b></mark>'
    )


def relations_table(parse: Dict[str, Any], colors: Optional[Dict[str, str]] = None) -> str:
    """An HTML table of the parse's relations (see `doc_to_displacy`): head, label, tail, score,
    heads and tails coloured by entity label; for a doc without relations, a line saying
    "no relations"."""
    rows = parse.get("relations", [])
    if not rows:
        return '<p class="no-relations note">no relations</p>'
    colors = colors if colors is not None else label_colors(
        [r["head_label"] for r in rows] + [r["tail_label"] for r in rows]
    )
    body = "".join(
        f'<tr><td>{_badge(r["head"], r["head_label"], colors)}</td><td><b>{r["label"]}</b></td>'
        f'<td>{_badge(r["tail"], r["tail_label"], colors)}</td><td style="text-align: right">'
        f'{r["score"]:.2f}</td></tr>'
        for r in rows
    )
    return (
        '<table class="relations" style="border-collapse: collapse; margin-top: 1rem">'
        "<thead><tr><th>head</th><th>label</th><th>tail</th><th>score</th></tr></thead>"
        f"<tbody>{body}</tbody></table>"
    )


def cut_note(parse: Dict[str, Any]) -> str:
    """The line that says how much of a long document the page leaves out (see the ``"cut"`` of
    `doc_to_displacy`); "" for a document drawn whole."""
    cut = parse.get("cut")
    if not cut:
        return ""
    left_out = f"{cut['entities']:,} entities and {cut['relations']:,} relations further on"
    return (
        f'<p class="cut note">Only the first {cut["chars"]:,} of {cut["of_chars"]:,} characters '
        f"are drawn (the JSONL record holds the whole document); {left_out} are not shown.</p>"
    )


PAGE_STYLE = """<style>
table.relations th, table.relations td {
  padding: 0.3rem 0.8rem; border-bottom: 1px solid #ddd; text-align: left;
}
table.relations th { font-size: 0.85em; text-transform: uppercase; color: #555; }
.arcs svg { display: block; }
p.note { color: #666; font-style: italic; margin: 0.5rem 0; }
</style>"""


def doc_to_attention_html(doc: Doc, top_k: int = 3, max_chars: int = HTML_MAX_CHARS) -> str:
    """The Doc's text with each token highlighted by its `textcat_attention` weight, and its top
    categories; "" when the Doc has no ``doc._.textcat_attention`` weights.

    A token's weight is the mean over the attention heads, divided by the Doc's largest one;
    it is the opacity of the token's background. The tokens are plain HTML
    ``<span class="attention-token">`` with their text escaped (displaCy has no token
    highlighting); of a Doc longer than `max_chars` characters, only the `shown_tokens`
    (followed by "..."). Below them, the `top_k` highest ``doc.cats`` with their scores.
    """
    weights = doc._.get(ATTENTION_ATTR)
    if weights is None:
        return ""
    per_token = weights.mean(axis=0) if weights.shape[0] else weights.sum(axis=0)
    top = float(per_token.max()) if per_token.size else 0.0
    tokens = []
    n_shown = shown_tokens(doc, max_chars)
    for token, weight in zip(doc[:n_shown], per_token[:n_shown]):
        alpha = float(weight) / top if top > 0 else 0.0
        tokens.append(
            f'<span class="attention-token" title="{float(weight):.4f}" '
            f'style="background-color: rgba(255, 140, 0, {alpha:.3f}); border-radius: 0.2em">'
            f"{html.escape(token.text)}</span>{html.escape(token.whitespace_)}"
        )
    if n_shown < len(doc):
        tokens.append(" ...")
    parts = [
        '<div class="attention" style="margin-top: 1rem; line-height: 2; white-space: pre-wrap">'
        + "".join(tokens)
        + "</div>"
    ]
    cats = sorted(doc.cats.items(), key=lambda item: -item[1])[:top_k]
    if cats:
        shown = ", ".join(f"<b>{html.escape(label)}</b> {score:.2f}" for label, score in cats)
        parts.append(f'<div class="attention-cats" style="margin-top: 0.5rem">{shown}</div>')
    return "".join(parts)


def render_html(
    parses: List[Dict[str, Any]],
    options: Optional[Dict[str, Any]] = None,
    below: Optional[List[str]] = None,
) -> str:
    """One HTML page with one figure per parse (see `doc_to_displacy`), each holding, top to
    bottom: the title; for a document cut at `HTML_MAX_CHARS`, a line saying how much is left
    out (`cut_note`); the entities, nested ones included, coloured by label (displaCy's
    ``span`` style, which wraps with the page; the text keeps its own spacing); the relation
    arcs (displaCy's ``dep`` style, compact, one SVG per row of at most ``HTML_MAX_WIDTH`` px
    (see `_rows`), word tags coloured by label, the arrowheads of arcs ending on one word side
    by side); the table of relations (head, label, tail, score), or "no relations"; then the
    HTML of `below` at the same index (e.g. from `doc_to_attention_html`; "" for nothing). An
    empty (or all-whitespace) document is its title and the line "empty document". displaCy's
    own page and figure templates; one colour per entity label across the page
    (`label_colors`).

    options (Optional[Dict[str, Any]]): extra displaCy ``dep`` options (they override the
        compact layout's ``compact``, ``distance`` and ``offset_x``).
    RAISES (ValueError): if `below` and `parses` differ in length.
    """
    below = below if below is not None else [""] * len(parses)
    if len(below) != len(parses):
        raise ValueError(f"render_html: {len(parses)} parses but {len(below)} 'below' entries")
    labels = [w["tag"] for p in parses for w in p["words"] if w["tag"]]
    labels += [s["label"] for p in parses for s in p.get("spans", {}).get("spans", [])]
    labels += [
        rel[key]
        for p in parses
        for rel in p.get("relations", [])
        for key in ("head_label", "tail_label")
    ]
    colors = label_colors(labels)
    figures = []
    for parse, extra in zip(parses, below):
        title = parse.get("title")
        content = TPL_TITLE.format(title=title) if title else ""
        content += cut_note(parse)
        if parse["words"]:
            content += _render_spans(parse, colors) + _render_arcs(parse, colors, options)
            content += relations_table(parse, colors)
        elif not parse.get("cut"):
            content += '<p class="empty note">empty document</p>'
        figures.append(TPL_FIGURE.format(content=content + extra))
    settings = parses[0].get("settings", {}) if parses else {}
    return TPL_PAGE.format(
        content=PAGE_STYLE + "".join(figures),
        lang=settings.get("lang", "en"),
        dir=settings.get("direction", "ltr"),
    ).strip()  # as displacy.render


def _render_spans(parse: Dict[str, Any], colors: Dict[str, str]) -> str:
    """The entity view of a parse (`_SpanView`, in pieces: `_span_chunks`); "" without
    entities."""
    spans = parse.get("spans")
    if not spans or not spans["spans"]:
        return ""
    whitespace = spans.get("whitespace") or [" "] * len(spans["tokens"])
    tokens = [text + ws for text, ws in zip(spans["tokens"], whitespace)]
    renderer = _SpanView(options={"colors": colors})
    settings = parse.get("settings", {})
    return "".join(
        renderer.render([{**chunk, "settings": settings}], page=False, minify=False).strip()
        for chunk in _span_chunks(tokens, spans["spans"])
    )


def _render_arcs(
    parse: Dict[str, Any], colors: Dict[str, str], options: Optional[Dict[str, Any]] = None
) -> str:
    """The arcs of a parse, one SVG per row (`_ArcView`), in a ``<div class="arcs">``."""
    svgs = []
    default_rows = [{"start": 0, "end": len(parse["words"]), "distance": HTML_MIN_DISTANCE}]
    layouts = parse.get("rows") or default_rows
    row_starts = [layout["start"] for layout in layouts]
    arcs_of_row: Dict[int, List[Dict[str, Any]]] = {}
    for arc in parse["arcs"]:
        arcs_of_row.setdefault(bisect_right(row_starts, arc["start"]) - 1, []).append(arc)
    for k, layout in enumerate(layouts):
        first, end, distance = layout["start"], layout["end"], layout["distance"]
        dep_options = {
            "compact": True,
            "distance": distance,
            "offset_x": distance // 2,
            "word_spacing": HTML_WORD_SPACING,
            **(options or {}),
        }
        row = {
            "words": parse["words"][first:end],
            "arcs": [
                {**arc, "start": arc["start"] - first, "end": arc["end"] - first}
                for arc in arcs_of_row.get(k, [])
                if arc["end"] < end
            ],
            "settings": parse.get("settings", {}),
        }
        svg = _ArcView(options=dep_options).render([row], page=False, minify=False).strip()
        svgs.append(_fit_width(_color_tags(svg, colors), HTML_MAX_WIDTH))
    return '<div class="arcs">' + "".join(svgs) + "</div>"
