"""Knowledge distillation: a student pipeline trained on what a teacher pipeline extracts from raw
text (issue 27).

The teacher (e.g. the MiniLM joint span pipeline) annotates unlabeled text with entities and
relations; the student (any ``spacy train`` config, e.g. the sourced CNN pipeline) trains on
those annotations as if they were gold, together with gold data when given. This is
sequence-level distillation with hard targets (Kim & Rush 2016, "Sequence-Level Knowledge
Distillation": the student trains on the teacher's outputs on unlabeled text, as in
self-training, e.g. Xie et al. 2020, "Self-training with Noisy Student improves ImageNet
classification"): the student learns the teacher's decisions, not its probabilities, so any
student config works unchanged and the teacher's tuned thresholds carry over.

With `soft_spans` (a weight above 0) the entities are also distilled with soft targets (Hinton
et al. 2015): the teacher's ``spancat_singlelabel`` writes its probabilities for every suggested
span it gives at least `MIN_SOFT_PROB` of entity mass (`teacher_soft_spans`), and the student's
``spancat_singlelabel`` becomes ``spancat_singlelabel_soft``
(`spacy_ie.pipeline.soft_spancat`), which mixes them into its targets with that weight.

Output directory (``OUTPUT``)::

    teacher.spacy   the teacher's annotations of every raw document (reused by a re-run with
                    the same teacher and raw text: see `TEACHER_META`)
    teacher.json    what it was made from
    train.spacy     the student's training Docs: teacher-annotated documents (less the dev
                    slice, less texts that the gold data has) + the gold training Docs, repeated
                    to `DEFAULT_GOLD_SHARE` of the tokens (see `gold_copies`)
    dev.spacy       only without a gold dev set: every `heldout_every`-th teacher document
    student.cfg     only with `soft_spans`: the student config with its spancat switched
    model-best/, model-last/   ``spacy train``'s output
"""
import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, Iterator, List, Optional, Union

from spacy.cli.train import train as spacy_train
from spacy.language import Language
from spacy.pipeline.spancat import SpanCategorizer
from spacy.tokens import Doc, DocBin
from spacy.util import filter_spans, load_config, minibatch
from spacy.vocab import Vocab
from wasabi import msg

from ..pipeline.soft_spancat import SOFT_SPANS_KEY, set_soft_spans
from ..records import InputDoc
from ..relations import USER_DATA_KEY, relation_count

TEACHER_DOCS = "teacher.spacy"
TEACHER_META = "teacher.json"
DEFAULT_SPANS_KEY = "entities"
DEFAULT_HELDOUT_EVERY = 10
DEFAULT_GOLD_SHARE = 0.5
MIN_SOFT_PROB = 0.01
SOFT_FACTORY = "spancat_singlelabel_soft"


@dataclass
class DistillSummary:
    """What `distill` trained on: raw documents the teacher annotated (`n_annotated`), with
    entities and relations in them; teacher documents in the student's training set
    (`n_teacher_train`: less the dev slice and the texts the gold data has) and gold training
    documents (`n_gold_train`), each `gold_copies` times in the training set; the dev set
    (`dev_source`: "gold" or "teacher", `n_dev` documents); whether the teacher's annotations
    were reused from an earlier run; the soft span targets' weight (0: none)."""

    n_annotated: int = 0
    n_entities: int = 0
    n_relations: int = 0
    n_teacher_train: int = 0
    n_gold_train: int = 0
    gold_copies: int = 1
    n_dev: int = 0
    dev_source: str = "teacher"
    reused_annotations: bool = False
    soft_spans: float = 0.0


def complete_entities(doc: Doc, spans_key: str = DEFAULT_SPANS_KEY) -> Doc:
    """Give `doc` its entities both as ``doc.ents`` and as ``doc.spans[spans_key]``, so that a
    student learns from either whichever kind of component the teacher has: a span group and
    no ``doc.ents`` (a ``spancat`` teacher) -> ``doc.ents`` is the group less its overlaps
    (``spacy.util.filter_spans``: longest first); ``doc.ents`` and no group (an ``ner`` teacher)
    -> the group is ``doc.ents``. RETURNS: `doc`, changed in place."""
    group = doc.spans.get(spans_key) if spans_key in doc.spans else None
    if group is not None and len(group) and not doc.ents:
        doc.ents = filter_spans(list(group))
    elif doc.ents and (group is None or not len(group)):
        doc.spans[spans_key] = list(doc.ents)
    return doc


def gold_copies(n_teacher_tokens: int, n_gold_tokens: int, gold_share: float) -> int:
    """How many copies of the gold training documents make them at least `gold_share` of the
    student's training tokens (the batches are sized in words, so tokens are what the updates
    see): the smallest k >= 1 with ``k * gold / (k * gold + teacher) >= gold_share``. Gold text
    is usually far smaller than the raw text (CoNLL04 train: 3% of the documents beside the
    pretraining text), and at its natural share a student learns the gold labels slowly: in
    BENCHMARKS.md ("Distillation, first run") 4,000 steps at 3% gave 34.5 end-to-end F1 on
    CoNLL04 test, far below the same config trained on gold alone; 0.5, the default:
    "Distillation, gold data at half the tokens" there.
    Repeating the gold data is the usual mix of labelled and pseudo-labelled data in
    self-training (Xie et al. 2020 sample the two in a fixed ratio per batch).

    RETURNS (int): 1 when `gold_share` is 0 or there is no gold text.
    RAISES (ValueError): `gold_share` outside [0, 1).
    """
    if not 0.0 <= gold_share < 1.0:
        raise ValueError(f"distill: gold_share must be in [0, 1), not {gold_share}")
    if gold_share == 0.0 or n_gold_tokens == 0:
        return 1
    return max(1, math.ceil(gold_share * n_teacher_tokens / ((1.0 - gold_share) * n_gold_tokens)))


def annotate(
    teacher: Language,
    documents: Iterable[InputDoc],
    *,
    spans_key: str = DEFAULT_SPANS_KEY,
    batch_size: int = 64,
    progress: Optional[Callable[[int], Any]] = None,
    soft_spans: bool = False,
) -> Iterator[Doc]:
    """The teacher's Docs of `documents` (``(text, meta)`` pairs, e.g. from
    `spacy_ie.records.read_documents`), in order, each with `complete_entities` and with no
    user data but its relations (and, with `soft_spans`, `teacher_soft_spans`' span
    probabilities): a transformer teacher's ``doc._.trf_data`` (its hidden states, tens of KB a
    sentence) would otherwise be kept, and written by ``DocBin(store_user_data=True)``.
    progress: called with 1 per Doc (e.g. ``tqdm.update``).
    RAISES (ValueError): `soft_spans` with a teacher that has no ``spancat_singlelabel`` for
        `spans_key`."""
    spancat = span_categorizer(teacher, spans_key) if soft_spans else None
    if soft_spans and spancat is None:
        raise ValueError(
            f"soft span targets need a teacher with a spancat_singlelabel on the span group "
            f"{spans_key!r}; {teacher.pipe_names} has none"
        )
    keep = {USER_DATA_KEY, SOFT_SPANS_KEY}
    texts = (text for text, _ in documents)
    for batch in minibatch(teacher.pipe(texts, batch_size=batch_size), batch_size):
        if spancat is not None:
            teacher_soft_spans(spancat, batch)
        for doc in batch:
            if progress is not None:
                progress(1)
            for key in [key for key in doc.user_data if key not in keep]:
                del doc.user_data[key]
            yield complete_entities(doc, spans_key)


def span_categorizer(nlp: Language, spans_key: str) -> Optional[SpanCategorizer]:
    """The pipeline's single-label span categorizer (``spancat_singlelabel``: a "no entity"
    column) that writes ``doc.spans[spans_key]``, or None."""
    for _, pipe in nlp.pipeline:
        if isinstance(pipe, SpanCategorizer) and pipe.key == spans_key and pipe.add_negative_label:
            return pipe
    return None


def teacher_soft_spans(spancat: SpanCategorizer, docs: List[Doc], min_prob: float = MIN_SOFT_PROB) -> None:
    """Store on each Doc (`spacy_ie.pipeline.soft_spancat.set_soft_spans`) the teacher's label
    distribution, (n_spans, n_labels + 1) with "no entity" last, of each suggested span whose
    entity probability is at least `min_prob`. The rest (all but 2.4 spans a document of the
    `pretrain-text` output with the MiniLM joint teacher, BENCHMARKS.md) are "no entity" to
    within `min_prob`, and the student's hard target for them, "no entity", stands in for it.
    The Docs must have been through the teacher's pipeline (the span categorizer reads its
    listener's output from them)."""
    ops = spancat.model.ops
    indices, scores = spancat.predict(docs)
    starts_ends, lengths = ops.to_numpy(indices.data), ops.to_numpy(indices.lengths)
    scores = ops.to_numpy(scores)
    labels, negative = list(spancat.labels), spancat._negative_label_i
    offset = 0
    for doc, n in zip(docs, lengths):
        probs, spans = scores[offset : offset + n], starts_ends[offset : offset + n]
        kept = probs[:, negative] <= 1.0 - min_prob
        set_soft_spans(doc, spancat.key, labels, spans[kept], probs[kept])
        offset += int(n)


def soft_student_config(config_path: Union[str, Path], spans_key: str, soft_weight: float) -> Any:
    """The student config (a `thinc.api.Config`, not interpolated) with each
    ``spancat_singlelabel`` on `spans_key` switched to ``spancat_singlelabel_soft`` with
    `soft_weight`. RAISES (ValueError): a config without one."""
    config = load_config(config_path, interpolate=False)
    switched = []
    for name, component in config.get("components", {}).items():
        if component.get("factory") == "spancat_singlelabel" and component.get("spans_key") == spans_key:
            component["factory"] = SOFT_FACTORY
            component["soft_weight"] = soft_weight
            switched.append(name)
    if not switched:
        raise ValueError(
            f"{config_path}: soft span targets need a student with a spancat_singlelabel on the "
            f"span group {spans_key!r} (a [components.*] block with factory = \"spancat_singlelabel\" "
            f"and spans_key = \"{spans_key}\")"
        )
    return config


def _source_id(path: Path) -> Dict[str, Any]:
    stat = path.stat()
    return {"path": str(path.resolve()), "size": stat.st_size, "mtime": stat.st_mtime}


def _read(path: Union[str, Path], vocab: Vocab) -> List[Doc]:
    return list(DocBin().from_disk(path).get_docs(vocab))


def distill(
    teacher_path: Union[str, Path],
    raw_path: Union[str, Path],
    config_path: Union[str, Path],
    output_dir: Union[str, Path],
    *,
    overrides: Optional[Dict[str, Any]] = None,
    use_gpu: int = -1,
    spans_key: str = DEFAULT_SPANS_KEY,
    heldout_every: int = DEFAULT_HELDOUT_EVERY,
    gold_share: float = DEFAULT_GOLD_SHARE,
    paragraphs: bool = False,
    soft_spans: float = 0.0,
    batch_size: int = 64,
    show_progress: bool = True,
) -> DistillSummary:
    """Annotate `raw_path` with the teacher pipeline, then train the student config on the
    teacher's annotations (with the gold ``paths.train`` of `overrides`, when given) with
    ``spacy train`` into `output_dir` (see the module docstring for the files).

    teacher_path: a trained pipeline (directory or package name) that sets entities (``ner``:
        ``doc.ents``; ``spancat``: ``doc.spans[spans_key]``) and ``doc._.relations``.
    raw_path: ``.txt`` (one document per line; per paragraph with `paragraphs`) or ``.jsonl``
        (a "text" per line), as `spacy_ie.records.read_documents` reads them.
    config_path: the student's ``spacy train`` config; its corpora read ``paths.train`` and
        ``paths.dev`` (e.g. with ``spacy_ie.RelationCorpus.v1``).
    overrides: config overrides as for ``spacy train``. ``paths.train`` (gold Docs) is added
        to the teacher's documents (a teacher document whose text is a gold one's is dropped:
        gold wins); ``paths.dev`` (gold Docs) selects the student's model-best. Without
        ``paths.dev``, every `heldout_every`-th teacher document is held out as the dev set
        (``dev.spacy``): the student is then selected on agreement with the teacher.
    gold_share: the gold training documents are repeated until they are at least this share
        of the training tokens (`gold_copies`); 0 adds them once.
    soft_spans: the weight of the teacher's span probabilities in the student's span targets
        (`spacy_ie.pipeline.soft_spancat`), in [0, 1]; 0 (the default): hard targets only.
    RETURNS (DistillSummary): the counts.
    RAISES (ValueError): `heldout_every` below 2, `gold_share` outside [0, 1), `soft_spans`
        outside [0, 1] or without a spancat_singlelabel in the teacher or the student config,
        raw text without any document, or a teacher that found no relation in it. (spacy_ie.records.InputError): unreadable raw text.
        (spacy_ie.util.PipelineLoadError): a teacher that does not load.
    """
    from tqdm import tqdm

    from ..records import count_documents, read_documents
    from ..util import load_pipeline

    if heldout_every < 2:
        raise ValueError(f"distill: heldout_every must be >= 2, not {heldout_every}")
    gold_copies(0, 0, gold_share)  # validates it before the teacher's annotation
    if not 0.0 <= soft_spans <= 1.0:
        raise ValueError(f"distill: soft_spans must be in [0, 1], not {soft_spans}")
    output_dir, raw_path = Path(output_dir), Path(raw_path)
    output_dir.mkdir(parents=True, exist_ok=True)
    if soft_spans > 0:  # before the teacher's annotation: a student without spancat fails now
        student_config = soft_student_config(config_path, spans_key, soft_spans)
        config_path = output_dir / "student.cfg"
        student_config.to_disk(config_path)
        msg.info(f"Soft span targets (weight {soft_spans}): the student config is {config_path}")
    overrides = dict(overrides or {})
    gold_train = overrides.pop("paths.train", None)
    gold_dev = overrides.get("paths.dev")
    summary = DistillSummary(soft_spans=soft_spans)
    vocab = Vocab()

    # 1. The teacher's annotations (reused when made from the same teacher and raw text).
    n_docs = count_documents(raw_path, paragraphs=paragraphs)  # validates every line first
    if n_docs == 0:
        raise ValueError(f"{raw_path}: no documents to annotate")
    teacher_id = Path(teacher_path).resolve() if Path(teacher_path).exists() else teacher_path
    meta = {"teacher": str(teacher_id), "raw": _source_id(raw_path), "spans_key": spans_key,
            "paragraphs": paragraphs, "soft_spans": soft_spans > 0}  # fmt: skip
    docs_path, meta_path = output_dir / TEACHER_DOCS, output_dir / TEACHER_META
    stored = json.loads(meta_path.read_text()) if docs_path.exists() and meta_path.exists() else None
    # annotations with soft span targets serve a run without them (its student ignores them)
    if stored is not None and stored in (meta, {**meta, "soft_spans": True}):
        msg.info(f"Reusing the teacher's annotations in {docs_path}")
        teacher_docs = _read(docs_path, vocab)
        summary.reused_annotations = True
    else:
        teacher = load_pipeline(teacher_path)
        msg.info(f"Annotating {n_docs:,} documents of {raw_path} with the teacher {teacher_path}")
        annotated = DocBin(store_user_data=True)  # Docs added one by one: no list of Docs
        with tqdm(total=n_docs, unit="doc", disable=not show_progress) as bar:
            for doc in annotate(teacher, read_documents(raw_path, paragraphs=paragraphs), spans_key=spans_key,
                                batch_size=batch_size, progress=bar.update, soft_spans=soft_spans > 0):  # fmt: skip
                annotated.add(doc)
        annotated.to_disk(docs_path)
        meta_path.write_text(json.dumps(meta, indent=2))
        teacher_docs = list(annotated.get_docs(vocab))
    summary.n_annotated = len(teacher_docs)
    summary.n_entities = sum(len(doc.ents) for doc in teacher_docs)
    summary.n_relations = sum(relation_count(doc) for doc in teacher_docs)
    msg.good(f"Teacher: {summary.n_annotated:,} documents, {summary.n_entities:,} entities, "
             f"{summary.n_relations:,} relations ({docs_path})")  # fmt: skip
    if summary.n_relations == 0:
        raise ValueError(
            f"the teacher {teacher_path} found no relation in {raw_path}: nothing to distil "
            "(does it have a relation_extractor, and is the raw text in its domain?)"
        )

    # 2. The student's data: teacher documents (less the dev slice) + gold training documents.
    if gold_dev is None:
        held = teacher_docs[heldout_every - 1 :: heldout_every]
        teacher_docs = [d for i, d in enumerate(teacher_docs) if (i + 1) % heldout_every]
        dev_path = output_dir / "dev.spacy"
        DocBin(docs=held, store_user_data=True).to_disk(dev_path)
        overrides["paths.dev"] = str(dev_path)
        summary.dev_source, summary.n_dev = "teacher", len(held)
        msg.warn(
            f"No --paths.dev: the student is selected on {len(held):,} held-out teacher-annotated "
            f"documents ({dev_path}; every {heldout_every}th), i.e. on agreement with the "
            "teacher, not on gold accuracy"
        )
    else:
        summary.dev_source, summary.n_dev = "gold", len(DocBin().from_disk(gold_dev))
        msg.info(f"The student is selected on the gold dev set {gold_dev}")
    gold_docs = _read(gold_train, vocab) if gold_train is not None else []
    gold_texts = {doc.text for doc in gold_docs}
    teacher_docs = [doc for doc in teacher_docs if doc.text not in gold_texts]
    copies = gold_copies(sum(map(len, teacher_docs)), sum(map(len, gold_docs)), gold_share)
    summary.n_teacher_train, summary.n_gold_train = len(teacher_docs), len(gold_docs)
    summary.gold_copies = copies
    train_path = output_dir / "train.spacy"
    DocBin(docs=teacher_docs + gold_docs * copies, store_user_data=True).to_disk(train_path)
    repeated = f", each {copies} times (--gold-share {gold_share})" if copies > 1 else ""
    msg.good(f"Student training set: {len(teacher_docs):,} teacher-annotated + "
             f"{len(gold_docs):,} gold documents{repeated} ({train_path})")  # fmt: skip
    (output_dir / "distill.json").write_text(json.dumps(asdict(summary), indent=2))

    # 3. The student.
    spacy_train(
        config_path, output_dir, use_gpu=use_gpu,
        overrides={**overrides, "paths.train": str(train_path)},
    )  # fmt: skip
    return summary
