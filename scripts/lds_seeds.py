"""How far a fresh seed's LDS can go: the same LDS subsets of an experiment retrained at more fresh seeds, their
actual changes compared across seeds, and TRAK's form of LDS (each subset's change averaged over the seeds).

    OMP_NUM_THREADS=1 python scripts/lds_seeds.py EXPERIMENT_DIR --corpus C --seed 5 [--out FILE]   # one per seed
    python scripts/lds_seeds.py EXPERIMENT_DIR --combine FILE [FILE ...] [--corpus C]   # C: add the lexical floor

EXPERIMENT_DIR: a finished ``biasaudit experiment --lds N`` on a language model's audited phase (its test, templates
and model settings read from experiment-config.json, the corpus C it ran on checked against the recorded hash; the
subsets are the plan's, drawn from a fixed seed).
A seed's run: its baseline and each subset's retrain (the removal keeps the baseline's batches, as the experiment's
retrains do), the change of d written to --out. --combine: for every pair of seeds (the experiment's own cross seed
included), the Spearman between their actual changes (test-retest: how much of a subset's change at one fresh seed
is the subset's, not the seed's); each estimator's LDS at each fresh seed, and against the change averaged over
the seeds.
"""
from __future__ import annotations

import argparse
import itertools
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
from scipy.stats import spearmanr

from biasaudit import api
from biasaudit.experiments.plan import RANDOM_SEED, edit_id
from biasaudit.models.base import family_of, retrain_model, train_or_load
from biasaudit.models.lm import LMConfig
from biasaudit.wordsets import BiasTest


def _setup(folder: Path):
    cfg = json.loads((folder / "experiment-config.json").read_text())
    scores = json.loads((folder / "scores.json").read_text())
    return cfg, scores


def subsets(scores: dict, n: int, fraction: float) -> list[tuple[str, np.ndarray]]:
    """The plan's LDS subsets (experiments.plan.build_plan draws them the same way)."""
    doc_ids = scores["doc_ids"]
    rng = np.random.default_rng(RANDOM_SEED + 1)
    n_drop = int(round(fraction * len(doc_ids)))
    out = []
    for _ in range(n):
        idx = np.sort(rng.choice(len(doc_ids), size=n_drop, replace=False))
        out.append((edit_id("remove", tuple(doc_ids[i] for i in idx)), idx))
    return out


def run_seed(folder: Path, corpus_path: str, seed: int, out: Path) -> None:
    cfg, scores = _setup(folder)
    corpus = api.load_corpus(corpus_path)
    if corpus.hash != cfg["corpus"]["hash"]:
        raise SystemExit(f"{corpus_path}: not the corpus the experiment ran on (hash differs)")
    test = BiasTest.from_dict(cfg["tests"][0])
    templates = cfg.get("templates")
    config = replace(LMConfig(**cfg["model"]), seed=seed)
    fam = family_of(config)
    base, _ = train_or_load(corpus, config)
    d0 = fam.evaluate(base, [test], {}, False, templates)["effects"][test.name]
    changes = {}
    for k, (eid, idx) in enumerate(subsets(scores, cfg["lds"], cfg["lds_fraction"])):
        drop = {scores["doc_ids"][i] for i in idx}
        model = retrain_model(corpus.without(drop), config, corpus)
        changes[eid] = fam.evaluate(model, [test], {}, False, templates)["effects"][test.name] - d0
        print(f"seed {seed}: {k + 1}/{cfg['lds']}", flush=True)
    out.write_text(json.dumps({"seed": seed, "baseline": d0, "changes": changes}))


def lexical_floor(cfg: dict, scores: dict, corpus_path: str) -> np.ndarray:
    """The lexical floor's scores of the experiment's documents (as its leaderboard's floor row ranks them)."""
    from biasaudit.influence import score_model
    from biasaudit.influence.estimators import LexicalConfig
    from biasaudit.measures.lm import template_measure

    corpus = api.load_corpus(corpus_path)
    model, _ = train_or_load(corpus, LMConfig(**cfg["model"]))
    test = BiasTest.from_dict(cfg["tests"][0])
    measure, _ = template_measure(test, model, cfg["templates"])
    r = score_model(model, corpus, [measure], LexicalConfig())
    if list(r.doc_ids) != scores["doc_ids"]:
        raise SystemExit(f"{corpus_path}: its documents are not the experiment's")
    return r.delta_bias_if_removed[test.name]


def combine(folder: Path, files: list[str], corpus_path: str | None = None) -> None:
    cfg, scores = _setup(folder)
    subs = subsets(scores, cfg["lds"], cfg["lds_fraction"])
    exp = json.loads((folder / "experiment.json").read_text())
    test = cfg["tests"][0]["name"]
    cross = next(d["seed"] for d in exp["lds"] if d["kind"] == "cross-seed")
    runs = folder / "runs"
    base = json.loads((runs / f"baseline-s{cross}.json").read_text())["effects"][test]
    by_seed = {cross: [json.loads((runs / f"{eid}-s{cross}.json").read_text())["effects"][test] - base
                       for eid, _ in subs]}
    for f in files:
        r = json.loads(Path(f).read_text())
        by_seed[r["seed"]] = [r["changes"][eid] for eid, _ in subs]
    seeds = sorted(by_seed)
    print(f"{len(subs)} subsets of {cfg['lds_fraction']:.0%}, fresh seeds {seeds}")
    rs = []
    for a, b in itertools.combinations(seeds, 2):
        r = spearmanr(by_seed[a], by_seed[b]).statistic
        rs.append(r)
        print(f"seeds {a} and {b}: Spearman of the actual changes {r:+.3f}")
    rel = float(np.mean(rs))
    print(f"test-retest (mean over pairs) {rel:+.3f}; one Spearman over {len(subs)} subsets has a standard error "
          f"of about {1 / np.sqrt(len(subs) - 3):.2f}")
    mean = np.mean([by_seed[s] for s in seeds], axis=0)
    print(f"sd of a subset's change: one seed {np.mean([np.std(by_seed[s]) for s in seeds]):.4f}, mean over "
          f"{len(seeds)} seeds {np.std(mean):.4f}")
    ranked = {est: np.asarray(by_test[test]) for est, by_test in scores["scores"].items()}
    if corpus_path:
        ranked["lexical (floor)"] = lexical_floor(cfg, scores, corpus_path)
    for est, s in ranked.items():
        pred = [float(s[idx].sum()) for _, idx in subs]
        single = [spearmanr(pred, by_seed[x]).statistic for x in seeds]
        print(f"{est}: LDS at each fresh seed {', '.join(f'{v:+.3f}' for v in single)}; against the mean over "
              f"the {len(seeds)} seeds {spearmanr(pred, mean).statistic:+.3f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("experiment")
    ap.add_argument("--corpus")
    ap.add_argument("--seed", type=int)
    ap.add_argument("--out")
    ap.add_argument("--combine", nargs="+")
    a = ap.parse_args()
    if a.combine:
        return combine(Path(a.experiment), a.combine, a.corpus)
    run_seed(Path(a.experiment), a.corpus, a.seed, Path(a.out or f"lds-seed{a.seed}.json"))


if __name__ == "__main__":
    main()
