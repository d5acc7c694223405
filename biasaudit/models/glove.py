"""GloVe-style embeddings (Pennington et al. 2014): co-occurrence counting with GloVe's conventions and weighted
least squares trained with AdaGrad in torch, CPU or GPU, deterministic for a seed on CPU.

Conventions, decided here (those of the reference implementation, glove.c / cooccur.c):
- co-occurrences: a symmetric window of ``window`` words; a pair at distance r adds 1/r to X[i, j] and to X[j, i];
  windows never cross a document (or a 10,000-token chunk of one); out-of-vocabulary tokens are removed first;
- loss J = sum over non-zero X_ij of f(X_ij) (w_i . w~_j + b_i + b~_j - log X_ij)^2 with
  f(x) = min(1, (x / x_max)^alpha), x_max = 100, alpha = 0.75;
- AdaGrad with learning rate 0.05 and squared-gradient accumulators starting at 1, vectors initialised
  uniformly in [-0.5, 0.5) / dim and biases at 0, entries visited in a fresh shuffled order each epoch
  (here in minibatches of ``batch_size`` entries whose gradients are summed, as multi-threaded glove.c does
  asynchronously);
- the embedding the bias tests read is W (``embedding="w"``) or W + W~ (``"w+c"``), recorded in the model.

Counting is vectorised per batch of documents and merged in chunks: no Python loop per token, and the corpus is
never held in memory (only the sparse counts).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch

from ..batches import corpus_pair_sums, same_chunk_positions
from ..corpus import Corpus
from ..errors import ArtifactError, ConfigError, CorpusError
from ..vocab import TOKENIZER, Vocab, training_vocab
from .base import (Config, Progress, find_replay, register, replay_refusal_of, resolve_device, setting,
                   versions)
from .embeddings import EmbeddingFamily, WordVectorModel
from .folder import read_model_folder

FORMAT_VERSION = 1
EMBEDDINGS = ("w", "w+c")


@dataclass(frozen=True)
class GloVeConfig(Config):
    """GloVe training settings (the reference implementation's names and defaults)."""
    family: ClassVar[str] = "glove"
    vector_size: int = setting(100, "Embedding dimension.")
    window: int = setting(10, "Symmetric window; a pair at distance r adds 1/r.")
    min_count: int = setting(5, "Ignore words seen fewer times.")
    x_max: float = setting(100.0, "Weighting cut-off: f(x) = min(1, (x / x_max)^alpha).")
    alpha: float = setting(0.75, "Weighting exponent.")
    epochs: int = setting(25, "Training epochs.")
    learning_rate: float = setting(0.05, "AdaGrad learning rate.")
    batch_size: int = setting(4096, "Co-occurrence entries per AdaGrad step.")
    seed: int = setting(1, "Training seed: initialisation and the order of entries.")
    embedding: str = setting("w", "The embedding the tests read: w (word vectors) or w+c (word + context vectors).")

    def __post_init__(self):
        self._positive("vector_size", "window", "min_count", "epochs", "batch_size")
        if not (self.x_max > 0 and 0 < self.alpha <= 1 and self.learning_rate > 0):
            raise ConfigError("GloVeConfig: x_max > 0, 0 < alpha <= 1 and learning_rate > 0 are required")
        if self.embedding not in EMBEDDINGS:
            raise ConfigError(f"GloVeConfig.embedding must be one of {', '.join(EMBEDDINGS)}, got {self.embedding!r}")
        self._seed()


def weighting(x: np.ndarray | torch.Tensor, x_max: float, alpha: float):
    """GloVe's f(x) = min(1, (x / x_max)^alpha), 0 at x = 0."""
    if isinstance(x, torch.Tensor):
        return torch.clamp(x / x_max, max=1.0) ** alpha
    return np.minimum(1.0, np.asarray(x, dtype=np.float64) / x_max) ** alpha


# ------------------------------------------------------------------ co-occurrence
def batch_cooccurrence(tokens: np.ndarray, chunk: np.ndarray, doc: np.ndarray, window: int,
                       inputs_mask: np.ndarray | None = None):
    """(row word, column word, 1/r weight, document) for every ordered pair within ``window`` of a batch,
    both directions; only rows flagged in ``inputs_mask`` when given."""
    n = len(tokens)
    rows, cols, vals, docs = [], [], [], []
    for r in range(1, window + 1):
        if r >= n:
            break
        p, q = same_chunk_positions(chunk, r)
        for a, b in ((p, q), (q, p)):
            if inputs_mask is not None:
                m = inputs_mask[tokens[a]]
                a, b = a[m], b[m]
            rows.append(tokens[a]); cols.append(tokens[b]); vals.append(np.full(len(a), 1.0 / r))
            docs.append(doc[a])
    if not rows:
        z = np.zeros(0, np.int64)
        return z, z, np.zeros(0), z
    return np.concatenate(rows), np.concatenate(cols), np.concatenate(vals), np.concatenate(docs)


def cooccurrence_matrix(corpus: Corpus, vocab: Vocab, window: int, progress: Progress | None = None,
                        merge_every: int = 20_000_000, doc_weights: np.ndarray | None = None
                        ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sparse symmetric X as (rows, cols, values) sorted by (row, col), counted in chunks. ``doc_weights`` (one
    per document, in corpus order): X = sum_d w_d X_d (the weights ``--estimator magic`` differentiates)."""
    if doc_weights is None:
        return corpus_pair_sums(corpus, vocab,
                                lambda part: batch_cooccurrence(part.tokens, part.chunk, part.doc, window),
                                progress, merge_every)
    weight_of = dict(zip((d.id for d in corpus), np.asarray(doc_weights, dtype=np.float64)))

    def weighted(part):
        i, j, x, d = batch_cooccurrence(part.tokens, part.chunk, part.doc, window)
        return i, j, x * np.array([weight_of[k] for k in part.ids])[d], d

    return corpus_pair_sums(corpus, vocab, weighted, progress, merge_every)


# ------------------------------------------------------------------ the loss, for cg influence
class GloVeObjective:
    """J over all parameters theta = (W, W~, b, b~) at the trained model, with Gauss-Newton products
    (PSD; equals the exact Hessian on each single-vector block) over the non-zero counts."""

    def __init__(self, model, rows, cols, x):
        cfg = model.config
        d = torch.float64
        self.W, self.C = torch.as_tensor(model.W, dtype=d), torch.as_tensor(model.C, dtype=d)
        self.I, self.J = torch.as_tensor(rows), torch.as_tensor(cols)
        self.f = torch.as_tensor(weighting(x, cfg.x_max, cfg.alpha), dtype=d)
        self.V, self.dim = self.W.shape

    def split(self, v):
        n = self.V * self.dim
        return v[:n].view(self.V, self.dim), v[n:2 * n].view(self.V, self.dim), v[2 * n:2 * n + self.V], v[2 * n + self.V:]

    def hvp(self, v: torch.Tensor) -> torch.Tensor:
        vW, vC, vb, vbc = self.split(v)
        I, J = self.I, self.J
        t = (vW[I] * self.C[J]).sum(1) + (self.W[I] * vC[J]).sum(1) + vb[I] + vbc[J]
        m = 2 * self.f * t
        hW = torch.zeros_like(vW).index_add_(0, I, m[:, None] * self.C[J])
        hC = torch.zeros_like(vC).index_add_(0, J, m[:, None] * self.W[I])
        hb = torch.zeros_like(vb).index_add_(0, I, m)
        hbc = torch.zeros_like(vbc).index_add_(0, J, m)
        return torch.cat([hW.flatten(), hC.flatten(), hb, hbc])

    def diagonal(self) -> torch.Tensor:
        I, J, f2 = self.I, self.J, 2 * self.f
        dW = torch.zeros(self.V, self.dim, dtype=self.W.dtype).index_add_(0, I, f2[:, None] * self.C[J] ** 2)
        dC = torch.zeros(self.V, self.dim, dtype=self.W.dtype).index_add_(0, J, f2[:, None] * self.W[I] ** 2)
        db = torch.zeros(self.V, dtype=self.W.dtype).index_add_(0, I, f2)
        dbc = torch.zeros(self.V, dtype=self.W.dtype).index_add_(0, J, f2)
        return torch.cat([dW.flatten(), dC.flatten(), db, dbc])


# ------------------------------------------------------------------ model
@dataclass(frozen=True, repr=False)
class GloVeModel(WordVectorModel):
    family: ClassVar[str] = "glove"
    vocab: Vocab
    W: np.ndarray            # (V, dim) word vectors
    C: np.ndarray            # (V, dim) context vectors W~
    b: np.ndarray            # (V,) word biases
    bc: np.ndarray           # (V,) context biases
    config: GloVeConfig
    corpus: dict = field(default_factory=dict)
    meta: dict = field(default_factory=dict)

    @property
    def vectors(self) -> np.ndarray:
        """The embedding the bias tests read (config.embedding)."""
        return self.W if self.config.embedding == "w" else self.W + self.C

    def save(self, folder: str | Path, keep_existing: bool = False) -> Path:
        """Write the model folder atomically (see ``biasaudit.models.folder``)."""
        return self.write_folder(folder, {"W": self.W, "C": self.C, "b": self.b, "bc": self.bc}, FORMAT_VERSION,
                                 keep_existing, embedding={"w": "word vectors W", "w+c": "W + context vectors W~"}[
                                     self.config.embedding])

    @classmethod
    def load(cls, folder: str | Path) -> "GloVeModel":
        cfg, a, vocab = read_model_folder(folder, "glove", FORMAT_VERSION, "GloVe")
        try:
            config = GloVeConfig.from_dict(cfg["config"])
        except Exception as e:
            raise ArtifactError(f"{folder}: cannot read model ({e})") from e
        if not (a["W"].shape == a["C"].shape and a["W"].shape[0] == len(vocab) == len(a["b"]) == len(a["bc"])):
            raise ArtifactError(f"{folder}: array shapes do not match the vocabulary")
        return cls(vocab, a["W"], a["C"], a["b"], a["bc"], config, cfg.get("corpus", {}), cfg.get("meta", {}))


# ------------------------------------------------------------------ training
RUN_RECORD = 1   # version of the run record saved in a GloVe model's meta["run"]


def initial_state(V: int, config: GloVeConfig, dev, dtype=torch.float32) -> tuple[tuple, torch.Generator]:
    """(W, C, b, bc, gW, gC, gb, gbc) before the first step, and the generator that then draws each epoch's order:
    vectors uniform in [-0.5, 0.5) / dim, biases 0, AdaGrad accumulators 1."""
    dim = config.vector_size
    gen = torch.Generator().manual_seed(config.seed)
    W = ((torch.rand(V, dim, generator=gen, dtype=dtype) - 0.5) / dim).to(dev)
    C = ((torch.rand(V, dim, generator=gen, dtype=dtype) - 0.5) / dim).to(dev)
    z = dict(dtype=dtype, device=dev)
    return (W, C, torch.zeros(V, **z), torch.zeros(V, **z), torch.ones(V, dim, **z), torch.ones(V, dim, **z),
            torch.ones(V, **z), torch.ones(V, **z)), gen


def adagrad_step(state: tuple, i: torch.Tensor, j: torch.Tensor, logx: torch.Tensor, fx: torch.Tensor,
                 lr: float) -> tuple[torch.Tensor, torch.Tensor]:
    """One AdaGrad step on the entries (i, j) with log X and f(X) given, in place on ``state``; returns
    (f diff, diff) per entry."""
    W, C, b, bc, gW, gC, gb, gbc = state
    wi, cj = W[i], C[j]
    diff = (wi * cj).sum(1) + b[i] + bc[j] - logx
    fdiff = fx * diff
    dwi, dcj = fdiff[:, None] * cj, fdiff[:, None] * wi
    # AdaGrad, as glove.c: step by the accumulated squares before this update, then accumulate
    W.index_add_(0, i, -lr * dwi / torch.sqrt(gW[i]))
    C.index_add_(0, j, -lr * dcj / torch.sqrt(gC[j]))
    b.index_add_(0, i, -lr * fdiff / torch.sqrt(gb[i]))
    bc.index_add_(0, j, -lr * fdiff / torch.sqrt(gbc[j]))
    gW.index_add_(0, i, dwi ** 2)
    gC.index_add_(0, j, dcj ** 2)
    gb.index_add_(0, i, fdiff ** 2)
    gbc.index_add_(0, j, fdiff ** 2)
    return fdiff, diff


def step_deltas(rows: tuple, x: torch.Tensor, lr: float, x_max: float, alpha: float) -> tuple:
    """``adagrad_step``'s changes as differentiable functions of the gathered rows (W[i], C[j], b[i], bc[j],
    gW[i], gC[j], gb[i], gbc[j]) and the counts X_e (for the reverse pass), in that order."""
    wi, cj, bi, bcj, gWi, gCj, gbi, gbcj = rows
    diff = (wi * cj).sum(1) + bi + bcj - torch.log(x)
    fdiff = weighting(x, x_max, alpha) * diff
    dwi, dcj = fdiff[:, None] * cj, fdiff[:, None] * wi
    return (-lr * dwi / torch.sqrt(gWi), -lr * dcj / torch.sqrt(gCj), -lr * fdiff / torch.sqrt(gbi),
            -lr * fdiff / torch.sqrt(gbcj), dwi ** 2, dcj ** 2, fdiff ** 2, fdiff ** 2)


def counts_hash(rows: np.ndarray, cols: np.ndarray, x: np.ndarray) -> str:
    import hashlib

    h = hashlib.sha256()
    for a in (rows, cols, x):
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


def train_glove(corpus: Corpus, config: GloVeConfig = GloVeConfig(), progress: Progress | None = None,
                device: str = "cpu", doc_weights: np.ndarray | None = None,
                dtype: torch.dtype = torch.float32) -> GloVeModel:
    """Count co-occurrences and fit GloVe with AdaGrad (see the module docstring). ``doc_weights`` (one per
    document, default 1) weigh each document's counts, X = sum_d w_d X_d: the weights ``--estimator magic``
    differentiates. ``dtype``: float64 for checks."""
    corpus.scan()          # an empty corpus or repeated ids fail here, before any work
    dev = resolve_device(device)
    t0 = time.perf_counter()
    vocab = training_vocab(corpus, config.min_count)
    V = len(vocab)
    rows, cols, x = cooccurrence_matrix(corpus, vocab, config.window, progress, doc_weights=doc_weights)
    t_count = time.perf_counter() - t0
    if len(x) == 0:
        raise CorpusError(f"corpus {corpus.name!r}: no two vocabulary words co-occur; nothing to train")
    state, gen = initial_state(V, config, dev, dtype)
    I = torch.as_tensor(rows, device=dev)
    J = torch.as_tensor(cols, device=dev)
    X = torch.as_tensor(x, dtype=dtype, device=dev)
    # a pair whose weighted count is 0 (its documents weighed 0: --mode masked) keeps its place in the run and
    # contributes nothing (f(0) = 0; its log taken as 0, never -inf)
    logX = torch.log(X) if doc_weights is None else torch.where(X > 0, torch.log(X.clamp_min(1e-300)), 0.0)
    fX = weighting(X, config.x_max, config.alpha)
    lr, n = config.learning_rate, len(x)
    losses = []
    if progress:
        progress("train", 0, config.epochs)
    for epoch in range(config.epochs):
        perm = torch.randperm(n, generator=gen).to(dev)
        total = 0.0
        for s in range(0, n, config.batch_size):
            e = perm[s:s + config.batch_size]
            fdiff, diff = adagrad_step(state, I[e], J[e], logX[e], fX[e], lr)
            total += float((fdiff * diff).sum()) / 2
        losses.append(total / n)
        if not np.isfinite(losses[-1]):
            raise CorpusError("GloVe training diverged (non-finite loss); lower --learning-rate")
        if progress:
            progress("train", epoch + 1, config.epochs)
    W, C, b, bc = (a.cpu().numpy() for a in state[:4])
    record = {"version": RUN_RECORD, "dtype": str(dtype).removeprefix("torch."), "weighted": doc_weights is not None,
              "counts_sha256": counts_hash(rows, cols, x)}
    return GloVeModel(vocab, W, C, b, bc, config, corpus.describe(),
                      {"train_seconds": round(time.perf_counter() - t0, 3), "count_seconds": round(t_count, 3),
                       "nonzero": int(n), "loss_per_epoch": [round(v, 6) for v in losses], "device": str(dev),
                       "versions": versions("gensim", "numpy", "torch"), "run": record})


class GloVeFamily(EmbeddingFamily):
    name = "glove"
    label = "GloVe"
    config_type = GloVeConfig
    model_type = GloVeModel
    options = frozenset({"vector_size", "window", "min_count", "epochs", "seed", "embedding"})
    default_estimator = "block"
    replays = True
    modes = ("scratch", "masked")
    objective_kind = "counts"

    def retrain_weighted(self, full, config, weights) -> GloVeModel:
        """``--mode masked``: the baseline's run (its vocabulary, nonzero pairs and their order) with each
        document's counts weighted (0: removed, e: e copies)."""
        return train_glove(full, config, doc_weights=weights)

    def train(self, corpus, config, progress=None, device="cpu") -> GloVeModel:
        return train_glove(corpus, config, progress, device)

    def cache_spec(self, corpus_hash: str, config: GloVeConfig) -> dict:
        return {"model": "glove", "corpus": corpus_hash, "config": config.to_dict(), "tokenizer": TOKENIZER,
                "torch": torch.__version__, "format": FORMAT_VERSION}

    def describe(self, config: GloVeConfig) -> str:
        return "GloVe"

    def replay(self, model, corpus, device: str = "cpu"):
        """The model's recorded AdaGrad run (``--estimator magic``); refused in one line where there is none."""
        return find_replay("glove", model, corpus, device)

    def replay_refusal(self, model) -> str | None:
        return replay_refusal_of("glove", model)


FAMILY = register(GloVeFamily())
