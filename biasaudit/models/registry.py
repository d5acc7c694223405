"""The model families behind ``--model``: one place that maps a config to its trainer, cache and scorer."""
from __future__ import annotations

from pathlib import Path

from ..corpus import Corpus
from ..errors import ConfigError
from .glove import GloVeConfig, GloVeModel, train_glove, train_or_load_glove
from .skipgram import SkipGramConfig, SkipGramModel, train_or_load, train_skipgram

MODELS = ("skipgram", "glove")


def model_name(config) -> str:
    return "glove" if isinstance(config, GloVeConfig) else "skipgram"


def make_config(model: str, **kw):
    """A config for ``model`` from the CLI's shared options (None: that family's default)."""
    kw = {k: v for k, v in kw.items() if v is not None}
    if model == "skipgram":
        for k in ("embedding",):
            kw.pop(k, None)
        return SkipGramConfig(**kw)
    if model == "glove":
        for k in ("negative", "workers", "sample", "backend"):
            if k in kw and kw[k] != {"negative": 5, "workers": 1, "sample": 1e-3, "backend": "gensim"}[k]:
                raise ConfigError(f"--{k} applies to skip-gram only, not to --model glove")
            kw.pop(k, None)
        return GloVeConfig(**kw)
    raise ConfigError(f"unknown --model {model!r} (one of {', '.join(MODELS)})")


def train_model(corpus: Corpus, config, progress=None, device: str = "cpu"):
    if isinstance(config, GloVeConfig):
        return train_glove(corpus, config, progress, device)
    return train_skipgram(corpus, config, progress, device)


def train_or_load_model(corpus: Corpus, config, cache: Path | None = None, progress=None, device: str = "cpu"):
    if isinstance(config, GloVeConfig):
        return train_or_load_glove(corpus, config, cache, progress, device)
    return train_or_load(corpus, config, cache, progress, device)


def score_model(model, corpus, targets, estimator, progress=None, client=None, device: str = "cpu"):
    """Cross-loss influence of every document, by the model family's scorer."""
    if isinstance(model, GloVeModel):
        from ..influence.glove import score_glove
        return score_glove(model, corpus, targets, estimator, progress=progress)
    from ..influence.scorer import score_documents
    return score_documents(model, corpus, targets, estimator, progress=progress, client=client, device=device)


def load_model_dir(path: Path):
    import json
    kind = json.loads((Path(path) / "config.json").read_text(encoding="utf-8")).get("model")
    return GloVeModel.load(path) if kind == "glove" else SkipGramModel.load(path)
