"""What an experiment does, decided before anything is trained: the conditions, the sizes k, the spec (frozen and
validated), and the edits each (estimator, test, condition, k) makes to the corpus, with their linear predictions.

Design, decided here:
- Rankings come from the baseline model of the first seed (the model ``biasaudit score`` audits). Edit sets:
  ``remove-top`` = the k documents with the most negative ``delta_bias_if_removed`` (they drive the bias up),
  ``remove-bottom`` = the k most positive, ``upweight-top`` = the top k repeated ``upweight`` times in all,
  ``remove-random`` = k documents drawn with a fixed seed (shared by all tests and estimators), ``remove-ids`` =
  a set the user names. ``hard-debias`` is Bolukbasi et al. 2016's neutralize step on each baseline model (no
  retraining).
- Seeds are paired: condition c at seed s is trained with the same seed (initialisation and sampling) as the
  baseline at seed s, and every change is measured against that baseline.
- Predicted change = the summed ``delta_bias_if_removed`` of the removed documents (removal) or (upweight - 1) x the
  summed ``delta_bias_if_upweighted`` (upweighting).
- Identical edits (the same top set under two estimators) are one edit, trained once.
- Counterfactual edits (``biasaudit.swaps``): ``swap-top`` replaces each top-k document by its rewrite with the
  test's swap list (one-sided CDA), ``augment-top`` adds the rewrite beside the original (two-sided CDA),
  ``swap-random`` / ``augment-random`` do the same to the random k (the controls), ``augment-all`` adds the
  rewrite of every document (two-sided CDA on the whole corpus, the literature's baseline). Their predictions: the
  originals removed (swap) or kept (augment) with the rewrites added, re-measured; the linear one is the
  originals' removal scores plus the rewrites' upweighting scores.
- ``rank_by="concept"``: documents are chosen by their summed influence on the audited test and on a test of the
  same attributes whose targets are the swap list's gendered words (those of neither the audited test nor its
  held-out companion), so edits aim at the concept rather than at the audited word list; the held-out companion,
  whose words are in neither, measures the transfer.
- ``select="greedy"`` adds ``remove-selected``: k documents chosen as a set (``influence.select.greedy_select``
  on the first seed's re-measured group predictions, from a pool of the documents that move the test toward 0,
  the move toward 0 as large as possible), beside ``remove-top`` at the same k and against the same random
  control. Its sets are computed before the plan (they need the predictor) and saved with the rankings.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..corpus import Corpus
from ..errors import ConfigError
from ..influence.select import SELECT
from ..models.base import family_of
from ..wordsets import BiasTest

CONDITIONS = ("baseline", "remove-top", "remove-bottom", "upweight-top", "remove-random", "remove-ids",
              "hard-debias", "swap-top", "augment-top", "swap-random", "augment-random", "augment-all",
              "remove-selected")
SWAP_CONDITIONS = ("swap-top", "augment-top", "swap-random", "augment-random", "augment-all")
RANK_BY = ("test", "concept")
# the conditions whose documents the ranking chose (an ensemble predicts them for a fresh seed: influence.ensemble)
RANKED_CONDITIONS = ("remove-top", "remove-bottom", "upweight-top", "swap-top", "augment-top", "remove-selected")
DEFAULT_CONDITIONS = ("baseline", "remove-top", "remove-bottom", "upweight-top", "remove-random", "hard-debias")
MODES = ("scratch", "masked", "warm-start", "undo")
RANDOM_SEED = 12345


def parse_k(item: str) -> float | int:
    """One ``--k`` size: a percentage in (0, 100) as a float fraction, or a count >= 1 as an int."""
    item = item.strip()
    try:
        value = float(item[:-1]) if item.endswith("%") else int(item)
    except ValueError as e:
        raise ConfigError(f"--k: {item!r} is neither a percentage (0.1%) nor a count") from e
    if item.endswith("%"):
        if not 0 < value < 100:
            raise ConfigError(f"--k: {item} is not a percentage between 0 and 100")
        return value / 100
    if value < 1:
        raise ConfigError(f"--k: {item} is not a count of at least 1")
    return value


def parse_ks(spec: str, n_docs: int) -> list[tuple[str, int]]:
    """``0.1%,0.5%,1%`` or counts ``100,500`` -> [(label, count)]; each count at least 1 and below n_docs."""
    out = []
    for item in [s.strip() for s in spec.split(",") if s.strip()]:
        v = parse_k(item)
        n = max(1, round(v * n_docs)) if isinstance(v, float) else v
        if n >= n_docs:
            raise ConfigError(f"--k: {item} is {n} documents, not fewer than the corpus's {n_docs}")
        out.append((item, n))
    if not out:
        raise ConfigError("--k: give at least one size")
    labels = [l for l, _ in out]
    if len(set(labels)) < len(labels):
        raise ConfigError(f"--k: a size is given twice ({spec})")
    return out


@dataclass(frozen=True)
class ExperimentSpec:
    """Everything that defines an experiment (its config is what the output folder records and resumes on)."""
    corpus: Corpus
    model: Any                  # the model family's config
    tests: list[BiasTest]
    heldout: dict[str, BiasTest]
    estimators: list            # EstimatorConfig
    ks: str = "0.1%,0.5%,1%"
    seeds: int = 3
    conditions: tuple = DEFAULT_CONDITIONS
    upweight: int = 5
    mode: str = "scratch"
    warm_epochs: int = 1
    remove_ids: tuple = ()
    lds: int = 0
    lds_fraction: float = 0.5
    quality: bool = True
    strict_oov: bool = False   # fail on test words missing from the vocabulary instead of dropping them
    templates: tuple | None = None   # LM template association (None: the bundled templates)
    min_word_count: int = 1          # test words seen fewer times in training are dropped (listed)
    ranking_model: Any = field(default=None, compare=False, repr=False)   # a user's model (--embeddings): the
                                     # rankings come from it; baselines and edits are retrained with its settings
    swaps: Any = None                # the swap list of counterfactual edits (None: the bundled one, when used)
    rank_by: str = "test"            # "concept": rank by the audited test plus the swap-list concept test
    ensemble: int = 1                # rank by the mean score of this many seeds' models (seed, seed+1, ...)
    fresh_seeds: bool = False        # retrain on seeds the ranking did not use (after the ensemble's)
    select: str = "top-k"            # "greedy": add remove-selected (the greedy set beside top-k at equal size)
    extra: dict = field(default_factory=dict)

    def __post_init__(self):
        self.validate()

    def validate(self):
        from ..measures.options import check_count
        from ..influence.estimators import check_estimators

        bad = [c for c in self.conditions if c not in CONDITIONS]
        if bad:
            raise ConfigError(f"--conditions: unknown {', '.join(bad)} (known: {', '.join(CONDITIONS)})")
        if self.mode not in MODES:
            raise ConfigError(f"--mode must be one of {', '.join(MODES)}, got {self.mode!r}")
        check_count("ensemble", self.ensemble)
        check_count("seeds", self.seeds)
        if self.ensemble > 1 and self.ranking_model is not None:
            raise ConfigError("--ensemble trains its seeds' models; rankings from a given model (--embeddings) "
                              "come from that one model")
        if self.seeds < 1 or self.upweight < 2 or self.warm_epochs < 1 or self.lds < 0:
            raise ConfigError("--seeds >= 1, --upweight >= 2, --warm-epochs >= 1 and --lds >= 0 are required")
        if "remove-ids" in self.conditions and not self.remove_ids:
            raise ConfigError("condition remove-ids needs --remove-ids FILE")
        fam = family_of(self.model)
        if self.mode not in fam.modes:
            raise ConfigError(f"--mode {self.mode} is not implemented for --model {fam.name}; it takes "
                              f"{', '.join(fam.modes)}")
        if not fam.word_vectors and "hard-debias" in self.conditions:
            raise ConfigError(f"condition hard-debias projects word vectors; it does not apply to --model {fam.name}")
        if not 0 < self.lds_fraction < 1:
            raise ConfigError("--lds-fraction must be in (0, 1)")
        if self.min_word_count < 1:
            raise ConfigError("--min-word-count must be >= 1")
        if self.select not in SELECT:
            raise ConfigError(f"--select must be one of {', '.join(SELECT)}, got {self.select!r}")
        if self.select == "greedy" and "remove-selected" not in self.conditions:
            object.__setattr__(self, "conditions", tuple(self.conditions) + ("remove-selected",))
        if "remove-selected" in self.conditions and self.select != "greedy":
            object.__setattr__(self, "select", "greedy")
        if self.rank_by not in RANK_BY:
            raise ConfigError(f"--rank-by must be one of {', '.join(RANK_BY)}, got {self.rank_by!r}")
        if self.swaps is None and (self.uses_swaps or self.rank_by == "concept"):
            from ..swaps import bundled_swaps
            object.__setattr__(self, "swaps", bundled_swaps())
        check_estimators(self.estimators, fam, self.model)

    @property
    def uses_swaps(self) -> bool:
        return any(c in SWAP_CONDITIONS for c in self.conditions)

    @property
    def ranking_seeds(self) -> list[int]:
        """The seeds whose models rank the documents (the ensemble's; one without --ensemble)."""
        return [self.model.seed + i for i in range(self.ensemble)]

    @property
    def seed_list(self) -> list[int]:
        """The paired seeds every condition is retrained on (after the ranking's seeds with --fresh-seeds)."""
        first = self.model.seed + (self.ensemble if self.fresh_seeds else 0)
        return [first + i for i in range(self.seeds)]

    @property
    def lds_seeds(self) -> dict[str, int]:
        """LDS subsets are retrained at the ranking's first seed (same-seed) and at the first seed the ranking did
        not use (cross-seed)."""
        return {"same-seed": self.model.seed, "cross-seed": self.model.seed + self.ensemble}

    def to_config(self) -> dict:
        return {"corpus": {"name": self.corpus.name, "hash": self.corpus.hash},
                "model_family": family_of(self.model).name, "model": self.model.to_dict(),
                "tests": [t.to_dict() for t in self.tests],
                "heldout": {k: v.to_dict() for k, v in self.heldout.items()},
                "estimators": [e.to_dict() for e in self.estimators], "ks": self.ks, "seeds": self.seeds,
                "conditions": list(self.conditions), "upweight": self.upweight, "mode": self.mode,
                "warm_epochs": self.warm_epochs,
                "remove_ids_sha256": hashlib.sha256("\n".join(sorted(self.remove_ids)).encode()).hexdigest(),
                "lds": self.lds, "lds_fraction": self.lds_fraction, "quality": self.quality,
                **({"templates": list(self.templates)} if self.templates else {}),
                **({"min_word_count": self.min_word_count} if self.min_word_count > 1 else {}),
                **({"model_files": self.model_files} if self.ranking_model is not None else {}),
                **({"swap_pairs_sha256": self.swaps.sha256} if self.swaps is not None else {}),
                **({"rank_by": self.rank_by} if self.rank_by != "test" else {}),
                **({"ensemble": self.ensemble} if self.ensemble > 1 else {}),
                **({"fresh_seeds": True} if self.fresh_seeds else {}),
                **({"select": self.select} if self.select != "top-k" else {})}

    @property
    def model_files(self) -> list[dict]:
        """The user's model files (path and sha256), when the rankings come from one."""
        origin = (getattr(self.ranking_model, "meta", None) or {}).get("origin") or {}
        return [{"path": f["path"], "sha256": f["sha256"]} for f in origin.get("files", [])]


def edit_id(kind: str, ids, times: int = 1, swaps=None) -> str:
    """A content hash of an edit: the same documents edited the same way are one edit, however they were chosen."""
    extra = f"|{swaps.sha256}" if swaps is not None else ""
    h = hashlib.sha256(f"{kind}|{times}{extra}|".encode() + "\n".join(sorted(ids)).encode("utf-8")).hexdigest()
    return f"{kind}-{h[:12]}"


@dataclass(frozen=True)
class PlanRow:
    """One (estimator, test, condition, k): the edit it reads, the edited documents' positions, the copies in all
    (0: removed), and the linear prediction (the sum of the documents' scores, times the extra copies)."""
    estimator: str
    test: str
    condition: str
    k_label: str
    k: int
    edit: str
    linear: float
    docs: np.ndarray | None = None
    times: int = 0
    swaps: Any = None          # counterfactual edits: the swap list their rewrites use

    @property
    def key(self) -> str:
        return f"{self.estimator}|{self.test}|{self.edit}"


@dataclass(frozen=True)
class Plan:
    """The edits to train (edit id -> (kind, ids, times)), the rows that read them and the LDS subsets (edit id,
    document indices)."""
    edits: dict
    rows: list
    lds: list


def build_plan(spec: ExperimentSpec, scores: dict, doc_ids: list[str], ks, tests, select: dict | None = None,
               selected: dict | None = None) -> Plan:
    """Every edit of the experiment from the rankings (``scores``: estimator label -> test -> scores; ``select``:
    the scores documents are chosen by, when not these: the concept ranking; ``selected``: estimator label ->
    test -> k label -> the greedy set's document positions, for ``remove-selected``)."""
    from ..swaps import swaps_for_test

    select = select or scores
    pos = {d: i for i, d in enumerate(doc_ids)}
    edits: dict[str, tuple] = {"baseline": ("baseline", (), 1, None)}
    every = np.arange(len(doc_ids))
    all_swaps = None
    if spec.swaps is not None:
        all_swaps = spec.swaps
        for t in tests:
            all_swaps = swaps_for_test(all_swaps, t)
    rows = []
    rng = np.random.default_rng(RANDOM_SEED)
    random_sets = {}
    for label, k in ks:
        random_sets[label] = tuple(sorted(rng.choice(len(doc_ids), size=k, replace=False).tolist()))
    user_ids = tuple(spec.remove_ids)
    for est, by_test in scores.items():
        for t in tests:
            s = by_test[t.name]
            order = np.argsort(select[est][t.name], kind="stable")
            sw = swaps_for_test(spec.swaps, t) if spec.swaps is not None else None
            rows.append(PlanRow(est, t.name, "baseline", "0", 0, "baseline", 0.0))
            for label, k in ks:
                rnd = np.array(random_sets[label])
                sets = {"remove-top": ("remove", order[:k], 1, None), "remove-bottom": ("remove", order[::-1][:k], 1, None),
                        "upweight-top": ("upweight", order[:k], spec.upweight, None),
                        "remove-random": ("remove", rnd, 1, None),
                        "swap-top": ("swap", order[:k], 0, sw), "augment-top": ("augment", order[:k], 1, sw),
                        "swap-random": ("swap", rnd, 0, sw), "augment-random": ("augment", rnd, 1, sw)}
                chosen = ((selected or {}).get(est) or {}).get(t.name, {}).get(label)
                if chosen is not None:
                    sets["remove-selected"] = ("remove", np.asarray(chosen, dtype=np.int64), 1, None)
                for cond in spec.conditions:
                    if cond not in sets:
                        continue
                    kind, idx, times, swaps = sets[cond]
                    ids = tuple(doc_ids[i] for i in idx)
                    eid = edit_id(kind, ids, times if kind != "swap" else 1, swaps)
                    edits[eid] = (kind, ids, times if kind != "swap" else 1, swaps)
                    pred = (float(s[idx].sum()) if kind in ("remove", "swap") else
                            -(times - 1) * float(s[idx].sum()))
                    rows.append(PlanRow(est, t.name, cond, label, k, eid, pred, np.asarray(idx),
                                        0 if kind in ("remove", "swap") else times, swaps))
            if "augment-all" in spec.conditions:
                eid = edit_id("augment-all", (), 1, all_swaps)
                edits[eid] = ("augment-all", (), 1, all_swaps)
                rows.append(PlanRow(est, t.name, "augment-all", "100%", len(doc_ids), eid, 0.0, every, 1, all_swaps))
            if "remove-ids" in spec.conditions and user_ids:
                eid = edit_id("remove", user_ids)
                edits[eid] = ("remove", user_ids, 1, None)
                idx = np.array([pos[i] for i in user_ids])
                rows.append(PlanRow(est, t.name, "remove-ids", str(len(user_ids)), len(user_ids), eid,
                                    float(s[idx].sum()), idx, 0))
    lds = []
    if spec.lds:
        lrng = np.random.default_rng(RANDOM_SEED + 1)
        n_drop = int(round(spec.lds_fraction * len(doc_ids)))
        for _ in range(spec.lds):
            idx = np.sort(lrng.choice(len(doc_ids), size=n_drop, replace=False))
            ids = tuple(doc_ids[i] for i in idx)
            eid = edit_id("remove", ids)
            edits[eid] = ("remove", ids, 1, None)
            lds.append((eid, idx))
    return Plan(edits, rows, lds)
