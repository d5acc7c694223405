"""The allowlisted gensim unpickler: gensim's native files are pickles, and nothing here unpickles arbitrary
objects. ``_GensimUnpickler`` resolves only an explicit list of (module, name) pairs (gensim's and NumPy's own
classes), calls only a few NumPy and builtin constructors with the arguments they are pickled with (the call
rules below), never calls or patches a gensim class, and bounds what a file may allocate by its size. Files are
read through ``biasaudit.models.keyed.read_gensim_pickle``.
"""
from __future__ import annotations

import collections
import pickle
import sys

import numpy as np

from ..errors import ArtifactError


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
    - every allocation a call or an array declares is charged against a budget of ``slack`` (``ALLOC_SLACK``)
      plus ``ALLOC_FACTOR`` times the file's size, before it is made; and so is, after each opcode, what the opcode
      made (``_charging``): the object it pushed, a stack, mark or memo slot, a container's growth."""

    dispatch = dict(pickle._Unpickler.dispatch)

    def __init__(self, file, size: int = 0, slack: int = ALLOC_SLACK):
        super().__init__(file)
        self._size = size
        self._budget = slack + ALLOC_FACTOR * size
        self._left = self._budget

    def _charge(self, nbytes: int, what: str) -> None:
        if nbytes > self._left:
            raise _Refused(f"refusing {what}: {nbytes:,} bytes, more than a gensim file of this size can hold")
        self._left -= nbytes

    def _charge_op(self, nbytes: int, op: str) -> None:
        if nbytes > self._left:
            raise _Refused(f"refusing what its {op} opcodes make: more than the {self._budget:,} bytes of objects a "
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
