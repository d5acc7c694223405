"""Bias measures of word vectors beyond WEAT: RIPA, Direct Bias, RND, MAC, ECT and RNSB, each as published and as
WEFE 1.0.1 computes it on the same vectors (tests/test_measures.py checks both), in float64 NumPy (the reported
numbers), with torch twins of the differentiable ones (RIPA, Direct Bias, RND, MAC: influence targets).

One BiasTest (targets X, Y; attributes A, B; positive when X goes with A and Y with B) feeds every measure:

- RIPA, the relational inner product association (Ethayarajh, Duvenaud & Hirst 2019, "Understanding Undesirable
  Word Embedding Associations", ACL). X and Y pair word by word, in order: (x_i, y_i). Each pair's relation vector
  is b_i = (x_i - y_i) / ||x_i - y_i|| and a word's association r(w) = mean_i <w, b_i>, on the raw vector w (the
  paper keeps w unnormalised on purpose; one pair is the paper's case, the mean over pairs is WEFE's).
  value = mean_A r - mean_B r = WEFE's RIPA of the query ([X, Y], [A]) minus that of ([X, Y], [B]).
  Signed: positive when A sits on X's side of the X-Y relation and B on Y's.
- Direct Bias (Bolukbasi, Chang, Zou, Saligrama & Kalai 2016, "Man is to Computer Programmer as Woman is to
  Homemaker? Debiasing Word Embeddings", NeurIPS). The bias direction g is the first principal component of the
  pairs (x_i, y_i) of unit vectors, each centred on its own mean (the paper's doPCA; WEFE's HardDebias
  ``bias_direction_``); DirectBias_c = mean over w in A u B of |cos(w, g)|^c, strictness c = 1 by default.
  Unsigned, in [0, 1]; 0 when no measured word leans along g.
- RND, the relative norm distance (Garg, Schiebinger, Jurafsky & Zou 2018, "Word embeddings quantify 100 years of
  gender and ethnic stereotypes", PNAS). r(w) = ||w - mean X|| - ||w - mean Y|| on the raw vectors (WEFE's
  distance "norm"); WEFE's RND of ([X, Y], [A]) is mean_A r (the paper sums; the mean is that sum / |A|).
  value = mean_B r - mean_A r, so that it carries the package's sign: positive when A is nearer X and B nearer Y.
- MAC, the mean average cosine distance (Manzini, Lim, Tsvetkov & Black 2019, "Black is to Criminal as Caucasian
  is to Police: Detecting and Removing Multiclass Bias in Word Embeddings", NAACL). The mean over t in X u Y and
  over the sets S in (A, B) of mean_{a in S} (1 - cos(t, a)) (scipy's cosine distance): WEFE's MAC of the query
  ([X, Y], [A, B]). Unsigned, in [0, 2]; the paper reads a higher MAC as less bias; it has no "no bias" point.
- ECT, the embedding coherence test (Dev & Phillips 2019, "Attenuating Bias in Word Vectors", AISTATS). The
  Spearman correlation, over w in A u B, of cos(mean X, w) and cos(mean Y, w) (ties ranked by their mean rank):
  WEFE's ECT of ([X, Y], [A u B]). In [-1, 1]; 1 when X and Y rank the attribute words alike (no bias).
- RNSB, the relative negative sentiment bias (Sweeney & Najafian 2019, "A Transparent Framework for Evaluating
  Unintended Demographic Bias in Word Embeddings", ACL). A logistic regression tells A (label +1) from B (label
  -1, WEFE's second, "negative" set); p(t) = P(B | t) for t in X u Y, normalised to sum 1; RNSB = KL(p || uniform)
  in nats. Unsigned, >= 0; 0 when every target word is equally B-like. The classifier is sklearn's liblinear
  logistic regression as WEFE uses it (C = 1, the intercept a feature of scale 1, penalised with the weights),
  solved here to convergence by Newton's method on all A u B words: it has no randomness, so the value does not
  depend on a seed (WEFE's default 80/20 hold-out split, which does, is not used; WEFE's ``holdout=False``).

Uncertainty (``measure``):
- a percentile bootstrap CI over words: each set resampled with replacement (X and Y as pairs for RIPA and Direct
  Bias), the value recomputed; resamples where it is undefined (a constant ranking for ECT) are left out.
- a one-sided permutation p for the signed measures (RIPA, RND): over the equal-size re-partitions of A u B into
  |A| and |B| words (the observed one included; exact up to 100,000 partitions, else seeded Monte Carlo), the share
  whose mean_A - mean_B of the words' X-side association is >= the observed (WEAT's machinery). The unsigned ones
  have no null value a permutation could test: their p is None.
"""
from __future__ import annotations

import numpy as np
import torch

from ..errors import BiasAuditError, ConfigError
from ..wordsets import SET_FIELDS, BiasTest
from .registry import MEASURES, Measure, get_measure, register
from .result import MeasureResult
from .weat import BOOTSTRAP_CHUNK, _unit, permutation_p_value

__all__ = ["MEASURES", "get_measure", "measure", "read_with", "value_on_vectors", "values_on_vectors"]


# ---------------------------------------------------------------- float64 references
def ripa_scores(X, Y, W) -> np.ndarray:
    """r(w) = mean_i <w, (x_i - y_i) / ||x_i - y_i||> for each row w of W (Ethayarajh et al. 2019)."""
    X, Y, W = (np.asarray(M, dtype=np.float64) for M in (X, Y, W))
    diff = X - Y                                            # (n_pairs, dim)
    norms = np.linalg.norm(diff, axis=1, keepdims=True)
    if np.any(norms == 0):
        raise BiasAuditError("a target pair has identical vectors: its relation vector is undefined")
    return (W @ (diff / norms).T).mean(axis=1)              # (n_w,)


def ripa(X, Y, A, B) -> float:
    return float(ripa_scores(X, Y, A).mean() - ripa_scores(X, Y, B).mean())


def bias_direction(X, Y) -> np.ndarray:
    """Bolukbasi et al.'s direction: the first principal component of the pairs of unit vectors, each centred on its
    pair's mean. The centred rows are +-(x_i - y_i) / 2, so it is the top right singular vector of those halves;
    its sign is chosen so that the pairs' mean difference projects positively (|cos| ignores it)."""
    D = (_unit(X) - _unit(Y)) / 2                           # (n_pairs, dim)
    g = np.linalg.svd(D, full_matrices=False)[2][0]
    return g if D.sum(axis=0) @ g >= 0 else -g


def direct_bias(X, Y, W, c: float = 1.0) -> float:
    return float(np.mean(np.abs(_unit(W) @ bias_direction(X, Y)) ** c))


def rnd_scores(X, Y, W) -> np.ndarray:
    """r(w) = ||w - mean X|| - ||w - mean Y|| for each row w of W (Garg et al. 2018; negative: nearer X)."""
    X, Y, W = (np.asarray(M, dtype=np.float64) for M in (X, Y, W))
    return np.linalg.norm(W - X.mean(axis=0), axis=1) - np.linalg.norm(W - Y.mean(axis=0), axis=1)


def rnd(X, Y, A, B) -> float:
    return float(rnd_scores(X, Y, B).mean() - rnd_scores(X, Y, A).mean())


def mac(X, Y, A, B) -> float:
    """Mean over t in X u Y and S in (A, B) of mean_{a in S} (1 - cos(t, a)) (Manzini et al. 2019)."""
    T = _unit(np.concatenate([np.asarray(X, dtype=np.float64), np.asarray(Y, dtype=np.float64)]))
    per_set = [(1 - T @ _unit(S).T).mean(axis=1) for S in (A, B)]     # each (n_t,)
    return float(np.mean(per_set))


def _ranks(v: np.ndarray) -> np.ndarray:
    from scipy.stats import rankdata
    return rankdata(v)          # ties: the mean of the ranks they span (Spearman's convention, scipy's)


def ect(X, Y, W) -> float:
    """Spearman correlation over w in W of cos(mean X, w) and cos(mean Y, w) (Dev & Phillips 2019)."""
    Wn = _unit(W)
    sx = Wn @ _unit(np.asarray(X, dtype=np.float64).mean(axis=0, keepdims=True))[0]
    sy = Wn @ _unit(np.asarray(Y, dtype=np.float64).mean(axis=0, keepdims=True))[0]
    rx, ry = _ranks(sx), _ranks(sy)
    if rx.std() == 0 or ry.std() == 0:
        raise BiasAuditError("ECT: a target set's similarities to the attribute words are all equal: Spearman's "
                             "correlation is undefined")
    return float(np.corrcoef(rx, ry)[0, 1])


def logistic_fit(Z: np.ndarray, y: np.ndarray, C: float = 1.0, tol: float = 1e-12, max_iter: int = 100,
                 w0: np.ndarray | None = None) -> np.ndarray:
    """argmin_w 0.5 ||w||^2 + C sum_i log(1 + exp(-y_i <w, z_i>)): liblinear's L2 logistic regression (sklearn's
    ``LogisticRegression(solver="liblinear")``; ``Z`` carries the intercept column), by Newton's method with a
    backtracking line search. The Newton system uses Woodbury's identity: n x n, as there are fewer words than
    dimensions. ``w0``: where to start (the optimum does not depend on it)."""
    Z, y = np.asarray(Z, dtype=np.float64), np.asarray(y, dtype=np.float64)
    n, d = Z.shape
    w = np.zeros(d) if w0 is None else np.array(w0, dtype=np.float64)

    def loss(w):
        return 0.5 * w @ w + C * np.logaddexp(0.0, -y * (Z @ w)).sum()

    g0 = np.linalg.norm(Z.T @ y) * C         # the gradient at w = 0: the scale the tolerance is relative to
    for _ in range(max_iter):
        m = y * (Z @ w)
        sig = 0.5 * (1 - np.tanh(m / 2))                   # sigma(-m), stable for large |m|
        g = w - C * Z.T @ (y * sig)                         # (d,)
        if np.linalg.norm(g) <= tol * max(1.0, g0):
            break
        D = C * sig * (1 - sig)                             # (n,)
        # H = I + Z^T D Z;  H^-1 g = g - Z^T (I + D Z Z^T)^-1 D Z g
        step = g - Z.T @ np.linalg.solve(np.eye(n) + D[:, None] * (Z @ Z.T), D * (Z @ g))
        t, f = 1.0, loss(w)
        while loss(w - t * step) > f - 1e-4 * t * (g @ step) and t > 1e-10:
            t /= 2
        w = w - t * step
    return w


def attribute_classifier(A, B, w0: np.ndarray | None = None) -> np.ndarray:
    """RNSB's classifier: the weights, intercept last, of the logistic regression of A (+1) against B (-1)."""
    A, B = np.asarray(A, dtype=np.float64), np.asarray(B, dtype=np.float64)
    Z = np.concatenate([A, B])
    Z = np.hstack([Z, np.ones((len(Z), 1))])                # the intercept as a feature of scale 1 (liblinear)
    y = np.concatenate([np.ones(len(A)), -np.ones(len(B))])
    return logistic_fit(Z, y, w0=w0)


def negative_probabilities(X, Y, A, B, w0: np.ndarray | None = None) -> np.ndarray:
    """P(B | t) for t in X then Y, from the logistic regression of A (+1) against B (-1)."""
    w = attribute_classifier(A, B, w0)
    T = np.concatenate([np.asarray(X, dtype=np.float64), np.asarray(Y, dtype=np.float64)])
    return 0.5 * (1 - np.tanh((T @ w[:-1] + w[-1]) / 2))   # sigma(-(<w, t> + b))


def rnsb(X, Y, A, B, w0: np.ndarray | None = None) -> float:
    """KL(p || uniform) of the normalised P(B | t) over t in X u Y (Sweeney & Najafian 2019), in nats."""
    p = negative_probabilities(X, Y, A, B, w0)
    p = p / p.sum()
    nz = p > 0
    return float(np.sum(p[nz] * np.log(p[nz] * len(p))))


# ---------------------------------------------------------------- torch twins (differentiable)
def _unit_t(M: torch.Tensor) -> torch.Tensor:
    return M / M.norm(dim=-1, keepdim=True)


def ripa_torch(X: torch.Tensor, Y: torch.Tensor, A: torch.Tensor, B: torch.Tensor) -> torch.Tensor:
    b = _unit_t(X - Y)                                      # (n_pairs, dim)
    return (A @ b.T).mean() - (B @ b.T).mean()


def direct_bias_torch(X: torch.Tensor, Y: torch.Tensor, W: torch.Tensor, c: float = 1.0) -> torch.Tensor:
    """Direct Bias with g from the top eigenvector of the pairs' small Gram matrix (n_pairs x n_pairs, whose
    eigenvalues are distinct in general, so the derivative exists), g = D^T u / ||D^T u||."""
    D = (_unit_t(X) - _unit_t(Y)) / 2                       # (n_pairs, dim)
    u = torch.linalg.eigh(D @ D.T)[1][:, -1]                # (n_pairs,): the largest eigenvalue's vector
    g = _unit_t(D.T @ u)                                    # (dim,)
    return ((_unit_t(W) @ g).abs() ** c).mean()


def rnd_torch(X: torch.Tensor, Y: torch.Tensor, A: torch.Tensor, B: torch.Tensor) -> torch.Tensor:
    mx, my = X.mean(dim=0), Y.mean(dim=0)

    def r(W):
        return (W - mx).norm(dim=1) - (W - my).norm(dim=1)
    return r(B).mean() - r(A).mean()


def mac_torch(X: torch.Tensor, Y: torch.Tensor, A: torch.Tensor, B: torch.Tensor) -> torch.Tensor:
    T = _unit_t(torch.cat([X, Y]))
    return torch.stack([(1 - T @ _unit_t(S).T).mean(dim=1) for S in (A, B)]).mean()


# ---------------------------------------------------------------- the rows (``registry``)
EmbeddingMeasure = Measure      # the name the rows had before WEAT joined them


def _db(X, Y, A, B):
    return direct_bias(X, Y, np.concatenate([A, B]))


def _db_torch(X, Y, A, B):
    return direct_bias_torch(X, Y, torch.cat([A, B]))


def _ect(X, Y, A, B):
    return ect(X, Y, np.concatenate([A, B]))


def _rnd_x_side(X, Y, W):
    return -rnd_scores(X, Y, W)        # > 0: nearer X


def _ect_bootstrap(X, Y, A, B, ix, iy, ia, ib) -> np.ndarray:
    """ECT on the resamples in one vectorised pass: ranking per resample is the slow part."""
    n_boot = len(ix)
    W = _unit(np.concatenate([A, B]))
    iw = np.concatenate([ia, ib + len(A)], axis=1)                      # (n_boot, n_w)
    sims = []
    # in chunks of resamples (each (step, n_w, dim) block under BOOTSTRAP_CHUNK values): memory stays flat
    step = max(1, BOOTSTRAP_CHUNK // max(1, iw.shape[1] * W.shape[1], ix.shape[1] * X.shape[1]))
    for T, it in ((X, ix), (Y, iy)):
        parts = []
        for i in range(0, max(n_boot, 1), step):
            c = T[it[i:i + step]].mean(axis=1)                          # (step, dim)
            c = c / np.linalg.norm(c, axis=1, keepdims=True)
            parts.append(np.einsum("bwd,bd->bw", W[iw[i:i + step]], c))  # (step, n_w)
        sims.append(np.concatenate(parts))                              # (n_boot, n_w)
    from scipy.stats import rankdata
    rx, ry = (rankdata(s, axis=1) for s in sims)
    rx, ry = rx - rx.mean(axis=1, keepdims=True), ry - ry.mean(axis=1, keepdims=True)
    den = np.sqrt((rx ** 2).sum(axis=1) * (ry ** 2).sum(axis=1))
    ok = den > 0
    return (rx * ry).sum(axis=1)[ok] / den[ok]


def _rnsb_bootstrap(X, Y, A, B, ix, iy, ia, ib) -> np.ndarray:
    """RNSB on the resamples, each fit starting from the full sample's optimum: fewer Newton steps."""
    w_full = attribute_classifier(A, B)
    return _resampled(lambda X, Y, A, B: rnsb(X, Y, A, B, w_full), X, Y, A, B, ix, iy, ia, ib)


ROWS = tuple(register(m) for m in (
    Measure("ripa", "RIPA", "Ethayarajh, Duvenaud & Hirst 2019", ripa, ripa_torch, True, True,
            "mean_A - mean_B of <w, unit(x_i - y_i)>; > 0: A on X's side, B on Y's", p_scores=ripa_scores,
            convention="mean_A r - mean_B r, r(w) = mean over pairs (x_i, y_i) of <w, (x_i - y_i) / ||x_i - y_i||> "
                       "(Ethayarajh et al. 2019); positive when A is on X's side and B on Y's"),
    Measure("direct-bias", "Direct Bias", "Bolukbasi et al. 2016", _db, _db_torch, False, True,
            "mean |cos| of the A u B words with the X-Y direction; 0: none leans along it", bound=1.0,
            convention="mean over w in A u B of |cos(w, g)|, g the first principal component of the centred unit "
                       "X-Y pairs (Bolukbasi et al. 2016); unsigned, 0 to 1"),
    Measure("rnd", "RND", "Garg et al. 2018", rnd, rnd_torch, True, False,
            "mean_B - mean_A of ||w - mean X|| - ||w - mean Y||; > 0: A nearer X, B nearer Y", p_scores=_rnd_x_side,
            convention="mean_B r - mean_A r, r(w) = ||w - mean X|| - ||w - mean Y|| (Garg et al. 2018); positive "
                       "when A is nearer X and B nearer Y"),
    Measure("mac", "MAC", "Manzini et al. 2019", mac, mac_torch, False, False,
            "mean cosine distance of X u Y to A and B; higher reads as less bias, no zero point", bound=2.0,
            convention="mean over t in X u Y and S in (A, B) of mean_S cosine distance (Manzini et al. 2019); "
                       "unsigned, 0 to 2"),
    Measure("ect", "ECT", "Dev & Phillips 2019", _ect, None, False, False,
            "Spearman correlation of the A u B words' similarity to mean X and to mean Y; 1: no bias", bound=1.0,
            convention="Spearman correlation over A u B of cos(mean X, w) and cos(mean Y, w) (Dev & Phillips "
                       "2019); 1: no bias", no_derivative="rank correlation", bootstrap=_ect_bootstrap),
    Measure("rnsb", "RNSB", "Sweeney & Najafian 2019", rnsb, None, False, False,
            "KL divergence from uniform of P(B | t) over X u Y; 0: no bias",
            convention="KL(p || uniform) of p(t) = P(B | t) normalised over X u Y, logistic regression of A against "
                       "B (Sweeney & Najafian 2019); 0: no bias", no_derivative="a fitted classifier",
            bootstrap=_rnsb_bootstrap),
))
# views of this module's rows (tests and callers that list them)
EMBEDDING_MEASURES = tuple(m.name for m in ROWS)
DIFFERENTIABLE = tuple(m.name for m in ROWS if m.differentiable)
SIGNED = tuple(m.name for m in ROWS if m.signed)
PAIRED = tuple(m.name for m in ROWS if m.paired)        # X and Y pair word by word


def read_with(test: BiasTest, name: str) -> BiasTest:
    """``test`` read with measure ``name`` (a row of MEASURES): the measure is carried by the test, so scoring,
    re-measuring and retraining checks all read the same one."""
    m = get_measure(name)
    return test.with_measure(m.name, paired=m.paired)


def value_on_vectors(key_to_index: dict, vectors: np.ndarray, test: BiasTest) -> float | None:
    """The value of the measure ``test`` carries (WEAT's effect size by default) on its in-vocabulary words (paired
    measures: the pairs with both words); None when a set keeps fewer than 2 words or the measure is undefined
    there."""
    m = get_measure(test.measure)
    try:
        kept, _ = test.restrict(key_to_index, allow_oov=True)
        sets = measure_sets(m.name, kept)
    except BiasAuditError:
        return None
    X, Y, A, B = (np.asarray(vectors[[key_to_index[w] for w in ws]], dtype=np.float64) for ws in sets)
    try:
        v = m.value(X, Y, A, B)
    except BiasAuditError:
        return None
    return float(v) if np.isfinite(v) else None


TRANSFER_MEASURES = ("weat", "ripa", "direct-bias", "rnd")   # every retrained model reports these (experiments)


def values_on_vectors(key_to_index: dict, vectors: np.ndarray, test: BiasTest,
                      names: tuple = TRANSFER_MEASURES) -> dict:
    """{measure: value} of ``test``'s words read with each of ``names`` (None where a measure cannot read them:
    X and Y of different sizes for the paired ones, or too few words left): how a retrained model moved on
    measures other than the one the documents were ranked by."""
    out = {}
    for name in names:
        try:
            t = read_with(test, name)
        except ConfigError:
            out[name] = None
            continue
        out[name] = value_on_vectors(key_to_index, vectors, t)
    return out


def pair_words(original: BiasTest, kept: BiasTest) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """X and Y as pairs, in order, keeping a pair only when both its words were kept: the paired measures' sets.
    Raises ConfigError when X and Y differ in size (they cannot pair), BiasAuditError when under 2 pairs stay."""
    xs, ys = original.target_x.words, original.target_y.words
    if len(xs) != len(ys):
        raise ConfigError(f"test {original.name!r}: RIPA and Direct Bias pair X and Y word by word, in order; X has "
                          f"{len(xs)} words and Y {len(ys)}")
    kx, ky = set(kept.target_x.words), set(kept.target_y.words)
    pairs = [(x, y) for x, y in zip(xs, ys) if x in kx and y in ky]
    if len(pairs) < 2:
        raise BiasAuditError(f"test {original.name!r}: {len(pairs)} X-Y pair(s) left with both words in the model; "
                             "at least 2 are needed")
    return tuple(p[0] for p in pairs), tuple(p[1] for p in pairs)


def _lookup(vectors):
    if hasattr(vectors, "key_to_index"):
        k2i, M = vectors.key_to_index, np.asarray(vectors.vectors)
        return lambda ws: np.asarray(M[[k2i[w] for w in ws]], dtype=np.float64), k2i
    return lambda ws: np.stack([np.asarray(vectors[w], dtype=np.float64) for w in ws]), vectors


def bootstrap(m: EmbeddingMeasure, X, Y, A, B, n_boot: int = 1000, seed: int = 0) -> np.ndarray:
    """The measure on ``n_boot`` resamplings (with replacement) of each set's words, X and Y as pairs for the paired
    measures; resamples where it is undefined are left out."""
    rng = np.random.default_rng(seed)
    ix = rng.integers(0, len(X), (n_boot, len(X)))
    iy = ix if m.paired else rng.integers(0, len(Y), (n_boot, len(Y)))
    ia, ib = rng.integers(0, len(A), (n_boot, len(A))), rng.integers(0, len(B), (n_boot, len(B)))
    if m.bootstrap is not None:      # a measure with a faster way through the same resamples (ECT, RNSB)
        return m.bootstrap(X, Y, A, B, ix, iy, ia, ib)
    return _resampled(m.value, X, Y, A, B, ix, iy, ia, ib)


def _resampled(value, X, Y, A, B, ix, iy, ia, ib) -> np.ndarray:
    """``value`` on each resample (row k of the index arrays); undefined ones left out."""
    out = []
    for k in range(len(ix)):
        try:
            v = value(X[ix[k]], Y[iy[k]], A[ia[k]], B[ib[k]])
        except BiasAuditError:
            continue
        if np.isfinite(v):
            out.append(v)
    return np.asarray(out)


def measure(name: str, vectors, test: BiasTest, allow_oov: bool = False, n_permutations: int = 100_000,
            n_bootstrap: int = 1000, ci_level: float = 0.95, seed: int = 0, model_seed: int | None = None,
            original: BiasTest | None = None) -> MeasureResult:
    """One measure of ``test`` on word vectors (a mapping word -> vector, or an object with ``key_to_index`` and
    ``vectors``), with its bootstrap CI over words and, for RIPA and RND, its permutation p (module docstring).

    ``original``: the test before words missing from the model were dropped, so that the paired measures drop a
    pair with either of its words (default: ``test``). Missing words raise VocabularyError unless ``allow_oov``."""
    m = get_measure(name)
    if m.stats is not None:          # a measure with its own statistics (WEAT: permutations of the target words)
        return m.stats(vectors, test, allow_oov=allow_oov, n_permutations=n_permutations, n_bootstrap=n_bootstrap,
                       ci_level=ci_level, seed=seed, model_seed=model_seed)
    lookup, vocab = _lookup(vectors)
    kept, _ = test.restrict(vocab, allow_oov)
    original = original or test
    dropped = {f: gone for f, so, sk in zip(SET_FIELDS, original.sets, kept.sets)
               if (gone := [w for w in so.words if w not in sk.words])}
    x_words, y_words = pair_words(original, kept) if m.paired else (kept.target_x.words, kept.target_y.words)
    unpaired = [w for s, ws in ((kept.target_x, x_words), (kept.target_y, y_words)) for w in s.words if w not in ws]
    X, Y = lookup(x_words), lookup(y_words)
    A, B = lookup(kept.attribute_a.words), lookup(kept.attribute_b.words)
    value = m.value(X, Y, A, B)

    p, exact, n_used, se = None, None, 0, 0.0
    if m.p_scores is not None:
        s = np.concatenate([m.p_scores(X, Y, A), m.p_scores(X, Y, B)])   # X-side association of each attribute word
        p, exact, n_used, se = permutation_p_value(s, len(A), n_permutations, seed)

    boots = bootstrap(m, X, Y, A, B, n_bootstrap, seed)
    if len(boots) < max(10, n_bootstrap // 2):
        lo = hi = value
    else:
        lo, hi = np.quantile(boots, [(1 - ci_level) / 2, 1 - (1 - ci_level) / 2])
    sizes = {"x": len(X), "y": len(Y), "a": len(A), "b": len(B)}
    if m.paired:
        sizes["pairs"] = len(X)
    return MeasureResult(test.name, float(value), None, p, exact, n_used, se, float(lo), float(hi), ci_level,
                         len(boots), sizes, dropped, model_seed, metric=m.name,
                         extra={"label": m.label, "citation": m.citation, "signed": m.signed,
                                **({"unpaired_words": unpaired} if unpaired else {})})


# ---------------------------------------------------------------- influence targets
def measure_sets(name: str, test: BiasTest, original: BiasTest | None = None) -> tuple[tuple[str, ...], ...]:
    """The words of X, Y, A, B the measure reads (X and Y as pairs for the paired measures)."""
    m = get_measure(name)
    if m.paired:
        xs, ys = pair_words(original or test, test)
    else:
        xs, ys = test.target_x.words, test.target_y.words
    return xs, ys, test.attribute_a.words, test.attribute_b.words

