"""Where a pipeline's relation_extractor spends its time, per Doc and per candidate pair.

    python benchmarks/relation_cost.py MODEL DATA [--repeats 3] [--batch-size 64] [--profile 25]
    python benchmarks/relation_cost.py MODEL DATA --dump relations.json   # its predictions, to compare

The components before the relation extractor run once over the texts of the DocBin DATA (raw
texts, so the entities are the pipeline's own, as in benchmarks/speed.py); then, batch by batch
as `nlp.pipe` gives them, the relation extractor's steps are timed on those Docs, the best of
`repeats` passes each, in CPU time of this process (``time.process_time``: on a shared machine
the time the process waits for a core is not counted; run it with OMP_NUM_THREADS=1):

- candidates: `get_spans` and `Candidates.from_spans` (which pairs, as integer arrays);
- model: ``model.predict`` (span pooling, context attention, classifier; a listener's
  vectors are already on the Docs);
- probs: sigmoid/softmax and the type constraints' weights (`label_weights`);
- decide: `decide` at the configured thresholds;
- write: `write_relations` (``doc._.relations``).

The steps are called as `RelationExtractor.predict` and `set_annotations` call them, and their
sum is checked against timing those two methods. With ``--profile N`` the whole
relation_extractor (``predict`` + ``set_annotations``) also runs under cProfile, and the N
functions with the most internal time are printed. With ``--dump PATH`` the relations of every
Doc (head and tail character offsets and labels, relation label, score) are written as JSON, to
check that a change keeps the predictions identical (``--compare OTHER.json``: labels equal,
scores within 1e-6). With ``--extra``, the component's extra time in the whole pipeline (as
benchmarks/speed.py: ``nlp.pipe`` with and without it, best of `repeats`), in CPU and wall time.
"""
import cProfile
import io
import json
import pstats
import time
from pathlib import Path
from typing import Dict, List, Optional

import numpy
import spacy
import typer
from spacy.tokens import DocBin
from spacy.util import minibatch

from spacy_ie.candidates import Candidates
from spacy_ie.pipeline.relation_extractor import RelationPredictions, write_relations

STEPS = ("candidates", "model", "probs", "decide", "write")


def time_steps(pipe, batches: List[list], repeats: int) -> Dict[str, float]:
    """Best seconds over `repeats` passes of each step, summed over the batches."""
    best = {step: float("inf") for step in STEPS + ("predict+set_annotations",)}
    ops = pipe.model.ops
    for _ in range(repeats):
        spent = dict.fromkeys(best, 0.0)
        for docs in batches:
            t0 = time.process_time()
            candidates = Candidates.from_spans(docs, [pipe.get_spans(doc) for doc in docs], pipe.candidates)
            t1 = time.process_time()
            scores = pipe.model.predict((docs, candidates))
            t2 = time.process_time()
            logits = scores.logits
            if pipe.cfg["exclusive_classes"]:
                probs = ops.softmax(logits) if len(logits) else logits
            else:
                probs = ops.sigmoid(logits)
            weights = pipe.candidates.label_weights(candidates, pipe.labels, pipe.vocab.strings)
            predictions = RelationPredictions(
                candidates, ops.to_numpy(probs)[:, : len(pipe.labels)] * weights, weights > 0, scores.contexts,
                ops.to_numpy(scores.attention) if pipe.cfg["store_attention"] else None,
            )
            t3 = time.process_time()
            decisions = pipe.decide(predictions)
            t4 = time.process_time()
            write_relations(docs, predictions, decisions, pipe.labels)
            t5 = time.process_time()
            pipe.set_annotations(docs, pipe.predict(docs))
            t6 = time.process_time()
            for step, seconds in zip(best, (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4, t6 - t5)):
                spent[step] += seconds
        best = {step: min(best[step], spent[step]) for step in best}
    return best


def pipeline_extra(nlp, texts: List[str], component: str, batch_size: int, repeats: int) -> Dict[str, float]:
    """The relation extractor's extra time in the whole pipeline, as benchmarks/speed.py
    measures it (``nlp.pipe`` over the raw texts, `component` disabled vs enabled, best of
    `repeats`), in CPU time of this process and in wall time; the settings alternate pass by
    pass, so that a change in the machine's load hits both."""
    best = {key: float("inf") for key in ("cpu_without", "cpu_with", "wall_without", "wall_with")}
    for _ in range(repeats):
        for name, disable in (("without", [component]), ("with", [])):
            cpu, wall = time.process_time(), time.perf_counter()
            for _ in nlp.pipe(texts, batch_size=batch_size, disable=disable):
                pass
            best[f"cpu_{name}"] = min(best[f"cpu_{name}"], time.process_time() - cpu)
            best[f"wall_{name}"] = min(best[f"wall_{name}"], time.perf_counter() - wall)
    return best


def profile(pipe, batches: List[list], top: int) -> str:
    """cProfile of `predict` + `set_annotations` over the batches: the `top` functions by
    internal time."""
    profiler = cProfile.Profile(time.process_time)
    profiler.enable()
    for docs in batches:
        pipe.set_annotations(docs, pipe.predict(docs))
    profiler.disable()
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(top)
    return out.getvalue()


def relations_of(docs) -> List[List[list]]:
    """Each Doc's relations as [head start_char, head end_char, head label, tail ..., label, score]."""
    return [
        [[*r["head"], *r["tail"], r["label"], r["score"]] for r in doc._.relations_data]
        for doc in docs
    ]


def compare(mine: List[List[list]], other: List[List[list]], tolerance: float = 1e-6) -> List[str]:
    """Differences between two `relations_of` dumps: Docs whose relations differ in anything
    but the score, or whose scores differ by more than `tolerance`."""
    problems = []
    if len(mine) != len(other):
        return [f"{len(mine)} Docs against {len(other)}"]
    for i, (a, b) in enumerate(zip(mine, other)):
        if [r[:-1] for r in a] != [r[:-1] for r in b]:
            problems.append(f"Doc {i}: relations differ: {a} / {b}")
        elif a and numpy.abs(numpy.asarray([r[-1] for r in a]) - numpy.asarray([r[-1] for r in b])).max() > tolerance:
            problems.append(f"Doc {i}: scores differ by more than {tolerance}")
    return problems


def main(
    model: Path,
    data: Path,
    repeats: int = typer.Option(3, help="Passes per step; the best is reported."),
    batch_size: int = typer.Option(64, help="Docs per batch, as nlp.pipe's batch_size."),
    component: str = typer.Option("relation_extractor", help="The relation extractor's name."),
    top: int = typer.Option(0, "--profile", help="Also print the N functions with the most internal time (0: no profile)."),
    dump: Optional[Path] = typer.Option(None, help="Write the predicted relations of every Doc to this JSON file."),
    compare_with: Optional[Path] = typer.Option(None, "--compare", help="A --dump file to compare the relations with."),
    extra: bool = typer.Option(False, help="Also measure the extra time of the component in the whole pipeline (nlp.pipe with and without it)."),
    output: Optional[Path] = typer.Option(None, help="Write the figures (ms per step, extra time) as JSON."),
) -> None:
    nlp = spacy.load(model)
    pipe = nlp.get_pipe(component)
    texts = [doc.text for doc in DocBin().from_disk(data).get_docs(nlp.vocab)]
    with nlp.select_pipes(disable=[component]):
        docs = list(nlp.pipe(texts, batch_size=batch_size))
    batches = [list(batch) for batch in minibatch(docs, batch_size)]
    n_docs, n_words = len(docs), sum(len(doc) for doc in docs)
    n_spans = sum(len(pipe.get_spans(doc)) for doc in docs)
    n_pairs = sum(len(Candidates.from_spans(b, [pipe.get_spans(d) for d in b], pipe.candidates)) for b in batches)
    time_steps(pipe, batches[:2], 1)  # warm-up
    best = time_steps(pipe, batches, repeats)
    n_relations = sum(len(doc._.relations_data) for doc in docs)
    print(f"{model}: {n_docs} docs, {n_words} words, {n_spans} spans, {n_pairs} candidate pairs, "
          f"{n_relations} relations; batch_size={batch_size}, best of {repeats}")
    total = sum(best[step] for step in STEPS)
    print(f"{'step':<12} {'ms':>9} {'share':>7} {'us/doc':>9} {'us/pair':>9}")
    for step in STEPS:
        print(f"{step:<12} {1e3 * best[step]:9.1f} {100 * best[step] / total:6.1f}% "
              f"{1e6 * best[step] / n_docs:9.1f} {1e6 * best[step] / max(n_pairs, 1):9.2f}")
    print(f"{'sum':<12} {1e3 * total:9.1f}")
    whole = best["predict+set_annotations"]
    print(f"predict + set_annotations: {1e3 * whole:.1f} ms ({1e6 * whole / n_docs:.1f} us/doc, "
          f"{n_words / whole:,.0f} words/s)")
    figures = {
        "model": str(model), "data": str(data), "n_docs": n_docs, "n_words": n_words, "n_spans": n_spans,
        "n_pairs": n_pairs, "n_relations": n_relations, "batch_size": batch_size, "repeats": repeats,
        "cpu_ms": {step: round(1e3 * seconds, 2) for step, seconds in best.items()},
    }
    if extra:
        times = pipeline_extra(nlp, texts, component, batch_size, repeats)
        figures["pipeline_ms"] = {key: round(1e3 * seconds, 1) for key, seconds in times.items()}
        for clock in ("cpu", "wall"):
            without, with_ = times[f"{clock}_without"], times[f"{clock}_with"]
            print(f"pipeline {clock:>4} time: without {component} {1e3 * without:.0f} ms ({n_words / without:,.0f} wps), "
                  f"with {1e3 * with_:.0f} ms ({n_words / with_:,.0f} wps): extra {100 * (with_ / without - 1):.1f}%")
    if output is not None:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(json.dumps(figures, indent=2) + "\n", encoding="utf8")
    if top:
        print(profile(pipe, batches, top))
    relations = relations_of(docs)
    if dump is not None:
        dump.write_text(json.dumps(relations), encoding="utf8")
        print(f"relations of {n_docs} docs written to {dump}")
    if compare_with is not None:
        problems = compare(relations, json.loads(compare_with.read_text(encoding="utf8")))
        print(f"compared with {compare_with}: " + ("identical (scores within 1e-6)" if not problems else f"{len(problems)} differences"))
        for problem in problems[:10]:
            print("  " + problem)
        if problems:
            raise typer.Exit(1)


if __name__ == "__main__":
    typer.run(main)
