"""Where block's group predictions re-solve a word from (issue 24; not a timed test): the trained vector
(``anchor=trained``, the default) or the word's optimum with the context vectors fixed (``anchor=optimum``).

On the plain-gensim planted check's corpus (1,000 background and 100 planted documents, seed 1 ranks): each
anchor's prediction for removing the planted 100 and the top 100, and greedy selection (k 100, pool 3 x k and the
whole corpus) judged by it, each set retrained on 3 seeds: its actual change and its share of the planted set's.
With ``--corpus gcide`` (or wordnet) also the predictions for the top 0.1% and 1% of math-arts and science-arts
(the seed-1 block ranking), to set beside the experiment's measured changes (docs/results/debias.md).

    python scripts/anchor_check.py [--corpus gcide] [--seeds 3]
"""
from __future__ import annotations

import argparse

import numpy as np
import torch

from biasaudit import api
from biasaudit.audit import bias_measures
from biasaudit.corpus import MemoryCorpus
from biasaudit.influence import score_model
from biasaudit.influence.estimators import EstimatorConfig
from biasaudit.influence.select import greedy_select, group_measure, toward_zero_order
from biasaudit.models.skipgram import SkipGramConfig, train_skipgram
from biasaudit.planted import PLANTED_CHECK_SKIPGRAM, PLANTED_TEST, planted_corpus
from biasaudit.wordsets import BiasTest

PLANTED = PLANTED_CHECK_SKIPGRAM
SPECS = ("block:damping=0.1", "block:damping=0.01,anchor=optimum")


def d_of(model, test, corpus) -> float:
    t, *_ = bias_measures(model, [test], corpus=corpus)
    return t[0].value(torch.as_tensor(model.vectors, dtype=torch.float64))


def retrained_contexts(model, retrained, corpus, kept, target) -> float:
    """The change of d when every test word's input vector is the optimum of its loss on the kept documents' pairs
    with the context vectors of the model retrained without the removed ones (what a fixed-context re-solve would
    predict if it knew the new context vectors)."""
    from biasaudit.models.skipgram_objective import SkipGramObjective

    full = SkipGramObjective(model, corpus)
    obj = SkipGramObjective(model, kept)           # the kept documents' pairs, in the model's vocabulary
    index = retrained.vocab.key_to_index
    C2 = torch.zeros_like(obj.C)
    for i, w in enumerate(model.vocab.index_to_key):
        if w in index:
            C2[i] = torch.as_tensor(retrained.output_vectors[index[w]], dtype=obj.dtype)
    obj.C = C2
    sub = full.U[torch.as_tensor(target.rows)].clone()
    for j, r in enumerate(int(r) for r in target.rows):
        c0, n0 = obj.word_pairs(r)
        sub[j] = obj.word_optimum(r, c0, n0, float(n0.sum()))
    return float(target.fn(sub)) - target.value(full.U)


def planted(seeds: int) -> None:
    corpus, planted_ids, _ = planted_corpus(n_background=1000, n_planted=100)
    docs = list(corpus)
    test = BiasTest.from_dict(PLANTED_TEST)
    cfgs = [SkipGramConfig(**PLANTED, seed=s) for s in range(1, seeds + 1)]
    base = [d_of(train_skipgram(corpus, c), test, corpus) for c in cfgs]

    def actual(S) -> tuple[float, float]:
        drop = set(int(i) for i in S)
        kept = MemoryCorpus([d for i, d in enumerate(docs) if i not in drop], "kept")
        ch = [d_of(train_skipgram(kept, c), test, kept) - b for c, b in zip(cfgs, base)]
        return float(np.mean(ch)), float(np.std(ch))

    pidx = np.array([i for i, d in enumerate(docs) if d.id in planted_ids])
    ref = actual(pidx)
    print(f"planted 100 removed: actual {ref[0]:+.2f} ± {ref[1]:.2f} over {seeds} seeds", flush=True)
    model = train_skipgram(corpus, cfgs[0])
    targets, *_ = bias_measures(model, [test], corpus=corpus)
    kept = MemoryCorpus([d for d in docs if d.id not in planted_ids], "kept")
    print(f"with the retrained context vectors (seed 1): the test words' optima on the edited pairs move d by "
          f"{retrained_contexts(model, train_skipgram(kept, cfgs[0]), corpus, kept, targets[0]):+.2f}", flush=True)
    for spec in SPECS:
        res = score_model(model, corpus, targets, EstimatorConfig.parse(spec))
        d = res.bias_value["planted"]
        order = toward_zero_order(res.delta_bias_if_removed["planted"], d)
        m = group_measure(res.predictor, "planted")
        print(f"{spec}: predicts planted {m([pidx])[0] - d:+.2f}, top 100 {m([order[:100]])[0] - d:+.2f}", flush=True)
        sets = {"top 100": order[:100]}
        for pool in (3, len(order) // 100):
            sel = greedy_select(m, order, 100, d, goal=None, pool=pool)
            sets[f"greedy, pool {pool} x k (predicted {sel.predicted - d:+.2f})"] = sel.order
        for name, S in sets.items():
            a = actual(S)
            n_pl = len(set(S.tolist()) & set(pidx.tolist()))
            print(f"  {name}: actual {a[0]:+.2f} ± {a[1]:.2f}, {a[0] / ref[0]:.0%} of the planted set's; "
                  f"{n_pl} planted among them", flush=True)


def real(name: str) -> None:
    corpus = api.load_corpus(name)
    model = api.train(corpus, "skipgram")
    targets, *_ = bias_measures(model, api.bias_tests("math-arts", "science-arts"), corpus=corpus)
    base = score_model(model, corpus, targets, EstimatorConfig())
    n = len(base.doc_ids)
    for spec in SPECS + ("block:damping=0.1,anchor=optimum",):
        res = base if spec == SPECS[0] else score_model(model, corpus, targets, EstimatorConfig.parse(spec))
        for t in ("math-arts", "science-arts"):
            order = np.argsort(base.delta_bias_if_removed[t], kind="stable")
            vals = group_measure(res.predictor, t)([order[:int(np.ceil(f * n))] for f in (0.001, 0.01)])
            d = base.bias_value[t]
            print(f"{name} {spec} {t}: remove top 0.1% {vals[0] - d:+.2f}, top 1% {vals[1] - d:+.2f}", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpus", default=None, help="also a bundled corpus's predictions (gcide, wordnet)")
    ap.add_argument("--seeds", type=int, default=3)
    a = ap.parse_args()
    planted(a.seeds)
    if a.corpus:
        real(a.corpus)


if __name__ == "__main__":
    main()
