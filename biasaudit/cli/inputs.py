from __future__ import annotations

"""The models a command audits: trained (each seed's line printed), loaded from a checkpoint or from the user's
files, and the estimators and measure asked for, checked before any training."""
from pathlib import Path
from typing import Optional

import typer

from ..errors import ConfigError
from ..terminal import clean
from .console import _progress, err, note
from .options import RunOptions


def _estimators(specs, opts: "RunOptions") -> list:
    """The estimators asked for (the family's default for the run when none), checked against the family before
    training."""
    from ..api import estimators, parse_estimators

    fam = opts.family
    try:
        config = opts.config()
    except ConfigError:
        config = None          # reported where the config is built, with its own message
    if not specs:
        return estimators(None, fam, config)          # the family's default for this config
    try:
        ests = parse_estimators(specs)
    except ConfigError as e:   # a setting out of range is a usage error, like any option's
        if "unknown estimator" in str(e):
            raise
        raise typer.BadParameter(str(e), param_hint="--estimator") from e
    return estimators(ests, fam, config)



def _finetune_config(config, checkpoint: Optional[Path], finetune: bool, opts: "RunOptions"):
    """The LM config that fine-tunes ``checkpoint`` (``--finetune``), or ``config`` unchanged."""
    from ..api import finetune_config

    _scratch_or_checkpoint(checkpoint, opts)
    if not finetune:
        return config
    if not opts.family.takes_templates:
        raise ConfigError("--finetune fine-tunes a language model; add --model lm --checkpoint DIR")
    if checkpoint is None:
        raise typer.BadParameter("--finetune needs --checkpoint DIR (the model to fine-tune)", param_hint="--finetune")
    return finetune_config(config, checkpoint)


def _scratch_or_checkpoint(checkpoint: Optional[Path], opts: "RunOptions") -> None:
    """--from-scratch (a new network) and --checkpoint (that model, or with --finetune its fine-tune): a usage
    error together, not one of them silently dropped."""
    if opts.from_scratch and checkpoint is not None:
        raise typer.BadParameter("--from-scratch trains a new network on the corpus; --checkpoint DIR audits that "
                                 "model (with --finetune, fine-tunes it): give one of them", param_hint="--from-scratch")


def _load_checkpoint(checkpoint: Path, opts: "RunOptions"):
    from ..api import load_model

    _scratch_or_checkpoint(checkpoint, opts)
    fam = opts.family
    if not fam.takes_templates:
        raise ConfigError("--checkpoint loads a language model; add --model lm")
    m = load_model(checkpoint, model=fam.name, device=opts.device)
    err.print(f"loaded {clean(checkpoint)} ({m.meta.get('parameters') or sum(p.numel() for p in m.net.parameters()):,} "
              f"parameters, {len(m.encoder):,} tokens)")
    return m


def _check_rank_by(rank_by: str) -> None:
    if rank_by not in ("test", "concept"):
        raise typer.BadParameter(f"{rank_by!r} is not test or concept", param_hint="--rank-by")


def _vocab_needs_embeddings(vocab: Optional[Path], embeddings: Optional[Path]) -> None:
    if vocab is not None and embeddings is None:
        raise typer.BadParameter("--vocab goes with --embeddings (GloVe C output)", param_hint="--vocab")


def _one_saved_model(seeds: int, *saved) -> None:
    """A saved model (any of ``saved`` given) is one model: --seeds, which trains, cannot go with it."""
    if any(s is not None for s in saved) and seeds > 1:
        raise typer.BadParameter("--seeds needs training; it cannot be used with a saved model", param_hint="--seeds")


def _user_model(path: Path, vocab: Optional[Path], opts: RunOptions, corpus):
    """A model the user trained elsewhere (--embeddings), checked against the corpus (``api.load_model``: the
    settings a file brings may not be given again)."""
    from ..api import FILE_SETTINGS, load_model

    settings = {n: getattr(opts, n) for n in FILE_SETTINGS + ("embedding",)}
    model = load_model(path, corpus, model=opts.family.name, vocab=vocab, **settings)
    origin = model.meta["origin"]
    err.print(f"loaded {clean(str(path))}: {origin['kind']}, {len(model.vocab):,} words, "
              f"{model.vectors.shape[1]} dimensions; {clean(origin['checks'][-1])}")
    return model


def _train_seeds(opts: RunOptions, config, n_seeds: int, corpus=None) -> list:
    """``api.train_seeds``, one seed at a time (each with its own progress display), each model's line printed."""
    from dataclasses import replace

    from ..api import check_device, model_family, train_seeds

    check_device(opts.device)   # an unusable device is an error before the corpus is read
    fam = model_family(config)
    corpus = corpus or opts.load_corpus()
    models = []
    for k in range(n_seeds):
        got = []
        with _progress() as update:
            train_seeds(corpus, replace(config, seed=config.seed + k), 1, device=opts.device, progress=update,
                        log=note if k == 0 else None, on_model=lambda *a: got.append(a))
        model, cfg, cached = got[0]
        err.print(f"{'reused cached' if cached else 'trained'} {fam.describe(cfg)} on {clean(corpus.name)} "
                  f"(seed {cfg.seed}, {fam.size(model)} {fam.unit}"
                  + ("" if cached else f", {model.meta.get('train_seconds', 0):.1f} s") + ")")
        models.append(model)
    return models



def _check_measure(opts, measure: str) -> None:
    """--measure checked before any training: a usage error (exit 2) naming the choices."""
    from ..api import check_measure

    try:
        check_measure(opts.family, measure)
    except ConfigError as e:
        raise typer.BadParameter(str(e), param_hint="--measure") from e

