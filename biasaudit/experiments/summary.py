"""What an experiment's finished runs say: ``results.csv`` (one row per estimator, test, condition, k and seed)
and ``experiment.json``'s statistics (means and sds over seeds, paired differences from random removal with
t-test p-values, predicted against actual changes, LDS, the seed noise of random removal)."""
from __future__ import annotations

import csv
import io
import math

import numpy as np


def _mean(xs):
    xs = [x for x in xs if x is not None and not (isinstance(x, float) and math.isnan(x))]
    return float(np.mean(xs)) if xs else None


def _sd(xs):
    xs = [x for x in xs if x is not None]
    return float(np.std(xs, ddof=1)) if len(xs) > 1 else None


RESULT_COLUMNS = ["estimator", "test", "condition", "k", "n_docs", "seed", "effect_size", "predicted_effect_size",
                  "baseline_effect_size", "heldout_effect_size", "baseline_heldout_effect_size", "wordsim353",
                  "simlex999", "analogy", "run_id"]


def summarise(spec, plan, runs, seeds, ks, scores, lds_edits, stats) -> tuple[dict, str]:
    """experiment.json's summary and results.csv's text, from the finished runs."""
    from scipy.stats import pearsonr, spearmanr, ttest_rel

    rows = []
    for est, test, cond, label, k, eid, pred in plan:
        for seed in seeds:
            base = runs[f"baseline-s{seed}"]
            b_eff, b_held = base["effects"].get(test), base["heldout_effects"].get(test)
            if cond == "hard-debias":
                continue
            rec = runs[f"{eid}-s{seed}"] if eid != "baseline" else base
            q = rec.get("quality", {})
            rows.append({"estimator": est, "test": test, "condition": cond, "k": label, "n_docs": k,
                         "seed": seed, "effect_size": rec["effects"].get(test),
                         "predicted_effect_size": None if b_eff is None else b_eff + pred,
                         "baseline_effect_size": b_eff, "heldout_effect_size": rec["heldout_effects"].get(test),
                         "baseline_heldout_effect_size": b_held, "wordsim353": q.get("wordsim353"),
                         "simlex999": q.get("simlex999"), "analogy": q.get("analogy"), "run_id": rec["run_id"]})
        if cond == "baseline" and "hard-debias" in spec.conditions:
            for seed in seeds:
                base = runs[f"baseline-s{seed}"]
                hd = base.get("hard_debias", {})
                if "effects" not in hd:
                    continue
                q = hd.get("quality", {})
                rows.append({"estimator": est, "test": test, "condition": "hard-debias", "k": "0", "n_docs": 0,
                             "seed": seed, "effect_size": hd["effects"].get(test), "predicted_effect_size": None,
                             "baseline_effect_size": base["effects"].get(test),
                             "heldout_effect_size": hd["heldout_effects"].get(test),
                             "baseline_heldout_effect_size": base["heldout_effects"].get(test),
                             "wordsim353": q.get("wordsim353"), "simlex999": q.get("simlex999"),
                             "analogy": q.get("analogy"), "run_id": base["run_id"] + "+hard-debias"})
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=RESULT_COLUMNS, lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: ("" if v is None else v) for k, v in r.items()})

    def change(r, key="effect_size", base="baseline_effect_size"):
        return None if r[key] is None or r[base] is None else r[key] - r[base]

    groups: dict[tuple, list] = {}
    for r in rows:
        groups.setdefault((r["estimator"], r["test"], r["condition"], r["k"]), []).append(r)
    conditions = []
    for (est, test, cond, label), rs in groups.items():
        rs = sorted(rs, key=lambda r: r["seed"])
        d = {"estimator": est, "test": test, "condition": cond, "k": label, "n_docs": rs[0]["n_docs"],
             "n_seeds": len(rs), "effect_size_mean": _mean([r["effect_size"] for r in rs]),
             "effect_size_sd": _sd([r["effect_size"] for r in rs]),
             "change_mean": _mean([change(r) for r in rs]), "change_sd": _sd([change(r) for r in rs]),
             "predicted_change_mean": _mean([None if r["predicted_effect_size"] is None else
                                             r["predicted_effect_size"] - r["baseline_effect_size"] for r in rs]),
             "heldout_effect_size_mean": _mean([r["heldout_effect_size"] for r in rs]),
             "heldout_change_mean": _mean([change(r, "heldout_effect_size", "baseline_heldout_effect_size")
                                           for r in rs]),
             "heldout_change_sd": _sd([change(r, "heldout_effect_size", "baseline_heldout_effect_size")
                                       for r in rs]),
             "wordsim353_mean": _mean([r["wordsim353"] for r in rs]),
             "simlex999_mean": _mean([r["simlex999"] for r in rs]), "analogy_mean": _mean([r["analogy"] for r in rs])}
        rand = groups.get((est, test, "remove-random", label))
        if cond not in ("remove-random", "baseline", "hard-debias") and rand:
            rand = sorted(rand, key=lambda r: r["seed"])
            a = [change(r) for r in rs]
            b = [change(r) for r in rand]
            if all(x is not None for x in a + b) and len(a) == len(b):
                d["difference_from_random"] = float(np.mean(np.subtract(a, b)))
                d["difference_from_random_p"] = (float(ttest_rel(a, b).pvalue) if len(a) > 1 and
                                                 np.std(np.subtract(a, b)) > 0 else None)
                ah = [change(r, "heldout_effect_size", "baseline_heldout_effect_size") for r in rs]
                bh = [change(r, "heldout_effect_size", "baseline_heldout_effect_size") for r in rand]
                if all(x is not None for x in ah + bh):
                    d["heldout_difference_from_random"] = float(np.mean(np.subtract(ah, bh)))
        conditions.append(d)

    correlation = []
    for est in scores:
        for t in spec.tests:
            pairs = [(r["predicted_effect_size"] - r["baseline_effect_size"], change(r)) for r in rows
                     if r["estimator"] == est and r["test"] == t.name and r["condition"] not in ("baseline", "hard-debias")
                     and r["predicted_effect_size"] is not None and change(r) is not None]
            if len(pairs) >= 3:
                p, a = np.array(pairs).T
                # calibration from the ranked edits only: random removal predicts about 0 and its ratio is noise
                ranked = np.array([r["condition"] not in ("remove-random",) for r in rows
                                   if r["estimator"] == est and r["test"] == t.name
                                   and r["condition"] not in ("baseline", "hard-debias")
                                   and r["predicted_effect_size"] is not None and change(r) is not None])
                keep = ranked & (np.abs(p) > 1e-9)
                ratio = a[keep] / p[keep]
                correlation.append({"estimator": est, "test": t.name, "n": len(pairs),
                                    "pearson": float(pearsonr(p, a)[0]) if np.std(p) > 0 and np.std(a) > 0 else None,
                                    "spearman": float(spearmanr(p, a)[0]) if np.std(p) > 0 and np.std(a) > 0 else None,
                                    "median_actual_over_predicted": float(np.median(ratio)) if len(ratio) else None,
                                    "ratio_over": "ranked edits (remove-top/bottom, upweight-top, remove-ids)"})
    lds = []
    if lds_edits:
        seed = seeds[0]
        base = runs[f"baseline-s{seed}"]
        for est, by_test in scores.items():
            for t in spec.tests:
                if base["effects"].get(t.name) is None:
                    continue
                pred = [float(by_test[t.name][idx].sum()) for _, idx in lds_edits]
                act = [runs[f"{eid}-s{seed}"]["effects"][t.name] - base["effects"][t.name] for eid, _ in lds_edits]
                lds.append({"estimator": est, "test": t.name, "n_subsets": len(lds_edits),
                            "fraction_removed": spec.lds_fraction,
                            "spearman": float(spearmanr(pred, act)[0]) if len(pred) > 2 else None})
    rand_sd = {}
    for d in conditions:
        if d["condition"] == "remove-random":
            rand_sd.setdefault(d["test"], {})[d["k"]] = d["change_sd"]
    return {"corpus": {"name": spec.corpus.name, **stats.to_dict()}, "model": spec.model.to_dict(),
            "seeds": seeds, "mode": spec.mode, "k": [{"label": l, "n_docs": n} for l, n in ks],
            "estimators": [e.label for e in spec.estimators], "tests": [t.name for t in spec.tests],
            "heldout": {k: v.name for k, v in spec.heldout.items()},
            "sign_convention": "delta_bias_if_removed < 0: the document drives the bias up",
            "conditions": conditions, "predicted_vs_actual": correlation, "lds": lds,
            "random_removal_change_sd": rand_sd,
            "scope": (f"effect sizes on the audited word lists and their held-out companions only; "
                      f"{len(seeds)} seed(s); random removal of the same size is the control")}, buf.getvalue()
