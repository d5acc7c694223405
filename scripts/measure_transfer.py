"""Issue 25's cross-measure transfer table (not a timed test): documents ranked by one measure, the top 1% removed
and retrained over paired seeds against a random 1%; how much every measure moved (results.csv columns weat, ripa,
direct_bias, rnd, which every retrained word-vector model reports whatever the ranking measure).

    biasaudit experiment --test math-arts --test science-arts --k 1% --seeds 3 --measure weat \\
        --conditions baseline,remove-top,remove-random --out reports/transfer-gcide-weat
    (the same with --measure ripa, --out reports/transfer-gcide-ripa)
    python scripts/measure_transfer.py reports/transfer-gcide-weat reports/transfer-gcide-ripa

Prints a Markdown table: ranking measure, test, measure read, the change of removing the top (mean ± sd over
seeds, from each seed's own baseline), the change of removing random documents, their paired difference and its
two-sided paired t-test p.
"""
from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import numpy as np
from scipy import stats

MEASURES = ("weat", "ripa", "direct_bias", "rnd")


def _f(v):
    return None if v in ("", None) else float(v)


def main() -> None:
    print("| ranked by | test | measure read | remove top 1% | remove random 1% | top - random | paired p |")
    print("|---|---|---|---|---|---|---|")
    for folder in map(Path, sys.argv[1:]):
        cfg = json.loads((folder / "experiment-config.json").read_text())
        ranked_by = (cfg["tests"][0].get("measure") or "weat")
        with (folder / "results.csv").open() as fh:
            rows = list(csv.DictReader(fh))
        for test in dict.fromkeys(r["test"] for r in rows):
            by = {}
            for r in rows:
                if r["test"] == test:
                    by.setdefault(r["condition"], {})[int(r["seed"])] = r
            base = by["baseline"]
            for m in MEASURES:
                ch = {c: {s: _f(r[m]) - _f(base[s][m]) for s, r in by[c].items()
                          if _f(r[m]) is not None and _f(base[s][m]) is not None}
                      for c in ("remove-top", "remove-random") if c in by}
                seeds = sorted(set(ch["remove-top"]) & set(ch["remove-random"]))
                top = np.array([ch["remove-top"][s] for s in seeds])
                rnd = np.array([ch["remove-random"][s] for s in seeds])
                diff = top - rnd
                p = stats.ttest_rel(top, rnd).pvalue if len(seeds) > 1 and diff.std() > 0 else float("nan")
                mark = " (ranked)" if m.replace("_", "-") == ranked_by else ""
                print(f"| {ranked_by} | {test} | {m.replace('_', ' ')}{mark} | {top.mean():+.3f} ± {top.std(ddof=1):.3f} | "
                      f"{rnd.mean():+.3f} ± {rnd.std(ddof=1):.3f} | {diff.mean():+.3f} ± {diff.std(ddof=1):.3f} | "
                      f"{p:.3f} |")


if __name__ == "__main__":
    main()
