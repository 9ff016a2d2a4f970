"""Shared pytest fixtures."""
import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def datasets_dir() -> Path:
    """The real datasets: $SPACY_IE_DATASETS, else ../shared/datasets beside the repo root.

    Tests that use it are skipped when the directory does not exist.
    """
    path = Path(os.environ.get("SPACY_IE_DATASETS") or REPO_ROOT.parent / "shared" / "datasets")
    if not path.is_dir():
        pytest.skip(f"real datasets not found at {path} (set SPACY_IE_DATASETS)")
    return path
