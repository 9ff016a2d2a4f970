"""Griffe extension for the docs build: render spacy-ie's spaCy-style docstrings as Markdown.

The package's docstrings follow spaCy's own style, not Google's or NumPy's: one line per
argument, ``name (type): description``, continued on lines indented by 4 spaces, and
``RETURNS (type): ...`` / ``RAISES (Error): ...`` lines; some use reStructuredText roles
(``:class:`Relation```), ``::`` before an indented literal block, and ``>>>`` examples.
mkdocstrings renders a docstring without a style (``docstring_style: null``) as plain
Markdown, where those argument lines run together into one paragraph. This extension rewrites
the docstring text only (nothing is parsed into sections, so it cannot warn or fail):

- a run of argument lines becomes a list: ``- **name** (*type*): description``;
- ``:role:`target``` becomes ``target`` in code;
- a trailing ``::`` becomes ``:``, and the indented block after it a fenced ``text`` block;
- ``>>>`` lines become a fenced ``pycon`` block;
- a reStructuredText simple table (``====  ====`` borders) becomes a fenced ``text`` block.

Used from mkdocs.yml (mkdocstrings handler option ``extensions``); not part of the package.
"""
from __future__ import annotations

import re
from typing import Any, List

import griffe

_ROLE = re.compile(r":(?:class|func|meth|attr|mod|data|obj|exc|py:\w+):`~?([^`]+)`")
_IDENT = r"\*{0,2}(?:[a-z_]\w*|RETURNS|RAISES|YIELDS|WARNS)"
_TYPE = r"\((?:[^()`]|\([^()`]*\))*\)"
# "name (type): ...", "a, b (type): ...", "a (int), b (float): ...", "a, b, c: ..." (a list of
# two or more names), "RETURNS (type): ...", "RAISES (Error): ...".
_ARG = re.compile(
    rf"^(?P<names>{_IDENT}(?: {_TYPE})?(?:, {_IDENT}(?: {_TYPE})?)*)(?P<type> {_TYPE})?: (?P<desc>.*)$"
)
_RST_TABLE_BORDER = re.compile(r"^=+(?: +=+)+\s*$")
_SECTION_WORDS = {"RETURNS": "Returns", "RAISES": "Raises", "YIELDS": "Yields", "WARNS": "Warns"}


def _arg_item(match: "re.Match[str]") -> str | None:
    """The list item for an argument line, or None when the line is prose after all."""
    names, type_, desc = match.group("names"), match.group("type"), match.group("desc")
    has_type = type_ is not None or "(" in names
    if not has_type and "," not in names:
        return None  # "Note: ..." is prose; a bare "name: ..." is too rare to tell apart
    parts = re.findall(rf"({_IDENT})( {_TYPE})?", names)
    rendered = []
    for name, own_type in parts:
        label = _SECTION_WORDS.get(name, None)
        text = f"**{label}**" if label else f"**`{name}`**"
        if own_type:
            text += f" (*{own_type.strip()[1:-1]}*)"
        rendered.append(text)
    head = ", ".join(rendered)
    if type_:
        head += f" (*{type_.strip()[1:-1]}*)"
    return f"- {head}: {desc}"


def to_markdown(text: str) -> str:
    """Rewrite one (dedented) docstring as described in the module docstring."""
    text = _ROLE.sub(r"`\1`", text)
    out: List[str] = []
    in_fence = False  # a ``` block
    in_code = False  # an indented code block (after a blank line)
    in_list = False  # inside a list item (an argument line, or a "- " item of the docstring)
    in_doctest = False
    literal_next = False  # the previous text line ended with "::"
    literal_indent = -1  # inside a literal block: its indentation (-1: not inside one)
    table_borders = 0  # inside a reStructuredText simple table: the border lines seen so far

    def previous_is_text() -> bool:
        return bool(out) and bool(out[-1].strip())

    for line in text.split("\n"):
        stripped = line.strip()
        indent = len(line) - len(line.lstrip())
        if table_borders:
            out.append(line)
            if _RST_TABLE_BORDER.match(line):
                table_borders += 1
                if table_borders == 3:
                    out.append("```")
                    table_borders = 0
            continue
        if _RST_TABLE_BORDER.match(line) and not in_fence and literal_indent < 0:
            if out and out[-1].strip():
                out.append("")
            out.extend(["```text", line])
            table_borders = 1
            in_list = in_code = False
            continue
        if literal_indent >= 0:
            if not stripped or indent >= literal_indent:
                out.append(line[literal_indent:] if stripped else "")
                continue
            while out and not out[-1].strip():
                out.pop()
            out.extend(["```", ""])
            literal_indent = -1
        if literal_next and stripped:
            literal_next = False
            if indent > 0:
                if out and out[-1].strip():
                    out.append("")
                out.extend(["```text", line[indent:]])
                literal_indent = indent
                in_list = in_code = False
                continue
        if stripped.startswith("```"):
            in_fence = not in_fence
            out.append(line)
            continue
        if in_fence:
            out.append(line)
            continue
        if in_doctest:
            if stripped:
                out.append(stripped)
                continue
            out.append("```")
            in_doctest = False
        if stripped.startswith(">>>") and not in_code:
            if previous_is_text():
                out.append("")
            out.extend(["```pycon", stripped])
            in_doctest = True
            in_list = False
            continue
        if not stripped:
            in_list = False
            out.append(line)
            continue
        if stripped.endswith("::"):
            literal_next = True
            line = line.rstrip()[:-1]
        if indent:
            if in_list or (previous_is_text() and not in_code):
                out.append(line)  # a continuation line (of a list item or of a paragraph)
            else:
                in_code = True  # an indented block after a blank line: code
                out.append(line)
            continue
        in_code = False
        match = _ARG.match(line)
        item = _arg_item(match) if match else None
        if item is not None or re.match(r"^(?:[-*+]|\d+\.) ", line):
            if previous_is_text() and not in_list:
                out.append("")  # a Markdown list needs a blank line after a paragraph
            out.append(item if item is not None else line)
            in_list = True
            continue
        if in_list:
            out.append("")  # end the list before the next paragraph
            in_list = False
        out.append(line)
    if in_doctest or table_borders:
        out.append("```")
    if literal_indent >= 0:
        while out and not out[-1].strip():
            out.pop()
        out.append("```")
    return "\n".join(out)


class SpacyDocstrings(griffe.Extension):
    """Rewrite every docstring of the loaded package to Markdown (see `to_markdown`)."""

    def on_package(self, *, pkg: griffe.Module, **kwargs: Any) -> None:
        self._rewrite(pkg, set())

    def _rewrite(self, obj: griffe.Object, seen: set) -> None:
        if obj.path in seen:
            return
        seen.add(obj.path)
        if obj.docstring is not None:
            obj.docstring.value = to_markdown(obj.docstring.value)
        for member in obj.members.values():
            if not member.is_alias:
                self._rewrite(member, seen)
