"""Plain word vectors from files other tools write: word2vec text or binary, GloVe text, gensim's own
KeyedVectors / Word2Vec files, and biasaudit model folders.

Nothing here unpickles arbitrary objects: gensim's native files are pickles, so they are read with an unpickler
that resolves only an explicit list of (module, name) pairs (gensim's and NumPy's own classes); their large arrays
(separate .npy files) load with ``allow_pickle=False``.
"""
from __future__ import annotations

import io
import pickle
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import numpy as np

from ..errors import ArtifactError
from .base import register
from .embeddings import EmbeddingFamily


@dataclass(frozen=True)
class KeyedEmbeddings:
    """Word vectors with gensim's index_to_key / key_to_index."""
    family: ClassVar[str] = "vectors"
    index_to_key: tuple[str, ...]
    vectors: np.ndarray  # (V, dim)
    source: str = ""
    key_to_index: dict = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        object.__setattr__(self, "key_to_index", {w: i for i, w in enumerate(self.index_to_key)})


# Every global a gensim 4 KeyedVectors or Word2Vec file refers to, as (module, name) pairs: nothing else is
# resolved, never by prefix and never through a dotted name (pickle protocol 4 resolves "os.system" inside any
# module that imported os). numpy's private module moved in numpy 2 (numpy.core -> numpy._core): both spellings.
ALLOWED_GLOBALS = frozenset({
    ("gensim.models.keyedvectors", "KeyedVectors"),
    ("gensim.models.word2vec", "Word2Vec"),
    ("gensim.utils", "call_on_class_only"),
    ("numpy", "ndarray"), ("numpy", "dtype"),
    ("numpy._core.multiarray", "_reconstruct"), ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "scalar"), ("numpy.core.multiarray", "scalar"),
    ("numpy.random._pickle", "__randomstate_ctor"), ("numpy.random._pickle", "__bit_generator_ctor"),
    ("numpy.random._pickle", "__generator_ctor"),
    ("numpy.random._mt19937", "MT19937"), ("numpy.random._pcg64", "PCG64"),
    ("collections", "defaultdict"), ("collections", "OrderedDict"),
    ("copyreg", "_reconstructor"),
    ("builtins", "dict"), ("builtins", "list"), ("builtins", "set"), ("builtins", "frozenset"),
    ("builtins", "tuple"), ("builtins", "object"), ("builtins", "int"), ("builtins", "float"), ("builtins", "str"),
    ("builtins", "bytes"), ("builtins", "bool"), ("builtins", "complex"), ("builtins", "bytearray"),
})


def _unused_hashfxn(_s):
    raise ArtifactError("gensim's hashfxn is not available on loaded models")


# gensim's own classes are rebuilt without being called (NEWOBJ, copyreg._reconstructor); a pickle that calls
# one (Word2Vec(sentences, ...) would train on any file) is refused
NOT_CALLABLE = frozenset({("gensim.models.keyedvectors", "KeyedVectors"), ("gensim.models.word2vec", "Word2Vec")})


class _GensimUnpickler(pickle._Unpickler):
    """Resolves only ``ALLOWED_GLOBALS`` (exact pairs); Word2Vec's ``hashfxn`` (builtins.hash) becomes an inert
    stand-in. Everything else, dotted names included, is refused before anything is imported or called, and
    gensim's classes are never called (only rebuilt). The pure-Python unpickler, so REDUCE can be checked."""

    dispatch = dict(pickle._Unpickler.dispatch)

    def _load_reduce(self):
        func = self.stack[-2]
        if any(func is _resolve(m, n) for m, n in NOT_CALLABLE):
            raise pickle.UnpicklingError(f"refusing to call {func.__name__}(...) from a gensim file (gensim's "
                                         "classes are only rebuilt, never called)")
        pickle._Unpickler.load_reduce(self)

    dispatch[pickle.REDUCE[0]] = _load_reduce

    def find_class(self, module, name):
        if module == "builtins" and name == "hash":
            return _unused_hashfxn
        if (module, name) not in ALLOWED_GLOBALS or "." in name:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a gensim file "
                                         "(only gensim's and NumPy's own classes are read)")
        return _resolve(module, name)


def _resolve(module: str, name: str):
    import importlib
    return getattr(importlib.import_module(module), name)


def read_gensim_pickle(path: Path):
    """The object of a gensim native file, through the allowlist; the whole file must be one pickle (nothing
    hidden after it)."""
    data = path.read_bytes()
    buf = io.BytesIO(data)
    try:
        obj = _GensimUnpickler(buf).load()
    except Exception as e:
        raise ArtifactError(f"{path}: not a loadable gensim file ({e})") from e
    if buf.tell() != len(data):
        raise ArtifactError(f"{path}: {len(data) - buf.tell()} bytes after the pickle; not a gensim file")
    from gensim.models import KeyedVectors, Word2Vec
    if not isinstance(obj, (KeyedVectors, Word2Vec)):
        raise ArtifactError(f"{path}: holds a {type(obj).__name__}, not a gensim KeyedVectors or Word2Vec")
    _load_sidecars(path, obj)
    return obj


def _load_sidecars(path: Path, obj, prefix: str = "") -> None:
    """gensim's save() stores large arrays beside the pickle as ``<file>.<attribute path>.npy`` and lists them in
    ``__numpys``; they are read with ``allow_pickle=False``. Sparse (scipy) attributes are refused."""
    d = vars(obj)
    if d.get("__scipys"):
        raise ArtifactError(f"{path}: holds sparse arrays ({', '.join(map(str, d['__scipys']))}); not supported")
    for attr in d.get("__numpys", []) or []:
        side = Path(f"{path}.{prefix}{attr}.npy")
        if not side.exists():
            raise ArtifactError(f"{side}: array file missing (gensim saved {attr} beside the model)")
        try:
            d[attr] = np.load(side, allow_pickle=False)
        except (ValueError, OSError) as e:
            raise ArtifactError(f"{side}: not a readable array ({e})") from e
    for attr in d.get("__recursive_saveloads", []) or []:
        child = d.get(attr)
        if child is not None and hasattr(child, "__dict__"):
            _load_sidecars(path, child, f"{prefix}{attr}.")
    for k in ("__numpys", "__scipys", "__ignoreds", "__recursive_saveloads"):
        d.pop(k, None)


def _load_gensim_native(path: Path) -> KeyedEmbeddings:
    obj = read_gensim_pickle(path)
    kv = getattr(obj, "wv", obj)
    vectors = getattr(kv, "vectors", None)
    keys = getattr(kv, "index_to_key", None)
    if not (isinstance(vectors, np.ndarray) and vectors.ndim == 2 and vectors.dtype.kind == "f"
            and isinstance(keys, list) and len(keys) == len(vectors) and all(isinstance(k, str) for k in keys)):
        raise ArtifactError(f"{path}: gensim file without a vocabulary and float vectors of matching size")
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


def _looks_like_pickle(head: bytes, tail: bytes) -> bool:
    """Protocol 2+ pickles start with PROTO (0x80); protocol 0 and 1 ones start with an opcode such as '(' or 'c'
    and end with STOP ('.'). Word-vector text starts with a word and ends with a number or a newline."""
    if head[:1] == b"\x80":
        return True
    if tail.rstrip(b"\n")[-1:] != b".":
        return False
    if head[:1] in (b"(", b"]", b"}", b")"):
        return True
    lines = head.split(b"\n", 2)   # GLOBAL: "c<module>\n<name>\n", no spaces, unlike a vector row
    return head[:1] == b"c" and len(lines) == 3 and b" " not in lines[0] and b" " not in lines[1]


def load_embeddings(path: str | Path):
    """Load word vectors from a biasaudit model folder or a word-vector file, detecting the format."""
    from .base import load_model
    from .folder import is_model_dir

    path = Path(path)
    if not path.exists():
        raise ArtifactError(f"{path}: no such file or folder")
    if path.is_dir():
        if is_model_dir(path):
            return load_model(path)
        raise ArtifactError(f"{path}: folder is not a biasaudit model (no config.json and vectors.safetensors)")
    with path.open("rb") as f:
        head = f.read(4096)
        f.seek(max(0, path.stat().st_size - 2))
        tail = f.read()
    if _looks_like_pickle(head, tail):   # gensim's native save(), or any pickle: the restricted unpickler
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


class VectorsFamily(EmbeddingFamily):
    """Word vectors read from a file: the bias tests run on them; without the training loss nothing is scored."""
    name = "vectors"
    label = "word vectors"
    config_type = None
    options = frozenset()
    estimators = ()
    objective_kind = None

    def load(self, folder, device: str = "cpu") -> KeyedEmbeddings:
        return load_embeddings(folder)

    def vocabulary_summary(self, model) -> dict:
        return {"size": len(model.index_to_key), "tokens_in_vocabulary": None}


FAMILY = register(VectorsFamily())
