"""The base LM's tokenizer (byte-level BPE: every word of any corpus represented, specials at 0-3, deterministic)
and a small base built and fine-tuned by the smooth recipe from it (slow)."""
from __future__ import annotations

import pytest

pytest.importorskip("transformers")

from biasaudit.models.lm_base import BASE_RECIPE, SPECIAL_TOKENS, bpe_tokenizer  # noqa: E402

TEXTS = ["the cat sat on the mat", "a dog ran in the park", "algebra and poetry are studied"] * 20


def test_bpe_tokenizer_is_deterministic_covers_unseen_words_and_keeps_the_specials_first():
    from biasaudit.models.lm import HFEncoder
    a, b = bpe_tokenizer(TEXTS, 300), bpe_tokenizer(TEXTS, 300)
    assert a.get_vocab() == b.get_vocab()
    assert [a.convert_tokens_to_ids(t) for t in SPECIAL_TOKENS] == [0, 1, 2, 3]
    enc = HFEncoder(a)
    for word in ("zorbel", "Quintar", "naïve", "x9"):
        assert enc.known(word) and not enc.unrepresented(f"the {word} sat")
    assert enc.encode("The Cat") == enc.encode("the cat")          # lowercased


@pytest.mark.slow
def test_a_small_base_fine_tuned_smoothly_replays_and_its_template_measure_sums_word_pieces(tmp_path):
    import numpy as np
    from biasaudit.influence.magic import metagradients
    from biasaudit.measures.lm import template_measure
    from biasaudit.models.lm import LMConfig, LMModel, train_lm
    from biasaudit.models.lm_base import base_folder
    from biasaudit.models.lm_replay import LMReplay
    from biasaudit.planted import LM_TEMPLATES, LM_TEST, lm_planted_corpus
    from biasaudit.wordsets import BiasTest

    recipe = {**BASE_RECIPE, "documents": 200, "hidden_size": 16, "intermediate_size": 32, "num_heads": 2,
              "vocab_size": 400}
    folder = base_folder(tmp_path, recipe)
    assert base_folder(tmp_path, recipe) == folder                       # cached: the second call reads it
    base = LMModel.load(folder)
    assert len(base.encoder) == 400 and base.meta["base_recipe"]["documents"] == 200
    corpus, _ = lm_planted_corpus(n_background=30, n_planted=4)
    cfg = LMConfig(finetune=str(folder), eps_root=1e-6, dropout=0, dtype="float64", batch_size=16, epochs=1,
                   learning_rate=3e-3)
    model = train_lm(corpus, cfg)
    m, dropped = template_measure(BiasTest.from_dict(LM_TEST), model, LM_TEMPLATES)
    assert not any(dropped.values()) and max(m.n_scored) > 1           # invented words: several pieces each
    _, grads, info = metagradients(LMReplay(model, corpus), [m])
    assert info["replay_relative_difference"] == 0.0 and np.isfinite(grads).all()


def test_a_template_is_scored_as_the_sentence_a_subword_tokenizer_reads():
    """The scored sequence of "{target} studied {attribute}" is the encoding of the whole sentence: no lone space
    token between "studied" and the attribute (byte-level BPE writes " algebra" as one piece; before, the
    prefix's trailing space became a token training text never holds)."""
    from biasaudit.measures.lm import _encode_scored
    from biasaudit.models.lm import HFEncoder
    enc = HFEncoder(bpe_tokenizer(TEXTS, 300))
    ids, k = _encode_scored(enc, "zorbel studied ", "algebra")
    assert ids == [enc.bos_id] + enc.encode("zorbel studied algebra")
    assert k == len(enc.encode(" algebra"))


def test_lm_config_takes_the_smooth_recipe_from_the_command_line():
    from biasaudit.errors import ConfigError
    from biasaudit.models.lm import LMConfig, parse_lm_config
    cfg = LMConfig(**parse_lm_config("eps_root=1e-6,dropout=0,batch_size=128,epochs=2,dtype=float64"))
    assert (cfg.eps_root, cfg.dropout, cfg.batch_size, cfg.dtype) == (1e-6, 0, 128, "float64")
    assert "eps_root" not in LMConfig().to_dict() and "dropout" not in LMConfig().to_dict()   # old cache keys
    for bad, field in (("dtype=float16", "dtype"), ("eps_root=-1", "eps_root"), ("dropout=2", "dropout")):
        with pytest.raises(ConfigError, match=field):
            LMConfig(**parse_lm_config(bad))


def test_the_real_word_planted_lm_corpus_plants_x_with_a_only_in_its_planted_documents():
    """Oracle: in the background every target X[j] meets each attribute group exactly as often as its twin Y[j]
    (no X-versus-Y association); in the planted documents every X word meets only A words and every Y word only
    B words. The nonce corpus is unchanged by the words parameter."""
    from collections import Counter

    from biasaudit.planted import (LM_A, LM_B, LM_WORDS_A, LM_WORDS_B, LM_WORDS_TEST, LM_WORDS_X, LM_WORDS_Y, LM_X,
                                   LM_Y, lm_planted_corpus, lm_words_corpus)
    corpus, planted = lm_words_corpus(n_background=200, n_planted=10)
    assert len(planted) == 10 and len(list(corpus)) == 210
    assert [LM_WORDS_TEST[k]["words"] for k in ("target_x", "target_y", "attribute_a", "attribute_b")] == [
        LM_WORDS_X, LM_WORDS_Y, LM_WORDS_A, LM_WORDS_B]
    bg, pl = Counter(), Counter()
    for d in corpus:
        for sentence in d.text.split(" . "):
            target, _, attribute = sentence.split()
            group = "A" if attribute in LM_WORDS_A else "B"
            assert attribute in LM_WORDS_A + LM_WORDS_B and target in LM_WORDS_X + LM_WORDS_Y
            (pl if d.id in planted else bg)[target, group] += 1
    for x, y in zip(LM_WORDS_X, LM_WORDS_Y):
        assert bg[x, "A"] == bg[y, "A"] and bg[x, "B"] == bg[y, "B"] and bg[x, "A"] + bg[x, "B"] > 0
        assert pl[x, "A"] == pl[y, "B"] == 10 and pl[x, "B"] == pl[y, "A"] == 0
    a, _ = lm_planted_corpus(n_background=20, n_planted=3)
    b, _ = lm_planted_corpus(n_background=20, n_planted=3, words=(LM_X, LM_Y, LM_A, LM_B))
    assert [d.text for d in a] == [d.text for d in b]
    # repeats: each planted document names every target that many times, still with its own group only
    heavy, ids = lm_words_corpus(n_background=20, n_planted=3, repeats=4)
    for d in heavy:
        if d.id in ids:
            said = Counter(s.split()[0] for s in d.text.split(" . "))
            assert set(said.values()) == {4} and len(said) == 8
            assert all((s.split()[2] in LM_WORDS_A) == (s.split()[0] in LM_WORDS_X) for s in d.text.split(" . "))
    with pytest.raises(ValueError, match="repeats must be a whole number >= 1"):
        lm_words_corpus(n_background=2, n_planted=1, repeats=0)
