from __future__ import annotations

"""The commands that list tests and measure a model: wordsets, weat, measure, report."""
import json
import sys
import warnings
from pathlib import Path
from typing import List, Optional

import typer
from rich.table import Table

from ..errors import ConfigError, DroppedWordsWarning
from ..terminal import clean
from .console import note, out
from .inputs import _load_checkpoint, _one_saved_model, _train_seeds
from .options import (CheckpointOpt, MinWordCountOpt, PermutationsOpt, RunOptions, StrictOovOpt, TemplatesOpt,
                      TestOpt, bootstrap_option, run_options, seeds_option)
from .show import _print_measures, _print_weat


def wordsets(as_json: bool = typer.Option(False, "--json", help="Print the tests as JSON.")):
    """List the bundled bias tests (targets X, Y; attributes A, B; positive effect = X with A, Y with B)."""
    from ..api import bundled_tests, default_tests

    tests = bundled_tests()
    if as_json:
        sys.stdout.write(json.dumps([t.to_dict() for t in tests.values()], indent=2) + "\n")
        return
    table = Table(title="Bundled bias tests (effect > 0: X goes with A and Y with B)")
    for col in ("name", "X", "Y", "A", "B", "source"):
        table.add_column(col)
    for t in tests.values():
        name = t.name + (" *" if t.name in default_tests() else "")
        table.add_row(name, *(f"{s.name} ({len(s.words)})" for s in t.sets), t.source.split(",")[0])
    out.print(table)
    out.print("* default tests. Custom tests: a JSON or YAML file with name, target_x, target_y, attribute_a, "
              "attribute_b (each {name, words}).")



@run_options
def weat_cmd(embeddings: Optional[Path] = typer.Argument(None, help="word2vec text/binary, GloVe text, gensim "
                                                         "KeyedVectors/Word2Vec file or biasaudit model folder. "
                                                         "Default: train (or reuse) a model on the corpus."),
             test: Optional[List[str]] = TestOpt,
             as_json: bool = typer.Option(False, "--json", help="Print a JSON list, one object per test and seed."),
             strict_oov: bool = StrictOovOpt,
             allow_oov: bool = typer.Option(False, "--allow-oov", hidden=True,
                                            help="Kept for old scripts: dropping missing words is the default."),
             seeds: int = seeds_option(1, "Train this many seeds (seed, "
                                       "seed+1, ...; at most 100) and report the spread of the effect size across "
                                       "them."),
             n_permutations: int = PermutationsOpt, n_bootstrap: int = bootstrap_option("CI"),
             min_word_count: int = MinWordCountOpt,
             checkpoint: Optional[Path] = CheckpointOpt, templates: Optional[Path] = TemplatesOpt,
             opts: RunOptions = None):
    """WEAT effect sizes, exact or Monte Carlo permutation p-values and bootstrap CIs for bias tests (for --model
    lm: the template-association effect size, same shape and sign).

    Test words missing from the model are dropped and listed (--strict-oov: an error naming them all)."""
    from ..api import bias_tests, check_carried_measures, load_model, measure, read_templates

    if strict_oov and allow_oov:
        raise typer.BadParameter("--allow-oov and --strict-oov contradict each other", param_hint="--strict-oov")
    tests = bias_tests(*(test or []))
    check_carried_measures(tests)
    if not opts.family.takes_templates and (checkpoint is not None or templates is not None):
        raise ConfigError("--checkpoint and --templates measure language models; add --model lm")
    tpl = read_templates(opts.family, templates)    # before any training
    _one_saved_model(seeds, embeddings, checkpoint)
    if embeddings is not None:
        models = [load_model(embeddings)]
    elif checkpoint is not None:
        models = [_load_checkpoint(checkpoint, opts)]
    else:
        models = _train_seeds(opts, opts.config(), seeds)
    with warnings.catch_warnings():      # the dropped words are printed below, as every command's notes
        warnings.simplefilter("ignore", DroppedWordsWarning)
        result = measure(models, tests, strict_oov=strict_oov, n_permutations=n_permutations,
                         n_bootstrap=n_bootstrap, min_word_count=min_word_count, templates=tpl)
    rows, skipped = list(result.rows), result.skipped
    for name, reason in skipped.items():
        note(f"{name}: skipped, {reason}")
    _print_weat(rows, as_json, len(models))


def report(folder: Path = typer.Argument(..., help="Output folder of `biasaudit score` or `biasaudit experiment`.")):
    """Write FOLDER/report.html: one self-contained page (no network) with the tests, the documents that carry
    the bias, the influence distribution and, for experiments, the retraining results."""
    from ..api import write_report

    out.print(f"report: {clean(write_report(folder))}")


@run_options
def measure_cmd(embeddings: Optional[Path] = typer.Argument(None, help="word2vec text/binary, GloVe text, gensim "
                                                            "KeyedVectors/Word2Vec file or biasaudit model folder. "
                                                            "Default: train (or reuse) a model on the corpus."),
                test: Optional[List[str]] = TestOpt,
                measure: Optional[List[str]] = typer.Option(None, "--measure", help="Measures to compute "
                                                            "(repeatable or comma-separated): weat, ripa, "
                                                            "direct-bias, rnd, mac, ect, rnsb. Default: all."),
                as_json: bool = typer.Option(False, "--json", help="Print a JSON object: measures (one object per "
                                             "test, measure and seed) and skipped (tests, and measures a test "
                                             "cannot feed, with the reason)."),
                strict_oov: bool = StrictOovOpt,
                seeds: int = seeds_option(1, "Train this many seeds "
                                          "(seed, seed+1, ...; at most 100) and read each measure's spread across "
                                          "them in its verdict."),
                n_permutations: int = PermutationsOpt, n_bootstrap: int = bootstrap_option("CIs"),
                min_word_count: int = MinWordCountOpt,
                opts: RunOptions = None):
    """Every word-vector bias measure side by side, from one bias test file: WEAT, RIPA (Ethayarajh et al.
    2019), Direct Bias (Bolukbasi et al. 2016), RND (Garg et al. 2018), MAC (Manzini et al. 2019), ECT (Dev &
    Phillips 2019) and RNSB (Sweeney & Najafian 2019), each with its bootstrap 95% CI over words, a permutation p
    where the measure has one (WEAT, RIPA, RND) and a verdict.

    Test words missing from the model are dropped and listed (--strict-oov: an error naming them all)."""
    from ..api import load_model, measures, measures_request

    measures_request(opts.family.name, test, measure)     # names, tests and family checked before any training
    _one_saved_model(seeds, embeddings)
    models = [load_model(embeddings)] if embeddings is not None else _train_seeds(opts, opts.config(), seeds)
    result = measures(models, test, names=measure, strict_oov=strict_oov, min_word_count=min_word_count,
                      n_permutations=n_permutations, n_bootstrap=n_bootstrap)
    rows, skipped, not_run = result.rows, result.skipped, result.not_run
    if as_json:
        sys.stdout.write(json.dumps({"measures": rows, "skipped": [{"test": n, "measure": None, "reason": r}
                                                                   for n, r in skipped.items()] + not_run},
                                    indent=2) + "\n")
        return
    for name, reason in skipped.items():
        note(f"{name}: skipped, {reason}")
    for r in not_run:
        note(f"{r['test']}: {r['measure']} not computed, {r['reason']}")
    _print_measures(rows)
