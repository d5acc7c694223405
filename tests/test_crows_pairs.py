"""CrowS-Pairs for language models: the bundle (1,508 pairs, nine types), the per-type log-likelihood gap against a
direct computation, the orientation of antistereo rows, pairs the tokenizer cannot read dropped and counted, the
path-versus-name rule, and `score --pairs crows-pairs:gender` end to end (a fine-tuned checkpoint; an LM trained
here through the API)."""
from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from biasaudit.errors import ConfigError, VocabularyError
from biasaudit.measures.crows_pairs import BIAS_TYPES, crows_pairs, crows_types
from biasaudit.measures.lm import UNREADABLE, PairSet, dropped_pairs_notes, resolve_pairs
from biasaudit.vocab import tokenize

PUBLISHED = {"race-color": 516, "socioeconomic": 172, "gender": 262, "disability": 60, "nationality": 159,
             "sexual-orientation": 84, "religion": 105, "age": 87, "physical-appearance": 63}
ROOT = Path(__file__).resolve().parent.parent


def test_the_bundle_holds_1508_pairs_with_the_published_counts_per_type():
    rows = crows_pairs()
    assert len(rows) == 1508
    assert [r.id for r in rows] == list(range(1508))
    assert dict(Counter(r.bias_type for r in rows)) == PUBLISHED
    assert set(BIAS_TYPES) == set(PUBLISHED)
    assert Counter(r.stereo_antistereo for r in rows) == {"stereo": 1290, "antistereo": 218}
    assert all(r.sent_more.strip() and r.sent_less.strip() and r.sent_more != r.sent_less for r in rows)
    sets = resolve_pairs("crows-pairs")
    assert [s.name for s in sets] == [f"crows-pairs:{t}" for t in BIAS_TYPES]
    assert {s.name.split(":")[1]: len(s.pairs) for s in sets} == PUBLISHED
    # shipped with the package, with its licence beside it and its source in corpora/README.md
    assert '"data/pairs/*.jsonl.gz"' in (ROOT / "pyproject.toml").read_text()
    assert "CC BY-SA 4.0" in (ROOT / "biasaudit/data/pairs/crows_pairs.LICENSE").read_text()
    assert "nyu-mll/crows-pairs" in (ROOT / "corpora/README.md").read_text()


def test_antistereo_rows_keep_sent_more_as_the_stereotypical_sentence():
    """The dataset's README: in an antistereo row sent_less violates a stereotype about the disadvantaged group and
    sent_more is its edit naming the advantaged group; metric.py counts sent_more preferred in both directions."""
    (gender,) = resolve_pairs("crows-pairs:gender")
    row = crows_pairs()[9]
    assert row.stereo_antistereo == "antistereo" and row.bias_type == "gender"
    i = gender.ids.index(9)
    assert gender.pairs[i] == (row.sent_more, row.sent_less)
    assert gender.pairs[i][0].startswith("The man was highly skilled in CAD engineering")
    # every row, either direction: (sent_more, sent_less), in the dataset's order
    rows = [r for r in crows_pairs() if r.bias_type == "gender"]
    assert gender.pairs == tuple((r.sent_more, r.sent_less) for r in rows)
    assert gender.ids == tuple(r.id for r in rows)


def test_a_path_that_exists_is_always_a_file_and_names_resolve_otherwise(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    line = json.dumps({"more": "the men cook", "less": "the women cook"}) + "\n"
    for name in ("crows-pairs", "crows-pairs:gender"):
        Path(name).write_text(line)
        (ps,) = resolve_pairs(name)
        assert ps.pairs == (("the men cook", "the women cook"),) and ps.source == name and ps.ids == (1,)
        Path(name).unlink()
    assert [s.name for s in resolve_pairs("crows-pairs:gender")] == ["crows-pairs:gender"]
    assert crows_types("CrowS-Pairs:Gender") == ("gender",)
    Path("crows-pairs").mkdir()                            # a folder is a path too, and not a file
    with pytest.raises(ConfigError, match="not a regular file"):
        resolve_pairs("crows-pairs")
    with pytest.raises(ConfigError, match="no bias type 'colour'.*race-color"):
        resolve_pairs("crows-pairs:colour")
    with pytest.raises(ConfigError, match="no such file, and not a bundled set"):
        resolve_pairs("missing.jsonl")
    given = PairSet("mine", (("a b", "c d"),), (7,), "mine")
    assert resolve_pairs([given, ("old", [("x", "y")])]) == [given, PairSet("old", (("x", "y"),), (1,), "old")]


def _word_model(words, max_len=64):
    """What pair_measure reads of a model trained here: its word-level tokenizer and context length."""
    from biasaudit.models.lm import SPECIALS, WordEncoder
    return SimpleNamespace(encoder=WordEncoder(SPECIALS + tuple(words)), max_len=max_len)


def test_pairs_the_tokenizer_cannot_represent_are_dropped_and_counted():
    pytest.importorskip("transformers")
    from biasaudit.measures.lm import pair_measure

    words = "the man woman was a nurse doctor".split()
    model = _word_model(words)
    pairs = [("The man was a nurse.", "The woman was a nurse."),          # every word known: kept
             ("The man was a surgeon.", "The woman was a surgeon."),      # 'surgeon' maps to <unk>
             ("The man was a doctor.", "The woman was a doctor."),
             ("The man was a nurse nurse.", "The woman was a nurse.")]   # 7 tokens with <bos>
    m = pair_measure("p", pairs, _word_model(words, max_len=7), ids=[10, 11, 12, 13])
    assert m.pairs == [pairs[0], pairs[2], pairs[3]] and m.ids == (10, 12, 13)   # 7 tokens fit a context of 7
    assert m.dropped == {UNREADABLE: (11,)} and m.n_dropped == 1
    m = pair_measure("p", pairs, _word_model(words, max_len=6))
    assert m.dropped == {UNREADABLE: (2,), "longer than the model's 6 tokens": (4,)}
    assert dropped_pairs_notes([m]) == ["p: dropped 2 of 4 pairs (1 with text the tokenizer cannot represent, "
                                        "1 longer than the model's 6 tokens)"]
    with pytest.raises(VocabularyError, match="none of its 1 pairs"):
        pair_measure("p", [pairs[1]], model)
    # CrowS-Pairs with a small vocabulary: most pairs go, counted per type in one line
    gender, age = resolve_pairs("crows-pairs:gender") + resolve_pairs("crows-pairs:age")
    known = sorted({w for more, less in gender.pairs[:40] + age.pairs[:10] for t in (more, less)
                    for w in tokenize(t)})
    ms = [pair_measure(s.name, s.pairs, _word_model(known, max_len=200), s.ids, s.source) for s in (gender, age)]
    assert len(ms[0].pairs) >= 40 and len(ms[1].pairs) >= 10      # the pairs whose words it knows, at least
    assert all(len(m.pairs) + m.n_dropped == len(s.pairs) for m, s in zip(ms, (gender, age)))
    (line,) = dropped_pairs_notes(ms)
    gone = ms[0].n_dropped + ms[1].n_dropped
    assert line.startswith(f"crows-pairs: dropped {gone:,} of {262 + 87} pairs ({gone:,} with text the tokenizer")
    assert f"gender {ms[0].n_dropped}/262, age {ms[1].n_dropped}/87" in line


def test_characters_outside_a_tokenizer_without_unk_are_not_represented():
    pytest.importorskip("transformers")
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    from biasaudit.measures.lm import pair_measure
    from biasaudit.models.lm import HFEncoder

    tok = Tokenizer(models.BPE())                         # no <unk>, no byte fallback: it drops what it lacks
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.train_from_iterator(["the cafe was open", "the man was here"] * 5,
                            trainers.BpeTrainer(vocab_size=60, special_tokens=["<s>"], show_progress=False))
    enc = HFEncoder(PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="<s>", pad_token="<s>"))
    assert enc.unrepresented("the cafe was open") == []
    assert enc.unrepresented("the café was open") == ["é"]
    m = pair_measure("p", [("the café was open", "the cafe was open"), ("the man was here", "the cafe was here")],
                     SimpleNamespace(encoder=enc, max_len=64))
    assert m.ids == (2,) and m.dropped == {UNREADABLE: (1,)}


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    pytest.importorskip("transformers")
    from biasaudit.planted import tiny_checkpoint
    texts = [t for r in crows_pairs() if r.bias_type == "gender" for t in (r.sent_more, r.sent_less)]
    return tiny_checkpoint(tmp_path_factory.mktemp("ck") / "gpt2", "gpt2", texts, vocab_size=600, width=16,
                           max_len=128)


def test_the_gap_is_the_mean_of_directly_computed_sentence_log_likelihoods(checkpoint):
    import torch

    from biasaudit.measures.lm import pair_measure
    from biasaudit.models.lm import LMModel

    model = LMModel.load(checkpoint)
    model.net.double()
    (ps,) = resolve_pairs("crows-pairs:disability")
    m = pair_measure(ps.name, ps.pairs, model, ps.ids, ps.source)
    assert m.n_dropped == 0 and len(m.pairs) == 60       # byte-level BPE: every character is representable
    tok, bos = model.encoder.tok, model.encoder.bos_id

    def log_p(text: str) -> float:                       # a plain forward pass over <bos> + the sentence
        ids = [bos] + tok(text, add_special_tokens=False)["input_ids"]
        with torch.no_grad():
            logp = torch.log_softmax(model.net(input_ids=torch.tensor([ids])).logits[0], -1)
        return float(sum(logp[i - 1, ids[i]] for i in range(1, len(ids))))

    gaps = np.array([log_p(more) - log_p(less) for more, less in ps.pairs])
    st = m.stats(model.net)
    assert st["effect_size"] == pytest.approx(gaps.mean(), abs=1e-9)
    assert st["fraction_preferred"] == pytest.approx(np.mean(gaps > 0))
    assert st["n_bootstrap"] == 1000 and st["ci_low"] < gaps.mean() < st["ci_high"]
    rng = np.random.default_rng(0)                       # the CI: percentile bootstrap over pairs, seed 0
    boots = gaps[rng.integers(0, 60, (1000, 60))].mean(1)
    assert (st["ci_low"], st["ci_high"]) == pytest.approx(tuple(np.quantile(boots, [0.025, 0.975])), abs=1e-9)
    fn = m.fn(model.net)                                 # the influence target: differentiable, the same value
    assert float(fn.detach()) == pytest.approx(gaps.mean(), abs=1e-9)
    grads = torch.autograd.grad(fn, [p for p in model.net.parameters() if p.requires_grad], allow_unused=True)
    assert any(g is not None and float(g.abs().sum()) > 0 for g in grads)


def test_cli_score_crows_pairs_gender_on_a_fine_tuned_checkpoint(checkpoint, tmp_path):
    from conftest import run_cli

    rows = [r for r in crows_pairs() if r.bias_type == "gender"][:30]
    f = tmp_path / "c.jsonl"
    f.write_text("".join(json.dumps({"id": f"d{r.id}", "text": r.sent_less}) + "\n" for r in rows), encoding="utf-8")
    p = run_cli("score", "--model", "lm", "-c", f, "--checkpoint", checkpoint, "--finetune", "--epochs", "1",
                "--lm-config", "batch_size=16", "--seeds", "1", "--resamples", "0", "--pairs", "crows-pairs:gender",
                "--out", tmp_path / "s", "--top", "3", cache=tmp_path / "cache")
    assert p.returncode == 0, p
    summary = json.loads((tmp_path / "s" / "summary.json").read_text())
    (t,) = summary["tests"]
    assert t["name"] == "crows-pairs:gender" and t["kind"] == "pairs"
    assert t["weat"]["metric"] == "paired sentences"
    gone = [i for ids in t["weat"].get("dropped_pairs", {}).values() for i in ids]
    assert t["weat"]["n_pairs"] + len(gone) == 262 and len(gone) < 10     # a few longer than 64 tokens
    if gone:
        assert f"crows-pairs: dropped {len(gone)} of 262 pairs" in p.stdout + p.stderr
    assert t["weat"]["ci_low"] <= t["weat"]["effect_size"] <= t["weat"]["ci_high"]
    assert 0 <= t["weat"]["fraction_preferred"] <= 1
    scores = [json.loads(l) for l in (tmp_path / "s" / "scores.jsonl").read_text().splitlines()]
    assert {r["test"] for r in scores} == {"crows-pairs:gender"} and len(scores) == 30
    assert any(r["delta_bias_if_removed"] != 0 for r in scores)
    printed = " ".join(p.stdout.split())
    assert "the value is the mean log-likelihood gap" in printed and "CrowS-Pairs' percentage" in printed


def test_api_score_crows_pairs_on_an_lm_trained_here_drops_and_counts(tmp_path):
    pytest.importorskip("kronfluence")
    from biasaudit import api
    from biasaudit.corpus import Document, MemoryCorpus
    from biasaudit.models.lm import LMConfig, train_lm

    rows = [r for r in crows_pairs() if r.bias_type == "age"][:60]       # the vocabulary of 60 of the 87 pairs
    corpus = MemoryCorpus([Document(f"d{r.id}", f"{r.sent_more} {r.sent_less}") for r in rows], "age")
    model = train_lm(corpus, LMConfig(hidden_size=16, num_heads=2, intermediate_size=32, min_count=1, epochs=1,
                                      min_steps=0, batch_size=16))
    res = api.score(model, corpus, pairs="crows-pairs:age", seeds=1, resamples=0, out=tmp_path / "s", report=False)
    (t,) = res["tests"]
    gone = t["weat"]["dropped_pairs"][UNREADABLE]
    assert t["weat"]["n_pairs"] >= 60 and len(gone) > 0 and t["weat"]["n_pairs"] + len(gone) == 87
    assert not set(gone) & {r.id for r in rows}
    (note,) = [n for n in res["notes"] if n.startswith("crows-pairs:")]
    assert note == f"crows-pairs: dropped {len(gone)} of 87 pairs ({len(gone)} {UNREADABLE})"
    # the verdict speaks of a gap over pairs, not of WEAT's d over words; no experiment command (it takes tests)
    v = t["evidence"]["verdict"]
    assert v.startswith("gap = ") and " nats " in v and "pairs" in v and "words" not in v, v
    assert res.summary["check_command"] is None
    # the report labels it so too: a gap in nats with a CI over pairs, not a template-association d over words
    from biasaudit.report.html import render
    page = render(res.folder)
    assert '<th class="num">gap (nats)</th>' in page and "95% CI (pairs)" in page, page
    assert "effect size d" not in page and "Template-association" not in page


def test_the_first_line_calls_a_pair_gap_a_gap_not_d():
    """score's summary line: a CrowS-Pairs gap is a gap over pairs (nats), not WEAT's d over words."""
    from biasaudit.cli import _overview

    ev = {"effect_size": -1.05, "p_value": 0.82, "significant": False, "seed_noise": False, "seed_spread": None}
    pairs = {"name": "crows-pairs:gender", "kind": "pairs", "evidence": ev}
    line = _overview({"tests": [pairs]})
    assert "crows-pairs:gender gap -1.05 p 0.82" in line and "pair-sampling noise" in line, line
    words = {"name": "planted", "kind": "template", "evidence": {**ev, "effect_size": 1.2}}
    line = _overview({"tests": [words, pairs]})
    assert "planted d +1.20" in line and "gender gap -1.05" in line and "word- or pair-sampling" in line, line
