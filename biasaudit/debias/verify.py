"""Verifying a debias edit: ``verify_edit`` retrains seeds on the edited corpus and compares actual changes with
the predicted ones."""
from __future__ import annotations

import numpy as np


def verify_edit(model, corpus, edited, tests, heldout: dict, predicted: dict, n_seeds: int, others=(),
                templates=None, cache=None, device: str = "cpu", progress=None, log=None, skip: int = 0) -> dict:
    """Retrain ``n_seeds`` seeds (the model's seed, then the next ones; ``skip``: after that many seeds, those an
    ensemble ranked with, whose predictions are for a seed outside it) on the edited corpus and compare each with
    the baseline of the same seed (the audited model, a given seed's model, or trained and cached): the actual
    change of each test against the predicted one, the held-out companions' changes and WordSim-353 / SimLex-999
    (reported where their word coverage is at least the experiments' MIN_COVERAGE)."""
    from dataclasses import replace
    from pathlib import Path

    from ..experiments.summary import MIN_COVERAGE, _quality
    from ..models.base import family_of, retrain_model, train_or_load

    fam = family_of(model)
    log = log or (lambda m: None)
    cfg = model.config
    have = {model.config.seed: model, **{m.config.seed: m for m in others if getattr(m, "config", None)}}
    held = {n: h for n, h in heldout.items() if n in {t.name for t in tests}}
    per_seed = []
    for i in range(n_seeds):
        seed = cfg.seed + skip + i
        scfg = replace(cfg, seed=seed)
        base = have.get(seed) or train_or_load(corpus, scfg, cache=Path(cache) if cache else None, device=device)[0]
        new = retrain_model(edited, scfg, corpus)
        b = fam.evaluate(base, tests, held, fam.word_vectors, templates)
        a = fam.evaluate(new, tests, held, fam.word_vectors, templates)
        per_seed.append({"seed": seed, "baseline": b, "edited": a})
        log(f"verify: seed {seed} retrained on the edited corpus")
        if progress:
            progress("verify retraining", i + 1, n_seeds)

    def mean(xs):
        xs = [x for x in xs if x is not None]
        return float(np.mean(xs)) if xs else None

    out = {"seeds": [r["seed"] for r in per_seed], "min_quality_coverage": MIN_COVERAGE, "tests": {}}
    for t in tests:
        p = predicted[t.name]
        pc = None if p["predicted_effect_size"] is None else p["predicted_effect_size"] - p["effect_size_before"]
        rows = []
        for r in per_seed:
            b, a = r["baseline"], r["edited"]
            qb, qa = _quality(b.get("quality", {})), _quality(a.get("quality", {}))
            row = {"seed": r["seed"], "baseline": b["effects"].get(t.name), "actual": a["effects"].get(t.name),
                   "heldout_baseline": b["heldout_effects"].get(t.name),
                   "heldout_actual": a["heldout_effects"].get(t.name),
                   "wordsim353_baseline": qb.get("wordsim353"), "wordsim353": qa.get("wordsim353"),
                   "wordsim353_coverage": qa.get("wordsim353_coverage"),
                   "simlex999_baseline": qb.get("simlex999"), "simlex999": qa.get("simlex999")}
            row["actual_change"] = (None if row["actual"] is None or row["baseline"] is None
                                    else row["actual"] - row["baseline"])
            row["heldout_change"] = (None if row["heldout_actual"] is None or row["heldout_baseline"] is None
                                     else row["heldout_actual"] - row["heldout_baseline"])
            rows.append(row)
        ac = mean([r["actual_change"] for r in rows])
        out["tests"][t.name] = {
            "predicted_change": pc, "actual_change_mean": ac,
            "actual_change_sd": (float(np.std([r["actual_change"] for r in rows], ddof=1)) if len(rows) > 1
                                 and all(r["actual_change"] is not None for r in rows) else None),
            "actual_over_predicted": None if ac is None or pc is None or abs(pc) < 1e-12 else ac / pc,
            "effect_size_mean": mean([r["actual"] for r in rows]),
            "baseline_effect_size_mean": mean([r["baseline"] for r in rows]),
            "heldout_change_mean": mean([r["heldout_change"] for r in rows]),
            "wordsim353_baseline_mean": mean([r["wordsim353_baseline"] for r in rows]),
            "wordsim353_mean": mean([r["wordsim353"] for r in rows]),
            "per_seed": rows}
    return out
