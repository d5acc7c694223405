from __future__ import annotations

"""The commands that train a model and rank the training documents: train, score."""
import warnings
from pathlib import Path
from types import SimpleNamespace
from typing import List, Optional

import typer

from ..errors import DroppedWordsWarning
from ..terminal import clean
from .console import WIDTH, _closing, _progress, err, note, out
from .inputs import (_check_measure, _estimators, _finetune_config, _load_checkpoint, _train_seeds, _user_model,
                     _vocab_needs_embeddings)
from .options import (CheckpointOpt, EmbeddingsOpt, EnsembleOpt, FinetuneOpt, MeasureOpt, RunOptions, SchedulerOpt,
                      StrictOovOpt, TemplatesOpt, TestOpt, VocabOpt, _count, declared, min_word_count_option,
                      run_options, seeds_option)
from .show import _next_step, _overview, _print_test


@run_options
def train(out_dir: Optional[Path] = typer.Option(None, "--out", "-o", help="Model folder to write (new, empty, or "
                                                 "one this tool wrote). Default: the cache (~/.cache/biasaudit or "
                                                 "$BIASAUDIT_CACHE)."),
          overwrite: bool = typer.Option(False, "--overwrite", help="Replace a model this tool saved in --out with "
                                         "another config (only its own files; nothing else in the folder)."),
          checkpoint: Optional[Path] = typer.Option(None, "--checkpoint", help="--model lm --finetune: the local HF "
                                                    "checkpoint to fine-tune."),
          finetune: bool = FinetuneOpt, opts: RunOptions = None):
    """Train a model on a corpus and save it (no pickle): skip-gram (gensim sg=1 or torch, negative sampling),
    GloVe (--model glove) or a small causal transformer LM (--model lm; saved as an HF checkpoint folder)."""
    from ..api import train as train_model

    config = opts.config()
    if checkpoint is not None and not finetune:
        raise typer.BadParameter("train takes --checkpoint only to fine-tune it: add --finetune",
                                 param_hint="--checkpoint")
    config = _finetune_config(config, checkpoint, finetune, opts)
    if out_dir is not None and finetune:     # the checkpoint a fine-tune starts from is never written
        ck, to = checkpoint.resolve(), out_dir.resolve()
        if to == ck or ck in to.parents or to in ck.parents:
            raise typer.BadParameter(f"{clean(out_dir)} is, is inside or contains the checkpoint "
                                     f"{clean(checkpoint)}; choose a folder apart from it", param_hint="--out")
    if out_dir is None:
        _train_seeds(opts, config, 1)
        return
    corpus = opts.load_corpus()
    got = []
    with _progress() as update:       # --out is the only copy: a model not in the cache is not cached
        # the folder refused (file, foreign folder, other config, not writable) before any training
        train_model(corpus, config, device=opts.device, out=out_dir, overwrite=overwrite, progress=update,
                    on_model=lambda *a: got.append(a))
    model, _, cached = got[0]
    fam = opts.family
    err.print(f"{'reused cached' if cached else 'trained'} {fam.describe(config)} on {clean(corpus.name)} "
              f"(seed {config.seed}, {fam.size(model)} {fam.unit})")
    out.print(f"saved {clean(out_dir)}" + (" (read from the model cache)" if cached else
                                           " (the only copy: nothing added to the model cache)"))
    out.print(_closing("done"))


SCORE_OPTIONS = {
    "test": (Optional[List[str]], TestOpt),
    "query": (Optional[str], typer.Option(None, "--query", help="Score a word query instead: which documents "
                                          "pull WORD toward --toward words (and away from --away words).")),
    "toward": (Optional[str], typer.Option(None, "--toward", help="Comma-separated words for --query.")),
    "away": (Optional[str], typer.Option(None, "--away", help="Comma-separated words for --query.")),
    "estimator": (Optional[str], typer.Option(None, "--estimator", "-e", help="Embeddings: block (default), cg, "
                                              "lissa or gradient-dot; --model lm: magic (default: exact "
                                              "metagradients through the recorded audited phase; also for "
                                              "--backend torch and GloVe), ekfac (the default for --from-scratch "
                                              "and checkpoints trained elsewhere) or gradient-dot; any model: "
                                              "lexical (a floor: "
                                              "co-occurrence of the tests' words). With settings: "
                                              "'cg:damping=0.05,max_iter=300'; skip-gram "
                                              "'block:anchor=optimum' re-solves group predictions from each "
                                              "word's optimum (docs/results/debias.md).")),
    "pairs": (Optional[str], typer.Option(None, "--pairs", help="--model lm: JSONL of paired sentences "
                                          "{\"more\": ..., \"less\": ...} (CrowS-Pairs fields sent_more/sent_less "
                                          "also read), scored as one more measure; or the bundled CrowS-Pairs: "
                                          "crows-pairs (one measure per bias type: crows-pairs:gender, ...) or "
                                          "crows-pairs:TYPE. A path that exists is always read as a file.")),
    "strict_oov": (bool, StrictOovOpt),
    "out_dir": (Optional[Path], typer.Option(None, "--out", "-o", help="Output folder (new, empty, or one this "
                                             "tool wrote). Default: reports/<corpus>-<model>-<hash>/")),
    "top": (int, typer.Option(10, "--top", min=1, help="Documents to show in each direction.")),
    "seeds": (Optional[int], seeds_option(None, "Train this many "
                                          "seeds (seed, seed+1, ...; at most 100): the ranking comes from the "
                                          "first; the others give the effect size's spread over seeds and "
                                          "make the ranking's stability resample seeds as well as words. "
                                          "Default: 1, and 3 for --model lm (whose measure varies across seeds "
                                          "as much as between corpora).")),
    "resamples": (int, typer.Option(100, "--resamples", callback=_count("resamples"), help="Word-set "
                                    "resamples (bootstrap) for each document's stability (0: none; at most "
                                    "10,000).")),
    "min_word_count": (int, min_word_count_option(" (listed, like missing words): rankings not driven by "
                                                   "rare words.")),
    "overwrite": (bool, typer.Option(False, "--overwrite", help="Replace results of another config in --out "
                                     "(only the files this tool wrote there).")),
    "scheduler": (Optional[str], SchedulerOpt),
    "checkpoint": (Optional[Path], CheckpointOpt),
    "embeddings": (Optional[Path], EmbeddingsOpt),
    "vocab": (Optional[Path], VocabOpt),
    "finetune": (bool, FinetuneOpt),
    "templates": (Optional[Path], TemplatesOpt),
    "ensemble": (int, EnsembleOpt),
    "measure": (str, MeasureOpt),
    "metasmoothness": (Optional[int], typer.Option(None, "--metasmoothness", min=0, max=10, help="Directions of "
                       "the audited run's metasmoothness check (2 trainings each): whether the run responds smoothly "
                       "enough to the documents' weights for rankings to confirm on retraining; printed first, in "
                       "summary.json and the report. Default: 2 for --model lm trained here, else 0 (none).")),
}


@run_options
@declared(SCORE_OPTIONS)
def score(opts: RunOptions = None, **options):
    """Rank every training document by its contribution to a bias (cross-loss influence).

    delta_bias_if_removed(d) = grad B^T H^-1 grad L_d: the predicted change of the effect size if document d is
    removed and the model retrained. NEGATIVE means the document drives the bias UP.
    delta_bias_if_upweighted(d) (one more copy of d) is its negative (GloVe: computed from the added counts).
    With --model lm the measure is the template association of each test (and --pairs), and the influence is
    magic's exact metagradient of the audited phase (kronfluence's EK-FAC with --from-scratch, or for a checkpoint
    trained elsewhere).
    """
    from ..api import estimators, run_config
    from ..api import score as score_documents

    o = SimpleNamespace(**options)
    config = opts.config()
    (est,) = _estimators([o.estimator] if o.estimator else None, opts)
    _check_measure(opts, o.measure)
    request = _score_request(o, opts)
    if o.checkpoint is not None and not o.finetune and (o.seeds or 1) > 1:
        raise typer.BadParameter("--seeds needs training; it cannot be used with --checkpoint (add --finetune to "
                                 "fine-tune it with each seed)", param_hint="--seeds")
    config = _finetune_config(config, o.checkpoint, o.finetune, opts)
    if o.finetune:
        o.checkpoint = None          # the checkpoint is the starting point of training, not the audited model
    if o.ensemble > 1 and o.checkpoint is not None:
        raise typer.BadParameter("--ensemble needs training; a checkpoint is one model (add --finetune to "
                                 "fine-tune it with each seed)", param_hint="--ensemble")
    _vocab_needs_embeddings(o.vocab, o.embeddings)
    corp = opts.load_corpus()
    models = _score_models(o, opts, config, corp)
    if not o.estimator:      # the family's default for the audited model's run, as api.score decides it
        (est,) = estimators(None, opts.family, run_config(models[0]))
    words = lambda s: [w.strip().lower() for w in (s or "").split(",") if w.strip()]
    with _progress() as update, warnings.catch_warnings():
        warnings.simplefilter("ignore", DroppedWordsWarning)    # in the notes, printed below
        summary = score_documents(models[0], corp, o.test, estimator=est, query=o.query or None,
                                  toward=words(o.toward), away=words(o.away), request=request, seeds=len(models),
                                  seed_models=models[1:], ensemble=o.ensemble, resamples=o.resamples,
                                  min_word_count=o.min_word_count, strict_oov=o.strict_oov, top=o.top,
                                  out=o.out_dir, overwrite=o.overwrite, scheduler=o.scheduler, device=opts.device,
                                  progress=update, measure=o.measure, metasmoothness=o.metasmoothness)
    _print_score(summary, models, est)


def _score_request(o, opts: RunOptions):
    """score's checks before any training (``api.score_request``): tests or query, templates, pairs, the tests'
    measures and names, and the output folder (a file, a folder of other files, a read-only disk), held until the
    command ends."""
    from ..api import score_request

    if o.query is not None and not o.test and o.measure.strip().lower() != "weat":   # (with --test: the API's)
        raise typer.BadParameter("--measure reads bias tests (--test); a --query is ranked by its own word "
                                 "association", param_hint="--measure")
    return score_request(opts.family, o.test, query=o.query, toward=o.toward, away=o.away, pairs=o.pairs,
                         templates=o.templates, measure=o.measure, out=o.out_dir)


def _score_models(o, opts: RunOptions, config, corp) -> list:
    """The audited model and the other seeds' (--seeds, --ensemble): the user's (--embeddings; its other seeds
    trained with its settings), a checkpoint, or trained here."""
    from dataclasses import replace

    from ..api import seed_count

    seeds = seed_count(opts.family, o.seeds, o.ensemble, trained=o.checkpoint is None)
    if o.embeddings is None:
        return ([_load_checkpoint(o.checkpoint, opts)] if o.checkpoint is not None
                else _train_seeds(opts, config, seeds, corpus=corp))
    models = [_user_model(o.embeddings, o.vocab, opts, corp)]
    if seeds > 1:        # the spread over seeds: the same settings, trained here
        models += _train_seeds(opts, replace(models[0].config, seed=models[0].config.seed + 1), seeds - 1,
                               corpus=corp)
    return models


def _print_score(summary, models: list, est) -> None:
    """What score prints: the notes, the overview, each test's documents, the files, the next step."""
    for n in summary["notes"]:
        note(n)
    if _overview(summary):
        out.print(_overview(summary), width=WIDTH)
    for t in summary["tests"]:
        _print_test(t, est.label)
    page = summary.report_path      # written by api.score
    out.print(f"\nwrote {clean(summary['out_dir'])}/scores.jsonl and summary.json\nreport: {clean(page)}")
    if _overview(summary):          # the answer again at the end, where a long run leaves the screen
        out.print("\n" + _overview(summary), width=WIDTH)
    if _next_step(summary, models):
        out.print(_next_step(summary, models), soft_wrap=True)
    out.print(_closing("done"), width=WIDTH)
