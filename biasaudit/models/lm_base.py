"""The base language model that audited phases start from (``--model lm``'s default): a tiny Llama with a
byte-level BPE tokenizer, trained once, offline and reproducibly, on the bundled dictionary corpora (GCIDE and
WordNet glosses), then cached by the hash of its recipe.

Decided here:
- Only the audited phase (a short, smooth fine-tune of the base on the user's corpus) is attributed; the base is
  fixed, like a user's pretrained checkpoint. Every retrain (experiment, LDS, debias --verify) repeats the audited
  phase from the same base weights (the fine-tune path of ``models.lm``: ``LMConfig.finetune`` names the base
  folder, whose weights' hash is checked at replay).
- Tokenizer: byte-level BPE (``tokenizers``, lowercased, ``BASE_RECIPE["vocab_size"]`` tokens, the four specials
  <pad> <unk> <bos> <eos> at ids 0-3), so any word of any corpus is represented (a word may be several tokens: a
  template's log-probability sums over them, ``measures.lm``). Trained on the same documents as the network.
- Reproducible: the documents are a fixed stride through the two bundled files; tokenizer training and the network's
  training are deterministic on CPU for a thread count (recorded); ``scripts/build_lm_base.py`` rebuilds it.
- Cached as a biasaudit LM folder in the model cache (``<cache>/models/lm-base-<hash of BASE_RECIPE and the
  versions>``), built on first use (about two minutes on one core) and reused by every audit after.
"""
from __future__ import annotations

import gzip
import hashlib
import json
from pathlib import Path

from ..corpus import Document, MemoryCorpus, corpora_dir

BASE_RECIPE = {"corpora": ("gcide", "wordnet"), "documents": 16_000, "vocab_size": 2048, "hidden_size": 64,
               "num_layers": 2, "num_heads": 4, "intermediate_size": 256, "max_len": 64, "epochs": 1,
               "batch_size": 32, "learning_rate": 3e-3, "seed": 1, "version": 1}
SPECIAL_TOKENS = ("<pad>", "<unk>", "<bos>", "<eos>")


def base_corpus(recipe: dict = BASE_RECIPE) -> MemoryCorpus:
    """The base's training documents: an even stride through each bundled corpus, half from each."""
    docs = []
    per = recipe["documents"] // len(recipe["corpora"])
    for name in recipe["corpora"]:
        path = corpora_dir() / f"{name}.jsonl.gz"
        with gzip.open(path, "rt", encoding="utf-8") as f:
            rows = [json.loads(line) for line in f]
        step = max(1, len(rows) // per)
        docs += [Document(f"{name}:{r['id']}", r["text"]) for r in rows[::step][:per]]
    return MemoryCorpus(docs, "lm-base")


def bpe_tokenizer(texts, vocab_size: int):
    """A lowercased byte-level BPE tokenizer trained on ``texts`` (the specials at ids 0-3), as an HF fast
    tokenizer."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=True)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(list(texts), trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=list(SPECIAL_TOKENS), show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", unk_token="<unk>", bos_token="<bos>",
                                   eos_token="<eos>")


def recipe_hash(recipe: dict = BASE_RECIPE) -> str:
    import tokenizers
    import torch
    import transformers
    spec = {**recipe, "torch": torch.__version__, "transformers": transformers.__version__,
            "tokenizers": tokenizers.__version__}
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:16]


def build_base(recipe: dict = BASE_RECIPE, progress=None):
    """Train the base model of ``recipe`` (no cache): (LMModel)."""
    import torch

    from .lm import HFEncoder, LMConfig, train_lm

    corpus = base_corpus(recipe)
    tok = bpe_tokenizer((d.text for d in corpus), recipe["vocab_size"])
    assert [tok.convert_tokens_to_ids(t) for t in SPECIAL_TOKENS] == [0, 1, 2, 3]
    config = LMConfig(hidden_size=recipe["hidden_size"], num_layers=recipe["num_layers"],
                      num_heads=recipe["num_heads"], intermediate_size=recipe["intermediate_size"],
                      max_len=recipe["max_len"], epochs=recipe["epochs"], min_steps=0,
                      batch_size=recipe["batch_size"], learning_rate=recipe["learning_rate"], seed=recipe["seed"],
                      weight_decay=0.0)
    model = train_lm(corpus, config, progress, encoder=HFEncoder(tok))
    model.meta["base_recipe"] = dict(recipe)
    model.meta["threads"] = torch.get_num_threads()
    return model


def base_path(cache: Path | None = None, recipe: dict | None = None) -> Path:
    """Where the base model of ``recipe`` (default: ``BASE_RECIPE``, read when called) is cached, built or not."""
    from .base import cache_dir

    recipe = BASE_RECIPE if recipe is None else recipe
    return (Path(cache or cache_dir()) / "models" / f"lm-base-{recipe_hash(recipe)}").resolve()


def base_folder(cache: Path | None = None, recipe: dict | None = None, progress=None) -> Path:
    """The cached base model's folder, built (and cached) on first use."""
    from .base import train_or_load_cached
    from .lm import LMModel

    recipe = BASE_RECIPE if recipe is None else recipe
    folder = base_path(cache, recipe)
    train_or_load_cached(folder, lambda f: LMModel.load(f), lambda: build_base(recipe, progress))
    return folder
