"""What an experiment's finished runs say: ``results.csv`` (one row per estimator, test, condition, k and seed),
``summary.csv`` (one row per estimator, test, condition and k) and ``experiment.json``'s statistics.

Decided here:
- Predicted effect size of an edit at seed s = that seed's baseline + the predicted change, the change being the
  group prediction re-measured on the first seed's model (``predicted_effect_size``), clipped to the measure's
  range; the first-order sum of the documents' scores is kept beside it (``predicted_effect_size_linear``).
- Calibration = mean actual change / mean predicted change over the seeds, for each edit (1: right size).
- A ranked edit is called confirmed only when, over 3 or more seeds, it moves the bias in the predicted
  direction by more than the random control of the same size moves it from seed to seed (beyond 2 sd of the
  random edit's changes) with a paired t-test p < 0.05 against the random edit; otherwise the verdict says why
  not. p-values from fewer than 3 seeds are labelled as such.
- Embedding-quality figures are reported only where the benchmark's word coverage is at least
  ``MIN_COVERAGE``.
"""
from __future__ import annotations

import csv
import io
import math

import numpy as np

MIN_COVERAGE = 0.8
RANKED = ("remove-top", "remove-bottom", "upweight-top", "remove-ids", "swap-top", "augment-top", "remove-selected")
CONTROL = {"remove-top": "remove-random", "remove-bottom": "remove-random", "upweight-top": "remove-random",
           "remove-ids": "remove-random", "swap-top": "swap-random", "augment-top": "augment-random",
           "remove-selected": "remove-random"}


def _mean(xs):
    xs = [x for x in xs if x is not None and not (isinstance(x, float) and math.isnan(x))]
    return float(np.mean(xs)) if xs else None


def _sd(xs):
    xs = [x for x in xs if x is not None]
    return float(np.std(xs, ddof=1)) if len(xs) > 1 else None


def _measures(rec: dict, test: str) -> dict:
    """The run's audited test read with every transfer measure (WEAT, RIPA, Direct Bias, RND; word vectors only):
    columns weat, ripa, direct_bias, rnd of results.csv (None for runs that did not record them)."""
    got = (rec.get("measures") or {}).get(test) or {}
    return {m.replace("-", "_"): got.get(m) for m in ("weat", "ripa", "direct-bias", "rnd")}


RESULT_COLUMNS = ["estimator", "test", "condition", "k", "n_docs", "seed", "effect_size", "predicted_effect_size",
                  "predicted_effect_size_linear", "baseline_effect_size", "heldout_effect_size",
                  "baseline_heldout_effect_size", "wordsim353", "wordsim353_coverage", "simlex999",
                  "simlex999_coverage", "analogy", "weat", "ripa", "direct_bias", "rnd", "run_id"]
SUMMARY_COLUMNS = ["estimator", "test", "condition", "k", "n_docs", "n_seeds", "baseline_effect_size_mean",
                   "effect_size_mean", "effect_size_sd", "change_mean", "change_sd", "predicted_change_mean",
                   "predicted_change_linear_mean", "calibration", "calibration_linear", "difference_from_random",
                   "difference_from_random_p", "verdict", "heldout_change_mean", "heldout_change_sd",
                   "share_of_augment_all", "heldout_share_of_augment_all",
                   "wordsim353_mean", "simlex999_mean", "analogy_mean"]


def _csv(rows: list[dict], columns: list[str]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n", extrasaction="ignore")
    w.writeheader()
    for r in rows:
        w.writerow({k: ("" if r.get(k) is None else r.get(k)) for k in columns})
    return buf.getvalue()


def _quality(q: dict) -> dict:
    """The benchmark figures whose word coverage is high enough to mean something (else None), with coverages."""
    out = {}
    for name in ("wordsim353", "simlex999"):
        cov = q.get(f"{name}_coverage")
        out[name] = q.get(name) if cov is not None and cov >= MIN_COVERAGE else None
        out[f"{name}_coverage"] = cov
    out["analogy"] = q.get("analogy")
    return out


def _verdict(d: dict, n_seeds: int) -> str:
    """The one-line verdict of a ranked edit against its random control (see the module docstring)."""
    diff, p = d.get("difference_from_random"), d.get("difference_from_random_p")
    pred, spread = d.get("predicted_change_mean"), d.get("random_change_sd")
    if pred is None:
        pred = d.get("predicted_change_linear_mean")
    if diff is None:
        return "no random control of this size to compare with"
    if n_seeds < 2 or spread is None:
        return "one seed: the random control's seed spread is unknown, so nothing is confirmed"
    if pred is not None and np.sign(diff) != np.sign(pred):
        return "moved against the prediction (relative to random edits)"
    if abs(diff) <= 2 * spread:
        return f"within the random control's spread (|difference| {abs(diff):.3f} <= 2 sd {2 * spread:.3f})"
    if n_seeds < 3:
        return f"beyond the random spread, in the predicted direction; {n_seeds} seeds cannot confirm it"
    if p is None or p >= 0.05:
        return "beyond the random spread but not significant (paired p >= 0.05)"
    return "confirmed"


def spearman_ci(pred: list, act: list, n_boot: int = 2000, seed: int = 0) -> tuple:
    """Spearman's rho with a 95% percentile bootstrap CI over the subsets (None where fewer than 3 subsets or a
    side is constant)."""
    from scipy.stats import rankdata

    p, a = np.asarray(pred, dtype=float), np.asarray(act, dtype=float)
    if len(p) < 3 or np.std(p) == 0 or np.std(a) == 0:
        return None, None, None

    def rho(x, y):
        rx, ry = rankdata(x), rankdata(y)
        if np.std(rx) == 0 or np.std(ry) == 0:
            return np.nan
        return float(np.corrcoef(rx, ry)[0, 1])

    rng = np.random.default_rng(seed)
    boots = [rho(p[i], a[i]) for i in (rng.integers(0, len(p), len(p)) for _ in range(n_boot))]
    boots = np.asarray([b for b in boots if np.isfinite(b)])
    lo, hi = (np.percentile(boots, [2.5, 97.5]) if len(boots) else (np.nan, np.nan))
    return rho(p, a), float(lo), float(hi)


def leaderboard(summary: dict, scoring_seconds: dict, train_seconds: float | None) -> list[dict]:
    """One row per (estimator, test): LDS same-seed and cross-seed (with CIs), top-1% removal against random
    removal of the same size (the difference and its paired p; the k nearest 1% when 1% was not run), and the
    scoring cost in trainings."""
    n_docs = summary["corpus"].get("n_documents") or 1
    out = []
    floors = [e for e in dict.fromkeys(d["estimator"] for d in summary.get("lds", []))
              if e not in summary["estimators"]]        # the lexical floor's LDS, beside the estimators asked for
    for est in summary["estimators"] + floors:
        for test in summary["tests"]:
            row = {"estimator": est, "test": test}
            for d in summary.get("lds", []):
                if d["estimator"] == est and d["test"] == test:
                    row[f"lds_{d['kind'].replace('-', '_')}"] = d["spearman"]
                    row[f"lds_{d['kind'].replace('-', '_')}_ci95"] = d["ci95"]
                    row["lds_subsets"] = d["n_subsets"]
            tops = [d for d in summary["conditions"] if d["estimator"] == est and d["test"] == test
                    and d["condition"] == "remove-top" and d.get("difference_from_random") is not None]
            if tops:
                top = min(tops, key=lambda d: abs(d["n_docs"] - 0.01 * n_docs))
                row.update({"top_k": top["k"], "top_n_docs": top["n_docs"], "top_change": top["change_mean"],
                            "top_change_sd": top["change_sd"], "top_vs_random": top["difference_from_random"],
                            "top_vs_random_p": top.get("difference_from_random_p")})
            sec = scoring_seconds.get(est)
            row["cost_in_trainings"] = (None if not sec or not train_seconds else round(sec / train_seconds, 2))
            out.append(row)
    return out


def _change(r, key="effect_size", base="baseline_effect_size"):
    """A row's change of ``key`` from its baseline (None where either is missing)."""
    return None if r[key] is None or r[base] is None else r[key] - r[base]


def _held_change(r):
    return _change(r, "heldout_effect_size", "baseline_heldout_effect_size")


def result_rows(spec, plan, runs, seeds, predictions: dict, bias: dict, bounds: dict, linear_added: dict) -> list:
    """results.csv's rows: one per planned edit and seed (and hard-debias's beside each baseline)."""
    rows = []
    for row in plan:
        est, test, cond, label, k, eid = row.estimator, row.test, row.condition, row.k_label, row.k, row.edit
        remeasured = predictions.get(row.key)
        b0 = bias.get(est, {}).get(test)
        delta = None if remeasured is None or b0 is None else remeasured - b0
        linear = row.linear
        if row.swaps is not None:         # the rewrites' upweighting scores (None: the estimator has none)
            extra = linear_added.get(row.key)
            linear = None if extra is None else linear + extra
        bound = bounds.get(test, float("inf"))
        for seed in seeds:
            base = runs[f"baseline-s{seed}"]
            b_eff, b_held = base["effects"].get(test), base["heldout_effects"].get(test)
            rec = runs[f"{eid}-s{seed}"] if eid != "baseline" else base
            q = _quality(rec.get("quality", {}))
            pred = None
            if b_eff is not None:
                pred = b_eff if eid == "baseline" else (None if delta is None else
                                                        float(np.clip(b_eff + delta, -bound, bound)))
            rows.append({"estimator": est, "test": test, "condition": cond, "k": label, "n_docs": k, "seed": seed,
                         "effect_size": rec["effects"].get(test), "predicted_effect_size": pred,
                         "predicted_effect_size_linear": None if b_eff is None or linear is None else b_eff + linear,
                         "baseline_effect_size": b_eff, "heldout_effect_size": rec["heldout_effects"].get(test),
                         "baseline_heldout_effect_size": b_held, **q, **_measures(rec, test),
                         "run_id": rec["run_id"]})
        if cond == "baseline" and "hard-debias" in spec.conditions:
            rows += _hard_debias_rows(runs, seeds, est, test)
    return rows


def _hard_debias_rows(runs, seeds, est: str, test: str) -> list:
    """The hard-debias baseline's rows for one estimator and test, one per seed that ran it."""
    rows = []
    for seed in seeds:
        base = runs[f"baseline-s{seed}"]
        hd = base.get("hard_debias", {})
        if "effects" not in hd:
            continue
        rows.append({"estimator": est, "test": test, "condition": "hard-debias", "k": "0", "n_docs": 0,
                     "seed": seed, "effect_size": hd["effects"].get(test), "predicted_effect_size": None,
                     "predicted_effect_size_linear": None,
                     "baseline_effect_size": base["effects"].get(test),
                     "heldout_effect_size": hd["heldout_effects"].get(test),
                     "baseline_heldout_effect_size": base["heldout_effects"].get(test),
                     **_quality(hd.get("quality", {})), **_measures(hd, test),
                     "run_id": base["run_id"] + "+hard-debias"})
    return rows


def _condition(est, test, cond, label, rs: list, heldout_note: dict) -> dict:
    """summary.csv's row for one (estimator, test, condition, k): means and sds over the seeds, calibration."""
    changes = [_change(r) for r in rs]
    pred_changes = [_change(r, "predicted_effect_size") for r in rs]
    lin_changes = [_change(r, "predicted_effect_size_linear") for r in rs]
    d = {"estimator": est, "test": test, "condition": cond, "k": label, "n_docs": rs[0]["n_docs"],
         "n_seeds": len(rs), "baseline_effect_size_mean": _mean([r["baseline_effect_size"] for r in rs]),
         "effect_size_mean": _mean([r["effect_size"] for r in rs]),
         "effect_size_sd": _sd([r["effect_size"] for r in rs]),
         "change_mean": _mean(changes), "change_sd": _sd(changes),
         "predicted_change_mean": _mean(pred_changes), "predicted_change_linear_mean": _mean(lin_changes),
         "heldout_effect_size_mean": _mean([r["heldout_effect_size"] for r in rs]),
         "heldout_change_mean": _mean([_held_change(r) for r in rs]),
         "heldout_change_sd": _sd([_held_change(r) for r in rs]),
         "heldout_note": heldout_note.get(test),
         "wordsim353_mean": _mean([r["wordsim353"] for r in rs]),
         "wordsim353_coverage": _mean([r["wordsim353_coverage"] for r in rs]),
         "simlex999_mean": _mean([r["simlex999"] for r in rs]),
         "simlex999_coverage": _mean([r["simlex999_coverage"] for r in rs]),
         "analogy_mean": _mean([r["analogy"] for r in rs])}
    for key, pc in (("calibration", d["predicted_change_mean"]), ("calibration_linear",
                                                                   d["predicted_change_linear_mean"])):
        d[key] = (None if cond not in RANKED or pc is None or d["change_mean"] is None or abs(pc) < 1e-12
                  else d["change_mean"] / pc)
    return d


def _against_random(d: dict, rs: list, control: list) -> None:
    """A ranked condition against random removal of the same size: the mean paired difference, its p, and the
    held-out difference, added to ``d``."""
    from scipy.stats import ttest_rel

    control = sorted(control, key=lambda r: r["seed"])
    a, b = [_change(r) for r in rs], [_change(r) for r in control]
    d["random_change_sd"] = _sd(b)
    if all(x is not None for x in a + b) and len(a) == len(b):
        diffs = np.subtract(a, b)
        d["difference_from_random"] = float(np.mean(diffs))
        d["difference_from_random_p"] = (float(ttest_rel(a, b).pvalue) if len(a) > 1 and
                                         np.std(diffs) > 0 else None)
        d["p_value_note"] = (None if len(a) >= 3 else
                             f"from {len(a)} seed(s): a paired t-test with {len(a) - 1} degree(s) of freedom "
                             "says little")
        ah = [_held_change(r) for r in rs]
        bh = [_held_change(r) for r in control]
        if all(x is not None for x in ah + bh):
            d["heldout_difference_from_random"] = float(np.mean(np.subtract(ah, bh)))


def condition_rows(spec, rows: list) -> list:
    """summary.csv's rows: each condition over the seeds, against random removal and whole-corpus CDA."""
    groups: dict[tuple, list] = {}
    for r in rows:
        groups.setdefault((r["estimator"], r["test"], r["condition"], r["k"]), []).append(r)
    heldout_note = {t.name: (None if t.name in spec.heldout else
                             f"no held-out companion for {t.name}: give one with --heldout FILE (a test file whose "
                             f"heldout_for is {t.name!r})") for t in spec.tests}
    conditions = []
    for (est, test, cond, label), rs in groups.items():
        rs = sorted(rs, key=lambda r: r["seed"])
        d = _condition(est, test, cond, label, rs, heldout_note)
        control = groups.get((est, test, CONTROL.get(cond), label))
        if cond in RANKED and control:
            _against_random(d, rs, control)
        if cond in RANKED:
            d["verdict"] = _verdict(d, len(rs))
        conditions.append(d)
    _share_of_augment_all(conditions)
    return conditions


def _share_of_augment_all(conditions: list) -> None:
    """Targeted edits against whole-corpus CDA: the share of augment-all's effect they buy."""
    whole = {(d["estimator"], d["test"]): d for d in conditions if d["condition"] == "augment-all"}
    for d in conditions:
        w = whole.get((d["estimator"], d["test"]))
        if w is None or d["condition"] in ("augment-all", "baseline"):
            continue
        for key, base in (("share_of_augment_all", "change_mean"), ("heldout_share_of_augment_all",
                                                                     "heldout_change_mean")):
            a, b = d.get(base), w.get(base)
            d[key] = None if a is None or b is None or abs(b) < 1e-12 else a / b


def correlations(spec, rows: list, scores: dict) -> list:
    """Predicted against actual changes over the edits, per estimator, test and kind of prediction."""
    from scipy.stats import pearsonr, spearmanr

    correlation = []
    for est in scores:
        for t in spec.tests:
            for kind, key in (("re-measured", "predicted_effect_size"), ("linear", "predicted_effect_size_linear")):
                sel = [r for r in rows if r["estimator"] == est and r["test"] == t.name
                       and r["condition"] not in ("baseline", "hard-debias")
                       and r[key] is not None and _change(r) is not None]
                if len(sel) < 3:
                    continue
                p, a = np.array([(_change(r, key), _change(r)) for r in sel]).T
                ranked = np.array([r["condition"] in RANKED for r in sel]) & (np.abs(p) > 1e-9)
                ratio = a[ranked] / p[ranked]
                correlation.append({"estimator": est, "test": t.name, "prediction": kind, "n": len(sel),
                                    "pearson": float(pearsonr(p, a)[0]) if np.std(p) > 0 and np.std(a) > 0 else None,
                                    "spearman": float(spearmanr(p, a)[0]) if np.std(p) > 0 and np.std(a) > 0 else None,
                                    "median_actual_over_predicted": float(np.median(ratio)) if len(ratio) else None,
                                    "ratio_over": "ranked edits (remove-top/bottom, upweight-top, remove-ids)"})
    return correlation


def lds_rows(spec, runs, scores: dict, lds_edits) -> list:
    """LDS: Spearman between predicted (linear sum) and actual changes over random subsets."""
    lds = []
    for kind, seed in spec.lds_seeds.items() if lds_edits else ():
        base = runs.get(f"baseline-s{seed}")
        for est, by_test in scores.items():
            for t in spec.tests:
                if base is None or base["effects"].get(t.name) is None:
                    continue
                pairs = [(float(by_test[t.name][idx].sum()),
                          runs[f"{eid}-s{seed}"]["effects"].get(t.name)) for eid, idx in lds_edits
                         if f"{eid}-s{seed}" in runs]
                pairs = [(p_, a - base["effects"][t.name]) for p_, a in pairs if a is not None]
                rho, lo, hi = spearman_ci([p_ for p_, _ in pairs], [a for _, a in pairs])
                lds.append({"estimator": est, "test": t.name, "kind": kind, "seed": seed,
                            "n_subsets": len(pairs), "fraction_removed": spec.lds_fraction,
                            "spearman": rho, "ci95": None if lo is None else [lo, hi]})
    return lds


def summarise(spec, plan, runs, seeds, ks, scores, lds_edits, stats, predictions: dict | None = None,
              bias: dict | None = None, bounds: dict | None = None,
              linear_added: dict | None = None, floor: dict | None = None) -> tuple[dict, str, str]:
    """experiment.json's summary, results.csv's and summary.csv's text, from the finished runs. ``floor``: scores
    of estimators not asked for, shown in the LDS rows only (the lexical floor)."""
    rows = result_rows(spec, plan, runs, seeds, predictions or {}, bias or {}, bounds or {}, linear_added or {})
    conditions = condition_rows(spec, rows)
    correlation = correlations(spec, rows, scores)
    lds = lds_rows(spec, runs, {**scores, **(floor or {})}, lds_edits)
    rand_sd = {}
    for d in conditions:
        if d["condition"] == "remove-random":
            rand_sd.setdefault(d["test"], {})[d["k"]] = d["change_sd"]
    summary = {"corpus": {"name": spec.corpus.name, **stats.to_dict()}, "model": spec.model.to_dict(),
               "seeds": seeds, "mode": spec.mode, "k": [{"label": l, "n_docs": n} for l, n in ks],
               "estimators": [e.label for e in spec.estimators], "tests": [t.name for t in spec.tests],
               "heldout": {k: v.name for k, v in spec.heldout.items()},
               "sign_convention": "delta_bias_if_removed < 0: the document drives the bias up",
               "prediction": ("predicted_effect_size: the measure re-run on the first seed's model moved by the "
                              "edit's estimated parameter change, that change added to each seed's baseline and "
                              "clipped to the measure's range; predicted_effect_size_linear: the baseline plus the "
                              "sum of the edited documents' scores"),
               "conditions": conditions, "predicted_vs_actual": correlation, "lds": lds,
               "random_removal_change_sd": rand_sd, "min_quality_coverage": MIN_COVERAGE,
               "scope": (f"effect sizes on the audited word lists and their held-out companions only; "
                         f"{len(seeds)} seed(s); random removal of the same size is the control")}
    if len(seeds) < 3:
        summary["seed_note"] = (f"{len(seeds)} seed(s): p-values need 3 or more seeds to mean much; treat "
                                "differences as indicative")
    return summary, _csv(rows, RESULT_COLUMNS), _csv(conditions, SUMMARY_COLUMNS)
