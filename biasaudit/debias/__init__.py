"""Debiasing by editing a corpus: the documents that move each test toward 0, as few as the stopping rule needs,
removed, swapped or augmented, written out with a manifest (``run_debias``); ``verify_edit`` retrains seeds on the
edit. The prior-work baseline that edits word vectors (hard-debias) is in ``experiments/baselines.py``.

``options``: ``DebiasOptions``; ``edit``: ``run_debias`` as its steps; ``band``: the seed noise, significance and
the stopping rule; ``verify``: ``verify_edit``.
"""
from .band import band_of, refuse_insignificant, seed_noise, significance, stopping_rule
from .edit import DEBIAS_FILES, check_out, claim_out, run_debias
from .options import METHODS, SELECT, DebiasOptions
from .verify import verify_edit

__all__ = ["DEBIAS_FILES", "METHODS", "SELECT", "DebiasOptions", "band_of", "check_out", "claim_out",
           "refuse_insignificant", "run_debias", "seed_noise", "significance", "stopping_rule", "verify_edit"]
