"""Acceptance check (not a timed test): on the plain-gensim planted check's corpus (1,000 background and 100 planted
documents, ``biasaudit.planted.planted_corpus``), skip-gram trained with ``--backend torch`` and ranked with
``--estimator magic`` (and ``block`` beside it): does removing the top 100 lower d as much as removing the 100
planted documents? Same seed per pair of retrains; 3 seeds.

    python scripts/skipgram_magic_check.py [--seeds 1,2,3] [--estimators magic,block] [--epochs 60]
"""
from __future__ import annotations

import argparse
import time

import numpy as np

from biasaudit.corpus import MemoryCorpus
from biasaudit.influence import score_model
from biasaudit.influence.estimators import EstimatorConfig
from biasaudit.measures.targets import weat_target
from biasaudit.models.skipgram import SkipGramConfig, train_skipgram
from biasaudit.planted import PLANTED_TEST, planted_corpus
from biasaudit.wordsets import BiasTest


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", default="1,2,3")
    ap.add_argument("--estimators", default="magic,block")
    ap.add_argument("--epochs", type=int, default=60)
    ap.add_argument("--k", type=int, default=100)
    a = ap.parse_args()
    test = BiasTest.from_dict(PLANTED_TEST)
    corpus, planted, _ = planted_corpus(n_background=1000, n_planted=100)
    ids = [d.id for d in corpus]
    rows = {e: [] for e in a.estimators.split(",")}
    for seed in [int(s) for s in a.seeds.split(",")]:
        cfg = SkipGramConfig(vector_size=24, window=3, min_count=2, negative=5, epochs=a.epochs, seed=seed,
                             sample=1e-2, backend="torch")
        t0 = time.perf_counter()
        model = train_skipgram(corpus, cfg)
        t_train = time.perf_counter() - t0
        target = weat_target(test, model.vocab)

        def d_of(drop):
            m = train_skipgram(MemoryCorpus([d for d in corpus if d.id not in drop], "edited"), cfg)
            return float(score_model(m, MemoryCorpus([d for d in corpus if d.id not in drop], "edited"),
                                     [weat_target(test, m.vocab)], EstimatorConfig(name="block")).bias_value["planted"])

        base = score_model(model, corpus, [target], EstimatorConfig(name="block"))
        b0 = base.bias_value["planted"]
        d_planted = d_of(planted) - b0
        for est in rows:
            t1 = time.perf_counter()
            s = (base if est == "block" else score_model(model, corpus, [target], EstimatorConfig(name=est))
                 ).delta_bias_if_removed["planted"]
            t_score = time.perf_counter() - t1
            top = {ids[i] for i in np.argsort(s)[:a.k]}
            d_top = d_of(top) - b0
            rows[est].append({"seed": seed, "top": d_top, "planted": d_planted, "n_planted_in_top": len(top & planted),
                              "score_seconds": t_score, "train_seconds": t_train})
            print(f"seed {seed} {est}: baseline d {b0:+.3f}; remove top {a.k}: {d_top:+.3f}; remove the planted "
                  f"{len(planted)}: {d_planted:+.3f}; {len(top & planted)} planted in the top {a.k}; scoring "
                  f"{t_score:.0f} s = {t_score / t_train:.1f} trainings", flush=True)
    for est, rs in rows.items():
        top, pl = np.array([r["top"] for r in rs]), np.array([r["planted"] for r in rs])
        share = top.mean() / pl.mean()
        print(f"{est}: top {a.k} {top.mean():+.3f} ± {top.std(ddof=1) if len(top) > 1 else 0:.3f}, planted "
              f"{pl.mean():+.3f} ± {pl.std(ddof=1) if len(pl) > 1 else 0:.3f}: {share:.0%} of the planted effect "
              f"({'met' if share >= 0.9 else 'missed'} the 90% target); planted in the top {a.k}: "
              f"{', '.join(str(r['n_planted_in_top']) for r in rs)}")


if __name__ == "__main__":
    main()
