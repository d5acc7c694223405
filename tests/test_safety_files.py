"""Hostile model, vector and test files (issue 21): no gensim class called or patched from a pickle, no memory
bomb, side arrays kept in the model's folder and checked before they are read, no NaN or complex vectors, no
FIFO or device read; each refusal is one line naming the file. Payloads are written by hand as bytes."""
import os
import pickle
import subprocess
import sys
import threading
import time
import tracemalloc

import numpy as np
import pytest

from biasaudit.errors import ArtifactError, BiasAuditError, ConfigError
from biasaudit.models.imported import load_word2vec, read_glove_vocab
from biasaudit.models.keyed import load_embeddings, read_gensim_pickle
from biasaudit.wordsets import resolve_tests
from conftest import run_cli

W2V = b"gensim.models.word2vec\nWord2Vec\n"


def refused(call, path, *needles, error=ArtifactError):
    """``call()`` raises ``error`` in one line that names ``path`` and holds every needle."""
    with pytest.raises(error) as e:
        call()
    msg = str(e.value)
    assert "\n" not in msg and str(path) in msg, msg
    for n in needles:
        assert n in msg, (n, msg)
    return msg


@pytest.fixture
def spy(monkeypatch):
    """Word2Vec.__init__ replaced by a recorder (the real one would train); a test fails if it is called."""
    from gensim.models import Word2Vec
    calls = []
    monkeypatch.setattr(Word2Vec, "__init__", lambda self, *a, **k: calls.append(a))
    return calls


def _kv_bytes():
    from gensim.models import KeyedVectors
    kv = KeyedVectors(4)
    kv.add_vectors(["a", "b", "c"], np.eye(3, 4, dtype=np.float32))
    return kv


# ------------------------------------------------------------------ 1. no gensim class called, by any opcode
def _calling_payloads(secret):
    s = str(secret).encode()
    sents = b"]]X\x01\x00\x00\x00aaa"                                        # [["a"]]
    return {
        # the issue's 115-byte file: Word2Vec(None, corpus_file=secret, ...) through INST
        "inst-p0": b"(NS'" + s + b"'\nI8\nF0.025\nI3\nI1\nNF0.001\nI1\nI1\nF0.0001\nI1\ni" + W2V + b".",
        "obj-p1": b"(c" + W2V + b"NS'" + s + b"'\no.",
        "reconstructor-p0": b"ccopyreg\n_reconstructor\n(c" + W2V + b"c" + W2V + b"(l(lS'a'\naatR.",
        "reconstructor-p2": b"\x80\x02ccopyreg\n_reconstructor\nc" + W2V + b"c" + W2V + sents + b"\x87R.",
        "reconstructor-p4": b"\x80\x04\x8c\x07copyreg\x8c\x0e_reconstructor\x93\x8c\x16gensim.models.word2vec"
                            b"\x8c\x08Word2Vec\x93\x94h\x00" + sents + b"\x87R.",
        "randomstate-p2": b"\x80\x02cnumpy.random._pickle\n__randomstate_ctor\nX\x01\x00\x00\x00xc" + W2V
                          + b"\x86R.",
        "bitgenerator-p4": b"\x80\x04\x8c\x14numpy.random._pickle\x8c\x14__bit_generator_ctor\x93"
                           b"\x8c\x16gensim.models.word2vec\x8c\x08Word2Vec\x93\x85R.",
        "newobj-args-p2": b"\x80\x02c" + W2V + sents + b"\x85\x81.",
        "newobj_ex-p4": b"\x80\x04\x8c\x16gensim.models.word2vec\x8c\x08Word2Vec\x93)}X\x06\x00\x00\x00corpus"
                        b"X\x01\x00\x00\x00as\x92.",
    }


@pytest.mark.parametrize("name", sorted(_calling_payloads("x")))
def test_a_pickle_cannot_call_gensims_classes_through_any_opcode(tmp_path, spy, name):
    secret = tmp_path / "secret.txt"
    secret.write_text("private words in a private file\n" * 20)
    f = tmp_path / "e.model"
    f.write_bytes(_calling_payloads(secret)[name])
    refused(lambda: load_embeddings(f), f, "refusing")
    refused(lambda: load_word2vec(f), f, "refusing")
    assert spy == []


def test_the_issues_115_byte_file_gets_one_line_from_the_cli(tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("zebra quokka narwhal\n" * 50)
    f = tmp_path / "e.model"
    f.write_bytes(_calling_payloads(secret)["inst-p0"].replace(str(secret).encode(), b"secret.txt"))
    p = run_cli("weat", f, cwd=tmp_path)
    assert p.returncode == 1 and "refusing the INST opcode" in p.stderr, p
    assert "zebra" not in p.stdout + p.stderr


def test_real_gensim_files_still_load(tmp_path):
    """The allowlist reads what gensim 4 writes (NEWOBJ, numpy arrays, dtypes, the RandomState, defaultdict)."""
    from gensim.models import Word2Vec
    w = Word2Vec([["a", "b", "c", "d"]] * 20, vector_size=4, min_count=1, sg=1, negative=2, workers=1, epochs=1)
    w.save(str(tmp_path / "w.model"))
    w.save(str(tmp_path / "side.model"), sep_limit=0)
    for name in ("w.model", "side.model"):
        m = load_word2vec(tmp_path / name)
        np.testing.assert_array_equal(m.output_vectors, w.syn1neg)
        np.testing.assert_array_equal(load_embeddings(tmp_path / name).vectors, w.wv.vectors)
    kv = tmp_path / "v.kv"
    _kv_bytes().save(str(kv))
    assert load_embeddings(kv).index_to_key == ("a", "b", "c")


# ------------------------------------------------------------------ 2. no class patched (and so no poisoned cache)
def _patching_payloads():
    set_train = b"N}X\x05\x00\x00\x00traincbuiltins\ndict\ns\x86b0"             # BUILD (None, {"train": dict})
    defaults = (b"cnumpy.random._pickle\n__randomstate_ctor\nN}X\x0c\x00\x00\x00__defaults__"
                b"(X\x07\x00\x00\x00MT19937c" + W2V + b"tsb\x86b0")            # a function's defaults
    return {"build-on-Word2Vec": b"c" + W2V + set_train,
            "build-on-KeyedVectors": b"cgensim.models.keyedvectors\nKeyedVectors\n" + set_train,
            "build-on-a-function": defaults + b"cnumpy.random._pickle\n__randomstate_ctor\n)R0"}


@pytest.mark.parametrize("name", sorted(_patching_payloads()))
def test_a_pickle_cannot_patch_a_class_or_function(tmp_path, monkeypatch, request, spy, name):
    from gensim.models import KeyedVectors, Word2Vec
    from numpy.random import _pickle as npp
    ctor = getattr(npp, "__randomstate_ctor")
    for obj, attr in ((Word2Vec, "train"), (ctor, "__defaults__")):
        monkeypatch.setattr(obj, attr, getattr(obj, attr))       # restored after the test, whatever happens
    request.addfinalizer(lambda: "train" in vars(KeyedVectors) and delattr(KeyedVectors, "train"))
    before = (dict(vars(Word2Vec)), dict(vars(KeyedVectors)), ctor.__defaults__)
    kv = tmp_path / "real.kv"
    _kv_bytes().save(str(kv))
    f = tmp_path / "poisoned.kv"
    f.write_bytes(_patching_payloads()[name] + kv.read_bytes())
    refused(lambda: load_embeddings(f), f, "refusing")
    assert (dict(vars(Word2Vec)), dict(vars(KeyedVectors)), ctor.__defaults__) == before
    assert "train" not in vars(KeyedVectors) and Word2Vec.train is before[0]["train"]
    assert spy == []


# ------------------------------------------------------------------ 3. memory bombs refused before allocation
@pytest.mark.parametrize("payload", [
    b"cbuiltins\nbytearray\n(I300000000\ntR.",                                        # the issue's, smaller
    b"cbuiltins\nbytes\n(I300000000\ntR.",
    b"(l" + b"cbuiltins\nbytearray\n(I30000000\ntRa" * 5 + b".",                     # five, 150 MB together
    b"cnumpy.core.multiarray\n_reconstruct\n(cnumpy\nndarray\n(I300000000\ntS'b'\ntR.",  # an array's shape
], ids=["bytearray", "bytes", "five-in-a-list", "numpy-shape"])
def test_a_memory_bomb_is_refused_before_it_allocates(tmp_path, payload):
    f = tmp_path / "bomb.kv"
    f.write_bytes(payload)
    tracemalloc.start()
    t = time.perf_counter()
    try:
        refused(lambda: read_gensim_pickle(f), f, "refusing")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 100 << 20 and time.perf_counter() - t < 5, (peak, time.perf_counter() - t)


# ------------------------------------------------------------------ 4-5. side arrays: in the folder, checked first
def _sidecar_model(folder, numpys):
    """A KeyedVectors pickle (written by pickle itself) whose __numpys names ``numpys``."""
    from gensim.models import KeyedVectors
    folder.mkdir(parents=True, exist_ok=True)
    kv = object.__new__(KeyedVectors)
    kv.__dict__.update(vars(_kv_bytes()))
    kv.__dict__["__numpys"] = numpys
    f = folder / "m.kv"
    f.write_bytes(pickle.dumps(kv, protocol=4))
    return f


def test_a_side_array_outside_the_models_folder_is_refused(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    np.save(outside / "v.npy", np.ones((3, 4), dtype=np.float32))
    f = _sidecar_model(tmp_path / "model", ["x/../../outside/v"])
    (tmp_path / "model" / "m.kv.x").mkdir()                 # the folder the attacker's archive brings along
    refused(lambda: load_embeddings(f), f, "outside the model's folder")
    g = _sidecar_model(tmp_path / "linked", ["vectors"])   # a legitimate name, a symlink pointing out
    (tmp_path / "linked" / "m.kv.vectors.npy").symlink_to(outside / "v.npy")
    refused(lambda: load_embeddings(g), g, "outside the model's folder")


def _npy(path, shape, descr="<f4", data=b"\0" * 64):
    from numpy.lib import format as npy
    with open(path, "wb") as fh:
        npy.write_array_header_1_0(fh, {"descr": descr, "fortran_order": False, "shape": shape})
        fh.write(data)


def test_a_side_array_declaring_more_than_it_holds_is_refused_unread(tmp_path):
    f = _sidecar_model(tmp_path, ["vectors"])
    side = tmp_path / "m.kv.vectors.npy"
    _npy(side, (2_000_000_000,))                                           # 8 GB declared, 64 bytes held
    tracemalloc.start()
    try:
        refused(lambda: load_embeddings(f), side, "declares", "8,000,000,000 bytes")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 50 << 20, peak
    _npy(side, (3, 4), descr="<c8", data=b"\0" * 96)                     # complex: not real numbers
    refused(lambda: load_embeddings(f), side, "not a readable array")


# ------------------------------------------------------------------ 6. NaN, inf and complex vectors
def test_nan_inf_and_complex_vectors_are_refused_at_load(tmp_path):
    from gensim.models import KeyedVectors, Word2Vec
    for bad in ("nan", "inf", "-inf"):
        t = tmp_path / f"{bad}.txt"
        t.write_text(f"2 3\na 0.1 0.2 0.3\nb 0.1 {bad} 0.3\n")
        refused(lambda: load_embeddings(t), t, "NaN or infinite", "row 2")
    b = tmp_path / "nan.bin"
    b.write_bytes(b"2 2\na " + np.array([0.5, np.nan], "<f4").tobytes() + b"\nb "
                  + np.array([0.5, 1.0], "<f4").tobytes() + b"\n")
    refused(lambda: load_embeddings(b), b, "NaN or infinite")
    kv = _kv_bytes()
    kv.vectors[1, 2] = np.inf
    kv.save(str(tmp_path / "inf.kv"))
    refused(lambda: load_embeddings(tmp_path / "inf.kv"), tmp_path / "inf.kv", "NaN or infinite")
    w = Word2Vec([["a", "b", "c", "d"]] * 20, vector_size=4, min_count=1, sg=1, negative=2, workers=1, epochs=1)
    w.wv.vectors = w.wv.vectors.astype(np.complex64) + 1j
    w.save(str(tmp_path / "complex.model"))
    refused(lambda: load_word2vec(tmp_path / "complex.model"), tmp_path / "complex.model", "complex")
    w.wv.vectors = w.wv.vectors.real.copy()
    w.syn1neg[0, 0] = np.nan
    w.save(str(tmp_path / "nan.model"))
    refused(lambda: load_word2vec(tmp_path / "nan.model"), tmp_path / "nan.model", "NaN or infinite")


# ------------------------------------------------------------------ 7. counts that are not 64-bit whole numbers
@pytest.mark.parametrize("count", ["1" + "0" * 30, "\u00b2", "1\u00b2"])
def test_a_glove_vocab_count_too_large_or_not_ascii_gets_one_line(tmp_path, count):
    v = tmp_path / "vocab.txt"
    v.write_text(f"the 12\nzebra {count}\n", encoding="utf-8")
    refused(lambda: read_glove_vocab(v), v, "line 2")


def test_a_vector_header_with_a_superscript_digit_gets_one_line(tmp_path):
    t = tmp_path / "v.txt"
    t.write_text("\u00b2 3\na 0.1 0.2 0.3\n", encoding="utf-8")
    with pytest.raises(BiasAuditError) as e:
        load_embeddings(t)
    assert str(t) in str(e.value)


# ------------------------------------------------------------------ 8. FIFOs and devices are not read
def _bounded(call, seconds=5.0):
    """``call()`` in a thread; its exception, or a failure when it has not returned within ``seconds``."""
    box = {}

    def run():
        try:
            call()
        except BaseException as e:   # noqa: BLE001 - handed back to the test
            box["e"] = e
    th = threading.Thread(target=run, daemon=True)
    th.start()
    th.join(seconds)
    return th.is_alive(), box.get("e")


def _unblock(fifo):
    try:                                     # a reader blocked in open() on the FIFO returns (at end of file)
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
    except OSError:
        pass


@pytest.mark.parametrize("what", ["vectors", "test", "glove-vocab"])
def test_a_fifo_is_refused_at_once(tmp_path, what):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    call = {"vectors": lambda: load_embeddings(fifo), "test": lambda: resolve_tests([str(fifo)]),
            "glove-vocab": lambda: read_glove_vocab(fifo)}[what]
    hung, e = _bounded(call)
    if hung:
        _unblock(fifo)
    assert not hung, "reading a FIFO hangs"
    assert isinstance(e, ConfigError if what == "test" else ArtifactError), e
    assert "FIFO" in str(e) and str(fifo) in str(e) and "\n" not in str(e), e


def test_weat_on_a_fifo_and_on_a_device_gets_one_line(tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    (tmp_path / "null").symlink_to("/dev/null")
    for f, kind in ((fifo, "FIFO"), (tmp_path / "null", "character device")):
        hung, _ = _bounded(lambda: setattr(sys.modules[__name__], "_p", run_cli("weat", f)), 20)
        if hung:
            _unblock(fifo)
        assert not hung
        p = _p  # noqa: F821 - set by the thread
        assert p.returncode == 1 and kind in p.stderr and str(f) in p.stderr, p


def test_a_symlink_to_dev_zero_is_not_read(tmp_path):
    """In a child with 1.5 GB of address space, so that reading /dev/zero fails fast instead of filling memory."""
    z = tmp_path / "zero.txt"
    z.symlink_to("/dev/zero")
    code = ("import resource, sys\nresource.setrlimit(resource.RLIMIT_AS, (3 << 29, 3 << 29))\n"
            "from biasaudit.errors import BiasAuditError\nfrom biasaudit.models.keyed import load_embeddings\n"
            "try:\n    load_embeddings(sys.argv[1])\nexcept BiasAuditError as e:\n    print(e)\n")
    p = subprocess.run([sys.executable, "-c", code, str(z)], capture_output=True, text=True, timeout=120,
                       env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert p.returncode == 0 and "character device" in p.stdout, (p.returncode, p.stdout, p.stderr[-2000:])


# ------------------------------------------------------------------ 9. every reader of a user's file: no FIFO read
def _refuses_fifo(tmp_path, call, error, name="pipe", seconds=5.0):
    """``call(fifo)`` ends within ``seconds`` with ``error`` in one line naming the FIFO (a regression fails, it
    does not hang the suite)."""
    fifo = tmp_path / name
    os.mkfifo(fifo)
    hung, e = _bounded(lambda: call(fifo), seconds)
    if hung:
        _unblock(fifo)
    assert not hung, "reading a FIFO hangs"
    assert isinstance(e, error), repr(e)
    assert "FIFO" in str(e) and str(fifo) in str(e) and "\n" not in str(e), e
    return fifo


@pytest.mark.parametrize("what", ["templates", "pairs", "swap-pairs"])
def test_a_fifo_templates_pairs_or_swap_file_is_refused_at_once(tmp_path, what):
    from biasaudit.measures.lm import load_pairs, load_templates
    from biasaudit.swaps import load_swaps
    call = {"templates": load_templates, "pairs": load_pairs, "swap-pairs": load_swaps}[what]
    _refuses_fifo(tmp_path, call, ConfigError)


def test_a_fifo_remove_ids_file_gets_one_line_from_the_cli(tmp_path):
    fifo = tmp_path / "ids.txt"
    os.mkfifo(fifo)
    box = {}
    hung, _ = _bounded(lambda: box.update(p=run_cli("experiment", "--remove-ids", fifo, "--scheduler", "none",
                                                    "--out", tmp_path / "out")), 20)
    if hung:
        _unblock(fifo)
    assert not hung, "reading a FIFO hangs"
    p = box["p"]
    assert p.returncode == 1 and "FIFO" in p.stderr and str(fifo) in p.stderr, p
    assert len(p.stderr.strip().splitlines()) == 1, p


def test_a_fifo_corpus_file_is_refused_when_read(tmp_path):
    """A FileCorpus (a library user's, or a file swapped for a FIFO after listing) checks each file as it opens it."""
    from biasaudit.corpus import FileCorpus, records
    from biasaudit.errors import CorpusError
    for name in ("pipe.jsonl", "pipe.txt", "pipe.csv", "pipe.parquet"):
        _refuses_fifo(tmp_path, lambda f: list(FileCorpus("c", [f])), CorpusError, name)
    _refuses_fifo(tmp_path, lambda f: list(records(FileCorpus("c", [f]))), CorpusError, "pipe2.jsonl")


def test_a_corpus_folder_holding_a_fifo_or_device_is_refused(tmp_path):
    """A folder stays a corpus; a FIFO or device among its corpus files is one line, not skipped or read."""
    from biasaudit.corpus import load_corpus
    from biasaudit.errors import CorpusError
    folder = tmp_path / "c"
    folder.mkdir()
    (folder / "a.jsonl").write_text('{"id": "1", "text": "she is a nurse"}\n')
    assert [d.id for d in load_corpus(folder)] == ["1"]
    _refuses_fifo(folder, lambda f: load_corpus(folder), CorpusError, "b.jsonl")
    os.unlink(folder / "b.jsonl")
    (folder / "z.txt").symlink_to("/dev/zero")
    refused(lambda: load_corpus(folder), folder / "z.txt", "character device", error=CorpusError)


def _tiny_model_folder(folder, vectors=None):
    from biasaudit.models.skipgram import SkipGramConfig, SkipGramModel
    from biasaudit.vocab import Vocab
    words = ("she", "he", "nurse", "engineer")
    vectors = np.arange(16, dtype=np.float32).reshape(4, 4) / 16 if vectors is None else vectors
    SkipGramModel(Vocab(words, np.array([4, 3, 2, 1], np.int64), 1), vectors, np.zeros((4, 4), np.float32),
                  SkipGramConfig(vector_size=4, min_count=1)).save(folder)
    return folder


@pytest.mark.parametrize("name", ["vectors.safetensors", "vocab.json", "config.json"])
def test_a_fifo_in_a_model_folder_is_refused_at_once(tmp_path, name):
    folder = _tiny_model_folder(tmp_path / "m")
    assert load_embeddings(folder).vectors.shape == (4, 4)
    os.unlink(folder / name)
    _refuses_fifo(folder, lambda f: load_embeddings(folder), ArtifactError, name)


def test_nan_vectors_in_a_model_folder_with_a_matching_checksum_are_refused(tmp_path):
    """A tampered folder whose config.json carries the tampered file's checksum: only the NaN check stops it."""
    import hashlib
    import json
    folder = _tiny_model_folder(tmp_path / "m")
    blob = (folder / "vectors.safetensors").read_bytes()
    one = np.float32(0.0625).tobytes()                                 # vectors[0, 1] = 1/16, in no other cell
    assert blob.count(one) == 1
    blob = blob.replace(one, np.float32(np.nan).tobytes())
    (folder / "vectors.safetensors").write_bytes(blob)
    cfg = json.loads((folder / "config.json").read_text())
    with pytest.raises(ArtifactError, match="checksum"):               # the checksum alone stops the plain edit
        load_embeddings(folder)
    cfg["sha256"]["vectors.safetensors"] = hashlib.sha256(blob).hexdigest()
    (folder / "config.json").write_text(json.dumps(cfg))
    refused(lambda: load_embeddings(folder), folder / "vectors.safetensors", "NaN or infinite", "row 1")
    for bad in (np.inf, np.nan):                                       # a diverged run's folder, as saved
        v = np.ones((4, 4), np.float32)
        v[2, 3] = bad
        refused(lambda: load_embeddings(_tiny_model_folder(tmp_path / f"w{bad}", v)),
                tmp_path / f"w{bad}" / "vectors.safetensors", "NaN or infinite", "row 3")
