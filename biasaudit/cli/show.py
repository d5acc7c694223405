from __future__ import annotations

"""What the commands print: the tables, verdicts, overviews and next steps (the ``_print_*`` functions)."""
import json
import sys

from rich.table import Table

from ..terminal import clean, strip_controls
from .console import WIDTH, note, out


def _print_experiment(summary) -> None:
    """The retraining results per (estimator, test), baseline first, in 80 columns: change from the same seed's
    baseline (mean ± sd over seeds), the prediction, held-out words, the paired difference from random edits of
    the same size, the verdict and WordSim-353 where the benchmark's coverage allows."""
    fmt = lambda v, sd=None, n=2: "-" if v is None else (f"{v:+.{n}f}" + ("" if sd is None else f"±{sd:.{n}f}"))
    n_seeds = len(summary["seeds"])
    out.print(f"\n{clean(summary['mode'])} retraining over {n_seeds} paired seed(s); change = effect size minus the same "
              "seed's baseline, mean ± sd", width=WIDTH)
    if summary.get("seed_note"):
        out.print(f"[yellow]! {clean(summary['seed_note'])}[/]", width=WIDTH)
    groups: dict = {}
    for d in summary["conditions"]:
        groups.setdefault((d["estimator"], d["test"]), []).append(d)
    label = summary.measure_labels      # each test's measure (--measure, or its file's)
    for (est, test), conds in groups.items():
        base = next((d for d in conds if d["condition"] == "baseline"), None)
        head = f"\n{clean(test)}, ranked by {clean(est)}"
        if base is not None:
            head += f": baseline {label.get(test, 'd')} {fmt(base['effect_size_mean'], base['effect_size_sd'])}"
        out.print(f"[bold]{head}[/]", width=WIDTH)
        note_held = next((d.get("heldout_note") for d in conds if d.get("heldout_note")), None)
        out.print(f"  {'condition':<14}{'k':>6} {'change':>11} {'predicted':>9} {'held-out':>9} {'vs random':>10} "
                  f"{'WordSim':>8}")
        for d in conds:
            if d["condition"] == "baseline":
                continue
            ws = "-" if d["wordsim353_mean"] is None else f"{d['wordsim353_mean']:.3f}"
            vs = "-" if "difference_from_random" not in d else fmt(d["difference_from_random"])
            out.print(f"  {d['condition']:<14}{clean(_cut(d['k'], 6)):>6} {fmt(d['change_mean'], d['change_sd']):>11} "
                      f"{fmt(d['predicted_change_mean']):>9} {fmt(d['heldout_change_mean']):>9} {vs:>10} {ws:>8}")
            extra = []
            if d.get("difference_from_random_p") is not None:
                extra.append(f"paired p {d['difference_from_random_p']:.2g}"
                             + (f" ({d['n_seeds']} seeds: indicative only)" if d.get("p_value_note") else ""))
            if d.get("calibration") is not None:
                extra.append(f"actual/predicted {d['calibration']:.2f}")
            if d.get("verdict"):
                extra.append(d["verdict"])
            if extra:
                out.print("      " + clean("; ".join(extra)), width=WIDTH)
        if note_held:
            out.print(f"  held-out '-': {clean(note_held)}", width=WIDTH)
    cov = [d.get("wordsim353_coverage") for d in summary["conditions"] if d.get("wordsim353_coverage") is not None]
    if cov:
        out.print(f"\nWordSim-353 coverage {min(cov):.0%} (figures shown only at {summary.get('min_quality_coverage', 0.8):.0%} "
                  "or more)", width=WIDTH)
    for c in summary["predicted_vs_actual"]:
        out.print(f"{clean(c['estimator'])} / {clean(c['test'])}, {c.get('prediction', 'linear')} prediction: "
                  f"Pearson {fmt(c['pearson'])}, Spearman {fmt(c['spearman'])} over {c['n']} runs; median "
                  f"actual/predicted {fmt(c['median_actual_over_predicted'])}", width=WIDTH)
    for l in summary["lds"]:
        ci = f" [{l['ci95'][0]:+.2f}, {l['ci95'][1]:+.2f}]" if l.get("ci95") else ""
        out.print(f"LDS {clean(l['estimator'])} / {clean(l['test'])}, {l.get('kind', 'same-seed')} (seed "
                  f"{l.get('seed', '?')}): Spearman {fmt(l['spearman'])}{ci} over {l['n_subsets']} subsets "
                  f"removing {l['fraction_removed']:.0%} each", width=WIDTH)
    board = summary.get("leaderboard") or []
    if board and (summary["lds"] or any("top_vs_random" in r for r in board)):
        table = Table(caption="LDS: Spearman of predicted (linear sum) against actual change over random subsets "
                      "(95% bootstrap CI); same-seed: retrained with the ranking's seed, cross-seed: with a seed "
                      "the ranking did not use. top vs random: change of d, top-k minus random k (paired p). "
                      "cost: scoring time in trainings.")
        for col in ("estimator", "test", "LDS same", "LDS cross", "top vs random (p)", "cost"):
            table.add_column(col, justify="left" if col in ("estimator", "test") else "right", overflow="fold")
        for r in board:
            tvr = ("-" if r.get("top_vs_random") is None else
                   f"{r['top_vs_random']:+.2f} ({fmt(r.get('top_vs_random_p'))}, k {clean(str(r['top_k']))})")
            table.add_row(clean(r["estimator"]), clean(r["test"]), fmt(r.get("lds_same_seed")),
                          fmt(r.get("lds_cross_seed")), tvr, fmt(r.get("cost_in_trainings")))
        out.print(table)


def _print_weat(rows: list, as_json: bool, n_models: int) -> None:
    seen = set()
    for r in rows:
        if r["dropped_words"] and not as_json and r["test"] not in seen:
            seen.add(r["test"])
            note(f"{r['test']}: dropped {_DROPPED} "
                 + "; ".join(f"{k}: {', '.join(v)}" for k, v in r["dropped_words"].items()))
    if as_json:          # each row with the verdict the terminal prints under the table
        rows = [dict(r, verdict=_weat_verdict_text(r)) for r in rows]
        sys.stdout.write(json.dumps(rows, indent=2) + "\n")
        return
    table = Table(caption="effect size d = (mean_X s - mean_Y s) / sample sd of s over X u Y; d > 0: X goes with A, "
                  "Y with B. CI: bootstrap over words.")
    for col in ("test", "seed", "d", "95% CI", "p-value", "stat", "sizes"):
        table.add_column(col, justify="left" if col == "test" else "right", overflow="fold")
    for r in rows:
        p = (f"{r['p_value']:.2g} exact" if r["exact"] else f"{r['p_value']:.2g} ± {r['p_value_se']:.1g} MC")
        table.add_row(clean(r["test"]), "-" if r["seed"] is None else str(r["seed"]), f"{r['effect_size']:+.3f}",
                      f"[{r['ci_low']:+.2f}, {r['ci_high']:+.2f}]", p, f"{r['statistic']:+.3f}",
                      ",".join(str(v) for v in r["sizes"].values()))
    out.print(table)
    for r in {r["test"]: r for r in rows}.values():
        out.print(_weat_verdict(r), width=WIDTH)
    if n_models > 1:
        spreads = {r["test"]: r["seed_spread"] for r in rows}
        for name, s in spreads.items():
            out.print(f"{clean(name)}: effect size over {s['n_seeds']} seeds: mean {s['mean']:+.3f}, sd {s['sd']:.3f}, "
                      f"range [{s['min']:+.3f}, {s['max']:+.3f}]")


_DROPPED = "words not in the model's vocabulary (absent or under min_count)"   # audit.DROPPED_WORDS


def _weat_verdict(r: dict) -> str:
    """One test's verdict under weat's table: significant or not (p < 0.05 and a CI without 0), why a small p can
    sit beside a CI holding 0, and when the set sizes make p < 0.05 impossible."""
    d, p, lo, hi = r["effect_size"], r["p_value"], r["ci_low"], r["ci_high"]
    return f"{clean(r['test'])}: d {d:+.2f}, p {p:.2g}, 95% CI [{lo:+.2f}, {hi:+.2f}]: " + _weat_verdict_text(r)


def _weat_verdict_text(r: dict) -> str:
    """The verdict itself (``weat --json``'s ``verdict`` field; the terminal prints it after d, p and the CI)."""
    from math import comb

    n_x, n_y = list(r["sizes"].values())[:2]
    floor = 1 / comb(n_x + n_y, n_x)          # one partition of X u Y: the smallest exact permutation p
    d, p, lo, hi = r["effect_size"], r["p_value"], r["ci_low"], r["ci_high"]
    holds_zero = lo <= 0 <= hi
    if floor >= 0.05:
        return (f"cannot be significant: {n_x} and {n_y} target words split {comb(n_x + n_y, n_x)} ways, "
                f"so p is never below {floor:.2g}; add words to the sets")
    if p < 0.05 and not holds_zero:
        size = "negligible" if abs(d) < 0.2 else "small" if abs(d) < 0.5 else "medium" if abs(d) < 0.8 else "strong"
        return f"a {size} association, distinguishable from word-sampling noise"
    if p < 0.05:
        return ("not significant: p is small but the CI holds 0. p asks whether this split of these very words into X "
                "and Y matters; the CI asks how far d moves when the words themselves are resampled. A CI across 0 "
                "says the effect rests on a few of the words")
    return "not distinguishable from no association on these words"



def _overview(summary) -> str:
    """The first line of a score run: over all tests, how many are significant, how sure (each d and p), and
    whether the spread over training seeds was measured."""
    tests = [t for t in summary["tests"] if (t.get("evidence") or {}).get("significant") is not None]
    if not tests:
        return ""
    sig = [t for t in tests if t["evidence"]["significant"]]
    noisy = [t for t in tests if t["evidence"].get("seed_noise")]
    pairs = [t.get("kind") == "pairs" for t in tests]     # a log-likelihood gap over sentence pairs, not a d
    each = ", ".join(f"{clean(t['name'])} {t['evidence'].get('label') or ('gap' if p else 'd')} "
                     f"{t['evidence']['effect_size']:+.2f}"
                     + ("" if t["evidence"]["p_value"] is None else f" p {t['evidence']['p_value']:.2g}")
                     for t, p in zip(tests, pairs))
    spread = next((t["evidence"]["seed_spread"] for t in tests if t["evidence"].get("seed_spread")), None)
    seeds = (f"seed spread measured over {spread['n_seeds']} seeds ({len(noisy)} of {len(tests)} within seed noise)"
             if spread else "seed spread not measured (one training seed; --seeds 3 measures it)")
    noise = "pair-sampling" if all(pairs) else "word-sampling" if not any(pairs) else "word- or pair-sampling"
    verdict = (f"no test shows a bias distinguishable from {noise} noise" if not sig else
               f"{len(sig)} of {len(tests)} test{'s' if len(tests) > 1 else ''} significant (p < 0.05, CI without 0)")
    return f"summary: {verdict}: {each}; {seeds}."


def _print_plan(plan) -> None:
    """An experiment's first line: its trainings and what they cost (``experiments.cost.ExperimentCost``)."""
    cost = _cost(plan.trainings, plan.seconds_per_training, plan.workers, at_most=True, unit="worker")
    if plan.workers is None:
        cost += f" on the workers of {clean(plan.scheduler)}"
    elif plan.seconds_per_training:
        cost += " (the local Dask cluster: one per core)" if plan.scheduler == "local" else " (in this process)"
    if plan.seconds_per_training:
        cost += f"; the time of one measured on {plan.measured}"
    elif plan.trainings:
        cost += ("; time not estimated: no training of this model measured yet (the first baseline measures it; "
                 "`biasaudit train` or `score` with the same settings caches one)")
    out.print(f"plan: {cost}; into {clean(plan.folder)}", soft_wrap=True)


def _cost(trainings: int, secs, workers, at_most: bool = False, unit: str = "core") -> str:
    """'N trainings of about T each: about TOTAL on W cores' (what ``score``'s next step and ``experiment``'s plan
    say): the time from one measured training, spread over the workers."""
    cost = f"{'at most ' if at_most else ''}{trainings} training{'s' if trainings != 1 else ''}"
    if secs:
        cost += f" of about {_secs(secs)} each"
        if workers:
            cost += (f": about {_secs(trainings * secs / workers)} on {workers} "
                     f"{unit}{'s' if workers > 1 else ''}")
    return cost


def _next_step(summary, models) -> str:
    """The last lines of a score run: the command that checks the ranking by retraining and what it costs
    (its trainings, and their time from this model's measured training time on this machine's cores)."""
    import os
    import re

    cmd = summary.get("check_command")
    if not cmd:
        return ""
    from ..api import count_trainings

    n_tests = len([t for t in summary["tests"] if t.get("kind") != "query"])
    ks = len(re.search(r"--k (\S+)", cmd).group(1).split(",")) if "--k " in cmd else 2
    n_seeds = int(re.search(r"--seeds (\d+)", cmd).group(1)) if "--seeds " in cmd else 3
    conditions = re.search(r"--conditions (\S+)", cmd).group(1).split(",") if "--conditions " in cmd else []
    trainings = count_trainings(conditions, n_tests, ks, range(n_seeds))
    secs = (models[0].meta or {}).get("train_seconds") if models else None
    cost = _cost(trainings, secs, max(1, os.cpu_count() or 1))
    if secs:    # one training's time is what this model's training took, wherever and whenever that was
        workers = getattr(getattr(models[0], "config", None), "workers", None)
        cost += ("; the time of one as recorded when this model was trained"
                 + (f" ({workers} worker{'s' if workers != 1 else ''})" if isinstance(workers, int) else "")
                 + ", which varies with the machine and its load")
    return f"next: check this ranking by retraining ({cost}):\n  {clean(cmd)}"


def _secs(t: float) -> str:
    from ..terminal import seconds
    return seconds(t)


def _cut(text: str, width: int) -> str:
    text = " ".join(strip_controls(text, newlines=False).split())
    return text if len(text) <= width else text[:width - 1] + "…"


def _shown(t: dict, direction: str, n: int) -> list:
    """A test's documents in one direction as the terminal lists them: sorted by the score shown (most negative
    first for those driving the bias up, most positive first for the others), the report's table order."""
    rows = t.get("table") or t["top"][direction]
    picked = [d for d in rows if (d["delta_bias_if_removed"] < 0) == (direction == "increase_bias")
              and d["delta_bias_if_removed"] != 0]
    picked.sort(key=lambda d: d["delta_bias_if_removed"], reverse=direction == "decrease_bias")
    return picked[:n]


def _spread_and_start(ev: dict) -> list[str]:
    """The lines under a test's verdict: its spread over training seeds (or that it was not measured) and what the
    model an audited phase started from measured, with the phase's change."""
    lines = []
    if ev.get("seed_spread"):
        sp = ev["seed_spread"]
        lines.append(f"over {sp['n_seeds']} seeds: mean {sp['mean']:+.2f}, sd {sp['sd']:.2f}, "
                     f"range [{sp['min']:+.2f}, {sp['max']:+.2f}]")
    elif ev.get("verdict") and ev.get("significant") is not None:
        lines.append("[dim]spread over training seeds: not measured (one seed; --seeds 3 measures it)[/]")
    b = ev.get("before_audited_phase")
    if b:
        p, lo, hi = b.get("p_value"), b.get("ci_low"), b.get("ci_high")
        stats = ", ".join(([] if p is None else ["p < 0.001" if p < 0.001 else f"p = {p:.3f}"])
                          + ([] if lo is None or hi is None else [f"95% CI [{lo:+.2f}, {hi:+.2f}]"]))
        clo, chi = b.get("change_ci_low"), b.get("change_ci_high")
        lines.append(f"before the audited phase ({clean(b['model'])}): d = {b['effect_size']:+.2f}"
                     + (f" ({stats})" if stats else "") + f"; the phase moved it by {b['change']:+.2f}"
                     + ("" if clo is None or chi is None else f" (paired 95% CI [{clo:+.2f}, {chi:+.2f}])"))
    return lines


def _print_test(t: dict, estimator: str) -> None:
    """One test, evidence first, in 80 columns: the number and whether it means anything, the words, what
    removing the top documents would do, then the documents."""
    ev = t.get("evidence") or {}
    sets = t.get("roles", {}).get("sets")
    head = t["name"] + (f"  ({sets['target_x']['name']} / {sets['target_y']['name']}  x  "
                        f"{sets['attribute_a']['name']} / {sets['attribute_b']['name']})" if sets else "")
    out.print(f"\n[bold]{clean(_cut(head, WIDTH))}[/]", width=WIDTH)
    out.print(clean(ev.get("verdict") or f"B = {t['bias_value']:+.3f}"), soft_wrap=False, width=WIDTH)
    if t.get("kind") == "pairs" and (t.get("weat") or {}).get("fraction_preferred") is not None:
        w = t["weat"]
        out.print(f"[dim]the value is the mean log-likelihood gap, log p(more stereotyping) - log p(less), in nats; "
                  f"secondary: the more stereotyping sentence is preferred in {100 * w['fraction_preferred']:.1f}% "
                  f"of {w['n_pairs']:,} pairs (CrowS-Pairs' percentage; 50% = no preference)[/]", width=WIDTH)
    for line in _spread_and_start(ev):
        out.print(line, width=WIDTH)
    for w in ev.get("warnings", []):
        out.print(f"[yellow]! {clean(w)}[/]", width=WIDTH)
    if t.get("ensemble"):
        en = t["ensemble"]
        agree = "-" if en.get("mean_sign_agreement") is None else f"{en['mean_sign_agreement']:.2f}"
        unan = "-" if en.get("share_unanimous") is None else f"{en['share_unanimous']:.0%}"
        out.print(f"ranked by the mean score over {len(en['seeds'])} seeds' models (seeds "
                  f"{', '.join(map(str, en['seeds']))}); sign agreement across seeds: mean {agree}, unanimous for "
                  f"{unan} of the documents", width=WIDTH)
        if en.get("seed_reliability") is not None:
            out.print(f"seed reliability of the scores {en['seed_reliability']:.2f} (1: the seeds agree on every "
                      "document; 0: their differences are all seed noise): the predictions below are for a seed "
                      "outside the ensemble, each score pulled toward the mean document's (the top documents by "
                      "their own set's factor, printed with each prediction); the ranking and the scores written "
                      "are the plain means", width=WIDTH)
    if ev.get("sets"):
        used = ", ".join(f"{clean(st['name'])} {len(st['used'])}/{len(st['used']) + len(st['dropped'])}"
                         for st in ev["sets"])
        out.print(f"words used: {used}", width=WIDTH)
        gone = [f"{clean(d['word'])} ({d['count'] if d['count'] is not None else '?'})"
                for st in ev["sets"] for d in st["dropped"]]
        if gone:
            out.print(f"dropped (corpus count): {', '.join(gone)}", width=WIDTH)
    if t.get("word_shares"):
        out.print(f"{'word':<16} {'set':<12} {'count':>8} {'share':>7}")
        for r in t["word_shares"][:8]:
            flag = "  rare" if r.get("rare") else ""
            count = "-" if r["corpus_count"] is None else f"{r['corpus_count']:,}"
            out.print(f"{clean(_cut(r['word'], 16)):<16} {clean(_cut(str(r.get('set') or ''), 12)):<12} "
                      f"{count:>8} {100 * r['share_abs']:6.1f}%{flag}")
    if t.get("warning"):
        out.print(f"[yellow]! {clean(t['warning'])}[/]", width=WIDTH)
    for p in t.get("removal_predictions", []):
        out.print(f"removing the top {p['removed']} ({p['n_docs']:,} document{'s' if p['n_docs'] != 1 else ''}): "
                  f"{p['effect_size_before']:+.2f} -> "
                  f"{p['predicted_effect_size']:+.2f} predicted ("
                  + (f"shrunk by {p['shrunk_by']:.2f}; " if p.get("shrunk_by") is not None else "")
                  + f"the scores' sum says {p['linear_prediction']:+.2f})",
                  width=WIDTH)
    n_top = max(len(t["top"]["increase_bias"]), len(t["top"]["decrease_bias"]))
    for direction, title in (("increase_bias", "drive the bias UP (removing them lowers it)"),
                             ("decrease_bias", "drive the bias DOWN (removing them raises it)")):
        docs = _shown(t, direction, n_top)
        out.print(f"\ndocuments that {title}, {estimator}:", width=WIDTH)
        if not docs:
            out.print("  none")
        stab = any("stability" in d for d in docs)
        if docs:
            out.print(f"{'score':>10}" + ("  stab" if stab else "") + "  document (its test words); sorted by "
                      "score, as in the report's table", width=WIDTH)
        for d in docs:
            lead = f"{d['delta_bias_if_removed']:+10.4f}" + (f"  {d['stability']:4.2f}" if stab else "")
            words = ", ".join(d["test_words"])
            out.print(f"{lead}  {clean(_cut(d['doc_id'], WIDTH - len(lead) - 2 - min(30, len(words) + 3)))}"
                      + (f" ({clean(_cut(words, 28))})" if words else ""), width=WIDTH)
            out.print("            " + clean(_cut(d["snippet"], WIDTH - 12)), width=WIDTH)
        if stab:
            out.print("  (second column: stability, the share of word resamples that keep the document in the top "
                      "100)", width=WIDTH)



def _fmt(v) -> str:
    return "-" if v is None else f"{v:+.2f}"



def _print_measures(rows: list) -> None:
    """The measures of each test side by side (value, 95% CI over words, p where there is one), then each
    measure's verdict."""
    seen = set()
    for r in rows:
        if r["dropped_words"] and r["test"] not in seen:
            seen.add(r["test"])
            note(f"{r['test']}: dropped {_DROPPED} "
                 + "; ".join(f"{k}: {', '.join(v)}" for k, v in r["dropped_words"].items()))
    table = Table(caption="value: each measure's own units and sign (WEAT d, RIPA and RND > 0: X goes with A and "
                  "Y with B; Direct Bias, MAC, ECT, RNSB unsigned). CI: bootstrap over words; p: permutation.")
    for col in ("test", "measure", "seed", "value", "95% CI", "p-value"):
        table.add_column(col, justify="left" if col in ("test", "measure") else "right", overflow="fold")
    for r in rows:
        p = "-" if r["p_value"] is None else (f"{r['p_value']:.2g}" + (" exact" if r["exact"] else " MC"))
        table.add_row(clean(r["test"]), r.get("measure", "weat"), "-" if r["seed"] is None else str(r["seed"]),
                      f"{r['effect_size']:+.3f}", f"[{r['ci_low']:+.2f}, {r['ci_high']:+.2f}]", p)
    out.print(table)
    shown = set()
    for r in rows:
        key = (r["test"], r["measure"])
        if key not in shown:
            shown.add(key)
            out.print(f"{clean(r['test'])} / {r['measure']}: {clean(r['verdict'])}", width=WIDTH)

