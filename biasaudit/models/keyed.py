"""Plain word vectors from files other tools write: word2vec text or binary, GloVe text, gensim's own
KeyedVectors / Word2Vec files, and biasaudit model folders; the ``vectors`` family.

gensim's native files are pickles, read through the allowlisted unpickler of ``gensim_pickle`` (nothing here
unpickles arbitrary objects). Their large arrays (separate .npy files, kept inside the model's folder) are read by
``read_npy``: numbers only, the header checked against the file before anything is allocated. Vectors must be
finite real numbers, and only regular files are opened (a FIFO or a device is refused).
"""
from __future__ import annotations

import io
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import numpy as np

from ..errors import ArtifactError
from ..io import open_regular, read_regular
from .base import register
from .embeddings import EmbeddingFamily
from .folder import real_vectors  # noqa: F401  (imported.py takes it from here too)
from .gensim_pickle import ALLOC_SLACK, _gensim_classes, _GensimUnpickler, _Refused


@dataclass(frozen=True)
class KeyedEmbeddings:
    """Word vectors with gensim's index_to_key / key_to_index."""
    family: ClassVar[str] = "vectors"
    index_to_key: tuple[str, ...]
    vectors: np.ndarray  # (V, dim)
    source: str = ""
    key_to_index: dict = field(init=False, repr=False, compare=False)

    def __repr__(self) -> str:
        from .base import model_repr
        return model_repr(self)

    def __post_init__(self):
        object.__setattr__(self, "key_to_index", {w: i for i, w in enumerate(self.index_to_key)})


def read_gensim_pickle(path: Path):
    """The object of a gensim native file, through the allowlist; the whole file must be one pickle (nothing
    hidden after it)."""
    data = read_regular(path, "gensim file", max_bytes=1 << 40)     # bounded by the file's own size
    buf = io.BytesIO(data)
    try:
        obj = _GensimUnpickler(buf, len(data), ALLOC_SLACK).load()    # the slack read here, when called
    except _Refused as e:
        raise ArtifactError(f"{path}: not a loadable gensim file ({e})") from e
    except (EOFError, struct.error, IndexError) as e:     # a read past the end, a stack emptied early
        raise ArtifactError(f"{path}: truncated or not a pickle" + (f" ({e})" if str(e) else "")) from e
    except Exception as e:
        if "exhausted" in str(e) or not str(e):
            raise ArtifactError(f"{path}: truncated or not a pickle" + (f" ({e})" if str(e) else "")) from e
        raise ArtifactError(f"{path}: not a loadable gensim file ({e})") from e
    if buf.tell() != len(data):
        raise ArtifactError(f"{path}: {len(data) - buf.tell()} bytes after the pickle; not a gensim file")
    from gensim.models import KeyedVectors, Word2Vec
    if not isinstance(obj, (KeyedVectors, Word2Vec)):
        raise ArtifactError(f"{path}: holds a {type(obj).__name__}, not a gensim KeyedVectors or Word2Vec")
    _load_sidecars(path, obj)
    return obj


MAX_ARRAY_BYTES = 16 << 30        # a side array larger than this (3M x 300 float32 is 3.6 GB) is refused unread


def read_npy(path: Path) -> np.ndarray:
    """A ``.npy`` file, its header read and checked first: a plain numeric dtype (no objects, so no pickle), and a
    declared size the file actually holds and under ``MAX_ARRAY_BYTES``, before anything is allocated."""
    from numpy.lib import format as npy

    try:
        with open_regular(path, "array file") as f:
            version = npy.read_magic(f)
            if version == (1, 0):
                shape, fortran, dtype = npy.read_array_header_1_0(f)
            elif version == (2, 0):
                shape, fortran, dtype = npy.read_array_header_2_0(f)
            else:
                raise ArtifactError(f"{path}: .npy format version {version} is not read (1.0 and 2.0 are)")
            if dtype.kind not in "biuf" or dtype.hasobject:
                raise ArtifactError(f"{path}: not a readable array (dtype {dtype}; only real numbers are "
                                    "read, object arrays are refused)")
            count = int(np.prod(shape, dtype=object))
            declared, held = count * dtype.itemsize, path.stat().st_size - f.tell()
            if declared > held or declared > MAX_ARRAY_BYTES:
                raise ArtifactError(f"{path}: declares a {' x '.join(map(str, shape))} {dtype} array "
                                    f"({declared:,} bytes) but " + (f"holds {held:,} bytes of data (truncated or "
                                    "forged file)" if declared > held else f"at most {MAX_ARRAY_BYTES:,} are read"))
            a = np.fromfile(f, dtype=dtype, count=count)
    except ArtifactError:
        raise
    except (ValueError, OSError, MemoryError) as e:
        raise ArtifactError(f"{path}: not a readable array ({str(e).splitlines()[0] if str(e) else type(e).__name__})"
                            ) from e
    if a.size != count:
        raise ArtifactError(f"{path}: holds {a.size:,} of the {count:,} values its header declares")
    return a.reshape(shape, order="F" if fortran else "C")


def _side_file(path: Path, name: str) -> Path:
    """gensim's ``<file>.<attribute path>.npy`` beside the model, kept inside the model's folder (``../`` in an
    attribute name, or a symlink pointing out of the folder, is refused)."""
    if not all(p.isidentifier() for p in name.split(".")):
        raise ArtifactError(f"{path}: names a side array {name!r} outside the model's folder; refused")
    side = path.with_name(f"{path.name}.{name}.npy")
    if side.resolve().parent not in {path.parent.resolve(), path.resolve().parent}:
        raise ArtifactError(f"{path}: names a side array {name!r} outside the model's folder; refused")
    return side


def _load_sidecars(path: Path, obj, prefix: str = "") -> None:
    """gensim's save() stores large arrays beside the pickle as ``<file>.<attribute path>.npy`` and lists them in
    ``__numpys``; they are read by ``read_npy`` (numbers only, no pickle). Sparse (scipy) attributes are refused."""
    d = vars(obj)
    if d.get("__scipys"):
        raise ArtifactError(f"{path}: holds sparse arrays ({', '.join(map(str, d['__scipys']))}); not supported")
    for attr in d.get("__numpys", []) or []:
        if type(attr) is not str:
            raise ArtifactError(f"{path}: a side array named by a {type(attr).__name__}, not an attribute name")
        side = _side_file(path, f"{prefix}{attr}")
        if not side.exists():
            raise ArtifactError(f"{side}: array file missing (gensim saved {attr} beside the model)")
        d[attr] = read_npy(side)
    for attr in d.get("__recursive_saveloads", []) or []:
        child = d.get(attr) if type(attr) is str else None
        if child is not None and isinstance(child, _gensim_classes()):
            _load_sidecars(path, child, f"{prefix}{attr}.")
    for k in ("__numpys", "__scipys", "__ignoreds", "__recursive_saveloads"):
        d.pop(k, None)


def _load_gensim_native(path: Path) -> KeyedEmbeddings:
    obj = read_gensim_pickle(path)
    kv = getattr(obj, "wv", obj)
    vectors = getattr(kv, "vectors", None)
    keys = getattr(kv, "index_to_key", None)
    if isinstance(vectors, np.ndarray):
        real_vectors(path, vectors)
    if not (isinstance(vectors, np.ndarray) and vectors.ndim == 2 and vectors.dtype.kind == "f"
            and isinstance(keys, list) and len(keys) == len(vectors) and all(isinstance(k, str) for k in keys)):
        raise ArtifactError(f"{path}: gensim file without a vocabulary and float vectors of matching size")
    return KeyedEmbeddings(tuple(keys), np.asarray(vectors), str(path))


def _load_text(path: Path) -> KeyedEmbeddings:
    words, rows = [], []
    try:
        with io.TextIOWrapper(open_regular(path, "vector file"), encoding="utf-8") as f:
            first = f.readline().rstrip("\n").split(" ")
            header = len(first) == 2 and all(p.isascii() and p.isdigit() for p in first)
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
    if header and (str(len(rows)), str(rows[0].shape[0])) != tuple(p.lstrip("0") or "0" for p in first):
        raise ArtifactError(f"{path}: header says {first[0][:30]} x {first[1][:30]} but the file holds "
                            f"{len(rows)} x {rows[0].shape[0]} (truncated file?)")
    return KeyedEmbeddings(tuple(words), real_vectors(path, np.stack(rows)), str(path))


def _load_w2v_binary(path: Path) -> KeyedEmbeddings:
    from gensim.models import KeyedVectors

    try:
        kv = KeyedVectors.load_word2vec_format(str(path), binary=True)
    except Exception as e:
        raise ArtifactError(f"{path}: not a word2vec binary file ({e})") from e
    return KeyedEmbeddings(tuple(kv.index_to_key), real_vectors(path, np.asarray(kv.vectors)), str(path))


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
    with open_regular(path, "vector file") as f:
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
    default_estimator = None
    replays = False
    objective_kind = None

    def load(self, folder, device: str = "cpu") -> KeyedEmbeddings:
        return load_embeddings(folder)

    def vocabulary_summary(self, model) -> dict:
        return {"size": len(model.index_to_key), "tokens_in_vocabulary": None}


FAMILY = register(VectorsFamily())
