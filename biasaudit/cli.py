"""The ``biasaudit`` command line: thin typer commands that parse options, call the library and print.

Exit codes: 0 success; 1 a clear one-line error (a BiasAuditError, or an OS fault such as a full disk, naming the
path and the cause; ``--debug`` shows the traceback); 2 a usage error (unknown option, a count or size out of
range). Everything printed that comes from input goes through ``biasaudit.terminal.clean``.
"""
from __future__ import annotations

import time as _time

_IMPORT_STARTED = _time.perf_counter()   # this module's import (typer, rich, torch): the run's first seconds

import functools  # noqa: E402
import inspect
import json
import sys
import traceback
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional

import typer
from rich.console import Console
from rich.table import Table

from .errors import BiasAuditError, BiasAuditWarning, ConfigError, DroppedWordsWarning
from .terminal import clean, strip_controls

app = typer.Typer(add_completion=False, no_args_is_help=True, rich_markup_mode=None, pretty_exceptions_enable=False,
                  help="Audit social bias in word embeddings and trace it to the training documents that caused it.")
# a pipe or file gets wide lines rather than tables squeezed to 80 columns
out = Console(width=None if sys.stdout.isatty() else 200, highlight=False)
err = Console(stderr=True, width=None if sys.stderr.isatty() else 200, highlight=False)


def note(message: str) -> None:
    err.print(f"[yellow]note:[/] {clean(message)}", soft_wrap=True)


@app.callback()
def _root(debug: bool = typer.Option(False, "--debug", help="Show the full traceback on errors.")):
    """Audit social bias in word embeddings and trace it to the training documents that caused it."""
    import time

    _RUN["t0"], _RUN["phases"] = time.perf_counter(), {}
    started = _RUN.pop("imports", None)      # the process's first command: its start-up counts too
    if started is not None:
        _RUN["t0"] -= started
        _RUN["phases"]["starting"] = started


# ------------------------------------------------------------------ options shared by commands, declared once
@dataclass(frozen=True)
class RunOptions:
    """The corpus and training options every training command takes (None: the model family's default)."""
    corpus: Optional[str]
    id_field: str
    text_field: str
    tokenizer: str
    model: str
    vector_size: Optional[int]
    window: Optional[int]
    min_count: Optional[int]
    negative: Optional[int]
    epochs: Optional[int]
    seed: Optional[int]
    workers: Optional[int]
    sample: Optional[float]
    backend: Optional[str]
    embedding: Optional[str]
    lm_config: Optional[str]
    device: str

    def config(self):
        from .models import make_config
        return make_config(self.model, self.lm_config, vector_size=self.vector_size, window=self.window,
                           min_count=self.min_count, negative=self.negative, epochs=self.epochs, seed=self.seed,
                           workers=self.workers, sample=self.sample, backend=self.backend, embedding=self.embedding)

    @property
    def family(self):
        from .models import get_family
        return get_family(self.model)

    def load_corpus(self):
        from .corpus import load_corpus
        if self.tokenizer != "biasaudit" and self.family.unit == "tokens":
            raise ConfigError("--tokenizer applies to word-vector models; a language model reads text with its own "
                              "tokenizer")
        return load_corpus(self.corpus, self.id_field, self.text_field, self.tokenizer)


def _in_range(value, low: float, high: float, low_open: bool = True):
    """A fraction option's check: in (low, high), or [low, high) when not ``low_open`` (a usage error)."""
    if value is None:
        return value
    if not ((value > low if low_open else value >= low) and value < high):
        raise typer.BadParameter(f"{value} is not in {'(' if low_open else '['}{low:g}, {high:g})")
    return value


def _count(name: str):
    """The callback of a count option: checked where the API checks it (``measures.options.check_count``), a
    usage error (exit 2) when out of range."""
    def check(value):
        from .measures.options import check_count
        try:
            return value if value is None else check_count(name, value)   # None: the command's default
        except ConfigError as e:
            raise typer.BadParameter(e.for_cli()) from e
    return check


def _tokenizer_spec(value: str) -> str:
    from .tokens import Tokenizer
    try:
        Tokenizer(value)
    except ConfigError as e:
        raise typer.BadParameter(e.for_cli().replace("--tokenizer ", "")) from e
    return value


def _option_help(name: str, extra: str = "") -> str:
    """An option's help, read from the family configs that have the field (their help text and each default)."""
    from dataclasses import MISSING, fields

    from .models import FAMILIES

    text, defaults = "", []
    for fam in FAMILIES.values():
        if fam.config_type is None or name not in fam.options:
            continue
        f = {x.name: x for x in fields(fam.config_type)}.get(name)
        if f is None:
            continue
        text = text or f.metadata.get("help", "")
        if f.default is not MISSING:
            defaults.append(f"{fam.label} {f.default}")
    only = "" if len(defaults) > 1 else f"{defaults[0].split(' ')[0]} only. " if defaults else ""
    return f"{only}{text} {extra}Default: {'; '.join(defaults)}.".strip()


from .models.base import LIMITS  # noqa: E402  (the option bounds are the configs' own)

_RUN_OPTIONS = {
    "corpus": (Optional[str], typer.Option(None, "--corpus", "-c", help="Bundled corpus name (gcide, wordnet), file, "
               "folder, glob or hub dataset. Default: the bundled GCIDE dictionary.")),
    "id_field": (str, typer.Option("id", "--id-field", help="Field holding the document id (else file:line).")),
    "text_field": (str, typer.Option("text", "--text-field", help="Field holding the document text.")),
    "tokenizer": (str, typer.Option("biasaudit", "--tokenizer", callback=lambda v: _tokenizer_spec(v), help="How documents become tokens: biasaudit "
                  "(lowercase runs of letters and digits), whitespace (the text split on whitespace, case and "
                  "punctuation kept), simple_preprocess (gensim's gensim.utils.simple_preprocess) or field:NAME "
                  "(the field NAME holds each document's list of tokens; JSON or Parquet). Match the preprocessing "
                  "your --embeddings model was trained with.")),
    "model": (str, typer.Option("skipgram", "--model", "-m", help="Model family: skipgram (default), glove "
              "(GloVe-style weighted least squares on co-occurrence counts) or lm (a small causal transformer "
              "language model, trained here or loaded with --checkpoint).")),
    "vector_size": (Optional[int], typer.Option(None, "--vector-size", min=1, max=LIMITS["vector_size"],
                                                help=_option_help("vector_size"))),
    "window": (Optional[int], typer.Option(None, "--window", min=1, max=LIMITS["window"], help=_option_help("window"))),
    "min_count": (Optional[int], typer.Option(None, "--min-count", min=1, max=2 ** 31 - 1,
                                              help=_option_help("min_count"))),
    "negative": (Optional[int], typer.Option(None, "--negative", min=1, max=LIMITS["negative"],
                                             help=_option_help("negative"))),
    "epochs": (Optional[int], typer.Option(None, "--epochs", min=1, max=LIMITS["epochs"], help=_option_help("epochs"))),
    "seed": (Optional[int], typer.Option(None, "--seed", min=0, max=2 ** 32 - 1, help=_option_help("seed"))),
    "workers": (Optional[int], typer.Option(None, "--workers", min=1, max=LIMITS["workers"],
                                            help=_option_help("workers"))),
    "sample": (Optional[float], typer.Option(None, "--sample", callback=lambda v: _in_range(v, 0, 1, low_open=False),
                                             help=_option_help("sample"))),
    "backend": (Optional[str], typer.Option(None, "--backend", help=_option_help("backend"))),
    "embedding": (Optional[str], typer.Option(None, "--embedding", help=_option_help("embedding"))),
    "lm_config": (Optional[str], typer.Option(None, "--lm-config", help="--model lm: LMConfig settings, e.g. "
                  "'hidden_size=64,num_layers=2,max_len=64,learning_rate=0.003,batch_size=32' (defaults: a "
                  "2-layer, 64-wide Llama).")),
    "device": (str, typer.Option("cpu", "--device", help="torch device for --backend torch, GloVe, LMs and cg/lissa "
               "solves: cpu, cuda, cuda:N or auto.")),
}


def run_options(fn):
    """Add the shared corpus and training options to a command; it receives them as ``opts: RunOptions``."""
    sig = inspect.signature(fn, eval_str=True)
    own = [p for p in sig.parameters.values() if p.name != "opts"]
    extra = [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=opt, annotation=ann)
             for name, (ann, opt) in _RUN_OPTIONS.items()]

    @functools.wraps(fn)
    def wrapper(**kw):
        opts = RunOptions(**{name: kw.pop(name) for name in _RUN_OPTIONS})
        return fn(**kw, opts=opts)

    wrapper.__signature__ = sig.replace(parameters=own + extra)
    wrapper.__annotations__ = {p.name: p.annotation for p in own + extra}
    return wrapper


TestOpt = typer.Option(None, "--test", "-t", help="Bundled test name or test file (repeatable). Default: math-arts, "
                       "science-arts, career-family.")
StrictOovOpt = typer.Option(False, "--strict-oov", help="Fail on test words missing from the model instead of "
                            "dropping them. Default: they are dropped and listed, and a test left with fewer than 2 "
                            "words in a set is skipped with a note.")
CheckpointOpt = typer.Option(None, "--checkpoint", help="--model lm: a local HF causal-LM checkpoint folder to audit "
                             "instead of training one (safetensors weights; nothing is downloaded).")
FinetuneOpt = typer.Option(False, "--finetune", help="--model lm --checkpoint DIR: fine-tune the checkpoint on "
                           "the corpus (its architecture and tokenizer; --epochs and --lm-config learning_rate, "
                           "batch_size, max_len apply) and audit the fine-tuned model's training documents. "
                           "GPT-2 (Conv1D), GPT-NeoX/Pythia and Llama-style checkpoints.")
TemplatesOpt = typer.Option(None, "--templates", help="--model lm: template file (JSON list or one per line, each "
                            "with {target} and {attribute}). Default: the bundled templates.")
SwapPairsOpt = typer.Option(None, "--swap-pairs", help="Word pairs for counterfactual rewrites: JSON (a list of "
                            "[word, word]) or TSV/CSV rows of two words. Default: the bundled 130 gender pairs "
                            "(biasaudit/data/wordsets/swap_pairs.json); a test's first names are paired in order.")
RankByOpt = typer.Option("test", "--rank-by", help="Rank documents by their influence on each test (test) or on the "
                         "test plus a test of the same attributes whose targets are the swap list's gendered words "
                         "outside the test and its held-out companion (concept).")
EmbeddingsOpt = typer.Option(None, "--embeddings", help="Audit a model you trained: a full gensim Word2Vec file "
                             "saved with model.save() (skip-gram, negative sampling; its settings are read from the "
                             "file), or with --model glove the GloVe C tool's parameters (vectors.bin, or the text "
                             "file of glove -model 0) and --vocab. Its vocabulary must match the corpus under "
                             "--tokenizer.")
VocabOpt = typer.Option(None, "--vocab", help="--model glove --embeddings: vocab_count's vocab.txt (word count per "
                        "line). GloVe C settings not given (--window, --epochs, --embedding) are the C tool's "
                        "defaults: window 15, x_max 100, alpha 0.75, 25 iterations, W + W~.")


def _check_scheduler(value: Optional[str]) -> Optional[str]:
    from .distributed import check_scheduler
    try:
        return value if value in (None, "none") else check_scheduler(value)
    except ConfigError as e:
        raise typer.BadParameter(str(e).removeprefix("--scheduler: ")) from e


SchedulerOpt = typer.Option(None, "--scheduler", callback=_check_scheduler, help="Dask scheduler for sharded work: "
                            "'local' (a LocalCluster sized to this machine) or an address such as tcp://host:8786. "
                            "Default: in-process.")


def _estimators(specs, opts: "RunOptions") -> list:
    """The estimators asked for (the family's default when none), checked against the family before training."""
    from .influence.estimators import check_estimators, parse_estimators

    fam = opts.family
    try:
        ests = parse_estimators(specs or [fam.default_estimator])
    except ConfigError as e:   # a setting out of range is a usage error, like any option's
        if "unknown estimator" in str(e):
            raise
        raise typer.BadParameter(str(e), param_hint="--estimator") from e
    try:
        config = opts.config()
    except ConfigError:
        config = None          # reported where the config is built, with its own message
    check_estimators(ests, fam, config)
    return ests


_RUN = {"t0": 0.0, "phases": {}}    # this command's start and its phases' times (for the closing line)


@contextmanager
def _progress():
    """The run's phases on stderr (``biasaudit.terminal.Phases``): a bar per phase with its own count on a
    terminal, one plain line per phase otherwise; yields the callback (stage, done, total). Each phase's time
    is added to the run's, for the closing line (``_closing``)."""
    from .terminal import Phases

    phases = Phases(err)
    try:
        with phases:
            yield phases
    finally:
        for stage, t in phases.timings().items():
            _RUN["phases"][stage] = _RUN["phases"].get(stage, 0.0) + t


def _closing(what: str) -> str:
    """'WHAT in T (each phase's time)': the whole command's time since it started, and each phase's."""
    import time

    from .terminal import closing_line

    return closing_line(what, time.perf_counter() - _RUN["t0"], _RUN["phases"])


def _finetune_config(config, checkpoint: Optional[Path], finetune: bool, opts: "RunOptions"):
    """The LM config that fine-tunes ``checkpoint`` (``--finetune``), or ``config`` unchanged."""
    from dataclasses import replace

    if not finetune:
        return config
    if not opts.family.takes_templates:
        raise ConfigError("--finetune fine-tunes a language model; add --model lm --checkpoint DIR")
    if checkpoint is None:
        raise typer.BadParameter("--finetune needs --checkpoint DIR (the model to fine-tune)", param_hint="--finetune")
    if not (checkpoint / "config.json").is_file():
        raise ConfigError(f"{checkpoint}: not a model folder (no config.json)")
    return replace(config, finetune=str(checkpoint.resolve()))


def _load_checkpoint(checkpoint: Path, opts: "RunOptions"):
    from .api import load_model

    fam = opts.family
    if not fam.takes_templates:
        raise ConfigError("--checkpoint loads a language model; add --model lm")
    m = load_model(checkpoint, model=fam.name, device=opts.device)
    err.print(f"loaded {clean(checkpoint)} ({m.meta.get('parameters') or sum(p.numel() for p in m.net.parameters()):,} "
              f"parameters, {len(m.encoder):,} tokens)")
    return m


FILE_SETTINGS = ("vector_size", "window", "min_count", "negative", "epochs", "sample", "workers", "backend", "seed")


def _user_model(path: Path, vocab: Optional[Path], opts: RunOptions, corpus):
    """A model the user trained elsewhere (--embeddings), checked against the corpus (``api.load_model``)."""
    from .api import load_model

    fam = opts.family
    if fam.name == "skipgram":
        given = [n for n in FILE_SETTINGS if getattr(opts, n) is not None]
        if given:
            raise typer.BadParameter("a gensim model's settings are read from its file; drop "
                                     + ", ".join(f"--{n.replace('_', '-')}" for n in given), param_hint="--embeddings")
        if vocab is not None:
            raise typer.BadParameter("--vocab goes with GloVe C output (--model glove)", param_hint="--vocab")
    elif fam.name == "glove":
        if vocab is None:
            raise typer.BadParameter("GloVe C output needs --vocab vocab.txt (vocab_count's output)",
                                     param_hint="--embeddings")
        for n in ("vector_size", "min_count"):
            if getattr(opts, n) is not None:
                raise typer.BadParameter(f"--{n.replace('_', '-')} is read from the GloVe files",
                                         param_hint="--embeddings")
    settings = {} if fam.name != "glove" else {"window": opts.window, "epochs": opts.epochs,
                                               "embedding": opts.embedding, "seed": opts.seed}
    model = load_model(path, corpus, model=fam.name, vocab=vocab, **settings)
    origin = model.meta["origin"]
    err.print(f"loaded {clean(str(path))}: {origin['kind']}, {len(model.vocab):,} words, "
              f"{model.vectors.shape[1]} dimensions; {clean(origin['checks'][-1])}")
    return model


def _train_seeds(opts: RunOptions, config, n_seeds: int, corpus=None) -> list:
    """``api.train_seeds``, one seed at a time (each with its own progress display), each model's line printed."""
    from dataclasses import replace

    from .api import train_seeds
    from .models import family_of
    from .models.base import resolve_device

    resolve_device(opts.device)   # an unusable device is an error before the corpus is read
    fam = family_of(config)
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


# ------------------------------------------------------------------ commands
@app.command()
def wordsets(as_json: bool = typer.Option(False, "--json", help="Print the tests as JSON.")):
    """List the bundled bias tests (targets X, Y; attributes A, B; positive effect = X with A, Y with B)."""
    from .wordsets import DEFAULT_TESTS, bundled_tests

    tests = bundled_tests()
    if as_json:
        sys.stdout.write(json.dumps([t.to_dict() for t in tests.values()], indent=2) + "\n")
        return
    table = Table(title="Bundled bias tests (effect > 0: X goes with A and Y with B)")
    for col in ("name", "X", "Y", "A", "B", "source"):
        table.add_column(col)
    for t in tests.values():
        name = t.name + (" *" if t.name in DEFAULT_TESTS else "")
        table.add_row(name, *(f"{s.name} ({len(s.words)})" for s in t.sets), t.source.split(",")[0])
    out.print(table)
    out.print("* default tests. Custom tests: a JSON or YAML file with name, target_x, target_y, attribute_a, "
              "attribute_b (each {name, words}).")


@app.command()
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
    from .models.folder import model_output

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
    if out_dir is not None:   # refused (file, foreign folder, other config, not writable) before any training
        model_output(out_dir, {"model": opts.family.name, "config": config.to_dict()}, overwrite=overwrite)
    if out_dir is None:
        _train_seeds(opts, config, 1)
        return
    from .models import train_or_load

    corpus = opts.load_corpus()
    with _progress() as update:       # --out is the only copy: a model not in the cache is not cached
        model, cached = train_or_load(corpus, config, device=opts.device, store=False,
                                      progress=lambda s, d, t: update(f"training seed {config.seed}"
                                                                      if s == "train" else s, d, t))
    model.save(out_dir)
    fam = opts.family
    err.print(f"{'reused cached' if cached else 'trained'} {fam.describe(config)} on {clean(corpus.name)} "
              f"(seed {config.seed}, {fam.size(model)} {fam.unit})")
    out.print(f"saved {clean(out_dir)}" + (" (read from the model cache)" if cached else
                                           " (the only copy: nothing added to the model cache)"))
    out.print(_closing("done"))


@app.command("weat")
@run_options
def weat_cmd(embeddings: Optional[Path] = typer.Argument(None, help="word2vec text/binary, GloVe text, gensim "
                                                         "KeyedVectors/Word2Vec file or biasaudit model folder. "
                                                         "Default: train (or reuse) a model on the corpus."),
             test: Optional[List[str]] = TestOpt,
             as_json: bool = typer.Option(False, "--json", help="Print a JSON list, one object per test and seed."),
             strict_oov: bool = StrictOovOpt,
             allow_oov: bool = typer.Option(False, "--allow-oov", hidden=True,
                                            help="Kept for old scripts: dropping missing words is the default."),
             seeds: int = typer.Option(1, "--seeds", callback=_count("seeds"), help="Train this many seeds (seed, "
                                       "seed+1, ...; at most 100) and report the spread of the effect size across "
                                       "them."),
             n_permutations: int = typer.Option(100_000, "--permutations", callback=_count("n_permutations"),
                                                help="Monte Carlo samples when exact enumeration exceeds 100,000 "
                                                "partitions (1 to 10,000,000)."),
             n_bootstrap: int = typer.Option(1000, "--bootstrap", callback=_count("n_bootstrap"), help="Bootstrap "
                                             "resamples for the CI (100 to 10,000)."),
             min_word_count: int = typer.Option(1, "--min-word-count", min=1, help="Drop test words seen fewer "
                                                "times than this in training (listed, like missing words)."),
             checkpoint: Optional[Path] = CheckpointOpt, templates: Optional[Path] = TemplatesOpt,
             opts: RunOptions = None):
    """WEAT effect sizes, exact or Monte Carlo permutation p-values and bootstrap CIs for bias tests (for --model
    lm: the template-association effect size, same shape and sign).

    Test words missing from the model are dropped and listed (--strict-oov: an error naming them all)."""
    from .api import load_model, measure
    from .audit import check_carried_measures
    from .measures.lm import load_templates
    from .wordsets import resolve_tests

    if strict_oov and allow_oov:
        raise typer.BadParameter("--allow-oov and --strict-oov contradict each other", param_hint="--strict-oov")
    tests = resolve_tests(test)
    check_carried_measures(tests)
    if not opts.family.takes_templates and (checkpoint is not None or templates is not None):
        raise ConfigError("--checkpoint and --templates measure language models; add --model lm")
    tpl = load_templates(templates) if opts.family.takes_templates else None    # before any training
    if (embeddings is not None or checkpoint is not None) and seeds > 1:
        raise typer.BadParameter("--seeds needs training; it cannot be used with a saved model", param_hint="--seeds")
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


def _print_experiment(summary) -> None:
    """The retraining results per (estimator, test), baseline first, in 80 columns: change from the same seed's
    baseline (mean ± sd over seeds), the prediction, held-out words, the paired difference from random edits of
    the same size, the verdict and WordSim-353 where the benchmark's coverage allows."""
    fmt = lambda v, sd=None, n=2: "-" if v is None else (f"{v:+.{n}f}" + ("" if sd is None else f"±{sd:.{n}f}"))
    n_seeds = len(summary["seeds"])
    out.print(f"\n{clean(summary['mode'])} retraining over {n_seeds} paired seed(s); change = effect size minus the same "
              "seed's baseline, mean ± sd", width=WIDTH)
    if summary.get("seed_note"):
        out.print(f"[yellow]! {clean(summary['seed_note'])}[/]", width=WIDTH)
    groups: dict = {}
    for d in summary["conditions"]:
        groups.setdefault((d["estimator"], d["test"]), []).append(d)
    from .io import read_json
    from .measures.embedding import MEASURES
    config = Path(summary.folder) / "experiment-config.json"     # each test's measure (--measure, or its file's)
    label = {t["name"]: MEASURES[t["measure"]].label for t in
             (read_json(config, "experiment config").get("tests", []) if config.exists() else [])
             if t.get("measure") in MEASURES}
    for (est, test), conds in groups.items():
        base = next((d for d in conds if d["condition"] == "baseline"), None)
        head = f"\n{clean(test)}, ranked by {clean(est)}"
        if base is not None:
            head += f": baseline {label.get(test, 'd')} {fmt(base['effect_size_mean'], base['effect_size_sd'])}"
        out.print(f"[bold]{head}[/]", width=WIDTH)
        note_held = next((d.get("heldout_note") for d in conds if d.get("heldout_note")), None)
        out.print(f"  {'condition':<14}{'k':>6} {'change':>11} {'predicted':>9} {'held-out':>9} {'vs random':>10} "
                  f"{'WordSim':>8}")
        for d in conds:
            if d["condition"] == "baseline":
                continue
            ws = "-" if d["wordsim353_mean"] is None else f"{d['wordsim353_mean']:.3f}"
            vs = "-" if "difference_from_random" not in d else fmt(d["difference_from_random"])
            out.print(f"  {d['condition']:<14}{clean(_cut(d['k'], 6)):>6} {fmt(d['change_mean'], d['change_sd']):>11} "
                      f"{fmt(d['predicted_change_mean']):>9} {fmt(d['heldout_change_mean']):>9} {vs:>10} {ws:>8}")
            extra = []
            if d.get("difference_from_random_p") is not None:
                extra.append(f"paired p {d['difference_from_random_p']:.2g}"
                             + (f" ({d['n_seeds']} seeds: indicative only)" if d.get("p_value_note") else ""))
            if d.get("calibration") is not None:
                extra.append(f"actual/predicted {d['calibration']:.2f}")
            if d.get("verdict"):
                extra.append(d["verdict"])
            if extra:
                out.print("      " + clean("; ".join(extra)), width=WIDTH)
        if note_held:
            out.print(f"  held-out '-': {clean(note_held)}", width=WIDTH)
    cov = [d.get("wordsim353_coverage") for d in summary["conditions"] if d.get("wordsim353_coverage") is not None]
    if cov:
        out.print(f"\nWordSim-353 coverage {min(cov):.0%} (figures shown only at {summary.get('min_quality_coverage', 0.8):.0%} "
                  "or more)", width=WIDTH)
    for c in summary["predicted_vs_actual"]:
        out.print(f"{clean(c['estimator'])} / {clean(c['test'])}, {c.get('prediction', 'linear')} prediction: "
                  f"Pearson {fmt(c['pearson'])}, Spearman {fmt(c['spearman'])} over {c['n']} runs; median "
                  f"actual/predicted {fmt(c['median_actual_over_predicted'])}", width=WIDTH)
    for l in summary["lds"]:
        ci = f" [{l['ci95'][0]:+.2f}, {l['ci95'][1]:+.2f}]" if l.get("ci95") else ""
        out.print(f"LDS {clean(l['estimator'])} / {clean(l['test'])}, {l.get('kind', 'same-seed')} (seed "
                  f"{l.get('seed', '?')}): Spearman {fmt(l['spearman'])}{ci} over {l['n_subsets']} subsets "
                  f"removing {l['fraction_removed']:.0%} each", width=WIDTH)
    board = summary.get("leaderboard") or []
    if board and (summary["lds"] or any("top_vs_random" in r for r in board)):
        table = Table(caption="LDS: Spearman of predicted (linear sum) against actual change over random subsets "
                      "(95% bootstrap CI); same-seed: retrained with the ranking's seed, cross-seed: with a seed "
                      "the ranking did not use. top vs random: change of d, top-k minus random k (paired p). "
                      "cost: scoring time in trainings.")
        for col in ("estimator", "test", "LDS same", "LDS cross", "top vs random (p)", "cost"):
            table.add_column(col, justify="left" if col in ("estimator", "test") else "right", overflow="fold")
        for r in board:
            tvr = ("-" if r.get("top_vs_random") is None else
                   f"{r['top_vs_random']:+.2f} ({fmt(r.get('top_vs_random_p'))}, k {clean(str(r['top_k']))})")
            table.add_row(clean(r["estimator"]), clean(r["test"]), fmt(r.get("lds_same_seed")),
                          fmt(r.get("lds_cross_seed")), tvr, fmt(r.get("cost_in_trainings")))
        out.print(table)


def _print_weat(rows: list, as_json: bool, n_models: int) -> None:
    seen = set()
    for r in rows:
        if r["dropped_words"] and not as_json and r["test"] not in seen:
            seen.add(r["test"])
            note(f"{r['test']}: dropped {_DROPPED} "
                 + "; ".join(f"{k}: {', '.join(v)}" for k, v in r["dropped_words"].items()))
    if as_json:          # each row with the verdict the terminal prints under the table
        rows = [dict(r, verdict=_weat_verdict_text(r)) for r in rows]
        sys.stdout.write(json.dumps(rows, indent=2) + "\n")
        return
    table = Table(caption="effect size d = (mean_X s - mean_Y s) / sample sd of s over X u Y; d > 0: X goes with A, "
                  "Y with B. CI: bootstrap over words.")
    for col in ("test", "seed", "d", "95% CI", "p-value", "stat", "sizes"):
        table.add_column(col, justify="left" if col == "test" else "right", overflow="fold")
    for r in rows:
        p = (f"{r['p_value']:.2g} exact" if r["exact"] else f"{r['p_value']:.2g} ± {r['p_value_se']:.1g} MC")
        table.add_row(clean(r["test"]), "-" if r["seed"] is None else str(r["seed"]), f"{r['effect_size']:+.3f}",
                      f"[{r['ci_low']:+.2f}, {r['ci_high']:+.2f}]", p, f"{r['statistic']:+.3f}",
                      ",".join(str(v) for v in r["sizes"].values()))
    out.print(table)
    for r in {r["test"]: r for r in rows}.values():
        out.print(_weat_verdict(r), width=WIDTH)
    if n_models > 1:
        spreads = {r["test"]: r["seed_spread"] for r in rows}
        for name, s in spreads.items():
            out.print(f"{clean(name)}: effect size over {s['n_seeds']} seeds: mean {s['mean']:+.3f}, sd {s['sd']:.3f}, "
                      f"range [{s['min']:+.3f}, {s['max']:+.3f}]")


_DROPPED = "words not in the model's vocabulary (absent or under min_count)"   # audit.DROPPED_WORDS


def _weat_verdict(r: dict) -> str:
    """One test's verdict under weat's table: significant or not (p < 0.05 and a CI without 0), why a small p can
    sit beside a CI holding 0, and when the set sizes make p < 0.05 impossible."""
    d, p, lo, hi = r["effect_size"], r["p_value"], r["ci_low"], r["ci_high"]
    return f"{clean(r['test'])}: d {d:+.2f}, p {p:.2g}, 95% CI [{lo:+.2f}, {hi:+.2f}]: " + _weat_verdict_text(r)


def _weat_verdict_text(r: dict) -> str:
    """The verdict itself (``weat --json``'s ``verdict`` field; the terminal prints it after d, p and the CI)."""
    from math import comb

    n_x, n_y = list(r["sizes"].values())[:2]
    floor = 1 / comb(n_x + n_y, n_x)          # one partition of X u Y: the smallest exact permutation p
    d, p, lo, hi = r["effect_size"], r["p_value"], r["ci_low"], r["ci_high"]
    holds_zero = lo <= 0 <= hi
    if floor >= 0.05:
        return (f"cannot be significant: {n_x} and {n_y} target words split {comb(n_x + n_y, n_x)} ways, "
                f"so p is never below {floor:.2g}; add words to the sets")
    if p < 0.05 and not holds_zero:
        size = "negligible" if abs(d) < 0.2 else "small" if abs(d) < 0.5 else "medium" if abs(d) < 0.8 else "strong"
        return f"a {size} association, distinguishable from word-sampling noise"
    if p < 0.05:
        return ("not significant: p is small but the CI holds 0. p asks whether this split of these very words into X "
                "and Y matters; the CI asks how far d moves when the words themselves are resampled. A CI across 0 "
                "says the effect rests on a few of the words")
    return "not distinguishable from no association on these words"


MeasureOpt = typer.Option("weat", "--measure", help="The bias measure documents are ranked by and retrains are "
                          "measured with: weat (default), or for word vectors ripa (Ethayarajh et al. 2019), "
                          "direct-bias (Bolukbasi et al. 2016), rnd (Garg et al. 2018) or mac (Manzini et al. "
                          "2019). ECT and RNSB have no useful derivative: `biasaudit measure` reports them.")
EnsembleOpt = typer.Option(1, "--ensemble", callback=_count("ensemble"), help="Rank by the mean score of this many "
                           "seeds' models (seed, seed+1, ...; at most 100; each trained and scored with the "
                           "estimator): rankings that hold across training seeds. Each document's sign agreement "
                           "across seeds is written beside its score. 1: the first seed's model alone.")


@app.command()
@run_options
def score(test: Optional[List[str]] = TestOpt,
          query: Optional[str] = typer.Option(None, "--query", help="Score a word query instead: which documents "
                                              "pull WORD toward --toward words (and away from --away words)."),
          toward: Optional[str] = typer.Option(None, "--toward", help="Comma-separated words for --query."),
          away: Optional[str] = typer.Option(None, "--away", help="Comma-separated words for --query."),
          estimator: Optional[str] = typer.Option(None, "--estimator", "-e", help="Embeddings: block (default), cg, "
                                                  "lissa or gradient-dot; --model lm: ekfac (default), gradient-dot "
                                                  "or magic (exact metagradients through the recorded training run; "
                                                  "also for --backend torch and GloVe). With settings: "
                                                  "'cg:damping=0.05,max_iter=300'; skip-gram "
                                                  "'block:anchor=optimum' re-solves group predictions from each "
                                                  "word's optimum (docs/results/debias.md)."),
          pairs: Optional[str] = typer.Option(None, "--pairs", help="--model lm: JSONL of paired sentences "
                                              "{\"more\": ..., \"less\": ...} (CrowS-Pairs fields sent_more/sent_less "
                                              "also read), scored as one more measure; or the bundled CrowS-Pairs: "
                                              "crows-pairs (one measure per bias type: crows-pairs:gender, ...) or "
                                              "crows-pairs:TYPE. A path that exists is always read as a file."),
          strict_oov: bool = StrictOovOpt,
          out_dir: Optional[Path] = typer.Option(None, "--out", "-o", help="Output folder (new, empty, or one this "
                                                 "tool wrote). Default: reports/<corpus>-<model>-<hash>/"),
          top: int = typer.Option(10, "--top", min=1, help="Documents to show in each direction."),
          seeds: Optional[int] = typer.Option(None, "--seeds", callback=_count("seeds"), help="Train this many "
                                              "seeds (seed, seed+1, ...; at most 100): the ranking comes from the "
                                              "first; the others give the effect size's spread over seeds and "
                                              "make the ranking's stability resample seeds as well as words. "
                                              "Default: 1, and 3 for --model lm (whose measure varies across seeds "
                                              "as much as between corpora)."),
          resamples: int = typer.Option(100, "--resamples", callback=_count("resamples"), help="Word-set "
                                        "resamples (bootstrap) for each document's stability (0: none; at most "
                                        "10,000)."),
          min_word_count: int = typer.Option(1, "--min-word-count", min=1, help="Drop test words seen fewer times "
                                             "than this in training (listed, like missing words): rankings not "
                                             "driven by rare words."),
          overwrite: bool = typer.Option(False, "--overwrite", help="Replace results of another config in --out "
                                         "(only the files this tool wrote there)."),
          scheduler: Optional[str] = SchedulerOpt, checkpoint: Optional[Path] = CheckpointOpt,
          embeddings: Optional[Path] = EmbeddingsOpt, vocab: Optional[Path] = VocabOpt,
          finetune: bool = FinetuneOpt, templates: Optional[Path] = TemplatesOpt, ensemble: int = EnsembleOpt,
          measure: str = MeasureOpt, opts: RunOptions = None):
    """Rank every training document by its contribution to a bias (cross-loss influence).

    delta_bias_if_removed(d) = grad B^T H^-1 grad L_d: the predicted change of the effect size if document d is
    removed and the model retrained. NEGATIVE means the document drives the bias UP.
    delta_bias_if_upweighted(d) (one more copy of d) is its negative (GloVe: computed from the added counts).
    With --model lm the measure is the template association of each test (and --pairs), and the influence is
    kronfluence's EK-FAC over the network's linear layers (and its embeddings when the vocabulary is small).
    """
    from .api import score as score_documents
    from .api import seed_count
    from .audit import SCORE_FILES, check_run_tests
    from .io import check_writable, claim_folder
    from .measures.lm import load_templates, resolve_pairs

    config = opts.config()
    (est,) = _estimators([estimator] if estimator else None, opts)
    _check_measure(opts, measure)
    if query is not None and test:
        raise typer.BadParameter("use either --test or --query", param_hint="--query")
    if query is not None and measure.strip().lower() != "weat":
        raise typer.BadParameter("--measure reads bias tests (--test); a --query is ranked by its own word "
                                 "association", param_hint="--measure")
    if (toward or away) and query is None:
        raise typer.BadParameter("--toward/--away need --query", param_hint="--toward")
    if (templates is not None or pairs is not None) and not opts.family.takes_templates:
        raise ConfigError("--templates and --pairs measure language models; add --model lm")
    tpl = load_templates(templates) if opts.family.takes_templates else None
    pair_spec = resolve_pairs(pairs) if pairs is not None else None
    if query is None:      # the tests' measures and every test and pair-set name, checked before any training
        check_run_tests(opts.family, test, pair_spec, measure)
    # the output folder is checked before any training: a file, a folder of other files, a read-only disk
    if out_dir is not None:     # held (the folder's run lock) until the command ends
        held = claim_folder(out_dir, "score", None, overwrite=True, known=SCORE_FILES, check_config=False)  # noqa: F841
    else:
        check_writable("reports")
    if checkpoint is not None and not finetune and (seeds or 1) > 1:
        raise typer.BadParameter("--seeds needs training; it cannot be used with --checkpoint (add --finetune to "
                                 "fine-tune it with each seed)", param_hint="--seeds")
    config = _finetune_config(config, checkpoint, finetune, opts)
    if finetune:
        checkpoint = None          # the checkpoint is the starting point of training, not the audited model
    if ensemble > 1 and checkpoint is not None:
        raise typer.BadParameter("--ensemble needs training; a checkpoint is one model (add --finetune to "
                                 "fine-tune it with each seed)", param_hint="--ensemble")
    seeds = seed_count(opts.family, seeds, ensemble, trained=checkpoint is None)
    if vocab is not None and embeddings is None:
        raise typer.BadParameter("--vocab goes with --embeddings (GloVe C output)", param_hint="--vocab")
    corp = opts.load_corpus()
    if embeddings is not None:
        from dataclasses import replace
        models = [_user_model(embeddings, vocab, opts, corp)]
        if seeds > 1:        # the spread over seeds: the same settings, trained here
            models += _train_seeds(opts, replace(models[0].config, seed=models[0].config.seed + 1), seeds - 1,
                                   corpus=corp)
    else:
        models = ([_load_checkpoint(checkpoint, opts)] if checkpoint is not None
                  else _train_seeds(opts, config, seeds, corpus=corp))
    words = lambda s: [w.strip().lower() for w in (s or "").split(",") if w.strip()]
    with _progress() as update, warnings.catch_warnings():
        warnings.simplefilter("ignore", DroppedWordsWarning)    # in the notes, printed below
        summary = score_documents(models[0], corp, test, estimator=est, query=query or None, toward=words(toward),
                                  away=words(away), pairs=pair_spec, templates=tpl, seeds=len(models),
                                  seed_models=models[1:], ensemble=ensemble, resamples=resamples,
                                  min_word_count=min_word_count, strict_oov=strict_oov, top=top, out=out_dir,
                                  overwrite=overwrite, scheduler=scheduler, device=opts.device, progress=update,
                                  measure=measure)
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


def _wrap_width() -> int:
    """Printed text wraps to the terminal's width (``biasaudit.terminal.width``), 100 columns off a terminal."""
    from .terminal import width
    return width(out)


WIDTH = _wrap_width()


def _check_measure(opts, measure: str) -> None:
    """--measure checked before any training: a usage error (exit 2) naming the choices."""
    from .audit import check_target_measure

    try:
        check_target_measure(opts.family, measure)
    except ConfigError as e:
        raise typer.BadParameter(str(e), param_hint="--measure") from e


def _overview(summary) -> str:
    """The first line of a score run: over all tests, how many are significant, how sure (each d and p), and
    whether the spread over training seeds was measured."""
    tests = [t for t in summary["tests"] if (t.get("evidence") or {}).get("significant") is not None]
    if not tests:
        return ""
    sig = [t for t in tests if t["evidence"]["significant"]]
    noisy = [t for t in tests if t["evidence"].get("seed_noise")]
    pairs = [t.get("kind") == "pairs" for t in tests]     # a log-likelihood gap over sentence pairs, not a d
    each = ", ".join(f"{clean(t['name'])} {t['evidence'].get('label') or ('gap' if p else 'd')} "
                     f"{t['evidence']['effect_size']:+.2f}"
                     + ("" if t["evidence"]["p_value"] is None else f" p {t['evidence']['p_value']:.2g}")
                     for t, p in zip(tests, pairs))
    spread = next((t["evidence"]["seed_spread"] for t in tests if t["evidence"].get("seed_spread")), None)
    seeds = (f"seed spread measured over {spread['n_seeds']} seeds ({len(noisy)} of {len(tests)} within seed noise)"
             if spread else "seed spread not measured (one training seed; --seeds 3 measures it)")
    noise = "pair-sampling" if all(pairs) else "word-sampling" if not any(pairs) else "word- or pair-sampling"
    verdict = (f"no test shows a bias distinguishable from {noise} noise" if not sig else
               f"{len(sig)} of {len(tests)} test{'s' if len(tests) > 1 else ''} significant (p < 0.05, CI without 0)")
    return f"summary: {verdict}: {each}; {seeds}."


def _print_plan(plan) -> None:
    """An experiment's first line: its trainings and what they cost (``experiments.cost.ExperimentCost``)."""
    cost = _cost(plan.trainings, plan.seconds_per_training, plan.workers, at_most=True, unit="worker")
    if plan.workers is None:
        cost += f" on the workers of {clean(plan.scheduler)}"
    elif plan.seconds_per_training:
        cost += " (the local Dask cluster: one per core)" if plan.scheduler == "local" else " (in this process)"
    if plan.seconds_per_training:
        cost += f"; the time of one measured on {plan.measured}"
    elif plan.trainings:
        cost += ("; time not estimated: no training of this model measured yet (the first baseline measures it; "
                 "`biasaudit train` or `score` with the same settings caches one)")
    out.print(f"plan: {cost}; into {clean(plan.folder)}", soft_wrap=True)


def _cost(trainings: int, secs, workers, at_most: bool = False, unit: str = "core") -> str:
    """'N trainings of about T each: about TOTAL on W cores' (what ``score``'s next step and ``experiment``'s plan
    say): the time from one measured training, spread over the workers."""
    cost = f"{'at most ' if at_most else ''}{trainings} training{'s' if trainings != 1 else ''}"
    if secs:
        cost += f" of about {_secs(secs)} each"
        if workers:
            cost += (f": about {_secs(trainings * secs / workers)} on {workers} "
                     f"{unit}{'s' if workers > 1 else ''}")
    return cost


def _next_step(summary, models) -> str:
    """The last lines of a score run: the command that checks the ranking by retraining and what it costs
    (its trainings, and their time from this model's measured training time on this machine's cores)."""
    import os
    import re

    cmd = summary.get("check_command")
    if not cmd:
        return ""
    from .experiments.cost import count_trainings

    n_tests = len([t for t in summary["tests"] if t.get("kind") != "query"])
    ks = len(re.search(r"--k (\S+)", cmd).group(1).split(",")) if "--k " in cmd else 2
    n_seeds = int(re.search(r"--seeds (\d+)", cmd).group(1)) if "--seeds " in cmd else 3
    conditions = re.search(r"--conditions (\S+)", cmd).group(1).split(",") if "--conditions " in cmd else []
    trainings = count_trainings(conditions, n_tests, ks, range(n_seeds))
    secs = (models[0].meta or {}).get("train_seconds") if models else None
    cost = _cost(trainings, secs, max(1, os.cpu_count() or 1))
    if secs:    # one training's time is what this model's training took, wherever and whenever that was
        workers = getattr(getattr(models[0], "config", None), "workers", None)
        cost += ("; the time of one as recorded when this model was trained"
                 + (f" ({workers} worker{'s' if workers != 1 else ''})" if isinstance(workers, int) else "")
                 + ", which varies with the machine and its load")
    return f"next: check this ranking by retraining ({cost}):\n  {clean(cmd)}"


def _secs(t: float) -> str:
    from .terminal import seconds
    return seconds(t)


def _cut(text: str, width: int) -> str:
    text = " ".join(strip_controls(text, newlines=False).split())
    return text if len(text) <= width else text[:width - 1] + "…"


def _shown(t: dict, direction: str, n: int) -> list:
    """A test's documents in one direction as the terminal lists them: sorted by the score shown (most negative
    first for those driving the bias up, most positive first for the others), the report's table order."""
    rows = t.get("table") or t["top"][direction]
    picked = [d for d in rows if (d["delta_bias_if_removed"] < 0) == (direction == "increase_bias")
              and d["delta_bias_if_removed"] != 0]
    picked.sort(key=lambda d: d["delta_bias_if_removed"], reverse=direction == "decrease_bias")
    return picked[:n]


def _print_test(t: dict, estimator: str) -> None:
    """One test, evidence first, in 80 columns: the number and whether it means anything, the words, what
    removing the top documents would do, then the documents."""
    ev = t.get("evidence") or {}
    sets = t.get("roles", {}).get("sets")
    head = t["name"] + (f"  ({sets['target_x']['name']} / {sets['target_y']['name']}  x  "
                        f"{sets['attribute_a']['name']} / {sets['attribute_b']['name']})" if sets else "")
    out.print(f"\n[bold]{clean(_cut(head, WIDTH))}[/]", width=WIDTH)
    out.print(clean(ev.get("verdict") or f"B = {t['bias_value']:+.3f}"), soft_wrap=False, width=WIDTH)
    if t.get("kind") == "pairs" and (t.get("weat") or {}).get("fraction_preferred") is not None:
        w = t["weat"]
        out.print(f"[dim]the value is the mean log-likelihood gap, log p(more stereotyping) - log p(less), in nats; "
                  f"secondary: the more stereotyping sentence is preferred in {100 * w['fraction_preferred']:.1f}% "
                  f"of {w['n_pairs']:,} pairs (CrowS-Pairs' percentage; 50% = no preference)[/]", width=WIDTH)
    if ev.get("seed_spread"):
        sp = ev["seed_spread"]
        out.print(f"over {sp['n_seeds']} seeds: mean {sp['mean']:+.2f}, sd {sp['sd']:.2f}, "
                  f"range [{sp['min']:+.2f}, {sp['max']:+.2f}]")
    elif ev.get("verdict") and ev.get("significant") is not None:
        out.print("[dim]spread over training seeds: not measured (one seed; --seeds 3 measures it)[/]")
    for w in ev.get("warnings", []):
        out.print(f"[yellow]! {clean(w)}[/]", width=WIDTH)
    if t.get("ensemble"):
        en = t["ensemble"]
        agree = "-" if en.get("mean_sign_agreement") is None else f"{en['mean_sign_agreement']:.2f}"
        unan = "-" if en.get("share_unanimous") is None else f"{en['share_unanimous']:.0%}"
        out.print(f"ranked by the mean score over {len(en['seeds'])} seeds' models (seeds "
                  f"{', '.join(map(str, en['seeds']))}); sign agreement across seeds: mean {agree}, unanimous for "
                  f"{unan} of the documents", width=WIDTH)
    if ev.get("sets"):
        used = ", ".join(f"{clean(st['name'])} {len(st['used'])}/{len(st['used']) + len(st['dropped'])}"
                         for st in ev["sets"])
        out.print(f"words used: {used}", width=WIDTH)
        gone = [f"{clean(d['word'])} ({d['count'] if d['count'] is not None else '?'})"
                for st in ev["sets"] for d in st["dropped"]]
        if gone:
            out.print(f"dropped (corpus count): {', '.join(gone)}", width=WIDTH)
    if t.get("word_shares"):
        out.print(f"{'word':<16} {'set':<12} {'count':>8} {'share':>7}")
        for r in t["word_shares"][:8]:
            flag = "  rare" if r.get("rare") else ""
            count = "-" if r["corpus_count"] is None else f"{r['corpus_count']:,}"
            out.print(f"{clean(_cut(r['word'], 16)):<16} {clean(_cut(str(r.get('set') or ''), 12)):<12} "
                      f"{count:>8} {100 * r['share_abs']:6.1f}%{flag}")
    if t.get("warning"):
        out.print(f"[yellow]! {clean(t['warning'])}[/]", width=WIDTH)
    for p in t.get("removal_predictions", []):
        out.print(f"removing the top {p['removed']} ({p['n_docs']:,} document{'s' if p['n_docs'] != 1 else ''}): "
                  f"{p['effect_size_before']:+.2f} -> "
                  f"{p['predicted_effect_size']:+.2f} predicted (sum of scores: {p['linear_prediction']:+.2f})",
                  width=WIDTH)
    n_top = max(len(t["top"]["increase_bias"]), len(t["top"]["decrease_bias"]))
    for direction, title in (("increase_bias", "drive the bias UP (removing them lowers it)"),
                             ("decrease_bias", "drive the bias DOWN (removing them raises it)")):
        docs = _shown(t, direction, n_top)
        out.print(f"\ndocuments that {title}, {estimator}:", width=WIDTH)
        if not docs:
            out.print("  none")
        stab = any("stability" in d for d in docs)
        if docs:
            out.print(f"{'score':>10}" + ("  stab" if stab else "") + "  document (its test words); sorted by "
                      "score, as in the report's table", width=WIDTH)
        for d in docs:
            lead = f"{d['delta_bias_if_removed']:+10.4f}" + (f"  {d['stability']:4.2f}" if stab else "")
            words = ", ".join(d["test_words"])
            out.print(f"{lead}  {clean(_cut(d['doc_id'], WIDTH - len(lead) - 2 - min(30, len(words) + 3)))}"
                      + (f" ({clean(_cut(words, 28))})" if words else ""), width=WIDTH)
            out.print("            " + clean(_cut(d["snippet"], WIDTH - 12)), width=WIDTH)
        if stab:
            out.print("  (second column: stability, the share of word resamples that keep the document in the top "
                      "100)", width=WIDTH)


def _check_ks(value: str) -> str:
    from .experiments import parse_k
    try:
        items = [s for s in value.split(",") if s.strip()]
        if not items:
            raise ConfigError("give at least one size")
        for item in items:
            parse_k(item)
    except ConfigError as e:
        raise typer.BadParameter(str(e).removeprefix("--k: ")) from e
    return value


@app.command()
@run_options
def experiment(test: Optional[List[str]] = TestOpt,
               heldout: Optional[List[str]] = typer.Option(None, "--heldout", help="Held-out companion test file "
                                                           "(repeatable; 'heldout_for' names the audited test, else "
                                                           "they pair in order). Default: the bundled companions."),
               estimator: Optional[List[str]] = typer.Option(None, "--estimator", "-e", help="Estimators whose "
                                                             "rankings are retrained, comma-separated: block,cg,"
                                                             "gradient-dot,block:damping=0.5 (default block; ekfac "
                                                             "for --model lm)."),
               k: str = typer.Option("0.1%,0.5%,1%", "--k", callback=_check_ks, help="Sizes of the document sets: "
                                     "percentages of the corpus (0 < p < 100) or counts (>= 1), comma-separated."),
               seeds: int = typer.Option(3, "--seeds", callback=_count("seeds"), help="Paired seeds (seed, "
                                         "seed+1, ...; at most 100) for every condition."),
               conditions: Optional[str] = typer.Option(None, "--conditions",
                                                        help="Comma-separated: baseline, remove-top, remove-bottom, "
                                                        "upweight-top, remove-random, remove-ids, hard-debias, and "
                                                        "the counterfactual edits swap-top, augment-top, swap-random, "
                                                        "augment-random, augment-all (whole-corpus CDA). Default: "
                                                        "baseline, remove-top, remove-bottom, upweight-top, "
                                                        "remove-random, hard-debias (not for --model lm)."),
               upweight: int = typer.Option(5, "--upweight", min=2, help="Copies in all of each upweighted document."),
               mode: str = typer.Option("scratch", "--mode", help="scratch (retrain from scratch: the honest "
                                        "check), masked (--model lm or glove: the baseline's own run, the same batches, learning "
                                        "rates and random draws, with the edited documents' weights at 0, or e "
                                        "copies: what a metagradient predicts; LDS as bergson measures it), "
                                        "warm-start (continue the baseline on the edited corpus for "
                                        "--warm-epochs) or undo (the paper's gradient ascent on removed documents)."),
               warm_epochs: int = typer.Option(1, "--warm-epochs", min=1, help="Epochs (or ascent steps) for "
                                               "warm-start/undo."),
               remove_ids: Optional[Path] = typer.Option(None, "--remove-ids", help="File of document ids, one per "
                                                         "line, for condition remove-ids (each must be in the corpus)."),
               lds: int = typer.Option(0, "--lds", min=0, help="Linear datamodeling score: retrain on this many random "
                                       "subsets, each at the ranking's seed (same-seed) and at a seed it did not "
                                       "use (cross-seed), and correlate predicted with actual changes (0: off)."),
               lds_fraction: float = typer.Option(0.5, "--lds-fraction", callback=lambda v: _in_range(v, 0, 1),
                                                  help="Fraction of documents each LDS subset removes (0 < f < 1; "
                                                  "0.01 is bergson's leaderboard)."),
               ensemble: int = EnsembleOpt,
               fresh_seeds: bool = typer.Option(False, "--fresh-seeds", help="Retrain on seeds the ranking did not "
                                                "use (after the --ensemble seeds): does the ranking hold for other "
                                                "trainings, not only the one it explains?"),
               select: str = typer.Option("top-k", "--select", help="top-k: edits by individual score; greedy: "
                                          "adds remove-selected, k documents chosen as a set on the re-measured "
                                          "group predictions (the move toward 0 as large as possible), beside "
                                          "remove-top at the same k."),
               no_quality: bool = typer.Option(False, "--no-quality", help="Skip WordSim-353 / SimLex-999 / analogy "
                                               "evaluation of each model."),
               strict_oov: bool = StrictOovOpt,
               min_word_count: int = typer.Option(1, "--min-word-count", min=1, help="Drop test words seen fewer "
                                                  "times than this in training (listed, like missing words)."),
               out_dir: Optional[Path] = typer.Option(None, "--out", "-o", help="Output folder (new, empty, or one "
                                                      "this tool wrote). Default: "
                                                      "reports/<corpus>-<model>-experiment-<hash>/"),
               overwrite: bool = typer.Option(False, "--overwrite", help="Reuse a folder holding another "
                                              "experiment (its files, and only those, are deleted first)."),
               scheduler: str = typer.Option("local", "--scheduler", callback=_check_scheduler, help="Where "
                                             "retrains run: 'local' (a Dask "
                                             "LocalCluster, one worker per core), a scheduler address "
                                             "(tcp://host:8786), or 'none' (in this process)."),
               embeddings: Optional[Path] = EmbeddingsOpt, vocab: Optional[Path] = VocabOpt,
               checkpoint: Optional[Path] = typer.Option(None, "--checkpoint", help="--model lm --finetune: the "
                                                         "local HF checkpoint every run fine-tunes (baselines and "
                                                         "edits alike)."),
               finetune: bool = FinetuneOpt, swap_pairs: Optional[Path] = SwapPairsOpt,
               rank_by: str = RankByOpt, templates: Optional[Path] = TemplatesOpt, measure: str = MeasureOpt,
               dry_run: bool = typer.Option(False, "--dry-run", help="Print the plan (trainings, estimated time, "
                                            "workers) and stop: nothing trained, no folder written."),
               opts: RunOptions = None):
    """Retrain without (or with more of) the top-ranked documents and check that the bias moves as predicted.

    Conditions are compared with paired seeds against the baseline and against removing the same number of
    random documents. Results: results.csv (one row per estimator, test, condition, k, seed), experiment.json
    (means, sds, paired differences from random removal with p-values, predicted-vs-actual correlations).
    Finished retrains are kept in runs/; rerunning the same command resumes.
    """
    from .api import experiment as run_experiment
    from .io import MAX_DATA_BYTES, read_regular
    from .wordsets import resolve_tests

    config = opts.config()
    _check_measure(opts, measure)
    if templates is not None and not opts.family.takes_templates:
        raise ConfigError("--templates measures language models; add --model lm")
    if rank_by not in ("test", "concept"):
        raise typer.BadParameter(f"{rank_by!r} is not test or concept", param_hint="--rank-by")
    if checkpoint is not None and not finetune:
        raise typer.BadParameter("experiment retrains: a checkpoint is retrained by fine-tuning it, add --finetune",
                                 param_hint="--checkpoint")
    config = _finetune_config(config, checkpoint, finetune, opts)
    tests = resolve_tests(test)
    ids: tuple = ()
    if remove_ids is not None:
        try:
            text = read_regular(remove_ids, "--remove-ids file", ConfigError, MAX_DATA_BYTES).decode("utf-8")
            ids = tuple(dict.fromkeys(l.strip() for l in text.splitlines() if l.strip()))
        except (OSError, UnicodeDecodeError) as e:
            raise ConfigError(f"--remove-ids: cannot read {remove_ids} ({getattr(e, 'strerror', None) or e})") from e
        if not ids:
            raise ConfigError(f"--remove-ids: {remove_ids} holds no document id")
    corp = opts.load_corpus()
    given = None
    if embeddings is not None:     # the rankings come from the user's model; retrains use its settings
        given = _user_model(embeddings, vocab, opts, corp)
    elif vocab is not None:
        raise typer.BadParameter("--vocab goes with --embeddings (GloVe C output)", param_hint="--vocab")
    ests = _estimators(estimator, opts)
    with _progress() as update:
        summary = run_experiment(given if given is not None else config, corp, tests, heldout=heldout,
                                 estimator=ests, k=k, seeds=seeds, conditions=conditions, upweight=upweight,
                                 mode=mode, warm_epochs=warm_epochs, remove_ids=ids, lds=lds,
                                 lds_fraction=lds_fraction, ensemble=ensemble, fresh_seeds=fresh_seeds,
                                 select=select, quality=not no_quality, strict_oov=strict_oov,
                                 min_word_count=min_word_count,
                                 rank_by=rank_by, swaps=swap_pairs, templates=templates, out=out_dir,
                                 overwrite=overwrite, scheduler=None if scheduler == "none" else scheduler,
                                 progress=update, log=note, on_plan=_print_plan, dry_run=dry_run,
                                 measure=measure)
    if dry_run:
        out.print("dry run: nothing trained, no folder written")
        return
    out_dir = summary.folder
    _print_experiment(summary)
    out.print(f"scope: {clean(summary['scope'])}")
    page = summary.report_path      # written by api.experiment
    out.print(f"wrote {clean(out_dir)}/results.csv and experiment.json ({summary['run_seconds']:.0f} s)\n"
              f"report: {clean(page)}")


@app.command()
@run_options
def debias(test: Optional[List[str]] = TestOpt,
           k: str = typer.Option("1%", "--k", callback=_check_ks, help="How many top-ranked documents to edit per "
                                 "test: a percentage of the corpus or a count."),
           method: str = typer.Option("swap", "--method", help="remove (drop them), swap (replace each by its "
                                      "counterfactual rewrite: one-sided CDA) or augment (add the rewrite beside it, "
                                      "id <id>#cda: two-sided CDA)."),
           estimator: Optional[str] = typer.Option(None, "--estimator", "-e", help="The ranking's estimator "
                                                   "(default: the family's)."),
           swap_pairs: Optional[Path] = SwapPairsOpt, rank_by: str = RankByOpt,
           heldout: Optional[List[str]] = typer.Option(None, "--heldout", help="Held-out companion test file "
                                                       "(--rank-by concept leaves its words out)."),
           strict_oov: bool = StrictOovOpt,
           min_word_count: int = typer.Option(1, "--min-word-count", min=1, help="Drop test words seen fewer "
                                              "times than this in training."),
           out_dir: Optional[Path] = typer.Option(None, "--out", "-o", help="Output folder (new, empty, or one this "
                                                  "tool wrote). Default: reports/<corpus>-debias-<hash>/"),
           overwrite: bool = typer.Option(False, "--overwrite", help="Replace debias outputs of another config in "
                                          "--out (only the files this tool wrote)."),
           embeddings: Optional[Path] = EmbeddingsOpt, vocab: Optional[Path] = VocabOpt,
           templates: Optional[Path] = TemplatesOpt, ensemble: int = EnsembleOpt,
           select: str = typer.Option("greedy", "--select", help="greedy: choose the edit as a set, each document "
                                      "judged by the re-measured prediction of the set so far plus itself; top-k: "
                                      "by individual score."),
           target: Optional[float] = typer.Option(None, "--target", min=0.0, help="Stop at the smallest edit "
                                                  "predicted to bring |d| to this or below (default: the seed-noise "
                                                  "band, the sd of d over --seeds models, else d's bootstrap CI "
                                                  "half-width). --k stays the upper bound."),
           seeds: Optional[int] = typer.Option(None, "--seeds", callback=_count("seeds"), help="Train this many "
                                               "seeds (seed, seed+1, ...; at most 100) for the seed-noise band (the "
                                               "sd of d over them)."),
           force: bool = typer.Option(False, "--force", help="Edit even when a test's bias is not significant "
                                      "(p >= 0.05 or its 95% CI holds 0)."),
           verify: int = typer.Option(0, "--verify", min=0, help="Retrain this many seeds on the edited corpus and "
                                      "report the actual change against the predicted one, held-out tests and "
                                      "WordSim (in manifest.json and the report)."),
           opts: RunOptions = None):
    """Write an edited corpus that should carry less of a bias: the documents that move each test's bias toward 0
    (cross-loss influence), removed, or rewritten with the gendered words swapped (counterfactual data
    augmentation); as few as the re-measured prediction needs to bring |d| inside the seed-noise band (or
    --target), --k at most. A bias that is not significant is refused (--force edits anyway). Writes corpus.jsonl (corpus.csv for a CSV input: the input's fields and format; added copies
    get ids <id>#cda, or #cda2... when taken), manifest.json (edited ids,
    each document's predicted change, the predicted effect, the swap list's hash, the command) and report.html,
    so you can retrain with your own pipeline (or check it with `biasaudit experiment --conditions
    baseline,swap-top,swap-random`)."""
    import shlex

    from .api import debias_corpus
    from .audit import read_tests_with
    from .debias import METHODS, claim_out
    from .measures.lm import load_templates
    from .swaps import load_swaps
    from .wordsets import resolve_tests

    if method not in METHODS:
        raise typer.BadParameter(f"{method!r} is not one of {', '.join(METHODS)}", param_hint="--method")
    if rank_by not in ("test", "concept"):
        raise typer.BadParameter(f"{rank_by!r} is not test or concept", param_hint="--rank-by")
    if select not in ("greedy", "top-k"):
        raise typer.BadParameter(f"{select!r} is not greedy or top-k", param_hint="--select")
    (est,) = _estimators([estimator] if estimator else None, opts)
    tpl = load_templates(templates) if opts.family.takes_templates else None
    tests = resolve_tests(test)
    read_tests_with(opts.family, tests)     # a measure a test carries, checked before any training
    swaps = load_swaps(swap_pairs) if swap_pairs is not None else None
    corp = opts.load_corpus()
    claim_out(out_dir, corp)          # before any training: the folder is usable and outside the corpus
    if embeddings is not None and ensemble > 1:
        raise typer.BadParameter("--ensemble trains its seeds' models; it cannot be used with --embeddings",
                                 param_hint="--ensemble")
    if embeddings is not None and (seeds or 1) > 1:
        raise typer.BadParameter("--seeds trains other seeds' models; it cannot be used with --embeddings",
                                 param_hint="--seeds")
    models = ([_user_model(embeddings, vocab, opts, corp)] if embeddings is not None
              else _train_seeds(opts, opts.config(), ensemble, corpus=corp))
    model = models[0]
    with _progress() as update:
        result = debias_corpus(model, corp, tests, k=k, method=method, estimator=est, swaps=swaps, rank_by=rank_by,
                               heldout=heldout, strict_oov=strict_oov, min_word_count=min_word_count, templates=tpl,
                               ensemble=ensemble, seed_models=models[1:], seeds=seeds, select=select, target=target,
                               force=force, verify=verify, out=out_dir, overwrite=overwrite, device=opts.device,
                               command=shlex.join(["biasaudit"] + sys.argv[1:]), progress=update, log=note)
    folder, manifest, page = result.folder, result.summary, result.report_path
    for name, p in manifest["predicted"].items():
        out.print(f"{clean(name)}: d {p['effect_size_before']:+.2f} (p {p['p_value']:.3f}, 95% CI "
                  f"[{p['ci_low']:+.2f}, {p['ci_high']:+.2f}], {p['n_words']} words) -> "
                  f"{_fmt(p['predicted_effect_size'])} predicted after {method} of {p['n_edited']} documents "
                  f"(--k {manifest['k']} at most; sum of scores: {_fmt(p['linear_prediction'])})", width=WIDTH)
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


def _fmt(v) -> str:
    return "-" if v is None else f"{v:+.2f}"


@app.command()
def report(folder: Path = typer.Argument(..., help="Output folder of `biasaudit score` or `biasaudit experiment`.")):
    """Write FOLDER/report.html: one self-contained page (no network) with the tests, the documents that carry
    the bias, the influence distribution and, for experiments, the retraining results."""
    from .report import write_report

    out.print(f"report: {clean(write_report(folder))}")


@app.command("measure")
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
                seeds: int = typer.Option(1, "--seeds", callback=_count("seeds"), help="Train this many seeds "
                                          "(seed, seed+1, ...; at most 100) and read each measure's spread across "
                                          "them in its verdict."),
                n_permutations: int = typer.Option(100_000, "--permutations", callback=_count("n_permutations"),
                                                   help="Monte Carlo samples when exact enumeration exceeds 100,000 "
                                                   "partitions (1 to 10,000,000)."),
                n_bootstrap: int = typer.Option(1000, "--bootstrap", callback=_count("n_bootstrap"), help="Bootstrap "
                                                "resamples for the CIs (100 to 10,000)."),
                min_word_count: int = typer.Option(1, "--min-word-count", min=1, help="Drop test words seen fewer "
                                                   "times than this in training (listed, like missing words)."),
                opts: RunOptions = None):
    """Every word-vector bias measure side by side, from one bias test file: WEAT, RIPA (Ethayarajh et al.
    2019), Direct Bias (Bolukbasi et al. 2016), RND (Garg et al. 2018), MAC (Manzini et al. 2019), ECT (Dev &
    Phillips 2019) and RNSB (Sweeney & Najafian 2019), each with its bootstrap 95% CI over words, a permutation p
    where the measure has one (WEAT, RIPA, RND) and a verdict.

    Test words missing from the model are dropped and listed (--strict-oov: an error naming them all)."""
    from .audit import check_carried_measures, measures_across_models
    from .measures.suite import resolve_measures
    from .models.keyed import load_embeddings
    from .wordsets import resolve_tests

    names = resolve_measures([n for m in measure or [] for n in m.split(",") if n.strip()])
    tests = resolve_tests(test)
    check_carried_measures(tests)
    if not opts.family.word_vectors:
        raise ConfigError(f"the word-vector measures need word vectors; --model {opts.family.name} has none "
                          "(`biasaudit weat` measures language models)")
    if embeddings is not None and seeds > 1:
        raise typer.BadParameter("--seeds needs training; it cannot be used with a saved model", param_hint="--seeds")
    models = [load_embeddings(embeddings)] if embeddings is not None else _train_seeds(opts, opts.config(), seeds)
    rows, skipped, not_run = measures_across_models(models, tests, names, strict=strict_oov,
                                                    min_word_count=min_word_count, n_permutations=n_permutations,
                                                    n_bootstrap=n_bootstrap)
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


def _print_measures(rows: list) -> None:
    """The measures of each test side by side (value, 95% CI over words, p where there is one), then each
    measure's verdict."""
    seen = set()
    for r in rows:
        if r["dropped_words"] and r["test"] not in seen:
            seen.add(r["test"])
            note(f"{r['test']}: dropped {_DROPPED} "
                 + "; ".join(f"{k}: {', '.join(v)}" for k, v in r["dropped_words"].items()))
    table = Table(caption="value: each measure's own units and sign (WEAT d, RIPA and RND > 0: X goes with A and "
                  "Y with B; Direct Bias, MAC, ECT, RNSB unsigned). CI: bootstrap over words; p: permutation.")
    for col in ("test", "measure", "seed", "value", "95% CI", "p-value"):
        table.add_column(col, justify="left" if col in ("test", "measure") else "right", overflow="fold")
    for r in rows:
        p = "-" if r["p_value"] is None else (f"{r['p_value']:.2g}" + (" exact" if r["exact"] else " MC"))
        table.add_row(clean(r["test"]), r.get("measure", "weat"), "-" if r["seed"] is None else str(r["seed"]),
                      f"{r['effect_size']:+.3f}", f"[{r['ci_low']:+.2f}, {r['ci_high']:+.2f}]", p)
    out.print(table)
    shown = set()
    for r in rows:
        key = (r["test"], r["measure"])
        if key not in shown:
            shown.add(key)
            out.print(f"{clean(r['test'])} / {r['measure']}: {clean(r['verdict'])}", width=WIDTH)


# ------------------------------------------------------------------ entry point
def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    if issubclass(category, BiasAuditWarning):
        note(str(message))


def _os_error_line(e: OSError) -> str:
    """'<path>: <cause>' for an OS fault (a full disk, a read-only folder, a path that is a file)."""
    cause = e.strerror or str(e) or type(e).__name__
    where = e.filename if e.filename is not None else None
    if e.filename2 is not None:
        where = f"{e.filename} -> {e.filename2}"
    return f"{where}: {cause}" if where is not None else cause


def main() -> None:
    """Console entry point: one red line and exit code 1 for a BiasAuditError or an OS fault, 130 when
    interrupted, 2 for usage errors (printed by click); ``--debug`` shows tracebacks."""
    debug = "--debug" in sys.argv[1:]
    if not debug:
        warnings.filterwarnings("ignore")              # library chatter (FutureWarning, ...) is not the user's
        warnings.filterwarnings("always", category=BiasAuditWarning)
    warnings.showwarning = _show_warning
    import signal

    try:   # Ctrl-C: one line, exit 130, finally-blocks still run (temporary folders removed)
        previous = signal.signal(signal.SIGINT, _on_interrupt)
    except ValueError:   # not the main thread (an embedding application): leave signals alone
        previous = None
    try:
        app()  # usage errors: click prints them and exits 2
    except BiasAuditError as e:
        _fail(e.for_cli(), debug)         # the message in the command line's words (its flags)
    except OSError as e:
        _fail(_os_error_line(e), debug)
    except MemoryError:
        _fail("out of memory (a smaller corpus, fewer tests, or --scheduler with more workers can help)", debug)
    except KeyboardInterrupt:
        _on_interrupt()
    finally:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)


def _on_interrupt(*_) -> None:
    err.print("[red]interrupted[/red]: finished outputs are kept; rerun the same command to resume")
    raise SystemExit(130)


def _fail(message: str, debug: bool) -> None:
    if debug:
        traceback.print_exc()
    err.print(f"[red]error:[/red] {clean(strip_controls(message, newlines=False))}", soft_wrap=True)
    sys.exit(1)


_RUN["imports"] = _time.perf_counter() - _IMPORT_STARTED   # the first command's "starting" phase (``_root``)


if __name__ == "__main__":
    main()
