"""What influence scoring returns: every document's predicted change of every bias measure, and the views the
outputs are built from (the top documents both ways, the share each test word carries).

Sign convention: ``delta_bias_if_removed(d) = grad B^T H^-1 grad L_d`` is the predicted change of B if document d
is removed and the model retrained (negative: d drives B up); ``delta_bias_if_upweighted(d)`` is the change with one
more copy of d (its negative where the loss is linear in documents; computed from the changed counts for GloVe).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .estimators import EstimatorConfig


class DocWords:
    """Document index -> the indices of the test words it holds, as two sorted integer arrays (a dict of tuples
    would cost ~200 bytes per entry on a large corpus)."""

    def __init__(self, docs: np.ndarray, words: np.ndarray):
        order = np.lexsort((words, docs))
        self.docs, self.words = np.asarray(docs)[order], np.asarray(words)[order]

    def get(self, i: int, default=()):
        a, b = np.searchsorted(self.docs, [i, i + 1])
        return tuple(self.words[a:b].tolist()) if b > a else default

    def __contains__(self, i) -> bool:
        a, b = np.searchsorted(self.docs, [i, i + 1])
        return bool(b > a)

    def __len__(self) -> int:
        return len(np.unique(self.docs))

    def __bool__(self) -> bool:
        return len(self.docs) > 0

    def __eq__(self, other) -> bool:
        if not isinstance(other, DocWords):
            return NotImplemented
        return np.array_equal(self.docs, other.docs) and np.array_equal(self.words, other.words)

    __hash__ = None


@dataclass(frozen=True)
class DocumentScores:
    """Scores of all documents for each bias measure (arrays aligned with ``doc_ids``): what an estimator gives.
    (Named ``ScoreResult`` before; that name stays importable here, while ``biasaudit.api.ScoreResult`` is what
    ``score`` returns, a result folder.)"""
    doc_ids: list[str]
    delta_bias_if_removed: dict[str, np.ndarray]
    bias_value: dict[str, float]
    word_contributions: dict[str, dict[str, float]]   # predicted total change carried by each test word
    doc_words: "DocWords | dict"                       # doc index -> vocabulary indices of test words it holds
    estimator: EstimatorConfig
    solver_info: dict[str, dict]
    timings: dict[str, float] = field(default_factory=dict)
    upweighted: dict[str, np.ndarray] | None = None   # computed separately where the loss is not linear in
                                                      # the document (GloVe); else the negative of removal
    words: tuple[str, ...] | None = None              # what doc_words indexes when not the model's vocabulary (LM)
    predictor: object | None = field(default=None, repr=False, compare=False)   # group predictions (predict.py)
    basis: object | None = field(default=None, repr=False, compare=False)       # rescoring (stability.py)

    def delta_bias_if_upweighted(self, name: str) -> np.ndarray:
        if self.upweighted is not None:
            return self.upweighted[name]
        return -self.delta_bias_if_removed[name]


ScoreResult = DocumentScores     # the former name, kept for compatibility


def test_word_ids(result: DocumentScores, target) -> set[int]:
    """The indices (into the vocabulary, or ``result.words`` for LMs) of the words ``target`` reads."""
    if result.words is not None:
        pos = {w: i for i, w in enumerate(result.words)}
        return {pos[w] for w in target.words if w in pos}
    return set(int(i) for i in target.rows)


RARE_COUNT = 100


def word_shares(result: DocumentScores, name: str, vocab) -> tuple[list[dict], str | None]:
    """Share of the predicted total change carried by each test word, with corpus frequency, and a warning when
    words seen fewer than RARE_COUNT times carry most of it."""
    contrib = result.word_contributions[name]
    total_abs = sum(abs(v) for v in contrib.values()) or 1.0
    rows = [{"word": w, "contribution": v, "share_abs": abs(v) / total_abs,
             "corpus_count": vocab.count(w) if w in vocab else None} for w, v in contrib.items()]
    rows.sort(key=lambda r: -r["share_abs"])
    rare = sum(r["share_abs"] for r in rows if r["corpus_count"] is not None and r["corpus_count"] < RARE_COUNT)
    warning = None
    if rare > 0.5:
        words = ", ".join(f"{r['word']} ({r['corpus_count']})" for r in rows
                          if r["corpus_count"] is not None and r["corpus_count"] < RARE_COUNT)
        warning = (f"{rare:.0%} of the predicted change goes through words seen fewer than {RARE_COUNT} times "
                   f"({words}): removals may move these vectors without changing the association in general")
    return rows, warning


def top_documents(result: DocumentScores, name: str, n: int, evidence: dict | None = None) -> dict[str, list[int]]:
    """Indices of the n documents that most increase the measure (most negative delta_bias_if_removed) and the
    n that most decrease it; with ``evidence`` (document -> stability-aware score, ``stability.py``), ordered by
    it (documents whose influence most resamples grant come first; the rest follow by score)."""
    s = result.delta_bias_if_removed[name]
    order = np.argsort(s, kind="stable")
    up = [int(i) for i in order if s[i] < 0]
    down = [int(i) for i in order[::-1] if s[i] > 0]
    if evidence:
        def by_evidence(idx, sign):
            strong = sorted((i for i in idx if evidence.get(i, 0.0) * sign > 0), key=lambda i: -sign * evidence[i])
            chosen = set(strong)
            return strong + [i for i in idx if i not in chosen]
        up, down = by_evidence(up[:max(n, 500)], -1), by_evidence(down[:max(n, 500)], 1)
    return {"increase_bias": up[:n], "decrease_bias": down[:n]}
