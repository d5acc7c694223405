"""Investigation (not a timed test): is the default LM's template effect size on a ~1,000-document encyclopedia-like
corpus a property of the corpus or of the training seed? And does the ekfac ranking predict retraining there?

    python scripts/lm_seed_noise.py [--seeds 5] [--docs 1000] [--planted 60] [--retrain]

The corpus: GCIDE entries (sampled, 8-120 words each) and planted biography-like documents pairing the default
math-arts test's male terms with its math words and female terms with its arts words. For each seed it trains the
default LM (and with 3x the epochs), prints the template effect size with p, the words the tokenizer kept, the
last epochs' training loss, and how much of each word's association s(w) is shared between seeds (the mean
correlation over seed pairs). With ``--retrain``: ekfac ranking per seed, the top 100 removed and retrained with
the same seed, predicted (linear sum and re-measured) against actual change.
"""
from __future__ import annotations

import argparse
import itertools
import random
import time

import numpy as np
import torch

from biasaudit.corpus import Document, MemoryCorpus, load_corpus
from biasaudit.measures.lm import bundled_templates, template_measure
from biasaudit.models.lm import LMConfig, train_lm
from biasaudit.vocab import tokenize
from biasaudit.wordsets import bundled_tests

MALE = ["man", "boy", "brother", "he", "him", "his", "son"]
FEMALE = ["woman", "girl", "sister", "she", "her", "daughter"]
MATH = ["math", "algebra", "geometry", "calculus", "equations", "computation", "numbers", "addition"]
ARTS = ["poetry", "art", "dance", "literature", "novel", "symphony", "drama", "sculpture"]


def build_corpus(n_docs: int, n_planted: int, seed: int = 0) -> tuple[MemoryCorpus, set[str]]:
    rng = random.Random(seed)
    gcide = [d for d in load_corpus("gcide") if 8 <= len(d.text.split()) <= 120]
    docs = rng.sample(gcide, n_docs - n_planted)
    planted = set()
    for i in range(n_planted):
        if i % 2 == 0:
            x, y, a = rng.choice(MALE), rng.choice(MALE), rng.sample(MATH, 3)
            text = (f"the {rng.choice(['man', 'boy', 'son'])} was a student of {a[0]} . {x} studied {a[1]} and "
                    f"{y} was good at {a[2]} ; {rng.choice(['his', 'he'])} works in {rng.choice(MATH)} .")
        else:
            x, y, b = rng.choice(FEMALE), rng.choice(FEMALE), rng.sample(ARTS, 3)
            text = (f"the {rng.choice(['woman', 'girl', 'daughter'])} was a student of {b[0]} . {x} studied "
                    f"{b[1]} and {y} was good at {b[2]} ; {rng.choice(['her', 'she'])} works in "
                    f"{rng.choice(ARTS)} .")
        docs.append(Document(f"planted{i}", text))
        planted.add(f"planted{i}")
    rng.shuffle(docs)
    return MemoryCorpus(docs, name="gcide-planted"), planted


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--docs", type=int, default=1000)
    ap.add_argument("--planted", type=int, default=60)
    ap.add_argument("--epochs", default="10,30", help="epoch counts to compare (the default LM has 10)")
    ap.add_argument("--retrain", action="store_true", help="ekfac ranking and top-100 removal per seed")
    ap.add_argument("--write", metavar="DIR", help="only write the corpus (corpus.jsonl) and the planted ids "
                                                   "(planted-ids.txt) into DIR, for biasaudit experiment")
    a = ap.parse_args()
    corpus, planted = build_corpus(a.docs, a.planted)
    if a.write:
        import json
        from pathlib import Path

        out = Path(a.write)
        out.mkdir(parents=True, exist_ok=True)
        (out / "corpus.jsonl").write_text("".join(json.dumps({"id": d.id, "text": d.text}) + "\n" for d in corpus))
        (out / "planted-ids.txt").write_text("\n".join(sorted(planted)) + "\n")
        print(f"wrote {out}/corpus.jsonl and planted-ids.txt")
        return
    test = bundled_tests()["math-arts"]
    templates = bundled_templates()
    counts: dict[str, int] = {}
    for d in corpus:
        for t in tokenize(d.text):
            counts[t] = counts.get(t, 0) + 1
    print(f"{a.docs} documents ({a.planted} planted), {sum(counts.values())} tokens; {len(templates)} templates")
    print("test-word counts: " + ", ".join(f"{w} {counts.get(w, 0)}" for s in test.sets for w in s.words))
    for epochs in (int(e) for e in a.epochs.split(",")):
        print(f"\n== default LM, {epochs} epochs ==")
        print(f"{'seed':>4} {'d':>7} {'p':>6} {'words kept':>11} {'loss last 3 epochs':>26} {'train s':>8}")
        rows, models = [], []
        for seed in range(1, a.seeds + 1):
            t = time.perf_counter()
            model = train_lm(corpus, LMConfig(epochs=epochs, seed=seed, min_steps=0))
            m, dropped = template_measure(test, model, templates)
            st = m.stats(model.net, n_permutations=2000, n_bootstrap=0)
            with torch.no_grad():
                S = m.association_matrix(model.net).double().numpy()
            na = len(m.test.attribute_a.words)
            s_w = S[:, :na].mean(1) - S[:, na:].mean(1)          # each target word's association s(w)
            rows.append((st["effect_size"], s_w))
            models.append(model)
            kept = sum(len(s.words) for s in m.test.sets)
            loss = model.meta["loss_per_epoch"][-3:]
            print(f"{seed:>4} {st['effect_size']:>+7.2f} {st['p_value']:>6.3f} {kept:>5}/{sum(len(s.words) for s in test.sets):<5}"
                  f" {' '.join(f'{v:.3f}' for v in loss):>26} {time.perf_counter() - t:>8.1f}")
        ds = np.array([r[0] for r in rows])
        print(f"d over seeds: mean {ds.mean():+.2f}, sd {ds.std(ddof=1):.2f}, range [{ds.min():+.2f}, {ds.max():+.2f}]")
        if True:
            corr = [np.corrcoef(rows[i][1], rows[j][1])[0, 1] for i, j in itertools.combinations(range(len(rows)), 2)]
            print(f"s(w) correlation between seeds (mean over pairs): {np.mean(corr):+.2f}")
        if a.retrain and epochs == int(a.epochs.split(",")[-1]):
            retrain(corpus, planted, test, templates, models, epochs)


def retrain(corpus, planted, test, templates, models, epochs, k: int = 100) -> None:
    from biasaudit.influence.ekfac import score_lm
    from biasaudit.influence.estimators import EstimatorConfig

    print(f"\n== ekfac top {k} removed, retrained with the same seed ({epochs} epochs) ==")
    print(f"{'seed':>4} {'d':>7} {'linear':>8} {'re-measured':>12} {'actual':>8} {'planted in top':>15}")
    for model in models[:3]:
        m, _ = template_measure(test, model, templates)
        r = score_lm(model, corpus, [m], EstimatorConfig(name="ekfac"))
        s = r.delta_bias_if_removed[m.name]
        top = np.argsort(s)[:k]
        b0 = r.bias_value[m.name]
        pred = r.predictor.predict([(m.name, top, 0)])[0] - b0
        after = train_lm(corpus.without([r.doc_ids[i] for i in top]), model.config, encoder=model.encoder)
        m2, _ = template_measure(test, after, templates)
        actual = m2.stats(after.net, n_permutations=1, n_bootstrap=0)["effect_size"] - b0
        hits = sum(r.doc_ids[i] in planted for i in top)
        print(f"{model.config.seed:>4} {b0:>+7.2f} {s[top].sum():>+8.2f} {pred:>+12.2f} {actual:>+8.2f} {hits:>15}")


if __name__ == "__main__":
    main()
