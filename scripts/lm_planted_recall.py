"""Acceptance check (not a timed test): recall of the planted documents by LM cross-loss influence, ekfac against
gradient-dot on the same model, over training seeds, on the planted LM corpus (``biasaudit.planted``).

    python scripts/lm_planted_recall.py [--seeds 3] [--background 300] [--planted 20] [--epochs 20]

recall@m: the fraction of the m planted documents among the m documents with the most negative
delta_bias_if_removed (the documents said to drive the bias up most).
"""
from __future__ import annotations

import argparse
import time

import numpy as np
from scipy.stats import spearmanr

from biasaudit.influence.ekfac import score_lm
from biasaudit.influence.estimators import EstimatorConfig
from biasaudit.measures.lm import template_measure
from biasaudit.models.lm import LMConfig, train_lm
from biasaudit.planted import LM_TEMPLATES, LM_TEST, lm_planted_corpus
from biasaudit.wordsets import BiasTest


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--background", type=int, default=300)
    ap.add_argument("--planted", type=int, default=20)
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--offsets", default="-0.3,-0.1,0.1,0.3", help="background leanings of the four word twins")
    ap.add_argument("--lm-config", default="hidden_size=32,num_heads=2,intermediate_size=64,batch_size=16")
    a = ap.parse_args()
    from biasaudit.models.lm import parse_lm_config

    corpus, planted = lm_planted_corpus(a.background, a.planted,
                                        offsets=tuple(float(v) for v in a.offsets.split(",")))
    test = BiasTest.from_dict(LM_TEST)
    print(f"{corpus.scan().n_documents} documents, {len(planted)} planted; templates {LM_TEMPLATES}")
    print(f"{'seed':>4} {'d':>7} {'ekfac recall':>13} {'grad-dot recall':>16} {'spearman(ekfac, gd)':>20} "
          f"{'train s':>8} {'ekfac s':>8}")
    rows = []
    for seed in range(1, a.seeds + 1):
        cfg = LMConfig(**{**parse_lm_config(a.lm_config), "min_count": 1, "epochs": a.epochs, "seed": seed, "min_steps": 0})
        t = time.perf_counter()
        model = train_lm(corpus, cfg)
        t_train = time.perf_counter() - t
        m, _ = template_measure(test, model, LM_TEMPLATES)
        d = m.stats(model.net)["effect_size"]
        rec, s_all, t_ek = {}, {}, 0.0
        for est in ("ekfac", "gradient-dot"):
            t = time.perf_counter()
            r = score_lm(model, corpus, [m], EstimatorConfig(name=est))
            if est == "ekfac":
                t_ek = time.perf_counter() - t
            s = r.delta_bias_if_removed["planted"]
            top = np.argsort(s)[:len(planted)]
            rec[est] = float(np.mean([r.doc_ids[i] in planted for i in top]))
            s_all[est] = s
        rho = spearmanr(s_all["ekfac"], s_all["gradient-dot"])[0]
        rows.append((d, rec["ekfac"], rec["gradient-dot"]))
        print(f"{seed:>4} {d:>+7.3f} {rec['ekfac']:>13.2f} {rec['gradient-dot']:>16.2f} {rho:>20.2f} "
              f"{t_train:>8.1f} {t_ek:>8.1f}", flush=True)
    mean = np.mean(rows, axis=0)
    print(f"mean {mean[0]:>+7.3f} {mean[1]:>13.2f} {mean[2]:>16.2f}")


if __name__ == "__main__":
    main()
