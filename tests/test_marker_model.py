"""spacy_ie.TypedMarkerRelationModel.v1 (spacy_ie/ml/marker_model.py) on a tiny randomly
initialised BERT saved in a temporary directory: markers, windows, passes, training, saving.

Offline: the tiny model is a local directory, and the reloaded pipeline is loaded after that
directory is deleted.
"""
import re
import shutil
import string
import subprocess
import sys
from pathlib import Path
from typing import Dict, List, Tuple

import numpy
import pytest
import spacy
from spacy.tokens import Doc, Span
from spacy.training import Example
from thinc.api import Adam, fix_random_seed

pytest.importorskip("spacy_transformers")
torch = pytest.importorskip("torch")

from conftest import annotated_doc  # noqa: E402
from spacy_ie.candidates import Candidates, EntityPairCandidates  # noqa: E402
from spacy_ie.ml import marker_model  # noqa: E402  (registers the architecture)
from spacy_ie.ml.marker_model import (  # noqa: E402
    MarkerStrings,
    build_marker_batch,
    insert_markers,
    select_window,
)

ARCH = "spacy_ie.TypedMarkerRelationModel.v1"
MARKERS = MarkerStrings()
# the typed and plain marker strings, as MarkerStrings writes them
_MARKER_RE = re.compile(r" [@#] [*^] [A-Za-z_]+ [*^] | [@#] ")


def make_tiny_bert(path: Path, words: List[str] = ()) -> Path:
    """A randomly initialised 2-layer BERT (width 32) with a fast tokenizer whose vocabulary
    is every printable character (and its ## continuation) plus `words`, saved in `path`."""
    from transformers import BertConfig, BertModel, BertTokenizerFast

    torch.manual_seed(0)
    chars = sorted({c.lower() for c in string.printable if not c.isspace()})
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + chars + ["##" + c for c in chars if c.isalnum()]
    vocab += sorted({w.lower() for w in words} - set(vocab))
    path.mkdir(parents=True, exist_ok=True)
    (path / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf8")
    BertTokenizerFast(vocab_file=str(path / "vocab.txt"), do_lower_case=True, model_max_length=256).save_pretrained(str(path))
    config = BertConfig(
        vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=64, max_position_embeddings=256,
    )
    BertModel(config).save_pretrained(str(path))
    return path


WORDS = "alice bob dave works for acme in paris was born rome lima and joined globex new york university press sued".split()


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory) -> Path:
    return make_tiny_bert(tmp_path_factory.mktemp("tiny_bert") / "model", WORDS)


@pytest.fixture(scope="module")
def tokenizer(tiny_bert):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(tiny_bert), use_fast=True)


def unmark(text: str) -> str:
    return _MARKER_RE.sub("", text)


# --- markers ----------------------------------------------------------------------------------

TEXT = "New York University Press sued ."
CASES = {
    # head outer, tail nested at its start
    "nested": ([(0, 19, 0, "ORG"), (0, 8, 1, "LOC")], " @ * ORG *  # ^ LOC ^ New York #  University @  Press sued ."),
    # head nested in the tail, so the tail's markers are outside
    "nested_reversed": ([(0, 8, 0, "LOC"), (0, 19, 1, "ORG")], " # ^ ORG ^  @ * LOC * New York @  University #  Press sued ."),
    # partly overlapping: crossing markers
    "overlapping": ([(0, 19, 0, "ORG"), (4, 25, 1, "ORG")], " @ * ORG * New  # ^ ORG ^ York University @  Press #  sued ."),
    # adjacent tokens: the text's own space stays between the markers
    "adjacent": ([(20, 25, 0, "ORG"), (26, 30, 1, "V")], "New York University  @ * ORG * Press @   # ^ V ^ sued #  ."),
    # touching (no character between): the head closes before the tail opens
    "touching": ([(4, 8, 0, "LOC"), (9, 19, 1, "ORG"), ][:1] + [(8, 19, 1, "ORG")], "New  @ * LOC * York @  # ^ ORG ^  University #  Press sued ."),
    # head after tail
    "reversed": ([(26, 30, 0, "V"), (0, 8, 1, "LOC")], " # ^ LOC ^ New York #  University Press  @ * V * sued @  ."),
}


@pytest.mark.parametrize("case", list(CASES))
def test_markers_land_at_the_right_character_offsets(case):
    spans, expected = CASES[case]
    marked, positions = insert_markers(TEXT, spans, MARKERS)
    assert marked == expected
    assert unmark(marked) == TEXT
    for (start, end, role, label), (opening, closing) in zip(spans, positions.tolist()):
        marker = "@" if role == 0 else "#"
        assert marked[opening] == marker and marked[closing] == marker
        assert marked[opening - 1 : opening - 1 + len(MARKERS.opening(role, label))] == MARKERS.opening(role, label)
        # the markers sit exactly at the span's boundaries of the original text
        assert len(unmark(marked[: opening - 1])) == start
        assert len(unmark(marked[: closing - 1])) == end


def test_untyped_markers_and_bad_spans():
    marked, positions = insert_markers("John met Mary", [(0, 4, 0, "PER"), (9, 13, 1, "PER")], MarkerStrings(typed=False))
    assert marked == " @ John @  met  # Mary # "
    assert positions.tolist() == [[1, 8], [16, 23]]
    with pytest.raises(ValueError, match="span 0"):
        insert_markers("John", [(2, 2, 0, "PER")], MARKERS)


def make_doc(nlp, words: List[str], ents: List[tuple], sent_starts: List[int] = ()) -> Doc:
    doc = Doc(nlp.vocab, words=words)
    if sent_starts:
        for i, token in enumerate(doc):
            token.is_sent_start = i in sent_starts
    doc.ents = [Span(doc, s, e, label=label) for s, e, label in ents]
    return doc


def batch_for(docs, spans, tokenizer, mode="exact", max_length=128):
    candidates = Candidates.from_spans(docs, spans, EntityPairCandidates())
    return candidates, build_marker_batch(docs, candidates, tokenizer, MARKERS, mode, max_length)


def overlapping_spans() -> Tuple[Doc, List[Span]]:
    """"New York University Press sued Alice .": nested, overlapping and adjacent spans."""
    doc = Doc(spacy.blank("en").vocab, words=["New", "York", "University", "Press", "sued", "Alice", "."])
    spans = [
        Span(doc, 0, 2, label="LOC"), Span(doc, 0, 3, label="ORG"), Span(doc, 1, 4, label="ORG"),
        Span(doc, 4, 5, label="V"), Span(doc, 5, 6, label="PER"),
    ]
    return doc, spans


def test_marker_tokens_of_every_pair(tokenizer):
    """Overlapping, nested, adjacent pairs in both directions: the positions of each pair point
    at its head's `@` and tail's `#` in the subword ids, found through character offsets."""
    doc, spans = overlapping_spans()
    candidates, batch = batch_for([doc], [spans], tokenizer)
    assert len(batch.input_ids) == len(candidates) == 20  # exact: one pass per ordered pair
    pairs = candidates.pairs.tolist()
    for (h, t), p, (hp, tp) in zip(pairs, batch.pair_pass.tolist(), batch.positions.tolist()):
        tokens = tokenizer.convert_ids_to_tokens(batch.input_ids[p])
        assert tokens[0] == "[CLS]" and tokens[-1] == "[SEP]"
        assert tokens[hp] == "@" and tokens[tp] == "#"
        text = batch.texts[p]
        assert unmark(text).strip() == doc.text.strip()
        # the label inside the markers is each span's own
        assert f"@ * {spans[h].label_} * " in text and f"# ^ {spans[t].label_} ^ " in text
        assert tokens.count("@") == 2 and tokens.count("#") == 2


def test_between_tokens_of_every_pair(tokenizer):
    """SpERT's context: the tokens strictly between the two entities, outside every marker, in
    either direction; none for adjacent, nested and overlapping pairs; for a cut window, the
    kept tokens between the two windows' markers."""
    doc, spans = overlapping_spans()
    candidates, batch = batch_for([doc], [spans], tokenizer)
    between = {}
    for (h, t), p, (start, end) in zip(candidates.pairs.tolist(), batch.pair_pass.tolist(), batch.between.tolist()):
        tokens = tokenizer.convert_ids_to_tokens(batch.input_ids[p])
        between[h, t] = " ".join(tokens[start:end])
    assert between[0, 3] == between[3, 0] == "university press"  # New York ... sued, both directions
    assert between[0, 4] == between[4, 0] == "university press sued"
    assert between[1, 4] == "press sued" and between[2, 4] == "sued"
    assert between[3, 4] == between[4, 3] == ""  # adjacent
    assert between[0, 1] == between[1, 0] == between[0, 2] == between[1, 2] == ""  # nested, overlapping

    words = [f"w{i}" for i in range(120)]
    doc = make_doc(spacy.blank("en"), words, [(1, 2, "A"), (100, 101, "B")])
    candidates, batch = batch_for([doc], [list(doc.ents)], tokenizer, max_length=40)
    for p, (hp, tp), (start, end) in zip(batch.pair_pass.tolist(), batch.positions.tolist(), batch.between.tolist()):
        tokens = tokenizer.convert_ids_to_tokens(batch.input_ids[p])
        first, second = sorted((hp, tp))
        assert first < start < end <= second  # the kept tokens after the first entity's closing marker
        assert tokens[start - 1] in "@#" and "@" not in tokens[start:end] and "#" not in tokens[start:end]


def test_a_cut_window_keeps_both_markers(tokenizer):
    nlp = spacy.blank("en")
    words = [f"w{i}" for i in range(150)]
    doc = make_doc(nlp, words, [(2, 3, "A"), (70, 71, "B"), (74, 76, "C"), (140, 141, "D")])
    spans = list(doc.ents)
    candidates, batch = batch_for([doc], [spans], tokenizer, max_length=32)
    assert len(doc.text) > 300  # far more subword tokens than 32
    for (h, t), p, (hp, tp) in zip(candidates.pairs.tolist(), batch.pair_pass.tolist(), batch.positions.tolist()):
        tokens = tokenizer.convert_ids_to_tokens(batch.input_ids[p])
        assert len(tokens) <= 32
        assert tokens[0] == "[CLS]" and tokens[-1] == "[SEP]"
        assert tokens[hp] == "@" and tokens[tp] == "#"
        if {h, t} == {1, 2}:  # close together: one window, closing markers kept too
            assert len(tokens) == 32
            assert tokens.count("@") == 2 and tokens.count("#") == 2


def test_select_window():
    assert select_window(10, [(2, 4), (6, 8)], 16).tolist() == list(range(10))
    window = select_window(100, [(40, 45), (50, 52)], 20)
    assert window.tolist() == list(range(36, 56))
    split = select_window(100, [(2, 5), (90, 93)], 20)
    assert split.tolist() == list(range(2, 12)) + list(range(90, 100))
    assert select_window(100, [(2, 5), (50, 53), (90, 93)], 20) is None  # packed: fall back


def test_packed_modes_make_fewer_passes(tokenizer):
    """Two sentences, 4 and 2 entities: 14 ordered pairs; exact 14 passes, packed_head one per
    head (6), packed one per sentence (2); every pair still points at its own markers."""
    nlp = spacy.blank("en")
    words = "Alice and Bob met Dave in Paris . Acme sued Globex .".split()
    doc = make_doc(nlp, words, [(0, 1, "PER"), (2, 3, "PER"), (4, 5, "PER"), (6, 7, "LOC"), (8, 9, "ORG"), (10, 11, "ORG")], [0, 8])
    spans = list(doc.ents)
    n_passes = {}
    for mode in ("exact", "packed_head", "packed"):
        candidates, batch = batch_for([doc], [spans], tokenizer, mode)
        n_passes[mode] = len(batch.input_ids)
        for (h, t), p, (hp, tp) in zip(candidates.pairs.tolist(), batch.pair_pass.tolist(), batch.positions.tolist()):
            tokens = tokenizer.convert_ids_to_tokens(batch.input_ids[p])
            assert tokens[hp] == "@"
            assert tokens[tp] == ("@" if mode == "packed" else "#")
            # the marker at each position opens the pair's own span
            sent_char = spans[h].sent.start_char
            assert marked_offset(batch.texts[p], tokens, hp) == spans[h].start_char - sent_char
            assert marked_offset(batch.texts[p], tokens, tp) == spans[t].start_char - sent_char
        assert len(candidates) == 14
    assert n_passes == {"exact": 14, "packed_head": 6, "packed": 2}


def marked_offset(text: str, tokens: List[str], position: int) -> int:
    """The character offset, in the unmarked text, of the marker token at `position` (a pass
    that was not cut: its marker tokens are the text's marker characters, in order)."""
    marker = tokens[position]
    nth = tokens[:position].count(marker)
    index = [i for i, c in enumerate(text) if c == marker][nth]
    return len(unmark(text[: index - 1]))


def test_packed_pass_too_long_falls_back_to_one_pass_per_head(tokenizer):
    """Two clusters of three entities far apart in one sentence, candidates only within a
    cluster: the packed pass does not fit `max_length`, so it splits into one pass per head
    (6, each head with its two tails), not one per pair (12)."""
    nlp = spacy.blank("en")
    words = [f"w{i}" for i in range(120)]
    doc = make_doc(nlp, words, [(1, 2, "A"), (3, 4, "B"), (5, 6, "C"), (100, 101, "X"), (102, 103, "Y"), (104, 105, "Z")])
    candidates = Candidates.from_spans([doc], [list(doc.ents)], EntityPairCandidates(max_distance=10))
    assert len(candidates) == 12
    n_passes = {}
    for mode in ("exact", "packed_head", "packed"):
        batch = build_marker_batch([doc], candidates, tokenizer, MARKERS, mode, 40)
        n_passes[mode] = len(batch.input_ids)
        for (h, t), p, (hp, tp) in zip(candidates.pairs.tolist(), batch.pair_pass.tolist(), batch.positions.tolist()):
            tokens = tokenizer.convert_ids_to_tokens(batch.input_ids[p])
            assert len(tokens) <= 40 and tokens[hp] == "@" and tokens[tp] == "#"  # split: tails carry "#"
    assert n_passes == {"exact": 12, "packed_head": 6, "packed": 6}


def test_packed_pass_too_long_falls_back_to_exact(tokenizer):
    nlp = spacy.blank("en")
    words = [f"w{i}" for i in range(120)]
    doc = make_doc(nlp, words, [(1, 2, "A"), (60, 61, "B"), (118, 119, "C")])
    candidates, batch = batch_for([doc], [list(doc.ents)], tokenizer, "packed", max_length=40)
    assert len(batch.input_ids) == len(candidates) == 4  # A-C is beyond max_distance
    for p, (hp, tp) in zip(batch.pair_pass.tolist(), batch.positions.tolist()):
        tokens = tokenizer.convert_ids_to_tokens(batch.input_ids[p])
        assert len(tokens) <= 40 and tokens[hp] == "@" and tokens[tp] == "#"


def test_settings_are_checked(tokenizer):
    with pytest.raises(ValueError, match="mode"):
        marker_model.build_typed_marker_relation_model("x", mode="fast")
    with pytest.raises(ValueError, match="markers"):
        marker_model.build_typed_marker_relation_model("x", tail_marker=" ")

    class Slow:
        is_fast = False

    nlp = spacy.blank("en")
    doc = make_doc(nlp, ["A", "B"], [(0, 1, "X"), (1, 2, "Y")])
    with pytest.raises(ValueError, match="fast tokenizer"):
        build_marker_batch([doc], Candidates.from_spans([doc], [list(doc.ents)], EntityPairCandidates()), Slow(), MARKERS)


# --- the model in the relation_extractor ------------------------------------------------------

DATA = [
    ("Alice works for Acme in Paris.", [("Alice", "PER"), ("Acme", "ORG"), ("Paris", "LOC")],
     [(0, 1, "WORKS_FOR"), (1, 2, "LOCATED_IN")]),
    ("Bob was born in Rome and joined Globex.", [("Bob", "PER"), ("Rome", "LOC"), ("Globex", "ORG")],
     [(0, 1, "BORN_IN"), (0, 2, "WORKS_FOR")]),
    ("Dave was born in Lima.", [("Dave", "PER"), ("Lima", "LOC")], [(0, 1, "BORN_IN")]),
    ("Nothing to see here.", [], []),
]


def make_pipeline(name: Path, **model_settings):
    nlp = spacy.blank("en")
    model = {"@architectures": ARCH, "name": str(name), "hidden_width": 32, **model_settings}
    nlp.add_pipe("relation_extractor", config={"model": model})
    return nlp


def examples_for(nlp) -> List[Example]:
    examples = []
    for text, ents, rels in DATA:
        ref = annotated_doc(nlp, text, ents, rels)
        pred = nlp.make_doc(text)
        pred.ents = [pred.char_span(s.start_char, s.end_char, label=s.label_) for s in ref.ents]
        examples.append(Example(pred, ref))
    return examples


def relations(docs):
    return [[(r.head.text, r.label, r.tail.text) for r in doc._.relations] for doc in docs]


def test_exact_and_packed_give_the_same_shapes(tiny_bert):
    fix_random_seed(0)
    shapes = {}
    for mode in ("exact", "packed_head", "packed"):
        nlp = make_pipeline(tiny_bert, mode=mode)
        examples = examples_for(nlp)
        nlp.initialize(lambda: examples)
        pipe = nlp.get_pipe("relation_extractor")
        predictions = pipe.predict([eg.predicted for eg in examples])
        shapes[mode] = predictions.probs.shape
        assert predictions.contexts.shape == (len(predictions.candidates), 2)
    assert len(set(shapes.values())) == 1 and shapes["exact"] == (14, 3)


def test_gradient_checkpointing_gives_the_same_gradients(tiny_bert):
    """Recomputing each layer in the backward pass changes memory, not the result: with dropout
    on, one update's transformer gradients match those without checkpointing (torch restores
    the dropout masks), and the flag is applied on the training call, not at inference."""
    grads = {}
    for enabled in (False, True):
        fix_random_seed(0)
        nlp = make_pipeline(tiny_bert, mode="exact", batch_size=4, gradient_checkpointing=enabled)
        examples = examples_for(nlp)
        nlp.initialize(lambda: examples)
        pipe = nlp.get_pipe("relation_extractor")
        transformer = marker_model.get_transformer(pipe.model)
        pipe.predict([eg.predicted for eg in examples])
        assert not transformer.is_gradient_checkpointing  # set by training calls only
        fix_random_seed(1)
        pipe.update(examples, drop=0.1)  # no sgd: the gradients stay on the parameters
        assert transformer.is_gradient_checkpointing == enabled
        grads[enabled] = [p.grad.detach().clone() for p in transformer.parameters() if p.grad is not None]
    assert len(grads[True]) == len(grads[False]) > 0
    for without, with_ in zip(grads[False], grads[True]):
        torch.testing.assert_close(with_, without, rtol=1e-4, atol=1e-6)


def test_pool_between_takes_the_max_of_each_range():
    from thinc.api import NumpyOps

    ops = NumpyOps()
    H = numpy.random.default_rng(0).normal(size=(12, 3)).astype("float32")
    base = numpy.asarray([0, 6, 6])
    between = numpy.asarray([[1, 4], [2, 2], [0, 5]])  # rows 1-3; empty; rows 6-10
    pooled, backprop = marker_model._pool_between(ops, H, base, between)
    numpy.testing.assert_array_equal(pooled, numpy.stack([H[1:4].max(0), numpy.zeros(3), H[6:11].max(0)]))
    dH = numpy.zeros_like(H)
    backprop(dH, numpy.ones((3, 3), dtype="float32"))
    expected = numpy.zeros_like(H)
    for lo, hi in ((1, 4), (6, 11)):
        expected[lo + H[lo:hi].argmax(0), numpy.arange(3)] += 1
    numpy.testing.assert_array_equal(dH, expected)


@pytest.mark.parametrize("use_between", [False, True])
def test_trains_and_round_trips(tiny_bert, tmp_path, use_between):
    """Training moves the transformer's weights and learns the toy data; the saved pipeline
    loads without the model directory and predicts the same probabilities."""
    fix_random_seed(0)
    source = tmp_path / "bert"
    shutil.copytree(tiny_bert, source)
    nlp = make_pipeline(source, mode="exact", batch_size=4, use_between=use_between)
    examples = examples_for(nlp)
    nlp.initialize(lambda: examples)
    transformer = marker_model.get_transformer(nlp.get_pipe("relation_extractor").model)
    before = {k: v.detach().clone() for k, v in transformer.state_dict().items()}
    optimizer = Adam(1e-3)
    losses = []
    for _ in range(30):
        step = {}
        nlp.update(examples, sgd=optimizer, losses=step)
        losses.append(step["relation_extractor"])
    after = transformer.state_dict()
    changed = [k for k, v in before.items() if v.is_floating_point() and not torch.equal(v, after[k])]
    assert len(changed) > len(before) // 2  # fine-tuned, not frozen
    assert losses[-1] < losses[0] / 4
    docs = [eg.predicted for eg in examples]
    predicted = list(nlp.pipe(d.copy() for d in docs))
    assert relations(predicted) == relations(eg.reference for eg in examples)

    nlp.to_disk(tmp_path / "pipeline")
    shutil.rmtree(source)  # the pipeline holds the weights and the tokenizer itself
    reloaded = spacy.load(tmp_path / "pipeline")
    probs = nlp.get_pipe("relation_extractor").predict(docs).probs
    probs2 = reloaded.get_pipe("relation_extractor").predict(docs).probs
    numpy.testing.assert_array_equal(probs, probs2)
    assert relations(reloaded.pipe(d.copy() for d in docs)) == relations(predicted)


SEMEVAL_TRAIN = Path("semeval2010_task8") / "SemEval2010_task8_all_data" / "SemEval2010_task8_training" / "TRAIN_FILE.TXT"


def test_overfits_a_handful_of_semeval_sentences(datasets_dir, tmp_path):
    """Gold entities, exclusive classes, one relation per entity pair (the SemEval setting):
    after training on 8 sentences the model predicts their directed labels."""
    from spacy_ie.datasets import semeval
    from spacy_ie.training.converters import convert_file

    lines = (datasets_dir / SEMEVAL_TRAIN).read_text(encoding="utf8").splitlines()
    path = tmp_path / "TRAIN_FILE.TXT"
    path.write_text("\n".join(lines[: 8 * 4]) + "\n", encoding="utf8")
    gold, _ = convert_file(path, "semeval")
    assert len(gold) == 8
    words = [t.text for doc in gold for t in doc]
    bert = make_tiny_bert(tmp_path / "bert", words)
    fix_random_seed(0)
    nlp = spacy.blank("en")
    nlp.add_pipe("relation_extractor", config={
        "model": {"@architectures": ARCH, "name": str(bert), "hidden_width": 64},
        "spans_key": "entities", "exclusive_classes": True, "one_relation_per_pair": True,
    })
    examples = []
    for doc in gold:
        pred = nlp.make_doc(doc.text)
        pred.spans["entities"] = [pred.char_span(s.start_char, s.end_char, label=s.label_) for s in doc.spans["entities"]]
        examples.append(Example(pred, doc))
    nlp.initialize(lambda: examples)
    optimizer = Adam(1e-3)
    losses = []
    for _ in range(40):
        step = {}
        nlp.update(examples, sgd=optimizer, losses=step)
        losses.append(step["relation_extractor"])
    assert losses[-1] < losses[0] / 4
    predicted = list(nlp.pipe(eg.predicted.copy() for eg in examples))
    assert [semeval.directed_label(d) for d in predicted] == [semeval.directed_label(d) for d in gold]
    assert len({semeval.directed_label(d) for d in gold}) >= 4  # several labels and directions


@pytest.fixture(scope="module")
def trained_marker_pipelines(tiny_bert, demo_corpus, tmp_path_factory) -> Dict[str, Path]:
    """Each marker config trained by spaCy's loop (in process) for 3 steps on the demo corpus
    with the tiny transformer: config name -> model-last."""
    from spacy.cli.train import train

    from conftest import REPO_ROOT

    paths = {}
    for config_name in ("rel_markers_gold.cfg", "ner_rel_markers.cfg"):
        fix_random_seed(0)
        overrides = {
            "paths.train": str(demo_corpus["dev"]), "paths.dev": str(demo_corpus["dev"]),
            "paths.transformer_name": str(tiny_bert), "training.max_steps": 3,
            "training.eval_frequency": 3, "training.optimizer.learn_rate.warmup_steps": 1,
            "components.relation_extractor.threshold": 0.0,
        }
        output = tmp_path_factory.mktemp(config_name.replace(".", "_"))
        train(REPO_ROOT / "configs" / config_name, output, overrides=overrides)
        paths[config_name] = output / "model-last"
    return paths


TEXT_E2E = "Alice Smith works for Acme Corp in Paris."


def relations_between_given_entities(nlp) -> List[Tuple[str, str, str]]:
    doc = nlp.make_doc(TEXT_E2E)
    doc.ents = [doc.char_span(0, 11, label="PERSON"), doc.char_span(22, 31, label="ORG")]
    with nlp.select_pipes(enable=["relation_extractor"]):
        doc = nlp(doc)
    return [(r.head.text, r.label, r.tail.text) for r in doc._.relations]


@pytest.mark.parametrize(
    "config_name,pipeline",
    [("rel_markers_gold.cfg", ["relation_extractor"]), ("ner_rel_markers.cfg", ["transformer", "ner", "relation_extractor"])],
)
def test_configs_train_with_spacy_train(config_name, pipeline, trained_marker_pipelines):
    """The saved pipeline of each config predicts relations between given entities."""
    nlp = spacy.load(trained_marker_pipelines[config_name])
    assert nlp.pipe_names == pipeline
    assert marker_model.get_transformer(nlp.get_pipe("relation_extractor").model) is not None
    found = relations_between_given_entities(nlp)
    assert found  # threshold 0: every allowed label of the candidates
    assert {(h, t) for h, _, t in found} <= {("Alice Smith", "Acme Corp"), ("Acme Corp", "Alice Smith")}


def test_assemble_config_joins_a_ner_and_a_relation_pipeline(trained_marker_pipelines, tmp_path):
    """configs/assemble_ner_markers.cfg, through `spacy assemble`: the transformer and ner of
    one pipeline and the relation_extractor of another, each predicting as in its source."""
    from conftest import REPO_ROOT

    ner_source = trained_marker_pipelines["ner_rel_markers.cfg"]
    rel_source = trained_marker_pipelines["rel_markers_gold.cfg"]
    cmd = [sys.executable, "-m", "spacy", "assemble", str(REPO_ROOT / "configs" / "assemble_ner_markers.cfg"),
           str(tmp_path / "joined"), "--paths.ner_source", str(ner_source), "--paths.rel_source", str(rel_source)]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    joined = spacy.load(tmp_path / "joined")
    assert joined.pipe_names == ["transformer", "ner", "relation_extractor"]
    ner_nlp, rel_nlp = spacy.load(ner_source), spacy.load(rel_source)
    assert [(e.text, e.label_) for e in joined(TEXT_E2E).ents] == [(e.text, e.label_) for e in ner_nlp(TEXT_E2E).ents]
    doc = joined.make_doc(TEXT_E2E)
    doc.ents = [doc.char_span(0, 11, label="PERSON"), doc.char_span(22, 31, label="ORG")]
    probs = joined.get_pipe("relation_extractor").predict([doc]).probs
    assert probs.shape[0] == 2
    numpy.testing.assert_array_equal(probs, rel_nlp.get_pipe("relation_extractor").predict([doc]).probs)
    assert not numpy.allclose(probs, ner_nlp.get_pipe("relation_extractor").predict([doc]).probs)  # not the ner pipeline's
