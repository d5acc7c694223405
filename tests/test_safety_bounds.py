"""Hostile inputs, third pass (issue 33, holes 3 and 6 and their rough edges): pair measures in memory bounded
whatever the pair count and with the same p-value for a seed, over-long pair sentences dropped before tokenising,
a byte-order mark read, repeated pairs dropped and counted; every object a gensim pickle's opcodes make charged
against its memory budget, truncated pickles and 5,000-digit counts in one line."""
import json
import tracemalloc
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from biasaudit.errors import ArtifactError
from biasaudit.measures import lm as lm_measures
from biasaudit.measures.lm import PairMeasure, dropped_pairs_notes, pair_file, pair_measure
from biasaudit.models import keyed
from biasaudit.models.imported import read_glove_vocab
from biasaudit.models.keyed import load_embeddings, read_gensim_pickle

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


def test_a_pairs_line_holding_a_line_separator_inside_a_string_is_one_pair(tmp_path):
    """JSON holds U+2028, U+2029 and U+0085 unescaped inside strings; str.splitlines() split the line there and
    the file was refused as "not a JSON object" (found by an attack). Lines end at newlines only; CRLF still reads."""
    f = tmp_path / "sep.jsonl"
    rows = [{"more": "the men\u2028cook", "less": "the women\u2028cook"},
            {"more": "the men\u0085eat", "less": "the women\u0085eat"}]
    f.write_bytes("\r\n".join(json.dumps(r, ensure_ascii=False) for r in rows).encode("utf-8"))
    assert pair_file(f).pairs == tuple((r["more"], r["less"]) for r in rows)


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


# ------------------------------------------------------------------ hole 6: objects made by opcodes are charged
def _peak_refusal(call):
    tracemalloc.start()
    try:
        with pytest.raises(ArtifactError) as e:
            call()
        return str(e.value), tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("op, head, body", [
    ("EMPTY_SET", b"", b"\x8f"), ("EMPTY_DICT", b"", b"}"), ("EMPTY_LIST", b"", b"]"), ("MARK", b"", b"("),
    ("MEMOIZE", b"N", b"\x94"), ("EMPTY_SET", b"]", b"\x8fa"), ("TUPLE1", b"N", b"\x85")],
    ids=["EMPTY_SET", "EMPTY_DICT", "EMPTY_LIST", "MARK", "MEMOIZE", "sets-appended", "nested-tuples"])
def test_objects_made_by_one_byte_opcodes_are_charged_against_the_budget(tmp_path, monkeypatch, op, head, body):
    """500 KB of one opcode: 216 bytes of set per byte (the issue's 10 MB reached 2.6 GB). With the slack cut to
    2 MB the budget is 2 MB + 20 x 500 KB; the file is refused, naming the opcode, before its objects pass it."""
    monkeypatch.setattr(keyed, "ALLOC_SLACK", 2 << 20)
    f = tmp_path / "bomb.kv"
    f.write_bytes(b"\x80\x04" + head + body * (500_000 // len(body)) + b".")
    msg, peak = _peak_refusal(lambda: read_gensim_pickle(f))
    assert "\n" not in msg and str(f) in msg and f"refusing what its {op} opcodes make" in msg, msg
    assert peak < (2 << 20) + 24 * f.stat().st_size, peak


def test_a_real_vocabulary_of_short_words_stays_inside_the_budget(tmp_path, monkeypatch):
    """The factor fits gensim's own files: 20,000 one- to four-letter words, each a string, a memo entry, an int
    and a dict entry (about 17 times the file), load without the slack."""
    from gensim.models import KeyedVectors
    monkeypatch.setattr(keyed, "ALLOC_SLACK", 0)
    kv = KeyedVectors(2)
    kv.add_vectors([f"{i:x}" for i in range(20_000)], np.zeros((20_000, 2), np.float32))
    kv.save(str(tmp_path / "k.kv"), sep_limit=1000)                      # the vectors in a side file
    assert read_gensim_pickle(tmp_path / "k.kv").index_to_key[-1] == f"{19_999:x}"


def test_a_truncated_pickle_is_one_line_saying_so(tmp_path):
    from gensim.models import KeyedVectors
    kv = KeyedVectors(4)
    kv.add_vectors(["a", "b", "cc"], np.ones((3, 4), np.float32))
    kv.save(str(tmp_path / "m.kv"))
    data = (tmp_path / "m.kv").read_bytes()
    f = tmp_path / "t.kv"
    for cut in (2, len(data) // 3, len(data) - 1):
        f.write_bytes(data[:cut])
        with pytest.raises(ArtifactError) as e:
            load_embeddings(f)
        msg = str(e.value)
        assert msg.startswith(f"{f}: truncated or not a pickle") and "()" not in msg and "\n" not in msg, msg
    for payload in (b"\x80\x02]q\x00", b"(lp0\nI1\na"):                 # protocol 2 and 0, cut before STOP
        f.write_bytes(payload)
        with pytest.raises(ArtifactError, match="truncated or not a pickle$"):
            read_gensim_pickle(f)


def test_a_5000_digit_count_is_one_line(tmp_path):
    v = tmp_path / "vocab.txt"
    v.write_text("the 10\nof " + "9" * 5000 + "\n")
    with pytest.raises(ArtifactError, match=r"vocab.txt: line 2: count 9{30}\.\.\. is above"):
        read_glove_vocab(v)
    v.write_text("the 10\nof " + "0" * 5000 + "7\n")                        # leading zeros: still a count
    assert read_glove_vocab(v)[1].tolist() == [10, 7]
    w = tmp_path / "vectors.txt"                                            # a word2vec text header
    w.write_text("9" * 5000 + " 2\nthe 0.1 0.2\n")
    with pytest.raises(ArtifactError, match=r"header says 9{30} x 2 but the file holds 1 x 2"):
        load_embeddings(w)
    w.write_text("001 2\nthe 0.1 0.2\n")
    assert load_embeddings(w).index_to_key == ("the",)


# ------------------------------------------------------------------ copies' ids, free ones
def test_upweighted_copies_take_ids_the_corpus_does_not_hold():
    from biasaudit.corpus import MemoryCorpus
    corpus = MemoryCorpus([("a", "one two"), ("a@copy1", "the user's own"), ("a@copy3", "another"), ("b", "x y")])
    edited = corpus.upweight(["a"], 4)
    ids = [d.id for d in edited]
    assert ids == ["a", "a@copy2", "a@copy4", "a@copy5", "a@copy1", "a@copy3", "b"]
    assert edited.scan().n_documents == 7                   # no "id occurs more than once"
    assert [d.text for d in edited][:4] == ["one two"] * 4
    assert [d.id for d in MemoryCorpus([("a", "t")]).upweight(["a"], 3)] == ["a", "a@copy1", "a@copy2"]


# ------------------------------------------------------------------ the report of a huge summary.json
@pytest.fixture(scope="module")
def score_dir(tmp_path_factory):
    from conftest import PLANTED_TEST, planted_corpus
    from biasaudit.audit import run_score
    from biasaudit.influence.estimators import EstimatorConfig
    from biasaudit.models.skipgram import SkipGramConfig, train_skipgram
    from biasaudit.wordsets import BiasTest
    corpus, _, _ = planted_corpus()
    model = train_skipgram(corpus, SkipGramConfig(vector_size=16, window=3, min_count=2, epochs=5, seed=1))
    out = tmp_path_factory.mktemp("report") / "score"
    run_score(model, corpus, [BiasTest.from_dict(PLANTED_TEST)], EstimatorConfig(), out_dir=out, top=5)
    return out


def test_the_report_of_a_huge_summary_renders_a_bounded_page_and_says_what_it_left_out(score_dir, tmp_path):
    import shutil

    from biasaudit.report import html as report_html
    from biasaudit.report.html import build_context, render

    legit = render(score_dir)
    assert "leaves out" not in legit                       # score's own summary: everything shown
    folder = tmp_path / "crafted"
    shutil.copytree(score_dir, folder)
    (folder / "report.html").unlink(missing_ok=True)
    s = json.loads((folder / "summary.json").read_text())
    small = dict(s["tests"][0])
    t = s["tests"][0]
    words = sorted(set(t["roles"]["target"]) | set(t["roles"]["attribute"]))
    text = " ".join(words * 100)[:1_000]                    # every word marked, past the 600 characters score writes
    row = {**t["table"][0], "snippet": text, "test_words": words * 3}
    t["table"] = [{**row, "doc_id": f"d{i}"} for i in range(3_000)]
    t["top"] = {k: [{**row, "doc_id": f"t{i}"} for i in range(500)] for k in t["top"]}
    s["tests"] = [t] + [small] * 59
    s["notes"] = ["n" * 3_000] * 1_000
    (folder / "summary.json").write_text(json.dumps(s))     # about 8 MB
    assert (folder / "summary.json").stat().st_size < 16 << 20
    page = render(folder)
    assert len(page) < 8 << 20, len(page)                   # 50 tests shown, each as big as score writes
    assert "This page leaves out what a report does not render: 10 tests (the first 50 are shown)" in page
    assert "table rows past 200 per test" in page and "The result files hold everything" in page
    ctx = build_context(folder)
    assert len(ctx["tests"]) == 50 and all(len(r["snippet"]) <= 600 for t in ctx["tests"] for r in t["table_rows"])
    first = ctx["tests"][0]
    assert len(first["table_rows"]) <= 200 and all(len(first["docs"][k]) <= 50 for k in first["docs"])
    assert sum(len(r["snippet"]) for t in ctx["tests"] for rows in (t["table_rows"], *t["docs"].values())
               for r in rows) <= report_html.REPORT_TEXT
    big = folder / "summary.json"
    with open(big, "ab") as f:                              # past the size a report reads
        f.truncate(report_html.REPORT_BYTES + 1)
    with pytest.raises(ArtifactError, match="summary.json: 67,108,865 bytes, larger than a result file for a report"):
        render(folder)


def test_an_experiments_report_is_bounded_in_charts_points_and_rows(tmp_path, monkeypatch):
    import csv
    import time

    from biasaudit.report import html as report_html

    exp = {"estimators": [f"e{i}" for i in range(30)], "tests": [f"t{j}" for j in range(30)],
           "conditions": [{"estimator": "e0", "test": "t0", "condition": c, "n_docs": k, "k": str(k),
                           "effect_size_mean": 1.0 - k / 100, "effect_size_sd": 0.1} for c, k in
                          (("baseline", 0), ("remove-top", 10), ("remove-top", 20))]}
    fields = ["estimator", "test", "condition", "k", "seed", "effect_size", "predicted_effect_size",
              "baseline_effect_size"]
    rows = [dict(zip(fields, ("e0", "t0", "remove-top", "10", str(i), "0.5", "0.4", "1.0"))) for i in range(30_000)]
    bounds = report_html._Bounds()
    t = time.perf_counter()
    ctx = report_html._experiment_context(exp, rows, bounds)
    assert time.perf_counter() - t < 5                          # 900 charts x 30,000 rows were scanned before
    assert len(ctx["charts"]) == len(ctx["scatters"]) == 100
    assert bounds.cut == {"charts past 100": 800, "points past 2,000 per chart": 28_000}
    with open(tmp_path / "results.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields)
        w.writeheader()
        w.writerows(rows)
    monkeypatch.setattr(report_html, "REPORT_RESULTS", 1_000)
    bounds = report_html._Bounds()
    assert len(report_html._results(tmp_path, bounds)) == 1_000
    assert bounds.lines() == ["29,000 rows of results.csv past 1,000"]


def test_a_pair_measure_without_gradients_runs_in_batches_with_the_same_value(monkeypatch):
    pytest.importorskip("transformers")
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    net = GPT2LMHeadModel(GPT2Config(vocab_size=50, n_embd=16, n_layer=1, n_head=2, n_positions=32)).double().eval()
    rng = np.random.default_rng(0)
    seqs = [rng.integers(1, 50, int(rng.integers(3, 12))).tolist() for _ in range(2 * 23)]   # 23 pairs
    m = PairMeasure("p", [("a", "b")] * 23, seqs, [len(s) - 1 for s in seqs])
    whole = m.differences(net).mean()                                 # one batch, with gradients
    calls = []
    real = lm_measures.sequence_log_probs
    monkeypatch.setattr(lm_measures, "sequence_log_probs", lambda net, s, *a: calls.append(len(s)) or real(net, s, *a))
    monkeypatch.setattr(lm_measures, "SCORE_BATCH", 5)
    with torch.no_grad():
        batched = m.fn(net)
    assert calls == [10, 10, 10, 10, 6] and float(batched) == pytest.approx(float(whole.detach()), abs=1e-12)
    calls.clear()
    assert m.fn(net).requires_grad and calls == [46]                  # differentiable: one pass


def test_a_pair_measure_is_the_sum_of_its_parts_value_and_gradient(monkeypatch):
    """Influence differentiates paired sentences part by part (kronfluence sums the parts' query gradients), so
    memory does not grow with the pair count: the parts' values and gradients add up to the whole mean's."""
    pytest.importorskip("transformers")
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    net = GPT2LMHeadModel(GPT2Config(vocab_size=50, n_embd=16, n_layer=1, n_head=2, n_positions=32)).double().eval()
    rng = np.random.default_rng(1)
    seqs = [rng.integers(1, 50, int(rng.integers(3, 12))).tolist() for _ in range(2 * 23)]   # 23 pairs
    m = PairMeasure("p", [("a", "b")] * 23, seqs, [len(s) - 1 for s in seqs])
    monkeypatch.setattr(lm_measures, "SCORE_BATCH", 5)
    assert m.parts() == 5
    params = [p for p in net.parameters() if p.requires_grad]
    whole = m.fn(net)
    g_whole = torch.autograd.grad(whole, params)
    parts = [m.part(net, i) for i in range(m.parts())]
    g_parts = [torch.autograd.grad(p, params) for p in parts]
    assert float(sum(parts).detach()) == pytest.approx(float(whole.detach()), abs=1e-12)
    for k, g in enumerate(g_whole):
        assert torch.allclose(sum(gp[k] for gp in g_parts), g, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("estimator", ["gradient-dot"])
def test_lm_scores_of_paired_sentences_do_not_depend_on_how_the_pairs_are_split(monkeypatch, estimator):
    """The same scores whether kronfluence differentiates the pair measure in one part or in many. (The query
    gradient is what the parts change, the same for every estimator; ekfac is left out because its factors are not
    reproducible between two fits on this tiny model, which moves scores by ~10% with or without parts.)"""
    pytest.importorskip("transformers")
    pytest.importorskip("kronfluence")
    from biasaudit.influence.ekfac import score_lm
    from biasaudit.influence.estimators import EstimatorConfig
    from biasaudit.models.lm import LMConfig, train_lm
    from biasaudit.planted import lm_planted_corpus

    corpus, _ = lm_planted_corpus(n_background=24, n_planted=4)
    model = train_lm(corpus, LMConfig(hidden_size=16, num_layers=1, num_heads=2, intermediate_size=32, min_count=1,
                                      epochs=1, min_steps=0, batch_size=16, dtype="float64"))
    texts = [d.text for d in corpus][:14]
    pairs = [(a, b) for a, b in zip(texts[0::2], texts[1::2])]                     # 7 pairs of real sentences
    m = pair_measure("p", pairs, model)
    one = score_lm(model, corpus, [m], EstimatorConfig(name=estimator))
    monkeypatch.setattr(lm_measures, "SCORE_BATCH", 2)
    assert m.parts() == 4
    split = score_lm(model, corpus, [m], EstimatorConfig(name=estimator))
    a, b = one.delta_bias_if_removed["p"], split.delta_bias_if_removed["p"]
    assert np.abs(a).max() > 0
    # kronfluence computes scores in float32: the order of the sums moves the seventh digit
    assert np.allclose(a, b, rtol=1e-4, atol=1e-5 * np.abs(a).max())
