"""The recorded AdaGrad run of a GloVe model, replayed step by step, and the reverse (vector-Jacobian) step that
exact metagradients need (``--estimator magic``, ``biasaudit.influence.magic``).

Decided here:
- The run is a function of the config and the corpus: the counts X (checked against the hash in
  ``meta["run"]``), the initial state and each epoch's order (one seeded generator, ``initial_state``). A replay
  takes the steps with training's own ``adagrad_step``: bit for bit the saved parameters on CPU.
- Cost: each epoch's order is drawn once and kept, one int64 per non-zero count per epoch (8 bytes x nonzero x
  epochs). A forward step clones the state (8 tensors: vectors, biases and their accumulators), as the engine keeps
  checkpoints.
- Document weights enter through the counts: X_e(w) = sum_d w_d c_{d,e}, where c_{d,e} is document d's
  contribution (sum of 1/r) to the non-zero entry e; log X_e and f(X_e) are functions of it. X is read at every
  step, so the reverse pass accumulates dB/dX_e over all steps (each step's changes differentiated through the
  gathered rows and X_e, ``step_deltas``), and ``finish`` projects onto documents at the end:
  dB/dw_d = sum_e dB/dX_e c_{d,e} (one more counting pass). A step gives no per-document values of its own.
- State: (W, C, b, bc, gW, gC, gb, gbc). The measures read the family's embedding: W (``embedding="w"``), or
  W + C (``"w+c"``), so the final adjoint is dB/dE on W, and on C too for ``w+c``. Adjoints are float64 and
  updated in place (the engine never reuses an adjoint it has passed on).
"""
from __future__ import annotations

import numpy as np
import torch

from ..batches import encode_batches
from ..corpus import Corpus
from ..errors import ArtifactError, ConfigError
from .base import register_replay, replay_difference, run_record_refusal
from ..vocab import training_vocab
from .glove import (RUN_RECORD, GloVeModel, adagrad_step, batch_cooccurrence, cooccurrence_matrix, counts_hash,
                    initial_state, step_deltas, weighting)


def replay_refusal(model: GloVeModel) -> str | None:
    """Why ``model`` cannot be replayed (one line naming the alternative), or None."""
    return run_record_refusal(model.meta, "GloVe model", RUN_RECORD)


class GloVeReplay:
    """The audited model's AdaGrad run, step by step (see the module docstring)."""

    TOLERANCE = 1e-5   # largest relative difference between replayed and saved parameters that is accepted

    def __init__(self, model: GloVeModel, corpus: Corpus, device: str = "cpu"):
        why = replay_refusal(model)
        if why:
            raise ConfigError(why)
        self.model, self.config, self.record = model, model.config, model.meta["run"]
        self.corpus = corpus
        self.dev = torch.device(device)
        dtype = self.record.get("dtype")
        if dtype not in ("float32", "float64"):     # a name looked up on torch must be a dtype's
            raise ArtifactError(f"the model folder's run record (meta.run.dtype): {str(dtype)[:40]!r} is not "
                                "float32 or float64; the run cannot be replayed")
        self.dtype = getattr(torch, dtype)
        vocab = training_vocab(corpus, self.config.min_count)
        if tuple(vocab.index_to_key) != tuple(model.vocab.index_to_key):
            raise ConfigError("the corpus's vocabulary differs from the model's (another corpus?); the run cannot "
                              "be replayed")
        self.vocab = vocab
        rows, cols, x = cooccurrence_matrix(corpus, vocab, self.config.window)
        if counts_hash(rows, cols, x) != self.record.get("counts_sha256"):
            raise ConfigError("the corpus's co-occurrence counts differ from the recorded run (another corpus?); "
                              "the run cannot be replayed")
        self.keys = rows * len(vocab) + cols                            # sorted: the entries' order
        self.I, self.J = torch.as_tensor(rows, device=self.dev), torch.as_tensor(cols, device=self.dev)
        self.X = torch.as_tensor(x, dtype=self.dtype, device=self.dev)
        self.logX, self.fX = torch.log(self.X), weighting(self.X, self.config.x_max, self.config.alpha)
        self.X64 = torch.as_tensor(x, dtype=torch.float64, device=self.dev)
        state, gen = initial_state(len(vocab), self.config, self.dev, self.dtype)
        self._start = state
        n, bs = len(x), self.config.batch_size
        self.entries = []
        for _ in range(self.config.epochs):
            perm = torch.randperm(n, generator=gen).to(self.dev)
            self.entries += [perm[s:s + bs] for s in range(0, n, bs)]
        self.n_steps = len(self.entries)
        self.doc_ids = [d.id for d in corpus]
        self.n_docs = len(self.doc_ids)
        self.dX: torch.Tensor | None = None       # (n_measures, nonzero) dB/dX_e, accumulated by the reverse pass
        self.replay_difference: float | None = None

    # ---------------------------------------------------------------- forward
    def start(self) -> tuple:
        return tuple(a.clone() for a in self._start)

    def forward(self, state: tuple, t: int) -> tuple:
        """Step t of the recorded run from ``state`` (training's ``adagrad_step``, on copies)."""
        new = tuple(a.clone() for a in state)
        e = self.entries[t]
        adagrad_step(new, self.I[e], self.J[e], self.logX[e], self.fX[e], self.config.learning_rate)
        return new

    def check_final(self, state: tuple) -> float:
        """The largest relative difference between the replayed and the saved parameters (refused above
        TOLERANCE)."""
        self.replay_difference = replay_difference(
            zip(state[:4], (self.model.W, self.model.C, self.model.b, self.model.bc)), self.TOLERANCE, "parameters")
        return self.replay_difference

    # ---------------------------------------------------------------- the measure at the end
    def measure_adjoints(self, state: tuple, measures: list) -> tuple[list[float], list[tuple]]:
        """Each measure's value and gradient at the final embedding (W, or W + C), as an adjoint state."""
        W, C = state[0].double(), state[1].double()
        E = W if self.config.embedding == "w" else W + C
        values, adjoints = [], []
        for m in measures:
            values.append(m.value(E))
            g = m.gradient(E)
            adj = [g, g.clone() if self.config.embedding == "w+c" else torch.zeros_like(g)]
            adj += [torch.zeros(a.shape, dtype=torch.float64, device=a.device) for a in state[2:]]
            adjoints.append(tuple(adj))
        self.dX = torch.zeros(len(measures), len(self.X), dtype=torch.float64, device=self.dev)
        return values, adjoints

    # ---------------------------------------------------------------- reverse
    def vjp(self, state: tuple, t: int, adjoints: list[tuple]) -> tuple[list[tuple], list[tuple]]:
        """Pull each adjoint of the state after step t back to the state before it (in place), accumulating
        dB/dX_e of the step's entries; the per-document values come in ``finish``."""
        e = self.entries[t]
        i, j = self.I[e], self.J[e]
        at = (i, j, i, j, i, j, i, j)      # the rows each part of the state is read and changed at
        none = (np.zeros(0, np.int64), np.zeros(0))
        with torch.enable_grad():
            rows = tuple(a[r].double().requires_grad_(True) for a, r in zip(state, at))
            x = self.X64[e].clone().requires_grad_(True)
            deltas = step_deltas(rows, x, self.config.learning_rate, self.config.x_max, self.config.alpha)
            for k, adj in enumerate(adjoints):
                grads = torch.autograd.grad(deltas, rows + (x,), grad_outputs=tuple(a[r] for a, r in zip(adj, at)),
                                            retain_graph=k < len(adjoints) - 1)
                for a, r, g in zip(adj, at, grads):
                    a.index_add_(0, r, g)
                self.dX[k].index_add_(0, e, grads[-1])
        return adjoints, [none] * len(adjoints)

    def finish(self, grads: np.ndarray) -> None:
        """Add dB/dw_d = sum_e dB/dX_e c_{d,e} to ``grads`` (n_measures, n_docs), counting each document's
        contributions c_{d,e} again."""
        dX = self.dX.cpu().numpy()
        V, off = len(self.vocab), 0
        for batch in encode_batches(self.corpus, self.vocab):
            for part in batch.parts():
                r, c, v, d = batch_cooccurrence(part.tokens, part.chunk, part.doc, self.config.window)
                e = np.searchsorted(self.keys, r * V + c)
                for k in range(len(dX)):
                    grads[k] += np.bincount(d + off, weights=v * dX[k, e], minlength=self.n_docs)
            off += len(batch.ids)


GloVeReplay.refusal = staticmethod(replay_refusal)
register_replay("glove", GloVeReplay)
