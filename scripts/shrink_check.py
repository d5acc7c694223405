"""The shrinkage of an ensemble's top-k prediction, checked against an experiment's fresh-seed retrains
(docs/results/lm_smooth.md): one lambda for every document (``influence.ensemble.seed_reliability``) against the
set's own, one seed left out (``group_reliability``).

    OMP_NUM_THREADS=1 python scripts/shrink_check.py EXPERIMENT_DIR -c c.jsonl -t t.json --templates templates.txt
        [--lm-config batches=shuffled]

EXPERIMENT_DIR is a finished `biasaudit experiment --model lm --ensemble N --fresh-seeds` with remove-top (and
remove-ids: give its file) rows: this script trains (or reads from the cache) and scores the ensemble's seeds
again (the same recipe, so the same models and scores) and prints, for each such row, the actual mean change on
the fresh seeds beside the plain sum and the two shrunk predictions.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from biasaudit import api
from biasaudit.influence import score_model
from biasaudit.influence.ensemble import ensemble_result, group_reliability, seed_reliability, shrunk_sum
from biasaudit.influence.estimators import EstimatorConfig
from biasaudit.measures.lm import load_templates, template_measure
from biasaudit.wordsets import BiasTest


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("experiment")
    ap.add_argument("-c", "--corpus", required=True)
    ap.add_argument("-t", "--test", required=True)
    ap.add_argument("--templates", required=True)
    ap.add_argument("--lm-config", default=None)
    ap.add_argument("--estimator", default="magic")
    ap.add_argument("--remove-ids", default=None, help="the experiment's --remove-ids file")
    a = ap.parse_args()
    exp = json.loads((Path(a.experiment) / "experiment.json").read_text())
    seeds = next(iter(next(iter(exp["solver_info"].values())).values()))["ensemble_seeds"]
    corpus = api.load_corpus(a.corpus)
    test = BiasTest.from_dict(json.loads(Path(a.test).read_text()))
    templates = load_templates(a.templates)
    results, measure = [], None
    for seed in seeds:
        cfg = api.model_config("lm", lm_config=",".join(x for x in (a.lm_config, f"seed={seed}") if x))
        t = time.perf_counter()
        [model] = api.train_seeds(corpus, cfg)
        measure = template_measure(test, model, templates)[0]
        results.append(score_model(model, corpus, [measure], EstimatorConfig(name=a.estimator)))
        print(f"seed {seed}: trained and scored in {time.perf_counter() - t:.0f} s", flush=True)
    ens, _ = ensemble_result(results, seeds, {measure.name: measure.bound})
    stack = np.stack([r.delta_bias_if_removed[measure.name] for r in results])
    mean = stack.mean(0)
    pos = {d: i for i, d in enumerate(ens.doc_ids)}
    lam = seed_reliability(stack)
    print(f"seed reliability (every document): {lam:.3f}")
    for row in exp["conditions"]:
        if row["estimator"] != a.estimator or row["condition"] not in ("remove-top", "remove-ids"):
            continue
        if row["condition"] == "remove-top":           # the plan's rule: the k lowest mean scores
            docs = np.argsort(mean, kind="stable")[:row["n_docs"]]
        elif a.remove_ids:
            docs = np.array([pos[i] for i in Path(a.remove_ids).read_text().split()])
        else:
            continue
        group = group_reliability(stack, docs)
        plain = float(mean[docs].sum())
        print(f"{row['condition']} k {row['n_docs']}: actual {row['change_mean']:+.3f} (5 fresh seeds); plain sum "
              f"{plain:+.3f} (actual/predicted {row['change_mean'] / plain:.2f}); shrunk by every document's "
              f"lambda {shrunk_sum(mean, docs, lam):+.3f} ({row['change_mean'] / shrunk_sum(mean, docs, lam):.2f})"
              + (f"; by this set's, one seed left out ({group:.3f}) {shrunk_sum(mean, docs, group):+.3f} "
                 f"({row['change_mean'] / shrunk_sum(mean, docs, group):.2f})" if group is not None else
                 "; not an end of the ranking (no set lambda)"), flush=True)


if __name__ == "__main__":
    main()
