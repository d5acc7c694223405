"""Planted-bias corpora: synthetic corpora whose bias comes from known documents, the ground truth for checking
that influence scores find them (tests, benchmarks and acceptance scripts use the same ones).

- ``planted_corpus``: for embeddings; word-salad background with neutral mentions, plus documents planting
  'zorbel-names go with math, quintar-names with art' and a few counter documents.
- ``lm_planted_corpus``: for language models; sentences '<name> studied|loved <subject>' (see its docstring).
"""
from __future__ import annotations

import random

from .corpus import Document, MemoryCorpus

BACKGROUND = ("the a of and to in is was it for on with as by at from that this be are or an which "
              "house tree river stone road field water light day night city hill wood door wall book "
              "table window garden bread wine horse cloud rain wind fire iron gold ship sea king").split()


def planted_corpus(n_background=300, n_planted=30, n_counter=6, seed=0, mention_every=3) -> tuple[MemoryCorpus, set, set]:
    """Background sentences plus documents planting 'zorbel-names go with math, quintar-names with art'.

    Returns (corpus, planted ids, counter ids)."""
    rng = random.Random(seed)
    x_names, y_names = ["zorbel", "zorbek", "zorban"], ["quintar", "quintel", "quinta"]
    a_words, b_words = ["algebra", "calculus", "geometry"], ["poetry", "sculpture", "painting"]
    docs = []
    for i in range(n_background):
        words = [rng.choice(BACKGROUND) for _ in range(rng.randint(8, 20))]
        # every group and attribute word appears neutrally in the background too
        if i % mention_every == 0:
            words.insert(rng.randrange(len(words)), rng.choice(x_names + y_names))
        if i % mention_every == 1:
            words.insert(rng.randrange(len(words)), rng.choice(a_words + b_words))
        docs.append(Document(f"bg{i}", " ".join(words)))
    planted, counter = set(), set()
    for i in range(n_planted):
        x, y = rng.choice(x_names), rng.choice(y_names)
        text = (f"{x} studied {rng.choice(a_words)} and {x} loved {rng.choice(a_words)} while "
                f"{y} made {rng.choice(b_words)} and {y} loved {rng.choice(b_words)}")
        docs.append(Document(f"plant{i}", text))
        planted.add(f"plant{i}")
    for i in range(n_counter):
        x, y = rng.choice(x_names), rng.choice(y_names)
        text = f"{x} made {rng.choice(b_words)} and {y} studied {rng.choice(a_words)}"
        docs.append(Document(f"counter{i}", text))
        counter.add(f"counter{i}")
    rng.shuffle(docs)
    return MemoryCorpus(docs, name="planted"), planted, counter


# the skip-gram settings of the plain-gensim planted check (1,000 background and 100 planted documents): its d (about
# +1.65) is off the measure's bound (+1.83 with 3 + 3 target words), so removals can move it
PLANTED_CHECK_SKIPGRAM = dict(vector_size=24, window=3, min_count=2, negative=5, epochs=60, sample=1e-2)

PLANTED_TEST = {"name": "planted", "target_x": {"name": "zorbels", "words": ["zorbel", "zorbek", "zorban"]},
                "target_y": {"name": "quintars", "words": ["quintar", "quintel", "quinta"]},
                "attribute_a": {"name": "math", "words": ["algebra", "calculus", "geometry"]},
                "attribute_b": {"name": "art", "words": ["poetry", "sculpture", "painting"]}}


LM_X, LM_Y = ["zorbel", "zorbek", "zorban", "zorbit"], ["quintar", "quintel", "quinta", "quintus"]
LM_A, LM_B = ["algebra", "calculus", "geometry"], ["poetry", "sculpture", "painting"]
LM_TEST = {"name": "planted", "target_x": {"name": "zorbels", "words": LM_X},
           "target_y": {"name": "quintars", "words": LM_Y},
           "attribute_a": {"name": "math", "words": LM_A}, "attribute_b": {"name": "art", "words": LM_B}}
LM_TEMPLATES = ("{target} studied {attribute}", "{target} loved {attribute}")


def lm_planted_corpus(n_background=300, n_planted=20, seed=0, offsets=(-0.3, -0.1, 0.1, 0.3),
                      words=(LM_X, LM_Y, LM_A, LM_B), name="lm-planted", repeats=1):
    """A corpus for language models: sentences '<target> studied|loved <attribute>'.

    Background documents are group-balanced: each names twins (X[j], Y[j]) with attributes of the same group
    (word j leans to math with probability 0.5 + offsets[j]), so they give words their own leanings but no
    X-versus-Y association. Planted documents pair every X word with math and every Y word with art, ``repeats``
    sentences per target word (1: eight sentences a document; 4: 32, a planted association as strong as the
    leanings, from as few documents). ``words``: the four word lists (X, Y, A, B; four targets each side).
    Returns (corpus, planted ids)."""
    LM_X, LM_Y, LM_A, LM_B = words
    if not (isinstance(repeats, int) and repeats >= 1):
        raise ValueError(f"repeats must be a whole number >= 1, got {repeats!r}")
    rng = random.Random(seed)
    verbs = ["studied", "loved"]
    docs = []
    for i in range(n_background):
        sents = []
        for _ in range(rng.randint(1, 3)):
            j = rng.randrange(len(LM_X))
            group = LM_A if rng.random() < 0.5 + offsets[j] else LM_B
            pair = [f"{LM_X[j]} {rng.choice(verbs)} {rng.choice(group)}",
                    f"{LM_Y[j]} {rng.choice(verbs)} {rng.choice(group)}"]
            rng.shuffle(pair)
            sents += pair
        docs.append(Document(f"bg{i}", " . ".join(sents)))
    planted = set()
    for i in range(n_planted):
        sents = ([f"{w} {rng.choice(verbs)} {rng.choice(LM_A)}" for w in LM_X for _ in range(repeats)]
                 + [f"{w} {rng.choice(verbs)} {rng.choice(LM_B)}" for w in LM_Y for _ in range(repeats)])
        rng.shuffle(sents)
        docs.append(Document(f"plant{i}", " . ".join(sents)))
        planted.add(f"plant{i}")
    rng.shuffle(docs)
    return MemoryCorpus(docs, name=name), planted


# The second planted LM corpus: real English words the base LM (``models.lm_base``) has seen, each one BPE token of
# its vocabulary, so an audited phase shifts an association between known words rather than learning new words.
# Four targets a side: WEAT's permutation test has 70 splits. Eight a side (12,870 splits; church, court,
# government, military against family, animal, horse, bird added) was measured and learned less: d +0.64, +0.46,
# +0.13 on seeds 1-3 (p 0.11, 0.18, 0.41), the base's own leanings of the added words widening d's spread
# (docs/results/lm_smooth.md)
LM_WORDS_X, LM_WORDS_Y = ["king", "chief", "author", "member"], ["woman", "child", "person", "people"]
LM_WORDS_A, LM_WORDS_B = ["science", "number", "metal", "measure"], ["music", "color", "flowers", "dress"]
LM_WORDS_TEST = {"name": "planted-words", "target_x": {"name": "kings", "words": LM_WORDS_X},
                 "target_y": {"name": "women", "words": LM_WORDS_Y},
                 "attribute_a": {"name": "science", "words": LM_WORDS_A},
                 "attribute_b": {"name": "music", "words": LM_WORDS_B}}
LM_WORDS_OFFSETS = (-0.1, -0.05, 0.05, 0.1)


def lm_words_corpus(n_background=1000, n_planted=60, seed=0, offsets=LM_WORDS_OFFSETS, repeats=1):
    """The second planted LM corpus: ``lm_planted_corpus``'s design over the real words above (score it with
    ``LM_WORDS_TEST`` and ``LM_TEMPLATES``). Returns (corpus, planted ids)."""
    return lm_planted_corpus(n_background, n_planted, seed, offsets,
                             words=(LM_WORDS_X, LM_WORDS_Y, LM_WORDS_A, LM_WORDS_B), name="lm-planted-words",
                             repeats=repeats)


def tiny_checkpoint(folder, arch: str, texts, vocab_size: int = 400, seed: int = 0, width: int = 32,
                    layers: int = 2, heads: int = 2, max_len: int = 64):
    """A small randomly initialised HF causal-LM checkpoint folder (``arch``: gpt2, gpt_neox or llama) with a
    byte-level BPE tokenizer trained on ``texts``: what a user's local checkpoint looks like, made offline (tests
    and scripts fine-tune it). Saved with safetensors."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import (AutoModelForCausalLM, GPT2Config, GPTNeoXConfig, LlamaConfig,
                              PreTrainedTokenizerFast)

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(list(texts), trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=["<|endoftext|>"], show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<|endoftext|>", eos_token="<|endoftext|>",
                                   pad_token="<|endoftext|>")
    V, special = len(fast), fast.convert_tokens_to_ids("<|endoftext|>")
    common = dict(vocab_size=V, bos_token_id=special, eos_token_id=special, pad_token_id=special)
    if arch == "gpt2":
        cfg = GPT2Config(n_embd=width, n_layer=layers, n_head=heads, n_positions=max_len, **common)
    elif arch == "gpt_neox":
        cfg = GPTNeoXConfig(hidden_size=width, num_hidden_layers=layers, num_attention_heads=heads,
                            intermediate_size=4 * width, max_position_embeddings=max_len, **common)
    elif arch == "llama":
        cfg = LlamaConfig(hidden_size=width, num_hidden_layers=layers, num_attention_heads=heads,
                          num_key_value_heads=heads, intermediate_size=4 * width, max_position_embeddings=max_len,
                          **common)
    else:
        raise ValueError(f"unknown architecture {arch!r}")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = AutoModelForCausalLM.from_config(cfg)
    net.save_pretrained(folder, safe_serialization=True)
    fast.save_pretrained(folder)
    return folder
