"""What an experiment costs, known before anything is trained: how many trainings it runs and, from a training of
the same model already measured on this machine, about how long they take on how many workers.

Counted here, decided in ``plan.py`` and ``run.py``: every edit is trained at every paired seed, plus the
baseline; ``remove-random`` is one edit per k shared by all tests and estimators, ``swap-random`` /
``augment-random`` one per test and k (each test's swap list), ``remove-ids`` and ``augment-all`` one each, the
ranked edits one per estimator, test and k; ``hard-debias`` trains nothing. LDS subsets are trained at the
same-seed and cross-seed seeds (with their baselines), and ranking seeds outside the paired ones (``--ensemble``
with ``--fresh-seeds``) are trained once. The count is an upper bound: identical edits (the same top set under two
estimators) are trained once, models already in the cache and runs already finished in the folder are not
trained again.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

RANKED = ("remove-top", "remove-bottom", "upweight-top", "swap-top", "augment-top", "remove-selected")
PER_TEST = ("swap-random", "augment-random")


def count_trainings(conditions, n_tests: int, n_ks: int, seeds, n_estimators: int = 1, lds: int = 0,
                    lds_seeds=(), ranking_seeds=()) -> int:
    """The trainings of an experiment with these conditions (at most: see the module's docstring)."""
    seeds = set(seeds)
    per_seed = (1 + n_estimators * n_tests * n_ks * sum(c in conditions for c in RANKED)
                + n_tests * n_ks * sum(c in conditions for c in PER_TEST)
                + n_ks * ("remove-random" in conditions)
                + ("remove-ids" in conditions) + ("augment-all" in conditions))
    total = per_seed * len(seeds)
    extra = set(lds_seeds) if lds else set()
    total += lds * len(extra) + len(extra - seeds)              # LDS subsets, and baselines at their seeds
    total += len(set(ranking_seeds) - seeds - extra)          # ranking models at seeds not trained otherwise
    return total


@dataclass(frozen=True)
class ExperimentCost:
    """An experiment's plan in numbers: ``trainings`` (at most), ``seconds_per_training`` (None: no training of
    this model measured yet) and where that time was measured (``measured``), ``workers`` (None: a remote
    cluster's, not known before connecting) and the output ``folder``."""
    trainings: int
    seconds_per_training: float | None
    measured: str
    workers: int | None
    scheduler: str | None
    folder: Path

    @property
    def estimated_seconds(self) -> float | None:
        """The trainings' time spread over the workers (None where either is unknown)."""
        if not self.seconds_per_training or not self.workers:
            return None
        return self.trainings * self.seconds_per_training / self.workers


def experiment_cost(spec, folder: Path, scheduler: str | None = None, cache: Path | None = None,
                    trained=None) -> ExperimentCost:
    """The cost of running ``spec`` into ``folder``: trainings from the spec; the time of one from ``trained``'s
    recorded ``train_seconds`` (a model trained here with the same settings), else from the cached baseline of the
    ranking seed; workers: one per core for the local cluster, 1 in this process, unknown for a remote one."""
    from dataclasses import replace

    from ..models.base import cached_train_seconds
    from .plan import parse_k

    n_ks = len([parse_k(s) for s in spec.ks.split(",") if s.strip()])
    trainings = count_trainings(spec.conditions, len(spec.tests), n_ks, spec.seed_list, len(spec.estimators),
                                spec.lds, spec.lds_seeds.values(),
                                () if spec.ranking_model is not None else spec.ranking_seeds)
    secs, measured = None, ""
    recorded = ((getattr(trained, "meta", None) or {}).get("train_seconds")
                if trained is not None and spec.ranking_model is None else None)
    if isinstance(recorded, (int, float)) and recorded > 0:
        secs, measured = float(recorded), "the model's recorded training"
    else:
        secs = cached_train_seconds(spec.corpus, replace(spec.model, seed=spec.ranking_seeds[0]), cache)
        measured = "the cached baseline's training" if secs else ""
    workers = (max(1, os.cpu_count() or 1) if scheduler == "local" else 1 if scheduler is None else None)
    return ExperimentCost(trainings, secs, measured, workers, scheduler, Path(folder))
