"""What exact metagradients (``--estimator magic``) cost against one training, in one run: time per measure and
peak memory, each measured in a fresh process, printed side by side as ratios (the machine is shared and noisy).

    python scripts/bench_magic.py                 # the planted LM corpus, micro model (about 5 minutes)
    python scripts/bench_magic.py --big           # 1,000 documents, the default LM (2,000 steps; about 40 minutes)
    python scripts/bench_magic.py --family glove  # GloVe / skip-gram --backend torch on the planted corpus

Each child process reports its wall time and peak RSS; "import only" is a child that imports the same modules and
builds the corpus, so the memory figures are also given above that floor (what training and magic themselves hold).
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))


def _corpus(big: bool):
    if big:
        from lm_seed_noise import build_corpus
        return build_corpus(1000, 60)[0]
    from biasaudit.planted import lm_planted_corpus
    return lm_planted_corpus()[0]


def _config(family: str, big: bool):
    if family == "skipgram":
        from biasaudit.models.skipgram import SkipGramConfig
        return SkipGramConfig(vector_size=16, window=3, min_count=2, epochs=5, seed=1, backend="torch")
    if family == "glove":
        from biasaudit.models.glove import GloVeConfig
        return GloVeConfig(vector_size=16, window=3, min_count=2, epochs=20, seed=1)
    if family == "lm":
        from biasaudit.models.lm import LMConfig
        return LMConfig() if big else LMConfig(hidden_size=32, num_layers=2, num_heads=2, intermediate_size=64,
                                               min_count=1, epochs=20, min_steps=0, batch_size=16)
    raise SystemExit(f"unknown family {family}")


def child(args) -> dict:
    import torch
    torch.set_num_threads(1)
    from biasaudit.models.base import family_of, train_or_load
    from biasaudit.wordsets import BiasTest, resolve_tests
    from biasaudit.planted import LM_TEST, PLANTED_TEST, planted_corpus

    corpus = _corpus(args.big) if args.family == "lm" else planted_corpus()[0]
    cfg = _config(args.family, args.big)
    t0 = time.perf_counter()
    out = {}
    if args.child == "train":
        model, _ = train_or_load(corpus, cfg, cache=Path(args.cache))
        out["seconds"] = time.perf_counter() - t0
    elif args.child == "magic":
        model, cached = train_or_load(corpus, cfg, cache=Path(args.cache))
        assert cached, "train first"
        fam = family_of(model)
        if fam.name == "lm":
            second = {**LM_TEST, "name": "planted-swapped", "target_x": LM_TEST["target_y"],
                      "target_y": LM_TEST["target_x"]}
            tests = (resolve_tests(["math-arts", "science-arts"]) if args.big
                     else [BiasTest.from_dict(LM_TEST), BiasTest.from_dict(second)])
        else:
            tests = [BiasTest.from_dict(PLANTED_TEST)]
        from biasaudit.audit import bias_measures
        targets = bias_measures(model, tests[:args.measures], False, None, 1, corpus)[0]
        from biasaudit.influence import score_model
        from biasaudit.influence.estimators import EstimatorConfig
        t0 = time.perf_counter()
        r = score_model(model, corpus, targets, EstimatorConfig(name="magic"))
        out["seconds"] = time.perf_counter() - t0
        out["measures"] = len(targets)
        out["replay_relative_difference"] = next(iter(r.solver_info.values()))["replay_relative_difference"]
    else:
        out["seconds"] = 0.0
    out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return out


def run_child(kind: str, args, measures: int = 1) -> dict:
    cmd = [sys.executable, __file__, "--child", kind, "--cache", args.cache, "--family", args.family,
           "--measures", str(measures)] + (["--big"] if args.big else [])
    res = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    if res.returncode:
        sys.exit(f"child {kind} failed:\n{res.stderr[-3000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--big", action="store_true")
    ap.add_argument("--family", default="lm", choices=["lm", "glove", "skipgram"])
    ap.add_argument("--child", default=None)
    ap.add_argument("--cache", default=None)
    ap.add_argument("--measures", type=int, default=1)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(args)))
        return
    with tempfile.TemporaryDirectory(prefix="bench-magic-") as cache:
        args.cache = cache
        floor = run_child("import", args)
        train = run_child("train", args)
        magic1 = run_child("magic", args, 1)
        magic2 = run_child("magic", args, 2)
    t = train["seconds"]
    print(f"corpus: {'1,000-document planted GCIDE' if args.big else 'planted (biasaudit.planted)'}, "
          f"family {args.family}, one thread")
    print(f"{'':<28}{'seconds':>9}{'x training':>12}{'peak RSS MB':>13}{'above floor':>13}{'x training':>12}")
    above_t = train["peak_rss_mb"] - floor["peak_rss_mb"]
    for name, r in (("import only (floor)", floor), ("one training", train),
                    (f"magic, {magic1['measures']} measure", magic1), (f"magic, {magic2['measures']} measures", magic2)):
        above = r["peak_rss_mb"] - floor["peak_rss_mb"]
        per = r["seconds"] / max(1, r.get("measures", 1))
        print(f"{name:<28}{r['seconds']:>9.1f}{(r['seconds'] / t if t else 0):>12.2f}{r['peak_rss_mb']:>13.0f}"
              f"{above:>13.0f}{(above / above_t if above_t > 0 else float('nan')):>12.2f}"
              + (f"   per measure {per / t:.2f} trainings" if "measures" in r else ""))
    print(f"replay reproduced the saved weights: relative difference {magic1['replay_relative_difference']:.1e}")
    per_measure = magic2["seconds"] / max(1, magic2["measures"]) / t
    mem = magic1["peak_rss_mb"] / train["peak_rss_mb"]
    print(f"targets: cost <= 4 trainings per measure: {per_measure:.2f} ({'met' if per_measure <= 4 else 'missed'}); "
          f"peak memory <= 2x training's: {mem:.2f}x ({'met' if mem <= 2 else 'missed'})")


if __name__ == "__main__":
    main()
