"""biasaudit: audit social bias in word embeddings and trace it back to the training documents that caused it.

The Python API (``biasaudit.api``, documented in docs/api.md) is exported here and imported on first use, so
``import biasaudit`` stays fast: torch, gensim and transformers load only when a verb needs them.
"""

from ._version import __version__

__all__ = ["load_corpus", "model_config", "train", "train_seeds", "load_model", "from_gensim", "from_hf",
           "bias_tests", "measure", "measures", "measures_request", "score", "experiment", "debias_corpus",
           "write_report", "load_result", "WeatResult", "MeasuresResult", "ScoreResult", "ExperimentResult",
           "DebiasResult", "Rows"]


def __getattr__(name: str):
    if name in __all__:
        from . import api
        return getattr(api, name)
    raise AttributeError(f"module 'biasaudit' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(__all__))
