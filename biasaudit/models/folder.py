"""The model folder every embedding family saves: ``vectors.safetensors`` (arrays), ``vocab.json`` (words, most
frequent first) and ``config.json`` (family, format, config, corpus, meta, sha256 of the other two), plus the
manifest every output folder has (``biasaudit.io``). Written through ``biasaudit.io.claim_folder``: built in a
temporary sibling and moved into place, replacing only files this tool wrote; read with the checksums checked.
No pickle."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from ..errors import ArtifactError
from ..io import (MAX_DATA_BYTES, MAX_RECORD_BYTES, OutputFolder, claim_folder, read_json, read_regular,
                  to_json)
from ..vocab import Vocab

MAX_VECTOR_BYTES = 1 << 40     # vectors.safetensors: read whole, so bounded by its own size (no lower cap)
# every name a model folder of any family holds (LM folders are HF checkpoints)
MODEL_FILES = frozenset({"config.json", "vocab.json", "vectors.safetensors", "model.safetensors", "tokenizer.json",
                         "tokenizer_config.json", "special_tokens_map.json", "generation_config.json",
                         "biasaudit.json", "chat_template.jinja", "report.html"})


def model_output(folder: str | Path, config: dict, overwrite: bool = True) -> OutputFolder:
    """Claim ``folder`` for a model made with ``config`` ({"model": family, "config": ...}): new, empty, or a
    model folder of this tool (only its files are replaced; with ``overwrite=False`` only when the config is the
    same). A folder holding anything else is refused."""
    return claim_folder(folder, "model", config, overwrite=overwrite, known=MODEL_FILES)


def write_model_folder(folder: str | Path, arrays: dict[str, np.ndarray], vocab: Vocab, header: dict,
                       keep_existing: bool = False) -> Path:
    """Save ``arrays`` (plus the vocabulary counts) and ``header`` (the config.json fields besides checksums)."""
    from safetensors.numpy import save as st_save

    out = model_output(folder, {"model": header["model"], "config": header["config"]})
    with out.stage(keep_existing=keep_existing) as tmp:
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
    family or format, is an ArtifactError naming the file and the cause."""
    from safetensors.numpy import load as st_load

    folder = Path(folder)
    for name in ("config.json", "vectors.safetensors", "vocab.json"):
        if not (folder / name).exists() and not (folder / name).is_symlink():
            raise ArtifactError(f"{folder}: model file missing: {name}")
    # regular files only (``biasaudit.io.open_regular``), each read no further than what it can be: the vectors
    # by their own size (a FIFO or a link to /dev/zero is refused, not read)
    cfg = read_json(folder / "config.json", "model config", MAX_RECORD_BYTES)
    blob = read_regular(folder / "vectors.safetensors", "model file", max_bytes=MAX_VECTOR_BYTES)
    vocab_bytes = read_regular(folder / "vocab.json", "model file", max_bytes=MAX_DATA_BYTES)
    if not isinstance(cfg, dict):
        raise ArtifactError(f"{folder}/config.json: corrupted (not a JSON object)")
    if cfg.get("model") != model or cfg.get("format_version") != format_version:
        raise ArtifactError(f"{folder}: not a biasaudit {label} model of format {format_version}")
    sums = cfg.get("sha256") if isinstance(cfg.get("sha256"), dict) else {}
    for name, data in (("vectors.safetensors", blob), ("vocab.json", vocab_bytes)):
        if hashlib.sha256(data).hexdigest() != sums.get(name):
            raise ArtifactError(f"{folder}/{name}: checksum mismatch (truncated or corrupted file)")
    try:
        arrays = st_load(blob)
        words = json.loads(vocab_bytes.decode("utf-8"))
        if not (isinstance(words, list) and all(isinstance(w, str) for w in words)):
            raise ValueError("vocab.json is not a list of words")
        vocab = Vocab(tuple(words), arrays.pop("counts"), int(cfg["vocab"]["min_count"]))
        if len(vocab.counts) != len(words):
            raise ValueError("counts do not match the vocabulary")
    except Exception as e:
        raise ArtifactError(f"{folder}: cannot read model ({e})") from e
    for name, a in arrays.items():   # a checksum only says the file is the one config.json names, not that it is sane
        real_vectors(folder / "vectors.safetensors", a, f"the numbers of array {name!r}")
    return cfg, arrays, vocab


def real_vectors(path, a, what: str = "vectors") -> np.ndarray:
    """``a`` when it is an array of finite real numbers; else one line naming the file: NaN or inf would reach the
    measures as a misleading cause, complex values would lose their imaginary part silently."""
    if not isinstance(a, np.ndarray) or a.dtype.kind not in "fiu":
        kind = "complex numbers" if isinstance(a, np.ndarray) and a.dtype.kind == "c" else (
            f"{a.dtype} values" if isinstance(a, np.ndarray) else f"a {type(a).__name__}")
        raise ArtifactError(f"{path}: {what} are {kind}, not real numbers; refused")
    finite = np.isfinite(a)
    if not finite.all():
        rows = np.flatnonzero(~finite.reshape(len(a), -1).all(axis=1)) if a.ndim else np.array([0])
        raise ArtifactError(f"{path}: {what} hold NaN or infinite values in {len(rows):,} rows (the first: row "
                            f"{int(rows[0]) + 1:,}); diverged training or a damaged file?")
    return a


def is_model_dir(path: Path) -> bool:
    """A folder holding an embedding model of this tool (any family)."""
    path = Path(path)
    return (path / "config.json").exists() and (path / "vectors.safetensors").exists()




def model_field(folder: Path):
    """The ``model`` field of a model folder's config.json (None when there is none or it cannot be read)."""
    try:
        head = read_json(Path(folder) / "config.json", "model config", MAX_RECORD_BYTES)
    except ArtifactError:
        return None
    return head.get("model") if isinstance(head, dict) else None
