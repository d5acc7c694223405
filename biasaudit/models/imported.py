"""Models a user trained elsewhere, audited as they are (``--embeddings PATH``):

- a full gensim ``Word2Vec`` saved with ``model.save()`` (skip-gram, negative sampling): input vectors, output
  vectors ``syn1neg``, vocabulary counts and every training setting the influence objective needs are read from
  the file (through the allowlisted unpickler of ``biasaudit.models.keyed``), never taken from our defaults;
- the GloVe C tool's parameters file (``glove -model 0``: W, W~ and both biases, binary or text) with the
  ``vocab.txt`` that ``vocab_count`` wrote; the remaining settings (window, x_max, alpha, ...) come from the
  user, as the C tool's command line does not travel with its output.

The same objects held in memory (``biasaudit.from_gensim``, ``biasaudit.from_hf``): a gensim ``Word2Vec`` (as
above, without files), gensim ``KeyedVectors`` (plain vectors, measured only) and a transformers causal LM with its
tokenizer (a foreign model, like a checkpoint folder).

Either is checked against the corpus before anything is scored: the vocabulary the model was trained on must be
the corpus's under the chosen tokenizer (``--tokenizer``), count for count. The model's origin (file, size,
sha256, settings) and the checks passed travel in ``model.meta["origin"]`` to the outputs and the report.
"""
from __future__ import annotations

import hashlib
import io
from collections import Counter
from pathlib import Path

import numpy as np

from ..errors import ArtifactError, CorpusError
from ..io import open_regular, regular_file
from ..vocab import MAX_CHUNK, TokenStream, Vocab

SAVE_FULL = ("save the full model with model.save(path) (not model.wv.save() or "
             "model.wv.save_word2vec_format()), which keeps the output vectors and the training settings")


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open_regular(path, "model file") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _origin(paths: list[Path], kind: str, settings: dict) -> dict:
    return {"kind": kind, "files": [{"path": str(p), "bytes": p.stat().st_size, "sha256": file_sha256(p)}
                                    for p in paths], "settings": settings, "checks": []}


# ------------------------------------------------------------------ gensim Word2Vec
def load_word2vec(path: str | Path):
    """A full gensim Word2Vec file as a ``SkipGramModel`` with the file's own settings (refused, in one line, when
    the file cannot give the influence objective what it needs)."""
    from gensim.models import KeyedVectors, Word2Vec

    from .keyed import _looks_like_pickle, read_gensim_pickle

    path = regular_file(path, "model file")
    with open_regular(path, "model file") as f:
        head = f.read(4096)
        f.seek(max(0, path.stat().st_size - 2))
        tail = f.read()
    if not _looks_like_pickle(head, tail):
        raise ArtifactError(f"{path}: a word-vector file (word2vec or GloVe text/binary) holds no output vectors or "
                            f"training settings, which influence needs; {SAVE_FULL}")
    obj = read_gensim_pickle(path)
    if isinstance(obj, KeyedVectors) or not isinstance(obj, Word2Vec):
        raise ArtifactError(f"{path}: holds only word vectors (KeyedVectors), not the output vectors and settings "
                            f"influence needs; {SAVE_FULL}")
    return word2vec_model(obj, str(path), [path])


def word2vec_model(w, where: str, files: list[Path] = ()):
    """A gensim ``Word2Vec`` object (read from ``files``, or held in memory: no files) as a ``SkipGramModel`` with
    its own settings; refused, in one line naming ``where``, when it cannot give the influence objective what it
    needs."""
    from .keyed import real_vectors
    from .skipgram import SkipGramConfig, SkipGramModel

    if getattr(w, "sg", 1) != 1:
        raise ArtifactError(f"{where}: a CBOW model (sg=0); biasaudit's objective is skip-gram (sg=1)")
    if getattr(w, "hs", 0) or not getattr(w, "negative", 0):
        raise ArtifactError(f"{where}: trained with hierarchical softmax (hs=1, negative=0); biasaudit's objective is "
                            "negative sampling (hs=0, negative > 0)")
    syn1neg = getattr(w, "syn1neg", None)
    kv = w.wv
    vectors, keys = getattr(kv, "vectors", None), getattr(kv, "index_to_key", None)
    if not (isinstance(syn1neg, np.ndarray) and syn1neg.size):
        raise ArtifactError(f"{where}: saved without its output vectors (syn1neg; deleted after training?); "
                            f"{SAVE_FULL}")
    real_vectors(where, syn1neg, "output vectors (syn1neg)")
    real_vectors(where, vectors, "input vectors")
    if not (isinstance(vectors, np.ndarray) and isinstance(keys, list) and vectors.shape == syn1neg.shape
            and len(keys) == len(vectors)):
        raise ArtifactError(f"{where}: vocabulary, input and output vectors do not match in size")
    counts = getattr(kv, "expandos", {}).get("count")
    if counts is None or len(counts) != len(keys):
        raise ArtifactError(f"{where}: no vocabulary counts; {SAVE_FULL}")
    min_count = int(getattr(w, "effective_min_count", None) or w.min_count)
    settings = {"vector_size": int(w.vector_size), "window": int(w.window), "min_count": min_count,
                "negative": int(w.negative), "epochs": int(w.epochs), "seed": int(w.seed), "workers": 1,
                "sample": float(w.sample), "alpha": float(w.alpha), "min_alpha": float(w.min_alpha),
                "ns_exponent": float(w.ns_exponent), "shrink_windows": bool(getattr(w, "shrink_windows", True)),
                "backend": "gensim"}
    try:
        config = SkipGramConfig(**settings)
    except Exception as e:
        raise ArtifactError(f"{where}: settings biasaudit cannot use ({e})") from e
    # copies, never views: the caller's gensim object may go on training, and our model must not change with it
    vocab = Vocab(tuple(str(k) for k in keys), np.array(counts, dtype=np.int64), min_count)
    origin = _origin(list(files), "gensim Word2Vec" if files else "gensim Word2Vec (in memory)",
                     {**settings, "workers": int(getattr(w, "workers", 1)),
                      "max_final_vocab": getattr(w, "max_final_vocab", None)})
    return SkipGramModel(vocab, np.array(vectors, dtype=np.float32), np.array(syn1neg, dtype=np.float32),
                         config, {"name": Path(files[0]).name if files else "Word2Vec"}, {"origin": origin})


def keyed_vectors(kv, where: str = "the given KeyedVectors"):
    """gensim ``KeyedVectors`` held in memory as plain word vectors (the bias tests run on them; without the
    training loss nothing is scored)."""
    from .keyed import KeyedEmbeddings, real_vectors

    vectors = np.array(real_vectors(where, getattr(kv, "vectors", None), "vectors"), dtype=np.float32)   # a copy
    keys = tuple(str(k) for k in kv.index_to_key)
    if len(keys) != len(vectors):
        raise ArtifactError(f"{where}: vocabulary and vectors do not match in size")
    return KeyedEmbeddings(keys, vectors, source=where)


def hf_model(net, tokenizer, device: str = "cpu"):
    """A transformers causal LM and its tokenizer, held in memory, as a language model to measure and score (a
    foreign model: no training config; its training corpus cannot be checked)."""
    from .lm import HFEncoder, LMModel

    if not callable(getattr(tokenizer, "__call__", None)) or not hasattr(net, "parameters"):
        raise ArtifactError("from_hf takes a transformers causal-LM model and its tokenizer")
    net = net.to(device)
    net.eval()
    return LMModel(net, HFEncoder(tokenizer), None, {},
                   {"checkpoint": "(in memory)", "parameters": sum(p.numel() for p in net.parameters())})


# ------------------------------------------------------------------ the corpus check
def corpus_counts(corpus) -> Counter:
    """Every token's count in ``corpus`` under its tokenizer (documents chunked as for training)."""
    c: Counter = Counter()
    for piece in TokenStream(corpus, MAX_CHUNK):
        c.update(piece)
    return c


def check_vocabulary(model, corpus, what: str, counts: Counter | None = None):
    """The model's vocabulary and counts must be the corpus's (words seen at least min_count times): else one
    line naming the first words that differ. Returns the model with the check recorded in its origin and the
    corpus it matched."""
    from dataclasses import replace

    counts = counts if counts is not None else corpus_counts(corpus)
    vocab = model.vocab
    mine = {w: int(c) for w, c in zip(vocab.index_to_key, vocab.counts)}
    theirs = {w: c for w, c in counts.items() if c >= vocab.min_count}
    diffs = []
    for w in list(mine)[:200_000]:
        if counts.get(w, 0) != mine[w]:
            diffs.append(f"{w!r}: {mine[w]:,} in the model, {counts.get(w, 0):,} in the corpus")
        if len(diffs) >= 3:
            break
    if len(diffs) < 3:
        extra = sorted((w for w in theirs if w not in mine), key=lambda w: -theirs[w])
        diffs += [f"{w!r}: absent from the model, {theirs[w]:,} in the corpus" for w in extra[:3 - len(diffs)]]
    if diffs:
        raise CorpusError(f"{what}: vocabulary does not match {corpus.label} with --tokenizer "
                          f"{corpus.tokenizer.spec} (min_count {vocab.min_count}): {'; '.join(diffs)}: was the model "
                          "trained on this corpus with this tokenizer?")
    meta = dict(model.meta)
    if "origin" in meta:
        meta["origin"] = {**meta["origin"], "checks": [
            *meta["origin"]["checks"], f"vocabulary and counts equal the corpus's ({len(mine):,} words, min_count "
            f"{vocab.min_count}, tokenizer {corpus.tokenizer.spec})"]}
    return replace(model, corpus=corpus.describe(), meta=meta)


# ------------------------------------------------------------------ the GloVe C tool
GLOVE_C_DEFAULTS = {"window": 15, "x_max": 100.0, "alpha": 0.75, "epochs": 25, "embedding": "w+c"}


MAX_COUNT = 2 ** 63 - 1


def read_glove_vocab(path: Path) -> tuple[list[str], np.ndarray]:
    """``vocab_count``'s output: one "word count" per line, most frequent first."""
    words, counts = [], []
    try:
        with io.TextIOWrapper(open_regular(path, "vocab file"), encoding="utf-8") as f:
            for n, line in enumerate(f, 1):
                parts = line.rstrip("\n").split(" ")
                if line.strip() == "":
                    continue
                if len(parts) != 2 or not (parts[1].isascii() and parts[1].isdigit()):
                    raise ArtifactError(f"{path}: line {n}: not 'word count' (is this vocab_count's output?)")
                digits = parts[1].lstrip("0") or "0"         # 5,000 digits: int() itself refuses them
                if len(digits) > 19 or int(digits) > MAX_COUNT:
                    raise ArtifactError(f"{path}: line {n}: count {parts[1][:30]}{'...' if len(parts[1]) > 30 else ''}"
                                        f" is above {MAX_COUNT:,} (a 64-bit count); not vocab_count's output")
                words.append(parts[0])
                counts.append(int(digits))
    except UnicodeDecodeError as e:
        raise ArtifactError(f"{path}: not UTF-8 text ({e})") from e
    except OSError as e:
        raise ArtifactError(f"{path}: cannot read ({e.strerror or e})") from e
    if not words:
        raise ArtifactError(f"{path}: holds no words")
    if len(set(words)) != len(words):
        raise ArtifactError(f"{path}: a word is listed twice")
    return words, np.asarray(counts, dtype=np.int64)


def _glove_params_binary(path: Path, V: int) -> np.ndarray:
    size = path.stat().st_size
    if size % 8 or (size // 8) % (2 * V):
        raise ArtifactError(f"{path}: {size:,} bytes is not 2 x {V:,} rows of doubles (the binary parameters of "
                            "glove -model 0 with this vocab.txt?)")
    with open_regular(path, "parameters file") as f:
        a = np.fromfile(f, dtype="<f8")
    return a.reshape(2 * V, -1)                       # rows: words, then contexts; columns: vector, bias


def _glove_params_text(path: Path, words: list[str]) -> np.ndarray:
    rows = []
    try:
        with io.TextIOWrapper(open_regular(path, "parameters file"), encoding="utf-8") as f:
            for n, line in enumerate(f, 1):
                parts = line.rstrip("\n").rstrip(" ").split(" ")
                if n == 1 and len(parts) == 2 and all(p.isascii() and p.isdigit() for p in parts):
                    continue                                      # -write-header 1
                if parts[0] == "<unk>" and len(rows) == len(words):
                    break                                         # the averaged <unk> row glove.c appends
                if len(rows) >= len(words) or parts[0] != words[len(rows)]:
                    raise ArtifactError(f"{path}: line {n}: word {parts[0]!r} where vocab.txt has "
                                        f"{words[len(rows)] if len(rows) < len(words) else 'no more words'!r}")
                rows.append(np.asarray(parts[1:], dtype=np.float64))
    except (UnicodeDecodeError, ValueError) as e:
        raise ArtifactError(f"{path}: not a GloVe parameters text file ({e})") from e
    if len(rows) != len(words):
        raise ArtifactError(f"{path}: {len(rows):,} rows, vocab.txt has {len(words):,} words (truncated file?)")
    widths = {len(r) for r in rows}
    if len(widths) != 1 or next(iter(widths)) % 2:
        raise ArtifactError(f"{path}: rows of {sorted(widths)[:3]} numbers; glove -model 0 writes 2 x (dim + 1) "
                            "(word vector and bias, context vector and bias); vectors without biases cannot be "
                            "audited: save with -model 0")
    a = np.stack(rows)
    h = a.shape[1] // 2
    return np.concatenate([a[:, :h], a[:, h:]])          # (2V, dim + 1), as the binary layout


def load_glove_c(params: str | Path, vocab_file: str | Path, settings: dict | None = None):
    """The GloVe C tool's parameters (``vectors.bin`` or the ``-model 0`` text file) with its ``vocab.txt``, as a
    ``GloVeModel``; window, x_max, alpha, epochs and the embedding read by the tests come from ``settings`` (the C
    tool's defaults otherwise), the dimension and vocabulary from the files."""
    from .glove import GloVeConfig, GloVeModel

    params = regular_file(params, "parameters file")
    vocab_file = regular_file(vocab_file, "vocab file")
    words, counts = read_glove_vocab(vocab_file)
    V = len(words)
    with open_regular(params, "parameters file") as f:
        head = f.read(4096)
    try:
        head.decode("utf-8")
        is_text = b"\0" not in head
    except UnicodeDecodeError:
        is_text = False
    a = _glove_params_text(params, words) if is_text else _glove_params_binary(params, V)
    if not np.all(np.isfinite(a)):
        raise ArtifactError(f"{params}: holds non-finite values (diverged training?)")
    dim = a.shape[1] - 1
    given = {k: v for k, v in (settings or {}).items() if v is not None}
    s = {**GLOVE_C_DEFAULTS, **given}
    try:
        config = GloVeConfig(vector_size=dim, window=int(s["window"]), min_count=int(counts.min()),
                             x_max=float(s["x_max"]), alpha=float(s["alpha"]), epochs=int(s["epochs"]),
                             embedding=s["embedding"], seed=int(s.get("seed", 1)))
    except Exception as e:
        raise ArtifactError(f"{params}: settings biasaudit cannot use ({e})") from e
    vocab = Vocab(tuple(words), counts, int(counts.min()))
    origin = _origin([params, vocab_file], f"GloVe C tool parameters ({'text' if is_text else 'binary'})",
                     {**config.to_dict(), "assumed": sorted(k for k in GLOVE_C_DEFAULTS if k not in given)})
    origin["given"] = given
    return GloVeModel(vocab, a[:V, :dim].astype(np.float32), a[V:, :dim].astype(np.float32),
                      a[:V, dim].astype(np.float32), a[V:, dim].astype(np.float32), config, {"name": params.name},
                      {"origin": origin})
