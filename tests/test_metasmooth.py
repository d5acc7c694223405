"""Metasmoothness (Def. 2 of arXiv 2503.13751): 1 for a response linear in the document weights, near 0 for one
whose finite differences flip sign, unchanged by scaling; the smooth LM recipe scores near 1."""
from __future__ import annotations

import numpy as np
import pytest

from biasaudit.influence.metasmooth import metasmoothness, metasmoothness_score


def test_a_linear_response_scores_one_and_scaling_changes_nothing():
    rng = np.random.default_rng(0)
    A = rng.standard_normal((50, 20))
    res = metasmoothness(lambda w: A @ w, lambda th: th, 20, {"sum": lambda th: float(th.sum())}, h=0.1)
    assert res["metasmoothness"] == pytest.approx(1.0) and res["trainings"] == 5 and res["smooth"]
    assert all(r["measures"]["sum"]["difference_ratio"] == pytest.approx(1.0) for r in res["directions"])
    res10 = metasmoothness(lambda w: 10 * A @ w + 3, lambda th: th, 20, h=0.1)
    assert res10["scores"] == pytest.approx(res["scores"])


def test_a_chaotic_response_scores_near_zero():
    rng = np.random.default_rng(1)
    A = rng.standard_normal((400, 20))
    res = metasmoothness(lambda w: np.sin(1e4 * (A @ w)), lambda th: th, 20, h=0.1)
    assert abs(res["metasmoothness"]) < 0.3 and not res["smooth"]


def test_score_by_hand():
    t0, th, t2 = np.zeros(3), np.array([1.0, -1.0, 1.0]), np.array([2.0, 1.0, 0.5])
    # weights |t2 - t0| = (2, 1, 0.5)/3.5; signs (t_h - t_0) = (+, -, +), (t_2h - t_h) = (+, +, -)
    assert metasmoothness_score(t0, th, t2) == pytest.approx((2 - 1 - 0.5) / 3.5)


def test_the_smooth_lm_recipe_is_metasmooth():
    pytest.importorskip("transformers")
    from biasaudit.corpus import MemoryCorpus
    from biasaudit.influence.metasmooth import lm_metasmoothness
    from biasaudit.measures.lm import template_measure
    from biasaudit.models.lm import LMConfig, train_lm
    from biasaudit.planted import LM_TEMPLATES, LM_TEST, lm_planted_corpus
    from biasaudit.wordsets import BiasTest

    corpus, _ = lm_planted_corpus()
    corpus = MemoryCorpus(list(corpus)[:48], "tiny")
    cfg = LMConfig(hidden_size=16, num_layers=1, num_heads=2, intermediate_size=32, min_count=1, epochs=2,
                   min_steps=0, batch_size=16, dtype="float64", learning_rate=1e-2, eps_root=1e-6, dropout=0)
    model = train_lm(corpus, cfg)
    m, _ = template_measure(BiasTest.from_dict(LM_TEST), model, LM_TEMPLATES)
    res = lm_metasmoothness(model, corpus, [m])
    assert res["metasmoothness"] >= 0.95, res["scores"]
    # the switch is epsilon inside the root: torch's AdamW (eps outside) on the same run is far from smooth
    from dataclasses import replace
    rough = lm_metasmoothness(train_lm(corpus, replace(cfg, eps_root=0.0)), corpus)
    assert rough["metasmoothness"] < 0.7, rough["scores"]


def test_magic_with_a_metasmoothness_check_records_it_and_notes_a_rough_run():
    pytest.importorskip("transformers")
    import warnings
    from dataclasses import replace
    from biasaudit.corpus import MemoryCorpus
    from biasaudit.errors import BiasAuditWarning, ConfigError
    from biasaudit.influence import score_model
    from biasaudit.influence.estimators import EstimatorConfig, parse_estimators
    from biasaudit.measures.lm import template_measure
    from biasaudit.models.lm import LMConfig, train_lm
    from biasaudit.planted import LM_TEMPLATES, LM_TEST, lm_planted_corpus
    from biasaudit.wordsets import BiasTest

    est = parse_estimators("magic:metasmoothness=2")[0]
    assert est.metasmoothness == 2 and "metasmoothness" not in EstimatorConfig(name="magic").to_dict()
    with pytest.raises(ConfigError, match="setting of magic"):
        EstimatorConfig(name="ekfac", metasmoothness=2)
    corpus, _ = lm_planted_corpus()
    corpus = MemoryCorpus(list(corpus)[:48], "tiny")
    cfg = LMConfig(hidden_size=16, num_layers=1, num_heads=2, intermediate_size=32, min_count=1, epochs=2,
                   min_steps=0, batch_size=16, dtype="float64", learning_rate=1e-2, eps_root=1e-6, dropout=0)
    for c, rough in ((cfg, False), (replace(cfg, eps_root=0.0), True)):
        model = train_lm(corpus, c)
        m, _ = template_measure(BiasTest.from_dict(LM_TEST), model, LM_TEMPLATES)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            res = score_model(model, corpus, [m], est)
        ms = res.solver_info[m.name]["metasmoothness"]
        assert len(ms["scores"]) == 2 and ms["smooth"] is not rough
        notes = [w for w in caught if issubclass(w.category, BiasAuditWarning) and "metasmoothness" in str(w.message)]
        assert bool(notes) is rough


def _tiny_lm_run(eps_root: float):
    from biasaudit.corpus import MemoryCorpus
    from biasaudit.models.lm import LMConfig, train_lm
    from biasaudit.planted import lm_planted_corpus
    corpus, _ = lm_planted_corpus()
    corpus = MemoryCorpus(list(corpus)[:48], "tiny")
    cfg = LMConfig(hidden_size=16, num_layers=1, num_heads=2, intermediate_size=32, min_count=1, epochs=2,
                   min_steps=0, batch_size=16, dtype="float64", learning_rate=1e-2, eps_root=eps_root, dropout=0)
    return corpus, train_lm(corpus, cfg)


def test_the_audited_model_is_the_run_with_weights_one_so_the_check_reuses_it():
    """Oracle: the check that reuses the model gives the same scores as the one that retrains weights 1, with one
    training fewer."""
    pytest.importorskip("transformers")
    from biasaudit.influence.metasmooth import run_metasmoothness
    corpus, model = _tiny_lm_run(1e-6)
    a = run_metasmoothness(model, corpus, directions=1)
    b = run_metasmoothness(model, corpus, directions=1, reuse_model=True)
    assert b["scores"] == a["scores"] and (a["trainings"], b["trainings"]) == (3, 2)


@pytest.mark.parametrize("eps_root", [1e-6, 0.0])
def test_score_measures_a_language_models_run_and_says_first_what_it_means(tmp_path, eps_root):
    """score on an LM trained here measures its run's metasmoothness by default (2 directions): in summary.json,
    as the first note (NOT expected to confirm below the threshold), and in the report's header; 0 turns it
    off; a word-vector family is not measured by default."""
    pytest.importorskip("transformers")
    from biasaudit.audit import ScoreOptions, run_score
    from biasaudit.errors import ConfigError
    from biasaudit.influence.estimators import EstimatorConfig
    from biasaudit.planted import LM_TEMPLATES, LM_TEST
    from biasaudit.report import write_report
    from biasaudit.wordsets import BiasTest

    corpus, model = _tiny_lm_run(eps_root)
    opts = ScoreOptions(estimator=EstimatorConfig(name="gradient-dot"), out_dir=tmp_path / "s",
                        templates=LM_TEMPLATES, n_resamples=0)
    summary = run_score(model, corpus, [BiasTest.from_dict(LM_TEST)], opts).summary
    ms = summary["metasmoothness"]
    assert len(ms["scores"]) == 2 and ms["trainings"] == 4 and ms["smooth"] is (eps_root > 0)
    assert summary["notes"][0] == ms["note"] and ("NOT expected" in ms["note"]) is (eps_root == 0)
    html = write_report(tmp_path / "s").read_text(encoding="utf-8")
    assert "<dt>Training run</dt>" in html and ms["note"][:40] in html
    from dataclasses import replace
    off = run_score(model, corpus, [BiasTest.from_dict(LM_TEST)],
                    replace(opts, metasmoothness=0, out_dir=tmp_path / "t")).summary
    assert "metasmoothness" not in off and not any("metasmoothness" in n for n in off["notes"])
    with pytest.raises(ConfigError, match="metasmoothness"):
        ScoreOptions(metasmoothness=11)
