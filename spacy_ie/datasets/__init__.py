"""Preparation of the public datasets the benchmarks use: splits and raw text, written as
DocBins or JSONL. Each module runs as a script, e.g. ``python -m spacy_ie.datasets.semeval``."""
