"""Figures of docs/results/lm_smooth.md (issue 31): the smooth audited phase of a language model, fine-tuned from the
base (``biasaudit.models.lm_base``) on the planted LM corpus (``biasaudit.planted.lm_planted_corpus``).

    OMP_NUM_THREADS=1 python scripts/lm_smooth.py [--lds 50] [--fraction 0.01] [--seeds 3] [--out reports/lm-smooth]

Steps, one at a time (each printed as it finishes, all written to --out/lm_smooth.json):
1. the base model (built once, then read from the cache);
2. the audited phase at each seed: the planted test's d and permutation p, and d without the planted documents;
3. metasmoothness of the seed-1 run, two directions (``biasaudit.influence.metasmooth``);
4. scores of the seed-1 run by magic, ekfac and lexical (time and peak memory of each);
5. same-seed masked LDS: --lds subsets each removing --fraction of the documents (weights 0, the same run
   otherwise), actual change of d against each estimator's summed prediction, Spearman; cross-seed LDS: the same
   subsets retrained at seed 2 against the seed-1 rankings.
"""
from __future__ import annotations

import argparse
import json
import resource
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from scipy.stats import spearmanr

from biasaudit.influence import score_model
from biasaudit.influence.estimators import EstimatorConfig
from biasaudit.influence.metasmooth import lm_metasmoothness
from biasaudit.measures.lm import template_measure
from biasaudit.models.lm import LMConfig, train_lm
from biasaudit.models.lm_base import base_folder
from biasaudit.planted import LM_TEMPLATES, LM_TEST, LM_WORDS_TEST, lm_planted_corpus, lm_words_corpus
from biasaudit.wordsets import BiasTest


def smooth_config(base: Path, seed: int, epochs: int, lr: float, max_len: int = 64,
                  batches: str = "length") -> LMConfig:
    """The smooth audited phase: Adam with eps_root 1e-6, dropout off, batch 128, float64, from the base
    (``max_len``: tokens per example; documents are cut into pieces of that size; ``batches``: LMConfig's)."""
    return LMConfig(finetune=str(base), eps_root=1e-6, dropout=0, dtype="float64", batch_size=128, epochs=epochs,
                    learning_rate=lr, weight_decay=0.0, seed=seed, max_len=max_len, batches=batches)


def corpus_of(args):
    """(corpus, planted ids, test dict) of --corpus: the planted LM corpus (nonce targets) or the real-word one."""
    if args.corpus == "words":
        corpus, planted = lm_words_corpus(n_background=args.background, n_planted=args.planted, repeats=args.repeats)
        return corpus, planted, LM_WORDS_TEST
    corpus, planted = lm_planted_corpus(n_background=args.background, n_planted=args.planted, repeats=args.repeats)
    return corpus, planted, LM_TEST


def exact_learner(corpus, test: dict) -> dict:
    """What a model that learned this corpus's rates exactly would measure: each target word's log odds of an
    attribute of A against one of B over its sentences (a template's attribute log-probabilities, each group's
    words equally likely), then WEAT's d and its exact one-sided p over every equal split of the targets. The
    design's ceiling: an audited phase that learns the corpus cannot show more."""
    import itertools
    import math
    import re
    xs, ys = test["target_x"]["words"], test["target_y"]["words"]
    a, b = set(test["attribute_a"]["words"]), set(test["attribute_b"]["words"])
    counts = {w: [0, 0] for w in xs + ys}
    for d in corpus:
        for w, attr in re.findall(r"(\w+) \w+ (\w+)", d.text):
            if w in counts and (attr in a or attr in b):
                counts[w][attr in b] += 1
    if any(0 in c for c in counts.values()):      # a target never with one group: infinite log odds
        return {"d": None, "p": None}
    s = np.array([math.log(counts[w][0] / counts[w][1]) for w in xs + ys])
    n = len(xs)
    stat = lambda idx: s[list(idx)].sum() - np.delete(s, list(idx)).sum()      # noqa: E731
    observed = stat(range(n))
    splits = [stat(c) for c in itertools.combinations(range(len(s)), n)]
    return {"d": float((s[:n].mean() - s[n:].mean()) / s.std(ddof=1)),
            "p": float(np.mean([v >= observed - 1e-12 for v in splits]))}


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lds", type=int, default=50)
    ap.add_argument("--fraction", type=float, default=0.01)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--background", type=int, default=300)
    ap.add_argument("--planted", type=int, default=20)
    ap.add_argument("--corpus", choices=("planted", "words"), default="planted",
                    help="planted: nonce targets (lm_planted_corpus); words: real words (lm_words_corpus)")
    ap.add_argument("--max-len", type=int, default=64, help="tokens per example (16: about a sentence)")
    ap.add_argument("--repeats", type=int, default=1, help="sentences per target word in a planted document")
    ap.add_argument("--batches", default="length", choices=("shuffled", "length"),
                    help="LMConfig.batches (length: examples of similar length together, the default recipe; "
                    "shuffled: uniform samples)")
    ap.add_argument("--cross-seeds", default="2", help="fresh seeds of the cross-seed LDS (comma separated; with "
                    "two or more, also their test-retest and the LDS against each subset's mean change)")
    ap.add_argument("--only-d", action="store_true", help="stop after the planted d of each seed (step 2)")
    ap.add_argument("--no-metasmooth", action="store_true", help="skip step 3 (a second process measuring other "
                    "LDS runs of the same design)")
    ap.add_argument("--lds-runs", default="same,cross", help="which LDS retrains of step 5, comma separated: same "
                    "(seed 1), cross (--cross-seeds); two processes (each its own --out) can split a large corpus's "
                    "retrains between cores")
    ap.add_argument("--estimators", default="magic,ekfac,lexical")
    ap.add_argument("--cache", default=None)
    ap.add_argument("--out", default="reports/lm-smooth")
    ap.add_argument("--rescore", default=None, help="estimators (e.g. ekfac:damping=0.01,gradient-dot) to score the "
                    "seed-1 run with and compare against the actual changes an earlier run saved in --out (no "
                    "retraining of the subsets)")
    args = ap.parse_args()
    if not set(args.lds_runs.split(",")) <= {"same", "cross"}:
        ap.error(f"--lds-runs takes same, cross or same,cross, got {args.lds_runs!r}")
    if args.rescore:
        return rescore(args)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    fig: dict = {"args": vars(args), "threads": torch.get_num_threads()}

    def save():
        (out / "lm_smooth.json").write_text(json.dumps(fig, indent=1, default=float))

    t = time.perf_counter()
    base = base_folder(Path(args.cache) if args.cache else None)
    fig["base"] = {"folder": str(base), "seconds": round(time.perf_counter() - t, 1)}
    print(f"base: {base} ({fig['base']['seconds']} s)", flush=True)
    corpus, planted, test_dict = corpus_of(args)
    test = BiasTest.from_dict(test_dict)

    def measure(model):
        return template_measure(test, model, LM_TEMPLATES)[0]

    def d_of(model) -> float:
        with torch.no_grad():
            return float(measure(model).fn(model.net))

    fig["exact_learner"] = exact_learner(corpus, test_dict)
    ex = fig["exact_learner"]
    print("an exact learner of the corpus's rates: " + ("undefined (a target never meets one attribute group)"
          if ex["d"] is None else f"d {ex['d']:+.3f} (p {ex['p']:.4f})"), flush=True)

    # 2. the audited phase at each seed
    fig["seeds"] = []
    models = {}
    for seed in range(1, args.seeds + 1):
        cfg = smooth_config(base, seed, args.epochs, args.lr, args.max_len, args.batches)
        t = time.perf_counter()
        model = train_lm(corpus, cfg)
        secs = time.perf_counter() - t
        models[seed] = model
        st = measure(model).stats(model.net, n_permutations=20_000, n_bootstrap=0)
        without = train_lm(corpus.without(planted), cfg)
        row = {"seed": seed, "d": st.effect_size, "p": st.p_value, "d_without_planted": d_of(without),
               "train_seconds": round(secs, 2), "steps": model.meta["steps"],
               "loss_per_epoch": model.meta["loss_per_epoch"]}
        fig["seeds"].append(row)
        print(f"seed {seed}: d {row['d']:+.3f} (p {row['p']:.4f}), without the planted documents "
              f"{row['d_without_planted']:+.3f}; {row['steps']} steps, {secs:.1f} s", flush=True)
        save()
    if args.only_d:
        return
    model = models[1]
    m = measure(model)

    # 3. metasmoothness
    if not args.no_metasmooth:
        ms = lm_metasmoothness(model, corpus, [m])
        fig["metasmoothness"] = ms
        print(f"metasmoothness: {ms['scores']} (h {ms['h']}, {ms['trainings']} trainings, {ms['seconds']} s)",
              flush=True)
        save()

    # 4. scores
    fig["estimators"] = {}
    scores = {}
    for name in args.estimators.split(","):
        t = time.perf_counter()
        before = peak_mb()
        res = score_model(model, corpus, [m], EstimatorConfig(name=name))
        scores[name] = res.delta_bias_if_removed[m.name]
        fig["estimators"][name] = {"seconds": round(time.perf_counter() - t, 2), "peak_rss_mb": round(peak_mb(), 1),
                                   "peak_rss_mb_before": round(before, 1)}
        top = np.argsort(scores[name])[:len(planted)]
        recall = len({res.doc_ids[i] for i in top} & planted) / len(planted)
        fig["estimators"][name]["planted_recall"] = recall
        print(f"{name}: {fig['estimators'][name]['seconds']} s, recall of the planted documents {recall:.2f}",
              flush=True)
        save()

    # 5. LDS, same seed (masked) and cross seed
    n = len(scores[next(iter(scores))])
    subsets = subsets_of(n, args.lds, args.fraction)
    k = len(subsets[0])
    from biasaudit.models.base import family_of
    fam = family_of(model)
    cross = [int(x) for x in args.cross_seeds.split(",")]
    which = set(args.lds_runs.split(","))
    runs = ([("same_seed", 1)] if "same" in which else []) + (
        [("cross_seed" if i == 0 else f"cross_seed_{c}", c) for i, c in enumerate(cross)] if "cross" in which else [])
    for kind, seed in runs:
        cfg = smooth_config(base, seed, args.epochs, args.lr, args.max_len, args.batches)
        d0 = d_of(models[seed]) if seed in models else d_of(train_lm(corpus, cfg))
        actual = []
        t = time.perf_counter()
        for i, s in enumerate(subsets):
            w = np.ones(n)
            w[s] = 0.0
            actual.append(d_of(fam.retrain_weighted(corpus, cfg, w)) - d0)
        secs = time.perf_counter() - t
        fig[f"lds_{kind}"] = {"actual": actual, "retrain_seconds": round(secs / len(subsets), 2)}
        for name, sc in scores.items():
            pred = [float(sc[s].sum()) for s in subsets]
            rho = spearmanr(pred, actual).correlation
            fig[f"lds_{kind}"][name] = float(rho)
            print(f"LDS {kind} {name}: {rho:+.3f} ({len(subsets)} subsets of {k} documents)", flush=True)
        save()
    fresh = [k for k, _ in runs if k != "same_seed"]
    if len(fresh) > 1:
        cross_seed_summary(fig, fresh, scores, subsets)
    fig["peak_rss_mb"] = round(peak_mb(), 1)
    save()
    print(f"peak memory {fig['peak_rss_mb']} MB; written {out / 'lm_smooth.json'}")


def cross_seed_summary(fig: dict, kinds: list[str], scores: dict, subsets) -> None:
    """Test-retest of the fresh seeds' actual changes (Spearman per pair) and each estimator's LDS against the
    subsets' mean change over those seeds (TRAK's form), into ``fig["cross_seed_mean"]``."""
    acts = [np.asarray(fig[f"lds_{k}"]["actual"]) for k in kinds]
    pairs = [float(spearmanr(acts[i], acts[j]).correlation) for i in range(len(acts)) for j in range(i + 1, len(acts))]
    mean = np.mean(acts, axis=0)
    row = {"test_retest": pairs, "test_retest_mean": float(np.mean(pairs))}
    for name, sc in scores.items():
        row[name] = float(spearmanr([sc[s].sum() for s in subsets], mean).correlation)
    fig["cross_seed_mean"] = row
    print(f"fresh seeds' test-retest {', '.join(f'{r:+.2f}' for r in pairs)}; LDS against the mean change: "
          + ", ".join(f"{n} {row[n]:+.3f}" for n in scores), flush=True)


def subsets_of(n: int, count: int, fraction: float) -> list[np.ndarray]:
    """The LDS subsets (seeded: a rescore draws the same ones)."""
    rng = np.random.default_rng(0)
    k = max(1, round(fraction * n))
    return [rng.choice(n, size=k, replace=False) for _ in range(count)]


def rescore(args) -> None:
    """LDS of other estimators against the actual changes a full run saved (same model, same subsets)."""
    from biasaudit.influence.estimators import parse_estimators

    fig = json.loads((Path(args.out) / "lm_smooth.json").read_text())
    a = fig["args"]
    corpus, _, test_dict = corpus_of(argparse.Namespace(**{"corpus": "planted", "repeats": 1, **a}))
    model = train_lm(corpus, smooth_config(Path(fig["base"]["folder"]), 1, a["epochs"], a["lr"], a.get("max_len", 64),
                                                                 a.get("batches", "length")))
    m = template_measure(BiasTest.from_dict(test_dict), model, LM_TEMPLATES)[0]
    subsets = subsets_of(len(list(corpus)), a["lds"], a["fraction"])
    for est in parse_estimators(args.rescore):
        t = time.perf_counter()
        sc = score_model(model, corpus, [m], est).delta_bias_if_removed[m.name]
        row = {kind: float(spearmanr([sc[s].sum() for s in subsets], fig[f"lds_{kind}"]["actual"]).correlation)
               for kind in ("same_seed", "cross_seed")}
        print(f"{est.label}: LDS same seed {row['same_seed']:+.3f}, cross seed {row['cross_seed']:+.3f} "
              f"({time.perf_counter() - t:.1f} s)", flush=True)


if __name__ == "__main__":
    main()
