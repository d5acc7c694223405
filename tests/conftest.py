"""Shared fixtures: tiny synthetic corpora (no network) and an isolated model cache."""
from __future__ import annotations

import pytest

from biasaudit.planted import (BACKGROUND, LM_A, LM_B, LM_TEMPLATES, LM_TEST, LM_X, LM_Y,  # noqa: F401
                               PLANTED_TEST, lm_planted_corpus, planted_corpus)


@pytest.fixture(scope="session", autouse=True)
def _temporary_model_cache(tmp_path_factory):
    """Every test's models go to a temporary cache, never the user's (~/.cache/biasaudit or $BIASAUDIT_CACHE)."""
    import os

    old = os.environ.get("BIASAUDIT_CACHE")
    os.environ["BIASAUDIT_CACHE"] = str(tmp_path_factory.mktemp("model-cache"))
    yield
    if old is None:
        os.environ.pop("BIASAUDIT_CACHE", None)
    else:
        os.environ["BIASAUDIT_CACHE"] = old


@pytest.fixture
def cache(tmp_path, monkeypatch):
    d = tmp_path / "cache"
    monkeypatch.setenv("BIASAUDIT_CACHE", str(d))
    return d


@pytest.fixture(scope="session")
def planted():
    return planted_corpus()


class CliResult:
    def __init__(self, returncode: int, stdout: str, stderr: str):
        self.returncode, self.stdout, self.stderr = returncode, stdout, stderr

    def __repr__(self) -> str:
        return f"exit {self.returncode}\n--- stdout\n{self.stdout}\n--- stderr\n{self.stderr}"


def run_cli(*args, cache=None, cwd=None) -> CliResult:
    """``biasaudit ARGS`` in this process (the imports are paid once per test session, not per call): exit code,
    stdout and stderr as a user sees them. ``cache``: the model cache folder ($BIASAUDIT_CACHE)."""
    import contextlib
    import io
    import os
    import sys
    import warnings

    from biasaudit import cli

    out, err = io.StringIO(), io.StringIO()
    old_argv, old_env, old_cwd = sys.argv, dict(os.environ), os.getcwd()
    sys.argv = ["biasaudit", *map(str, args)]
    if cache is not None:
        os.environ["BIASAUDIT_CACHE"] = str(cache)
    code = 0
    try:
        if cwd is not None:
            os.chdir(cwd)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), warnings.catch_warnings():
            try:
                cli.main()
            except SystemExit as e:
                code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    finally:
        sys.argv = old_argv
        os.environ.clear()
        os.environ.update(old_env)
        os.chdir(old_cwd)
    return CliResult(code, out.getvalue(), err.getvalue())


def pytest_configure(config):
    # one torch thread: the tests' tensors are small, and two threads fighting a busy machine for two cores
    # make thousands of small products (LiSSA, torch training) many times slower
    import torch
    torch.set_num_threads(1)
