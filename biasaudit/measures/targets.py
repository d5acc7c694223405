"""Bias measures as differentiable functions of the input vectors: the test side of cross-loss influence.

- ``weat_target``: the WEAT effect size of a BiasTest (see ``biasaudit.measures.weat``).
- ``query_target``: a word query, mean cos(word, toward) - mean cos(word, away) ("which documents pull `nurse`
  toward `she`?"). Positive when the word sits nearer the ``toward`` words.
- ``measure_target``: RIPA, Direct Bias, RND or MAC of a BiasTest (``biasaudit.measures.embedding``'s torch twins;
  ECT's ranks and RNSB's fitted classifier have no useful derivative, so they cannot be targets).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from ..errors import ConfigError, VocabularyError
from ..vocab import Vocab
from ..wordsets import BiasTest
from .weat import effect_size_bound, weat_effect_size_torch


@dataclass(frozen=True)
class BiasTarget:
    """A scalar bias measure B(U) that reads only the rows ``rows`` of the input vectors U."""
    name: str
    kind: str                      # "weat" or "query"
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
    missing = test.missing(vocab)
    if missing:
        raise VocabularyError(f"test {test.name!r}: words not in the vocabulary: "
                              + "; ".join(f"{k}: {', '.join(v)}" for k, v in missing.items()))
    words = test.words
    rows = np.array([vocab.key_to_index[w] for w in words], dtype=np.int64)
    pos = {w: i for i, w in enumerate(words)}
    X, Y, A, B = (torch.tensor([pos[w] for w in s.words]) for s in test.sets)

    def fn(M: torch.Tensor) -> torch.Tensor:
        return weat_effect_size_torch(M[X], M[Y], M[A], M[B])

    return BiasTarget(test.name, "weat", rows, fn, test, test.description, tuple(words),
                      effect_size_bound(len(test.target_x.words), len(test.target_y.words)))


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
    """A differentiable embedding measure (ripa, direct-bias, rnd, mac) of ``test`` as an influence target: its
    torch twin over the rows of the words it reads. ``original``: the test before missing words were dropped (the
    paired measures then drop a pair with either word)."""
    from .embedding import get_measure, measure_sets

    m = get_measure(name)
    why = target_refusal(m)
    if why:
        raise ConfigError(why)
    sets = measure_sets(m.name, test, original)
    gone = [w for s in sets for w in s if w not in vocab]
    if gone:
        raise VocabularyError(f"test {test.name!r}: words not in the vocabulary: {', '.join(gone)}")
    words = tuple(dict.fromkeys(w for s in sets for w in s))
    rows = np.array([vocab.key_to_index[w] for w in words], dtype=np.int64)
    fn = _measure_fn(m.torch_fn, words, sets)
    return BiasTarget(test.name, m.name, rows, fn, test, f"{m.label} ({m.citation}): {m.reading}", words, m.bound,
                      sets=sets)


def target_refusal(m) -> str | None:
    """Why the embedding measure ``m`` cannot rank documents (None when it can)."""
    from .embedding import DIFFERENTIABLE

    if m.torch_fn is not None:
        return None
    return (f"{m.label} cannot be an influence target (no useful derivative: "
            f"{'rank correlation' if m.name == 'ect' else 'a fitted classifier'}); one of "
            f"{', '.join(DIFFERENTIABLE)}")


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
        from .embedding import get_measure

        xs, ys, a, b = (list(s) for s in target.sets)
        ix = rng.integers(0, len(xs), len(xs))
        iy = ix if get_measure(target.kind).paired else rng.integers(0, len(ys), len(ys))
        ia, ib = rng.integers(0, len(a), len(a)), rng.integers(0, len(b), len(b))
        drawn = tuple(tuple(s[i] for i in it) for s, it in ((xs, ix), (ys, iy), (a, ia), (b, ib)))
        fn = _measure_fn(get_measure(target.kind).torch_fn, target.words, drawn)
    elif target.kind == "weat":
        sets = [torch.tensor([pos[w] for w in rng.choice(list(s.words), size=len(s.words))])
                for s in target.test.sets]
        X, Y, A, B = sets

        def fn(M: torch.Tensor) -> torch.Tensor:
            return weat_effect_size_torch(M[X], M[Y], M[A], M[B])
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
