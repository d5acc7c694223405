"""Debiasing methods that edit a trained model or its corpus, the prior-work comparisons of an experiment.

- ``hard_debias``: Bolukbasi et al. 2016, the neutralize step on word vectors.
"""
from __future__ import annotations

import numpy as np

from .errors import ConfigError

# Bolukbasi et al. 2016's definitional pairs (female, male) for the gender direction
DEFINITIONAL_PAIRS = [("woman", "man"), ("girl", "boy"), ("she", "he"), ("mother", "father"),
                      ("daughter", "son"), ("gal", "guy"), ("female", "male"), ("her", "his"),
                      ("herself", "himself"), ("mary", "john")]


def hard_debias(model, gendered: set[str]) -> np.ndarray:
    """Bolukbasi et al. 2016, neutralize step: unit-normalise every vector, take the gender direction as the first
    principal component of the centred definitional pairs, and remove it from every word not in ``gendered``
    (the definitional words and the tests' target words). The equalize step is not applied."""
    k2i = model.vocab.key_to_index
    V = model.vectors / np.linalg.norm(model.vectors, axis=1, keepdims=True).clip(1e-12)
    diffs = []
    for f, m in DEFINITIONAL_PAIRS:
        if f in k2i and m in k2i:
            centre = (V[k2i[f]] + V[k2i[m]]) / 2
            diffs += [V[k2i[f]] - centre, V[k2i[m]] - centre]
    if len(diffs) < 4:
        raise ConfigError("hard-debias: fewer than 2 definitional gender pairs are in the vocabulary")
    g = np.linalg.svd(np.array(diffs), full_matrices=False)[2][0]
    keep = np.array([w in gendered or w in {x for p in DEFINITIONAL_PAIRS for x in p} for w in model.vocab.index_to_key])
    out = V - np.outer(V @ g, g)
    out[keep] = V[keep]
    return out


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


def run_debias(model, corpus, tests, estimator, k: str, method: str, swaps=None, out_dir=None, overwrite=False,
               rank_by: str = "test", heldout: dict | None = None, strict_oov: bool = False,
               min_word_count: int = 1, templates=None, command: str = "", progress=None, log=None,
               reports_dir="reports", seed_models=()):
    """Rank the documents of ``corpus`` for each test with ``estimator``, edit the top ``k`` of each (``remove``,
    ``swap``: replaced by the counterfactual rewrite, ``augment``: the rewrite added as ``<id>#cda``, or ``#cda2``,
    ... when that id is taken) and write the edited corpus in the input's format (``corpus.output_layout``), a
    manifest (edited ids, each document's predicted change, the predicted effect of the whole
    edit, the swap list's hash, the command) and a short report into the output folder, for retraining with any
    pipeline (``biasaudit report`` writes its page). ``seed_models``: the same model trained with other seeds; the
    documents are then ranked by the mean score over all of them (``--ensemble``). Returns (folder, manifest)."""
    import time
    from pathlib import Path

    from .audit import bias_measures, score_folder
    from .corpus import cda_id, edited_record, output_layout, records, write_records
    from .experiments.plan import parse_ks
    from .influence import score_model
    from .io import atomic_open, claim_folder, write_json
    from .models.base import family_of
    from .swaps import bundled_swaps, concept_test, swaps_for_test
    from .wordsets import resolve_tests

    if method not in METHODS:
        raise ConfigError(f"--method must be one of {', '.join(METHODS)}, got {method!r}")
    log = log or (lambda m: None)
    fam = family_of(model)
    stats = corpus.scan()
    sizes = parse_ks(k, stats.n_documents)
    if len(sizes) != 1:
        raise ConfigError("--k: debias takes one size")
    (k_label, n_edit), = sizes
    resolved = resolve_tests(tests)
    swaps = swaps if swaps is not None else (bundled_swaps() if method != "remove" or rank_by == "concept" else None)
    targets, kept, dropped, skipped = bias_measures(model, resolved, strict_oov, templates, min_word_count, corpus)
    for name, reason in skipped.items():
        log(f"{name}: skipped, {reason}")
    concepts = []
    if rank_by == "concept":
        known = fam.known_words(model, {a for p in swaps.pairs for a in p})
        concepts = [concept_test(t, (heldout or {}).get(t.name), swaps, known) for t in kept]
        targets = targets + fam.bias_measures(model, concepts, templates)
    config = {"method": method, "k": k, "tests": [t.to_dict() for t in kept], "estimator": estimator.to_dict(),
              "corpus": corpus.describe(), "model": model.config.to_dict() if model.config else None,
              "rank_by": rank_by, "swap_pairs_sha256": swaps.sha256 if swaps is not None else None}
    if seed_models:
        config["ensemble"] = [model.config.seed] + [m.config.seed for m in seed_models]
    folder = score_folder(corpus, "debias", config, out_dir, reports_dir)
    check_out(folder, corpus)
    out = claim_folder(folder, "debias", config, overwrite, known=DEBIAS_FILES)
    res = score_model(model, corpus, targets, estimator, progress=progress)
    if seed_models:           # --ensemble: every seed's model scored; documents ranked by the mean score
        from .influence.ensemble import ensemble_result
        results = [res]
        for m in seed_models:
            seed_targets = fam.bias_measures(m, kept + concepts, templates)
            results.append(score_model(m, corpus, seed_targets, estimator, progress=progress))
        res, _ = ensemble_result(results, config["ensemble"], {t.name: t.bound for t in targets})
    edited: dict[int, dict] = {}
    per_test = {}
    for t, target in zip(kept, targets):
        s = res.delta_bias_if_removed[t.name]
        sel = s + res.delta_bias_if_removed[f"{t.name}~concept"] if concepts else s
        order = np.argsort(sel, kind="stable")[:n_edit]
        per_test[t.name] = order
        for rank, i in enumerate(order.tolist(), 1):
            e = edited.setdefault(i, {"id": res.doc_ids[i], "tests": {}})
            e["tests"][t.name] = {"rank": rank, "delta_bias_if_removed": float(s[i])}
    docs = {i: d for i, d in enumerate(corpus) if i in edited}
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
    pred = res.predictor
    for t in kept:
        idx = per_test[t.name]
        added = [rewrites[i] for i in idx.tolist() if rewrites.get(i) is not None] if method != "remove" else None
        times = 0 if method in ("remove", "swap") else 1
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
        value = pred.predict([(t.name, idx, times, added)])[0] if pred is not None else None
        ev = fam.weat(model, t, templates)       # the measure's own uncertainty, beside the prediction
        predicted[t.name] = {"effect_size_before": res.bias_value[t.name], "predicted_effect_size": value,
                             "linear_prediction": None if lin is None else res.bias_value[t.name] + lin,
                             "p_value": ev.p_value, "ci_low": ev.ci_low, "ci_high": ev.ci_high,
                             "n_words": sum(len(ws.words) for ws in t.sets),
                             "significant": bool(ev.p_value < 0.05 and not ev.ci_low <= 0 <= ev.ci_high)}
    layout = output_layout(corpus)
    taken = {d.id for d in corpus} if method == "augment" else set()
    added_ids: list[str] = []
    added: set[str] = set()

    def rows():
        for i, (d, rec) in enumerate(records(corpus)):
            if method == "remove" and i in edited:
                continue
            new = rewrites.get(i) if method == "swap" else None
            yield edited_record(layout, new if new is not None else d, rec)
            if method == "augment" and rewrites.get(i) is not None:
                cf = rewrites[i]
                new_id = cda_id(d.id, taken, added)
                added.add(new_id)
                added_ids.append(new_id)
                yield edited_record(layout, type(cf)(new_id, cf.text, cf.tokens), rec)

    with out.stage() as tmp:
        with atomic_open(tmp / layout["file"], "wb", encoding=None) as f:
            n_out, sha256 = write_records(layout, rows(), f)
        manifest = {
            "method": method, "k": k_label, "n_edited": len(edited), "rank_by": rank_by,
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
        write_json(tmp / "manifest.json", manifest)
    return Path(folder), manifest
