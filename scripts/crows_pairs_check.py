"""Acceptance check (not a timed test): CrowS-Pairs on a fine-tuned tiny checkpoint: per-type log-likelihood gaps
with bootstrap CIs, the fine-tuning documents ranked by their influence on one type's gap, and a retraining check
over paired seeds (removing the top-ranked documents against removing random ones).

    python scripts/crows_pairs_check.py [--arch gpt_neox] [--type gender] [--seeds 3] [--k 30] [--out DIR]

The checkpoint is finetune_check.py's kind (its ``pretrained_checkpoint``: a byte-level BPE tokenizer trained on
GCIDE entries and the fine-tuning texts, pretrained on 2,000 GCIDE entries). It is fine-tuned on --n-docs GCIDE
entries that mention a gendered word (she, woman, wife, man, ...: text about people, where a gender gap can move),
once per seed. The gaps are read on each seed's fine-tuned model; the documents are ranked with --estimator on the
first seed's model by their influence on --type's gap (``experiment`` takes no --pairs, so this script retrains
itself: the family's own ``retrain``, fine-tuning again from the same checkpoint). For each seed: the change of
the gap when the top k (those whose removal is predicted to lower the gap most) are removed, and when k random
documents are (drawn per seed), against that seed's baseline; paired over seeds: mean, sd and a paired t-test.
Prints Markdown tables (the ones docs/results/crows-pairs.md shows).
"""
from __future__ import annotations

import argparse
import random
import re
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from finetune_check import pretrained_checkpoint  # noqa: E402

from biasaudit.corpus import MemoryCorpus, load_corpus  # noqa: E402
from biasaudit.influence import score_model  # noqa: E402
from biasaudit.influence.estimators import EstimatorConfig  # noqa: E402
from biasaudit.measures.crows_pairs import BIAS_TYPES  # noqa: E402
from biasaudit.measures.lm import resolve_pairs  # noqa: E402
from biasaudit.models import get_family  # noqa: E402
from biasaudit.models.lm import LMConfig, train_lm  # noqa: E402

# nouns and pronouns that CrowS-Pairs' gender pairs swap (he/his/him left out: GCIDE's quotations have them
# everywhere)
GENDERED = re.compile(r"\b(she|her|woman|women|man|men|girl|boy|wife|husband|mother|father|daughter|son|queen|king|"
                      r"female|male|widow|bride|lady)\b", re.I)


def finetuning_corpus(n_docs: int) -> MemoryCorpus:
    """GCIDE entries of 8 to 80 words that mention a gendered word, drawn with seed 1 (finetune_check draws its
    pretraining entries with seed 0 from all entries: the two overlap by chance only)."""
    docs = [d for d in load_corpus("gcide") if 8 <= len(d.text.split()) <= 80 and GENDERED.search(d.text)]
    return MemoryCorpus(random.Random(1).sample(docs, n_docs), f"gcide-gendered-{n_docs}")


def gaps(model, sets) -> dict:
    """Each set's MeasureResult on ``model`` (and the pair measures, for scoring)."""
    fam = get_family("lm")
    measures = {s.name: fam.pair_measure(model, s.name, s.pairs, s.ids, s.source) for s in sets}
    return {name: (m, m.stats(model.net)) for name, m in measures.items()}


def main() -> None:
    from scipy.stats import ttest_rel

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--arch", default="gpt_neox")
    ap.add_argument("--type", default="gender", choices=BIAS_TYPES, help="the bias type whose gap ranks documents")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--n-docs", type=int, default=300, help="fine-tuning documents")
    ap.add_argument("--k", type=int, default=30, help="documents removed (top and random)")
    ap.add_argument("--epochs", type=int, default=10, help="fine-tuning epochs")
    ap.add_argument("--pretrain-epochs", type=int, default=5)
    ap.add_argument("--estimator", default="ekfac")
    ap.add_argument("--out", default="reports/crows-pairs-check")
    a = ap.parse_args()
    t0 = time.perf_counter()
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    corpus = finetuning_corpus(a.n_docs)
    ck = out / f"{a.arch}-pretrained"
    if not (ck / "biasaudit.json").exists():
        ck = pretrained_checkpoint(a.arch, out, [d.text for d in corpus], a.pretrain_epochs)
    print(f"checkpoint {ck} ({time.perf_counter() - t0:.0f} s)", flush=True)
    fam, sets = get_family("lm"), resolve_pairs("crows-pairs")
    target = f"crows-pairs:{a.type}"
    seeds = list(range(1, a.seeds + 1))
    config = {s: LMConfig(finetune=str(ck), epochs=a.epochs, batch_size=16, seed=s) for s in seeds}
    base = {s: train_lm(corpus, config[s]) for s in seeds}
    measured = {s: gaps(base[s], sets) for s in seeds}
    print(f"fine-tuned {len(seeds)} seeds ({time.perf_counter() - t0:.0f} s)", flush=True)

    ranked = score_model(base[1], corpus, [measured[1][target][0]], EstimatorConfig(name=a.estimator))
    s = ranked.delta_bias_if_removed[target]
    top = np.argsort(s, kind="stable")[:a.k]                  # most negative: removing them lowers the gap most
    top_ids = [ranked.doc_ids[i] for i in top]
    predicted = float(s[top].sum())
    print(f"ranked by {a.estimator} ({time.perf_counter() - t0:.0f} s)", flush=True)

    change = {"top": [], "random": []}
    random_predicted = []
    for seed in seeds:
        rng = random.Random(1000 + seed)
        rand_idx = rng.sample(range(len(ranked.doc_ids)), a.k)
        random_predicted.append(float(s[rand_idx].sum()))
        for cond, ids in (("top", top_ids), ("random", [ranked.doc_ids[i] for i in rand_idx])):
            m = fam.retrain(corpus.without(ids), config[seed], corpus)
            change[cond].append(gaps(m, [x for x in sets if x.name == target])[target][1].effect_size
                                - measured[seed][target][1].effect_size)
        print(f"seed {seed} retrained ({time.perf_counter() - t0:.0f} s)", flush=True)

    n_pairs = {name: (st.extra["n_pairs"], sum(len(v) for v in st.extra.get("dropped_pairs", {}).values()))
               for name, (_, st) in measured[1].items()}
    print(f"\n{a.arch} fine-tuned on {len(ranked.doc_ids)} gendered GCIDE entries ({a.epochs} epochs), seeds "
          f"{', '.join(map(str, seeds))}; gap = mean log p(sent_more) - log p(sent_less), nats; CI: 95% bootstrap "
          "over pairs (seed 1)\n")
    print("| bias type | pairs used (dropped) | gap, seed 1 [95% CI] | % preferring sent_more, seed 1 "
          f"| gap over {len(seeds)} seeds (mean ± sd) |")
    print("|---|---|---|---|---|")
    for name in measured[1]:
        st = measured[1][name][1]
        over = np.array([measured[x][name][1].effect_size for x in seeds])
        used, gone = n_pairs[name]
        print(f"| {name.split(':', 1)[1]} | {used} ({gone}) | {st.effect_size:+.2f} [{st.ci_low:+.2f}, "
              f"{st.ci_high:+.2f}] | {100 * st.extra['fraction_preferred']:.1f}% | {over.mean():+.2f} ± "
              f"{over.std(ddof=1) if len(over) > 1 else 0:.2f} |")
    top_c, rand_c = np.array(change["top"]), np.array(change["random"])
    diff = top_c - rand_c
    p = float(ttest_rel(top_c, rand_c).pvalue) if len(seeds) > 1 else float("nan")
    print(f"\nretraining check on the {a.type} gap: top {a.k} of {len(ranked.doc_ids)} by {a.estimator} (ranked on "
          f"seed 1) against {a.k} random, fine-tuned again on seeds {', '.join(map(str, seeds))}\n")
    print("| removed | change of the gap (mean ± sd) | per seed | predicted (sum of scores) |")
    print("|---|---|---|---|")
    for label, c, pred in ((f"top {a.k}", top_c, f"{predicted:+.3f}"),
                           (f"{a.k} random", rand_c, f"{np.mean(random_predicted):+.3f} (mean)")):
        print(f"| {label} | {c.mean():+.3f} ± {c.std(ddof=1) if len(c) > 1 else 0:.3f} | "
              f"{', '.join(f'{v:+.3f}' for v in c)} | {pred} |")
    print(f"| top - random | {diff.mean():+.3f} ± {diff.std(ddof=1) if len(diff) > 1 else 0:.3f} | "
          f"{', '.join(f'{v:+.3f}' for v in diff)} | paired t-test p = {p:.3f} |")
    print(f"\ntotal {(time.perf_counter() - t0) / 60:.1f} min")


if __name__ == "__main__":
    main()
