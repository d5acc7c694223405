"""The model families behind ``--model``: one place that maps a config to its trainer, cache, bias measures and
scorer (skip-gram and GloVe embeddings; small causal LMs)."""
from __future__ import annotations

from pathlib import Path

from ..corpus import Corpus
from ..errors import ConfigError
from .glove import GloVeConfig, GloVeModel, train_glove, train_or_load_glove
from .lm import LMConfig, LMModel, is_lm_dir, train_lm, train_or_load_lm
from .skipgram import SkipGramConfig, SkipGramModel, train_or_load, train_skipgram

MODELS = ("skipgram", "glove", "lm")
DEFAULT_ESTIMATOR = {"skipgram": "block", "glove": "block", "lm": "ekfac"}
# the shared training options each family takes (the rest are refused when given)
FAMILY_OPTIONS = {"skipgram": {"vector_size", "window", "min_count", "negative", "epochs", "seed", "workers", "sample",
                               "backend"},
                  "glove": {"vector_size", "window", "min_count", "epochs", "seed", "embedding"},
                  "lm": {"min_count", "epochs", "seed"}}


def require_lm() -> None:
    """--model lm needs transformers and kronfluence (the ``lm`` extra); say how to install them."""
    import importlib.util
    missing = [m for m in ("transformers", "kronfluence") if importlib.util.find_spec(m) is None]
    if missing:
        raise ConfigError(f"--model lm needs {' and '.join(missing)}: pip install -e '.[lm]' && "
                          "pip install --no-deps kronfluence==1.0.1")


def model_name(config) -> str:
    if isinstance(config, GloVeConfig):
        return "glove"
    if isinstance(config, LMConfig) or config is None:   # None: a foreign LM checkpoint
        return "lm"
    return "skipgram"


def parse_lm_config(spec: str | None) -> dict:
    """``hidden_size=64,num_layers=2,learning_rate=0.003`` -> LMConfig fields."""
    from dataclasses import fields

    out = {}
    types = {f.name: f.type for f in fields(LMConfig)}
    for item in [s.strip() for s in (spec or "").split(",") if s.strip()]:
        k, eq, v = item.partition("=")
        k = k.strip()
        if not eq or k not in types:
            raise ConfigError(f"--lm-config: bad setting {item!r} (known: {', '.join(types)})")
        try:
            out[k] = float(v) if types[k] == "float" else int(v)
        except ValueError as e:
            raise ConfigError(f"--lm-config: {k} needs a number, got {v!r}") from e
    return out


def make_config(model: str, lm_config: str | None = None, **kw):
    """A config for ``model`` from the shared training options (None: not given, the family's default); an
    option the family does not take is refused, naming it."""
    if model not in MODELS:
        raise ConfigError(f"unknown --model {model!r} (one of {', '.join(MODELS)})")
    given = {k: v for k, v in kw.items() if v is not None}
    for k in given:
        if k not in FAMILY_OPTIONS[model]:
            raise ConfigError(f"--{k.replace('_', '-')} does not apply to --model {model}")
    if lm_config is not None and model != "lm":
        raise ConfigError("--lm-config applies to --model lm only")
    if model == "skipgram":
        return SkipGramConfig(**given)
    if model == "glove":
        return GloVeConfig(**given)
    require_lm()
    return LMConfig(**{**given, **parse_lm_config(lm_config)})


def train_model(corpus: Corpus, config, progress=None, device: str = "cpu"):
    if isinstance(config, GloVeConfig):
        return train_glove(corpus, config, progress, device)
    if isinstance(config, LMConfig):
        return train_lm(corpus, config, progress, device)
    return train_skipgram(corpus, config, progress, device)


def train_or_load_model(corpus: Corpus, config, cache: Path | None = None, progress=None, device: str = "cpu"):
    if isinstance(config, GloVeConfig):
        return train_or_load_glove(corpus, config, cache, progress, device)
    if isinstance(config, LMConfig):
        return train_or_load_lm(corpus, config, cache, progress, device)
    return train_or_load(corpus, config, cache, progress, device)


def known_words(model, tests) -> set[str]:
    """The test words the model can measure: in the vocabulary (embeddings) or known to the tokenizer (LMs)."""
    if isinstance(model, LMModel):
        return {w for t in tests for w in t.words if model.encoder.known(w)}
    return {w for t in tests for w in t.words if w in model.key_to_index}


def bias_measures(model, tests, strict: bool = False, templates=None) -> tuple[list, list, dict, dict]:
    """(differentiable measures, the tests as kept, {test: dropped words}, {skipped test: reason}) of the model
    family: WEAT effect sizes on embeddings, template association on language models. Missing words follow
    ``biasaudit.wordsets.restrict_tests``."""
    from ..influence.targets import weat_target
    from ..lm_metrics import template_measure
    from ..wordsets import restrict_tests

    is_lm = isinstance(model, LMModel)
    kept, dropped, skipped = restrict_tests(list(tests), known_words(model, tests), strict,
                                            "the tokenizer's vocabulary" if is_lm else "the vocabulary")
    measures, kept_tests = [], []
    for _, k in kept:
        m = template_measure(k, model, templates, allow_oov=False)[0] if is_lm else weat_target(k, model.vocab)
        measures.append(m)
        kept_tests.append(k)
    return measures, kept_tests, dropped, skipped


def score_model(model, corpus, targets, estimator, progress=None, client=None, device: str = "cpu"):
    """Cross-loss influence of every document, by the model family's scorer."""
    if isinstance(model, LMModel):
        from ..influence.ekfac import score_lm
        return score_lm(model, corpus, targets, estimator, progress=progress, device=device)
    if estimator.name == "ekfac":
        raise ConfigError("estimator ekfac is for --model lm; embeddings take block, cg, lissa or gradient-dot")
    if isinstance(model, GloVeModel):
        from ..influence.glove import score_glove
        return score_glove(model, corpus, targets, estimator, progress=progress)
    from ..influence.scorer import score_documents
    return score_documents(model, corpus, targets, estimator, progress=progress, client=client, device=device)


def load_model_dir(path: Path, device: str = "cpu"):
    from ..io import read_json

    path = Path(path)
    if is_lm_dir(path):
        return LMModel.load(path, device)
    head = read_json(path / "config.json", "model config")
    kind = head.get("model") if isinstance(head, dict) else None
    if kind == "glove":
        return GloVeModel.load(path)
    if kind == "skipgram" or kind is None and (path / "vectors.safetensors").exists():
        return SkipGramModel.load(path)
    return LMModel.load(path, device)      # a foreign HF causal-LM checkpoint
