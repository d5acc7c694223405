"""Shared fixtures: tiny synthetic corpora (no network) and an isolated model cache."""
from __future__ import annotations

import pytest

from biasaudit.planted import (BACKGROUND, LM_A, LM_B, LM_TEMPLATES, LM_TEST, LM_X, LM_Y,  # noqa: F401
                               PLANTED_TEST, lm_planted_corpus, planted_corpus)


@pytest.fixture
def cache(tmp_path, monkeypatch):
    d = tmp_path / "cache"
    monkeypatch.setenv("BIASAUDIT_CACHE", str(d))
    return d


@pytest.fixture(scope="session")
def planted():
    return planted_corpus()
