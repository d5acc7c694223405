"""The optimizer side of an LM training run: the steps' example batches (``run_batches``, a function of the seed
and the examples alone), the learning-rate schedule, each step's random seed, and Adam with epsilon inside the
square root (``RootAdam``, ``adam_root_update``: the smooth audited phase). Training (``models.lm``), the replay
and the reverse pass (``models.lm_replay``) all take their steps from here, so they take the same ones.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
import numpy as np
import torch

from .lm_steps import Examples


def length_batches(lengths: np.ndarray, batch_size: int, gen: torch.Generator | None) -> list[np.ndarray]:
    """Batches of examples of similar length (sorted, then cut), in random order when ``gen`` is given."""
    if gen is None:
        order = np.argsort(lengths, kind="stable")
    else:   # shuffle, then sort stably by length: ties broken at random, same for a seed
        perm = torch.randperm(len(lengths), generator=gen).numpy()
        order = perm[np.argsort(lengths[perm], kind="stable")]
    batches = [order[s:s + batch_size] for s in range(0, len(order), batch_size)]
    if gen is not None:
        batches = [batches[i] for i in torch.randperm(len(batches), generator=gen).tolist()]
    return batches



def step_seed(seed: int, step: int) -> int:
    """The global torch seed set before optimizer step ``step``: dropout (and any sampling inside the network) is a
    function of (seed, step) alone, so any step can be replayed on its own."""
    return (int(seed) * 1_000_003 + int(step) * 7919 + 17) % (2 ** 63 - 1)


@dataclass(frozen=True)
class Schedule:
    """The optimizer steps of one training run: epochs, steps and the learning-rate factor of each step."""
    epochs: int
    per_epoch: int
    n_steps: int
    warm: int

    @classmethod
    def of(cls, config, n_examples: int) -> "Schedule":
        per_epoch = math.ceil(n_examples / config.batch_size)
        epochs = config.epochs if config.finetune else max(config.epochs, math.ceil(config.min_steps / per_epoch))
        n_steps = epochs * per_epoch
        return cls(epochs, per_epoch, n_steps, max(1, int(config.warmup * n_steps)))

    def factor(self, s: int) -> float:
        """Linear warm-up over ``warm`` steps, then linear decay to zero (torch's LambdaLR at step s)."""
        return min((s + 1) / self.warm, max(0.0, (self.n_steps - s) / max(1, self.n_steps - self.warm)))


def shuffled_batches(n: int, batch_size: int, gen: torch.Generator) -> list[np.ndarray]:
    """Batches that are uniform random samples of the ``n`` examples (an epoch: each example once)."""
    perm = torch.randperm(n, generator=gen).numpy()
    return [perm[s:s + batch_size] for s in range(0, n, batch_size)]


BATCHINGS = ("length", "shuffled")


def run_batches(ex: Examples, config, schedule: Schedule):
    """Every step's example indices, in training order (a function of the seed and the examples alone; how they
    are grouped: ``config.batches``, one of ``BATCHINGS``; a config without it: length)."""
    gen = torch.Generator().manual_seed(config.seed)
    lengths = np.array([len(x) for x in ex.ids])
    shuffled = getattr(config, "batches", "length") == "shuffled"
    for _ in range(schedule.epochs):
        yield from (shuffled_batches(len(lengths), config.batch_size, gen) if shuffled
                    else length_batches(lengths, config.batch_size, gen))


def replayable_attention():
    """Training steps run attention with the math kernel: the one with a double backward (for the reverse pass of
    ``--estimator magic``), so the replayed step draws the same attention-dropout masks and computes the same
    function as the training step."""
    from torch.nn.attention import SDPBackend, sdpa_kernel
    return sdpa_kernel(SDPBackend.MATH)


ADAM_BETAS = (0.9, 0.999)


def adam_root_update(p, m, v, g, lr: float, betas: tuple[float, float], eps_root: float, weight_decay: float,
                     s: int) -> tuple:
    """One Adam update with epsilon inside the square root (decoupled weight decay, bias-corrected moments, step
    s >= 1): theta' = theta (1 - lr wd) - lr m_hat / sqrt(v_hat + eps_root). Smooth in (theta, m, v, g) wherever
    eps_root > 0 (torch's AdamW adds eps outside the root: the derivative of sqrt at v = 0 is unbounded). Pure torch
    arithmetic: the training step, the replay and the reverse pass (with a graph) all call this function, so they
    take the same update. Returns (theta', m', v')."""
    b1, b2 = betas
    m1 = b1 * m + (1 - b1) * g
    v1 = b2 * v + (1 - b2) * g * g
    step = (m1 / (1 - b1 ** s)) / torch.sqrt(v1 / (1 - b2 ** s) + eps_root)
    return p * (1 - lr * weight_decay) - lr * step, m1, v1


class RootAdam(torch.optim.Optimizer):
    """Adam with epsilon inside the root (``adam_root_update``), as a torch optimizer for the training loop; its
    state uses AdamW's keys (step, exp_avg, exp_avg_sq), so a replay sets and reads it the same way."""

    def __init__(self, params, lr: float, betas=ADAM_BETAS, eps_root: float = 1e-6, weight_decay: float = 0.0):
        super().__init__(params, {"lr": lr, "betas": tuple(betas), "eps": 0.0, "eps_root": float(eps_root),
                                  "weight_decay": weight_decay})

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                st = self.state[p]
                if not st:
                    st.update(step=torch.tensor(0.0), exp_avg=torch.zeros_like(p), exp_avg_sq=torch.zeros_like(p))
                st["step"] += 1
                p1, m1, v1 = adam_root_update(p, st["exp_avg"], st["exp_avg_sq"], p.grad, group["lr"],
                                              group["betas"], group["eps_root"], group["weight_decay"],
                                              int(st["step"]))
                p.copy_(p1)
                st["exp_avg"].copy_(m1)
                st["exp_avg_sq"].copy_(v1)


def make_optimizer(net, config, schedule: Schedule):
    if config.eps_root > 0:
        opt = RootAdam(net.parameters(), lr=config.learning_rate, eps_root=config.eps_root,
                       weight_decay=config.weight_decay)
    else:
        opt = torch.optim.AdamW(net.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay)
    return opt, torch.optim.lr_scheduler.LambdaLR(opt, schedule.factor)


def dropout_active(config) -> bool:
    """Whether training steps run the network in train mode (dropout drawn) or with dropout off (eval mode)."""
    return bool(config.dropout)


