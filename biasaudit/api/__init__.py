"""The Python API: the nouns and verbs the command line is written on, for scripts and notebooks.

    import biasaudit as ba
    corpus = ba.load_corpus("corpus.jsonl")
    model = ba.train(corpus, vector_size=50, epochs=5)          # or ba.load_model / ba.from_gensim / ba.from_hf
    ba.measure(model, ["math-arts"])                             # WEAT with p-values and CIs
    result = ba.score(model, corpus, ["math-arts"])              # every document's influence on the bias
    result.top(10); result.to_pandas()
    ba.experiment(model, corpus, ["math-arts"], k="1%", seeds=3) # retrain without the top documents

Each verb does what its command does and writes the same output folder (``score``: summary.json and scores.jsonl,
``experiment``: experiment.json and results.csv, ``debias_corpus``: manifest.json and the edited corpus), so a
folder written here is read by ``biasaudit report`` and the other way round (``load_result``). Results are
objects over those folders: ``to_pandas()``, ``top(n)``, ``save(folder)`` / ``load(folder)``, and
``_repr_html_`` (the report's tables and charts in a notebook cell).

Heavy libraries (torch, gensim, transformers, pandas, wefe) are imported by the verbs that need them, never by
``import biasaudit``. Messages go to the caller's ``log`` (a note) and ``progress`` (stage, done, total)
callbacks when given; errors are BiasAuditError subclasses, as everywhere in the library.

The modules, by noun: ``loading`` (corpora, tests, models), ``measuring``, ``scoring``, ``retraining`` (the
verbs), ``results`` (the result objects), ``arguments`` (what every verb does with its arguments) and ``checks``
(what the command line asks around the verbs: families, limits, the checks made before any work)."""

from __future__ import annotations

from .arguments import Log, Progress  # noqa: F401  (the callbacks' types)
from .checks import (bundled_tests, check_carried_measures, check_count, check_debias_out,  # noqa: F401
                     check_device, check_measure, check_scheduler, check_sizes, check_tests, check_tokenizer,
                     count_trainings, debias_methods, default_tests, edit_selections, finetune_config,
                     model_families, model_family, model_limits, parse_estimators, read_ids,
                     read_swaps)   # (the command line's checks)
from .loading import (  # noqa: F401  (the CLI too)
    FILE_SETTINGS, check_templates, estimators, read_templates, run_config, seed_count)
from .loading import bias_tests, from_gensim, from_hf, load_corpus, load_model, model_config, train, train_seeds
from .measuring import MeasuresResult, measure, measures, measures_request
from .results import DebiasResult, ExperimentResult, Rows, ScoreResult, WeatResult, load_result, write_report
from .retraining import debias_corpus, experiment
from .scoring import ScoreRequest, score, score_request  # noqa: F401

__all__ = ["load_corpus", "model_config", "train", "train_seeds", "load_model", "from_gensim", "from_hf",
           "bias_tests", "measure", "measures", "measures_request", "score", "experiment", "debias_corpus",
           "write_report", "load_result", "WeatResult", "MeasuresResult", "ScoreResult", "ExperimentResult",
           "DebiasResult", "Rows"]
