"""Plain word vectors from files other tools write: word2vec text or binary, GloVe text, gensim's own
KeyedVectors / Word2Vec files, and biasaudit model folders.

Nothing here unpickles arbitrary objects: gensim's native files are pickles, so they are read with an unpickler
that resolves only an explicit list of (module, name) pairs (gensim's and NumPy's own classes), calls only a few
NumPy and builtin constructors with the arguments they are pickled with, never calls or patches a gensim class, and
bounds what a file may allocate by its size. Their large arrays (separate .npy files, kept inside the model's
folder) are read by ``read_npy``: numbers only, the header checked against the file before anything is allocated.
Vectors must be finite real numbers, and only regular files are opened (a FIFO or a device is refused).
"""
from __future__ import annotations

import collections
import io
import pickle
import struct
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import numpy as np

from ..errors import ArtifactError
from ..io import open_regular, read_regular
from .base import register
from .embeddings import EmbeddingFamily
from .folder import real_vectors  # noqa: F401  (imported.py takes it from here too)


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


# What a gensim file may allocate beyond its own bytes (empty arrays it declares, containers it copies): a 36-byte
# file asking for bytearray(2_000_000_000) is refused before anything is allocated, and so are many small asks.
# Every opcode is charged too, for the objects and the stack, mark and memo slots it makes: 10 MB of one-byte
# EMPTY_SET opcodes made 2.6 GB of empty sets (216 bytes each) while only calls and arrays were charged. A gensim
# file's own objects take 11 to 15 times its size (a vocabulary: each word a string, a memo entry, an int and a
# dict entry; up to 18 times in a small file, just after the dicts grew), hence the factor.
ALLOC_SLACK = 64 << 20
ALLOC_FACTOR = 20
SLOT = 8                         # a reference on the stack or in a list
MEMO_ENTRY = 96                  # a memo entry: its share of the memo's table and its int key
MAX_ITEMSIZE = 1 << 16           # bytes per array element (NumPy's dtypes); gensim's are 1 to 8
BIT_GENERATORS = ("MT19937", "PCG64")


class _Refused(pickle.UnpicklingError):
    pass


def _name(obj) -> str:
    if isinstance(obj, type):
        return f"the class {obj.__name__}"
    return getattr(obj, "__name__", None) or type(obj).__name__


def _gensim_classes() -> tuple:
    from gensim.models import KeyedVectors, Word2Vec
    return KeyedVectors, Word2Vec


def _ints(shape) -> bool:
    return type(shape) is tuple and len(shape) <= 32 and all(type(n) is int and n >= 0 for n in shape)


class _GensimUnpickler(pickle._Unpickler):
    """Resolves only ``ALLOWED_GLOBALS`` (exact pairs); Word2Vec's ``hashfxn`` (builtins.hash) becomes an inert
    stand-in. Everything else, dotted names included, is refused before anything is imported or called. The
    pure-Python unpickler, so that every opcode that calls something is checked here:

    - INST, OBJ, extension codes and persistent ids are refused outright;
    - NEWOBJ / NEWOBJ_EX and ``copyreg._reconstructor`` create only gensim's classes, through ``object.__new__``
      (never ``__init__``: ``Word2Vec(corpus_file=...)`` would train on any file), with no arguments;
    - REDUCE calls only the functions in ``_call_rules``, each with the arguments it is pickled with;
    - BUILD sets the state of a gensim instance (its ``__dict__``, no dunder names) or of a NumPy array, dtype or
      random generator, never of a class, function or module-level object (that would patch the class for the
      rest of the process, and into the model cache);
    - APPEND / SETITEM / ADDITEMS only fill plain lists, dicts and sets;
    - every allocation a call or an array declares is charged against a budget of ``ALLOC_SLACK`` plus
      ``ALLOC_FACTOR`` times the file's size, before it is made; and so is, after each opcode, what the opcode
      made (``_charging``): the object it pushed, a stack, mark or memo slot, a container's growth."""

    dispatch = dict(pickle._Unpickler.dispatch)

    def __init__(self, file, size: int = 0):
        super().__init__(file)
        self._size = size
        self._left = ALLOC_SLACK + ALLOC_FACTOR * size

    def _charge(self, nbytes: int, what: str) -> None:
        if nbytes > self._left:
            raise _Refused(f"refusing {what}: {nbytes:,} bytes, more than a gensim file of this size can hold")
        self._left -= nbytes

    def _charge_op(self, nbytes: int, op: str) -> None:
        if nbytes > self._left:
            budget = ALLOC_SLACK + ALLOC_FACTOR * self._size
            raise _Refused(f"refusing what its {op} opcodes make: more than the {budget:,} bytes of objects a "
                           f"gensim file of {self._size:,} bytes may make")
        self._left -= nbytes

    # ---- creating objects
    def _create(self, cls, args, kwargs) -> None:
        if not (any(cls is c for c in _gensim_classes()) and type(args) is tuple and not args
                and type(kwargs) is dict and not kwargs):
            raise _Refused(f"refusing to create {_name(cls)} with arguments from a gensim file (only gensim's "
                           "classes are created, empty, then filled)")
        self.append(object.__new__(cls))

    def _load_newobj(self):
        args = self.stack.pop()
        cls = self.stack.pop()
        self._create(cls, args, {})

    def _load_newobj_ex(self):
        kwargs = self.stack.pop()
        args = self.stack.pop()
        cls = self.stack.pop()
        self._create(cls, args, kwargs)

    def _load_reduce(self):
        args = self.stack.pop()
        func = self.stack[-1]
        rule = next((r for f, r in _call_rules() if f is func), None)
        if rule is None or type(args) is not tuple:
            raise _Refused(f"refusing to call {_name(func).removeprefix('the class ')}(...) from a gensim file "
                           "(gensim's classes are only rebuilt, never called)")
        rule(self, *args)
        self.stack[-1] = func(*args)

    # ---- setting state
    def _load_build(self):
        state = self.stack.pop()
        inst = self.stack[-1]
        t = type(inst)
        if any(t is c for c in _gensim_classes()):
            if type(state) is not dict or not all(type(k) is str and not (k.startswith("__") and k.endswith("__"))
                                                  for k in state):
                raise _Refused(f"refusing the state of a {t.__name__} that is not a dict of attribute names")
            inst.__dict__.update(state)       # what pickle does, without asking the instance for __setstate__
            return
        import numpy.random as npr
        if t is np.ndarray:
            if not (type(state) is tuple and len(state) == 5 and _ints(state[1])
                    and isinstance(state[2], np.dtype)):
                raise _Refused("refusing an array state that is not (version, shape, dtype, order, data)")
            self._charge(int(np.prod(state[1], dtype=object)) * state[2].itemsize, "an array's data")
        elif isinstance(inst, np.dtype):
            pass
        elif t not in (npr.RandomState, npr.Generator, npr.MT19937, npr.PCG64):
            raise _Refused(f"refusing to set the state of {_name(inst)} from a gensim file (only the state of "
                           "gensim's and NumPy's own instances is set)")
        t.__setstate__(inst, state)
        if isinstance(inst, np.dtype) and inst.itemsize > MAX_ITEMSIZE:
            raise _Refused(f"refusing a dtype of {inst.itemsize:,} bytes per element")

    # ---- filling containers
    def _target(self, depth: int, kinds: tuple, op: str) -> None:
        target = self.stack[-depth]
        if type(target) not in kinds:
            raise _Refused(f"refusing {op} on {_name(target)} (only plain containers are filled)")

    def _grown(self, target, before: int, op: str) -> None:
        self._charge_op(max(0, sys.getsizeof(target) - before), op)

    def _load_append(self):
        self._target(2, (list,), "APPEND")
        value = self.stack.pop()
        target = self.stack[-1]
        before = sys.getsizeof(target)
        target.append(value)
        self._grown(target, before, "APPEND")

    def _load_appends(self):
        items = self.pop_mark()
        self._target(1, (list,), "APPENDS")
        target = self.stack[-1]
        before = sys.getsizeof(target)
        target.extend(items)
        self._grown(target, before, "APPENDS")

    def _load_setitem(self):
        self._target(3, _DICTS, "SETITEM")
        value = self.stack.pop()
        key = self.stack.pop()
        target = self.stack[-1]
        before = sys.getsizeof(target)
        target[key] = value
        self._grown(target, before, "SETITEM")

    def _load_setitems(self):
        items = self.pop_mark()
        self._target(1, _DICTS, "SETITEMS")
        d = self.stack[-1]
        before = sys.getsizeof(d)
        for i in range(0, len(items), 2):
            d[items[i]] = items[i + 1]
        self._grown(d, before, "SETITEMS")

    def _load_additems(self):
        items = self.pop_mark()
        self._target(1, (set,), "ADDITEMS")
        target = self.stack[-1]
        before = sys.getsizeof(target)
        target.update(items)
        self._grown(target, before, "ADDITEMS")

    def find_class(self, module, name):
        if module == "builtins" and name == "hash":
            return _unused_hashfxn
        if (module, name) not in ALLOWED_GLOBALS or "." in name:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a gensim file "
                                         "(only gensim's and NumPy's own classes are read)")
        return _resolve(module, name)


def _refuse_opcode(name: str):
    def load(self):
        raise _Refused(f"refusing the {name} opcode in a gensim file (it calls what the file names)")
    return load


_DICTS = (dict, collections.defaultdict, collections.OrderedDict)
_D = _GensimUnpickler.dispatch
for _op, _load in ((pickle.NEWOBJ, _GensimUnpickler._load_newobj), (pickle.NEWOBJ_EX, _GensimUnpickler._load_newobj_ex),
                   (pickle.REDUCE, _GensimUnpickler._load_reduce), (pickle.BUILD, _GensimUnpickler._load_build),
                   (pickle.APPEND, _GensimUnpickler._load_append), (pickle.APPENDS, _GensimUnpickler._load_appends),
                   (pickle.SETITEM, _GensimUnpickler._load_setitem),
                   (pickle.SETITEMS, _GensimUnpickler._load_setitems),
                   (pickle.ADDITEMS, _GensimUnpickler._load_additems),
                   *((getattr(pickle, n), _refuse_opcode(n)) for n in ("INST", "OBJ", "EXT1", "EXT2", "EXT4",
                                                                         "PERSID", "BINPERSID"))):
    _D[_op[0]] = _load


def _size(obj) -> int:
    """Bytes of a new object, an array's data left out (charged before it was allocated)."""
    if type(obj) is np.ndarray:
        return sys.getsizeof(obj) - (obj.nbytes if obj.flags.owndata else 0)
    return sys.getsizeof(obj)


def _charging(load, op: str, cost: int | None):
    """``load``, then what it made charged: ``cost`` bytes, or (None) the object it pushed and its stack slot.
    Written out per case: it runs once per opcode."""
    if cost is None and op in _CALLS:
        def run(self):
            load(self)
            self._left -= _size(self.stack[-1]) + SLOT
            if self._left < 0:
                self._charge_op(0, op)
    elif cost is None:
        def run(self):
            load(self)
            self._left -= sys.getsizeof(self.stack[-1]) + SLOT
            if self._left < 0:
                self._charge_op(0, op)
    else:
        def run(self):
            load(self)
            self._left -= cost
            if self._left < 0:
                self._charge_op(0, op)
    return run


_CALLS = ("REDUCE", "NEWOBJ", "NEWOBJ_EX")
_COSTS = {                    # None: the object the opcode pushed, and its stack slot
    **dict.fromkeys(("EMPTY_SET", "EMPTY_DICT", "EMPTY_LIST", "EMPTY_TUPLE", "NONE", "NEWTRUE", "NEWFALSE", "INT",
                     "BININT", "BININT1", "BININT2", "LONG", "LONG1", "LONG4", "FLOAT", "BINFLOAT", "STRING",
                     "BINSTRING", "SHORT_BINSTRING", "UNICODE", "BINUNICODE", "BINUNICODE8", "SHORT_BINUNICODE",
                     "BINBYTES", "BINBYTES8", "SHORT_BINBYTES", "BYTEARRAY8", "TUPLE", "TUPLE1", "TUPLE2", "TUPLE3",
                     "LIST", "DICT", "FROZENSET", *_CALLS)),
    **dict.fromkeys(("GET", "BINGET", "LONG_BINGET", "DUP", "GLOBAL", "STACK_GLOBAL"), SLOT),
    **dict.fromkeys(("PUT", "BINPUT", "LONG_BINPUT", "MEMOIZE"), MEMO_ENTRY),
    "MARK": sys.getsizeof([]) + SLOT,                            # a new stack, its slot on the metastack
}
for _op, _cost in _COSTS.items():
    _D[getattr(pickle, _op)[0]] = _charging(_D[getattr(pickle, _op)[0]], _op, _cost)
del _D, _op, _load, _cost


# ------------------------------------------------------------------ what REDUCE may call, with which arguments
def _no_args(u, *args):
    if args:
        raise _Refused("refusing arguments to a call that takes none in a gensim file")


def _reconstruct_rule(u, subtype=None, shape=None, dtype=None, *rest):
    if not (subtype is np.ndarray and _ints(shape) and dtype in (b"b", "b") and not rest):
        raise _Refused("refusing an array reconstruction that is not NumPy's own (ndarray, shape, 'b')")
    u._charge(int(np.prod(shape, dtype=object)), "an array")


def _dtype_rule(u, spec=None, *flags):
    import re
    if not (type(spec) is str and re.fullmatch(r"[<>|=]?[a-zA-Z?][0-9]{0,4}", spec) and len(flags) <= 2
            and all(type(f) is bool for f in flags)):
        raise _Refused("refusing a dtype that is not a plain NumPy type code")


def _scalar_rule(u, dtype=None, *rest):
    if not (isinstance(dtype, np.dtype) and dtype.itemsize <= MAX_ITEMSIZE and len(rest) <= 1):
        raise _Refused("refusing a NumPy scalar of an unknown or oversized dtype")


def _bit_generator(name) -> bool:
    import numpy.random as npr
    return (type(name) is str and name in BIT_GENERATORS) or name is npr.MT19937 or name is npr.PCG64


def _bit_generator_rule(u, *args):
    if not (len(args) <= 1 and all(_bit_generator(a) for a in args)):
        raise _Refused("refusing a bit generator other than NumPy's MT19937 or PCG64")


def _random_ctor_rule(u, *args):
    import numpy.random as npr
    from numpy.random import _pickle as npp
    ctor = getattr(npp, "__bit_generator_ctor")
    if not (len(args) <= 2 and (not args or _bit_generator(args[0]) or type(args[0]) in (npr.MT19937, npr.PCG64))
            and (len(args) < 2 or args[1] is ctor)):
        raise _Refused("refusing a random generator not made by NumPy's own constructors (MT19937 or PCG64)")


def _reconstructor_rule(u, cls=None, base=None, state=None, *rest):
    if not (any(cls is c for c in _gensim_classes()) and base is object and state is None and not rest):
        raise _Refused(f"refusing copyreg._reconstructor({_name(cls)}, {_name(base)}, ...) from a gensim file "
                       "(only gensim's classes are created, through object.__new__)")


_FACTORIES = (None, int, float, str, bool, list, dict, set, tuple, frozenset)


def _defaultdict_rule(u, *args):
    if not (len(args) <= 1 and all(any(a is f for f in _FACTORIES) for a in args)):
        raise _Refused("refusing a defaultdict whose factory is not a plain type")


_PLAIN = (list, tuple, dict, set, frozenset, str, bytes, bytearray)
_SCALARS = (int, float, bool, str, bytes)


def _container_rule(u, *args):
    if not (len(args) <= 1 and all(type(a) in _PLAIN for a in args)):
        raise _Refused("refusing a container built from anything but a plain container")
    u._charge(8 * sum(len(a) for a in args), "a container")


def _number_rule(u, *args):
    if not (len(args) <= 2 and all(type(a) in _SCALARS for a in args)):
        raise _Refused("refusing a number built from anything but a plain value")


def _text_rule(u, *args):
    if not (len(args) <= 3 and all(type(a) in (*_SCALARS, bytearray) for a in args)):
        raise _Refused("refusing text built from anything but plain values")
    size = args[0] if args and type(args[0]) is int else 0          # bytes(n), bytearray(n): n zero bytes
    u._charge(max(size, 0) + sum(4 * len(a) for a in args if type(a) in (str, bytes, bytearray)), "bytes")


def _call_rules() -> tuple:
    """(callable, rule) pairs: everything a gensim file may call, each rule checking the arguments (and charging
    the allocation) before the call."""
    global _RULES
    if _RULES is None:
        import builtins
        import copyreg
        from numpy.random import _pickle as npp
        _RULES = (
            (np.zeros(1).__reduce__()[0], _reconstruct_rule),                   # numpy(._)core.multiarray
            (np.float32(0).__reduce__()[0], _scalar_rule),
            (np.dtype, _dtype_rule),
            (getattr(npp, "__randomstate_ctor"), _random_ctor_rule),
            (getattr(npp, "__generator_ctor"), _random_ctor_rule),
            (getattr(npp, "__bit_generator_ctor"), _bit_generator_rule),
            (copyreg._reconstructor, _reconstructor_rule),
            (collections.defaultdict, _defaultdict_rule),
            (collections.OrderedDict, _container_rule),
            *((getattr(builtins, n), _container_rule) for n in ("dict", "list", "set", "frozenset", "tuple")),
            *((getattr(builtins, n), _number_rule) for n in ("int", "float", "complex", "bool")),
            *((getattr(builtins, n), _text_rule) for n in ("str", "bytes", "bytearray")),
            (builtins.object, _no_args),
        )
    return _RULES


_RULES = None


def _resolve(module: str, name: str):
    import importlib
    return getattr(importlib.import_module(module), name)


def read_gensim_pickle(path: Path):
    """The object of a gensim native file, through the allowlist; the whole file must be one pickle (nothing
    hidden after it)."""
    data = read_regular(path, "gensim file", max_bytes=1 << 40)     # bounded by the file's own size
    buf = io.BytesIO(data)
    try:
        obj = _GensimUnpickler(buf, len(data)).load()
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
