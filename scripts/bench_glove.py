"""Benchmark (not a timed test): GloVe co-occurrence counting, one training epoch and influence scoring of all
documents, against one gensim skip-gram epoch on the same corpus, in one run.

    python scripts/bench_glove.py [--corpus gcide] [--epochs 1]

Prints seconds and ratios side by side (absolute times drift on a shared machine; read the ratios). Scoring
uses the model trained here for --epochs epochs (its rankings are not meaningful at 1 epoch; its cost is).
"""
from __future__ import annotations

import argparse
import time

from _table import print_ratios
from biasaudit.corpus import load_corpus
from biasaudit.influence.estimators import EstimatorConfig
from biasaudit.influence.counts import score_glove
from biasaudit.measures.targets import weat_target
from biasaudit.models.glove import GloVeConfig, cooccurrence_matrix, train_glove
from biasaudit.models.skipgram import SkipGramConfig, train_skipgram
from biasaudit.vocab import MAX_CHUNK, TokenStream, build_vocab
from biasaudit.wordsets import DEFAULT_TESTS, resolve_tests


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpus", default="gcide")
    ap.add_argument("--epochs", type=int, default=1)
    a = ap.parse_args()
    corpus = load_corpus(a.corpus)
    corpus.scan()
    cfg = GloVeConfig(epochs=a.epochs)
    rows = []
    t = time.perf_counter()
    vocab = build_vocab(TokenStream(corpus, MAX_CHUNK), cfg.min_count)
    rows.append(("vocabulary scan (tokenize + count)", time.perf_counter() - t))
    t = time.perf_counter()
    i, j, x = cooccurrence_matrix(corpus, vocab, cfg.window)
    rows.append((f"co-occurrence counting ({len(x):,} non-zeros, window {cfg.window})", time.perf_counter() - t))
    t = time.perf_counter()
    model = train_glove(corpus, cfg)
    total = time.perf_counter() - t
    setup = model.meta["count_seconds"]
    rows.append((f"GloVe training, {a.epochs} epoch(s) after counting", total - setup))
    t = time.perf_counter()
    train_skipgram(corpus, SkipGramConfig(epochs=1))
    epoch = time.perf_counter() - t
    rows.append(("one gensim skip-gram epoch (workers=1, vocab scan included)", epoch))
    targets = []
    for test in resolve_tests(DEFAULT_TESTS):
        kept, _ = test.restrict(model.vocab, allow_oov=True)
        targets.append(weat_target(kept, model.vocab))
    for spec in ("block", "gradient-dot"):
        t = time.perf_counter()
        r = score_glove(model, corpus, targets, EstimatorConfig.parse(spec))
        rows.append((f"GloVe {spec} scoring of all documents, setup included ({len(targets)} tests)",
                     time.perf_counter() - t))
        print(f"  {spec}: {r.timings}", flush=True)
    print(f"\n{corpus.name}: {corpus.scan().n_documents} documents, {len(vocab)} words")
    print_ratios(rows, {"/ sg epoch": epoch})


if __name__ == "__main__":
    main()
