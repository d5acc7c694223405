"""The model folder every family saves: ``vectors.safetensors`` (arrays), ``vocab.json`` (words, most frequent
first) and ``config.json`` (family, format, config, corpus, meta, sha256 of the other two). Written atomically
(built in a temporary sibling, then renamed into place); read with the checksums checked. No pickle."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from ..errors import ArtifactError
from ..io import atomic_folder, to_json
from ..vocab import Vocab


def write_model_folder(folder: str | Path, arrays: dict[str, np.ndarray], vocab: Vocab, header: dict) -> Path:
    """Save ``arrays`` (plus the vocabulary counts) and ``header`` (the config.json fields besides checksums)."""
    from safetensors.numpy import save as st_save

    with atomic_folder(folder) as tmp:
        blob = st_save({**{k: np.ascontiguousarray(v, dtype=np.float32) for k, v in arrays.items()},
                        "counts": np.ascontiguousarray(vocab.counts, dtype=np.int64)})
        (tmp / "vectors.safetensors").write_bytes(blob)
        vocab_text = json.dumps(list(vocab.index_to_key), ensure_ascii=False)
        (tmp / "vocab.json").write_text(vocab_text, encoding="utf-8")
        cfg = {**header, "sha256": {"vectors.safetensors": hashlib.sha256(blob).hexdigest(),
                                    "vocab.json": hashlib.sha256(vocab_text.encode("utf-8")).hexdigest()}}
        (tmp / "config.json").write_text(to_json(cfg), encoding="utf-8")
    return Path(folder)


def read_model_folder(folder: str | Path, model: str, format_version: int, label: str) -> tuple[dict, dict, Vocab]:
    """(config.json, arrays, vocabulary) of a ``model`` folder; a missing, truncated or altered file, or another
    family or format, is an ArtifactError."""
    from safetensors.numpy import load as st_load

    folder = Path(folder)
    try:
        cfg = json.loads((folder / "config.json").read_text(encoding="utf-8"))
        blob = (folder / "vectors.safetensors").read_bytes()
        vocab_bytes = (folder / "vocab.json").read_bytes()
    except FileNotFoundError as e:
        raise ArtifactError(f"{folder}: model file missing: {Path(e.filename).name}") from e
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ArtifactError(f"{folder}/config.json: corrupted ({e})") from e
    if cfg.get("model") != model or cfg.get("format_version") != format_version:
        raise ArtifactError(f"{folder}: not a biasaudit {label} model of format {format_version}")
    sums = cfg.get("sha256", {})
    for name, data in (("vectors.safetensors", blob), ("vocab.json", vocab_bytes)):
        if hashlib.sha256(data).hexdigest() != sums.get(name):
            raise ArtifactError(f"{folder}/{name}: checksum mismatch (truncated or corrupted file)")
    try:
        arrays = st_load(blob)
        words = tuple(json.loads(vocab_bytes.decode("utf-8")))
        vocab = Vocab(words, arrays.pop("counts"), cfg["vocab"]["min_count"])
    except Exception as e:
        raise ArtifactError(f"{folder}: cannot read model ({e})") from e
    return cfg, arrays, vocab
