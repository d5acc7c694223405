"""Bias measures as differentiable functions of the input vectors: the test side of cross-loss influence.

- ``measure_target``: any differentiable measure of the registry (``biasaudit.measures.registry``: WEAT, RIPA,
  Direct Bias, RND, MAC) of a BiasTest, its row's torch twin over the words it reads (ECT's ranks and RNSB's
  fitted classifier have no useful derivative, so they cannot be targets); ``weat_target``: WEAT's.
- ``query_target``: a word query, mean cos(word, toward) - mean cos(word, away) ("which documents pull `nurse`
  toward `she`?"). Positive when the word sits nearer the ``toward`` words.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from ..errors import ConfigError, VocabularyError
from ..vocab import Vocab
from ..wordsets import SET_FIELDS, BiasTest
from .registry import check_request, get_measure


@dataclass(frozen=True)
class BiasTarget:
    """A scalar bias measure B(U) that reads only the rows ``rows`` of the input vectors U."""
    name: str
    kind: str                      # the measure's name ("weat", "ripa", ...) or "query"
    rows: np.ndarray               # vocabulary indices of the words B reads
    fn: Callable[[torch.Tensor], torch.Tensor]  # (len(rows), dim) -> scalar
    test: BiasTest | None = None
    description: str = ""
    words: tuple = ()              # the words B reads, in the order of ``rows``
    bound: float = float("inf")    # the largest |B| possible (a prediction never leaves [-bound, bound])
    query_sets: tuple = ((), ())   # a query's toward and away words
    sets: tuple = ()               # a measure_target's X, Y, A, B words (X and Y as pairs where it pairs them)

    def value(self, U: torch.Tensor) -> float:
        return float(self.fn(U[torch.as_tensor(self.rows)]))

    def gradient(self, U: torch.Tensor) -> torch.Tensor:
        """dB/dU, (V, dim): non-zero only on ``rows``."""
        rows = torch.as_tensor(self.rows, device=U.device)
        sub = U[rows].detach().clone().requires_grad_(True)
        self.fn(sub).backward()
        g = torch.zeros_like(U)
        g[rows] = sub.grad
        return g


def weat_target(test: BiasTest, vocab: Vocab) -> BiasTarget:
    """WEAT's effect size of ``test`` as an influence target (``measure_target`` with WEAT's row)."""
    return measure_target("weat", test, vocab)


def query_target(word: str, toward: list[str], away: list[str], vocab: Vocab) -> BiasTarget:
    if not toward:
        raise ConfigError("--query needs --toward words")
    all_words = [word, *toward, *away]
    gone = [w for w in all_words if w not in vocab]
    if gone:
        raise VocabularyError(f"query words not in the vocabulary: {', '.join(gone)}")
    if word in toward or word in away:
        raise ConfigError(f"query word {word!r} cannot also be in --toward/--away")
    words = list(dict.fromkeys(all_words))
    rows = np.array([vocab.key_to_index[w] for w in words], dtype=np.int64)
    pos = {w: i for i, w in enumerate(words)}
    T, A = torch.tensor([pos[word]]), torch.tensor([pos[w] for w in toward])
    B = torch.tensor([pos[w] for w in away]) if away else None

    def fn(M: torch.Tensor) -> torch.Tensor:
        t = M[T] / M[T].norm(dim=1, keepdim=True)
        toward_cos = (t @ (M[A] / M[A].norm(dim=1, keepdim=True)).T).mean()
        if B is None:
            return toward_cos
        return toward_cos - (t @ (M[B] / M[B].norm(dim=1, keepdim=True)).T).mean()

    name = f"query:{word}->{'+'.join(toward)}" + (f"|{'+'.join(away)}" if away else "")
    return BiasTarget(name, "query", rows, fn, None,
                      f"mean cos({word}, {{{', '.join(toward)}}})" + (f" - mean cos({word}, {{{', '.join(away)}}})" if away else ""),
                      tuple(words), 2.0, (tuple(toward), tuple(away)))


def measure_target(name: str, test: BiasTest, vocab: Vocab, original: BiasTest | None = None) -> BiasTarget:
    """A differentiable measure of the registry (weat, ripa, direct-bias, rnd, mac) of ``test`` as an influence
    target: its torch twin over the rows of the words it reads. ``original``: the test before missing words were
    dropped (the paired measures then drop a pair with either word)."""
    from .embedding import measure_sets

    m = check_request(name, target=True)
    sets = measure_sets(m.name, test, original)
    missing = {f: gone for f, ws in zip(SET_FIELDS, sets) if (gone := [w for w in ws if w not in vocab])}
    if missing:
        raise VocabularyError(f"test {test.name!r}: words not in the vocabulary: "
                              + "; ".join(f"{k}: {', '.join(v)}" for k, v in missing.items()))
    words = tuple(dict.fromkeys(w for s in sets for w in s))
    rows = np.array([vocab.key_to_index[w] for w in words], dtype=np.int64)
    fn = _measure_fn(m.torch_fn, words, sets)
    return BiasTarget(test.name, m.name, rows, fn, test, m.description(test), words,
                      m.bound_for(len(sets[0]), len(sets[1])), sets=sets)


def target_refusal(m) -> str | None:
    """Why the measure ``m`` (a row) cannot rank documents (None when it can): ``registry.check_request``'s."""
    try:
        check_request(m.name, target=True)
    except ConfigError as e:
        return str(e)
    return None


def _measure_fn(torch_fn, words, sets):
    pos = {w: i for i, w in enumerate(words)}
    idx = [torch.tensor([pos[w] for w in s]) for s in sets]

    def fn(M: torch.Tensor) -> torch.Tensor:
        return torch_fn(*(M[i] for i in idx))
    return fn


def resample_target(target: BiasTarget, rng: np.random.Generator) -> BiasTarget:
    """The measure with each word set resampled with replacement (the words' bootstrap): a WEAT test's X, Y, A and
    B, a query's toward and away words. It reads the same rows; a word drawn twice weighs twice."""
    pos = {w: i for i, w in enumerate(target.words)}
    if target.sets:             # a measure_target: each set resampled, X and Y as pairs where the measure pairs them
        xs, ys, a, b = (list(s) for s in target.sets)
        ix = rng.integers(0, len(xs), len(xs))
        iy = ix if get_measure(target.kind).paired else rng.integers(0, len(ys), len(ys))
        ia, ib = rng.integers(0, len(a), len(a)), rng.integers(0, len(b), len(b))
        drawn = tuple(tuple(s[i] for i in it) for s, it in ((xs, ix), (ys, iy), (a, ia), (b, ib)))
        fn = _measure_fn(get_measure(target.kind).torch_fn, target.words, drawn)
    else:
        word = target.words[0]
        toward, away = target.query_sets
        T = torch.tensor([pos[word]])
        A = torch.tensor([pos[w] for w in rng.choice(list(toward), size=len(toward))])
        B = torch.tensor([pos[w] for w in rng.choice(list(away), size=len(away))]) if away else None

        def fn(M: torch.Tensor) -> torch.Tensor:
            t = M[T] / M[T].norm(dim=1, keepdim=True)
            toward_cos = (t @ (M[A] / M[A].norm(dim=1, keepdim=True)).T).mean()
            if B is None:
                return toward_cos
            return toward_cos - (t @ (M[B] / M[B].norm(dim=1, keepdim=True)).T).mean()
    from dataclasses import replace
    return replace(target, fn=fn)
