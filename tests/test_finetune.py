"""Fine-tuning a user's transformer checkpoint and auditing its fine-tuning documents: GPT-2 (its Conv1D layers
tracked as the equivalent nn.Linear) and GPT-NeoX, tiny configs saved locally (never a download)."""
from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("transformers")
pytest.importorskip("kronfluence")

import torch  # noqa: E402

from biasaudit.influence.ekfac import score_lm  # noqa: E402
from biasaudit.influence.estimators import EstimatorConfig  # noqa: E402
from biasaudit.measures.lm import template_measure  # noqa: E402
from biasaudit.models.lm import LMConfig, LMModel, train_lm  # noqa: E402
from biasaudit.models.lm_objective import trackable, tracked_modules  # noqa: E402
from biasaudit.planted import LM_TEMPLATES, LM_TEST, lm_planted_corpus, tiny_checkpoint  # noqa: E402
from biasaudit.wordsets import BiasTest  # noqa: E402
from conftest import run_cli  # noqa: E402


@pytest.fixture(scope="module")
def small():
    corpus, planted = lm_planted_corpus(n_background=60, n_planted=6)
    return corpus, planted


@pytest.fixture(scope="module")
def checkpoints(small, tmp_path_factory):
    corpus, _ = small
    root = tmp_path_factory.mktemp("ck")
    return {arch: tiny_checkpoint(root / arch, arch, [d.text for d in corpus], width=16)
            for arch in ("gpt2", "gpt_neox")}


def test_gpt2_conv1d_layers_are_tracked_as_linear_with_identical_logits(checkpoints):
    from transformers.pytorch_utils import Conv1D

    net = LMModel.load(checkpoints["gpt2"]).net
    assert any(isinstance(m, Conv1D) for m in net.modules())
    tr = trackable(net)
    assert not any(isinstance(m, Conv1D) for m in tr.modules())
    names = tracked_modules(tr)
    assert any(n.endswith("attn.c_attn") for n in names) and any(n.endswith("mlp.c_proj") for n in names)
    ids = torch.randint(0, len(LMModel.load(checkpoints["gpt2"]).encoder), (3, 12))
    with torch.no_grad():
        assert torch.allclose(net(input_ids=ids).logits, tr(input_ids=ids).logits, atol=1e-5)
    assert any(isinstance(m, Conv1D) for m in net.modules())     # the user's network is left as it was


@pytest.mark.parametrize("arch", ["gpt2", "gpt_neox"])
def test_a_checkpoint_is_fine_tuned_and_its_fine_tuning_documents_scored(small, checkpoints, arch):
    corpus, _ = small
    cfg = LMConfig(finetune=str(checkpoints[arch]), epochs=2, batch_size=16, seed=1)
    model = train_lm(corpus, cfg)
    assert model.meta["finetuned_from"] == str(checkpoints[arch]) and model.meta["steps"] == 2 * 5
    start = LMModel.load(checkpoints[arch])
    assert type(model.net).__name__ == type(start.net).__name__
    assert not torch.equal(next(model.net.parameters()), next(start.net.parameters()))   # it moved
    m, dropped = template_measure(BiasTest.from_dict(LM_TEST), model, LM_TEMPLATES)
    assert dropped == {}                      # words of several BPE tokens are known (their log-probs summed)
    r = score_lm(model, corpus, [m], EstimatorConfig(name="ekfac"))
    s = r.delta_bias_if_removed["planted"]
    assert np.isfinite(s).all() and np.count_nonzero(s) == len(s)
    b0 = r.bias_value["planted"]
    assert abs(r.predictor.predict([("planted", np.argsort(s)[:5], 0)])[0] - b0) > 0
    assert train_lm(corpus, cfg).net.state_dict().keys() == model.net.state_dict().keys()


def test_cli_finetune_score_save_reload_and_experiment(small, checkpoints, tmp_path):
    corpus, _ = small
    f = tmp_path / "c.jsonl"
    f.write_text("".join(json.dumps({"id": d.id, "text": d.text}) + "\n" for d in corpus), encoding="utf-8")
    (tmp_path / "t.json").write_text(json.dumps(LM_TEST))
    (tmp_path / "tpl.txt").write_text("\n".join(LM_TEMPLATES) + "\n")
    common = ["--model", "lm", "-c", f, "-t", tmp_path / "t.json", "--templates", tmp_path / "tpl.txt",
              "--checkpoint", checkpoints["gpt2"], "--finetune", "--epochs", "1", "--lm-config", "batch_size=16"]
    run = lambda *a: run_cli(*a, cache=tmp_path / "cache")                                      # noqa: E731
    p = run("score", *common, "--seeds", "1", "--out", tmp_path / "s", "--top", "3")
    assert p.returncode == 0, p
    summary = json.loads((tmp_path / "s" / "summary.json").read_text())
    assert summary["config"]["model_config"]["finetune"] == str(checkpoints["gpt2"].resolve())
    assert f"--checkpoint {checkpoints['gpt2'].resolve()} --finetune" in summary["check_command"]
    assert "--lm-config batch_size=16" in summary["check_command"]
    # what the checkpoint itself measured before the audited phase: the same test, words and templates on it
    before = summary["tests"][0]["evidence"]["before_audited_phase"]
    start = LMModel.load(checkpoints["gpt2"])
    m0, _ = template_measure(BiasTest.from_dict(LM_TEST), start, LM_TEMPLATES)
    assert before["effect_size"] == pytest.approx(m0.stats(start.net, n_bootstrap=0)["effect_size"], abs=1e-5)
    assert before["change"] == pytest.approx(summary["tests"][0]["weat"]["effect_size"] - before["effect_size"])
    assert before["change_ci_low"] <= before["change"] <= before["change_ci_high"]    # paired bootstrap over words
    assert before["model"] == f"the checkpoint {checkpoints['gpt2'].resolve()}" and 0 < before["p_value"] <= 1
    assert "before the audited phase (the checkpoint" in " ".join(p.stdout.split())
    (saved,) = [p.parent for p in (tmp_path / "cache").rglob("biasaudit.json")]    # cached: saved and reloaded
    again = LMModel.load(saved)
    assert again.config.finetune and type(again.encoder).__name__ == "HFEncoder"
    m, _ = template_measure(BiasTest.from_dict(LM_TEST), again, LM_TEMPLATES)
    assert m.stats(again.net, n_bootstrap=0)["effect_size"] == pytest.approx(
        summary["tests"][0]["weat"]["effect_size"], abs=1e-5)
    p = run("experiment", *common, "--k", "5", "--seeds", "1", "--conditions", "baseline,remove-top",
            "--scheduler", "none", "--out", tmp_path / "e")
    assert p.returncode == 0, p
    runs = [json.loads(x.read_text()) for x in (tmp_path / "e" / "runs").glob("*.json")]
    assert {r["kind"] for r in runs} == {"baseline", "remove"}
    p = run("experiment", "--model", "lm", "-c", f, "--checkpoint", checkpoints["gpt2"])
    assert p.returncode == 2 and "--finetune" in p.stderr
