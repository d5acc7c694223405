"""Small language models: training, save/load, the LM bias measures against direct computation, and
cross-loss influence with kronfluence against explicit gradients and retraining. Micro sizes: about a minute."""
from __future__ import annotations

import json
import random

import numpy as np
import pytest

pytest.importorskip("transformers")
pytest.importorskip("kronfluence")

import torch  # noqa: E402

from conftest import LM_TEMPLATES, LM_TEST, lm_planted_corpus  # noqa: E402
from biasaudit.corpus import Document, MemoryCorpus  # noqa: E402
from biasaudit.errors import ArtifactError, ConfigError  # noqa: E402
from biasaudit.influence.ekfac import score_lm  # noqa: E402
from biasaudit.influence.estimators import EstimatorConfig  # noqa: E402
from biasaudit.measures.lm import pair_measure, template_measure  # noqa: E402
from biasaudit.measures.weat import effect_size  # noqa: E402
from biasaudit.models.lm import BOS, LMConfig, LMModel, collate, token_losses, train_lm  # noqa: E402
from biasaudit.models.lm_objective import trackable, tracked_modules  # noqa: E402
from biasaudit.wordsets import BiasTest  # noqa: E402

MICRO = LMConfig(hidden_size=32, num_layers=2, num_heads=2, intermediate_size=64, min_count=1, epochs=20, min_steps=0,
                 batch_size=16)


@pytest.fixture(scope="module")
def planted_lm():
    corpus, planted = lm_planted_corpus()
    return corpus, planted, train_lm(corpus, MICRO)


def _direct_log_prob(net, ids: list[int], n_last: int) -> float:
    """log p of the last n_last tokens from a plain full forward pass (the oracle for sequence_log_probs)."""
    with torch.no_grad():
        logp = torch.log_softmax(net(input_ids=torch.tensor([ids])).logits[0].double(), -1)
    return float(sum(logp[p - 1, ids[p]] for p in range(len(ids) - n_last, len(ids))))


def test_template_measure_matches_direct_computation_and_swapping_negates(planted_lm):
    corpus, _, model = planted_lm
    test = BiasTest.from_dict(LM_TEST)
    m, dropped = template_measure(test, model, LM_TEMPLATES)
    assert dropped == {}
    enc = model.encoder
    S = np.zeros(m.shape)
    targets = test.target_x.words + test.target_y.words
    attributes = test.attribute_a.words + test.attribute_b.words
    for i, w in enumerate(targets):
        for j, a in enumerate(attributes):
            S[i, j] = np.mean([_direct_log_prob(model.net, [BOS] + enc.encode(t.format(target=w, attribute=a)), 1)
                               for t in LM_TEMPLATES])
    with torch.no_grad():
        assert np.allclose(m.association_matrix(model.net).double().numpy(), S, atol=1e-4)
    s = S[:, :3].mean(1) - S[:, 3:].mean(1)
    expected = effect_size(s[:4], s[4:])
    assert m.stats(model.net)["effect_size"] == pytest.approx(expected, abs=1e-4)
    with torch.no_grad():
        assert float(m.fn(model.net)) == pytest.approx(expected, abs=1e-4)
    swapped, _ = template_measure(test.swapped(), model, LM_TEMPLATES)
    assert swapped.stats(model.net)["effect_size"] == pytest.approx(-expected, abs=1e-4)


def test_template_with_attribute_first_scores_the_target_and_bad_templates_are_refused(planted_lm):
    _, _, model = planted_lm
    test = BiasTest.from_dict(LM_TEST)
    m, _ = template_measure(test, model, ("{attribute} was studied by {target}",))
    ids = [BOS] + model.encoder.encode("algebra was studied by zorbel")
    with torch.no_grad():
        assert float(m.association_matrix(model.net)[0, 0]) == pytest.approx(_direct_log_prob(model.net, ids, 1),
                                                                           abs=1e-4)
    for bad in ("{target} only", "{target} {attribute} {target}", "{target} {attribute} {other}"):
        with pytest.raises(ConfigError):
            template_measure(test, model, (bad,))


def test_pair_measure_is_the_mean_log_likelihood_difference(planted_lm):
    _, _, model = planted_lm
    pairs = [("zorbel studied algebra", "zorbel studied poetry"), ("quinta loved poetry", "quinta loved calculus"),
             ("zorbit loved geometry", "quintus loved geometry")]
    m = pair_measure("pairs", pairs, model)
    diffs = []
    for more, less in pairs:
        lm = [BOS] + model.encoder.encode(more)
        ll = [BOS] + model.encoder.encode(less)
        diffs.append(_direct_log_prob(model.net, lm, len(lm) - 1) - _direct_log_prob(model.net, ll, len(ll) - 1))
    st = m.stats(model.net)
    assert st["effect_size"] == pytest.approx(np.mean(diffs), abs=1e-4)
    assert st["fraction_preferred"] == pytest.approx(np.mean(np.array(diffs) > 0))
    assert st["exact"] and st["n_permutations"] == 8


def test_a_trained_lm_learns_the_association_it_is_shown():
    rng = random.Random(0)
    docs = [Document(f"d{i}", f"zorbel studied {rng.choice(['algebra'] * 3 + ['poetry'])}" if i % 2 else
                     f"quintar studied {rng.choice(['algebra'] + ['poetry'] * 3)}") for i in range(400)]
    model = train_lm(MemoryCorpus(docs, "assoc"), MICRO.__class__(**{**MICRO.to_dict(), "epochs": 8}))
    enc = model.encoder
    p = {(w, a): np.exp(_direct_log_prob(model.net, [BOS] + enc.encode(f"{w} studied {a}"), 1))
         for w in ("zorbel", "quintar") for a in ("algebra", "poetry")}
    assert p["zorbel", "algebra"] == pytest.approx(0.75, abs=0.1)
    assert p["quintar", "poetry"] == pytest.approx(0.75, abs=0.1)


def test_training_is_deterministic_and_the_folder_round_trips(planted_lm, tmp_path):
    corpus, _, model = planted_lm
    again = train_lm(corpus, MICRO)   # the fixture's model was trained with the same corpus and config
    for (n1, p1), (n2, p2) in zip(model.net.state_dict().items(), again.net.state_dict().items()):
        assert n1 == n2 and torch.equal(p1, p2), n1
    folder = model.save(tmp_path / "lm")
    loaded = LMModel.load(folder)
    assert loaded.config == model.config and loaded.corpus == model.corpus
    batch = collate([np.array([BOS] + model.encoder.encode("zorbel studied algebra"))], 0)
    with torch.no_grad():
        assert torch.equal(token_losses(model.net, batch), token_losses(loaded.net, batch))
    # the folder is a plain HF checkpoint: AutoTokenizer gives the same ids as the project's tokenizer
    from transformers import AutoModelForCausalLM, AutoTokenizer
    tok = AutoTokenizer.from_pretrained(folder)
    text = "Zorbel STUDIED algebra, and quintar-loved poetry!"
    assert tok(text, add_special_tokens=False)["input_ids"] == model.encoder.encode(text)
    assert AutoModelForCausalLM.from_pretrained(folder).config.num_hidden_layers == 2
    # a foreign checkpoint (no biasaudit.json) loads with its own tokenizer
    (folder / "biasaudit.json").rename(tmp_path / "meta.json")
    foreign = LMModel.load(folder)
    assert not foreign.trained_here and foreign.encoder.known("zorbel")
    (tmp_path / "meta.json").rename(folder / "biasaudit.json")
    # a changed weight file is caught; pickled-only checkpoints are refused
    w = folder / "model.safetensors"
    w.write_bytes(w.read_bytes()[:-8] + b"\0" * 8)
    with pytest.raises(ArtifactError, match="checksum"):
        LMModel.load(folder)
    pickled = tmp_path / "pickled"
    pickled.mkdir()
    (pickled / "config.json").write_text(json.dumps({"model_type": "llama"}))
    (pickled / "pytorch_model.bin").write_bytes(b"not loaded")
    with pytest.raises(ArtifactError, match="safetensors"):
        LMModel.load(pickled)


def test_gradient_dot_equals_explicit_gradients_and_scores_sum_over_a_documents_pieces(planted_lm):
    corpus, _, model = planted_lm
    test = BiasTest.from_dict(LM_TEST)
    m, _ = template_measure(test, model, LM_TEMPLATES)
    # cut documents into several pieces: a document's score must be the sum over its pieces
    short = LMModel(model.net, model.encoder, LMConfig(**{**model.config.to_dict(), "max_len": 8}), model.corpus,
                    model.meta)
    r = score_lm(short, corpus, [m], EstimatorConfig(name="gradient-dot"))
    net = trackable(model.net)
    names = set(tracked_modules(net))
    params = [mod.weight for name, mod in net.named_modules() if name in names]

    def grad(fn):
        for p in params:
            p.grad = None
            p.requires_grad_(True)
        fn().backward()
        return torch.cat([p.grad.flatten() for p in params]).double()

    g_bias = grad(lambda: m.fn(net))
    ex = short.examples(corpus)
    assert len(ex.ids) > len(ex.doc_ids)      # some documents are in several pieces
    for d in [0, 1, int(np.argmin(r.delta_bias_if_removed["planted"]))]:
        pieces = [ex.ids[k] for k in np.flatnonzero(ex.doc == d)]
        g_doc = grad(lambda: token_losses(net, collate(pieces, 0)).sum())
        expected = float(g_bias @ g_doc) / len(ex.ids)
        assert r.delta_bias_if_removed["planted"][d] == pytest.approx(expected, rel=1e-3, abs=1e-7)


def _retraining_check(corpus, model, seeds, k: int = 20):
    """Changes of the effect size when the k documents ekfac says drive the bias up are removed, and when k
    random ones are, retraining with each seed (same seed as that seed's baseline)."""
    test = BiasTest.from_dict(LM_TEST)
    m, _ = template_measure(test, model, LM_TEMPLATES)
    r = score_lm(model, corpus, [m], EstimatorConfig(name="ekfac"))
    s = r.delta_bias_if_removed["planted"]
    top = [r.doc_ids[i] for i in np.argsort(s)[:k]]
    ids = [d.id for d in corpus]
    changes = {"top": [], "random": []}
    effect = lambda mm: template_measure(test, mm, LM_TEMPLATES)[0].stats(mm.net)["effect_size"]
    for seed in seeds:
        cfg = LMConfig(**{**model.config.to_dict(), "seed": seed})
        base = model if seed == model.config.seed else train_lm(corpus, cfg)
        b = effect(base)
        for name, drop in (("top", top), ("random", random.Random(seed).sample(ids, k))):
            changes[name].append(effect(train_lm(corpus.without(drop), cfg)) - b)
    return r, changes


def test_ekfac_top_documents_lower_the_bias_on_retraining_more_than_random_ones(planted_lm):
    """The sign check, one seed (the three-seed table is the slow test below)."""
    corpus, _, model = planted_lm
    r, changes = _retraining_check(corpus, model, seeds=(1,))
    assert r.solver_info["planted"]["embeddings_tracked"]
    assert changes["top"][0] < changes["random"][0] - 0.2, changes


@pytest.mark.slow
def test_retraining_check_over_three_seeds(planted_lm):
    corpus, _, model = planted_lm
    _, changes = _retraining_check(corpus, model, seeds=(1, 2, 3))
    print(changes)
    assert all(t < r_ for t, r_ in zip(changes["top"], changes["random"])), changes


def test_cli_lm_score_weat_experiment_and_report(tmp_path):
    """--model lm as a user runs it: score (templates and pairs) with its report, weat, a one-seed experiment,
    and the one-line errors for options that do not apply."""
    from conftest import run_cli

    corpus, planted = lm_planted_corpus(n_background=60, n_planted=6)   # plumbing: the sizes do not matter
    f = tmp_path / "c.jsonl"
    f.write_text("".join(json.dumps({"id": d.id, "text": d.text}) + "\n" for d in corpus), encoding="utf-8")
    (tmp_path / "t.json").write_text(json.dumps(LM_TEST))
    (tmp_path / "tpl.txt").write_text("\n".join(LM_TEMPLATES) + "\n")
    (tmp_path / "pairs.jsonl").write_text(json.dumps({"more": "zorbel studied algebra", "less": "zorbel studied poetry"})
                                          + "\n" + json.dumps({"sent_more": "quinta loved poetry",
                                                               "sent_less": "quinta loved algebra"}) + "\n")
    common = ["--model", "lm", "--from-scratch", "-c", f, "-t", tmp_path / "t.json", "--templates", tmp_path / "tpl.txt",
              "--min-count", "1", "--epochs", "4",
              "--lm-config", "hidden_size=16,num_heads=2,intermediate_size=32,batch_size=16,min_steps=0"]

    def run(*args):
        return run_cli(*args, cache=tmp_path / "cache")

    p = run("score", *common, "--pairs", tmp_path / "pairs.jsonl", "--out", tmp_path / "s", "--top", "3")
    assert p.returncode == 0, p.stderr
    summary = json.loads((tmp_path / "s" / "summary.json").read_text())
    assert summary["config"]["model"] == "lm" and summary["config"]["estimator"]["name"] == "ekfac"
    assert summary["seeds"] == [1, 2, 3]            # an LM's bias is measured over 3 seeds unless told otherwise
    assert summary["tests"][0]["evidence"]["seed_spread"]["n_seeds"] == 3
    assert [t["name"] for t in summary["tests"]] == ["planted", "pairs"]
    assert summary["tests"][1]["weat"]["n_pairs"] == 2
    # the audited run's metasmoothness (a model trained here): measured, and the run's first note on the terminal
    # the command that checks this ranking measures with the same templates file
    assert f"--templates {tmp_path / 'tpl.txt'}" in summary["check_command"] and "--from-scratch" in summary[
        "check_command"]
    ms = summary["metasmoothness"]
    assert len(ms["scores"]) == 2 and summary["notes"][0] == ms["note"]
    assert "note: metasmoothness" in " ".join(p.stderr.split())
    rows = [json.loads(l) for l in (tmp_path / "s" / "scores.jsonl").read_text().splitlines()]
    assert {r["test"] for r in rows} == {"planted", "pairs"}
    assert all(r["delta_bias_if_upweighted"] == -r["delta_bias_if_removed"] for r in rows)
    html = (tmp_path / "s" / "report.html").read_text()
    assert "Template-association effect size" in html and "kronfluence" in html
    p = run("score", *common, "--metasmoothness", "0", "--resamples", "0", "--seeds", "1", "--out", tmp_path / "s0")
    assert p.returncode == 0, p.stderr
    assert "metasmoothness" not in json.loads((tmp_path / "s0" / "summary.json").read_text())
    p = run("weat", *common, "--json")
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)[0]["effect_size"] == pytest.approx(summary["tests"][0]["weat"]["effect_size"])
    p = run("experiment", *common, "--k", "5", "--seeds", "1", "--conditions", "baseline,remove-top,remove-random",
            "--scheduler", "none", "--out", tmp_path / "e")
    assert p.returncode == 0, p.stderr
    exp = json.loads((tmp_path / "e" / "experiment.json").read_text())
    assert {d["condition"] for d in exp["conditions"]} == {"baseline", "remove-top", "remove-random"}
    assert (tmp_path / "e" / "report.html").exists()
    for bad, msg in ((["--model", "lm", "--negative", "3"], "does not apply to --model lm"),
                     (["--lm-config", "hidden_size=32"], "applies to --model lm only"),
                     (["--model", "lm", "--lm-config", "depth=3"], "bad setting"),
                     (["--model", "lm", "--estimator", "block"], "is for embeddings"),
                     (["--templates", tmp_path / "tpl.txt"], "add --model lm")):
        p = run("score", "-c", f, *bad)
        assert p.returncode == 1 and msg in p.stderr and len(p.stderr.strip().splitlines()) == 1, p.stderr


def test_ekfac_group_prediction_matches_the_scores_to_first_order_and_stays_in_range(planted_lm):
    """The parameter step of a document, taken a small way, changes the measure by the document's score (the same
    EK-FAC preconditioner, to first order); a 100-fold upweight of the top documents stays in range."""
    corpus, _, model = planted_lm
    m, _ = template_measure(BiasTest.from_dict(LM_TEST), model, LM_TEMPLATES)
    r = score_lm(model, corpus, [m], EstimatorConfig(name="ekfac"))
    s = r.delta_bias_if_removed["planted"]
    b0 = r.bias_value["planted"]
    top = np.argsort(-np.abs(s))[:3]
    eps = 1e-3
    with torch.no_grad():
        got = np.array([(float(m.fn(r.predictor.changed([int(i)], eps))) - b0) / eps for i in top])
    assert np.allclose(got, s[top], rtol=0.1, atol=1e-4 * np.abs(s).max()), (got, s[top])
    extreme = r.predictor.predict([("planted", np.argsort(s)[:10], 100), ("planted", np.argsort(s)[:10], 0)])
    assert all(abs(v) <= m.bound for v in extreme), extreme
    assert r.predictor.predict([("planted", [int(top[0])], 1)]) == [pytest.approx(b0, abs=1e-6)]
