"""``biasaudit experiment``: retrain with the ranked documents removed, upweighted or edited, against random edits,
over paired seeds, and measure whether the bias moves as the influence scores predicted.

``plan`` decides what is trained, ``run`` trains and measures (resumable, on Dask), ``summary`` reports."""
from .plan import CONDITIONS, DEFAULT_CONDITIONS, MODES, ExperimentSpec, parse_k, parse_ks
from .run import default_folder, run_experiment

__all__ = ["CONDITIONS", "DEFAULT_CONDITIONS", "MODES", "ExperimentSpec", "default_folder", "parse_k", "parse_ks",
           "run_experiment"]
