"""Exact metagradients through the recorded training run (``--estimator magic``; MAGIC, Ilyas & Engstrom 2025).

Influence functions assume the trained model sits at an optimum of its training loss; a small LM after a few
thousand AdamW steps, a fine-tune of a few epochs or skip-gram after five epochs is not there. A metagradient needs
no such assumption: it is the derivative of the final bias measure B(theta_T) with respect to each training
document's weight w_d, taken through every optimizer step of the run that produced the model (the family's
``replay``: the same initialisation, batches, learning rates and random draws).

Decided here:
- Reverse-mode through the run with checkpoints: a forward replay keeps the state every K = ceil(sqrt(T)) steps;
  then, segment by segment from the end, the segment is replayed forward keeping its K states and the adjoint of
  the state is pulled back through each step (the family's ``vjp``), collecting dB/dw_d for the documents of each
  step's batch. Memory: training's plus 2K states; time: about two forward replays plus T reverse steps (each a
  double backward through one batch), all measures sharing the replays.
- Conventions, as every estimator: delta_bias_if_removed(d) = -dB/dw_d (w_d 1 -> 0, to first order), one more
  copy of d: +dB/dw_d. Group predictions are the linear sum (a metagradient has no cheaper re-measure).
- The replay must reproduce the saved weights (``check_final``), or the derivative would not be the model's.
"""
from __future__ import annotations

import math
import time
from dataclasses import replace

import numpy as np

from .estimators import EstimatorConfig
from .result import ScoreResult


def metagradients(replay, measures: list, progress=None) -> tuple[list[float], np.ndarray, dict]:
    """dB_k/dw_d for every measure k and document d through ``replay``'s run: (values, (n_measures, n_docs) array,
    info)."""
    T = replay.n_steps
    K = max(1, math.ceil(math.sqrt(T)))
    t0 = time.perf_counter()
    tick = max(1, T // 100)
    if progress:
        progress("magic: replaying the run", 0, T)
    checkpoints = {}
    state = replay.start()
    for t in range(T):
        if t % K == 0:
            checkpoints[t] = state
        state = replay.forward(state, t)
        if progress and ((t + 1) % tick == 0 or t + 1 == T):
            progress("magic: replaying the run", t + 1, T)
    difference = replay.check_final(state)
    t_forward = time.perf_counter() - t0
    values, adjoints = replay.measure_adjoints(state, measures)
    del state
    grads = np.zeros((len(measures), replay.n_docs))
    done = 0
    if progress:
        progress("magic: reverse pass", 0, T)
    for s0 in sorted(checkpoints, reverse=True):
        s1 = min(s0 + K, T)
        states = [checkpoints.pop(s0)]
        for t in range(s0, s1 - 1):
            states.append(replay.forward(states[-1], t))
        for t in range(s1 - 1, s0 - 1, -1):
            adjoints, doc_grads = replay.vjp(states[t - s0], t, adjoints)
            states[t - s0] = None
            for k, (docs, g) in enumerate(doc_grads):
                np.add.at(grads[k], docs, g)
            done += 1
            if progress and (done % tick == 0 or done == T):
                progress("magic: reverse pass", done, T)
    if hasattr(replay, "finish"):     # a replay whose weights enter at every step (GloVe's counts) adds them now
        replay.finish(grads)
    info = {"steps": T, "checkpoint_every": K, "replay_relative_difference": difference,
            "forward_seconds": round(t_forward, 3), "total_seconds": round(time.perf_counter() - t0, 3)}
    return values, grads, info


def check_metasmoothness(model, corpus, measures: list, directions: int, progress=None) -> dict:
    """The replayed run's metasmoothness (``influence.metasmooth``), with a note when it is below the threshold:
    metagradients of a run that is not smooth in the document weights do not predict its retraining."""
    from .metasmooth import THRESHOLD, run_metasmoothness

    ms = run_metasmoothness(model, corpus, measures, directions=directions, progress=progress)
    if ms["metasmoothness"] < THRESHOLD:
        import warnings
        from ..errors import BiasAuditWarning
        warnings.warn(f"metasmoothness {ms['metasmoothness']:.2f} (below {THRESHOLD}): this training run is not "
                      "smooth in the document weights, so rankings of this run are not expected to confirm on "
                      f"retraining (measured: runs below {THRESHOLD} reached magic LDS 0.16 to 0.84, runs above it "
                      "0.62 to 0.99); "
                      "audit a smooth phase (--model lm without --from-scratch: the bundled base fine-tuned with "
                      "eps_root=1e-6,dropout=0,batch_size=128,epochs=2,dtype=float64)", BiasAuditWarning, stacklevel=3)
    return ms


def score_magic(model, corpus, measures: list, estimator: EstimatorConfig, progress=None,
                device: str = "cpu", **_) -> ScoreResult:
    """Every document's delta_bias_if_removed = -dB/dw_d for each measure, by exact metagradients."""
    from ..models.base import family_of

    t0 = time.perf_counter()
    fam = family_of(model)
    replay = fam.replay(model, corpus, device=device)
    values, grads, info = metagradients(replay, measures, progress)
    scores = {m.name: -grads[k] for k, m in enumerate(measures)}
    for k, m in enumerate(measures):
        # a metagradient is exact, but through a chaotic run (long Adam training from scratch) it explodes: a
        # first-order change larger than the measure's whole range says the run is far from smooth in w, and its
        # ranking and predictions should not be trusted (measured: LDS ~0 on the planted LM corpus, docs/results/magic.md)
        worst = float(np.abs(grads[k]).max()) if grads.shape[1] else 0.0
        info_k = info.setdefault("exploded", {})
        info_k[m.name] = bool(np.isfinite(m.bound) and worst > 10 * m.bound) or not np.isfinite(worst)
        if info_k[m.name]:
            import warnings
            from ..errors import BiasAuditWarning
            warnings.warn(f"{m.name}: the metagradients exploded (a single document's first-order effect is "
                          f"{worst:.3g}, the measure's range is +-{m.bound:.3g}): training is far from smooth in the "
                          "document weights, so magic's ranking and predictions are unreliable here; compare with "
                          "ekfac or gradient-dot, or (a language model) audit a smooth phase, Adam with epsilon "
                          "inside the root: --model lm without --from-scratch (the bundled base fine-tuned with "
                          "eps_root=1e-6,dropout=0,batch_size=128,epochs=2,dtype=float64; docs/results/lm_smooth.md)", BiasAuditWarning,
                          stacklevel=2)
    if estimator.metasmoothness:
        info["metasmoothness"] = check_metasmoothness(model, corpus, measures, estimator.metasmoothness, progress)
    solver = {m.name: {"estimator": estimator.label, **info} for m in measures}
    words, doc_words = fam.magic_words(model, corpus, measures, replay)
    from .ensemble import LinearPredictor
    result = ScoreResult(list(replay.doc_ids), scores, {m.name: v for m, v in zip(measures, values)},
                         {m.name: {} for m in measures}, doc_words, estimator, solver,
                         {"magic": info["total_seconds"], "total": time.perf_counter() - t0}, words=words)
    return replace(result, predictor=LinearPredictor(result, {m.name: m.bound for m in measures}))
