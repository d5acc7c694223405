"""Auditing a model the user trained elsewhere: a full gensim Word2Vec file (settings read from it), the GloVe C
tool's parameters with its vocab.txt, and the checks that the model was trained on this corpus with this
tokenizer."""
from __future__ import annotations

import json
import struct

import numpy as np
import pytest

from biasaudit.corpus import Document, MemoryCorpus, load_corpus
from biasaudit.errors import ArtifactError, CorpusError
from biasaudit.influence import score_model
from biasaudit.influence.estimators import EstimatorConfig
from biasaudit.measures.targets import weat_target
from biasaudit.models.glove import GloVeConfig, train_glove
from biasaudit.models.imported import check_vocabulary, load_glove_c, load_word2vec
from biasaudit.models.skipgram import SkipGramConfig, stable_hash, train_skipgram
from biasaudit.planted import PLANTED_CHECK_SKIPGRAM
from biasaudit.vocab import tokenize
from biasaudit.wordsets import BiasTest
from conftest import PLANTED_TEST, planted_corpus, run_cli

TEST = BiasTest.from_dict(PLANTED_TEST)
SMALL = SkipGramConfig(vector_size=16, window=3, min_count=2, negative=4, epochs=8, seed=3, sample=1e-2)


def _write_jsonl(corpus, path):
    with open(path, "w", encoding="utf-8") as f:
        for d in corpus:
            f.write(json.dumps({"id": d.id, "text": d.text}) + "\n")
    return path


def _plain_gensim(corpus, cfg: SkipGramConfig, path, hashfxn=stable_hash):
    """A Word2Vec trained by a plain gensim script (the user's), saved with model.save()."""
    from gensim.models import Word2Vec

    m = Word2Vec([tokenize(d.text) for d in corpus], vector_size=cfg.vector_size, window=cfg.window,
                 min_count=cfg.min_count, negative=cfg.negative, epochs=cfg.epochs, seed=cfg.seed, sample=cfg.sample,
                 sg=1, hs=0, workers=1, hashfxn=hashfxn)
    m.hashfxn = hash          # what a script that never set it would save (biasaudit's own hash is not allowlisted)
    m.save(str(path))
    return m


@pytest.fixture(scope="module")
def planted():
    corpus, planted_ids, _ = planted_corpus()
    return corpus, planted_ids


def test_a_gensim_file_scores_exactly_like_the_same_model_trained_here(planted, tmp_path):
    corpus, _ = planted
    ours = train_skipgram(corpus, SMALL)
    _plain_gensim(corpus, SMALL, tmp_path / "w2v.model")
    theirs = check_vocabulary(load_word2vec(tmp_path / "w2v.model"), corpus, "w2v.model")
    assert theirs.config == SMALL.__class__(**{**SMALL.to_dict(), "workers": 1})   # every setting read back
    order = [theirs.vocab.key_to_index[w] for w in ours.vocab.index_to_key]
    assert np.array_equal(theirs.vectors[order], ours.vectors)
    assert np.array_equal(theirs.output_vectors[order], ours.output_vectors)
    for est in (EstimatorConfig(name="block"), EstimatorConfig(name="cg")):
        a = score_model(ours, corpus, [weat_target(TEST, ours.vocab)], est).delta_bias_if_removed["planted"]
        b = score_model(theirs, corpus, [weat_target(TEST, theirs.vocab)], est).delta_bias_if_removed["planted"]
        assert np.max(np.abs(a - b)) <= 1e-10 * max(1.0, np.abs(a).max()), est.name


def test_a_model_of_another_corpus_or_tokenizer_or_without_output_vectors_is_refused(planted, tmp_path):
    corpus, _ = planted
    m = _plain_gensim(corpus, SMALL, tmp_path / "w2v.model")
    m.wv.save(str(tmp_path / "vectors.kv"))
    m.wv.save_word2vec_format(str(tmp_path / "vectors.txt"))
    f = _write_jsonl(corpus, tmp_path / "c.jsonl")
    other = _write_jsonl(MemoryCorpus(list(corpus)[:150], "half"), tmp_path / "half.jsonl")
    # the same words, capitalised: biasaudit's tokenizer lowercases, whitespace keeps the case
    caps = _write_jsonl(MemoryCorpus([Document(d.id, d.text.title()) for d in corpus]), tmp_path / "caps.jsonl")
    cases = [(["-c", f, "--embeddings", tmp_path / "vectors.kv"], "holds only word vectors (KeyedVectors)"),
             (["-c", f, "--embeddings", tmp_path / "vectors.txt"], "holds no output vectors"),
             (["-c", other, "--embeddings", tmp_path / "w2v.model"], "in the model"),
             (["-c", caps, "--tokenizer", "whitespace", "--embeddings", tmp_path / "w2v.model"],
              "was the model trained on this corpus with this tokenizer?")]
    for args, msg in cases:
        r = run_cli("score", *args, "-t", "math-arts", "--out", tmp_path / "out", cache=tmp_path / "cache")
        assert r.returncode == 1, (args, r)
        lines = [l for l in r.stderr.splitlines() if l.strip()]
        assert len(lines) == 1 and msg in lines[0], (args, r)
    r = run_cli("score", "-c", f, "--embeddings", tmp_path / "w2v.model", "--window", "5")
    assert r.returncode == 2 and "read from its file" in r.stderr


def test_cbow_and_hierarchical_softmax_files_are_refused(planted, tmp_path):
    from gensim.models import Word2Vec

    corpus, _ = planted
    sents = [tokenize(d.text) for d in corpus]
    Word2Vec(sents, vector_size=8, min_count=2, sg=0, workers=1, epochs=1).save(str(tmp_path / "cbow.model"))
    Word2Vec(sents, vector_size=8, min_count=2, sg=1, hs=1, negative=0, workers=1,
             epochs=1).save(str(tmp_path / "hs.model"))
    with pytest.raises(ArtifactError, match="CBOW"):
        load_word2vec(tmp_path / "cbow.model")
    with pytest.raises(ArtifactError, match="hierarchical softmax"):
        load_word2vec(tmp_path / "hs.model")


def test_score_and_report_name_the_users_model_and_its_checks(planted, tmp_path):
    corpus, _ = planted
    _plain_gensim(corpus, SMALL, tmp_path / "w2v.model")
    f = _write_jsonl(corpus, tmp_path / "c.jsonl")
    (tmp_path / "t.json").write_text(json.dumps(PLANTED_TEST))
    r = run_cli("score", "-c", f, "--embeddings", tmp_path / "w2v.model", "-t", tmp_path / "t.json",
                "--out", tmp_path / "out", "--resamples", "0", cache=tmp_path / "cache")
    assert r.returncode == 0, r
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    origin = summary["model_origin"]
    assert origin["kind"] == "gensim Word2Vec" and origin["settings"]["window"] == SMALL.window
    assert origin["files"][0]["sha256"] and "vocabulary and counts equal" in origin["checks"][0]
    assert "--embeddings" in summary["check_command"]
    page = (tmp_path / "out" / "report.html").read_text()
    assert origin["files"][0]["sha256"][:16] in page and "vocabulary and counts equal" in page


# ------------------------------------------------------------------ tokenizers
def test_tokenizers_whitespace_and_field_give_the_users_tokens(tmp_path):
    f = tmp_path / "c.jsonl"
    f.write_text(json.dumps({"id": "a", "text": "New-York is BIG.", "toks": ["new_york", "is", "big"]}) + "\n")
    assert list(load_corpus(f, tokenizer="whitespace").tokenizer(next(iter(load_corpus(f))))) == \
        ["New-York", "is", "BIG."]
    c = load_corpus(f, tokenizer="field:toks")
    doc = next(iter(c))
    assert c.tokenizer(doc) == ["new_york", "is", "big"] and doc.text == "New-York is BIG."
    assert len({load_corpus(f).hash, load_corpus(f, tokenizer="whitespace").hash, c.hash}) == 3
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"id": "a", "text": "x", "toks": "not a list"}) + "\n")
    with pytest.raises(CorpusError, match=r"bad.jsonl: line 1: the token field 'toks' must hold a list"):
        list(load_corpus(bad, tokenizer="field:toks"))
    csv = tmp_path / "c.csv"
    csv.write_text("id,text\na,x\n")
    with pytest.raises(CorpusError, match="JSON Lines, JSON or Parquet"):
        load_corpus(csv, tokenizer="field:toks")


# ------------------------------------------------------------------ GloVe C output
def _write_glove_c(model, folder, binary: bool):
    """The files the C tools write: vocab.txt (vocab_count) and the parameters of glove -model 0."""
    V, dim = model.W.shape
    (folder / "vocab.txt").write_text("".join(f"{w} {int(c)}\n" for w, c in zip(model.vocab.index_to_key,
                                                                                  model.vocab.counts)))
    rows = np.concatenate([np.c_[model.W, model.b], np.c_[model.C, model.bc]]).astype(np.float64)
    if binary:
        with open(folder / "vectors.bin", "wb") as f:
            f.write(struct.pack(f"<{rows.size}d", *rows.ravel()))
        return folder / "vectors.bin"
    with open(folder / "vectors.txt", "w") as f:
        for i, w in enumerate(model.vocab.index_to_key):
            f.write(w + "".join(f" {v:.17g}" for v in np.r_[rows[i], rows[V + i]]) + "\n")
        f.write("<unk>" + " 0" * (2 * dim + 2) + "\n")
    return folder / "vectors.txt"


@pytest.mark.parametrize("binary", [True, False])
def test_glove_c_parameters_load_and_score_like_the_same_values_in_house(planted, tmp_path, binary):
    corpus, _ = planted
    ours = train_glove(corpus, GloVeConfig(vector_size=8, window=4, min_count=2, epochs=5, embedding="w+c"))
    params = _write_glove_c(ours, tmp_path, binary)
    theirs = load_glove_c(params, tmp_path / "vocab.txt", {"window": 4, "epochs": 5})
    theirs = check_vocabulary(theirs, corpus, str(params))
    assert theirs.config.vector_size == 8 and theirs.config.embedding == "w+c" and theirs.config.window == 4
    assert np.array_equal(theirs.vectors, ours.vectors)
    for est in (EstimatorConfig(name="block"), EstimatorConfig(name="cg")):
        a = score_model(ours, corpus, [weat_target(TEST, ours.vocab)], est)
        b = score_model(theirs, corpus, [weat_target(TEST, theirs.vocab)], est)
        assert np.allclose(a.delta_bias_if_removed["planted"], b.delta_bias_if_removed["planted"], rtol=1e-9,
                           atol=1e-12)
    assert theirs.meta["origin"]["settings"]["assumed"] == ["alpha", "embedding", "x_max"]


def test_damaged_glove_c_files_get_one_line(planted, tmp_path):
    corpus, _ = planted
    ours = train_glove(corpus, GloVeConfig(vector_size=4, window=2, min_count=2, epochs=1))
    params = _write_glove_c(ours, tmp_path, binary=True)
    with open(params, "ab") as f:
        f.write(b"\0" * 8)
    with pytest.raises(ArtifactError, match="is not 2 x"):
        load_glove_c(params, tmp_path / "vocab.txt")
    (tmp_path / "v2.txt").write_text("the\n")
    with pytest.raises(ArtifactError, match="line 1: not 'word count'"):
        load_glove_c(params, tmp_path / "v2.txt")
    f = _write_jsonl(corpus, tmp_path / "c.jsonl")
    r = run_cli("score", "-c", f, "--model", "glove", "--embeddings", params)
    assert r.returncode == 2 and "--vocab" in r.stderr


# ------------------------------------------------------------------ a plain gensim model, checked by retraining
def _gensim_planted_check(n_background: int, n_planted: int, k: int, seeds, tmp_path):
    """Changes of d when a plain-gensim model's top-k documents (ranked through --embeddings) are removed and the
    model is retrained with gensim, against removing the k planted documents, per seed."""
    from biasaudit.measures.weat import associations, effect_size

    corpus, planted, _ = planted_corpus(n_background=n_background, n_planted=n_planted)
    cfg = SkipGramConfig(**PLANTED_CHECK_SKIPGRAM, seed=1)

    def d_of(m):
        X, Y, A, B = (np.stack([m.wv[w] for w in s.words]) for s in TEST.sets)
        return effect_size(associations(X, A, B), associations(Y, A, B))

    changes = {"top": [], "planted": []}
    for seed in seeds:
        c = SkipGramConfig(**{**cfg.to_dict(), "seed": seed})
        m = _plain_gensim(corpus, c, tmp_path / f"s{seed}.model", hashfxn=hash)
        theirs = check_vocabulary(load_word2vec(tmp_path / f"s{seed}.model"), corpus, "model")
        s = score_model(theirs, corpus, [weat_target(TEST, theirs.vocab)],
                        EstimatorConfig(name="block")).delta_bias_if_removed["planted"]
        ids = [d.id for d in corpus]
        top = {ids[i] for i in np.argsort(s)[:k]}
        b0 = d_of(m)
        for name, drop in (("top", top), ("planted", planted)):
            kept = MemoryCorpus([d for d in corpus if d.id not in drop])
            changes[name].append(d_of(_plain_gensim(kept, c, tmp_path / "tmp.model", hashfxn=hash)) - b0)
    return changes


def test_a_plain_gensim_models_top_documents_lower_d_like_the_planted_ones(tmp_path):
    """The small version: one seed, 30 planted documents among 300."""
    ch = _gensim_planted_check(300, 30, 30, [1], tmp_path)
    assert ch["top"][0] < 0 and ch["top"][0] <= 0.8 * ch["planted"][0], ch


@pytest.mark.slow
@pytest.mark.xfail(strict=True, reason="measured: the top 100 lower d by -1.62, -1.70, -1.75 against the planted "
                   "100's -2.82, -2.97, -2.87 (59%); 15 of the top 100 are planted (first-order ranking of 100 "
                   "near-identical documents): a known miss, see the README")
def test_a_plain_gensim_models_top_100_lower_d_as_much_as_the_planted_100_over_3_seeds(tmp_path):
    ch = _gensim_planted_check(1000, 100, 100, [1, 2, 3], tmp_path)
    print(ch)
    assert all(t < 0 for t in ch["top"]), ch          # holds: the top 100 lower d on every seed
    assert np.mean(ch["top"]) <= 0.8 * np.mean(ch["planted"]) < 0, ch


def test_settings_a_file_brings_are_refused_once_in_the_api_with_the_clis_words(tmp_path):
    """api.load_model(..., corpus) refuses what the files already say (a gensim file's settings, GloVe C's
    vector_size/min_count) before reading them, each error carrying the CLI's flag and the option it is a usage
    error of (GloVe's vector_size was silently ignored before)."""
    import biasaudit.api as ba
    from biasaudit.errors import ConfigError

    corpus = tmp_path / "c.jsonl"
    corpus.write_text('{"id": "a", "text": "he she man woman"}\n')
    (tmp_path / "m.bin").write_bytes(b"")
    (tmp_path / "vocab.txt").write_text("he 1\n")
    cases = [(dict(window=5), "drop window", "drop --window", "--embeddings"),
             (dict(vocab=tmp_path / "vocab.txt"), "drop vocab", "--vocab goes with GloVe C output", "--vocab"),
             (dict(model="glove"), "needs vocab=", "needs --vocab", "--embeddings"),
             (dict(model="glove", vocab=tmp_path / "vocab.txt", vector_size=8), "vector_size is read from",
              "--vector-size is read from", "--embeddings")]
    for kw, api_words, cli_words, option in cases:
        with pytest.raises(ConfigError, match=api_words) as e:
            ba.load_model(tmp_path / "m.bin", corpus, **kw)
        assert cli_words in e.value.for_cli() and e.value.option == option, kw
