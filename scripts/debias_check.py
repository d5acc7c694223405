"""Acceptance table of issue 24 (not a timed test; hours of CPU on GCIDE and WordNet): for each corpus and test,
how many edits ``biasaudit debias`` needs to bring |d| inside the seed-noise band (the sd of d over the seeds'
models), with the set chosen greedily (``--select greedy``) against top-k by individual score, each edit verified
by retraining every seed on the edited corpus: predicted against actual change (their ratio; the goal is
[0.67, 1.5]), the held-out companion's change and WordSim-353 before and after.

And the plain-gensim planted check: on ``planted_corpus(n_background=1000, n_planted=100)``, an experiment with
``--select greedy``: the change of removing the greedy 100 (``remove-selected``) and the top 100
(``remove-top``) as a share of removing the 100 planted documents (``remove-ids``); the goal is >= 90%.

The planted test has 3 + 3 target words, so its exact permutation p is at least 0.05 and debias would refuse it:
the planted rows run with ``force`` (said in the table). Tests a real corpus does not show as significant are
listed as refused, with their evidence.

    python scripts/debias_check.py [--corpora gcide,wordnet,planted] [--tests math-arts,science-arts,career-family]
        [--seeds 3] [--k 1%] [--method remove] [--estimator block] [--out reports/debias-check] [--no-planted-check]
    python scripts/debias_check.py --smoke      # the small planted corpus only, a few seconds per row

Writes ``OUT/debias_check.json`` (every row, the manifests' verify blocks) and prints the table (Markdown).
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from biasaudit import api
from biasaudit.errors import ConfigError
from biasaudit.planted import PLANTED_CHECK_SKIPGRAM, PLANTED_TEST, planted_corpus

SMALL = dict(vector_size=16, window=3, min_count=2, epochs=20)
# the plain-gensim planted check's model (SMALL's d sits on the measure's bound, where no edit can move it)
PLANTED = PLANTED_CHECK_SKIPGRAM
COLUMNS = ["corpus", "test", "select", "d", "band", "band_source", "n_needed", "reached", "predicted_change",
           "actual_change", "actual_over_predicted", "heldout_change", "wordsim_before", "wordsim_after", "forced",
           "seconds"]


def _fmt(v) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:+.3f}"
    return str(v)


def debias_rows(name, corpus, config, tests, a, out: Path, force: bool) -> list[dict]:
    """One row per (test, selection): debias with the seed-noise band and --verify on every seed."""
    model = api.train(corpus, config)
    rows = []
    for test in tests:
        for select in ("top-k", "greedy"):
            t0 = time.perf_counter()
            tname = test if isinstance(test, str) else test["name"]
            row = {"corpus": name, "test": tname, "select": select, "forced": force}
            try:
                res = api.debias_corpus(model, corpus, [test], k=a.k, method=a.method, estimator=a.estimator,
                                        seeds=a.seeds, select=select, force=force, verify=a.seeds,
                                        out=out / f"{name}-{tname}-{select}", overwrite=True, report=True)
            except ConfigError as e:           # a test that is not significant: its evidence, no edit
                rows.append({**row, "refused": str(e), "seconds": round(time.perf_counter() - t0, 1)})
                print(f"{name} {tname} {select}: refused: {e}", flush=True)
                continue
            m = res.summary
            p = m["predicted"][tname]
            rule = p["stopping"]
            v = m["verify"]["tests"][tname]
            row.update(d=p["effect_size_before"], band=rule["band"], band_source=rule["band_source"],
                       n_needed=p["n_edited"], reached=rule["reached"], predicted_change=v["predicted_change"],
                       actual_change=v["actual_change_mean"], actual_over_predicted=v["actual_over_predicted"],
                       heldout_change=v["heldout_change_mean"], wordsim_before=v["wordsim353_baseline_mean"],
                       wordsim_after=v["wordsim353_mean"], seconds=round(time.perf_counter() - t0, 1),
                       verify=m["verify"], selection=rule.get("selection"))
            rows.append(row)
            print(" | ".join(_fmt(row.get(c)) for c in COLUMNS), flush=True)
    return rows


def planted_check(a, out: Path, smoke: bool) -> dict:
    """remove-selected and remove-top as shares of removing the planted documents (remove-ids)."""
    corpus, planted, _ = (planted_corpus() if smoke else planted_corpus(n_background=1000, n_planted=100))
    k = len(planted)
    config = api.model_config("skipgram", **(SMALL if smoke else PLANTED))
    res = api.experiment(config, corpus, [PLANTED_TEST], k=str(k), seeds=a.seeds, estimator=a.estimator,
                         conditions="baseline,remove-top,remove-random,remove-ids", remove_ids=sorted(planted),
                         select="greedy", quality=False, out=out / "planted-check", overwrite=True, report=True)
    by = {c["condition"]: c for c in res["conditions"]}
    ref = by["remove-ids"]["change_mean"]
    share = {c: (None if by[c]["change_mean"] is None or not ref else by[c]["change_mean"] / ref)
             for c in ("remove-selected", "remove-top")}
    out_ = {"k": k, "seeds": a.seeds, "planted_change": ref, "selected_change": by["remove-selected"]["change_mean"],
            "top_change": by["remove-top"]["change_mean"], "selected_share": share["remove-selected"],
            "top_share": share["remove-top"], "goal": "selected_share >= 0.9"}
    print(f"planted check (k {k}, {a.seeds} seeds): planted {_fmt(ref)}; selected {_fmt(out_['selected_change'])} "
          f"({_fmt(share['remove-selected'])} of it); top-k {_fmt(out_['top_change'])} "
          f"({_fmt(share['remove-top'])} of it)", flush=True)
    return out_


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpora", default="gcide,wordnet,planted")
    ap.add_argument("--tests", default="math-arts,science-arts,career-family")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--k", default="1%", help="the upper bound of each edit (debias --k)")
    ap.add_argument("--planted-k", default="15%", help="the planted corpus's bound (its 100 planted documents are 9%%)")
    ap.add_argument("--method", default="remove")
    ap.add_argument("--estimator", default="block")
    ap.add_argument("--out", default="reports/debias-check")
    ap.add_argument("--no-planted-check", action="store_true")
    ap.add_argument("--force", action="store_true", help="edit real corpora's tests that are not significant too "
                    "(debias --force; the rows say forced, and the refusal's evidence is kept in the JSON)")
    ap.add_argument("--smoke", action="store_true", help="the small planted corpus only, small models, 2 seeds")
    a = ap.parse_args()
    if a.smoke:
        a.corpora, a.seeds, a.k, a.planted_k = "planted", 2, "12", "12"
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    rows, t0 = [], time.perf_counter()
    print(" | ".join(COLUMNS))
    for name in [c for c in a.corpora.split(",") if c]:
        if name == "planted":
            corpus = planted_corpus()[0] if a.smoke else planted_corpus(n_background=1000, n_planted=100)[0]
            config = api.model_config("skipgram", **(SMALL if a.smoke else PLANTED))
            planted_args = argparse.Namespace(**{**vars(a), "k": a.planted_k})
            rows += debias_rows(name, corpus, config, [PLANTED_TEST], planted_args, out, force=True)
        else:
            corpus = api.load_corpus(name)
            rows += debias_rows(name, corpus, api.model_config("skipgram"), a.tests.split(","), a, out, force=a.force)
    check = None if a.no_planted_check else planted_check(a, out, a.smoke)
    result = {"rows": rows, "planted_check": check, "args": vars(a),
              "seconds": round(time.perf_counter() - t0, 1)}
    (out / "debias_check.json").write_text(json.dumps(result, indent=1, default=str))
    print("\n| " + " | ".join(COLUMNS) + " |\n|" + "---|" * len(COLUMNS))
    for r in rows:
        print("| " + " | ".join(_fmt(r.get(c)) if "refused" not in r or c in ("corpus", "test", "select")
                                 else ("refused" if c == "d" else "") for c in COLUMNS) + " |")
    print(f"\nwrote {out / 'debias_check.json'} ({result['seconds']:.0f} s)")


if __name__ == "__main__":
    main()
