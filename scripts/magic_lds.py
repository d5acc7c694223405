"""LDS of the LM estimators on the planted LM corpus (``biasaudit.planted.lm_planted_corpus``, micro model): magic,
ekfac and gradient-dot side by side, each subset retrained at the ranking's seed (same-seed) and at a seed the
ranking did not use (cross-seed), beside top-1% removal against random removal over 3 fresh seeds.

    python scripts/magic_lds.py [--lds 40] [--fraction 0.01] [--ensemble 1] [--out reports/magic-lds]

One experiment (``biasaudit.experiments.run_experiment``, resumable: rerun the same command after an interruption);
it prints the experiment's leaderboard and writes experiment.json into --out.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from biasaudit.experiments import ExperimentSpec, run_experiment
from biasaudit.influence.estimators import parse_estimators
from biasaudit.models.lm import LMConfig
from biasaudit.planted import LM_TEMPLATES, LM_TEST, lm_planted_corpus
from biasaudit.wordsets import BiasTest

MICRO = LMConfig(hidden_size=32, num_layers=2, num_heads=2, intermediate_size=64, min_count=1, epochs=20, min_steps=0,
                 batch_size=16)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lds", type=int, default=40)
    ap.add_argument("--fraction", type=float, default=0.01)
    ap.add_argument("--ensemble", type=int, default=1)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--estimators", default="magic,ekfac,gradient-dot")
    ap.add_argument("--k", default="1%")
    ap.add_argument("--workers", type=int, default=2, help="local Dask workers (0: in this process)")
    ap.add_argument("--mode", default="masked", help="masked: each retrain is the baseline's run (same batches, "
                    "learning rates, random draws) with the removed documents' weights at 0, bergson's protocol; "
                    "scratch: a fresh training on the edited corpus (batches and draws change)")
    ap.add_argument("--out", default="reports/magic-lds")
    args = ap.parse_args()
    corpus, planted = lm_planted_corpus()
    spec = ExperimentSpec(corpus=corpus, model=MICRO, tests=[BiasTest.from_dict(LM_TEST)], heldout={},
                          estimators=parse_estimators(args.estimators), ks=args.k, seeds=args.seeds,
                          conditions=("baseline", "remove-top", "remove-random"), quality=False,
                          templates=tuple(LM_TEMPLATES), lds=args.lds, lds_fraction=args.fraction,
                          ensemble=args.ensemble, fresh_seeds=True, mode=args.mode)
    client = None
    if args.workers:
        from dask.distributed import Client, LocalCluster
        client = Client(LocalCluster(n_workers=args.workers, threads_per_worker=1, processes=True,
                                     host="127.0.0.1", dashboard_address=None))
    try:
        s = run_experiment(spec, Path(args.out), client=client, log=print)
    finally:
        if client is not None:
            client.close()
    print(f"\nplanted LM corpus ({len(planted)} planted of {s['corpus']['n_documents']} documents), micro LM, "
          f"--mode {args.mode}; "
          f"ranking seeds {spec.ranking_seeds}, retraining seeds {s['seeds']}; LDS over {args.lds} subsets "
          f"removing {args.fraction:.0%} each; one training {s.get('train_seconds_per_run')} s")
    print(f"{'estimator':<22}{'LDS same':>18}{'LDS cross':>18}{'top vs random (p)':>22}{'cost':>7}")
    for r in s["leaderboard"]:
        def lds(kind):
            v, ci = r.get(f"lds_{kind}"), r.get(f"lds_{kind}_ci95")
            return "-" if v is None else f"{v:+.2f} [{ci[0]:+.2f},{ci[1]:+.2f}]"
        tvr = "-" if r.get("top_vs_random") is None else f"{r['top_vs_random']:+.2f} ({r['top_vs_random_p']:.3f})"
        print(f"{r['estimator']:<22}{lds('same_seed'):>18}{lds('cross_seed'):>18}{tvr:>22}"
              f"{r['cost_in_trainings'] if r['cost_in_trainings'] is not None else '-':>7}")


if __name__ == "__main__":
    main()
