"""The audit use case (``biasaudit score``): resolve the bias measures a model supports, score every document,
write ``scores.jsonl``, ``summary.json`` and ``config.json`` (staged, then moved into place) and return the summary
(what the CLI prints and the HTML report reads). Also the WEAT statistics of several models (``weat``).

``measures``: the measures a run reads and their checks; ``options``: ``ScoreOptions``; ``run``: ``run_score`` as
its steps; ``outputs``: what a run writes (scores, evidence, the check command); ``result``: ``RunResult``.
Every family difference is asked of the model's family (``biasaudit.models.base.family_of``).
"""
from .measures import (bias_measures, check_carried_measures, check_run_tests, check_target_measure,
                       measurable_words, measures_across_models, read_tests_with, weat_across_models)
from .options import ScoreOptions
from .outputs import (DROPPED_TOKENS, DROPPED_WORDS, LOST_FRACTION, PARTNER_DROPPED, REMOVAL_FRACTIONS, TABLE_N,
                      check_command, evidence, score_folder, snippet, write_scores)
from .result import RunResult
from .run import SCORE_FILES, run_score, seed_measures

__all__ = ["DROPPED_TOKENS", "DROPPED_WORDS", "LOST_FRACTION", "PARTNER_DROPPED", "REMOVAL_FRACTIONS", "RunResult",
           "SCORE_FILES", "ScoreOptions", "TABLE_N", "bias_measures", "check_carried_measures", "check_command",
           "check_run_tests", "check_target_measure", "evidence", "measurable_words", "measures_across_models",
           "read_tests_with", "run_score", "score_folder", "seed_measures", "snippet", "weat_across_models",
           "write_scores"]
