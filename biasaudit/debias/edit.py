"""Debiasing by editing a corpus, as its steps (``run_debias``): resolve the tests and refuse an insignificant bias,
describe the run and claim its folder, rank the documents (``influence.rank``), choose each test's documents inside
the stopping band (``band``), rewrite them (swap, augment), predict the whole edit, and write the edited corpus
with a manifest; ``verify_edit`` (``verify``) retrains seeds on it."""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import ConfigError
from .band import band_of, refuse_insignificant, significance, stopping_rule
from .options import DebiasOptions
from .verify import verify_edit

# ------------------------------------------------------------------ corpus edits written out
DEBIAS_FILES = ("corpus.jsonl", "corpus.csv", "corpus.tsv", "manifest.json", "report.html")


def check_out(folder, corpus) -> None:
    """Refuse an output folder the corpus would read: inside a corpus folder, under a recursive glob's fixed part,
    or where a glob matches the written corpus file. The next run on the same corpus would read the edited corpus
    as part of it."""
    src = getattr(corpus, "source", None)
    if not src or not hasattr(corpus, "files"):
        return
    out = Path(folder).expanduser().resolve()
    path = Path(src).expanduser()
    if path.is_dir():
        inside = path.resolve() == out or path.resolve() in out.parents
    elif not path.exists() and any(ch in src for ch in "*?["):
        pattern = Path.cwd() / path if not path.is_absolute() else path
        wild = next(i for i, p in enumerate(pattern.parts) if any(c in p for c in "*?["))
        root = Path(*pattern.parts[:wild]).resolve()
        pattern = root.joinpath(*pattern.parts[wild:])
        inside = ((root == out or root in out.parents) if "**" in src
                  else any((out / n).match(str(pattern)) for n in ("corpus.jsonl", "corpus.csv", "corpus.tsv")))
    else:
        return
    if inside:
        raise ConfigError(f"{folder}: inside what the corpus {src} reads (a later run on it would read the edited "
                          "corpus too); choose an --out outside it")


def claim_out(out_dir, corpus, reports_dir="reports") -> None:
    """Before any training: the output folder (``out_dir``, else ``reports_dir``) is outside the corpus and can be
    written (a new or empty folder, or debias outputs of this tool's); the config is checked when the run ends."""
    from ..io import check_writable, claim_folder

    check_out(out_dir if out_dir is not None else reports_dir, corpus)
    if out_dir is not None:
        claim_folder(out_dir, "debias", None, overwrite=True, known=DEBIAS_FILES, check_config=False)
    else:
        check_writable(reports_dir)



# ------------------------------------------------------------------ the steps
@dataclass
class Plan:
    """What the edit measures: the tests kept (their measures ``targets``, plus the concept tests with
    ``rank_by="concept"``), each one's evidence (d, p, CI), the swap list, and the size bound ``n_edit``."""
    fam: object
    k_label: str
    n_edit: int
    kept: list
    targets: list
    evidence: dict
    swaps: object
    concepts: list = field(default_factory=list)


def plan_edit(model, corpus, tests, o: DebiasOptions, log) -> Plan:
    """The tests read and measured (skipped ones logged), the bound ``k`` in documents, and the measure's own
    uncertainty before anything is scored: an insignificant bias is refused unless ``force``."""
    from ..audit import bias_measures, read_tests_with
    from ..experiments.plan import parse_ks
    from ..models.base import family_of
    from ..swaps import bundled_swaps, concept_test
    from ..wordsets import resolve_tests

    fam = family_of(model)
    stats = corpus.scan()
    sizes = parse_ks(o.k, stats.n_documents)
    if len(sizes) != 1:
        raise ConfigError("--k: debias takes one size")
    (k_label, n_edit), = sizes
    resolved = read_tests_with(fam, resolve_tests(tests))        # a test file's own measure, checked
    swaps = o.swaps if o.swaps is not None else (
        bundled_swaps() if o.method != "remove" or o.rank_by == "concept" else None)
    targets, kept, dropped, skipped = bias_measures(model, resolved, o.strict_oov, o.templates, o.min_word_count,
                                                    corpus)
    for name, reason in skipped.items():
        log(f"{name}: skipped, {reason}")
    evidence = {t.name: fam.weat(model, t, o.templates) for t in kept}
    if not o.force:
        refuse_insignificant(evidence)
    plan = Plan(fam, k_label, n_edit, kept, targets, evidence, swaps)
    if o.rank_by == "concept":
        known = fam.known_words(model, {a for p in swaps.pairs for a in p})
        plan.concepts = [concept_test(t, (o.heldout or {}).get(t.name), swaps, known) for t in kept]
        plan.targets = targets + fam.bias_measures(model, plan.concepts, o.templates)
    return plan


def config_of(model, corpus, plan: Plan, o: DebiasOptions, seed_models, noise_models) -> dict:
    """The run's config (the folder's name hashes it)."""
    config = {"method": o.method, "k": o.k, "tests": [t.to_dict() for t in plan.kept],
              "estimator": o.estimator.to_dict(), "corpus": corpus.describe(),
              "model": model.config.to_dict() if model.config else None, "rank_by": o.rank_by,
              "swap_pairs_sha256": plan.swaps.sha256 if plan.swaps is not None else None,
              "select": o.select, "target": o.target, "verify": o.verify}
    if seed_models:
        config["ensemble"] = [model.config.seed] + [m.config.seed for m in seed_models]
    if noise_models:
        config["noise_seeds"] = [m.config.seed for m in noise_models]
    return config


class Documents:
    """The corpus's documents by position, read once each, and their counterfactual rewrites per test."""

    def __init__(self, corpus, swaps):
        self.corpus, self.swaps = corpus, swaps
        self.by_pos: dict[int, object] = {}
        self.test_rewrites: dict[tuple, object] = {}

    def at(self, positions) -> list:
        want = [int(i) for i in positions if int(i) not in self.by_pos]
        if want:
            wanted = set(want)
            for i, d in enumerate(self.corpus):
                if i in wanted:
                    self.by_pos[i] = d
        return [self.by_pos[int(i)] for i in positions]

    def rewrites_for(self, t):
        """A function of positions: the rewrites (by test ``t``'s swaps) of those documents that change."""
        from ..swaps import swaps_for_test
        sw = swaps_for_test(self.swaps, t)

        def added(docs):
            out_ = []
            for i, d in zip(docs.tolist(), self.at(docs)):
                key = (t.name, i)
                if key not in self.test_rewrites:
                    cf = sw.swap_document(d)
                    self.test_rewrites[key] = cf if (cf.text != d.text or cf.tokens != d.tokens) else None
                if self.test_rewrites[key] is not None:
                    out_.append(self.test_rewrites[key])
            return out_
        return added


def choose(plan: Plan, res, o: DebiasOptions, docs: Documents, all_models, log) -> tuple[dict, dict, dict]:
    """Each test's documents (toward 0, as few as the stopping rule needs): (per test positions, the edited
    documents with each test's rank and score, each test's stopping rule)."""
    from ..influence.select import group_measure, toward_zero_order

    times = 0 if o.method in ("remove", "swap") else 1
    pred = res.predictor
    edited: dict[int, dict] = {}
    per_test, stopping = {}, {}
    for t in plan.kept:
        s = res.delta_bias_if_removed[t.name]
        sel = s + res.delta_bias_if_removed[f"{t.name}~concept"] if plan.concepts else s
        d0 = float(res.bias_value[t.name])
        order = toward_zero_order(sel, d0)
        band, source = band_of(plan.fam, all_models, t, plan.evidence[t.name], o.target, o.templates)
        rule = {"goal": 0.0, "band": band, "band_source": source, "k_bound": plan.n_edit, "select": o.select}
        if pred is None:        # no group predictions (gradient-dot): the first k toward zero, no stopping rule
            chosen = order[:plan.n_edit]
            rule.update(reached=None, note=f"{o.estimator.label} gives no group predictions: the first --k "
                                           f"({plan.n_edit}) documents toward 0, with no stopping rule")
        elif abs(d0) <= band:
            chosen = order[:0]
            rule.update(reached=True, note="d is already inside the band: nothing to edit")
        else:
            measure = group_measure(pred, t.name, times, docs.rewrites_for(t) if o.method != "remove" else None)
            chosen = stopping_rule(measure, order, d0, plan.n_edit, plan.k_label, band, rule, o)
        log(f"{t.name}: {rule['note']}")
        stopping[t.name] = rule
        per_test[t.name] = np.asarray(chosen, dtype=np.int64)
        for rank, i in enumerate(per_test[t.name].tolist(), 1):
            e = edited.setdefault(i, {"id": res.doc_ids[i], "tests": {}})
            e["tests"][t.name] = {"rank": rank, "delta_bias_if_removed": float(s[i])}
    return per_test, edited, stopping


def rewrite(texts: dict, per_test: dict, plan: Plan, method: str) -> dict:
    """Each edited document's rewrite by the swaps of every test that chose it (None: the swaps change nothing)."""
    from ..swaps import swaps_for_test

    rewrites = {}
    if method != "remove":
        for i, d in texts.items():
            sw = plan.swaps
            for t in plan.kept:
                if i in set(per_test[t.name].tolist()):
                    sw = swaps_for_test(sw, t)
            cf = sw.swap_document(d)
            rewrites[i] = cf if (cf.text != d.text or cf.tokens != d.tokens) else None
    return rewrites


def predictions(res, plan: Plan, per_test: dict, edited: dict, rewrites: dict, stopping: dict, method: str) -> dict:
    """Each edited document's (linear) predicted change, and the whole edit re-measured per test with the test's
    evidence and stopping rule."""
    times = 0 if method in ("remove", "swap") else 1
    pred = res.predictor
    predicted = {}
    for t in plan.kept:
        idx = per_test[t.name]
        added = [rewrites[i] for i in idx.tolist() if rewrites.get(i) is not None] if method != "remove" else None
        lin = float(res.delta_bias_if_removed[t.name][idx].sum()) if times == 0 else 0.0
        for i in idx.tolist():
            rec = edited[i]["tests"][t.name]
            change = rec["delta_bias_if_removed"] if times == 0 else 0.0
            if method != "remove" and rewrites.get(i) is not None and hasattr(pred, "linear_added"):
                change += pred.linear_added(t.name, [rewrites[i]])
            rec["predicted_change"] = change
        if added and hasattr(pred, "linear_added"):
            lin += pred.linear_added(t.name, added)
        elif added:
            lin = None
        value = (pred.predict([(t.name, idx, times, added)])[0] if pred is not None and len(idx) else
                 res.bias_value[t.name] if pred is not None else None)
        ev = plan.evidence[t.name]
        predicted[t.name] = {"effect_size_before": res.bias_value[t.name], "predicted_effect_size": value,
                             "linear_prediction": None if lin is None else res.bias_value[t.name] + lin,
                             "p_value": ev.p_value, "ci_low": ev.ci_low, "ci_high": ev.ci_high,
                             "n_words": sum(len(ws.words) for ws in t.sets),
                             "significant": significance(ev), "n_edited": int(len(idx)),
                             "stopping": stopping[t.name]}
    return predicted


class EditedRows:
    """The edited corpus's records in the input's layout (removed, swapped or with ``#cda`` copies added), and
    (with ``keep``) its documents, for ``verify``."""

    def __init__(self, corpus, edited: dict, rewrites: dict, method: str, keep: bool):
        from ..corpus import output_layout
        self.corpus, self.edited, self.rewrites, self.method, self.keep = corpus, edited, rewrites, method, keep
        self.layout = output_layout(corpus)
        self.taken = {d.id for d in corpus} if method == "augment" else set()
        self.added_ids: list[str] = []
        self.added: set[str] = set()
        self.kept_docs: list = []

    def __iter__(self):
        from ..corpus import cda_id, edited_record, records
        layout, rewrites, method = self.layout, self.rewrites, self.method
        for i, (d, rec) in enumerate(records(self.corpus)):
            if method == "remove" and i in self.edited:
                continue
            new = rewrites.get(i) if method == "swap" else None
            if self.keep:
                self.kept_docs.append(new if new is not None else d)
            yield edited_record(layout, new if new is not None else d, rec)
            if method == "augment" and rewrites.get(i) is not None:
                cf = rewrites[i]
                new_id = cda_id(d.id, self.taken, self.added)
                self.added.add(new_id)
                self.added_ids.append(new_id)
                copy = type(cf)(new_id, cf.text, cf.tokens)
                if self.keep:
                    self.kept_docs.append(copy)
                yield edited_record(layout, copy, rec)


def manifest_of(corpus, plan: Plan, o: DebiasOptions, rows: EditedRows, written: tuple, predicted: dict,
                edited: dict, texts: dict, rewrites: dict) -> dict:
    """``manifest.json``: what was edited and how, the corpus written, and the predicted effect per test."""
    (n_out, sha256), layout, method, swaps = written, rows.layout, o.method, plan.swaps
    return {
        "method": method, "k": plan.k_label, "n_edited": len(edited), "rank_by": o.rank_by, "select": o.select,
        "target": o.target, "goal": "|d| -> 0: the smallest edit predicted inside the band, --k the bound",
        "tests": [t.name for t in plan.kept], "estimator": o.estimator.label, "command": o.command,
        "corpus_in": corpus.describe(),
        "corpus_out": {"file": layout["file"], "format": layout["format"], "fields": layout["fields"],
                       "n_documents": n_out, "sha256": sha256},
        "swap_pairs": None if swaps is None else {"source": swaps.source, "n_pairs": len(swaps.pairs),
                                                  "sha256": swaps.sha256},
        "predicted": predicted,
        "edited": [{**e, "rewritten": method != "remove" and rewrites.get(i) is not None,
                    "snippet": texts[i].text[:300],
                    "rewrite": (rewrites[i].text[:300] if rewrites.get(i) is not None else None)}
                   for i, e in sorted(edited.items(), key=lambda kv: min(r["rank"] for r in
                                                                         kv[1]["tests"].values()))],
        "added_ids": rows.added_ids, "unchanged_by_swap": sum(1 for v in rewrites.values() if v is None),
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}


# ------------------------------------------------------------------ the pipeline
def _options(options, args: tuple, kwargs: dict) -> DebiasOptions:
    """``options`` as DebiasOptions: given, or built from an EstimatorConfig and the former arguments."""
    from ..influence.estimators import EstimatorConfig

    if isinstance(options, DebiasOptions):
        if args or kwargs:
            raise ConfigError("run_debias takes DebiasOptions or settings, not both: "
                              + ", ".join([*map(repr, args), *kwargs]))
        return options
    if isinstance(options, EstimatorConfig):
        return DebiasOptions.from_arguments((options, *args), kwargs)
    if options is None:
        return DebiasOptions.from_arguments(args, kwargs)
    raise ConfigError(f"options must be DebiasOptions, got {type(options).__name__}")


def run_debias(model, corpus, tests, options: DebiasOptions | None = None, *args, seed_models=(), noise_models=(),
               progress=None, log=None, **kwargs):
    """Edit the documents of ``corpus`` that move each test's measure toward 0 as ``options`` (``DebiasOptions``)
    say (``remove``, ``swap``: replaced by the counterfactual rewrite, ``augment``: the rewrite added as
    ``<id>#cda``, or ``#cda2``, ... when that id is taken) and write the edited corpus in the input's format
    (``corpus.output_layout``), a manifest (edited ids, each document's predicted change, the predicted effect of
    the whole edit, the stopping rule's band, the swap list's hash, the command) and a short report into the
    output folder, for retraining with any pipeline.

    Which documents: those whose score moves d toward 0 (d > 0: delta_bias_if_removed < 0; d < 0: > 0), chosen as a
    set (``select="greedy"``: ``influence.select.greedy_select`` on re-measured group predictions, searching within
    the top-k prefix that reaches the band, or comes nearest 0 when none does, and keeping that prefix when the
    greedy set never gets inside) or by individual score (``"top-k"``). How many: the smallest prefix of that order
    whose re-measured prediction is inside the band |d| <= ``target`` (when given), else the seed-noise band (the
    sd of d over the seeds' models, ``seed_models`` and ``noise_models``, when there are 2 or more), else the
    bootstrap 95% CI half-width of d; ``k`` is the upper bound (when no prefix up to ``k`` is predicted inside the
    band, the one predicted nearest 0 is edited; ``k`` itself for an estimator without group predictions,
    gradient-dot). A test whose bias is not significant is refused (ConfigError with its d, p and CI) unless
    ``force``. ``seed_models``: the same model trained with other seeds; the documents are then ranked by the mean
    score over all of them (``--ensemble``). ``verify``: retrain that many seeds on the edited corpus and record
    actual against predicted changes, held-out tests and WordSim in the manifest. The former call (an
    EstimatorConfig, k, method, ... by position or keyword) still works. Returns (folder, manifest)."""
    from ..audit import score_folder
    from ..influence import rank
    from ..io import atomic_open, claim_folder, write_json

    o = _options(options, args, kwargs)
    if o.verify and getattr(model, "config", None) is None:
        raise ConfigError("--verify retrains the model on the edited corpus: a model trained elsewhere has no "
                          "training settings here (train it with biasaudit, or retrain the written corpus yourself)")
    log = log or (lambda m: None)
    plan = plan_edit(model, corpus, tests, o, log)
    config = config_of(model, corpus, plan, o, seed_models, noise_models)
    folder = score_folder(corpus, "debias", config, o.out_dir, o.reports_dir)
    check_out(folder, corpus)
    out = claim_folder(folder, "debias", config, o.overwrite, known=DEBIAS_FILES)
    # --ensemble: every seed's model scored; documents ranked by the mean score (influence.rank)
    res, _ = rank(model, corpus, plan.targets, o.estimator, seed_models,
                  [plan.fam.bias_measures(m, plan.kept + plan.concepts, o.templates) for m in seed_models],
                  config.get("ensemble", ()), progress=progress)
    docs = Documents(corpus, plan.swaps)
    per_test, edited, stopping = choose(plan, res, o, docs, [model, *seed_models, *noise_models], log)
    texts = dict(zip(sorted(edited), docs.at(sorted(edited))))
    rewrites = rewrite(texts, per_test, plan, o.method)
    predicted = predictions(res, plan, per_test, edited, rewrites, stopping, o.method)
    rows = EditedRows(corpus, edited, rewrites, o.method, keep=bool(o.verify))
    with out.stage() as tmp:
        from ..corpus import write_records
        with atomic_open(tmp / rows.layout["file"], "wb", encoding=None) as f:
            written = write_records(rows.layout, iter(rows), f)
        manifest = manifest_of(corpus, plan, o, rows, written, predicted, edited, texts, rewrites)
        if o.verify:
            from ..corpus import MemoryCorpus
            ed = MemoryCorpus(rows.kept_docs, corpus.name)
            ed.tokenizer = corpus.tokenizer
            manifest["verify"] = verify_edit(model, corpus, ed, plan.kept, o.heldout or {}, predicted, o.verify,
                                             [*seed_models, *noise_models], o.templates, o.cache, o.device,
                                             progress, log, skip=1 + len(seed_models) if seed_models else 0)
        write_json(tmp / "manifest.json", manifest)
    return Path(folder), manifest
