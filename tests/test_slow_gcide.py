"""Sign against real retraining on the bundled corpus (slow: about 10 minutes on 2 cores; `pytest -m slow`)."""
import pytest

from biasaudit.corpus import load_corpus
from biasaudit.experiments import ExperimentSpec, run_experiment
from biasaudit.influence.estimators import EstimatorConfig
from biasaudit.models.skipgram import SkipGramConfig
from biasaudit.wordsets import resolve_heldout, resolve_tests


@pytest.mark.slow
def test_removing_the_top_documents_of_gcide_lowers_math_arts(tmp_path):
    tests = resolve_tests(["math-arts"])
    spec = ExperimentSpec(corpus=load_corpus("gcide"), model=SkipGramConfig(), tests=tests,
                          heldout=resolve_heldout(tests, None), estimators=[EstimatorConfig()], ks="0.1%",
                          seeds=1, conditions=("baseline", "remove-top", "remove-random"), quality=False)
    s = run_experiment(spec, tmp_path / "exp")   # baselines come from the user's model cache when present
    by = {d["condition"]: d for d in s["conditions"]}
    top, rand = by["remove-top"], by["remove-random"]
    assert top["predicted_change_mean"] < 0
    assert top["change_mean"] < -0.2 and top["change_mean"] < rand["change_mean"] - 0.2
