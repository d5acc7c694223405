"""Issue 23: progress and timing that tell the truth, and a first screen that answers the question.

Each test here failed before its change: a test's scores independent of the tests beside it, progress with real
counts (and one plain line per phase off a terminal), the summary line over all tests, the documents in one
stated order, weat's verdict, the same bootstrap CI in weat and score, terminal-width wrapping, the cache."""
from __future__ import annotations

import random

import numpy as np
import pytest

from biasaudit.corpus import Document, MemoryCorpus
from biasaudit.influence.estimators import EstimatorConfig
from biasaudit.measures.targets import weat_target
from biasaudit.models.skipgram import SkipGramConfig, train_skipgram
from biasaudit.planted import BACKGROUND
from biasaudit.wordsets import resolve_tests


def default_words_corpus(n_docs: int = 400, seed: int = 0) -> MemoryCorpus:
    """Word salad holding every word of the three default tests, math words leaning male, arts female."""
    rng = random.Random(seed)
    tests = resolve_tests(None)
    words = sorted({w for t in tests for w in t.words})
    male, female = tests[0].target_x.words, tests[0].target_y.words
    math, arts = tests[0].attribute_a.words, tests[0].attribute_b.words
    docs = []
    for i in range(n_docs):
        text = [rng.choice(BACKGROUND) for _ in range(rng.randint(8, 16))]
        for _ in range(2):
            text.insert(rng.randrange(len(text)), rng.choice(words))
        if i % 5 == 0:
            text += [rng.choice(male), rng.choice(math), rng.choice(female), rng.choice(arts)]
        docs.append(Document(f"d{i}", " ".join(text)))
    return MemoryCorpus(docs, name="default-words")


@pytest.fixture(scope="module")
def three_tests():
    corpus = default_words_corpus()
    model = train_skipgram(corpus, SkipGramConfig(vector_size=8, window=3, min_count=2, epochs=5, seed=1))
    return corpus, model, resolve_tests(None)


@pytest.mark.parametrize("estimator", ["block", "cg"])
def test_a_tests_scores_do_not_depend_on_the_tests_beside_it(three_tests, estimator):
    """math-arts alone gives the same scores, damping, removal predictions and stability basis as math-arts in
    the three-test default (the damping is relative to the test's own words' curvature, not all tests')."""
    from biasaudit.influence.scorer import score_documents

    corpus, model, tests = three_tests
    cfg = EstimatorConfig(name=estimator, max_iter=200) if estimator == "cg" else EstimatorConfig(name=estimator)
    all_targets = [weat_target(t, model.vocab) for t in tests]
    alone = score_documents(model, corpus, all_targets[:1], cfg)
    beside = score_documents(model, corpus, all_targets, cfg)
    name = tests[0].name
    a, b = alone.delta_bias_if_removed[name], beside.delta_bias_if_removed[name]
    assert np.count_nonzero(a) > 20
    np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-12 * np.abs(a).max())
    assert alone.solver_info[name]["damping_absolute"] == pytest.approx(beside.solver_info[name]["damping_absolute"])
    order = np.argsort(a, kind="stable")[:20]
    pa, pb = (r.predictor.predict([(name, order, 0)])[0] for r in (alone, beside))
    assert pa == pytest.approx(pb, rel=1e-6, abs=1e-9)
    if estimator == "block":
        np.testing.assert_allclose(alone.basis.scores(all_targets[0]), beside.basis.scores(all_targets[0]),
                                   rtol=1e-5, atol=1e-9 * np.abs(a).max())


def _newton_reference(o, word, ctx, dn, lam, max_iter=50, tol=1e-12):
    """The re-solve as it was: Newton's method with a fresh Hessian every step (the oracle for the chord one)."""
    import torch

    c0, n0 = o.word_pairs(word)
    u0 = o.U[word]
    N0 = float(n0.sum())
    dn_full = torch.zeros(o.V, dtype=o.dtype).index_add_(0, torch.as_tensor(ctx), torch.as_tensor(dn, dtype=o.dtype))
    c1 = torch.unique(torch.cat([c0, torch.as_tensor(ctx, dtype=c0.dtype)]))
    n_full = torch.zeros(o.V, dtype=o.dtype).index_add_(0, c0, n0)
    n1 = torch.clamp(n_full[c1] + dn_full[c1], min=0.0)
    N1 = max(0.0, N0 + float(dn_full.sum()))
    residual, _ = o._word_terms(u0, c0, n0, N0)
    u = u0.clone()
    for _ in range(max_iter):
        g, H = o._word_terms(u, c1, n1, N1)
        step = torch.linalg.solve(H + lam * torch.eye(o.dim, dtype=o.dtype), g - residual + lam * (u - u0))
        u = u - step
        if float(step.norm()) < tol:
            break
    return u


@pytest.mark.parametrize("share", [0.05, 0.5, 1.0])
def test_removal_re_solve_equals_newtons_root(three_tests, share):
    """The cheaper re-solve (chord steps with the Hessian at the trained vector, cached per word) lands on the
    root Newton's method finds, for a small edit, half of a word's pairs, and all of them (the fallback)."""
    from biasaudit.models.skipgram_objective import SkipGramObjective

    corpus, model, tests = three_tests
    o = SkipGramObjective(model, corpus)
    rng = np.random.default_rng(0)
    for w in ("he", "math", "poetry"):
        word = model.vocab.key_to_index[w]
        c0, n0 = o.word_pairs(word)
        pick = rng.random(len(c0)) < share if share < 1 else np.ones(len(c0), dtype=bool)
        ctx, dn = c0.numpy()[pick], -n0.numpy()[pick]
        lam = 0.1 * float(o.input_blocks([word])[word].trace()) / o.dim
        got = o.resolve_word(word, ctx, dn, lam)
        want = _newton_reference(o, word, ctx, dn, lam)
        np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-6, atol=1e-8)
        assert o.resolve_word(word, ctx, dn, lam).numpy() == pytest.approx(got.numpy())   # the cache changes nothing


@pytest.fixture(scope="module")
def small_file(tmp_path_factory):
    import json

    path = tmp_path_factory.mktemp("corpus") / "small.jsonl"
    path.write_text("".join(json.dumps({"id": d.id, "text": d.text}) + "\n" for d in default_words_corpus()))
    return path


SMALL = ("--vector-size", "8", "--epochs", "3", "--min-count", "2")


@pytest.fixture(scope="module")
def score_run(small_file, tmp_path_factory):
    from conftest import run_cli

    out = tmp_path_factory.mktemp("score")
    return run_cli("score", "--corpus", small_file, *SMALL, "--top", "4", "--out", out / "o",
                   cache=out / "cache")


def test_score_off_a_terminal_prints_a_line_per_phase_and_the_times(score_run):
    """Output redirected: one plain line per phase with its own count (the removal predictions too, which ran
    behind a finished bar), and the closing line gives the whole run's time."""
    r = score_run
    assert r.returncode == 0, r
    for phase in ("reading documents: 400/400", "measuring tests: 3/3", "removal predictions: 6/6",
                  "ranking stability: 300/300"):
        assert phase in r.stderr, r
    assert "None" not in r.stderr, r
    assert r.stdout.strip().splitlines()[-1].startswith("done in "), r
    assert "s scoring)" not in r.stdout, r


def test_score_opens_with_a_summary_and_ends_with_the_next_step_and_its_cost(score_run):
    r = score_run
    lines = r.stdout.strip().splitlines()
    assert lines[0].startswith("summary: ") and "seed spread not measured" in r.stdout.split("\n\n")[0], r
    assert all(name in r.stdout.split("\n\n")[0] for name in ("math-arts d ", "science-arts d ", "career-family d ")), r
    nxt = next(i for i, l in enumerate(lines) if l.startswith("next: check this ranking by retraining ("))
    assert "45 trainings" in lines[nxt] and "biasaudit experiment" in lines[nxt + 1], r


def test_document_lists_are_sorted_by_the_score_shown_under_a_header(score_run):
    r = score_run
    blocks = r.stdout.split("documents that drive the bias ")[1:]
    assert len(blocks) == 6, r
    for block in blocks:
        lines = block.splitlines()
        assert "sorted by score" in lines[1], r
        assert lines[1].split()[:2] == ["score", "stab"], r
        scores = [float(l.split()[0]) for l in lines[2:] if l[:10].strip() and l.split()[0][:1] in "+-"]
        assert scores, r
        up = block.startswith("UP")
        assert scores == sorted(scores, reverse=not up), r


def test_train_out_is_the_only_copy(small_file, tmp_path):
    from conftest import run_cli

    cache = tmp_path / "cache"
    r = run_cli("train", "--corpus", small_file, *SMALL, "--out", tmp_path / "m", cache=cache)
    assert r.returncode == 0, r
    assert (tmp_path / "m" / "config.json").is_file()
    assert not (cache / "models").exists() or not any((cache / "models").iterdir()), r
    assert "only copy" in r.stdout and r.stdout.strip().splitlines()[-1].startswith("done in "), r


def test_tests_never_touch_the_users_cache(tmp_path_factory):
    """The session's model cache is a temporary folder (conftest), whatever $BIASAUDIT_CACHE the user set."""
    from biasaudit.models.base import cache_dir

    assert cache_dir().resolve().is_relative_to(tmp_path_factory.getbasetemp().resolve())


def test_weat_gives_a_verdict_and_says_when_p_cannot_reach_005(small_file, tmp_path):
    import json

    from conftest import run_cli

    two = tmp_path / "two.json"
    two.write_text(json.dumps({"name": "two", "target_x": {"name": "m", "words": ["he", "man"]},
                               "target_y": {"name": "f", "words": ["she", "woman"]},
                               "attribute_a": {"name": "a", "words": ["math", "algebra"]},
                               "attribute_b": {"name": "b", "words": ["poetry", "art"]}}))
    r = run_cli("weat", "--corpus", small_file, *SMALL, "--test", "math-arts", "--test", two, cache=tmp_path / "c")
    assert r.returncode == 0, r
    assert "two: d " in r.stdout and "cannot be significant" in r.stdout and "0.17" in r.stdout, r
    line = next(l for l in r.stdout.splitlines() if l.startswith("math-arts: d "))
    assert any(v in line for v in ("not distinguishable", "association", "CI holds 0")), r


def test_weat_and_score_give_the_same_ci(small_file, score_run, tmp_path):
    """The same model and test: the same bootstrap CI and p in `weat --json` and score's summary."""
    import json
    import re

    from conftest import run_cli

    out = re.search(r"wrote (\S+)/scores.jsonl", score_run.stdout).group(1)
    summary = json.loads((__import__("pathlib").Path(out) / "summary.json").read_text())
    cache = __import__("pathlib").Path(out).parent / "cache"
    r = run_cli("weat", "--corpus", small_file, *SMALL, "--json", cache=cache)
    assert r.returncode == 0, r
    rows = {x["test"]: x for x in json.loads(r.stdout)}
    for t in summary["tests"]:
        w = rows[t["name"]]
        assert (t["weat"]["ci_low"], t["weat"]["ci_high"], t["weat"]["p_value"]) == (
            w["ci_low"], w["ci_high"], w["p_value"])
