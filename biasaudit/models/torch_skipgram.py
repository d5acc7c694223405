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

import hashlib
import time
from dataclasses import dataclass
from typing import Iterator

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


def _epoch_pairs(tokens: np.ndarray, chunk: np.ndarray, doc: np.ndarray, keep_p: np.ndarray, window: int,
                 shrink: bool, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One epoch's sampled (input = context word, output = centre word) pairs of a batch of documents, with each
    pair's document (pairs never cross a chunk, so never a document)."""
    kept = rng.random(len(tokens)) < keep_p[tokens]
    t, ch, dc = tokens[kept], chunk[kept], doc[kept]
    n = len(t)
    b = rng.integers(1, window + 1, size=n) if shrink else np.full(n, window)
    ins, outs, docs = [], [], []
    for r in range(1, window + 1):
        if r >= n:
            break
        p, q = same_chunk_positions(ch, r)
        # centre p, context q (q within p's window) and centre q, context p
        m1 = b[p] >= r
        m2 = b[q] >= r
        ins += [t[q[m1]], t[p[m2]]]
        outs += [t[p[m1]], t[q[m2]]]
        docs += [dc[p[m1]], dc[p[m2]]]
    if not ins:
        z = np.zeros(0, np.int64)
        return z, z, z
    return np.concatenate(ins), np.concatenate(outs), np.concatenate(docs)


@dataclass
class Step:
    """One minibatch of the run: what a step reads besides the vectors."""
    inputs: torch.Tensor      # (b,) context words (rows of U)
    outputs: torch.Tensor     # (b,) centre words (rows of C)
    negatives: torch.Tensor   # (b, negative) noise words (rows of C)
    docs: np.ndarray          # (b,) corpus index of each pair's document
    lr: float


class SkipGramRun:
    """The random draws of a torch skip-gram run, as a function of (corpus, vocab, config, batch_pairs): the
    initial vectors (torch CPU generator) and the sequence of ``Step``s (numpy generator: subsampling, windows,
    order; torch generator on the device: negatives). Training and replay both read it, so a replay takes the same
    steps by construction. ``sha256`` (after ``steps`` is exhausted): a hash of every step's pairs and documents."""

    def __init__(self, corpus: Corpus, vocab, config: SkipGramConfig, batch_pairs: int | None, dev):
        self.corpus, self.vocab, self.config, self.dev = corpus, vocab, config, dev
        self.keep_p = keep_probabilities(vocab.counts, config.sample)
        # the expected number of retained tokens per epoch drives the linear learning-rate decay, as in gensim
        self.total = float(config.epochs * np.sum(vocab.counts * self.keep_p))
        if batch_pairs is None:
            # expected pairs per epoch: 2 * sum of expected window widths per retained token
            width = (config.window + 1) / 2 if config.shrink_windows else config.window
            per_epoch = 2 * width * self.total / config.epochs
            batch_pairs = int(min(BATCH_PAIRS, max(32, per_epoch // 1000)))
        self.batch_pairs = batch_pairs
        self.doc_ids: list[str] = []
        self.sha256: str | None = None

    def initial(self, dtype=torch.float32) -> tuple[torch.Tensor, torch.Tensor]:
        """Input vectors uniform in [-0.5, 0.5) / dim, output vectors at zero."""
        V, dim = len(self.vocab), self.config.vector_size
        cpu_gen = torch.Generator().manual_seed(self.config.seed)
        U = ((torch.rand(V, dim, generator=cpu_gen, dtype=dtype) - 0.5) / dim).to(self.dev)
        return U, torch.zeros(V, dim, dtype=dtype, device=self.dev)

    def steps(self, progress: Progress | None = None) -> Iterator[Step]:
        config, dev, keep_p, k = self.config, self.dev, self.keep_p, self.config.negative
        noise = torch.as_tensor(noise_distribution(self.vocab.counts, config.ns_exponent), dtype=torch.float32,
                                device=dev)
        gen = torch.Generator(device=dev).manual_seed(config.seed)
        rng = np.random.default_rng(config.seed)
        h = hashlib.sha256()
        seen = 0.0
        if progress:
            progress("train", 0, config.epochs)
        for epoch in range(config.epochs):
            off = 0
            for batch in encode_batches(self.corpus, self.vocab):
                if epoch == 0:
                    self.doc_ids.extend(batch.ids)
                seen_before = seen
                seen += float(keep_p[batch.tokens].sum())
                ins, outs, docs = zip(*(_epoch_pairs(part.tokens, part.chunk, part.doc, keep_p, config.window,
                                                     config.shrink_windows, rng) for part in batch.parts()))
                w_in, w_out, w_doc = np.concatenate(ins), np.concatenate(outs), np.concatenate(docs) + off
                off += len(batch.ids)
                if len(w_in) == 0:
                    continue
                perm = rng.permutation(len(w_in))
                w_doc = w_doc[perm]
                for a in (w_in[perm], w_out[perm], w_doc):
                    h.update(a.tobytes())
                w_in = torch.as_tensor(w_in[perm], device=dev)
                w_out = torch.as_tensor(w_out[perm], device=dev)
                n_steps = -(-len(w_in) // self.batch_pairs)
                for s in range(n_steps):
                    frac = (seen_before + (seen - seen_before) * s / n_steps) / self.total
                    lr = max(config.min_alpha, config.alpha - (config.alpha - config.min_alpha) * frac)
                    sl = slice(s * self.batch_pairs, (s + 1) * self.batch_pairs)
                    i = w_in[sl]
                    neg = torch.multinomial(noise, len(i) * k, replacement=True, generator=gen).view(len(i), k)
                    yield Step(i, w_out[sl], neg, w_doc[sl], lr)
            if progress:
                progress("train", epoch + 1, config.epochs)
        self.sha256 = h.hexdigest()


def sgd_step(U: torch.Tensor, C: torch.Tensor, step: Step, w: torch.Tensor | None = None) -> None:
    """One minibatch of plain SGD on the pairs' summed loss, in place; ``w``: (b,) per-pair weights (None: 1)."""
    i, o, neg, lr = step.inputs, step.outputs, step.negatives, step.lr
    dim = U.shape[1]
    u, c_pos, c_neg = U[i], C[o], C[neg]                     # (b, d), (b, d), (b, k, d)
    g_pos = torch.sigmoid((u * c_pos).sum(1)) - 1            # d loss / d (u . c_pos)
    g_neg = torch.sigmoid(torch.einsum("bd,bkd->bk", u, c_neg))
    if w is not None:
        g_pos, g_neg = g_pos * w, g_neg * w[:, None]
    du = g_pos[:, None] * c_pos + torch.einsum("bk,bkd->bd", g_neg, c_neg)
    C.index_add_(0, o, -lr * g_pos[:, None] * u)
    C.index_add_(0, neg.reshape(-1), (-lr * g_neg[:, :, None] * u[:, None, :]).reshape(-1, dim))
    U.index_add_(0, i, -lr * du)


def step_deltas(u, c_pos, c_neg, w, lr: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``sgd_step``'s changes as differentiable functions of the gathered rows and the pair weights (for the
    reverse pass): (rows of U at the inputs, rows of C at the outputs, rows of C at the negatives), each -lr times
    the gradient of sum_i w_i [-log sig(u_i . c_pos) - sum_k log sig(-u_i . c_neg_k)]."""
    g_pos = (torch.sigmoid((u * c_pos).sum(1)) - 1) * w                  # (b,)
    g_neg = torch.sigmoid(torch.einsum("bd,bkd->bk", u, c_neg)) * w[:, None]   # (b, k)
    du = -lr * (g_pos[:, None] * c_pos + torch.einsum("bk,bkd->bd", g_neg, c_neg))
    return du, -lr * g_pos[:, None] * u, -lr * g_neg[:, :, None] * u[:, None, :]


RUN_RECORD = 1   # version of the run record saved in a torch skip-gram model's meta["run"]


def train_skipgram_torch(corpus: Corpus, config: SkipGramConfig = SkipGramConfig(), device: str = "cpu",
                         progress: Progress | None = None, batch_pairs: int | None = None,
                         doc_weights: np.ndarray | None = None, dtype: torch.dtype = torch.float32
                         ) -> SkipGramModel:
    """Train skip-gram on ``corpus`` in torch (see the module docstring for what matches gensim).

    ``doc_weights`` (one per document, default 1) scale each sampled pair's gradient by its document's weight,
    the draws unchanged: the weights ``--estimator magic`` differentiates. ``dtype``: float64 for checks (the
    vectors are then kept in float64; float32 by default, saved as before)."""
    corpus.scan()          # an empty corpus or repeated ids fail here, before any work
    dev = resolve_device(device)
    t0 = time.perf_counter()
    vocab = training_vocab(corpus, config.min_count)
    run = SkipGramRun(corpus, vocab, config, batch_pairs, dev)
    U, C = run.initial(dtype)
    w = None if doc_weights is None else torch.as_tensor(np.asarray(doc_weights, dtype=np.float64), dtype=dtype,
                                                          device=dev)
    n_steps = 0
    for step in run.steps(progress):
        sgd_step(U, C, step, None if w is None else w[torch.as_tensor(step.docs, device=dev)])
        n_steps += 1
    if not (torch.isfinite(U).all() and torch.isfinite(C).all()):
        raise CorpusError("torch skip-gram training diverged (non-finite vectors); lower alpha")
    keep = np.float32 if dtype == torch.float32 else np.float64
    record = {"version": RUN_RECORD, "batch_pairs": run.batch_pairs, "steps": n_steps, "steps_sha256": run.sha256,
              "dtype": str(dtype).removeprefix("torch."), "weighted": doc_weights is not None}
    return SkipGramModel(vocab, U.cpu().numpy().astype(keep), C.cpu().numpy().astype(keep), config,
                         corpus.describe(),
                         {"train_seconds": round(time.perf_counter() - t0, 3), "backend": "torch",
                          "device": str(dev), "versions": versions("gensim", "numpy", "torch"), "run": record})


TRAINERS["torch"] = lambda corpus, config, progress=None, device="cpu": train_skipgram_torch(corpus, config, device,
                                                                                           progress)
