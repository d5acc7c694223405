"""Plain word vectors from files other tools write: word2vec text or binary, GloVe text, gensim's own
KeyedVectors / Word2Vec files, and biasaudit model folders.

Nothing here unpickles arbitrary objects: gensim's native files are pickles, so they are read with an unpickler
that only admits gensim's and NumPy's own classes; their large arrays (separate .npy files) load with
``allow_pickle=False``.
"""
from __future__ import annotations

import io
import pickle
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import ArtifactError


@dataclass(frozen=True)
class KeyedEmbeddings:
    """Word vectors with gensim's index_to_key / key_to_index."""
    index_to_key: tuple[str, ...]
    vectors: np.ndarray  # (V, dim)
    source: str = ""
    key_to_index: dict = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        object.__setattr__(self, "key_to_index", {w: i for i, w in enumerate(self.index_to_key)})


_ALLOWED_PREFIXES = ("gensim.", "numpy.", "collections.")
_ALLOWED_BUILTINS = {"dict", "list", "set", "frozenset", "tuple", "object", "int", "float", "str", "bytes",
                     "bool", "complex", "slice", "range", "bytearray"}


def _unused_hashfxn(_s):
    raise ArtifactError("gensim's hashfxn is not available on loaded models")


class _GensimUnpickler(pickle.Unpickler):
    def find_class(self, module, name):
        if module.startswith(_ALLOWED_PREFIXES) or module in ("numpy", "gensim", "collections", "copyreg", "_codecs"):
            if module == "copyreg" and name != "_reconstructor":
                raise pickle.UnpicklingError(f"refusing {module}.{name}")
            return super().find_class(module, name)
        if module == "builtins" and name == "hash":  # Word2Vec's hashfxn: unused here, so a stand-in
            return _unused_hashfxn
        if module == "builtins" and name in _ALLOWED_BUILTINS:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a gensim file")


def _load_gensim_native(path: Path) -> KeyedEmbeddings:
    try:
        obj = _GensimUnpickler(io.BytesIO(path.read_bytes())).load()
    except Exception as e:
        raise ArtifactError(f"{path}: not a loadable gensim file ({e})") from e
    kv = getattr(obj, "wv", obj)
    # gensim stores large arrays beside the pickle as <file>.<attr>.npy
    for attr in ("vectors",):
        side = Path(f"{path}.{'wv.' if kv is not obj else ''}{attr}.npy")
        if getattr(kv, attr, None) is None and side.exists():
            setattr(kv, attr, np.load(side, allow_pickle=False))
    vectors = getattr(kv, "vectors", None)
    keys = getattr(kv, "index_to_key", None)
    if vectors is None or keys is None:
        raise ArtifactError(f"{path}: gensim file without vectors or vocabulary")
    return KeyedEmbeddings(tuple(keys), np.asarray(vectors), str(path))


def _load_text(path: Path) -> KeyedEmbeddings:
    words, rows = [], []
    try:
        with open(path, encoding="utf-8") as f:
            first = f.readline().rstrip("\n").split(" ")
            header = len(first) == 2 and all(p.isdigit() for p in first)
            lines = f if header else [" ".join(first) + "\n", *f]
            for n, line in enumerate(lines, start=2 if header else 1):
                parts = line.rstrip("\n").rstrip(" ").split(" ")
                if len(parts) < 2:
                    continue
                words.append(parts[0])
                rows.append(np.asarray(parts[1:], dtype=np.float32))
    except (UnicodeDecodeError, ValueError) as e:
        raise ArtifactError(f"{path}: not a word2vec/GloVe text file ({e})") from e
    if not rows:
        raise ArtifactError(f"{path}: holds no vectors")
    dims = {len(r) for r in rows}
    if len(dims) != 1:
        raise ArtifactError(f"{path}: rows have different dimensions {sorted(dims)[:5]} (truncated file?)")
    if header and (len(rows), rows[0].shape[0]) != (int(first[0]), int(first[1])):
        raise ArtifactError(f"{path}: header says {first[0]} x {first[1]} but the file holds "
                            f"{len(rows)} x {rows[0].shape[0]} (truncated file?)")
    return KeyedEmbeddings(tuple(words), np.stack(rows), str(path))


def _load_w2v_binary(path: Path) -> KeyedEmbeddings:
    from gensim.models import KeyedVectors

    try:
        kv = KeyedVectors.load_word2vec_format(str(path), binary=True)
    except Exception as e:
        raise ArtifactError(f"{path}: not a word2vec binary file ({e})") from e
    return KeyedEmbeddings(tuple(kv.index_to_key), np.asarray(kv.vectors), str(path))


def load_embeddings(path: str | Path):
    """Load word vectors from a biasaudit model folder or a word-vector file, detecting the format."""
    from .registry import load_model_dir
    from .skipgram import is_model_dir

    path = Path(path)
    if not path.exists():
        raise ArtifactError(f"{path}: no such file or folder")
    if path.is_dir():
        if is_model_dir(path):
            return load_model_dir(path)
        raise ArtifactError(f"{path}: folder is not a biasaudit model (no config.json and vectors.safetensors)")
    head = path.open("rb").read(4096)
    if head[:1] == b"\x80":  # pickle protocol 2+: gensim's native save()
        return _load_gensim_native(path)
    parts = head.split(b"\n", 1)[0].split(b" ")
    if len(parts) == 2 and all(p.strip().isdigit() for p in parts):
        # "count dim" header: word2vec text, or binary when the rows are not UTF-8 text
        body = head.split(b"\n", 1)[1] if b"\n" in head else b""
        try:
            body[:-4].decode("utf-8")  # the last bytes may cut a multi-byte character
            is_text = b"\0" not in body
        except UnicodeDecodeError:
            is_text = False
        return _load_text(path) if is_text else _load_w2v_binary(path)
    return _load_text(path)
