"""Cross-loss influence of every training document on an LM bias measure, with kronfluence: ``ekfac`` (EK-FAC
inverse Hessian) or ``gradient-dot`` (kronfluence's identity strategy: no inverse).

Decided here:
- The training loss and the tracked modules are the family's (``biasaudit.models.lm_objective``); the measurement
  f is the bias measure.
- kronfluence's pairwise score is s_i = grad f^T (F + lambda I)^-1 grad L_i, F the Fisher averaged over the n
  training examples. Removing example i moves the parameters by about (1/n) F^-1 grad L_i, so
  delta_bias_if_removed(i) = +s_i / n (positive s_i: training on i lowers f, so removing it raises f). A
  document's score is the sum over its examples. One more copy of a document: the negative.
- Damping: ``damping`` is relative, damping x the mean eigenvalue of each module's (corrected) Fisher, as
  kronfluence's heuristic (whose scale, 0.1, is our default).
"""
from __future__ import annotations

import tempfile
import time
import warnings
from contextlib import contextmanager

import numpy as np
import torch

from ..models.lm import collate
from ..models.lm_objective import OneHotEmbedding, make_task, trackable, tracked_modules
from ..vocab import tokenize
from .estimators import EstimatorConfig
from .result import ScoreResult


@contextmanager
def _damping_scale(scale: float):
    """kronfluence's heuristic damping is HEURISTIC_DAMPING_SCALE x mean eigenvalue per module; set its scale."""
    import kronfluence.factor.config as kc

    old = kc.HEURISTIC_DAMPING_SCALE
    kc.HEURISTIC_DAMPING_SCALE = scale
    try:
        yield
    finally:
        kc.HEURISTIC_DAMPING_SCALE = old


class _Examples(torch.utils.data.Dataset):
    def __init__(self, seqs):
        self.seqs = seqs

    def __len__(self):
        return len(self.seqs)

    def __getitem__(self, i):
        return self.seqs[i]


class _One(torch.utils.data.Dataset):
    """The query set: one item; the measure reads its own inputs."""
    def __len__(self):
        return 1

    def __getitem__(self, i):
        return torch.zeros(1)


def score_lm(model, corpus, measures: list, estimator: EstimatorConfig = EstimatorConfig(name="ekfac"),
             progress=None, device: str = "cpu", batch_size: int = 32, **_) -> ScoreResult:
    """delta_bias_if_removed of every document for each measure (TemplateMeasure / PairMeasure)."""
    from kronfluence.analyzer import Analyzer, prepare_model
    from kronfluence.arguments import FactorArguments, ScoreArguments
    from kronfluence.utils.dataset import DataLoaderKwargs

    t0 = time.perf_counter()
    ex = model.examples(corpus)
    order = np.argsort([len(x) for x in ex.ids], kind="stable")   # batches of similar length: little padding
    seqs = [ex.ids[i] for i in order]
    doc_of = ex.doc[order]
    n = len(seqs)
    dev = torch.device(device)
    base = trackable(model.net).to(dev)      # a copy: kronfluence wraps modules in place
    tracked = tracked_modules(base)
    emb_tracked = isinstance(base.get_input_embeddings(), OneHotEmbedding)
    strategy = "ekfac" if estimator.name == "ekfac" else "identity"
    pad = model.encoder.pad_id
    kwargs = DataLoaderKwargs(collate_fn=lambda items: collate(items, pad) if isinstance(items[0], np.ndarray)
                              else torch.utils.data.default_collate(items))
    bias_value, scores, info = {}, {}, {}
    timings = {"examples": time.perf_counter() - t0}
    task = make_task(tracked)
    with tempfile.TemporaryDirectory(prefix="biasaudit-kronfluence-") as work, _damping_scale(estimator.damping), \
            warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=FutureWarning, module="kronfluence")
        if progress:
            progress(f"{estimator.name} factors", 0, 1)
        analyzer = Analyzer(analysis_name="biasaudit", model=prepare_model(base, task), task=task,
                            cpu=dev.type == "cpu", disable_tqdm=True, output_dir=work, log_level=40)
        analyzer.set_dataloader_kwargs(kwargs)
        t = time.perf_counter()
        analyzer.fit_all_factors(factors_name="factors", dataset=_Examples(seqs), per_device_batch_size=batch_size,
                                 factor_args=FactorArguments(strategy=strategy), overwrite_output_dir=True)
        timings["factors"] = time.perf_counter() - t
        if progress:
            progress(f"{estimator.name} factors", 1, 1)
        for k, m in enumerate(measures):
            if progress:
                progress(f"{estimator.name} influence", k, len(measures))
            task.measure = m
            t = time.perf_counter()
            analyzer.compute_pairwise_scores(
                scores_name=f"scores{k}", factors_name="factors", query_dataset=_One(), train_dataset=_Examples(seqs),
                per_device_query_batch_size=1, per_device_train_batch_size=batch_size,
                score_args=ScoreArguments(damping_factor=None, aggregate_query_gradients=True), overwrite_output_dir=True)
            raw = analyzer.load_pairwise_scores(scores_name=f"scores{k}")["all_modules"]
            raw = raw.double().cpu().numpy().reshape(-1)                          # (n_examples,)
            scores[m.name] = np.bincount(doc_of, weights=raw / n, minlength=len(ex.doc_ids))
            with torch.no_grad():
                bias_value[m.name] = float(m.fn(model.net))
            info[m.name] = {"estimator": estimator.label, "strategy": strategy, "tracked_modules": len(tracked),
                            "embeddings_tracked": emb_tracked,
                            "n_examples": n, "factor_seconds": round(timings["factors"], 3),
                            "score_seconds": round(time.perf_counter() - t, 3)}
    if progress:
        progress(f"{estimator.name} influence", len(measures), len(measures))
    words = tuple(dict.fromkeys(w for m in measures for w in m.words))
    doc_words = _doc_words(corpus, ex.doc_ids, words)
    timings["total"] = time.perf_counter() - t0
    return ScoreResult(ex.doc_ids, scores, bias_value, {m.name: {} for m in measures}, doc_words, estimator, info,
                       timings, words=words)


def _doc_words(corpus, doc_ids: list[str], words: tuple[str, ...]) -> dict[int, tuple[int, ...]]:
    """doc index -> indices into ``words`` of the test words it holds (for the report's highlighting)."""
    pos = {w: i for i, w in enumerate(words)}
    out = {}
    for i, d in enumerate(corpus):
        hit = {pos[t] for t in tokenize(d.text) if t in pos}
        if hit:
            out[i] = tuple(sorted(hit))
    return out
