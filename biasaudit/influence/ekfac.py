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
- Group predictions (``ekfac`` only; ``gradient-dot`` has no scale): the parameter change of an edit set S is
  Delta theta = (1/n) (F + lambda I)^-1 sum_{i in S} grad L_i for a removal (-(e/n) times it for e extra copies),
  preconditioned per tracked module with the same EK-FAC factors, applied to a copy of the network, and the
  measure is computed again on it (so it stays in the measure's range).
"""
from __future__ import annotations

import tempfile
import time
import warnings
from contextlib import contextmanager

import numpy as np
import torch

import copy

from ..models.lm import collate, token_losses
from ..models.lm_objective import OneHotEmbedding, make_task, trackable, tracked_modules
from ..vocab import tokenize
from .estimators import EstimatorConfig
from .result import ScoreResult


@contextmanager
def _damping_scale(scale: float | None):
    """kronfluence's heuristic damping is HEURISTIC_DAMPING_SCALE x mean eigenvalue per module; set its scale
    (None: left as it is; the identity strategy, gradient-dot, applies no damping)."""
    import kronfluence.factor.config as kc

    old = kc.HEURISTIC_DAMPING_SCALE
    kc.HEURISTIC_DAMPING_SCALE = old if scale is None else scale
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


class _Parts(torch.utils.data.Dataset):
    """The query set: one item per part of the measure (its index; the measure reads its own inputs): one for a
    template measure, one per block of pairs for paired sentences, whose gradients kronfluence sums."""
    def __init__(self, n: int = 1):
        self.n = n

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        return torch.tensor([float(i)])


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
    clean = copy.deepcopy(base).eval() if "task" in estimator.group_predictions else None   # group predictions
    tracked = tracked_modules(base)
    emb_tracked = isinstance(base.get_input_embeddings(), OneHotEmbedding)
    strategy = estimator.solve                 # kronfluence's factor strategy: "ekfac" or "identity"
    pad = model.encoder.pad_id
    kwargs = DataLoaderKwargs(collate_fn=lambda items: collate(items, pad) if isinstance(items[0], np.ndarray)
                              else torch.utils.data.default_collate(items))
    bias_value, scores, info = {}, {}, {}
    timings = {"examples": time.perf_counter() - t0}
    task = make_task(tracked)
    damping = getattr(estimator, "damping", None)     # gradient-dot (identity) has none
    with tempfile.TemporaryDirectory(prefix="biasaudit-kronfluence-") as work, _damping_scale(damping), \
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
        predictor = None
        if clean is not None:
            predictor = EkfacPredictor(clean, tracked, analyzer.load_all_factors(factors_name="factors"),
                                       estimator.damping, seqs, doc_of, pad, {m.name: m for m in measures},
                                       batch_size, dev, model.encoder, model.train_len)
        for k, m in enumerate(measures):
            if progress:
                progress(f"{estimator.name} influence", k, len(measures))
            task.measure = m
            t = time.perf_counter()
            analyzer.compute_pairwise_scores(
                scores_name=f"scores{k}", factors_name="factors", query_dataset=_Parts(m.parts() if hasattr(m, "parts") else 1), train_dataset=_Examples(seqs),
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
                       timings, words=words, predictor=predictor)


class EkfacPredictor:
    """Group predictions for LMs: the EK-FAC-preconditioned summed gradient of the edited examples as one step on
    the tracked layers of a copy of the network, then the measure re-run on it."""

    def __init__(self, net, tracked: list[str], factors: dict, damping: float, seqs, doc_of: np.ndarray,
                 pad_id: int, measures: dict, batch_size: int, device, encoder=None, max_len: int = 64):
        from kronfluence.utils.constants import (ACTIVATION_EIGENVECTORS_NAME, GRADIENT_EIGENVECTORS_NAME,
                                                 LAMBDA_MATRIX_NAME, NUM_LAMBDA_PROCESSED)

        self.net, self.seqs, self.doc_of, self.pad = net, seqs, doc_of, pad_id
        self.measures, self.batch_size, self.device = measures, batch_size, device
        self.encoder, self.max_len = encoder, max_len
        self.n = len(seqs)
        modules = dict(net.named_modules())
        self.modules = {name: modules[name] for name in tracked}
        for p in net.parameters():
            p.requires_grad_(False)
        for m in self.modules.values():
            for p in m.parameters():
                p.requires_grad_(True)
        self.factors = {}
        for name in tracked:          # per module: Q_A (in[+1], in[+1]), Q_G (out, out), 1 / (Lambda / N + lambda)
            lam = factors[LAMBDA_MATRIX_NAME][name].double() / factors[NUM_LAMBDA_PROCESSED][name].double()
            inv = 1.0 / (lam + damping * lam.mean())
            self.factors[name] = (factors[ACTIVATION_EIGENVECTORS_NAME][name].double().to(device),
                                  factors[GRADIENT_EIGENVECTORS_NAME][name].double().to(device), inv.to(device))
        self._grads: dict[bytes, dict] = {}

    def _summed_gradient(self, docs: np.ndarray, seqs=None) -> dict[str, torch.Tensor]:
        """Gradient of the summed training loss of the documents' examples (or of the examples ``seqs``), per
        tracked module as kronfluence lays it out: (out, in), with the bias as a last column."""
        if seqs is None:
            key = np.unique(np.asarray(docs, dtype=np.int64)).tobytes()
            if key in self._grads:
                return self._grads[key]
            chosen = np.flatnonzero(np.isin(self.doc_of, np.frombuffer(key, dtype=np.int64)))
            seqs = [self.seqs[i] for i in chosen]
        else:
            key = None
        self.net.zero_grad(set_to_none=True)
        for s in range(0, len(seqs), self.batch_size):
            batch = collate(seqs[s:s + self.batch_size], self.pad)
            with torch.enable_grad():
                token_losses(self.net, {k: v.to(self.device) for k, v in batch.items()}).sum().backward()
        out = {}
        for name, m in self.modules.items():
            g = m.weight.grad if m.weight.grad is not None else torch.zeros_like(m.weight)
            if m.bias is not None:
                gb = m.bias.grad if m.bias.grad is not None else torch.zeros_like(m.bias)
                g = torch.cat([g, gb[:, None]], dim=1)
            out[name] = g.detach().double()
        self.net.zero_grad(set_to_none=True)
        if key is not None:
            self._grads = {key: out}      # requests come in (remove, upweight) pairs of one set: keep the last
        return out

    def changed(self, docs, weight: float, added=None):
        """A copy of the network moved by (1/n) (F + lambda I)^-1 (weight x sum_{i in docs} grad L_i - sum over
        the added documents' examples) (weight 1: the documents removed; -e: e extra copies; 0: kept)."""
        grads = {k: weight * g for k, g in self._summed_gradient(docs).items()}
        if added:
            from ..corpus import MemoryCorpus
            from ..models.lm import make_examples

            seqs = make_examples(MemoryCorpus(list(added), "added"), self.encoder, self.max_len).ids
            for k, g in self._summed_gradient(None, seqs).items():
                grads[k] = grads[k] - g
        net = copy.deepcopy(self.net)
        mods = dict(net.named_modules())
        with torch.no_grad():
            for mod_name, g in grads.items():
                qa, qg, inv = self.factors[mod_name]
                step = (1.0 / self.n) * (qg @ ((qg.T @ g @ qa) * inv) @ qa.T)
                m = mods[mod_name]
                m.weight.add_(step[:, :m.weight.shape[1]].to(m.weight.dtype))
                if m.bias is not None:
                    m.bias.add_(step[:, -1].to(m.bias.dtype))
        return net

    def predict(self, requests, progress=None):
        out = []
        for req in requests:
            name, docs, times = req[:3]
            net = self.changed(docs, 1.0 if times == 0 else -float(times - 1), req[3] if len(req) > 3 else None)
            with torch.no_grad():
                out.append(float(self.measures[name].fn(net)))
            if progress:
                progress("removal predictions", len(out), len(requests))
        return out


def _doc_words(corpus, doc_ids: list[str], words: tuple[str, ...]) -> dict[int, tuple[int, ...]]:
    """doc index -> indices into ``words`` of the test words it holds (for the report's highlighting)."""
    from ..models.lm import doc_word_index
    return doc_word_index(corpus, words)
