"""Do two commits write the same outputs? Runs the same biasaudit command at each commit (a git worktree each, the
same model cache, PYTHONHASHSEED fixed, one thread) and compares every file the runs wrote, byte for byte; where a
JSON/JSONL file differs, names the first fields that do.

    python scripts/compare_outputs.py 55dcd86 HEAD                        # the default run: biasaudit score
    python scripts/compare_outputs.py 55dcd86 HEAD -- score --test math-arts --resamples 0
    python scripts/compare_outputs.py HEAD~3 HEAD -- experiment --k 0.1% --seeds 2 --conditions baseline,remove-top

Exit 0 when every file is identical, 1 otherwise. The model cache is shared (``--cache DIR``, default a folder under
reports/), so a model whose cache key did not change is trained once; pass ``--fresh`` to train at each commit.
"""
from __future__ import annotations

import argparse
import filecmp
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
STAMP = re.compile(r"\d{4}-\d\d-\d\d[ T]\d\d:\d\d(:\d\d(\.\d+)?)?Z?( UTC)?")   # when a file was made
SECONDS = re.compile(r"(took|in) [0-9][0-9.,]* (s|min)\b")     # how long a step took (the report's "scoring took 14.2 s")
VOLATILE = {"seconds", "timings", "created", "wall_seconds", "started", "finished", "elapsed", "time", "path",
            "out", "folder", "biasaudit_commit", "updated", "out_dir"}


def run_at(rev: str, args: list[str], work: Path, cache: Path) -> Path:
    tree = work / f"tree-{rev.replace('/', '_')}"
    subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", "-f", str(tree), rev], check=True,
                   capture_output=True)
    out = work / "out"        # the same folder name for both runs (the outputs name it), moved aside after
    env = {**os.environ, "PYTHONPATH": str(tree), "PYTHONHASHSEED": "0", "OMP_NUM_THREADS": "1",
           "MKL_NUM_THREADS": "1", "BIASAUDIT_CACHE": str(cache)}
    cmd = [sys.executable, "-m", "biasaudit", *args, "--out", str(out)]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=tree, env=env, capture_output=True, text=True)
    print(f"{rev}: exit {proc.returncode} in {time.perf_counter() - t0:.0f} s: {' '.join(cmd[2:])}")
    if proc.returncode != 0:
        print(proc.stderr[-2000:])
        sys.exit(2)
    kept = work / f"out-{rev.replace('/', '_')}"
    out.rename(kept)
    return kept


def first_differences(a, b, where="", limit=5) -> list[str]:
    out: list[str] = []
    if isinstance(a, dict) and isinstance(b, dict):
        for k in sorted(set(a) | set(b)):
            if k in VOLATILE:
                continue
            if k not in a or k not in b:
                out.append(f"{where}.{k}: only in {'second' if k not in a else 'first'}")
            else:
                out += first_differences(a[k], b[k], f"{where}.{k}", limit - len(out))
            if len(out) >= limit:
                break
    elif isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for i, (x, y) in enumerate(zip(a, b)):
            out += first_differences(x, y, f"{where}[{i}]", limit - len(out))
            if len(out) >= limit:
                break
    elif a != b:
        out.append(f"{where}: {str(a)[:60]} != {str(b)[:60]}")
    return out


def load_json(path: Path):
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".jsonl":
        return [json.loads(line) for line in text.splitlines() if line.strip()]
    return json.loads(text)


def compare(a: Path, b: Path) -> int:
    files = sorted({p.relative_to(a) for p in a.rglob("*") if p.is_file()}
                   | {p.relative_to(b) for p in b.rglob("*") if p.is_file()})
    bad = 0
    for rel in files:
        fa, fb = a / rel, b / rel
        if not fa.exists() or not fb.exists():
            print(f"  {rel}: only in {'second' if not fa.exists() else 'first'}")
            bad += 1
            continue
        if filecmp.cmp(fa, fb, shallow=False):
            print(f"  {rel}: identical")
            continue
        note = ""
        if rel.suffix in (".html", ".csv", ".txt"):     # the run's own folder named inside: not a difference
            ta = SECONDS.sub(r"\1 N s", STAMP.sub("TIME", fa.read_text(encoding="utf-8"))).splitlines()
            tb = SECONDS.sub(r"\1 N s", STAMP.sub("TIME", fb.read_text(encoding="utf-8"))).splitlines()
            lines = [f"line {i + 1}: {x.strip()[:70]!r} != {y.strip()[:70]!r}"
                     for i, (x, y) in enumerate(zip(ta, tb)) if x != y]
            if not lines and len(ta) == len(tb):
                print(f"  {rel}: differs only in when it was made and how long it took")
                continue
            note = f"{len(lines)} line(s): " + "; ".join(lines[:3]) if lines else "length"
        if rel.suffix in (".json", ".jsonl"):
            diffs = first_differences(load_json(fa), load_json(fb))
            note = "; ".join(diffs) if diffs else "differs only in run-specific fields (times, paths)"
            if not diffs:
                print(f"  {rel}: {note}")
                continue
        print(f"  {rel}: DIFFERS {note}")
        bad += 1
    return bad


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("first")
    ap.add_argument("second")
    ap.add_argument("--cache", type=Path, default=ROOT / "reports" / "compare-cache")
    ap.add_argument("--fresh", action="store_true", help="train at each commit (a cache of its own)")
    ap.add_argument("command", nargs=argparse.REMAINDER)
    a = ap.parse_args()
    args = [x for x in a.command if x != "--"] or ["score"]
    with tempfile.TemporaryDirectory(prefix="biasaudit-compare-") as tmp:
        work = Path(tmp)
        outs = []
        for i, rev in enumerate((a.first, a.second)):
            cache = (work / f"cache-{i}") if a.fresh else a.cache
            outs.append(run_at(rev, args, work, cache))
        bad = compare(*outs)
        for rev in (a.first, a.second):
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force",
                            str(work / f"tree-{rev.replace('/', '_')}")], capture_output=True)
    print("identical" if not bad else f"{bad} file(s) differ")
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
