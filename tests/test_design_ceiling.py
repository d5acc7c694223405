"""scripts/lm_smooth.py's exact learner: what a model that learned a planted corpus's rates exactly would measure
(the design's ceiling), against a hand-computed case."""
from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import pytest

pytest.importorskip("torch")

from biasaudit.corpus import Document, MemoryCorpus  # noqa: E402


def _script():
    path = Path(__file__).resolve().parents[1] / "scripts" / "lm_smooth.py"
    spec = importlib.util.spec_from_file_location("lm_smooth_script", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


TEST = {"target_x": {"words": ["xa", "xb"]}, "target_y": {"words": ["ya", "yb"]},
        "attribute_a": {"words": ["m"]}, "attribute_b": {"words": ["art"]}}


def test_the_exact_learner_reads_each_targets_log_odds_and_the_exact_p_over_every_split():
    # log odds: xa 3:1, xb 1:1, ya 1:3, yb 1:1 -> s = [ln 3, 0, -ln 3, 0]
    text = " . ".join(["xa studied m"] * 3 + ["xa loved art", "xb studied m", "xb loved art", "ya studied m"]
                      + ["ya loved art"] * 3 + ["yb studied m", "yb loved art", "zz studied m"])
    got = _script().exact_learner(MemoryCorpus([Document("d", text)], "t"), TEST)
    # d = ln 3 / sd([ln 3, 0, -ln 3, 0]) = sqrt(3/2); the observed split 2 ln 3 is matched by one other of 6
    assert got["d"] == pytest.approx(math.sqrt(1.5)) and got["p"] == pytest.approx(2 / 6)
    lonely = _script().exact_learner(MemoryCorpus([Document("d", "xa studied m . xb loved art")], "t"), TEST)
    assert lonely == {"d": None, "p": None}          # a target never with one group: undefined, not a crash
