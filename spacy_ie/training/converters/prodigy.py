"""Prodigy ``rel.manual`` JSONL -> Docs.

Source: Prodigy's relations interface (https://prodi.gy/docs/dependencies-relations), as
exported with ``prodigy db-out``. One task per line:

    {"text": "...",
     "tokens": [{"text": "Smad", "start": 13, "end": 17, "id": 2, "ws": false}, ...],
     "spans": [{"start": 13, "end": 17, "token_start": 2, "token_end": 2, "label": "GGP"}, ...],
     "relations": [{"head": 2, "child": 10, "label": "Pos-Reg", "head_span": {...}, ...}, ...],
     "answer": "accept"}

``spans`` use character offsets (end exclusive) and inclusive token indices; a relation's
``head``/``child`` is the index of the *last* token of its head/tail span, which is looked up
among ``spans`` (``head_span``/``child_span`` only break ties between spans ending on the same
token: Prodigy's copies can be stale). Only ``accept`` tasks become Docs; ``reject`` and
``ignore`` tasks are counted in the summary. The Doc is built from the task's tokens
(``text`` and ``ws``), so its token indices are Prodigy's.

Document labels, optional, follow Prodigy's ``textcat`` choice tasks: ``"options": [{"id":
label, "text": ...}, ...]`` lists the labels and ``"accept": [label, ...]`` the chosen ones;
``doc.cats`` gets 1.0 for each accepted option and 0.0 for the others (a task without
``options`` has no cats).
"""
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Tuple

from spacy.language import Language
from spacy.tokens import Doc

from .util import (
    ConversionSummary,
    TokenEntity,
    TokenRelation,
    annotate_doc,
    check,
    check_label,
    get_list,
    is_int,
    make_doc_from_words,
    read_jsonl,
)

ANSWERS = ("accept", "reject", "ignore")


def prodigy_to_docs(path: Path, nlp: Language, summary: ConversionSummary) -> Iterator[Doc]:
    """Convert a Prodigy ``rel.manual`` JSONL file: one Doc per accepted task, in order.

    RAISES (ConversionError): for a line that is not a JSON object, a missing or unknown
        ``answer``, and in accepted tasks: missing or malformed ``tokens``, a span whose token
        indices are out of range or whose character offsets do not match its tokens, a
        relation whose ``head``/``child`` is not the last token of exactly one span.
    """
    for loc, task in read_jsonl(path):
        check(
            "answer" in task,
            path,
            loc,
            "missing field 'answer' (expected 'accept', 'reject' or 'ignore')",
        )
        answer = task["answer"]
        check(
            answer in ANSWERS,
            path,
            loc,
            f"'answer' must be 'accept', 'reject' or 'ignore', got {answer!r:.40}",
        )
        if answer != "accept":
            summary.skipped[f"tasks with answer {answer!r} (only 'accept' tasks become docs)"] += 1
            continue
        yield _task_to_doc(task, nlp, summary, path, loc)


def _task_to_doc(
    task: dict, nlp: Language, summary: ConversionSummary, path: Path, loc: str
) -> Doc:
    tokens = get_list(task, "tokens", path, loc, required=True)
    check(tokens, path, loc, "'tokens' is empty")
    words: List[str] = []
    spaces: List[bool] = []
    offsets: List[Optional[Tuple[int, int]]] = []
    for k, token in enumerate(tokens):
        check(isinstance(token, dict), path, loc, f"token {k} must be an object, got {token!r:.80}")
        for key in ("text", "ws"):
            check(key in token, path, loc, f"token {k} is missing field {key!r}")
        check(isinstance(token["ws"], bool), path, loc, f"token {k}: 'ws' must be true or false")
        check(
            token.get("id", k) == k and not isinstance(token.get("id"), bool),
            path,
            loc,
            f"token {k} has id {token.get('id')!r:.40}; token ids must be 0, 1, 2, ... in order",
        )
        start, end = token.get("start"), token.get("end")
        offsets.append((start, end) if is_int(start) and is_int(end) else None)
        words.append(token["text"])
        spaces.append(token["ws"])
    doc = make_doc_from_words(nlp, words, spaces, path, loc)
    n = len(doc)
    entities: List[TokenEntity] = []
    for j, span in enumerate(get_list(task, "spans", path, loc, required=False)):
        entities.append(_span_to_entity(span, j, n, offsets, path, loc))
    relations: List[TokenRelation] = []
    for j, rel in enumerate(get_list(task, "relations", path, loc, required=False)):
        check(isinstance(rel, dict), path, loc, f"relation {j} must be an object, got {rel!r:.80}")
        for key in ("head", "child", "label"):
            check(key in rel, path, loc, f"relation {j} is missing field {key!r}")
        label = rel["label"]
        check_label(label, path, loc, f"relation {j}: 'label'")
        head = _find_entity(entities, rel, "head", j, path, loc)
        tail = _find_entity(entities, rel, "child", j, path, loc)
        relations.append((head, tail, label))
    doc.cats = _task_cats(task, path, loc)
    return annotate_doc(doc, entities, relations, summary)


def _task_cats(task: dict, path: Path, loc: str) -> Dict[str, float]:
    """``doc.cats`` from a task's ``options`` and ``accept`` (Prodigy's textcat choice tasks):
    1.0 for the accepted options, 0.0 for the others; {} without ``options``."""
    labels: List[str] = []
    for j, option in enumerate(get_list(task, "options", path, loc, required=False)):
        check(isinstance(option, dict) and "id" in option, path, loc,
              f"option {j} must be an object with an 'id', got {option!r:.80}")
        labels.append(check_label(option["id"], path, loc, f"option {j}: 'id'"))
    accepted = get_list(task, "accept", path, loc, required=False)
    for label in accepted:
        check(label in labels, path, loc,
              f"'accept' has {label!r:.40}, which is not the 'id' of any of the 'options'")
    return {label: float(label in accepted) for label in labels}


def _span_to_entity(
    span: Any,
    j: int,
    n: int,
    offsets: List[Optional[Tuple[int, int]]],
    path: Path,
    loc: str,
) -> TokenEntity:
    check(isinstance(span, dict), path, loc, f"span {j} must be an object, got {span!r:.80}")
    for key in ("token_start", "token_end", "label"):
        check(key in span, path, loc, f"span {j} is missing field {key!r}")
    label, first, last = span["label"], span["token_start"], span["token_end"]
    check_label(label, path, loc, f"span {j}: 'label'")
    check(
        is_int(first) and is_int(last) and 0 <= first <= last < n,
        path,
        loc,
        f"span {j} {label!r}: tokens {first!r:.20}..{last!r:.20} (inclusive) are out of range "
        f"for {n} tokens",
    )
    if "start" in span or "end" in span:
        start, end = span.get("start"), span.get("end")
        check(
            is_int(start) and is_int(end),
            path,
            loc,
            f"span {j} {label!r}: 'start' and 'end' must be integer character offsets",
        )
        first_chars, last_chars = offsets[first], offsets[last]
        check(
            first_chars is not None and last_chars is not None,
            path,
            loc,
            f"span {j} {label!r} has character offsets but its tokens have no 'start'/'end'",
        )
        assert first_chars is not None and last_chars is not None
        check(
            (start, end) == (first_chars[0], last_chars[1]),
            path,
            loc,
            f"span {j} {label!r}: characters [{start}, {end}) do not match its tokens "
            f"{first}..{last}, which cover [{first_chars[0]}, {last_chars[1]})",
        )
    return (first, last + 1, label)


def _find_entity(
    entities: List[TokenEntity], rel: dict, role: str, j: int, path: Path, loc: str
) -> TokenEntity:
    """The span whose last token is rel[role]; rel[role + '_span'] breaks ties."""
    last = rel[role]
    check(
        is_int(last), path, loc, f"relation {j}: {role!r} must be a token index, got {last!r:.40}"
    )
    found = list(dict.fromkeys(e for e in entities if e[1] - 1 == last))
    hint = rel.get(f"{role}_span")
    if len(found) > 1 and isinstance(hint, dict):
        narrowed = [
            e
            for e in found
            if e[0] == hint.get("token_start") and hint.get("label", e[2]) == e[2]
        ]
        found = narrowed or found
    check(
        found,
        path,
        loc,
        f"relation {j} {rel['label']!r}: {role} = {last} points at a missing entity (no span in "
        "'spans' ends on that token)",
    )
    check(
        len(found) == 1,
        path,
        loc,
        f"relation {j} {rel['label']!r}: {role} = {last} is ambiguous: {len(found)} spans end "
        f"on that token and '{role}_span' does not pick one",
    )
    return found[0]
