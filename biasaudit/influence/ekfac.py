"""Cross-loss influence of every training document on an LM bias measure, with kronfluence: ``ekfac`` (EK-FAC
inverse Hessian) or ``gradient-dot`` (kronfluence's identity strategy: no inverse).

Decided here:
- Training loss per example = its SUMMED next-token loss (kronfluence requires sums); the Fisher is sampled from
  the model's own predictions (the true Fisher, kronfluence's default). Measurement f = the bias measure.
- kronfluence's pairwise score is s_i = grad f^T (F + lambda I)^-1 grad L_i, F the Fisher averaged over the n
  training examples. Removing example i moves the parameters by about (1/n) F^-1 grad L_i, so
  delta_bias_if_removed(i) = +s_i / n (positive s_i: training on i lowers f, so removing it raises f). A
  document's score is the sum over its examples. One more copy of a document: the negative.
- Damping: ``damping`` is relative, damping x the mean eigenvalue of each module's (corrected) Fisher, as
  kronfluence's heuristic (whose scale, 0.1, is our default).
- Tracked modules: every ``nn.Linear`` of the network, except the output layer when the vocabulary has more than
  ``MAX_TRACKED_VOCAB`` entries (its EK-FAC factor is vocabulary x vocabulary). Embedding layers are never
  tracked: kronfluence does not support them. The influence is the part carried by the tracked weights.
"""
from __future__ import annotations

import copy
import tempfile
import time
import warnings
from contextlib import contextmanager

import numpy as np
import torch

from ..errors import ConfigError
from ..models.lm import LMModel, collate
from ..vocab import tokenize
from .estimators import EstimatorConfig
from .scorer import ScoreResult

LM_ESTIMATORS = ("ekfac", "gradient-dot")
MAX_TRACKED_VOCAB = 4096


class OneHotEmbedding(torch.nn.Module):
    """An embedding lookup written as one-hot inputs times an ``nn.Linear`` (same values), so kronfluence can
    track the input embeddings (it supports only nn.Linear and nn.Conv2d)."""

    def __init__(self, emb: torch.nn.Embedding):
        super().__init__()
        self.proj = torch.nn.Linear(emb.num_embeddings, emb.embedding_dim, bias=False)
        with torch.no_grad():
            self.proj.weight.copy_(emb.weight.T)                                  # (dim, V)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        onehot = torch.nn.functional.one_hot(input_ids, self.proj.in_features).to(self.proj.weight.dtype)
        return self.proj(onehot)                                                  # (b, L, dim)


def trackable(net):
    """A copy of ``net`` whose input embeddings are a tracked linear layer when the vocabulary is small enough."""
    net = copy.deepcopy(net)
    emb = net.get_input_embeddings()
    if isinstance(emb, torch.nn.Embedding) and emb.num_embeddings <= MAX_TRACKED_VOCAB:
        net.set_input_embeddings(OneHotEmbedding(emb))
    return net


def tracked_modules(net) -> list[str]:
    out_layer = net.get_output_embeddings()
    names = []
    for name, m in net.named_modules():
        if isinstance(m, torch.nn.Linear):
            if m is out_layer and m.out_features > MAX_TRACKED_VOCAB:
                continue
            names.append(name)
    if not names:
        raise ConfigError("the LM has no nn.Linear layer that kronfluence can track (HF GPT-2 uses Conv1D)")
    return names


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


def _task(tracked: list[str]):
    """kronfluence's task: the training loss per example and the bias measure (set ``task.measure`` before
    scoring; the fitted factors depend only on the training loss, so they serve every measure)."""
    from kronfluence.task import Task

    class BiasTask(Task):
        measure = None

        def compute_train_loss(self, batch, model, sample: bool = False) -> torch.Tensor:
            logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
            logits = logits[:, :-1].float()                                     # (b, L-1, V)
            labels = batch["labels"][:, 1:]
            if sample:   # the true Fisher: targets drawn from the model's own predictions
                with torch.no_grad():
                    drawn = torch.multinomial(torch.softmax(logits.flatten(0, 1), -1), 1).view(labels.shape)
                labels = drawn.masked_fill(labels == -100, -100)
            return torch.nn.functional.cross_entropy(logits.flatten(0, 1), labels.flatten(), ignore_index=-100,
                                                     reduction="sum")

        def compute_measurement(self, batch, model) -> torch.Tensor:
            return self.measure.fn(model)

        def get_influence_tracked_modules(self):
            return tracked

        def get_attention_mask(self, batch):
            return batch["attention_mask"] if isinstance(batch, dict) else None

    return BiasTask()


def score_lm(model: LMModel, corpus, measures: list, estimator: EstimatorConfig = EstimatorConfig(name="ekfac"),
             progress=None, device: str = "cpu", batch_size: int = 32) -> ScoreResult:
    """delta_bias_if_removed of every document for each measure (TemplateMeasure / PairMeasure)."""
    from kronfluence.analyzer import Analyzer, prepare_model
    from kronfluence.arguments import FactorArguments, ScoreArguments
    from kronfluence.utils.dataset import DataLoaderKwargs

    if estimator.name not in LM_ESTIMATORS:
        raise ConfigError(f"estimator {estimator.name!r} is for embeddings; --model lm takes "
                          f"{', '.join(LM_ESTIMATORS)}")
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
    task = _task(tracked)
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
