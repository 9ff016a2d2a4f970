"""`spacy-ie convert`: corpus files -> spaCy DocBin with gold relations. The summary goes to
stdout, errors and warnings (what was skipped or changed) to stderr."""
from pathlib import Path
from typing import Annotated, Optional

import typer
from wasabi import msg

from ..training.converters import CONVERTERS, ConversionError, ConversionSummary, convert
from ._app import app, fail, warn


@app.command("convert")
def convert_cli(
    input_path: Annotated[
        Path,
        typer.Argument(
            metavar="INPUT",
            help="Corpus file (brat: a directory of .txt/.ann pairs, or one .ann file; "
            "label-studio: Label Studio's JSON export; doccano: doccano's JSONL export).",
            show_default=False,
        ),
    ],
    output_path: Annotated[
        Path,
        typer.Argument(metavar="OUTPUT", help="The .spacy file to write.", show_default=False),
    ],
    fmt: Annotated[
        str,
        typer.Option(
            "--format", "-f", help=f"Input format: {', '.join(CONVERTERS)}.", show_default=False
        ),
    ],
    lang: Annotated[
        str, typer.Option("--lang", "-l", help="Language of the blank tokenizer and vocab.")
    ] = "en",
    spans_key: Annotated[
        str, typer.Option(
            "--spans-key", "--span-key", "-k",
            help="doc.spans key that holds all entities (the relation_extractor's spans_key).",
        )
    ] = "entities",
    types_path: Annotated[
        Optional[Path],
        typer.Option(
            "--types",
            help="spert: the dataset's *_types.json, for its symmetric relation labels "
            "(default: X_types.json beside X_split.json, if there).",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Convert a relation extraction corpus to a spaCy DocBin (.spacy) with gold relations.

    The Docs carry all entities in doc.spans[SPAN_KEY], the non-overlapping ones in doc.ents,
    and the gold relations in doc._.relations. For CoNLL IOB NER data use `spacy convert`.
    """
    try:
        summary = convert(
            input_path, output_path, fmt, lang=lang, spans_key=spans_key, types_path=types_path
        )
    except ConversionError as err:
        fail("Conversion failed; nothing was written", str(err))
    except OSError as err:
        fail(f"Cannot write {output_path}", str(err))
    print_summary(summary, output_path)


def print_summary(summary: ConversionSummary, output_path: Optional[Path] = None) -> None:
    """Print a conversion summary on stdout: docs and labels; everything skipped or changed
    as warnings on stderr."""
    target = f" -> {output_path}" if output_path is not None else ""
    msg.good(
        f"Converted {summary.n_docs} docs ({summary.fmt}): {summary.n_tokens} tokens, "
        f"{summary.n_entities} entities, {summary.n_relations} relations{target}"
    )
    for title, counts in (
        ("Entity label", summary.entity_labels),
        ("Relation label", summary.relation_labels),
    ):
        if counts:
            msg.table(
                counts.most_common(), header=(title, "Count"), divider=True, aligns=("l", "r")
            )
    for reason, count in summary.skipped.items():
        warn(f"Skipped {count}: {reason}")
    for reason, count in summary.changed.items():
        warn(f"Changed {count}: {reason}")
    for reason, count in summary.notes.items():
        msg.info(f"{reason}: {count}")
    if summary.types_path is not None:
        if summary.symmetric_labels:
            msg.info(
                f"Symmetric relation labels ({summary.types_path}): "
                f"{', '.join(sorted(summary.symmetric_labels))}. Train them as symmetric with",
                summary.symmetric_override,
            )
        else:
            msg.info(f"No symmetric relation labels ({summary.types_path}): all are directed")
