"""Build the nested-entity demo corpus: nested.txt (inline markup) -> {train,dev,test}.jsonl.

The output is Prodigy ``rel.manual`` JSONL, as ``assets/demo/*.jsonl`` (see assets/demo/README.md
for the fields), read by ``python -m spacy_ie convert ... --format prodigy``. Entities may nest
(``[University of [Ohio|LOC s]|ORG o]``), so several spans can end on the same token: each
relation's ``head_span``/``child_span`` tells them apart. Tokens come from ``spacy.blank("en")``;
every entity must align with them (``Doc.char_span(..., alignment_mode="strict")``), or this
script stops with the line number.

    python assets/nested/build.py            # rewrites assets/nested/{train,dev,test}.jsonl
"""
import json
import sys
import zlib
from pathlib import Path
from typing import Any, Dict, List, Tuple

import spacy

HERE = Path(__file__).resolve().parent
COLORS = {"WORKS_FOR": "#c5bdf4", "LOCATED_IN": "#ffd882", "BORN_IN": "#d9fbad"}


def parse_markup(line: str, where: str) -> Tuple[str, Dict[str, Tuple[int, int, str]]]:
    """The plain text of a marked-up sentence and its entities: id -> (start, end, label)
    in characters, end exclusive. RAISES (ValueError): unbalanced brackets, a missing label."""
    text: List[str] = []
    stack: List[int] = []  # start offset of each open entity
    entities: Dict[str, Tuple[int, int, str]] = {}
    i = 0
    while i < len(line):
        char = line[i]
        if char == "[":
            stack.append(len("".join(text)))
            i += 1
        elif char == "|" and stack:
            close = line.index("]", i)
            label, ident = line[i + 1 : close].split()
            start = stack.pop()
            if ident in entities:
                raise ValueError(f"{where}: entity id {ident!r} used twice")
            entities[ident] = (start, len("".join(text)), label)
            i = close + 1
        elif char in "]|":
            raise ValueError(f"{where}: unbalanced markup at column {i}")
        else:
            text.append(char)
            i += 1
    if stack:
        raise ValueError(f"{where}: {len(stack)} entities are not closed")
    return "".join(text), entities


def to_task(nlp, line: str, where: str) -> Dict[str, Any]:
    """One Prodigy rel.manual task from a markup line ``SENTENCE || h LABEL t; ...``."""
    sentence, _, rels = line.partition(" || ")
    text, entities = parse_markup(sentence, where)
    doc = nlp.make_doc(text)
    tokens = [
        {"text": t.text, "start": t.idx, "end": t.idx + len(t), "id": t.i, "ws": bool(t.whitespace_),
         "disabled": False}
        for t in doc
    ]  # fmt: skip
    spans: Dict[str, Dict[str, Any]] = {}
    for ident, (start, end, label) in entities.items():
        span = doc.char_span(start, end, alignment_mode="strict")
        if span is None:
            raise ValueError(f"{where}: entity {text[start:end]!r} does not align with tokens")
        spans[ident] = {"text": span.text, "start": start, "end": end, "token_start": span.start,
                        "token_end": span.end - 1, "type": "span", "label": label}  # fmt: skip
    relations = []
    for rel in filter(None, (r.strip() for r in rels.split(";"))):
        head, label, child = rel.split()
        if head not in spans or child not in spans:
            raise ValueError(f"{where}: relation {rel!r} names a missing entity")
        relations.append({
            "head": spans[head]["token_end"], "child": spans[child]["token_end"],
            "head_span": spans[head], "child_span": spans[child], "label": label,
            "color": COLORS.get(label, "#dddddd"),
        })  # fmt: skip
    ordered = sorted(spans.values(), key=lambda s: (s["start"], -s["end"]))
    input_hash = zlib.crc32(text.encode("utf8")) - 2**31
    task_hash = zlib.crc32((text + json.dumps(relations)).encode("utf8")) - 2**31
    return {
        "text": text, "_input_hash": input_hash, "_task_hash": task_hash, "tokens": tokens,
        "spans": ordered, "relations": relations, "answer": "accept",
        "meta": {"source": "spacy-ie nested-entity demo corpus"}, "_view_id": "relations",
        "_session_id": None,
    }  # fmt: skip


def main(source: Path = HERE / "nested.txt", out_dir: Path = HERE) -> None:
    nlp = spacy.blank("en")
    splits: Dict[str, List[Dict[str, Any]]] = {}
    split = None
    seen = set()
    for line_no, line in enumerate(source.read_text(encoding="utf8").splitlines(), 1):
        if line.startswith("## "):
            split = line[3:].strip()
            splits[split] = []
        elif line.strip() and not line.startswith("#"):
            where = f"{source.name}, line {line_no}"
            if split is None:
                raise ValueError(f"{where}: a sentence before the first '## split' header")
            task = to_task(nlp, line, where)
            if task["text"] in seen:
                raise ValueError(f"{where}: the text appears twice")
            seen.add(task["text"])
            splits[split].append(task)
    for name, tasks in splits.items():
        path = out_dir / f"{name}.jsonl"
        with path.open("w", encoding="utf8") as file:
            for task in tasks:
                file.write(json.dumps(task, ensure_ascii=False) + "\n")
        n_spans = sum(len(t["spans"]) for t in tasks)
        n_rels = sum(len(t["relations"]) for t in tasks)
        print(f"{path}: {len(tasks)} docs, {n_spans} entities, {n_rels} relations", file=sys.stderr)


if __name__ == "__main__":
    main()
