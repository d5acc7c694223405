"""What the model an audited phase started from measured: a fine-tune's checkpoint, shown beside the run's own
effect size, with a warning where most of it is the starting model's (the scores explain only the phase)."""
from __future__ import annotations

import pytest

from biasaudit.audit.outputs import starting_evidence


def _ev(d):
    return {"effect_size": d, "p_value": 0.01, "warnings": ["earlier"], "verdict": "v"}


def test_the_phase_change_is_the_effect_size_minus_the_starting_models_and_a_warning_when_most_is_its_own():
    start = {"model": "the bundled base", "effect_size": 0.96, "p_value": 0.1, "ci_low": 0.1, "ci_high": 1.5}
    ev = starting_evidence(_ev(1.12), start)
    assert ev["before_audited_phase"] == {**start, "change": pytest.approx(0.16)}
    assert ev["warnings"][0] == "earlier" and len(ev["warnings"]) == 2
    assert ev["warnings"][1].startswith("mostly the starting model's: the bundled base measures d = +0.96 "
                                        "(p = 0.100, 95% CI [+0.10, +1.50]) before the audited phase, which moved "
                                        "it by +0.16")
    # the paired change, where given, is the one shown
    paired = starting_evidence(_ev(1.12), {**start, "change": 0.161, "change_ci_low": -0.2, "change_ci_high": 0.5})
    assert paired["before_audited_phase"]["change"] == 0.161 and "moved it by +0.16" in paired["warnings"][1]
    # half or less from the start, or of the other sign: the figure, no warning
    for d, d0 in ((1.12, 0.56), (1.12, -0.9), (-0.5, 0.4)):
        ev = starting_evidence(_ev(d), {**start, "effect_size": d0})
        assert ev["warnings"] == ["earlier"] and ev["before_audited_phase"]["change"] == pytest.approx(d - d0)
    assert starting_evidence(_ev(-1.0), {**start, "effect_size": -0.8})["warnings"][1].startswith(
        "mostly the starting model's")
    # nothing to compare: unchanged
    assert starting_evidence(_ev(1.0), None) == _ev(1.0)
    assert starting_evidence({"warnings": [], "verdict": "a query"}, start) == {"warnings": [], "verdict": "a query"}


def test_the_starting_point_is_the_checkpoint_whose_weights_the_run_recorded(tmp_path):
    pytest.importorskip("transformers")
    from biasaudit.errors import ArtifactError
    from biasaudit.models.base import family_of
    from biasaudit.models.lm import LMConfig, LMModel, checkpoint_hash, train_lm
    from biasaudit.planted import lm_planted_corpus, tiny_checkpoint

    corpus, _ = lm_planted_corpus(n_background=20, n_planted=2)
    ck = tiny_checkpoint(tmp_path / "ck", "llama", [d.text for d in corpus], width=16)
    model = train_lm(corpus, LMConfig(finetune=str(ck), epochs=1, batch_size=16, eps_root=1e-6, dropout=0))
    fam = family_of(model)
    base, name = fam.starting_point(model)
    assert name == f"the checkpoint {ck}"
    saved = LMModel.load(ck).net.state_dict()
    assert all((v == saved[k]).all() for k, v in base.net.state_dict().items())
    # the paired change: d of the fine-tune minus d of the checkpoint, its CI around it
    from biasaudit.measures.lm import template_measure
    from biasaudit.planted import LM_TEMPLATES, LM_TEST
    from biasaudit.wordsets import BiasTest
    m, _ = template_measure(BiasTest.from_dict(LM_TEST), model, LM_TEMPLATES)
    change, lo, hi = m.paired_change(model.net, base.net, 200)
    d1 = m.stats(model.net, n_bootstrap=0).effect_size
    d0 = template_measure(BiasTest.from_dict(LM_TEST), base, LM_TEMPLATES)[0].stats(base.net, n_bootstrap=0).effect_size
    assert change == pytest.approx(d1 - d0) and lo <= hi
    assert m.paired_change(model.net, model.net, 200) == (0.0, 0.0, 0.0)       # a model against itself: no change
    (ck / "config.json").write_text("{not json")       # unreadable: one line naming it (the audit leaves it out)
    model.meta["checkpoint_sha256"] = checkpoint_hash(ck)
    with pytest.raises(ArtifactError):
        fam.starting_point(model)
    model.meta["checkpoint_sha256"] = "0" * 64          # the checkpoint's weights changed since the run
    with pytest.raises(ArtifactError, match="not the checkpoint this model's run started from"):
        fam.starting_point(model)
    scratch = train_lm(corpus, LMConfig(hidden_size=16, intermediate_size=32, num_heads=2, epochs=1, min_steps=0,
                                        min_count=1))
    assert fam.starting_point(scratch) is None          # from scratch: nothing before the run


def test_a_starting_model_that_cannot_be_read_is_left_out_with_a_note_not_a_failed_audit():
    from biasaudit.audit import ScoreOptions
    from biasaudit.audit.run import Targets, starting_bias
    from biasaudit.errors import ArtifactError

    class Family:
        def starting_point(self, model):
            raise ArtifactError("ck: not the checkpoint this model's run started from")

    got = Targets(originals={"t": (None, None)})
    assert starting_bias(Family(), None, got, ScoreOptions()) == {}
    assert got.notes == ["what the model the audited phase started from measured is left out: ck: not the "
                         "checkpoint this model's run started from"]
