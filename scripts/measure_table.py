"""Issue 25's agreement table (not a timed test): WEAT, RIPA, Direct Bias and RND of the default tests over 3
training seeds, per corpus, from ``biasaudit measure --seeds 3 --json`` output: does each measure find the same
biases (significant, or for Direct Bias, with no test, a CI away from 0) with the same sign?

    biasaudit measure -c gcide --seeds 3 --measure weat,ripa,direct-bias,rnd --json > gcide.json
    python scripts/measure_table.py gcide.json wordnet.json

Prints a Markdown table: per corpus, test and measure, seed 1's value with its CI and p, the mean ± sd over the
seeds, how many seeds call it significant, and the sign over the seeds.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path


def main() -> None:
    print("| corpus | test | measure | seed 1 [95% CI] | p (seed 1) | mean ± sd over seeds | significant (seeds) "
          "| sign over seeds |")
    print("|---|---|---|---|---|---|---|---|")
    for f in sys.argv[1:]:
        rows = json.loads(Path(f).read_text())["measures"]
        corpus = Path(f).stem
        by = {}
        for r in rows:
            by.setdefault((r["test"], r["measure"]), []).append(r)
        for (test, m), rs in by.items():
            rs = sorted(rs, key=lambda r: r["seed"])
            first, sp = rs[0], rs[0].get("seed_spread") or {}
            vals = [r["effect_size"] for r in rs]
            sig = [r.get("significant") for r in rs]
            sig_txt = "no test" if all(s is None for s in sig) else f"{sum(bool(s) for s in sig)}/{len(rs)}"
            signs = "".join("+" if v > 0 else "-" for v in vals)
            p = first.get("p_value")
            print(f"| {corpus} | {test} | {m} | {first['effect_size']:+.3f} [{first['ci_low']:+.2f}, "
                  f"{first['ci_high']:+.2f}] | {'-' if p is None else '< 0.001' if p < 0.001 else f'{p:.3f}'} | "
                  f"{sp.get('mean', vals[0]):+.3f} ± {sp.get('sd', 0.0):.3f} | {sig_txt} | {signs} |")


if __name__ == "__main__":
    main()
