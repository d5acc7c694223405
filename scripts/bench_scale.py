"""Benchmark (not a timed test): how scoring, training and memory scale with the corpus, in one run.

    python scripts/bench_scale.py [--scales 1,4,16] [--tmp DIR] [--skip-training]

Builds corpora of 1x, 4x and 16x GCIDE in a temporary folder (GCIDE, then renamed copies of it, with WordNet's
glosses added to every fourth copy so that vocabulary counts grow; one file per copy, so a corpus shards by file)
and measures, each in a fresh process (time and peak RSS of that process):
- a tokenize-only pass; ``block`` scoring of the three default tests with its setup (one pass: statistics,
  solve, scores; the cached default GCIDE model); ``cg`` only with ``--cg-parts 16,4`` (the first 1/16 and 1/4
  of GCIDE): its solve over every output vector (one per test, up to max_iter Hessian-vector products over all
  pairs) ran over 35 minutes on the whole corpus and over 10 on 1/16 of it here, beyond this bench's budget;
- ``block`` sharded over 2 local Dask workers (``--scheduler local``) against in-process, at 4x, on a cluster
  already up (its start is printed apart: a user with a cluster pays it once);
- one gensim training epoch at 4x with ``workers=1`` (deterministic) and ``workers=2``;
- a single synthetic 2 M-token document scored with ``block``.
Prints the table, the ratios and the targets as met or missed (absolute times drift on a shared machine: the
ratios measured in one run are the figures to read).
"""
from __future__ import annotations

import argparse
import gzip
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TESTS = ("math-arts", "science-arts", "career-family")


# ------------------------------------------------------------------ corpora
def build(folder: Path, scale: int) -> Path:
    """``folder``/x<scale>/: GCIDE and scale - 1 renamed copies, WordNet glosses in every fourth copy."""
    out = folder / f"x{scale}"
    if out.exists():
        return out
    tmp = folder / f".x{scale}.tmp"
    tmp.mkdir(parents=True, exist_ok=True)
    gcide = (ROOT / "corpora" / "gcide.jsonl.gz").read_bytes()
    wordnet = [json.loads(l) for l in gzip.decompress((ROOT / "corpora" / "wordnet.jsonl.gz").read_bytes())
               .decode("utf-8").splitlines() if l.strip()]
    lines = [json.loads(l) for l in gzip.decompress(gcide).decode("utf-8").splitlines() if l.strip()]
    for k in range(scale):
        with open(tmp / f"part{k:03d}.jsonl", "w", encoding="utf-8") as f:
            for r in lines:
                f.write(json.dumps({"id": r["id"] if k == 0 else f"{r['id']}~{k}", "text": r["text"]}) + "\n")
            if k % 4 == 3:
                for r in wordnet:
                    f.write(json.dumps({"id": f"wn:{r['id']}~{k}", "text": r["text"]}) + "\n")
    tmp.rename(out)
    return out


def prefix(folder: Path, denominator: int) -> Path:
    """``folder``/gcide-1of<d>.jsonl: the first 1/d of GCIDE's entries (cg, whose solve over every output vector
    does not finish within the bench's budget on the whole corpus here)."""
    out = folder / f"gcide-1of{denominator}.jsonl"
    if not out.exists():
        lines = [l for l in gzip.decompress((ROOT / "corpora" / "gcide.jsonl.gz").read_bytes()).decode("utf-8")
                 .splitlines() if l.strip()]
        out.write_text("\n".join(lines[:len(lines) // denominator]) + "\n", encoding="utf-8")
    return out


def long_document(folder: Path, n_tokens: int = 2_000_000) -> Path:
    import random

    out = folder / "one-long-document.jsonl"
    if not out.exists():
        rng = random.Random(0)
        words = ("he she his her man woman math art poetry algebra science family career the of and to in a "
                 "house river stone light").split()
        text = " ".join(rng.choice(words) for _ in range(n_tokens))
        out.write_text(json.dumps({"id": "long", "text": text}) + "\n")
    return out


# ------------------------------------------------------------------ one measurement, in a child process
def _warm() -> None:
    import biasaudit.influence.scorer  # noqa: F401  (torch, gensim and the scorer imported on a worker)
    import torch
    torch.set_num_threads(1)


def measure(kind: str, corpus: str, extra: str) -> dict:
    from biasaudit.corpus import load_corpus
    from biasaudit.models import train_or_load
    from biasaudit.models.skipgram import SkipGramConfig

    t0 = time.perf_counter()
    out: dict = {}
    c = load_corpus(corpus)
    if kind == "tokenize":
        from biasaudit.vocab import TokenStream
        out["tokens"] = sum(len(p) for p in TokenStream(c))
    elif kind in ("block", "cg", "dask"):
        from biasaudit.distributed import dask_client
        from biasaudit.influence import score_model
        from biasaudit.influence.estimators import EstimatorConfig
        from biasaudit.measures.targets import weat_target
        from biasaudit.wordsets import bundled_tests, restrict_tests

        model, _ = train_or_load(load_corpus("gcide"), SkipGramConfig())
        t0 = time.perf_counter()          # the model is loaded, not part of the measurement
        kept, _, _ = restrict_tests([bundled_tests()[t] for t in TESTS], model.vocab)
        targets = [weat_target(k, model.vocab) for _, k in kept]
        est = EstimatorConfig(name="cg" if kind == "cg" else "block")
        with dask_client("local" if kind == "dask" else None) as client:
            if client is not None:        # a cluster once up: its start and the workers' imports timed apart
                client.run(_warm)
                out["cluster_seconds"] = time.perf_counter() - t0
                t0 = time.perf_counter()
            r = score_model(model, c, targets, est, client=client)
        out["documents"] = len(r.doc_ids)
        out["stages"] = {k: round(v, 2) for k, v in r.timings.items()}
    elif kind == "train":
        from biasaudit.models.skipgram import train_skipgram
        m = train_skipgram(c, SkipGramConfig(epochs=1, workers=int(extra)))
        out["tokens"] = int(m.vocab.counts.sum())
    out["seconds"] = time.perf_counter() - t0
    out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    if kids:
        out["peak_rss_children_mb"] = kids
    return out


def run(kind: str, corpus: Path, extra: str = "") -> dict:
    p = subprocess.run([sys.executable, __file__, "--_measure", kind, "--_corpus", str(corpus), "--_extra", extra],
                       capture_output=True, text=True)
    if p.returncode != 0:
        raise SystemExit(f"{kind} on {corpus} failed:\n{p.stderr[-3000:]}")
    rec = json.loads(p.stdout.strip().splitlines()[-1])
    print(f"  {kind:<9} {corpus.name:<26} {rec['seconds']:8.1f} s  peak {rec['peak_rss_mb']:7.0f} MB"
          + (f"  {rec['stages']}" if "stages" in rec else ""), flush=True)
    return rec


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scales", default="1,4,16")
    ap.add_argument("--tmp", default=None, help="where the corpora are built (default: a temporary folder)")
    ap.add_argument("--skip-training", action="store_true")
    ap.add_argument("--cg-parts", default="", help="also cg on the first 1/d of GCIDE for each d (e.g. 16,4; "
                    "default: none; see the docstring)")
    ap.add_argument("--_measure"), ap.add_argument("--_corpus"), ap.add_argument("--_extra", default="")
    a = ap.parse_args()
    if a._measure:
        print(json.dumps(measure(a._measure, a._corpus, a._extra)))
        return
    scales = [int(s) for s in a.scales.split(",")]
    cg_parts = [int(s) for s in a.cg_parts.split(",")] if a.cg_parts else []
    t_all = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="biasaudit-scale-", dir=a.tmp) as tmpdir:
        folder = Path(tmpdir)
        print("building corpora ...", flush=True)
        corpora = {s: build(folder, s) for s in scales}
        res: dict = {}
        for s in scales:
            res[("tokenize", s)] = run("tokenize", corpora[s])
            res[("block", s)] = run("block", corpora[s])
        for d in cg_parts:
            res[("cg", d)] = run("cg", prefix(folder, d))
        mid = 4 if 4 in scales else scales[-1]
        res[("dask", mid)] = run("dask", corpora[mid])
        if not a.skip_training:
            for w in ("1", "2"):
                res[(f"train{w}", mid)] = run("train", corpora[mid], w)
        res[("long", 0)] = run("block", long_document(folder))
    lo, hi = scales[0], scales[-1]
    tok = {s: res[("tokenize", s)]["tokens"] for s in scales}
    print("\ncorpora: " + ", ".join(f"{s}x = {tok[s] / 1e6:.1f} M tokens, {res[('block', s)]['documents']:,} "
                                      f"documents" for s in scales))
    print(f"\n{'measurement':<34}" + "".join(f"{f'{s}x':>12}" for s in scales))
    for kind, label in (("tokenize", "tokenize-only pass (s)"), ("block", "block scoring with setup (s)")):
        print(f"{label:<34}" + "".join(f"{res[(kind, s)]['seconds']:>12.1f}" if (kind, s) in res else f"{'-':>12}"
                                       for s in scales))
    for kind, label in (("tokenize", "  peak RSS, tokenize (MB)"), ("block", "  peak RSS, block (MB)")):
        print(f"{label:<34}" + "".join(f"{res[(kind, s)]['peak_rss_mb']:>12.0f}" if (kind, s) in res
                                       else f"{'-':>12}" for s in scales))
    t_ratio = res[("block", hi)]["seconds"] / res[("block", lo)]["seconds"]
    m_ratio = res[("block", hi)]["peak_rss_mb"] / res[("block", lo)]["peak_rss_mb"]
    d_ratio = res[("block", mid)]["seconds"] / res[("dask", mid)]["seconds"]
    long_mb = res[("long", 0)]["peak_rss_mb"]
    print(f"\nratios ({hi}x over {lo}x): tokens {tok[hi] / tok[lo]:.1f}, tokenize time "
          f"{res[('tokenize', hi)]['seconds'] / res[('tokenize', lo)]['seconds']:.1f}, block time {t_ratio:.1f}, "
          f"block peak RSS {m_ratio:.2f}")
    for d in cg_parts:
        print(f"cg scoring with setup, first 1/{d} of GCIDE: {res[('cg', d)]['seconds']:.1f} s, peak RSS "
              f"{res[('cg', d)]['peak_rss_mb']:.0f} MB, {res[('cg', d)]['stages']}")
    if len(cg_parts) >= 2:
        big, small = min(cg_parts), max(cg_parts)
        print(f"cg time 1/{big} over 1/{small} ({small // big}x the tokens): "
              f"{res[('cg', big)]['seconds'] / res[('cg', small)]['seconds']:.1f}x")
    print(f"Dask, 2 local workers, {mid}x: {res[('dask', mid)]['seconds']:.1f} s against "
          f"{res[('block', mid)]['seconds']:.1f} s in-process: {d_ratio:.2f}x faster (starting the cluster and "
          f"importing on its workers took {res[('dask', mid)]['cluster_seconds']:.1f} s more)")
    if not a.skip_training:
        t1, t2 = res[("train1", mid)], res[("train2", mid)]
        print(f"gensim, one epoch at {mid}x ({t1['tokens'] / 1e6:.1f} M tokens): workers=1 {t1['seconds']:.0f} s "
              f"({t1['seconds'] / t1['tokens'] * 1e9 / 3600:.2f} h per billion tokens per epoch), workers=2 "
              f"{t2['seconds']:.0f} s ({t1['seconds'] / t2['seconds']:.2f}x faster)")
    print(f"one 2 M-token document: block scoring peak RSS {long_mb:.0f} MB, {res[('long', 0)]['seconds']:.1f} s")
    targets = [(f"block time {hi}x within {1.0625 * hi / lo:.0f}x of {lo}x", t_ratio <= 1.0625 * hi / lo,
                f"{t_ratio:.1f}x"),
               (f"block peak RSS {hi}x within 1.5x of {lo}x", m_ratio <= 1.5, f"{m_ratio:.2f}x"),
               (f"Dask on 2 workers >= 1.6x faster at {mid}x", d_ratio >= 1.6, f"{d_ratio:.2f}x"),
               ("a 2 M-token document scored in under 1 GB", long_mb < 1024, f"{long_mb:.0f} MB")]
    print("\ntargets:")
    for label, ok, got in targets:
        print(f"  {'met   ' if ok else 'MISSED'} {label}: {got}")
    print(f"\nbench took {(time.perf_counter() - t_all) / 60:.1f} minutes")


if __name__ == "__main__":
    main()
