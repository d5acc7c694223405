"""The lexical floor (``--estimator lexical``): documents ranked by how often they put a test's target words near
its attribute words, signed by which pairing they support. No model enters; it is the baseline every estimator has
to beat (the public MAGIC figures put BM25 at LDS 0.22 on a GPT-2 fine-tune, EK-FAC 0.45, MAGIC 0.93-0.98).

Decided here:
- Co-occurrence, not document-level BM25: a document that pairs X with A and Y with B in one text names all four
  sets, and any product of per-set weights, (T_X - T_Y)(T_A - T_B), cancels it to 0. So a target word followed by
  an attribute word within ``WINDOW`` = 5 tokens (the corpus's own tokenizer) counts, 1/distance (GloVe's
  weighting), times both words' BM25 idf log(1 + (N - n + 0.5) / (n + 0.5)), over BM25's length term
  1 - b + b len/avg_len (b = 0.75). Only the target-first order counts: sentence ends are gone from the tokens, and
  "X studied A . Y loved B" puts A next to Y, the wrong pairing, at distance 1.
- Signs: +1 for X-A and Y-B pairs (the pairing that makes a WEAT-shaped effect size positive), -1 for X-B and Y-A.
  A word query pairs its words (X) with toward (A) and away (B) words; a paired-sentence measure pairs, for each
  pair, the words only the stereotyping sentence holds (X) and only the other holds (Y) with the words both share
  (A).
- Scores follow every estimator's convention, delta_bias_if_removed = -c s(d), with c scaling the absolute scores
  to sum to |B| (the measure's value): a magnitude with no meaning beyond the ranking (group predictions are the
  clipped linear sum, as magic's).
"""
from __future__ import annotations

import math
import time

import numpy as np
import torch

from .estimators import EstimatorConfig
from .result import ScoreResult

WINDOW, B_LEN = 5, 0.75


def _sides(measure) -> list[tuple[tuple, tuple, tuple, tuple]]:
    """The (X, Y, A, B) word groups whose pairing the measure reads (several for paired sentences)."""
    from ..tokens import tokenize
    test = getattr(measure, "test", None)
    if test is not None and getattr(measure, "kind", "") != "query":
        return [tuple(tuple(s.words) for s in test.sets)]
    toward, away = getattr(measure, "query_sets", ((), ()))
    if toward or away:
        queried = tuple(w for w in measure.words if w not in set(toward) | set(away))
        return [(queried, (), tuple(toward), tuple(away))]
    out = []
    for more, less in getattr(measure, "pairs", ()):
        m, l_ = tokenize(more), tokenize(less)
        shared = tuple(sorted(set(m) & set(l_)))
        out.append((tuple(sorted(set(m) - set(l_))), tuple(sorted(set(l_) - set(m))), shared, ()))
    return out


def cooccurrence_support(corpus, measures, window: int = WINDOW) -> tuple[list[str], dict[str, np.ndarray]]:
    """Every document's support s(d) for each measure (see the module docstring): (doc ids, {name: (n_docs,)})."""
    groups = {m.name: _sides(m) for m in measures}
    words = sorted({w for gs in groups.values() for g in gs for side in g for w in side})
    wpos = {w: k for k, w in enumerate(words)}
    # sign[name][k, l] = +1 where (word k, word l) is a pairing the measure reads as positive, -1 the other way
    signs = {}
    for name, gs in groups.items():
        S = np.zeros((len(words), len(words)))
        for X, Y, A, B in gs:
            for side_t, side_a, sg in ((X, A, 1.0), (Y, B, 1.0), (X, B, -1.0), (Y, A, -1.0)):
                for t in side_t:
                    for a in side_a:
                        if t != a:
                            S[wpos[t], wpos[a]] += sg        # the target first: "he studied math"
        signs[name] = S
    doc_ids, lengths, hits = [], [], []
    df = np.zeros(len(words))
    for d in corpus:
        toks = corpus.tokenizer(d)
        doc_ids.append(d.id)
        lengths.append(len(toks))
        at = [(i, wpos[t]) for i, t in enumerate(toks) if t in wpos]       # positions of the tests' words
        hits.append(at)
        for k in {k for _, k in at}:
            df[k] += 1
    n = len(doc_ids)
    idf = np.log1p((n - df + 0.5) / (df + 0.5))
    lengths = np.asarray(lengths, dtype=np.float64)
    norm = 1 - B_LEN + B_LEN * lengths / max(float(lengths.mean()) if n else 1.0, 1e-12)     # BM25's length term
    support = {name: np.zeros(n) for name in groups}
    for i, at in enumerate(hits):
        if len(at) < 2:
            continue
        pairs = np.zeros((len(words), len(words)))
        for a in range(len(at)):
            pa, ka = at[a]
            for b in range(a + 1, len(at)):
                pb, kb = at[b]
                if pb - pa > window:
                    break
                pairs[ka, kb] += 1.0 / (pb - pa)
        pairs *= np.outer(idf, idf)
        for name, S in signs.items():
            support[name][i] = float((pairs * S).sum()) / norm[i]
    return doc_ids, support


def _value(model, measure) -> float:
    """The measure's value on the model (what the scores are scaled to)."""
    with torch.no_grad():
        if hasattr(measure, "value"):          # a word-vector measure reads the embedding the family exposes
            return float(measure.value(torch.as_tensor(np.asarray(model.vectors))))
        return float(measure.fn(model.net))


def score_lexical(model, corpus, measures: list, estimator: EstimatorConfig, progress=None, **_) -> ScoreResult:
    """Every document's lexical-floor score for each measure (see the module docstring)."""
    from .ensemble import LinearPredictor

    t0 = time.perf_counter()
    if progress:
        progress("lexical: counting", 0, 1)
    doc_ids, support = cooccurrence_support(corpus, measures)
    if progress:
        progress("lexical: counting", 1, 1)
    values, scores, info = {}, {}, {}
    for m in measures:
        values[m.name] = _value(model, m)
        s = support[m.name]
        total = float(np.abs(s).sum())
        c = abs(values[m.name]) / total if total > 0 and math.isfinite(values[m.name]) else 0.0
        scores[m.name] = -c * s
        info[m.name] = {"estimator": estimator.label, "documents_with_support": int((s != 0).sum()),
                        "scale": c}
    words = tuple(dict.fromkeys(w for m in measures for w in m.words))
    pos = {w: i for i, w in enumerate(words)}
    doc_words = {}
    for i, d in enumerate(corpus):
        hit = {pos[t] for t in corpus.tokenizer(d) if t in pos}
        if hit:
            doc_words[i] = tuple(sorted(hit))
    result = ScoreResult(doc_ids, scores, values, {m.name: {} for m in measures}, doc_words, estimator, info,
                         {"lexical": time.perf_counter() - t0, "total": time.perf_counter() - t0}, words=words)
    from dataclasses import replace
    return replace(result, predictor=LinearPredictor(result, {m.name: m.bound for m in measures}))
