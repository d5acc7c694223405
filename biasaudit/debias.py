"""Debiasing by editing a corpus: the documents that move each test toward 0, as few as the stopping rule needs,
removed, swapped or augmented, written out with a manifest (``run_debias``); ``verify_edit`` retrains seeds on the
edit. The prior-work baseline that edits word vectors (hard-debias) is in ``experiments/baselines.py``."""
from __future__ import annotations

import numpy as np

from .errors import ConfigError

# ------------------------------------------------------------------ corpus edits written out
DEBIAS_FILES = ("corpus.jsonl", "corpus.csv", "corpus.tsv", "manifest.json", "report.html")
METHODS = ("remove", "swap", "augment")


def check_out(folder, corpus) -> None:
    """Refuse an output folder the corpus would read: inside a corpus folder, under a recursive glob's fixed part,
    or where a glob matches the written corpus file. The next run on the same corpus would read the edited corpus
    as part of it."""
    from pathlib import Path

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
    from .io import check_writable, claim_folder

    check_out(out_dir if out_dir is not None else reports_dir, corpus)
    if out_dir is not None:
        claim_folder(out_dir, "debias", None, overwrite=True, known=DEBIAS_FILES, check_config=False)
    else:
        check_writable(reports_dir)


SELECT = ("greedy", "top-k")


def seed_noise(fam, models, test, templates=None) -> float | None:
    """The sample sd (ddof=1) of the test's measure over the models of several training seeds (None: one model)."""
    if len(models) < 2:
        return None
    return float(np.std([fam.weat(m, test, templates).effect_size for m in models], ddof=1))


def significance(ev) -> bool:
    """The measure is distinguishable from word-sampling noise: p < 0.05 (where it has a permutation test) and
    its 95% bootstrap CI does not hold 0."""
    return bool((ev.p_value is None or ev.p_value < 0.05) and not ev.ci_low <= 0 <= ev.ci_high)


def refuse_insignificant(evidence: dict) -> None:
    """One line naming every test whose bias is not significant, with its evidence (d, p, CI)."""
    bad = {n: ev for n, ev in evidence.items() if not significance(ev)}
    if bad:
        raise ConfigError("; ".join(
            f"{n}: d {ev.effect_size:+.2f}, p {'-' if ev.p_value is None else f'{ev.p_value:.3f}'}, 95% CI "
            f"[{ev.ci_low:+.2f}, {ev.ci_high:+.2f}]" for n, ev in bad.items())
            + " - not significant (p >= 0.05 or the CI holds 0): debias will not edit a corpus to move a bias that "
            "may be word-sampling noise (--force edits anyway)")


def run_debias(model, corpus, tests, estimator, k: str, method: str, swaps=None, out_dir=None, overwrite=False,
               rank_by: str = "test", heldout: dict | None = None, strict_oov: bool = False,
               min_word_count: int = 1, templates=None, command: str = "", progress=None, log=None,
               reports_dir="reports", seed_models=(), select: str = "greedy", target: float | None = None,
               force: bool = False, verify: int = 0, noise_models=(), pool: int = 3, rounds: int = 8,
               cache=None, device: str = "cpu"):
    """Edit the documents of ``corpus`` that move each test's measure toward 0 (``remove``, ``swap``: replaced by
    the counterfactual rewrite, ``augment``: the rewrite added as ``<id>#cda``, or ``#cda2``, ... when that id is
    taken) and write the edited corpus in the input's format (``corpus.output_layout``), a manifest (edited ids,
    each document's predicted change, the predicted effect of the whole edit, the stopping rule's band, the swap
    list's hash, the command) and a short report into the output folder, for retraining with any pipeline.

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
    actual against predicted changes, held-out tests and WordSim in the manifest. Returns (folder, manifest)."""
    import time
    from pathlib import Path

    from .audit import bias_measures, read_tests_with, score_folder
    from .corpus import Document, cda_id, edited_record, output_layout, records, write_records
    from .experiments.plan import parse_ks
    from .influence import rank
    from .influence.select import greedy_select, group_measure, scan_prefixes, toward_zero_order
    from .io import atomic_open, claim_folder, write_json
    from .models.base import family_of
    from .swaps import bundled_swaps, concept_test, swaps_for_test
    from .wordsets import resolve_tests

    if method not in METHODS:
        raise ConfigError(f"--method must be one of {', '.join(METHODS)}, got {method!r}")
    if select not in SELECT:
        raise ConfigError(f"--select must be one of {', '.join(SELECT)}, got {select!r}")
    if target is not None and not (np.isfinite(target) and target >= 0):
        raise ConfigError(f"--target must be a number >= 0 (the |d| to reach), got {target!r}")
    if verify and getattr(model, "config", None) is None:
        raise ConfigError("--verify retrains the model on the edited corpus: a model trained elsewhere has no "
                          "training settings here (train it with biasaudit, or retrain the written corpus yourself)")
    if not isinstance(verify, int) or verify < 0:
        raise ConfigError(f"--verify must be a whole number >= 0, got {verify!r}")
    log = log or (lambda m: None)
    fam = family_of(model)
    stats = corpus.scan()
    sizes = parse_ks(k, stats.n_documents)
    if len(sizes) != 1:
        raise ConfigError("--k: debias takes one size")
    (k_label, n_edit), = sizes
    resolved = read_tests_with(fam, resolve_tests(tests))        # a test file's own measure, checked
    swaps = swaps if swaps is not None else (bundled_swaps() if method != "remove" or rank_by == "concept" else None)
    targets, kept, dropped, skipped = bias_measures(model, resolved, strict_oov, templates, min_word_count, corpus)
    for name, reason in skipped.items():
        log(f"{name}: skipped, {reason}")
    # the measure's own uncertainty, before anything is scored: an insignificant bias is refused
    evidence = {t.name: fam.weat(model, t, templates) for t in kept}
    if not force:
        refuse_insignificant(evidence)
    concepts = []
    if rank_by == "concept":
        known = fam.known_words(model, {a for p in swaps.pairs for a in p})
        concepts = [concept_test(t, (heldout or {}).get(t.name), swaps, known) for t in kept]
        targets = targets + fam.bias_measures(model, concepts, templates)
    config = {"method": method, "k": k, "tests": [t.to_dict() for t in kept], "estimator": estimator.to_dict(),
              "corpus": corpus.describe(), "model": model.config.to_dict() if model.config else None,
              "rank_by": rank_by, "swap_pairs_sha256": swaps.sha256 if swaps is not None else None,
              "select": select, "target": target, "verify": verify}
    if seed_models:
        config["ensemble"] = [model.config.seed] + [m.config.seed for m in seed_models]
    if noise_models:
        config["noise_seeds"] = [m.config.seed for m in noise_models]
    folder = score_folder(corpus, "debias", config, out_dir, reports_dir)
    check_out(folder, corpus)
    out = claim_folder(folder, "debias", config, overwrite, known=DEBIAS_FILES)
    # --ensemble: every seed's model scored; documents ranked by the mean score (influence.rank)
    res, _ = rank(model, corpus, targets, estimator, seed_models,
                  [fam.bias_measures(m, kept + concepts, templates) for m in seed_models],
                  config.get("ensemble", ()), progress=progress)
    docs_by_pos: dict[int, Document] = {}

    def doc_at(positions):
        want = [int(i) for i in positions if int(i) not in docs_by_pos]
        if want:
            wanted = set(want)
            for i, d in enumerate(corpus):
                if i in wanted:
                    docs_by_pos[i] = d
        return [docs_by_pos[int(i)] for i in positions]

    test_rewrites: dict[tuple, object] = {}

    def rewrites_for(t):
        sw = swaps_for_test(swaps, t)

        def added(docs):
            out_ = []
            for i, d in zip(docs.tolist(), doc_at(docs)):
                key = (t.name, i)
                if key not in test_rewrites:
                    cf = sw.swap_document(d)
                    test_rewrites[key] = cf if (cf.text != d.text or cf.tokens != d.tokens) else None
                if test_rewrites[key] is not None:
                    out_.append(test_rewrites[key])
            return out_
        return added

    all_models = [model, *seed_models, *noise_models]
    times = 0 if method in ("remove", "swap") else 1
    pred = res.predictor
    edited: dict[int, dict] = {}
    per_test, stopping = {}, {}
    for t in kept:
        s = res.delta_bias_if_removed[t.name]
        sel = s + res.delta_bias_if_removed[f"{t.name}~concept"] if concepts else s
        d0 = float(res.bias_value[t.name])
        order = toward_zero_order(sel, d0)
        noise = seed_noise(fam, all_models, t, templates)
        ev = evidence[t.name]
        if target is not None:
            band, source = float(target), "--target"
        elif noise is not None:
            band, source = noise, f"the sd of d over {len(all_models)} training seeds"
        else:
            band, source = (ev.ci_high - ev.ci_low) / 2, "the bootstrap 95% CI half-width of d (one seed)"
        rule = {"goal": 0.0, "band": band, "band_source": source, "k_bound": n_edit, "select": select}
        if pred is None:        # no group predictions (gradient-dot): the first k toward zero, no stopping rule
            chosen = order[:n_edit]
            rule.update(reached=None, note=f"{estimator.label} gives no group predictions: the first --k "
                                           f"({n_edit}) documents toward 0, with no stopping rule")
        elif abs(d0) <= band:
            chosen = order[:0]
            rule.update(reached=True, note="d is already inside the band: nothing to edit")
        else:
            measure = group_measure(pred, t.name, times, rewrites_for(t) if method != "remove" else None)
            n_top, count_top, nearest = None, 0, []
            if select == "greedy":
                # a set chosen as a set is wanted only if smaller than the top-k prefix that reaches the band (or,
                # when none does, comes nearest 0), so that prefix bounds the search (candidates: pool x it, not
                # pool x --k: 3,786 on GCIDE at 1%)
                n_top, _, count_top, close = scan_prefixes(measure, order[:n_edit], band)
                nearest.append((close, order))
                size = n_top if n_top is not None else (close[0] if close is not None else n_edit)
                found = greedy_select(measure, order, size, d0, goal=0.0, pool=pool, rounds=rounds,
                                      stop=lambda v: abs(v) <= band)
                ranked = found.order
                rule["selection"] = {**found.to_dict(), "size_bound": size, "top_k_reaches_at": n_top}
            else:
                ranked = order[:n_edit]
            n, value, count, close = scan_prefixes(measure, ranked, band)
            nearest.insert(0, (close, ranked))
            if n is None and n_top is not None:     # the chosen set never got inside: top-k's prefix does
                ranked, n = order[:n_edit], n_top
                rule["selection"]["fallback_to_top_k"] = True
            rule["n_predictions"] = count + count_top + (rule.get("selection", {}).get("n_predictions") or 0)
            if n is None:       # no prefix inside: the one predicted nearest 0 (where predictions jump over the band)
                options = [(c, o) for c, o in nearest if c is not None]
                if not options:         # the predictor could not measure these edits: the whole bound
                    size, v, from_order = n_edit, None, ranked
                else:
                    (size, v), from_order = min(options, key=lambda co: (abs(co[0][1]), co[0][0]))
                chosen = from_order[:size]
                which = (f"the {size} predicted nearest 0 (d {v:+.3f}) edited" if v is not None
                         else f"all {size} edited")
                rule.update(reached=False, nearest_predicted=v,
                            note=f"no edit of up to {n_edit} documents (--k {k_label}) is predicted inside the band "
                                 f"|d| <= {band:.3f}: {which}")
            else:
                chosen = ranked[:n]
                rule.update(reached=True, note=f"{n} documents bring the predicted d inside |d| <= {band:.3f}")
        log(f"{t.name}: {rule['note']}")
        stopping[t.name] = rule
        per_test[t.name] = np.asarray(chosen, dtype=np.int64)
        for rank, i in enumerate(per_test[t.name].tolist(), 1):
            e = edited.setdefault(i, {"id": res.doc_ids[i], "tests": {}})
            e["tests"][t.name] = {"rank": rank, "delta_bias_if_removed": float(s[i])}
    docs = dict(zip(sorted(edited), doc_at(sorted(edited))))
    rewrites = {}
    if method != "remove":
        for i, d in docs.items():
            sw = swaps
            for t in kept:
                if i in set(per_test[t.name].tolist()):
                    sw = swaps_for_test(sw, t)
            cf = sw.swap_document(d)
            rewrites[i] = cf if (cf.text != d.text or cf.tokens != d.tokens) else None
    # predictions: each document's (linear) change, and the whole edit re-measured per test
    predicted = {}
    for t in kept:
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
        ev = evidence[t.name]
        predicted[t.name] = {"effect_size_before": res.bias_value[t.name], "predicted_effect_size": value,
                             "linear_prediction": None if lin is None else res.bias_value[t.name] + lin,
                             "p_value": ev.p_value, "ci_low": ev.ci_low, "ci_high": ev.ci_high,
                             "n_words": sum(len(ws.words) for ws in t.sets),
                             "significant": significance(ev), "n_edited": int(len(idx)),
                             "stopping": stopping[t.name]}
    layout = output_layout(corpus)
    taken = {d.id for d in corpus} if method == "augment" else set()
    added_ids: list[str] = []
    added: set[str] = set()
    kept_docs: list = []          # the edited corpus's documents, for --verify

    def rows():
        for i, (d, rec) in enumerate(records(corpus)):
            if method == "remove" and i in edited:
                continue
            new = rewrites.get(i) if method == "swap" else None
            if verify:
                kept_docs.append(new if new is not None else d)
            yield edited_record(layout, new if new is not None else d, rec)
            if method == "augment" and rewrites.get(i) is not None:
                cf = rewrites[i]
                new_id = cda_id(d.id, taken, added)
                added.add(new_id)
                added_ids.append(new_id)
                copy = type(cf)(new_id, cf.text, cf.tokens)
                if verify:
                    kept_docs.append(copy)
                yield edited_record(layout, copy, rec)

    with out.stage() as tmp:
        with atomic_open(tmp / layout["file"], "wb", encoding=None) as f:
            n_out, sha256 = write_records(layout, rows(), f)
        manifest = {
            "method": method, "k": k_label, "n_edited": len(edited), "rank_by": rank_by, "select": select,
            "target": target, "goal": "|d| -> 0: the smallest edit predicted inside the band, --k the bound",
            "tests": [t.name for t in kept], "estimator": estimator.label, "command": command,
            "corpus_in": corpus.describe(),
            "corpus_out": {"file": layout["file"], "format": layout["format"], "fields": layout["fields"],
                           "n_documents": n_out, "sha256": sha256},
            "swap_pairs": None if swaps is None else {"source": swaps.source, "n_pairs": len(swaps.pairs),
                                                      "sha256": swaps.sha256},
            "predicted": predicted,
            "edited": [{**e, "rewritten": method != "remove" and rewrites.get(i) is not None,
                        "snippet": docs[i].text[:300],
                        "rewrite": (rewrites[i].text[:300] if rewrites.get(i) is not None else None)}
                       for i, e in sorted(edited.items(), key=lambda kv: min(r["rank"] for r in
                                                                             kv[1]["tests"].values()))],
            "added_ids": added_ids, "unchanged_by_swap": sum(1 for v in rewrites.values() if v is None),
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        if verify:
            from .corpus import MemoryCorpus
            ed = MemoryCorpus(kept_docs, corpus.name)
            ed.tokenizer = corpus.tokenizer
            manifest["verify"] = verify_edit(model, corpus, ed, kept, heldout or {}, predicted, verify,
                                             [*seed_models, *noise_models], templates, cache, device, progress, log)
        write_json(tmp / "manifest.json", manifest)
    return Path(folder), manifest


def verify_edit(model, corpus, edited, tests, heldout: dict, predicted: dict, n_seeds: int, others=(),
                templates=None, cache=None, device: str = "cpu", progress=None, log=None) -> dict:
    """Retrain ``n_seeds`` seeds (the model's seed, then the next ones) on the edited corpus and compare each with
    the baseline of the same seed (the audited model, a given seed's model, or trained and cached): the actual
    change of each test against the predicted one, the held-out companions' changes and WordSim-353 / SimLex-999
    (reported where their word coverage is at least the experiments' MIN_COVERAGE)."""
    from dataclasses import replace
    from pathlib import Path

    from .experiments.summary import MIN_COVERAGE, _quality
    from .models.base import family_of, retrain_model, train_or_load

    fam = family_of(model)
    log = log or (lambda m: None)
    cfg = model.config
    have = {model.config.seed: model, **{m.config.seed: m for m in others if getattr(m, "config", None)}}
    held = {n: h for n, h in heldout.items() if n in {t.name for t in tests}}
    per_seed = []
    for i in range(n_seeds):
        seed = cfg.seed + i
        scfg = replace(cfg, seed=seed)
        base = have.get(seed) or train_or_load(corpus, scfg, cache=Path(cache) if cache else None, device=device)[0]
        new = retrain_model(edited, scfg, corpus)
        b = fam.evaluate(base, tests, held, fam.word_vectors, templates)
        a = fam.evaluate(new, tests, held, fam.word_vectors, templates)
        per_seed.append({"seed": seed, "baseline": b, "edited": a})
        log(f"verify: seed {seed} retrained on the edited corpus")
        if progress:
            progress("verify retraining", i + 1, n_seeds)

    def mean(xs):
        xs = [x for x in xs if x is not None]
        return float(np.mean(xs)) if xs else None

    out = {"seeds": [r["seed"] for r in per_seed], "min_quality_coverage": MIN_COVERAGE, "tests": {}}
    for t in tests:
        p = predicted[t.name]
        pc = None if p["predicted_effect_size"] is None else p["predicted_effect_size"] - p["effect_size_before"]
        rows = []
        for r in per_seed:
            b, a = r["baseline"], r["edited"]
            qb, qa = _quality(b.get("quality", {})), _quality(a.get("quality", {}))
            row = {"seed": r["seed"], "baseline": b["effects"].get(t.name), "actual": a["effects"].get(t.name),
                   "heldout_baseline": b["heldout_effects"].get(t.name),
                   "heldout_actual": a["heldout_effects"].get(t.name),
                   "wordsim353_baseline": qb.get("wordsim353"), "wordsim353": qa.get("wordsim353"),
                   "wordsim353_coverage": qa.get("wordsim353_coverage"),
                   "simlex999_baseline": qb.get("simlex999"), "simlex999": qa.get("simlex999")}
            row["actual_change"] = (None if row["actual"] is None or row["baseline"] is None
                                    else row["actual"] - row["baseline"])
            row["heldout_change"] = (None if row["heldout_actual"] is None or row["heldout_baseline"] is None
                                     else row["heldout_actual"] - row["heldout_baseline"])
            rows.append(row)
        ac = mean([r["actual_change"] for r in rows])
        out["tests"][t.name] = {
            "predicted_change": pc, "actual_change_mean": ac,
            "actual_change_sd": (float(np.std([r["actual_change"] for r in rows], ddof=1)) if len(rows) > 1
                                 and all(r["actual_change"] is not None for r in rows) else None),
            "actual_over_predicted": None if ac is None or pc is None or abs(pc) < 1e-12 else ac / pc,
            "effect_size_mean": mean([r["actual"] for r in rows]),
            "baseline_effect_size_mean": mean([r["baseline"] for r in rows]),
            "heldout_change_mean": mean([r["heldout_change"] for r in rows]),
            "wordsim353_baseline_mean": mean([r["wordsim353_baseline"] for r in rows]),
            "wordsim353_mean": mean([r["wordsim353"] for r in rows]),
            "per_seed": rows}
    return out
