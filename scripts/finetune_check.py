"""Acceptance check (not a timed test): audit the fine-tuning documents of a user's transformer checkpoint, for
GPT-2 (Conv1D layers, tracked as nn.Linear) and GPT-NeoX, and check the ranking by fine-tuning again without them.

    python scripts/finetune_check.py [--archs gpt2,gpt_neox] [--seeds 3] [--k 20] [--epochs N] [--lm-config S]
                                     [--estimator magic] [--ensemble N] [--corpus planted|words] [--out DIR]

For each architecture: a small checkpoint with a byte-level BPE tokenizer (trained on GCIDE entries and the
fine-tuning texts) is pretrained on 2,000 GCIDE entries, saved as a local HF checkpoint, then
``biasaudit experiment --model lm --checkpoint CK --finetune`` fine-tunes it on the planted LM corpus
(``biasaudit.planted.lm_planted_corpus``: 300 background documents that give each target word its own leaning,
20 planted documents pairing every X word with math and every Y word with art; ``--corpus words``: the real-word
one, ``lm_words_corpus``), ranks the fine-tuning documents with --estimator (magic: exact metagradients; ekfac;
--ensemble N: the mean over N seeds' fine-tunes, retrained on other seeds) on the first seed's fine-tuned model,
and fine-tunes again without the top k and without k random documents, seeds paired. Prints the table
docs/results/finetune.md shows.
"""
from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import time
from pathlib import Path

from biasaudit.corpus import MemoryCorpus, load_corpus
from biasaudit.models.lm import LMConfig, train_lm
from biasaudit.planted import LM_TEMPLATES, LM_TEST, LM_WORDS_TEST, lm_planted_corpus, lm_words_corpus, tiny_checkpoint


def pretrained_checkpoint(arch: str, folder: Path, finetune_texts: list[str], epochs: int) -> Path:
    """A checkpoint pretrained on GCIDE entries (random init, then trained), saved as an HF folder."""
    rng = random.Random(0)
    gcide = [d for d in load_corpus("gcide") if 8 <= len(d.text.split()) <= 80]
    pre = MemoryCorpus(rng.sample(gcide, 2000), "gcide-2000")
    init = tiny_checkpoint(folder / f"{arch}-init", arch, [d.text for d in pre] + finetune_texts, vocab_size=2000,
                           width=32)
    model = train_lm(pre, LMConfig(finetune=str(init), epochs=epochs, batch_size=32, seed=0))
    out = folder / f"{arch}-pretrained"
    model.save(out)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--archs", default="gpt2,gpt_neox")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--k", default="20")
    ap.add_argument("--epochs", type=int, default=None, help="fine-tuning epochs (default: the audited phase's, 2)")
    ap.add_argument("--lm-config", default=None, help="LMConfig settings of the fine-tune (default: the smooth "
                    "audited phase, --model lm's default; before it was the default, this check ran "
                    "'batch_size=16' with --epochs 10)")
    ap.add_argument("--pretrain-epochs", type=int, default=5)
    ap.add_argument("--estimator", default="magic", help="the ranking's estimator (magic, the default for a "
                    "fine-tune: exact metagradients; ekfac)")
    ap.add_argument("--ensemble", type=int, default=1, help="rank by the mean over this many seeds' fine-tunes "
                                                          "and retrain on seeds the ranking did not use")
    ap.add_argument("--corpus", choices=("planted", "words"), default="planted",
                    help="planted: the nonce planted LM corpus (320 documents, 20 planted); words: the real-word one "
                         "(biasaudit.planted.lm_words_corpus: 1,060 documents, 60 planted)")
    ap.add_argument("--out", default="reports/finetune-check")
    a = ap.parse_args()
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    corpus, planted = lm_words_corpus() if a.corpus == "words" else lm_planted_corpus()
    f = out / "planted.jsonl"
    f.write_text("".join(json.dumps({"id": d.id, "text": d.text}) + "\n" for d in corpus), encoding="utf-8")
    (out / "test.json").write_text(json.dumps(LM_WORDS_TEST if a.corpus == "words" else LM_TEST))
    (out / "templates.txt").write_text("\n".join(LM_TEMPLATES) + "\n")
    (out / "planted-ids.txt").write_text("\n".join(sorted(planted)) + "\n")
    rows = []
    for arch in a.archs.split(","):
        t0 = time.perf_counter()
        ck = out / f"{arch}-pretrained"
        if not (ck / "biasaudit.json").exists():
            ck = pretrained_checkpoint(arch, out, [d.text for d in corpus], a.pretrain_epochs)
        cmd = [sys.executable, "-m", "biasaudit", "experiment", "--model", "lm", "--checkpoint", str(ck),
               "--finetune", "-c", str(f), "-t", str(out / "test.json"), "--templates", str(out / "templates.txt"),
               "--k", a.k, "--seeds", str(a.seeds), *(["--epochs", str(a.epochs)] if a.epochs else []),
               *(["--lm-config", a.lm_config] if a.lm_config else []), "--conditions", "baseline,remove-top,remove-random,remove-ids", "--remove-ids",
               str(out / "planted-ids.txt"), "--scheduler", "none", "--estimator", a.estimator,
               "--out", str(out / f"{arch}-experiment")]
        if a.ensemble > 1:
            cmd += ["--ensemble", str(a.ensemble), "--fresh-seeds"]
        subprocess.run(cmd, check=True)
        exp = json.loads((out / f"{arch}-experiment" / "experiment.json").read_text())
        rows.append((arch, exp, time.perf_counter() - t0))
    print(f"\nfine-tuning on {len(list(corpus))} documents ({len(planted)} planted), k = {a.k}, {a.seeds} paired seeds")
    print(f"{'arch':<9} {'baseline d':>10} {'condition':<14} {'change (mean ± sd)':>19} {'vs random':>10} {'p':>6} "
          f"{'predicted':>10} {'linear':>8}  verdict")
    fmt = lambda v, f="+.3f": "-" if v is None else format(v, f)                                   # noqa: E731
    for arch, exp, secs in rows:
        for c in exp["conditions"]:
            if c["condition"] == "baseline":
                continue
            print(f"{arch:<9} {fmt(c['baseline_effect_size_mean'], '+.2f'):>10} {c['condition']:<14} "
                  f"{fmt(c['change_mean']):>9} ± {fmt(c['change_sd'], '.3f'):<7} "
                  f"{fmt(c.get('difference_from_random')):>10} "
                  f"{fmt(c.get('difference_from_random_p'), '.3f'):>6} {fmt(c.get('predicted_change_mean')):>10} "
                  f"{fmt(c.get('predicted_change_linear_mean')):>8}  {c.get('verdict') or ''}")
        print(f"{arch}: {secs / 60:.1f} min")


if __name__ == "__main__":
    main()
