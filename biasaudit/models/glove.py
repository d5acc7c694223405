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
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np
import torch

from ..corpus import Corpus
from ..errors import ArtifactError, ConfigError, CorpusError
from .folder import cache_folder, read_model_folder, train_or_load_cached, write_model_folder
from ..vocab import TOKENIZER, Vocab, training_vocab
from .skipgram import Progress, _versions

FORMAT_VERSION = 1
EMBEDDINGS = ("w", "w+c")


@dataclass(frozen=True)
class GloVeConfig:
    vector_size: int = 100
    window: int = 10
    min_count: int = 5
    x_max: float = 100.0
    alpha: float = 0.75
    epochs: int = 25
    learning_rate: float = 0.05
    batch_size: int = 4096
    seed: int = 1
    embedding: str = "w"

    def __post_init__(self):
        for name in ("vector_size", "window", "min_count", "epochs", "batch_size"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ConfigError(f"GloVeConfig.{name} must be a positive integer, got {v!r}")
        if not (self.x_max > 0 and 0 < self.alpha <= 1 and self.learning_rate > 0):
            raise ConfigError("GloVeConfig: x_max > 0, 0 < alpha <= 1 and learning_rate > 0 are required")
        if self.embedding not in EMBEDDINGS:
            raise ConfigError(f"GloVeConfig.embedding must be one of {', '.join(EMBEDDINGS)}, got {self.embedding!r}")
        if not isinstance(self.seed, int) or self.seed < 0:
            raise ConfigError(f"GloVeConfig.seed must be a non-negative integer, got {self.seed!r}")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "GloVeConfig":
        unknown = set(d) - {f.name for f in fields(cls)}
        if unknown:
            raise ConfigError(f"GloVeConfig: unknown field(s) {', '.join(sorted(unknown))}")
        return cls(**d)


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
        p = np.arange(n - r)
        q = p + r
        same = chunk[p] == chunk[q]
        p, q = p[same], q[same]
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
                        merge_every: int = 20_000_000) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sparse symmetric X as (rows, cols, values) sorted by (row, col), counted in chunks."""
    from ..influence.pairs import PairSums, encode_batches

    V = len(vocab)
    sums, done = PairSums(merge_every), 0
    for batch in encode_batches(corpus, vocab):
        for part in batch.parts():
            i, j, x, _ = batch_cooccurrence(part.tokens, part.chunk, part.doc, window)
            sums.add(i * V + j, x)
        done += len(batch.ids)
        if progress:
            progress("co-occurrence", done, None)
    keys, vals = sums.result()
    return keys // V, keys % V, vals


# ------------------------------------------------------------------ model
@dataclass(frozen=True)
class GloVeModel:
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

    @property
    def index_to_key(self):
        return self.vocab.index_to_key

    @property
    def key_to_index(self):
        return self.vocab.key_to_index

    def save(self, folder: str | Path, keep_existing: bool = False) -> Path:
        """Write the model folder atomically (see ``biasaudit.models.folder``)."""
        return write_model_folder(
            folder, {"W": self.W, "C": self.C, "b": self.b, "bc": self.bc}, self.vocab,
            {"format_version": FORMAT_VERSION, "model": "glove", "config": self.config.to_dict(),
             "vocab": {"size": len(self.vocab), "min_count": self.vocab.min_count, "tokenizer": TOKENIZER},
             "embedding": {"w": "word vectors W", "w+c": "W + context vectors W~"}[self.config.embedding],
             "corpus": self.corpus, "meta": self.meta}, keep_existing=keep_existing)

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
def train_glove(corpus: Corpus, config: GloVeConfig = GloVeConfig(), progress: Progress | None = None,
                device: str = "cpu") -> GloVeModel:
    """Count co-occurrences and fit GloVe with AdaGrad (see the module docstring)."""
    from .torch_skipgram import resolve_device

    stats = corpus.scan()
    dev = resolve_device(device)
    t0 = time.perf_counter()
    vocab = training_vocab(corpus, config.min_count)
    V, dim = len(vocab), config.vector_size
    rows, cols, x = cooccurrence_matrix(corpus, vocab, config.window, progress)
    t_count = time.perf_counter() - t0
    if len(x) == 0:
        raise CorpusError(f"corpus {corpus.name!r}: no two vocabulary words co-occur; nothing to train")
    gen = torch.Generator().manual_seed(config.seed)
    W = ((torch.rand(V, dim, generator=gen) - 0.5) / dim).to(dev)
    C = ((torch.rand(V, dim, generator=gen) - 0.5) / dim).to(dev)
    b, bc = torch.zeros(V, device=dev), torch.zeros(V, device=dev)
    gW, gC, gb, gbc = torch.ones(V, dim, device=dev), torch.ones(V, dim, device=dev), torch.ones(V, device=dev), \
        torch.ones(V, device=dev)
    I = torch.as_tensor(rows, device=dev)
    J = torch.as_tensor(cols, device=dev)
    X = torch.as_tensor(x, dtype=torch.float32, device=dev)
    logX, fX = torch.log(X), weighting(X, config.x_max, config.alpha)
    lr, n = config.learning_rate, len(x)
    losses = []
    if progress:
        progress("train", 0, config.epochs)
    for epoch in range(config.epochs):
        perm = torch.randperm(n, generator=gen).to(dev)
        total = 0.0
        for s in range(0, n, config.batch_size):
            e = perm[s:s + config.batch_size]
            i, j = I[e], J[e]
            wi, cj = W[i], C[j]
            diff = (wi * cj).sum(1) + b[i] + bc[j] - logX[e]
            fdiff = fX[e] * diff
            total += float((fdiff * diff).sum()) / 2
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
        losses.append(total / n)
        if not np.isfinite(losses[-1]):
            raise CorpusError("GloVe training diverged (non-finite loss); lower --learning-rate")
        if progress:
            progress("train", epoch + 1, config.epochs)
    return GloVeModel(vocab, W.cpu().numpy(), C.cpu().numpy(), b.cpu().numpy(), bc.cpu().numpy(), config,
                      {"name": corpus.name, **stats.to_dict()},
                      {"train_seconds": round(time.perf_counter() - t0, 3), "count_seconds": round(t_count, 3),
                       "nonzero": int(n), "loss_per_epoch": [round(v, 6) for v in losses], "device": str(dev),
                       "versions": _versions()})


def train_or_load_glove(corpus: Corpus, config: GloVeConfig = GloVeConfig(), cache: Path | None = None,
                        progress: Progress | None = None, device: str = "cpu") -> tuple[GloVeModel, bool]:
    spec = {"model": "glove", "corpus": corpus.hash, "config": config.to_dict(), "tokenizer": TOKENIZER,
            "torch": torch.__version__, "format": FORMAT_VERSION}
    return train_or_load_cached(cache_folder(cache, "glove", spec), GloVeModel.load,
                                lambda: train_glove(corpus, config, progress, device))
