"""Calibrate the metasmoothness threshold (``biasaudit.influence.metasmooth.THRESHOLD``) against LDS: tiny LMs on a
slice of the planted LM corpus, trained with recipes from smooth to chaotic (Adam's epsilon inside or outside the
root, dropout, epochs, float32), each measured by metasmoothness (two directions) and by magic's same-seed masked
LDS (subsets of documents weighted 0 in the same run, actual change of the planted test's d against the summed
metagradient prediction, Spearman).

    OMP_NUM_THREADS=1 python scripts/metasmooth_calibration.py [--docs 96] [--lds 50] [--out reports/ms-calibration]
"""
from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from scipy.stats import spearmanr

from biasaudit.corpus import MemoryCorpus
from biasaudit.influence import score_model
from biasaudit.influence.estimators import EstimatorConfig
from biasaudit.influence.metasmooth import lm_metasmoothness
from biasaudit.measures.lm import template_measure
from biasaudit.models.base import family_of
from biasaudit.models.lm import LMConfig, train_lm
from biasaudit.planted import LM_TEMPLATES, LM_TEST, lm_planted_corpus
from biasaudit.wordsets import BiasTest

TINY = LMConfig(hidden_size=16, num_layers=1, num_heads=2, intermediate_size=32, min_count=1, epochs=2, min_steps=0,
                batch_size=16, dtype="float64", learning_rate=1e-2, eps_root=1e-6, dropout=0)
RECIPES = {
    "eps_root 1e-6, 2 epochs": {},
    "eps_root 1e-6, 10 epochs": {"epochs": 10},
    "eps_root 1e-6, 30 epochs": {"epochs": 30},
    "eps_root 1e-8, 10 epochs": {"epochs": 10, "eps_root": 1e-8},
    "AdamW, 2 epochs": {"eps_root": 0.0},
    "AdamW, 10 epochs": {"eps_root": 0.0, "epochs": 10},
    "AdamW, 30 epochs": {"eps_root": 0.0, "epochs": 30},
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--docs", type=int, default=96)
    ap.add_argument("--lds", type=int, default=50)
    ap.add_argument("--remove", type=int, default=2, help="documents weighted 0 in each LDS subset")
    ap.add_argument("--out", default="reports/ms-calibration")
    args = ap.parse_args()
    corpus, _ = lm_planted_corpus()
    corpus = MemoryCorpus(list(corpus)[:args.docs], "planted-slice")
    n = args.docs
    rng = np.random.default_rng(0)
    subsets = [rng.choice(n, size=args.remove, replace=False) for _ in range(args.lds)]
    test = BiasTest.from_dict(LM_TEST)
    rows = []
    print(f"{'recipe':<28}{'metasmoothness':>22}{'LDS magic':>11}{'LDS lexical':>13}{'s':>6}", flush=True)
    for label, change in RECIPES.items():
        t = time.perf_counter()
        cfg = replace(TINY, **change)
        model = train_lm(corpus, cfg)
        m, _ = template_measure(test, model, LM_TEMPLATES)
        ms = lm_metasmoothness(model, corpus, [m])
        fam = family_of(model)

        def d_of(mm) -> float:
            with torch.no_grad():
                return float(m.fn(mm.net))

        d0 = d_of(model)
        actual = []
        for s in subsets:
            w = np.ones(n)
            w[s] = 0.0
            actual.append(d_of(fam.retrain_weighted(corpus, cfg, w)) - d0)
        lds = {}
        for est in ("magic", "lexical"):
            sc = score_model(model, corpus, [m], EstimatorConfig(name=est)).delta_bias_if_removed[m.name]
            lds[est] = float(spearmanr([sc[s].sum() for s in subsets], actual).correlation)
        row = {"recipe": label, "config": cfg.to_dict(), "metasmoothness": ms["scores"], "lds": lds,
               "seconds": round(time.perf_counter() - t, 1)}
        rows.append(row)
        print(f"{label:<28}{ms['scores'][0]:>11.3f}{ms['scores'][1]:>11.3f}{lds['magic']:>+11.3f}"
              f"{lds['lexical']:>+13.3f}{row['seconds']:>6.0f}", flush=True)
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "calibration.json").write_text(json.dumps({"args": vars(args), "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
