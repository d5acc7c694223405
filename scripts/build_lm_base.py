"""Build the base language model that audited phases start from (``biasaudit.models.lm_base``): a byte-level BPE
tokenizer and a tiny Llama trained on the bundled GCIDE and WordNet glosses, offline.

    OMP_NUM_THREADS=1 python scripts/build_lm_base.py [--cache DIR] [--check]

Without --check: build it into the model cache (a no-op when it is there) and print its folder and weights' hash.
With --check: train it again in memory and compare with the cached weights bit for bit (same torch, transformers and
tokenizers versions and thread count; the recipe and versions are the cache key).
"""
from __future__ import annotations

import argparse
import hashlib
import time
from pathlib import Path

import torch


def main() -> None:
    from biasaudit.models.lm import LMModel
    from biasaudit.models.lm_base import BASE_RECIPE, base_folder, build_base

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cache", default=None)
    ap.add_argument("--check", action="store_true")
    args = ap.parse_args()
    t = time.perf_counter()
    folder = base_folder(Path(args.cache) if args.cache else None)
    weights = hashlib.sha256((folder / "model.safetensors").read_bytes()).hexdigest()
    model = LMModel.load(folder)
    print(f"{folder}: {model.meta['parameters']:,} parameters, vocabulary {len(model.encoder)}, "
          f"{model.meta['steps']} steps, final loss {model.meta['loss_per_epoch'][-1]} per token, trained in "
          f"{model.meta['train_seconds']} s with {model.meta.get('threads')} threads; weights sha256 {weights}; "
          f"{time.perf_counter() - t:.1f} s here")
    if args.check:
        again = build_base(BASE_RECIPE)
        same = all(torch.equal(a, b) for a, b in zip(again.net.state_dict().values(),
                                                     model.net.state_dict().values()))
        print("rebuilt bit for bit" if same else "rebuilt weights DIFFER from the cached ones")


if __name__ == "__main__":
    main()
