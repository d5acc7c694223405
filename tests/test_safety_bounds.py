"""Hostile inputs, third pass (issue 33, holes 3 and 6 and their rough edges): pair measures in memory bounded
whatever the pair count and with the same p-value for a seed, over-long pair sentences dropped before tokenising,
a byte-order mark read, repeated pairs dropped and counted."""
import json
import tracemalloc
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from biasaudit.measures import lm as lm_measures
from biasaudit.measures.lm import PairMeasure, dropped_pairs_notes, pair_file, pair_measure

REPEATED = "repeating an earlier pair's tokens"


def _word_model(words, max_len=64):
    from biasaudit.models.lm import SPECIALS, WordEncoder
    return SimpleNamespace(encoder=WordEncoder(SPECIALS + tuple(words)), max_len=max_len)


def _measure_of(diff) -> PairMeasure:
    """A pair measure whose per-pair differences are ``diff`` (the statistics, without a network)."""
    m = PairMeasure("p", [("a", "b")] * len(diff), [], [])
    m.differences = lambda net, batch=None: torch.as_tensor(diff)
    return m


def _one_block_stats(diff, n_permutations, n_bootstrap, seed):
    """The sign-flip p-value and bootstrap interval as they were computed in one (draws, n) block each."""
    obs, n = diff.mean(), len(diff)
    tol = 1e-12 * max(1.0, np.abs(diff).sum())
    signs = np.random.default_rng(seed).choice([-1.0, 1.0], size=(n_permutations, n))
    p = (1 + int(np.sum((signs * diff).mean(1) >= obs - tol))) / (1 + n_permutations)
    boots = diff[np.random.default_rng(seed).integers(0, n, (n_bootstrap, n))].mean(1)
    return p, tuple(np.quantile(boots, [0.025, 0.975]))


@pytest.mark.parametrize("block", [7 * 50 + 3, 1, 1 << 20])     # 7 rows a block, one row, everything in one
def test_the_sign_flip_test_in_blocks_gives_the_one_block_p_value_bit_for_bit(monkeypatch, block):
    diff = np.random.default_rng(3).normal(0.08, 1.0, 50)         # p in the middle, not at its floor
    p_ref, (lo_ref, hi_ref) = _one_block_stats(diff, 999, 301, seed=11)
    assert 0.05 < p_ref < 0.95
    monkeypatch.setattr(lm_measures, "BLOCK_VALUES", block)
    r = _measure_of(diff).stats(None, n_permutations=999, n_bootstrap=301, seed=11).to_dict()
    assert r["p_value"] == p_ref and r["n_permutations"] == 999
    assert (r["ci_low"], r["ci_high"]) == (lo_ref, hi_ref)


def test_the_sign_flip_test_of_many_pairs_stays_in_bounded_memory():
    """4,000 pairs and 4,000 sign flips drew a 4,000 x 4,000 matrix (128 MB) three times over; blocks of 2^20
    values keep the peak at a few of them (8 MB each) whatever the pair count."""
    diff = np.random.default_rng(0).normal(0.0, 1.0, 4000)
    m = _measure_of(diff)
    tracemalloc.start()
    try:
        r = m.stats(None, n_permutations=4000, n_bootstrap=1000, seed=0)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 48 * 2 ** 20, peak
    assert 0 < r.to_dict()["p_value"] < 1


def test_an_over_long_pair_is_dropped_before_it_is_tokenised():
    model = _word_model("the man woman was a nurse".split(), max_len=8)
    seen = []
    encode = model.encoder.encode
    model.encoder.encode = lambda text: seen.append(len(text)) or encode(text)
    huge = "the man was a nurse " * 50_000                     # 1 MB: a million characters
    pairs = [("the man was a nurse", "the woman was a nurse"), (huge, "the woman was a nurse")]
    m = pair_measure("p", pairs, model)
    assert m.ids == (1,) and m.dropped == {"longer than 800 characters": (2,)}
    assert max(seen) < 100                                      # the long sentence never reached the tokenizer
    assert dropped_pairs_notes([m]) == ["p: dropped 1 of 2 pairs (1 longer than 800 characters)"]


def test_a_pairs_file_may_start_with_a_byte_order_mark(tmp_path):
    f = tmp_path / "bom.jsonl"
    f.write_bytes("\ufeff".encode() + json.dumps({"more": "the men cook", "less": "the women cook"}).encode()
                  + b"\n")
    assert pair_file(f).pairs == (("the men cook", "the women cook"),)


def test_repeated_pairs_are_dropped_and_counted_and_do_not_make_a_gap_significant():
    model = _word_model("the man woman was a nurse doctor".split())
    pairs = [("the man was a nurse", "the woman was a nurse")] * 49 + [("The man was a NURSE.", "the woman was a "
                                                                         "nurse")]
    m = pair_measure("p", pairs, model)
    assert m.pairs == [pairs[0]] and m.ids == (1,) and m.dropped == {REPEATED: tuple(range(2, 51))}
    assert dropped_pairs_notes([m]) == ["p: dropped 49 of 50 pairs (49 repeating an earlier pair's tokens)"]
    m.differences = lambda net, batch=None: torch.full((len(m.pairs),), 0.3, dtype=torch.float64)
    assert m.stats(None).to_dict()["p_value"] == 0.5             # one pair: one of its two sign flips
    # a different pair stays, and so does the same pair reversed (its gap has the other sign)
    m = pair_measure("p", pairs[:2] + [("the man was a doctor", "the woman was a doctor"),
                                       ("the woman was a nurse", "the man was a nurse")], model)
    assert m.ids == (1, 3, 4) and m.dropped == {REPEATED: (2,)}
