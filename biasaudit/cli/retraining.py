from __future__ import annotations

"""The commands that retrain and edit: experiment (does the bias move as predicted?) and debias (an edited
corpus)."""
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import List, Optional

import typer

from ..terminal import clean
from .console import WIDTH, _progress, note, out
from .inputs import (_check_measure, _check_rank_by, _estimators, _finetune_config, _train_seeds, _user_model,
                     _vocab_needs_embeddings)
from .options import (EmbeddingsOpt, EnsembleOpt, FinetuneOpt, MeasureOpt, MinWordCountOpt, RankByOpt, RunOptions,
                      StrictOovOpt, SwapPairsOpt, TemplatesOpt, TestOpt, VocabOpt, _check_ks, _check_scheduler,
                      _in_range, declared, min_word_count_option, run_options, seeds_option)
from .show import _fmt, _print_experiment, _print_plan


EXPERIMENT_OPTIONS = {
    "test": (Optional[List[str]], TestOpt),
    "heldout": (Optional[List[str]], typer.Option(None, "--heldout", help="Held-out companion test file "
                                                  "(repeatable; 'heldout_for' names the audited test, else "
                                                  "they pair in order). Default: the bundled companions.")),
    "estimator": (Optional[List[str]], typer.Option(None, "--estimator", "-e", help="Estimators whose "
                                                    "rankings are retrained, comma-separated: block,cg,"
                                                    "gradient-dot,block:damping=0.5 (default block; --model "
                                                    "lm: magic, ekfac with --from-scratch).")),
    "k": (str, typer.Option("0.1%,0.5%,1%", "--k", callback=_check_ks, help="Sizes of the document sets: "
                            "percentages of the corpus (0 < p < 100) or counts (>= 1), comma-separated.")),
    "seeds": (int, seeds_option(3, "Paired seeds (seed, "
                                "seed+1, ...; at most 100) for every condition.")),
    "conditions": (Optional[str], typer.Option(None, "--conditions",
                                               help="Comma-separated: baseline, remove-top, remove-bottom, "
                                               "upweight-top, remove-random, remove-ids, hard-debias, and "
                                               "the counterfactual edits swap-top, augment-top, swap-random, "
                                               "augment-random, augment-all (whole-corpus CDA). Default: "
                                               "baseline, remove-top, remove-bottom, upweight-top, "
                                               "remove-random, hard-debias (not for --model lm).")),
    "upweight": (int, typer.Option(5, "--upweight", min=2, help="Copies in all of each upweighted document.")),
    "mode": (str, typer.Option("scratch", "--mode", help="scratch (retrain from scratch: the honest "
                               "check), masked (--model lm or glove: the baseline's own run, the same batches, learning "
                               "rates and random draws, with the edited documents' weights at 0, or e "
                               "copies: what a metagradient predicts; LDS as bergson measures it), "
                               "warm-start (continue the baseline on the edited corpus for "
                               "--warm-epochs) or undo (the paper's gradient ascent on removed documents).")),
    "warm_epochs": (int, typer.Option(1, "--warm-epochs", min=1, help="Epochs (or ascent steps) for "
                                      "warm-start/undo.")),
    "remove_ids": (Optional[Path], typer.Option(None, "--remove-ids", help="File of document ids, one per "
                                                "line, for condition remove-ids (each must be in the corpus).")),
    "lds": (int, typer.Option(0, "--lds", min=0, help="Linear datamodeling score: retrain on this many random "
                              "subsets, each at the ranking's seed (same-seed) and at a seed it did not "
                              "use (cross-seed), and correlate predicted with actual changes (0: off). The "
                              "leaderboard adds the lexical floor's LDS on the same subsets.")),
    "lds_fraction": (float, typer.Option(0.5, "--lds-fraction", callback=lambda v: _in_range(v, 0, 1),
                                         help="Fraction of documents each LDS subset removes (0 < f < 1; "
                                         "0.01 is bergson's leaderboard).")),
    "ensemble": (int, EnsembleOpt),
    "fresh_seeds": (bool, typer.Option(False, "--fresh-seeds", help="Retrain on seeds the ranking did not "
                                       "use (after the --ensemble seeds): does the ranking hold for other "
                                       "trainings, not only the one it explains?")),
    "select": (str, typer.Option("top-k", "--select", help="top-k: edits by individual score; greedy: "
                                 "adds remove-selected, k documents chosen as a set on the re-measured "
                                 "group predictions (the move toward 0 as large as possible), beside "
                                 "remove-top at the same k.")),
    "no_quality": (bool, typer.Option(False, "--no-quality", help="Skip WordSim-353 / SimLex-999 / analogy "
                                      "evaluation of each model.")),
    "strict_oov": (bool, StrictOovOpt),
    "min_word_count": (int, MinWordCountOpt),
    "out_dir": (Optional[Path], typer.Option(None, "--out", "-o", help="Output folder (new, empty, or one "
                                             "this tool wrote). Default: "
                                             "reports/<corpus>-<model>-experiment-<hash>/")),
    "overwrite": (bool, typer.Option(False, "--overwrite", help="Reuse a folder holding another "
                                     "experiment (its files, and only those, are deleted first).")),
    "scheduler": (str, typer.Option("local", "--scheduler", callback=_check_scheduler, help="Where "
                                    "retrains run: 'local' (a Dask "
                                    "LocalCluster, one worker per core), a scheduler address "
                                    "(tcp://host:8786), or 'none' (in this process).")),
    "embeddings": (Optional[Path], EmbeddingsOpt),
    "vocab": (Optional[Path], VocabOpt),
    "checkpoint": (Optional[Path], typer.Option(None, "--checkpoint", help="--model lm --finetune: the "
                                                "local HF checkpoint every run fine-tunes (baselines and "
                                                "edits alike).")),
    "finetune": (bool, FinetuneOpt),
    "swap_pairs": (Optional[Path], SwapPairsOpt),
    "rank_by": (str, RankByOpt),
    "templates": (Optional[Path], TemplatesOpt),
    "measure": (str, MeasureOpt),
    "dry_run": (bool, typer.Option(False, "--dry-run", help="Print the plan (trainings, estimated time, "
                                   "workers) and stop: nothing trained, no folder written.")),
}


@run_options
@declared(EXPERIMENT_OPTIONS)
def experiment(opts: RunOptions = None, **options):
    """Retrain without (or with more of) the top-ranked documents and check that the bias moves as predicted.

    Conditions are compared with paired seeds against the baseline and against removing the same number of
    random documents. Results: results.csv (one row per estimator, test, condition, k, seed), experiment.json
    (means, sds, paired differences from random removal with p-values, predicted-vs-actual correlations).
    Finished retrains are kept in runs/; rerunning the same command resumes.
    """
    from ..api import bias_tests, check_templates, read_ids
    from ..api import experiment as run_experiment

    o = SimpleNamespace(**options)
    config = opts.config()
    _check_measure(opts, o.measure)
    check_templates(opts.family, o.templates)
    _check_rank_by(o.rank_by)
    if o.checkpoint is not None and not o.finetune:
        raise typer.BadParameter("experiment retrains: a checkpoint is retrained by fine-tuning it, add --finetune",
                                 param_hint="--checkpoint")
    config = _finetune_config(config, o.checkpoint, o.finetune, opts)
    tests = bias_tests(*(o.test or []))
    ids = read_ids(o.remove_ids) if o.remove_ids is not None else ()
    corp = opts.load_corpus()
    given = None
    if o.embeddings is not None:     # the rankings come from the user's model; retrains use its settings
        given = _user_model(o.embeddings, o.vocab, opts, corp)
    else:
        _vocab_needs_embeddings(o.vocab, o.embeddings)
    ests = _estimators(o.estimator, opts)
    with _progress() as update:
        summary = run_experiment(given if given is not None else config, corp, tests, heldout=o.heldout,
                                 estimator=ests, k=o.k, seeds=o.seeds, conditions=o.conditions, upweight=o.upweight,
                                 mode=o.mode, warm_epochs=o.warm_epochs, remove_ids=ids, lds=o.lds,
                                 lds_fraction=o.lds_fraction, ensemble=o.ensemble, fresh_seeds=o.fresh_seeds,
                                 select=o.select, quality=not o.no_quality, strict_oov=o.strict_oov,
                                 min_word_count=o.min_word_count, rank_by=o.rank_by, swaps=o.swap_pairs,
                                 templates=o.templates, out=o.out_dir,
                                 overwrite=o.overwrite, scheduler=None if o.scheduler == "none" else o.scheduler,
                                 progress=update, log=note, on_plan=_print_plan, dry_run=o.dry_run,
                                 measure=o.measure)
    if o.dry_run:
        out.print("dry run: nothing trained, no folder written")
        return
    _print_experiment(summary)
    out.print(f"scope: {clean(summary['scope'])}")
    page = summary.report_path      # written by api.experiment
    out.print(f"wrote {clean(summary.folder)}/results.csv and experiment.json ({summary['run_seconds']:.0f} s)\n"
              f"report: {clean(page)}")


DEBIAS_OPTIONS = {
    "test": (Optional[List[str]], TestOpt),
    "k": (str, typer.Option("1%", "--k", callback=_check_ks, help="How many top-ranked documents to edit per "
                            "test: a percentage of the corpus or a count.")),
    "method": (str, typer.Option("swap", "--method", help="remove (drop them), swap (replace each by its "
                                 "counterfactual rewrite: one-sided CDA) or augment (add the rewrite beside it, "
                                 "id <id>#cda: two-sided CDA).")),
    "estimator": (Optional[str], typer.Option(None, "--estimator", "-e", help="The ranking's estimator "
                                              "(default: the family's).")),
    "swap_pairs": (Optional[Path], SwapPairsOpt),
    "rank_by": (str, RankByOpt),
    "heldout": (Optional[List[str]], typer.Option(None, "--heldout", help="Held-out companion test file "
                                                  "(--rank-by concept leaves its words out).")),
    "strict_oov": (bool, StrictOovOpt),
    "min_word_count": (int, min_word_count_option(".")),
    "out_dir": (Optional[Path], typer.Option(None, "--out", "-o", help="Output folder (new, empty, or one this "
                                             "tool wrote). Default: reports/<corpus>-debias-<hash>/")),
    "overwrite": (bool, typer.Option(False, "--overwrite", help="Replace debias outputs of another config in "
                                     "--out (only the files this tool wrote).")),
    "embeddings": (Optional[Path], EmbeddingsOpt),
    "vocab": (Optional[Path], VocabOpt),
    "templates": (Optional[Path], TemplatesOpt),
    "ensemble": (int, EnsembleOpt),
    "select": (str, typer.Option("greedy", "--select", help="greedy: choose the edit as a set, each document "
                                 "judged by the re-measured prediction of the set so far plus itself; top-k: "
                                 "by individual score.")),
    "target": (Optional[float], typer.Option(None, "--target", min=0.0, help="Stop at the smallest edit "
                                             "predicted to bring |d| to this or below (default: the seed-noise "
                                             "band, the sd of d over --seeds models, else d's bootstrap CI "
                                             "half-width). --k stays the upper bound.")),
    "seeds": (Optional[int], seeds_option(None, "Train this many "
                                          "seeds (seed, seed+1, ...; at most 100) for the seed-noise band (the "
                                          "sd of d over them).")),
    "force": (bool, typer.Option(False, "--force", help="Edit even when a test's bias is not significant "
                                 "(p >= 0.05 or its 95% CI holds 0).")),
    "verify": (int, typer.Option(0, "--verify", min=0, help="Retrain this many seeds on the edited corpus and "
                                 "report the actual change against the predicted one, held-out tests and "
                                 "WordSim (in manifest.json and the report). After --ensemble, seeds the "
                                 "ensemble did not use.")),
}


@run_options
@declared(DEBIAS_OPTIONS)
def debias(opts: RunOptions = None, **options):
    """Write an edited corpus that should carry less of a bias: the documents that move each test's bias toward 0
    (cross-loss influence), removed, or rewritten with the gendered words swapped (counterfactual data
    augmentation); as few as the re-measured prediction needs to bring |d| inside the seed-noise band (or
    --target), --k at most. A bias that is not significant is refused (--force edits anyway). Writes corpus.jsonl (corpus.csv for a CSV input: the input's fields and format; added copies
    get ids <id>#cda, or #cda2... when taken), manifest.json (edited ids,
    each document's predicted change, the predicted effect, the swap list's hash, the command) and report.html,
    so you can retrain with your own pipeline (or check it with `biasaudit experiment --conditions
    baseline,swap-top,swap-random`)."""
    import shlex

    from ..api import check_debias_out, debias_corpus

    o = SimpleNamespace(**options)
    (est,) = _debias_checks(o, opts)
    tpl, tests, swaps = _debias_inputs(o, opts)
    corp = opts.load_corpus()
    check_debias_out(o.out_dir, corp)          # before any training: the folder is usable and outside the corpus
    if o.embeddings is not None and o.ensemble > 1:
        raise typer.BadParameter("--ensemble trains its seeds' models; it cannot be used with --embeddings",
                                 param_hint="--ensemble")
    if o.embeddings is not None and (o.seeds or 1) > 1:
        raise typer.BadParameter("--seeds trains other seeds' models; it cannot be used with --embeddings",
                                 param_hint="--seeds")
    models = ([_user_model(o.embeddings, o.vocab, opts, corp)] if o.embeddings is not None
              else _train_seeds(opts, opts.config(), o.ensemble, corpus=corp))
    with _progress() as update:
        result = debias_corpus(models[0], corp, tests, k=o.k, method=o.method, estimator=est, swaps=swaps,
                               rank_by=o.rank_by, heldout=o.heldout, strict_oov=o.strict_oov,
                               min_word_count=o.min_word_count, templates=tpl, ensemble=o.ensemble,
                               seed_models=models[1:], seeds=o.seeds, select=o.select, target=o.target,
                               force=o.force, verify=o.verify, out=o.out_dir, overwrite=o.overwrite,
                               device=opts.device, command=shlex.join(["biasaudit"] + sys.argv[1:]),
                               progress=update, log=note)
    _print_debias(result, o.method)


def _debias_checks(o, opts: RunOptions) -> list:
    """debias's --method, --rank-by and --select (usage errors), and the estimator, before anything is read."""
    from ..api import debias_methods, edit_selections

    if o.method not in debias_methods():
        raise typer.BadParameter(f"{o.method!r} is not one of {', '.join(debias_methods())}", param_hint="--method")
    _check_rank_by(o.rank_by)
    if o.select not in edit_selections():
        raise typer.BadParameter(f"{o.select!r} is not greedy or top-k", param_hint="--select")
    return _estimators([o.estimator] if o.estimator else None, opts)


def _debias_inputs(o, opts: RunOptions) -> tuple:
    """(templates, tests, swap list) of a debias run, each checked before any training."""
    from ..api import bias_tests, check_tests, read_swaps, read_templates

    tpl = read_templates(opts.family, o.templates) if opts.family.takes_templates else None
    tests = bias_tests(*(o.test or []))
    check_tests(opts.family, tests)     # a measure a test carries, checked before any training
    swaps = read_swaps(o.swap_pairs) if o.swap_pairs is not None else None
    return tpl, tests, swaps


def _print_debias(result, method: str) -> None:
    """What debias prints: each test's predicted change (its stopping rule and verification), the files."""
    folder, manifest, page = result.folder, result.summary, result.report_path
    for name, p in manifest["predicted"].items():
        out.print(f"{clean(name)}: d {p['effect_size_before']:+.2f} (p {p['p_value']:.3f}, 95% CI "
                  f"[{p['ci_low']:+.2f}, {p['ci_high']:+.2f}], {p['n_words']} words) -> "
                  f"{_fmt(p['predicted_effect_size'])} predicted after {method} of {p['n_edited']} documents "
                  f"(--k {manifest['k']} at most; the scores' sum says {_fmt(p['linear_prediction'])})", width=WIDTH)
        rule = p.get("stopping") or {}
        if rule:
            out.print(f"  {clean(rule['note'])} (band {rule['band']:.3f}: {rule['band_source']})", width=WIDTH)
        v = (manifest.get("verify") or {}).get("tests", {}).get(name)
        if v:
            out.print(f"  verified on {len(manifest['verify']['seeds'])} seed(s): actual change "
                      f"{_fmt(v['actual_change_mean'])} against {_fmt(v['predicted_change'])} predicted"
                      + (f" (ratio {v['actual_over_predicted']:.2f})" if v["actual_over_predicted"] is not None
                         else "") + f"; held-out {_fmt(v['heldout_change_mean'])}; WordSim "
                      f"{_fmt(v['wordsim353_baseline_mean'])} -> {_fmt(v['wordsim353_mean'])}", width=WIDTH)
        if not p["significant"]:
            out.print(f"  warning: {clean(name)}'s bias is not distinguishable from word-sampling noise (p >= 0.05 "
                      "or the CI includes 0): the edit would move a number that may not be there", width=WIDTH)
    wrote = manifest["corpus_out"]
    out.print(f"wrote {clean(folder)}/{wrote['file']} ({wrote['n_documents']:,} documents, "
              f"{manifest['n_edited']:,} edited) and manifest.json\nreport: {clean(page)}")
