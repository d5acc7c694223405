"""The recorded training run of an LM trained here, replayed step by step, and the reverse (vector-Jacobian) step
that exact metagradients need (``--estimator magic``, ``biasaudit.influence.magic``).

Decided here:
- The run is a function of the saved config, the saved tokenizer and the corpus: the initial network (the seed's
  draw, or the fine-tuned checkpoint, whose hash is checked), each step's examples (``run_batches``), its learning
  rate (``Schedule``) and its dropout draws (the global generator seeded by ``step_seed`` before each step). The
  record in ``meta["run"]`` holds what the config does not (optimizer constants, a hash of the batch order, the
  thread count). A replay runs the training's own optimizer (torch's AdamW, or ``RootAdam``: Adam with epsilon
  inside the root, the smooth recipe) on the same inputs, so it reproduces the saved weights bit for bit
  on the same machine and thread count; the final weights are compared with the saved ones, and a replay that does
  not reach them is refused (a different thread count can change the last bits: the tolerance is stated).
- Document weights w (all 1 in the audited run) multiply each document's per-example losses inside the step's
  loss, with the batches unchanged: L_t(theta, w) = sum_i w_doc(i) l_i(theta) / tokens_t. The reverse step
  differentiates one update through theta_t, its moments and w: AdamW written out in torch (decoupled weight
  decay, bias-corrected moments, eps added to the corrected root), or ``adam_root_update`` itself (the function
  the training step calls). Its constants are the forward optimizer's, checked against the record
  (``recorded_constants``).
- State: (parameters, first moments, second moments), each a list aligned with ``net.named_parameters()``.
"""
from __future__ import annotations

import hashlib
import math

import numpy as np
import torch

from ..corpus import Corpus
from ..errors import ArtifactError, ConfigError
from .base import register_replay, replay_difference, run_record_refusal
from .lm import (RUN_RECORD, LMModel, Schedule, _dtype, adam_root_update, checkpoint_hash, dropout_active, initial_net,
                 make_examples, make_optimizer, replayable_attention, run_batches, step_seed)
from .lm_steps import batch_tokens, pieces, step_backward, weighted_batch_loss


class _Bound:
    """The network called with given parameter tensors (torch.func.functional_call), for double backward."""

    def __init__(self, net, params: dict):
        self.net, self.params = net, params

    def __call__(self, **kwargs):
        return torch.func.functional_call(self.net, self.params, (), kwargs)


def replay_refusal(model) -> str | None:
    """Why ``model`` cannot be replayed (one line naming the alternative), or None."""
    if model.config is None:
        return ("a foreign checkpoint has no recorded training run to differentiate; fine-tune it here "
                "(--checkpoint DIR --finetune) to audit it with --estimator magic")
    return run_record_refusal(model.meta, "LM", RUN_RECORD)


def _a_number(x) -> bool:
    """A finite JSON number that a float holds (a 400-digit integer overflows float(): not one)."""
    if not isinstance(x, (int, float)) or isinstance(x, bool):
        return False
    try:
        return math.isfinite(float(x))
    except OverflowError:
        return False


def recorded_constants(run: dict, defaults: dict) -> tuple[tuple[float, float], float]:
    """The optimizer's (betas, eps) as the forward replay uses them (``defaults``: its optimizer's), checked against
    the run record: a malformed or different value is refused in one line (the reverse step must differentiate the
    update the forward replay took, and the replay is checked only against the saved weights)."""
    want_betas, want_eps = tuple(float(b) for b in defaults["betas"]), float(defaults["eps"])
    betas, eps = run.get("betas"), run.get("eps")
    where = "the model folder's biasaudit.json, meta.run"
    if not (isinstance(betas, (list, tuple)) and len(betas) == 2 and all(_a_number(b) for b in betas)):
        raise ArtifactError(f"{where}.betas: expected two numbers, got {str(betas)[:60]!r}; the run cannot be replayed")
    if not _a_number(eps):
        raise ArtifactError(f"{where}.eps: expected a number, got {str(eps)[:60]!r}; the run cannot be replayed")
    if tuple(float(b) for b in betas) != want_betas or float(eps) != want_eps:
        raise ArtifactError(f"{where}: betas {list(betas)} and eps {eps} differ from the optimizer this model was "
                            f"trained with (betas {list(want_betas)}, eps {want_eps}); the record was edited or made "
                            "by another biasaudit, and the run cannot be replayed")
    want_kind = "adam-eps-root" if "eps_root" in defaults else "adamw"
    if run.get("optimizer") != want_kind or run.get("eps_root", None) != defaults.get("eps_root", None):
        raise ArtifactError(f"{where}: optimizer {str(run.get('optimizer'))[:40]!r} (eps_root "
                            f"{str(run.get('eps_root'))[:40]}) differs from what the config trains with ({want_kind}"
                            f"{', eps_root ' + str(defaults['eps_root']) if 'eps_root' in defaults else ''}); the run "
                            "cannot be replayed")
    return want_betas, want_eps


class LMReplay:
    """The audited model's training run, step by step (see the module docstring)."""

    TOLERANCE = 1e-5   # largest relative difference between replayed and saved weights that is accepted

    def __init__(self, model: LMModel, corpus: Corpus, device: str = "cpu"):
        why = replay_refusal(model)
        if why:
            raise ConfigError(why)
        self.model, self.config, self.run = model, model.config, model.meta["run"]
        if self.config.finetune and model.meta.get("checkpoint_sha256") not in (None,
                                                                                checkpoint_hash(self.config.finetune)):
            raise ConfigError(f"{self.config.finetune}: the checkpoint changed since this model was fine-tuned from "
                              "it; its run cannot be replayed")
        self.dev = torch.device(device)
        self.ex = make_examples(corpus, model.encoder, self.config.max_len)
        self.schedule = Schedule.of(self.config, len(self.ex.ids))
        self.batches = list(run_batches(self.ex, self.config, self.schedule))
        h = hashlib.sha256()
        for idx in self.batches:
            h.update(np.asarray(idx, dtype=np.int64).tobytes())
        if h.hexdigest() != self.run.get("batches_sha256") or len(self.batches) != self.run.get("steps"):
            raise ConfigError("the corpus's examples or batch order differ from the recorded run (another corpus "
                              "or tokenizer?); the run cannot be replayed")
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.config.seed)
            self.net, _ = initial_net(self.config, model.encoder, self.dev)
        self.names = [n for n, _ in self.net.named_parameters()]
        self.opt, _ = make_optimizer(self.net, self.config, self.schedule)
        # one source for the optimizer's constants: the forward replay's optimizer; the reverse step reads the same
        # numbers, and a record that names others (edited, or from another biasaudit) is refused
        self.betas, self.eps = recorded_constants(self.run, self.opt.defaults)
        self.params = list(self.net.parameters())
        self.n_steps = len(self.batches)
        self.n_docs = len(self.ex.doc_ids)
        self.doc_ids = self.ex.doc_ids
        self.pad = model.encoder.pad_id
        self.dtype = _dtype(self.config)
        self.replay_difference: float | None = None

    # ---------------------------------------------------------------- forward
    def start(self) -> tuple:
        p = [q.detach().clone() for q in self.params]
        return (p, [torch.zeros_like(q) for q in p], [torch.zeros_like(q) for q in p])

    def forward(self, state: tuple, t: int) -> tuple:
        """One optimizer step of the recorded run from ``state`` (torch's AdamW: bit for bit the training's)."""
        P, M, V = state
        with torch.no_grad():
            for p, x in zip(self.params, P):
                p.copy_(x)
        for p, m, v in zip(self.params, M, V):
            self.opt.state[p] = {"step": torch.tensor(float(t), dtype=torch.float32),
                                 "exp_avg": m.clone(), "exp_avg_sq": v.clone()}
        for g in self.opt.param_groups:
            g["lr"] = g["initial_lr"] * self.schedule.factor(t) if "initial_lr" in g else \
                self.config.learning_rate * self.schedule.factor(t)
        self.net.train(dropout_active(self.config))
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(step_seed(self.config.seed, t))
            with replayable_attention():
                self.opt.zero_grad(set_to_none=True)
                step_backward(self.net, self.ex, self.batches[t], self.pad, self.dev,
                              micro_batch=self.config.micro_batch)
        self.opt.step()
        out = ([p.detach().clone() for p in self.params],
               [self.opt.state[p]["exp_avg"].clone() for p in self.params],
               [self.opt.state[p]["exp_avg_sq"].clone() for p in self.params])
        self.opt.state.clear()
        return out

    def check_final(self, state: tuple) -> float:
        """The largest relative difference between the replayed and the saved weights (refused above TOLERANCE)."""
        saved = dict(self.model.net.named_parameters())
        self.replay_difference = replay_difference(
            ((p, saved[name]) for name, p in zip(self.names, state[0])), self.TOLERANCE, "weights",
            f"; the run used {self.run.get('threads')} threads, this process {torch.get_num_threads()}")
        return self.replay_difference

    # ---------------------------------------------------------------- the measure at the end
    def measure_adjoints(self, state: tuple, measures: list) -> tuple[list[float], list[tuple]]:
        """Each measure's value and gradient at the final parameters, as an adjoint state (dB/dtheta, 0, 0)."""
        with torch.no_grad():
            for p, x in zip(self.params, state[0]):
                p.copy_(x)
        self.net.eval()
        values, adjoints = [], []
        for m in measures:
            self.net.zero_grad(set_to_none=True)
            with torch.enable_grad():
                b = m.fn(self.net)
                grads = torch.autograd.grad(b, self.params, allow_unused=True)
            values.append(float(b.detach()))
            gp = [torch.zeros_like(p) if g is None else g.detach() for p, g in zip(self.params, grads)]
            adjoints.append((gp, [torch.zeros_like(p) for p in gp], [torch.zeros_like(p) for p in gp]))
        return values, adjoints

    # ---------------------------------------------------------------- reverse
    def vjp(self, state: tuple, t: int, adjoints: list[tuple]) -> tuple[list[tuple], list[tuple]]:
        """Pull each adjoint of the state after step t back to the state before it; also each measure's
        derivative with respect to the weights of the documents in step t's batch, as (document indices, values)."""
        if self.config.micro_batch and self.config.micro_batch < len(self.batches[t]):
            return self._vjp_in_pieces(state, t, adjoints)
        P0, M0, V0 = state
        P = [x.detach().clone().requires_grad_(True) for x in P0]
        M = [x.detach().clone().requires_grad_(True) for x in M0]
        V = [x.detach().clone().requires_grad_(True) for x in V0]
        idx = self.batches[t]
        w = torch.ones(len(idx), dtype=self.dtype, device=self.dev, requires_grad=True)
        self.net.train(dropout_active(self.config))
        # the math kernel, as in training: fused attention kernels have no double backward
        with torch.random.fork_rng(devices=[]), torch.enable_grad(), replayable_attention():
            torch.manual_seed(step_seed(self.config.seed, t))
            loss, _, _ = weighted_batch_loss(_Bound(self.net, dict(zip(self.names, P))), self.ex, idx, self.pad,
                                             self.dev, w)
            G = torch.autograd.grad(loss, P, create_graph=True)
            new = self._adamw(P, M, V, G, t)
        inputs = P + M + V + [w]
        out_adj, doc_grads = [], []
        docs = self.ex.doc[idx]
        for k, (aP, aM, aV) in enumerate(adjoints):
            grads = torch.autograd.grad(new, inputs, grad_outputs=list(aP) + list(aM) + list(aV),
                                        retain_graph=k < len(adjoints) - 1, allow_unused=True)
            grads = [torch.zeros_like(x) if g is None else g.detach() for x, g in zip(inputs, grads)]
            n = len(P)
            out_adj.append((grads[:n], grads[n:2 * n], grads[2 * n:3 * n]))
            doc_grads.append((docs, grads[-1].double().cpu().numpy()))
        return out_adj, doc_grads

    def _vjp_in_pieces(self, state: tuple, t: int, adjoints: list[tuple]) -> tuple[list[tuple], list[tuple]]:
        """``vjp`` for a step whose gradient was accumulated over pieces (``LMConfig.micro_batch``), in the memory
        of one piece: (1) the step's gradient G, piece by piece, as training took it; (2) the update's
        vector-Jacobian product through (theta, m, v, G), giving the adjoint of G, g_bar; (3) per piece, the
        Hessian-vector product d(G_piece . g_bar)/d(theta, w_piece) (the gradient is linear in the pieces)."""
        P0, M0, V0 = state
        idx, cfg = self.batches[t], self.config
        bound = lambda P: _Bound(self.net, dict(zip(self.names, P)))   # noqa: E731
        self.net.train(dropout_active(cfg))
        parts = pieces(idx, cfg.micro_batch)
        tokens = batch_tokens(self.ex, idx)
        with torch.random.fork_rng(devices=[]), torch.enable_grad(), replayable_attention():
            torch.manual_seed(step_seed(cfg.seed, t))
            P = [x.detach().clone().requires_grad_(True) for x in P0]
            G = [torch.zeros_like(x) for x in P0]
            for part in parts:
                loss, _, _ = weighted_batch_loss(bound(P), self.ex, part, self.pad, self.dev, tokens=tokens)
                for g, d in zip(G, torch.autograd.grad(loss, P, allow_unused=True)):
                    if d is not None:
                        g += d
            P = [x.detach().clone().requires_grad_(True) for x in P0]
            M = [x.detach().clone().requires_grad_(True) for x in M0]
            V = [x.detach().clone().requires_grad_(True) for x in V0]
            Gv = [g.detach().clone().requires_grad_(True) for g in G]
            new = self._adamw(P, M, V, Gv, t)
            n, out_adj, doc_grads = len(P), [], []
            for k, (aP, aM, aV) in enumerate(adjoints):
                grads = torch.autograd.grad(new, P + M + V + Gv, grad_outputs=list(aP) + list(aM) + list(aV),
                                            retain_graph=k < len(adjoints) - 1, allow_unused=True)
                grads = [torch.zeros_like(x) if g is None else g.detach() for x, g in zip(P + M + V + Gv, grads)]
                dP, g_bar = grads[:n], grads[3 * n:]
                w_grad = []
                torch.manual_seed(step_seed(cfg.seed, t))       # the pieces' random draws, as in (1)
                for part in parts:
                    Pp = [x.detach().clone().requires_grad_(True) for x in P0]
                    w = torch.ones(len(part), dtype=self.dtype, device=self.dev, requires_grad=True)
                    loss, _, _ = weighted_batch_loss(bound(Pp), self.ex, part, self.pad, self.dev, w, tokens=tokens)
                    Gp = torch.autograd.grad(loss, Pp, create_graph=True, allow_unused=True)
                    dot = sum((g * b).sum() for g, b in zip(Gp, g_bar) if g is not None)
                    hv = torch.autograd.grad(dot, Pp + [w], allow_unused=True)
                    for a, h in zip(dP, hv[:n]):
                        if h is not None:
                            a += h.detach()
                    w_grad.append(torch.zeros(len(part), dtype=self.dtype) if hv[n] is None else hv[n].detach())
                out_adj.append((dP, grads[n:2 * n], grads[2 * n:3 * n]))
                doc_grads.append((self.ex.doc[idx], torch.cat(w_grad).double().cpu().numpy()))
        return out_adj, doc_grads

    def _adamw(self, P, M, V, G, t: int) -> list[torch.Tensor]:
        """torch's AdamW update (decoupled weight decay) for step t as differentiable tensors:
        theta' = theta (1 - lr wd) - lr / (1 - b1^s) * m' / (sqrt(v' / (1 - b2^s)) + eps), s = t + 1."""
        b1, b2 = self.betas
        eps, wd = self.eps, self.config.weight_decay
        lr = self.config.learning_rate * self.schedule.factor(t)
        s = t + 1
        bc1, bc2 = 1 - b1 ** s, 1 - b2 ** s
        if self.config.eps_root > 0:     # the training step's own function (``RootAdam``), with a graph
            out = [adam_root_update(p, m, v, g, lr, (b1, b2), self.config.eps_root, wd, s)
                   for p, m, v, g in zip(P, M, V, G)]
            return [o[0] for o in out] + [o[1] for o in out] + [o[2] for o in out]
        tiny = torch.finfo(self.dtype).tiny
        newP, newM, newV = [], [], []
        for p, m, v, g in zip(P, M, V, G):
            m1 = b1 * m + (1 - b1) * g
            v1 = b2 * v + (1 - b2) * g * g
            denom = torch.sqrt(v1.clamp_min(tiny)) / math.sqrt(bc2) + eps
            newP.append(p * (1 - lr * wd) - (lr / bc1) * m1 / denom)
            newM.append(m1)
            newV.append(v1)
        return newP + newM + newV


LMReplay.refusal = staticmethod(replay_refusal)
register_replay("lm", LMReplay)
