"""Benchmark for a GPU machine (not a timed test): what a GPU buys each model family, in one run.

    python scripts/bench_gpu.py [--device cuda] [--scale 4] [--lm-epochs 1] [--docs N] [--tmp DIR]

Measures, side by side:
- skip-gram at ``--scale`` x GCIDE (the corpus ``scripts/bench_scale.py`` builds): one epoch of gensim with
  ``workers=2`` (two CPU cores, the comparison docs/results/scale.md makes) and with ``workers=1`` (deterministic), and one
  epoch of the torch backend on ``--device``: tokens per second and the ratio;
- GloVe on GCIDE: the co-occurrence count and the seconds per AdaGrad epoch on the CPU and on ``--device``;
- ``--model lm`` on GCIDE: seconds per training epoch (default LMConfig) on ``--device``, then EK-FAC: factor
  fitting and the scoring of every document against the three default template tests.

``--docs N`` keeps the first N documents of each corpus (a smoke test of this script on a CPU). Every figure is
printed with the device it ran on; absolute times depend on the machine, the ratios measured in one run are the
figures to read.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from itertools import islice
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_scale import TESTS, build  # noqa: E402


def _subset(corpus, n: int | None):
    if not n:
        return corpus
    from biasaudit.corpus import MemoryCorpus
    return MemoryCorpus(list(islice(iter(corpus), n)), name=f"{corpus.name}[:{n}]")


def _sync(device: str) -> None:
    import torch
    if device.startswith("cuda") and torch.cuda.is_available():
        torch.cuda.synchronize()


def skipgram(corpus, device: str) -> list[tuple[str, float, int]]:
    from biasaudit.models.skipgram import SkipGramConfig, train_skipgram
    rows = []
    for label, cfg, dev in (("gensim, workers=1 (cpu)", SkipGramConfig(epochs=1, workers=1), "cpu"),
                            ("gensim, workers=2 (cpu)", SkipGramConfig(epochs=1, workers=2), "cpu"),
                            (f"torch backend ({device})", SkipGramConfig(epochs=1, backend="torch"), device)):
        t = time.perf_counter()
        m = train_skipgram(corpus, cfg, device=dev)
        _sync(dev)
        rows.append((label, time.perf_counter() - t, int(m.vocab.counts.sum())))
        print(f"  skip-gram {label:<28} {rows[-1][1]:8.1f} s  {rows[-1][2] / rows[-1][1]:>12,.0f} tokens/s", flush=True)
    return rows


def glove(corpus, device: str, epochs: int) -> list[tuple[str, float, float]]:
    from biasaudit.models.glove import GloVeConfig, train_glove
    rows = []
    for dev in dict.fromkeys(("cpu", device)):
        m = train_glove(corpus, GloVeConfig(epochs=epochs), device=dev)
        _sync(dev)
        per_epoch = (m.meta["train_seconds"] - m.meta["count_seconds"]) / epochs
        rows.append((dev, m.meta["count_seconds"], per_epoch))
        print(f"  GloVe on {dev:<6} count {rows[-1][1]:7.1f} s, {per_epoch:7.1f} s per epoch "
              f"({m.meta['nonzero']:,} co-occurrences)", flush=True)
    return rows


def lm(corpus, device: str, epochs: int) -> dict:
    from biasaudit.influence import score_model
    from biasaudit.influence.estimators import EstimatorConfig
    from biasaudit.models.lm import LMConfig, train_lm
    from biasaudit.wordsets import bundled_tests

    t = time.perf_counter()
    model = train_lm(corpus, LMConfig(epochs=epochs, min_steps=0), device=device)
    _sync(device)
    train_s = time.perf_counter() - t
    from biasaudit.models.base import family_of
    tests = [bundled_tests()[n] for n in TESTS]
    measures, kept = [], []
    for test in tests:
        try:
            measures += family_of(model).bias_measures(model, [test])
            kept.append(test.name)
        except Exception as e:      # a test whose words the small vocabulary lacks is skipped, and said so
            print(f"  LM: {test.name} skipped ({e})")
    if not measures:
        raise SystemExit("LM: no default test has all its words in the model's vocabulary; nothing to score")
    t = time.perf_counter()
    r = score_model(model, corpus, measures, EstimatorConfig(name="ekfac"), device=device)
    _sync(device)
    out = {"device": device, "epochs": epochs, "train_seconds": train_s, "seconds_per_epoch": train_s / epochs,
           "examples": model.meta.get("n_examples"), "tests": kept, "score_seconds": time.perf_counter() - t,
           "factor_seconds": r.timings.get("factors"), "documents": len(r.doc_ids)}
    print(f"  LM on {device}: {out['seconds_per_epoch']:.1f} s per epoch ({out['examples']:,} examples), EK-FAC "
          f"factors {out['factor_seconds']:.1f} s, scoring {out['documents']:,} documents against "
          f"{len(kept)} tests {out['score_seconds']:.1f} s", flush=True)
    return out


def main() -> None:
    import torch

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--scale", type=int, default=4, help="skip-gram corpus size in GCIDEs (default 4)")
    ap.add_argument("--glove-epochs", type=int, default=3)
    ap.add_argument("--lm-epochs", type=int, default=1)
    ap.add_argument("--docs", type=int, default=None, help="keep the first N documents (a smoke test)")
    ap.add_argument("--tmp", default=None)
    ap.add_argument("--json", default=None, help="also write the figures to this file")
    a = ap.parse_args()
    from biasaudit.corpus import load_corpus

    t_all = time.perf_counter()
    name = torch.cuda.get_device_name(0) if a.device.startswith("cuda") else "cpu"
    print(f"device: {a.device} ({name}); torch {torch.__version__}; {torch.get_num_threads()} CPU threads", flush=True)
    gcide = _subset(load_corpus("gcide"), a.docs)
    with tempfile.TemporaryDirectory(prefix="biasaudit-gpu-", dir=a.tmp) as tmp:
        big = _subset(load_corpus(str(build(Path(tmp), a.scale))), a.docs * a.scale if a.docs else None)
        sg = skipgram(big, a.device)
    gl = glove(gcide, a.device, a.glove_epochs)
    lm_out = lm(gcide, a.device, a.lm_epochs)

    print(f"\nskip-gram, one epoch at {a.scale}x GCIDE ({sg[0][2] / 1e6:.1f} M tokens after min_count):")
    ref = sg[1][1]
    for label, sec, tok in sg:
        print(f"  {label:<28} {sec:8.1f} s {tok / sec:>12,.0f} tokens/s   {ref / sec:5.2f}x gensim on 2 cores")
    print("GloVe on GCIDE, per AdaGrad epoch:")
    for dev, count, per in gl:
        print(f"  {dev:<8} {per:8.2f} s   ({gl[0][2] / per:.2f}x the CPU); counting {count:.1f} s")
    print(f"LM on GCIDE ({lm_out['device']}): {lm_out['seconds_per_epoch']:.1f} s per epoch; EK-FAC factors "
          f"{lm_out['factor_seconds']:.1f} s; scoring {lm_out['score_seconds']:.1f} s")
    print(f"\nbench took {(time.perf_counter() - t_all) / 60:.1f} minutes")
    if a.json:
        Path(a.json).write_text(json.dumps({"device": a.device, "device_name": name, "skipgram": sg, "glove": gl,
                                            "lm": lm_out}, indent=1))


if __name__ == "__main__":
    main()
