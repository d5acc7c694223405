"""Skip-gram with negative sampling trained in torch (``--backend torch``): the same objective and sampling scheme
as gensim, on CPU or GPU.

What is the same as gensim: the vocabulary (min_count, most frequent first), frequent-word subsampling with
gensim's keep probability, reduced windows (each centre word draws its window uniformly in 1..window), the input
vector of the context word trained against the output vector of the centre word, ``negative`` noise words per pair
from unigram^0.75, plain SGD with the learning rate decaying linearly from ``alpha`` to ``min_alpha`` over the
run, input vectors initialised uniformly in [-0.5, 0.5) / dim and output vectors at zero.

What differs: pairs are updated in minibatches (``batch_pairs`` pairs summed per step, as multi-threaded gensim
does asynchronously), and random numbers come from torch, so the vectors differ from gensim's for the same seed.
Deterministic for a seed on CPU; on CUDA ``index_add_`` may add in a different order run to run.
"""
from __future__ import annotations

import time

import numpy as np
import torch

from ..batches import encode_batches, same_chunk_positions
from ..corpus import Corpus
from ..errors import CorpusError
from ..vocab import training_vocab
from .base import Progress, resolve_device, versions
from .skipgram import TRAINERS, SkipGramConfig, SkipGramModel
from .skipgram_pairs import keep_probabilities, noise_distribution

BATCH_PAIRS = 1024   # at most; small corpora use smaller minibatches (at least ~1000 steps per epoch)


def _epoch_pairs(tokens: np.ndarray, chunk: np.ndarray, keep_p: np.ndarray, window: int, shrink: bool,
                 rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """One epoch's sampled (input = context word, output = centre word) pairs of a batch of documents."""
    kept = rng.random(len(tokens)) < keep_p[tokens]
    t, ch = tokens[kept], chunk[kept]
    n = len(t)
    b = rng.integers(1, window + 1, size=n) if shrink else np.full(n, window)
    ins, outs = [], []
    for r in range(1, window + 1):
        if r >= n:
            break
        p, q = same_chunk_positions(ch, r)
        # centre p, context q (q within p's window) and centre q, context p
        m1 = b[p] >= r
        m2 = b[q] >= r
        ins += [t[q[m1]], t[p[m2]]]
        outs += [t[p[m1]], t[q[m2]]]
    if not ins:
        z = np.zeros(0, np.int64)
        return z, z
    return np.concatenate(ins), np.concatenate(outs)


def train_skipgram_torch(corpus: Corpus, config: SkipGramConfig = SkipGramConfig(), device: str = "cpu",
                         progress: Progress | None = None, batch_pairs: int | None = None) -> SkipGramModel:
    """Train skip-gram on ``corpus`` in torch (see the module docstring for what matches gensim)."""
    corpus.scan()          # an empty corpus or repeated ids fail here, before any work
    dev = resolve_device(device)
    t0 = time.perf_counter()
    vocab = training_vocab(corpus, config.min_count)
    V, dim = len(vocab), config.vector_size
    keep_p = keep_probabilities(vocab.counts, config.sample)
    noise = torch.as_tensor(noise_distribution(vocab.counts, config.ns_exponent), dtype=torch.float32, device=dev)
    gen = torch.Generator(device=dev).manual_seed(config.seed)
    cpu_gen = torch.Generator().manual_seed(config.seed)
    U = ((torch.rand(V, dim, generator=cpu_gen) - 0.5) / dim).to(dev)
    C = torch.zeros(V, dim, device=dev)
    rng = np.random.default_rng(config.seed)
    # the expected number of retained tokens per epoch drives the linear learning-rate decay, as in gensim
    total = float(config.epochs * np.sum(vocab.counts * keep_p))
    seen = 0.0
    k = config.negative
    if batch_pairs is None:
        # expected pairs per epoch: 2 * sum of expected window widths per retained token
        width = (config.window + 1) / 2 if config.shrink_windows else config.window
        per_epoch = 2 * width * total / config.epochs
        batch_pairs = int(min(BATCH_PAIRS, max(32, per_epoch // 1000)))
    if progress:
        progress("train", 0, config.epochs)
    for epoch in range(config.epochs):
        for batch in encode_batches(corpus, vocab):
            seen_before = seen
            seen += float(keep_p[batch.tokens].sum())
            ins, outs = zip(*(_epoch_pairs(part.tokens, part.chunk, keep_p, config.window, config.shrink_windows,
                                           rng) for part in batch.parts()))
            w_in, w_out = np.concatenate(ins), np.concatenate(outs)
            if len(w_in) == 0:
                continue
            perm = rng.permutation(len(w_in))
            w_in = torch.as_tensor(w_in[perm], device=dev)
            w_out = torch.as_tensor(w_out[perm], device=dev)
            n_steps = -(-len(w_in) // batch_pairs)
            for s in range(n_steps):
                frac = (seen_before + (seen - seen_before) * s / n_steps) / total
                lr = max(config.min_alpha, config.alpha - (config.alpha - config.min_alpha) * frac)
                i = w_in[s * batch_pairs:(s + 1) * batch_pairs]
                o = w_out[s * batch_pairs:(s + 1) * batch_pairs]
                neg = torch.multinomial(noise, len(i) * k, replacement=True, generator=gen).view(len(i), k)
                u, c_pos, c_neg = U[i], C[o], C[neg]                     # (b, d), (b, d), (b, k, d)
                g_pos = torch.sigmoid((u * c_pos).sum(1)) - 1            # d loss / d (u . c_pos)
                g_neg = torch.sigmoid(torch.einsum("bd,bkd->bk", u, c_neg))
                du = g_pos[:, None] * c_pos + torch.einsum("bk,bkd->bd", g_neg, c_neg)
                C.index_add_(0, o, -lr * g_pos[:, None] * u)
                C.index_add_(0, neg.reshape(-1), (-lr * g_neg[:, :, None] * u[:, None, :]).reshape(-1, dim))
                U.index_add_(0, i, -lr * du)
        if progress:
            progress("train", epoch + 1, config.epochs)
    if not (torch.isfinite(U).all() and torch.isfinite(C).all()):
        raise CorpusError("torch skip-gram training diverged (non-finite vectors); lower alpha")
    return SkipGramModel(vocab, U.cpu().numpy().astype(np.float32), C.cpu().numpy().astype(np.float32), config,
                         corpus.describe(),
                         {"train_seconds": round(time.perf_counter() - t0, 3), "backend": "torch",
                          "device": str(dev), "versions": versions("gensim", "numpy", "torch")})


TRAINERS["torch"] = lambda corpus, config, progress=None, device="cpu": train_skipgram_torch(corpus, config, device,
                                                                                           progress)
