"""Type constraints on a corpus: candidate pairs and gold relations outside the constraints,
per split, with the constraints learned from the training split, hard or penalized.

    python benchmarks/type_constraints.py CORPUS_DIR [--spans-key entities]

CORPUS_DIR holds train.spacy, dev.spacy and test.spacy with gold entities and relations (e.g.
the `conll04` workflow's ``corpus/conll04``). For three settings of
`spacy_ie.EntityPairCandidates` (no constraints; learned, hard: v1 / ``unseen_type_weight =
0``; learned, penalized: v2's default 0.75) it prints, per split, the candidate pairs among the
gold entities (what training sees as positives and negatives) and the time to build them, and
the gold relations whose (label, head type, tail type) was never seen in training: "unseen"
(penalized, or forbidden under hard constraints) and "forbidden" (can never be predicted).
Nothing is trained; seconds on CoNLL04.
"""
import argparse
import time
from pathlib import Path
from typing import List, Optional

import spacy
from spacy.tokens import Doc, DocBin

from spacy_ie.candidates import Candidates, EntityPairCandidates, span_list
from spacy_ie.relations import register_extensions

SPLITS = ("train", "dev", "test")


def triples(docs: List[Doc]):
    return [(r.label, r.head.label_, r.tail.label_) for doc in docs for r in doc._.relations]


def main(corpus: Path, spans_key: Optional[str]) -> None:
    register_extensions()
    nlp = spacy.blank("en")
    docs = {s: list(DocBin().from_disk(corpus / f"{s}.spacy").get_docs(nlp.vocab)) for s in SPLITS}
    settings = {
        "no constraints": EntityPairCandidates(),
        "learned, hard (weight 0)": EntityPairCandidates(learn_types=True),
        "learned, penalized (0.75)": EntityPairCandidates(learn_types=True, unseen_type_weight=0.75),
    }
    print(f"{'setting':28s} {'split':5s} {'candidates':>10s} {'ms':>6s} {'gold':>6s} {'unseen':>13s} {'forbidden':>9s}")
    for name, gen in settings.items():
        gen.initialize(triples(docs["train"]))
        for split, split_docs in docs.items():
            spans = [span_list(d.ents if spans_key is None else d.spans.get(spans_key, [])) for d in split_docs]
            start = time.perf_counter()
            n = len(Candidates.from_spans(split_docs, spans, gen))
            ms = 1000 * (time.perf_counter() - start)
            cov = gen.type_coverage(triples(split_docs))
            share = 100 * cov["unseen"] / max(cov["relations"], 1)
            print(f"{name:28s} {split:5s} {n:10d} {ms:6.0f} {cov['relations']:6d} "
                  f"{cov['unseen']:6d} ({share:4.1f}%) {cov['forbidden']:9d}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("corpus", type=Path)
    parser.add_argument("--spans-key", default=None, help="span group of the entities (default: doc.ents)")
    args = parser.parse_args()
    main(args.corpus, args.spans_key)
