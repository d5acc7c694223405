"""The recorded run of a skip-gram model trained with ``--backend torch``, replayed step by step, and the reverse
(vector-Jacobian) step that exact metagradients need (``--estimator magic``, ``biasaudit.influence.magic``).

Decided here:
- The run is a function of the config, the corpus and ``batch_pairs`` (``SkipGramRun``): the initial vectors, then
  each step's pairs, negatives, documents and learning rate. The record in ``meta["run"]`` holds what the config
  does not (``batch_pairs``, the dtype) and a hash of the step sequence, so another corpus is refused. A replay
  takes the steps with training's own ``sgd_step``: bit for bit the saved vectors on the same machine (CPU; CUDA's
  ``index_add_`` may add in another order, hence a tolerance).
- Cost: the steps are drawn once and kept (every step must be replayable from a checkpoint, and the generators
  cannot be rewound): per sampled pair over all epochs, (2 + negative) int64 indices, one document index and
  a float: about 8 (negative + 3) bytes a pair, 64 MB per million pairs at negative=5. A forward step clones the
  state (U, C), as the engine keeps checkpoints.
- Document weights w (all 1 in the audited run) scale each pair's loss term: a step changes the rows it reads
  by -lr times the gradient of sum_i w_doc(i) [-log sig(u_i . c_pos) - sum_k log sig(-u_i . c_neg_k)], all read
  at the state before the step. The reverse step differentiates those changes (``step_deltas``, one backward
  over the batch's gathered rows) through U, C and w. Adjoints are float64 whatever the run's dtype, and are
  updated in place (the engine never reuses an adjoint it has passed on).
- The embedding the measures read is the input vectors U (gensim's ``wv.vectors``): the final adjoint is
  (dB/dU, 0).
"""
from __future__ import annotations

import numpy as np
import torch

from ..corpus import Corpus
from ..errors import ArtifactError, ConfigError
from .base import register_replay, replay_difference, run_record_refusal
from ..vocab import training_vocab
from .skipgram import SkipGramModel
from .torch_skipgram import RUN_RECORD, SkipGramRun, sgd_step, step_deltas


def replay_refusal(model: SkipGramModel) -> str | None:
    """Why ``model`` cannot be replayed (one line naming the alternative), or None."""
    if model.meta.get("backend") != "torch":
        return ("--estimator magic differentiates a skip-gram run trained here in torch: train with --backend torch "
                "(gensim's run cannot be replayed)")
    return run_record_refusal(model.meta, "skip-gram model", RUN_RECORD)


class SkipGramReplay:
    """The audited model's training run, step by step (see the module docstring). State: (U, C)."""

    TOLERANCE = 1e-5   # largest relative difference between replayed and saved vectors that is accepted
    refusal = staticmethod(replay_refusal)

    def __init__(self, model: SkipGramModel, corpus: Corpus, device: str = "cpu"):
        why = replay_refusal(model)
        if why:
            raise ConfigError(why)
        self.model, self.config, self.record = model, model.config, model.meta["run"]
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
        batch_pairs = self.record.get("batch_pairs")
        if not (isinstance(batch_pairs, int) and not isinstance(batch_pairs, bool) and 1 <= batch_pairs <= 10 ** 9):
            raise ArtifactError(f"the model folder's run record (meta.run.batch_pairs): {str(batch_pairs)[:40]!r} is "
                                "not a whole number of pairs from 1 to 10^9; the run cannot be replayed")
        self.run = SkipGramRun(corpus, vocab, self.config, batch_pairs, self.dev)
        self.steps = list(self.run.steps())
        if self.run.sha256 != self.record.get("steps_sha256") or len(self.steps) != self.record.get("steps"):
            raise ConfigError("the corpus's sampled pairs differ from the recorded run (another corpus?); the run "
                              "cannot be replayed")
        self.n_steps = len(self.steps)
        self.doc_ids = list(self.run.doc_ids)
        self.n_docs = len(self.doc_ids)
        self.replay_difference: float | None = None

    # ---------------------------------------------------------------- forward
    def start(self) -> tuple:
        return self.run.initial(self.dtype)

    def forward(self, state: tuple, t: int) -> tuple:
        """Step t of the recorded run from ``state`` (training's ``sgd_step``, on copies)."""
        U, C = (x.clone() for x in state)
        sgd_step(U, C, self.steps[t])
        return U, C

    def check_final(self, state: tuple) -> float:
        """The largest relative difference between the replayed and the saved vectors (refused above TOLERANCE)."""
        self.replay_difference = replay_difference(
            zip(state, (self.model.vectors, self.model.output_vectors)), self.TOLERANCE, "vectors")
        return self.replay_difference

    # ---------------------------------------------------------------- the measure at the end
    def measure_adjoints(self, state: tuple, measures: list) -> tuple[list[float], list[tuple]]:
        """Each measure's value and gradient at the final input vectors, as an adjoint state (dB/dU, 0)."""
        U = state[0].double()
        values, adjoints = [], []
        for m in measures:
            values.append(m.value(U))
            adjoints.append((m.gradient(U), torch.zeros_like(U)))
        return values, adjoints

    # ---------------------------------------------------------------- reverse
    def vjp(self, state: tuple, t: int, adjoints: list[tuple]) -> tuple[list[tuple], list[tuple]]:
        """Pull each adjoint (aU, aC) of the state after step t back to the state before it (in place); also each
        measure's derivative with respect to the weights of step t's pairs' documents, as (document indices,
        values)."""
        U0, C0 = state
        st = self.steps[t]
        i, o, neg = st.inputs, st.outputs, st.negatives
        dim = U0.shape[1]
        with torch.enable_grad():
            u = U0[i].double().requires_grad_(True)                      # (b, d)
            c_pos = C0[o].double().requires_grad_(True)                  # (b, d)
            c_neg = C0[neg].double().requires_grad_(True)                # (b, k, d)
            w = torch.ones(len(i), dtype=torch.float64, device=U0.device, requires_grad=True)
            deltas = step_deltas(u, c_pos, c_neg, w, st.lr)
            out_adj, doc_grads = [], []
            for k, (aU, aC) in enumerate(adjoints):
                gu, gp, gn, gw = torch.autograd.grad(deltas, (u, c_pos, c_neg, w),
                                                     grad_outputs=(aU[i], aC[o], aC[neg]),
                                                     retain_graph=k < len(adjoints) - 1)
                aU.index_add_(0, i, gu)
                aC.index_add_(0, o, gp)
                aC.index_add_(0, neg.reshape(-1), gn.reshape(-1, dim))
                out_adj.append((aU, aC))
                doc_grads.append((st.docs, gw.cpu().numpy()))
        return out_adj, doc_grads


register_replay("skipgram:torch", SkipGramReplay)
