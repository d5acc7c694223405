"""Benchmark (not a timed test): scoring cost against one gensim epoch and a tokenization-only pass, in one run.

    python scripts/bench_score.py [--corpus gcide] [--estimators block,gradient-dot,cg,lissa] [--tests math-arts]

Prints the absolute seconds and the ratios side by side (absolute times drift on a shared machine; the ratios are
the figures to read). Uses the cached default skip-gram model (trained if absent).
"""
from __future__ import annotations

import argparse
import time

from _table import print_ratios
from biasaudit.corpus import load_corpus
from biasaudit.influence.estimators import EstimatorConfig
from biasaudit.influence.scorer import score_documents
from biasaudit.measures.targets import weat_target
from biasaudit.models.skipgram import SkipGramConfig, train_or_load, train_skipgram
from biasaudit.vocab import TokenStream
from biasaudit.wordsets import DEFAULT_TESTS, resolve_tests


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpus", default="gcide")
    ap.add_argument("--estimators", default="block,gradient-dot")
    ap.add_argument("--tests", default=",".join(DEFAULT_TESTS), help="comma-separated bundled test names")
    a = ap.parse_args()
    corpus = load_corpus(a.corpus)
    corpus.scan()
    model, _ = train_or_load(corpus, SkipGramConfig())
    rows = []
    t = time.perf_counter()
    n = sum(len(toks) for toks in TokenStream(corpus))
    rows.append(("tokenization-only pass", time.perf_counter() - t))
    t = time.perf_counter()
    train_skipgram(corpus, SkipGramConfig(epochs=1))
    epoch = time.perf_counter() - t
    rows.append(("one gensim epoch (workers=1, vocab scan included)", epoch))
    targets = []
    for test in resolve_tests(a.tests.split(",")):
        kept, _ = test.restrict(model.vocab, allow_oov=True)
        targets.append(weat_target(kept, model.vocab))
    for spec in a.estimators.split(","):
        t = time.perf_counter()
        r = score_documents(model, corpus, targets, EstimatorConfig.parse(spec))
        rows.append((f"{spec} scoring, setup included ({len(targets)} tests)", time.perf_counter() - t))
        print(f"  {spec}: {r.timings}, solver {list(r.solver_info.values())[0]}", flush=True)
    tok = rows[0][1]
    print(f"\n{corpus.name}: {corpus.scan().n_documents} documents, {n} tokens")
    print_ratios(rows, {"/ epoch": epoch, "/ tokenize": tok})


if __name__ == "__main__":
    main()
