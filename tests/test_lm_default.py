"""``--model lm`` by default: the bundled base (a tiny one here, built in the test's cache) fine-tuned on the corpus
in a smooth audited phase; ``--from-scratch`` as before; an experiment's retrain of the audited phase keeps the
baseline's batches where the edit only removes or copies documents."""
from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("transformers")

from biasaudit.models import lm_base  # noqa: E402

TINY = {**lm_base.BASE_RECIPE, "documents": 120, "hidden_size": 16, "intermediate_size": 32, "num_heads": 2,
        "vocab_size": 300}


@pytest.fixture()
def tiny_base(tmp_path, monkeypatch):
    """The default recipe's base is this tiny one, cached under the test's folder."""
    monkeypatch.setattr(lm_base, "BASE_RECIPE", TINY)
    monkeypatch.setenv("BIASAUDIT_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def _corpus(n_background=24, n_planted=4):
    from biasaudit.planted import lm_planted_corpus
    corpus, planted = lm_planted_corpus(n_background=n_background, n_planted=n_planted)
    return corpus, planted


def test_the_default_is_the_smooth_phase_on_the_base_built_once_and_from_scratch_is_as_before(tiny_base):
    from biasaudit import api
    from biasaudit.models.lm import LMConfig
    from biasaudit.models.lm_family import SMOOTH

    cfg = api.model_config("lm")
    assert cfg.finetune == str(lm_base.base_path()) and str(tiny_base) in cfg.finetune
    assert {k: getattr(cfg, k) for k in SMOOTH} == SMOOTH and (cfg.eps_root, cfg.dropout, cfg.dtype) == (1e-6, 0,
                                                                                                        "float64")
    assert api.model_config("lm", from_scratch=True) == LMConfig()           # the old default, its cache keys too
    assert api.model_config("lm", lm_config="epochs=1").epochs == 1           # --lm-config overrides the recipe
    corpus, _ = _corpus()
    from biasaudit.models.base import cached_train_seconds
    # an experiment's plan asks the cache before any training: nothing cached, and no silent build of the base
    assert cached_train_seconds(corpus, cfg, tiny_base) is None and not lm_base.base_path().exists()
    stages = []
    [model] = api.train_seeds(corpus, cfg, cache=tiny_base, progress=lambda s, d, t: stages.append((s, d, t)))
    built = [(d, t) for s, d, t in stages if s == "building the base LM (once, then cached)"]
    assert built[0][0] == 0 and built[-1][0] == built[-1][1] > 0                     # its own phase, to the end
    assert model.meta["run"]["optimizer"] == "adam-eps-root" and model.meta["finetuned_from"] == cfg.finetune
    stages.clear()
    api.train_seeds(corpus, cfg, cache=tiny_base, progress=lambda s, d, t: stages.append((s, d, t)))
    assert not any(s.startswith("building the base") for s, _, _ in stages)          # cached: built once


def test_paired_weights_count_each_document_and_refuse_anything_but_removals_and_copies():
    from biasaudit.corpus import Document, MemoryCorpus
    from biasaudit.models.lm_family import paired_weights
    full = MemoryCorpus([Document("a", "x y"), Document("b", "y z"), Document("c", "z w")], "f")
    assert paired_weights(full.without({"b"}), full).tolist() == [1, 0, 1]
    assert paired_weights(full.upweight({"c"}, 3), full).tolist() == [1, 1, 3]
    assert paired_weights(MemoryCorpus([Document("a", "x y"), Document("b", "y q")], "e"), full) is None  # rewrite
    assert paired_weights(MemoryCorpus([Document("d", "x y")], "e"), full) is None                        # new


def test_a_retrained_audited_phase_keeps_the_baselines_batches_and_differs_by_the_edit_alone(tiny_base):
    """Oracle: the retrain without documents is the baseline's run with their weights at 0, bit for bit, over the
    same batches (the recorded batch hash); with no edit it is the baseline itself. A rewrite is trained on the
    edited corpus (its own batches)."""
    import torch
    from biasaudit import api
    from biasaudit.models import family_of
    from biasaudit.models.lm import train_lm

    corpus, planted = _corpus()
    cfg = api.model_config("lm", lm_config="batch_size=16,epochs=1")
    fam = family_of(cfg)
    fam.prepare(cfg)
    base = fam.train(corpus, cfg)
    same = fam.retrain(corpus.without(set()), cfg, corpus)
    for p, q in zip(base.net.parameters(), same.net.parameters()):
        assert torch.equal(p, q)
    gone = set(sorted(planted)[:2])
    removed = fam.retrain(corpus.without(gone), cfg, corpus)
    w = np.array([0.0 if d.id in gone else 1.0 for d in corpus])
    masked = train_lm(corpus, cfg, doc_weights=w)
    for p, q in zip(removed.net.parameters(), masked.net.parameters()):
        assert torch.equal(p, q)
    assert removed.meta["run"]["batches_sha256"] == base.meta["run"]["batches_sha256"]
    assert not all(torch.equal(p, q) for p, q in zip(base.net.parameters(), removed.net.parameters()))
    from biasaudit.corpus import Document, MemoryCorpus
    docs = list(corpus)
    rewrite = MemoryCorpus([Document(d.id, d.text + " again") if d.id in gone else d for d in docs], "rewritten")
    assert fam.retrain(rewrite, cfg, corpus).meta["run"]["weighted"] is False


def test_from_scratch_and_finetune_together_are_a_usage_error(tmp_path):
    from conftest import run_cli
    p = run_cli("train", "--model", "lm", "--from-scratch", "--checkpoint", tmp_path, "--finetune", "-c", "gcide",
                cache=tmp_path / "c", cwd=tmp_path)
    assert p.returncode == 2 and "--from-scratch" in p.stderr
    for cmd in ("score", "weat"):       # without --finetune too: neither is dropped silently
        p = run_cli(cmd, "--model", "lm", "--from-scratch", "--checkpoint", tmp_path, "-c", "gcide", "-t", "math-arts",
                    cache=tmp_path / "c", cwd=tmp_path)
        assert p.returncode == 2 and "--from-scratch" in p.stderr and "give one of them" in p.stderr, p


def test_the_default_estimator_is_magic_for_the_audited_phase_and_ekfac_from_scratch_or_for_a_checkpoint(
        tiny_base, tmp_path):
    """The audited phase (a fine-tune) defaults to magic: it is smooth and replayed exactly (docs/results/
    lm_smooth.md); a run from scratch, or a model with no training config here, to ekfac. api.score decides from
    the model it is given, as the CLI does from its options."""
    from biasaudit import api
    from biasaudit.planted import LM_TEMPLATES, LM_TEST

    def default(config):
        return [e.name for e in api.estimators(None, "lm", config)]
    assert default(api.model_config("lm")) == ["magic"]
    assert default(api.model_config("lm", from_scratch=True)) == ["ekfac"] == default(None)
    corpus, _ = _corpus()
    [model] = api.train_seeds(corpus, api.model_config("lm", lm_config="epochs=1"), cache=tiny_base)
    assert api.run_config(model) is model.config
    s = api.score(model, corpus, [LM_TEST], templates=list(LM_TEMPLATES), resamples=0, metasmoothness=0,
                  out=tmp_path / "s")
    assert s["config"]["estimator"]["name"] == "magic"
    assert "--estimator" not in s["check_command"]            # the default is not spelled out


def test_shuffled_batches_are_uniform_samples_each_epoch_a_permutation_and_length_grouping_stays_for_old_records():
    """The smooth phase's ``batches=shuffled``: every epoch covers each example once, a batch mixes example lengths
    (the length grouping puts a batch's examples within one length band), the same seed gives the same batches,
    and a record without the setting replays with length-grouped batches (how it was trained)."""
    from types import SimpleNamespace
    from biasaudit.errors import ConfigError
    from biasaudit.models.lm import LMConfig
    from biasaudit.models.lm_optim import Schedule, run_batches
    from biasaudit.models.lm_steps import Examples

    rng = np.random.default_rng(0)
    lengths = rng.choice([3, 4, 16], size=300, p=[0.45, 0.05, 0.5])
    ex = Examples([np.zeros(n, dtype=np.int64) for n in lengths], np.arange(300), [str(i) for i in range(300)])

    def batches(kind, seed=1):
        cfg = LMConfig(batch_size=64, epochs=2, seed=seed, batches=kind, finetune="x")
        return list(run_batches(ex, cfg, Schedule.of(cfg, 300)))

    shuffled, grouped = batches("shuffled"), batches("length")
    assert len(shuffled) == len(grouped) == 10
    for epoch in (shuffled[:5], grouped[:5], shuffled[5:]):
        assert sorted(np.concatenate(epoch).tolist()) == list(range(300))
    spread = [np.ptp(lengths[b]) for b in shuffled if len(b) == 64]
    assert min(spread) == 13                                         # every full batch holds short and long ones
    assert sum(np.ptp(lengths[b]) > 0 for b in grouped) <= 4     # length bands: only the 2 seams an epoch mix
    assert all(np.array_equal(a, b) for a, b in zip(shuffled, batches("shuffled")))
    assert not all(np.array_equal(a, b) for a, b in zip(shuffled, batches("shuffled", seed=2)))
    old = SimpleNamespace(seed=1, batch_size=64)                      # a config recorded before the setting
    assert all(np.array_equal(a, b) for a, b in zip(run_batches(ex, old, Schedule(2, 5, 10, 1)), grouped))
    with pytest.raises(ConfigError, match="batches must be one of length, shuffled"):
        LMConfig(batches="sorted")
