"""Exact metagradients (``--estimator magic``) against their oracle: the finite difference of two same-seed
retrains with one document's weight at 1 +- eps, in float64, for each optimizer a family trains with (AdamW for
LMs, SGD for torch skip-gram, AdaGrad for GloVe); and the replay reproduces the saved weights bit for bit."""
from __future__ import annotations

import numpy as np
import torch
import pytest

pytest.importorskip("transformers")

from conftest import LM_TEMPLATES, LM_TEST, lm_planted_corpus  # noqa: E402
from biasaudit.corpus import MemoryCorpus  # noqa: E402
from biasaudit.errors import ConfigError  # noqa: E402
from biasaudit.influence import score_model  # noqa: E402
from biasaudit.influence.estimators import EstimatorConfig  # noqa: E402
from biasaudit.influence.magic import metagradients  # noqa: E402
from biasaudit.measures.lm import template_measure  # noqa: E402
from biasaudit.models.lm import LMConfig, train_lm  # noqa: E402
from biasaudit.models.lm_replay import LMReplay  # noqa: E402
from biasaudit.wordsets import BiasTest  # noqa: E402

TINY64 = LMConfig(hidden_size=16, num_layers=1, num_heads=2, intermediate_size=32, min_count=1, epochs=3, min_steps=0,
                  batch_size=8, dtype="float64", learning_rate=1e-2, weight_decay=0.01)


def _fd(retrain, measure, n_docs: int, d: int, eps: float = 1e-7) -> float:
    """(B(w_d = 1 + eps) - B(w_d = 1 - eps)) / 2 eps over two same-seed retrains (float64: a short Adam run is
    far from linear in w at eps 1e-4, and rounding stays near 1e-9 at 1e-7)."""
    out = []
    for sign in (1, -1):
        w = np.ones(n_docs)
        w[d] += sign * eps
        out.append(measure(retrain(w)))
    return (out[0] - out[1]) / (2 * eps)


@pytest.fixture(scope="module")
def tiny_lm():
    corpus, planted = lm_planted_corpus()
    docs = list(corpus)[:48]
    corpus = MemoryCorpus(docs, "tiny")
    model = train_lm(corpus, TINY64)
    m, _ = template_measure(BiasTest.from_dict(LM_TEST), model, LM_TEMPLATES)
    return corpus, model, m


def test_lm_replay_is_bit_for_bit_and_adamw_metagradient_equals_finite_difference(tiny_lm):
    corpus, model, m = tiny_lm
    replay = LMReplay(model, corpus)
    values, grads, info = metagradients(replay, [m])
    assert info["replay_relative_difference"] == 0.0          # the replayed run ends on the saved weights exactly
    assert values[0] == pytest.approx(float(m.fn(model.net).detach()), abs=1e-12)
    order = np.argsort(-np.abs(grads[0]))
    for d in (int(order[0]), int(order[len(order) // 2])):    # the largest and a middling document
        fd = _fd(lambda w: train_lm(corpus, TINY64, encoder=model.encoder, doc_weights=w),
                 lambda mm: float(m.fn(mm.net).detach()), replay.n_docs, d)
        assert grads[0][d] == pytest.approx(fd, rel=1e-3), (d, grads[0][d], fd)


SMOOTH64 = LMConfig(hidden_size=16, num_layers=1, num_heads=2, intermediate_size=32, min_count=1, epochs=2,
                    min_steps=0, batch_size=16, dtype="float64", learning_rate=1e-2, eps_root=1e-6, dropout=0)


def test_smooth_recipe_replay_is_bit_for_bit_and_its_metagradient_equals_finite_difference(tiny_lm):
    """The smooth audited phase (Adam with epsilon inside the root, biasaudit's own step; dropout off): training,
    replay and reverse pass share one update function; the replay ends on the saved weights exactly and the
    metagradient equals the float64 finite difference of two same-seed retrains."""
    corpus, model0, m = tiny_lm
    model = train_lm(corpus, SMOOTH64, encoder=model0.encoder)
    assert model.meta["run"]["optimizer"] == "adam-eps-root" and model.meta["run"]["eps_root"] == 1e-6
    replay = LMReplay(model, corpus)
    values, grads, info = metagradients(replay, [m])
    assert info["replay_relative_difference"] == 0.0
    assert values[0] == pytest.approx(float(m.fn(model.net).detach()), abs=1e-12)
    order = np.argsort(-np.abs(grads[0]))
    for d in (int(order[0]), int(order[len(order) // 2])):
        fd = _fd(lambda w: train_lm(corpus, SMOOTH64, encoder=model.encoder, doc_weights=w),
                 lambda mm: float(m.fn(mm.net).detach()), replay.n_docs, d)
        assert grads[0][d] == pytest.approx(fd, rel=1e-4), (d, grads[0][d], fd)
    from dataclasses import replace as dc_replace
    from biasaudit.errors import ArtifactError
    for edit in ({"eps_root": 1e-3}, {"optimizer": "adamw"}):      # the record must name the config's optimizer
        bad = dc_replace(model, meta={**model.meta, "run": {**model.meta["run"], **edit}})
        with pytest.raises(ArtifactError, match="optimizer"):
            LMReplay(bad, corpus)


def test_gradient_accumulation_takes_the_same_steps_and_its_reverse_pass_the_same_metagradient(tiny_lm):
    """micro_batch: a batch's gradient accumulated over pieces is the whole batch's (the loss divides by the
    batch's token count): the run ends where the whole-batch run ends (float64, to rounding); its replay is bit
    for bit; the reverse pass in pieces (a Hessian-vector product per piece) gives the whole-batch metagradient,
    which equals the finite difference."""
    from dataclasses import replace as dc_replace
    corpus, model0, m = tiny_lm
    whole = train_lm(corpus, SMOOTH64, encoder=model0.encoder)
    micro_cfg = dc_replace(SMOOTH64, micro_batch=5)
    micro = train_lm(corpus, micro_cfg, encoder=model0.encoder)
    for p, q in zip(whole.net.parameters(), micro.net.parameters()):
        assert torch.allclose(p, q, rtol=1e-9, atol=1e-12)
    assert micro.meta["run"]["batches_sha256"] == whole.meta["run"]["batches_sha256"]
    replay = LMReplay(micro, corpus)
    _, grads, info = metagradients(replay, [m])
    assert info["replay_relative_difference"] == 0.0
    _, whole_grads, _ = metagradients(LMReplay(whole, corpus), [m])
    np.testing.assert_allclose(grads[0], whole_grads[0], rtol=1e-6, atol=1e-10)
    d = int(np.argmax(np.abs(grads[0])))
    fd = _fd(lambda w: train_lm(corpus, micro_cfg, encoder=micro.encoder, doc_weights=w),
             lambda mm: float(m.fn(mm.net).detach()), replay.n_docs, d)
    assert grads[0][d] == pytest.approx(fd, rel=1e-4)
    assert "micro_batch" not in SMOOTH64.to_dict() and micro_cfg.to_dict()["micro_batch"] == 5   # old cache keys


def test_magic_scores_follow_the_sign_convention(tiny_lm):
    corpus, model, m = tiny_lm
    res = score_model(model, corpus, [m], EstimatorConfig(name="magic"))
    _, grads, _ = metagradients(LMReplay(model, corpus), [m])
    assert np.allclose(res.delta_bias_if_removed[m.name], -grads[0])
    assert np.allclose(res.delta_bias_if_upweighted(m.name), grads[0])
    assert res.estimator.label == "magic"


def test_a_model_without_its_run_is_refused_in_one_line(tiny_lm):
    corpus, model, m = tiny_lm
    from dataclasses import replace as dc_replace
    old = dc_replace(model, meta={k: v for k, v in model.meta.items() if k != "run"})
    with pytest.raises(ConfigError, match="without the record of its training run"):
        LMReplay(old, corpus)
    foreign = dc_replace(model, config=None)
    with pytest.raises(ConfigError, match="--finetune"):
        LMReplay(foreign, corpus)
    other = MemoryCorpus(list(corpus)[:40], "other")
    with pytest.raises(ConfigError, match="cannot be replayed"):
        LMReplay(model, other)


# ---------------------------------------------------------------- embeddings: SGD (torch skip-gram), AdaGrad (GloVe)
import torch  # noqa: E402

from biasaudit.measures.targets import weat_target  # noqa: E402
from biasaudit.models.glove import GloVeConfig, train_glove  # noqa: E402
from biasaudit.models.glove_replay import GloVeReplay  # noqa: E402
from biasaudit.models.skipgram import FAMILY as SKIPGRAM, SkipGramConfig, SkipGramModel, train_gensim  # noqa: E402
from biasaudit.models.skipgram_replay import SkipGramReplay  # noqa: E402
from biasaudit.models.torch_skipgram import train_skipgram_torch  # noqa: E402
from biasaudit.planted import PLANTED_TEST, planted_corpus  # noqa: E402

SG64 = SkipGramConfig(vector_size=8, min_count=1, epochs=2, window=3, negative=3, backend="torch", alpha=0.05)
GLOVE64 = GloVeConfig(vector_size=8, min_count=1, epochs=4, window=4, batch_size=256, x_max=10.0)


@pytest.fixture(scope="module")
def tiny_planted():
    corpus, _, _ = planted_corpus(n_background=40, n_planted=8, n_counter=2)
    return corpus


def _train_sg(corpus, w=None, config=SG64, dtype=torch.float64):
    return train_skipgram_torch(corpus, config, batch_pairs=64, doc_weights=w, dtype=dtype)


def _train_glove(corpus, config, w=None, dtype=torch.float64):
    return train_glove(corpus, config, doc_weights=w, dtype=dtype)


def _check_against_finite_differences(corpus, model, replay, retrain):
    target = weat_target(BiasTest.from_dict(PLANTED_TEST), model.vocab)
    values, grads, info = metagradients(replay, [target])
    assert info["replay_relative_difference"] == 0.0          # the replayed run ends on the saved vectors exactly
    assert values[0] == pytest.approx(target.value(torch.as_tensor(model.vectors)), abs=1e-12)
    order = np.argsort(-np.abs(grads[0]))
    for d in (int(order[0]), int(order[len(order) // 2])):    # the largest and a middling document
        fd = _fd(retrain, lambda mm: target.value(torch.as_tensor(mm.vectors)), replay.n_docs, d, eps=1e-6)
        assert grads[0][d] == pytest.approx(fd, rel=1e-3), (d, grads[0][d], fd)


def test_torch_skipgram_replay_is_bit_for_bit_and_sgd_metagradient_equals_finite_difference(tiny_planted):
    model = _train_sg(tiny_planted)
    _check_against_finite_differences(tiny_planted, model, SkipGramReplay(model, tiny_planted),
                                      lambda w: _train_sg(tiny_planted, w))


@pytest.mark.parametrize("embedding", ["w", "w+c"])
def test_glove_replay_is_bit_for_bit_and_adagrad_metagradient_equals_finite_difference(tiny_planted, embedding):
    from dataclasses import replace as dc_replace
    cfg = dc_replace(GLOVE64, embedding=embedding)
    model = _train_glove(tiny_planted, cfg)
    _check_against_finite_differences(tiny_planted, model, GloVeReplay(model, tiny_planted),
                                      lambda w: _train_glove(tiny_planted, cfg, w))


def test_float32_runs_replay_exactly_after_a_save_and_load(tiny_planted, tmp_path):
    from biasaudit.models.glove import GloVeModel
    sg = _train_sg(tiny_planted, dtype=torch.float32)
    glove = _train_glove(tiny_planted, GLOVE64, dtype=torch.float32)
    assert sg.vectors.dtype == np.float32 and glove.W.dtype == np.float32
    sg.save(tmp_path / "sg")
    glove.save(tmp_path / "glove")
    for replay in (SkipGramReplay(SkipGramModel.load(tmp_path / "sg"), tiny_planted),
                   GloVeReplay(GloVeModel.load(tmp_path / "glove"), tiny_planted)):
        state = replay.start()
        for t in range(replay.n_steps):
            state = replay.forward(state, t)
        assert replay.check_final(state) == 0.0


def test_embedding_magic_scores_follow_the_sign_convention(tiny_planted):
    for model, replay in ((m := _train_sg(tiny_planted), SkipGramReplay(m, tiny_planted)),
                          (g := _train_glove(tiny_planted, GLOVE64), GloVeReplay(g, tiny_planted))):
        target = weat_target(BiasTest.from_dict(PLANTED_TEST), model.vocab)
        res = score_model(model, tiny_planted, [target], EstimatorConfig(name="magic"))
        _, grads, _ = metagradients(replay, [target])
        assert np.allclose(res.delta_bias_if_removed[target.name], -grads[0])
        assert np.allclose(res.delta_bias_if_upweighted(target.name), grads[0])
        assert res.doc_ids == [d.id for d in tiny_planted]
        assert res.words is None                                # doc_words index the model's vocabulary
        planted = [i for i, d in enumerate(tiny_planted) if d.id.startswith("plant")]
        assert all(set(res.doc_words[i]) <= set(target.rows.tolist()) and res.doc_words[i] for i in planted)


def test_gensim_skipgram_and_models_without_their_run_are_refused_in_one_line(tiny_planted):
    from dataclasses import replace as dc_replace
    gensim_model = train_gensim(tiny_planted, dc_replace(SG64, backend="gensim", epochs=1))
    why = SKIPGRAM.replay_refusal(gensim_model)
    assert "--backend torch" in why and "\n" not in why
    target = weat_target(BiasTest.from_dict(PLANTED_TEST), gensim_model.vocab)
    with pytest.raises(ConfigError, match="--backend torch"):
        score_model(gensim_model, tiny_planted, [target], EstimatorConfig(name="magic"))
    sg = _train_sg(tiny_planted)
    glove = _train_glove(tiny_planted, GLOVE64)
    for model, replay in ((sg, SkipGramReplay), (glove, GloVeReplay)):
        old = dc_replace(model, meta={k: v for k, v in model.meta.items() if k != "run"})
        with pytest.raises(ConfigError, match="without the record of its training run.*--overwrite"):
            replay(old, tiny_planted)
        other = MemoryCorpus(list(tiny_planted)[:-3], "other")
        with pytest.raises(ConfigError, match="cannot be replayed"):
            replay(model, other)


def test_finetune_replay_with_dropout_and_its_metagradient(tmp_path, tiny_lm):
    """A GPT-2 checkpoint (dropout 0.1 in embeddings, attention and residuals) fine-tuned in float64: the replay
    draws the same dropout masks (seeded per step), ends on the saved weights, and the metagradient equals the
    finite difference."""
    from biasaudit.planted import tiny_checkpoint
    corpus, _, _ = tiny_lm
    ck = tiny_checkpoint(tmp_path / "gpt2", "gpt2", [d.text for d in corpus], width=16)
    cfg = LMConfig(epochs=2, batch_size=8, dtype="float64", finetune=str(ck), learning_rate=5e-3)
    model = train_lm(corpus, cfg)
    assert model.net.config.resid_pdrop > 0
    m, _ = template_measure(BiasTest.from_dict(LM_TEST), model, LM_TEMPLATES, allow_oov=True)
    replay = LMReplay(model, corpus)
    _, grads, info = metagradients(replay, [m])
    assert info["replay_relative_difference"] == 0.0
    d = int(np.argmax(np.abs(grads[0])))
    fd = _fd(lambda w: train_lm(corpus, cfg, doc_weights=w), lambda mm: float(m.fn(mm.net).detach()),
             replay.n_docs, d)
    assert grads[0][d] == pytest.approx(fd, rel=1e-3), (grads[0][d], fd)


def test_magic_on_gensim_skipgram_is_refused_before_any_training(tmp_path):
    from conftest import run_cli
    corpus = tmp_path / "c.txt"
    corpus.write_text("a b c d\n" * 10)
    r = run_cli("score", "-c", corpus, "--estimator", "magic", cache=tmp_path / "cache")
    assert r.returncode == 1 and "--backend torch" in r.stderr and len(r.stderr.strip().splitlines()) == 1, r
    assert not (tmp_path / "cache").exists()          # refused before any training


def test_debias_with_magic_removes_by_the_linear_prediction_and_refuses_swaps_in_one_line(tiny_planted, tmp_path):
    """debias takes the metagradient ranking: removal sets are judged by the summed metagradients (clipped to the
    measure's range) and move d toward 0; a swap needs predictions for rewrites that were never trained on, which a
    metagradient through the recorded run cannot give: refused in one line."""
    from biasaudit.debias import run_debias
    from biasaudit.influence.estimators import EstimatorConfig

    model = _train_sg(tiny_planted)
    test = BiasTest.from_dict(PLANTED_TEST)
    _, m = run_debias(model, tiny_planted, [test], EstimatorConfig(name="magic"), "4", "remove",
                      out_dir=tmp_path / "remove", force=True, rounds=2, target=0.05)   # d is inside its CI band
    p = m["predicted"]["planted"]
    assert 0 < m["n_edited"] <= 4
    assert abs(p["predicted_effect_size"]) < abs(p["effect_size_before"])
    with pytest.raises(ConfigError, match="rewrites") as e:
        run_debias(model, tiny_planted, [test], EstimatorConfig(name="magic"), "4", "swap",
                   out_dir=tmp_path / "swap", force=True, rounds=2, target=0.05)
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("run_edit, match", [({"betas": [0, 0]}, "differ from the optimizer"),
                                             ({"eps": 1.0}, "differ from the optimizer"),
                                             ({"eps": "x"}, r"meta.run.eps: expected a number"),
                                             ({"betas": "x"}, r"meta.run.betas: expected two numbers"),
                                             ({"betas": None}, r"meta.run.betas: expected two numbers"),
                                             ({"betas": [10 ** 400, 0]}, r"meta.run.betas: expected two numbers"),
                                             ({"eps": 10 ** 400}, r"meta.run.eps: expected a number")])
def test_a_run_record_that_names_other_optimizer_constants_is_refused_in_one_line(tiny_lm, run_edit, match):
    """Issue 33, hole 1: the forward replay ran torch's AdamW with its own constants while the reverse step read
    betas and eps from the record, so an edited record changed every score with the replay check still passing.
    The reverse step now uses the forward optimizer's numbers, and a record naming others is refused."""
    from dataclasses import replace as dc_replace
    from biasaudit.errors import ArtifactError
    corpus, model, m = tiny_lm
    edited = dc_replace(model, meta={**model.meta, "run": {**model.meta["run"], **run_edit}})
    with pytest.raises(ArtifactError, match=match) as e:
        LMReplay(edited, corpus)
    assert "\n" not in str(e.value)
    with pytest.raises(ArtifactError, match=match):
        score_model(edited, corpus, [m], EstimatorConfig(name="magic"))


def test_the_reverse_step_differentiates_the_update_the_forward_replay_took(tiny_lm):
    """One source for Adam's constants: the reverse step's update, evaluated, equals the forward replay's step."""
    import torch as _torch
    from biasaudit.models.lm import weighted_batch_loss
    from biasaudit.models.lm_replay import _Bound
    corpus, model, m = tiny_lm
    replay = LMReplay(model, corpus)
    assert (replay.betas, replay.eps) == (tuple(replay.opt.defaults["betas"]), replay.opt.defaults["eps"])
    state = replay.start()
    for t in range(2):
        state = replay.forward(state, t)
    after = replay.forward(state, 2)
    P = [x.clone().requires_grad_(True) for x in state[0]]
    loss, _, _ = weighted_batch_loss(_Bound(replay.net, dict(zip(replay.names, P))), replay.ex, replay.batches[2],
                                     replay.pad, replay.dev)
    G = _torch.autograd.grad(loss, P)
    new = replay._adamw(P, state[1], state[2], G, 2)
    n = len(P)
    for a, b in zip(new[:n], after[0]):
        assert _torch.allclose(a.detach(), b, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("dtype", ["load", None, 3])
def test_a_malformed_dtype_in_an_embedding_run_record_is_refused_in_one_line(tiny_planted, dtype):
    from dataclasses import replace as dc_replace
    from biasaudit.errors import ArtifactError
    for model, replay in ((_train_glove(tiny_planted, GLOVE64), GloVeReplay), (_train_sg(tiny_planted), SkipGramReplay)):
        edited = dc_replace(model, meta={**model.meta, "run": {**model.meta["run"], "dtype": dtype}})
        with pytest.raises(ArtifactError, match="meta.run.dtype") as e:
            replay(edited, tiny_planted)
        assert "\n" not in str(e.value)


@pytest.mark.parametrize("batch_pairs", ["x", 1e300, None, 0, True])
def test_a_malformed_batch_size_in_a_skipgram_run_record_is_refused_in_one_line(tiny_planted, batch_pairs):
    """An attack gave tracebacks (TypeError, KeyError) for meta.run.batch_pairs 'x', 1e300 or deleted."""
    from dataclasses import replace as dc_replace
    from biasaudit.errors import ArtifactError
    model = _train_sg(tiny_planted)
    run = {**model.meta["run"], "batch_pairs": batch_pairs}
    if batch_pairs is None:
        del run["batch_pairs"]
    with pytest.raises(ArtifactError, match="meta.run.batch_pairs") as e:
        SkipGramReplay(dc_replace(model, meta={**model.meta, "run": run}), tiny_planted)
    assert "\n" not in str(e.value)


def test_score_refuses_an_lm_folder_whose_run_record_was_edited_in_one_line(tiny_lm, tmp_path):
    """Issue 33 hole 1 as a user met it: a saved LM folder whose biasaudit.json names betas [0, 0] gave exit 0 and
    other scores; now exit 1 with one line naming the record."""
    import json as _json
    from conftest import run_cli
    corpus, model, _ = tiny_lm
    folder = model.save(tmp_path / "lm")
    head = _json.loads((folder / "biasaudit.json").read_text())
    head["meta"]["run"]["betas"] = [0, 0]
    (folder / "biasaudit.json").write_text(_json.dumps(head))
    (tmp_path / "c.jsonl").write_text("".join(_json.dumps({"id": d.id, "text": d.text}) + "\n" for d in corpus))
    (tmp_path / "t.json").write_text(_json.dumps(LM_TEST))
    (tmp_path / "tpl.txt").write_text("\n".join(LM_TEMPLATES) + "\n")
    r = run_cli("score", "--model", "lm", "--checkpoint", folder, "-c", tmp_path / "c.jsonl", "-t",
                tmp_path / "t.json", "--templates", tmp_path / "tpl.txt", "--estimator", "magic", "--out",
                tmp_path / "out", cache=tmp_path / "cache")
    assert r.returncode == 1 and "meta.run" in r.stderr and "betas" in r.stderr, r
    assert "Traceback" not in r.stderr and len([x for x in r.stderr.strip().splitlines() if "error" in x.lower()]) == 1, r
