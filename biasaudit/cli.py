"""The ``biasaudit`` command line: thin typer commands that parse options, call the library and print.

Exit codes: 0 success, 1 a BiasAuditError (one red line on stderr; ``--debug`` shows the traceback),
2 a usage error.
"""
from __future__ import annotations

import json
import sys
import traceback
from contextlib import contextmanager
from pathlib import Path
from typing import List, Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from .errors import ArtifactError, BiasAuditError, ConfigError

app = typer.Typer(add_completion=False, no_args_is_help=True, rich_markup_mode=None, pretty_exceptions_enable=False,
                  help="Audit social bias in word embeddings and trace it to the training documents that caused it.")
# a pipe or file gets wide lines rather than tables squeezed to 80 columns
out = Console(width=None if sys.stdout.isatty() else 200)
err = Console(stderr=True, width=None if sys.stderr.isatty() else 200)


@app.callback()
def _root(debug: bool = typer.Option(False, "--debug", help="Show the full traceback on errors.")):
    """Audit social bias in word embeddings and trace it to the training documents that caused it."""


# ------------------------------------------------------------------ shared options
CorpusOpt = typer.Option(None, "--corpus", "-c", help="Bundled corpus name (gcide, wordnet), file, folder, glob "
                         "or hub dataset. Default: the bundled GCIDE dictionary.")
IdFieldOpt = typer.Option("id", "--id-field", help="Field holding the document id (else file:record number).")
TextFieldOpt = typer.Option("text", "--text-field", help="Field holding the document text.")
VectorSizeOpt = typer.Option(100, "--vector-size", help="Embedding dimension.")
WindowOpt = typer.Option(None, "--window", help="Context window: skip-gram's maximum (reduced windows; default 5), "
                         "GloVe's symmetric 1/distance window (default 10).")
MinCountOpt = typer.Option(5, "--min-count", help="Ignore words seen fewer times.")
NegativeOpt = typer.Option(5, "--negative", help="Negative samples per positive pair.")
EpochsOpt = typer.Option(None, "--epochs", help="Training epochs (default 5 for skip-gram, 25 for GloVe).")
SeedOpt = typer.Option(1, "--seed", help="Training seed (initialisation and sampling).")
WorkersOpt = typer.Option(1, "--workers", help="gensim threads; 1 is deterministic (identical vectors per seed).")
SampleOpt = typer.Option(1e-3, "--sample", help="Frequent-word subsampling threshold (gensim's sample).")
ModelOpt = typer.Option("skipgram", "--model", "-m", help="Model family: skipgram (default), glove (GloVe-style "
                        "weighted least squares on co-occurrence counts) or lm (a small causal transformer language "
                        "model, trained here or loaded with --checkpoint).")
LMConfigOpt = typer.Option(None, "--lm-config", help="--model lm: LMConfig settings, e.g. 'hidden_size=64,num_layers=2,"
                           "max_len=64,learning_rate=0.003,batch_size=32' (defaults: a 2-layer, 64-wide Llama).")
CheckpointOpt = typer.Option(None, "--checkpoint", help="--model lm: a local HF causal-LM checkpoint folder to audit "
                             "instead of training one (safetensors weights; nothing is downloaded).")
TemplatesOpt = typer.Option(None, "--templates", help="--model lm: template file (JSON list or one per line, each "
                            "with {target} and {attribute}). Default: the bundled templates.")
EmbeddingOpt = typer.Option(None, "--embedding", help="GloVe: the embedding the tests read, w (word vectors, default) "
                            "or w+c (word + context vectors).")
BackendOpt = typer.Option("gensim", "--backend", help="Training backend: gensim (C; deterministic with --workers 1) "
                          "or torch (same objective, minibatch SGD; CPU or GPU via --device).")
DeviceOpt = typer.Option("cpu", "--device", help="torch device for --backend torch and for cg/lissa solves: cpu, "
                         "cuda, cuda:N or auto.")
SchedulerOpt = typer.Option(None, "--scheduler", help="Dask scheduler for sharded work: 'local' (a LocalCluster "
                            "sized to this machine) or an address such as tcp://host:8786. Default: in-process.")


def _config(vector_size, window, min_count, negative, epochs, seed, workers, sample, backend="gensim",
            model="skipgram", embedding=None, lm_config=None):
    from .models.registry import make_config
    if lm_config is not None and model != "lm":
        raise ConfigError("--lm-config applies to --model lm only")
    return make_config(model, lm_config=lm_config, vector_size=vector_size, window=window, min_count=min_count,
                       negative=negative, epochs=epochs, seed=seed, workers=workers, sample=sample, backend=backend,
                       embedding=embedding)


def _estimator_default(spec: Optional[str], model: str) -> str:
    from .models.registry import DEFAULT_ESTIMATOR
    return spec if spec is not None else DEFAULT_ESTIMATOR.get(model, "block")


def _check_estimators(ests: list, model: str) -> None:
    """Refuse an estimator of the other family before any training starts."""
    from .influence.ekfac import LM_ESTIMATORS
    for e in ests:
        if model == "lm" and e.name not in LM_ESTIMATORS:
            raise ConfigError(f"estimator {e.name!r} is for embeddings; --model lm takes {', '.join(LM_ESTIMATORS)}")
        if model != "lm" and e.name == "ekfac":
            raise ConfigError("estimator ekfac is for --model lm; embeddings take block, cg, lissa or gradient-dot")


@contextmanager
def _progress():
    """A rich progress bar on stderr; yields a callback (stage, done, total)."""
    bars = Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                    TimeElapsedColumn(), TimeRemainingColumn(), console=err, transient=True)
    tasks: dict[str, int] = {}

    def update(stage: str, done: int, total: int) -> None:
        if stage not in tasks:
            tasks[stage] = bars.add_task(stage, total=total)
        bars.update(tasks[stage], completed=done, total=total)

    with bars:
        yield update


def _load_checkpoint(checkpoint: Path, model: str, device: str = "cpu"):
    from .models.lm import LMModel

    if model != "lm":
        raise ConfigError("--checkpoint loads a language model; add --model lm")
    m = LMModel.load(checkpoint, device)
    err.print(f"loaded {escape(str(checkpoint))} ({m.meta.get('parameters') or sum(p.numel() for p in m.net.parameters()):,} "
              f"parameters, {len(m.encoder):,} tokens)")
    return m


def _train_seeds(corpus_src, id_field, text_field, config, n_seeds: int, device: str = "cpu") -> list:
    from dataclasses import replace

    from .corpus import load_corpus
    from .models.registry import model_name, train_or_load_model

    corpus = load_corpus(corpus_src, id_field, text_field)
    stats = corpus.scan()
    if stats.n_empty:
        err.print(f"[yellow]note:[/] skipped {stats.n_empty} empty document(s) in {escape(corpus.name)}")
    if model_name(config) == "lm" and stats.n_documents > 20_000 and not str(device).startswith(("cuda", "auto")):
        err.print(f"[yellow]note:[/] training a language model on {stats.n_documents:,} documents on the CPU can take "
                  "hours; --device cuda, or a smaller corpus, is faster (the cache keeps the result)")
    models = []
    for k in range(n_seeds):
        cfg = replace(config, seed=config.seed + k)
        with _progress() as update:
            model, cached = train_or_load_model(corpus, cfg, device=device,
                                          progress=lambda s, d, t, k=k: update(f"training seed {cfg.seed}", d, t))
        kind = {"glove": "GloVe", "lm": "LM"}.get(model_name(cfg)) or f"skip-gram ({cfg.backend})"
        err.print(f"{'reused cached' if cached else 'trained'} {kind} on {escape(corpus.name)} "
                  f"(seed {cfg.seed}, {len(model.encoder) if model_name(cfg) == 'lm' else len(model.vocab)} "
                  f"{'tokens' if model_name(cfg) == 'lm' else 'words'}"
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
        out.print_json(json.dumps([t.to_dict() for t in tests.values()]))
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
def train(corpus: Optional[str] = CorpusOpt, id_field: str = IdFieldOpt, text_field: str = TextFieldOpt,
          out_dir: Optional[Path] = typer.Option(None, "--out", "-o", help="Model folder to write. Default: the "
                                                 "cache (~/.cache/biasaudit or $BIASAUDIT_CACHE)."),
          vector_size: int = VectorSizeOpt, window: int = WindowOpt, min_count: int = MinCountOpt,
          negative: int = NegativeOpt, epochs: int = EpochsOpt, seed: int = SeedOpt, workers: int = WorkersOpt,
          sample: float = SampleOpt, backend: str = BackendOpt, model: str = ModelOpt, embedding: Optional[str] = EmbeddingOpt, device: str = DeviceOpt,
          lm_config: Optional[str] = LMConfigOpt,
          overwrite: bool = typer.Option(False, "--overwrite", help="Replace a model folder made with another config.")):
    """Train a model on a corpus and save it (no pickle): skip-gram (gensim sg=1 or torch, negative sampling),
    GloVe (--model glove) or a small causal transformer LM (--model lm; saved as an HF checkpoint folder)."""
    from .models.lm import is_lm_dir
    from .models.registry import load_model_dir
    from .models.skipgram import is_model_dir

    config = _config(vector_size, window, min_count, negative, epochs, seed, workers, sample, backend, model, embedding,
                     lm_config)
    if out_dir is not None and out_dir.exists() and any(out_dir.iterdir()) and not overwrite:
        if not (is_model_dir(out_dir) or is_lm_dir(out_dir)):
            raise ArtifactError(f"{out_dir} exists and is not a biasaudit model folder; use --overwrite to replace it")
        old = load_model_dir(out_dir)
        if old.config != config:
            raise ArtifactError(f"{out_dir} holds a model trained with another config; use --overwrite to replace it")
    model = _train_seeds(corpus, id_field, text_field, config, 1, device)[0]
    if out_dir is not None:
        model.save(out_dir)
        out.print(f"saved {out_dir}")


@app.command("weat")
def weat_cmd(embeddings: Optional[Path] = typer.Argument(None, help="word2vec text/binary, GloVe text, gensim "
                                                         "KeyedVectors/Word2Vec file or biasaudit model folder. "
                                                         "Default: train (or reuse) skip-gram on the corpus."),
             test: Optional[List[str]] = typer.Option(None, "--test", "-t", help="Bundled test name or test file "
                                                      "(repeatable). Default: math-arts, science-arts, career-family."),
             as_json: bool = typer.Option(False, "--json", help="Print a JSON list, one object per test and seed."),
             allow_oov: bool = typer.Option(False, "--allow-oov", help="Drop out-of-vocabulary words (reported) "
                                            "instead of failing; each set keeps at least 2 words."),
             seeds: int = typer.Option(1, "--seeds", help="Train this many seeds (seed, seed+1, ...) and report the "
                                       "spread of the effect size across them."),
             n_permutations: int = typer.Option(100_000, "--permutations", help="Monte Carlo samples when exact "
                                                "enumeration exceeds 100,000 partitions."),
             n_bootstrap: int = typer.Option(1000, "--bootstrap", help="Bootstrap resamples for the CI."),
             corpus: Optional[str] = CorpusOpt, id_field: str = IdFieldOpt, text_field: str = TextFieldOpt,
             vector_size: int = VectorSizeOpt, window: int = WindowOpt, min_count: int = MinCountOpt,
             negative: int = NegativeOpt, epochs: int = EpochsOpt, seed: int = SeedOpt, workers: int = WorkersOpt,
             sample: float = SampleOpt, backend: str = BackendOpt, model: str = ModelOpt, embedding: Optional[str] = EmbeddingOpt, device: str = DeviceOpt,
             lm_config: Optional[str] = LMConfigOpt, checkpoint: Optional[Path] = CheckpointOpt,
             templates: Optional[Path] = TemplatesOpt):
    """WEAT effect sizes, exact or Monte Carlo permutation p-values and bootstrap CIs for bias tests (for --model
    lm: the template-association effect size, same shape and sign)."""
    from .metrics import weat_across_models
    from .models.keyed import load_embeddings
    from .wordsets import resolve_tests

    if seeds < 1:
        raise typer.BadParameter("must be >= 1", param_hint="--seeds")
    tests = resolve_tests(test)
    if model == "lm":
        _weat_lm(tests, corpus, id_field, text_field, seeds, as_json, allow_oov, n_permutations, n_bootstrap,
                 _config(vector_size, window, min_count, negative, epochs, seed, workers, sample, backend, model,
                         embedding, lm_config), checkpoint, templates, device)
        return
    if checkpoint is not None:
        raise ConfigError("--checkpoint loads a language model; add --model lm")
    if embeddings is not None:
        if seeds > 1:
            raise typer.BadParameter("--seeds needs training; it cannot be used with an EMBEDDINGS file",
                                     param_hint="--seeds")
        models = [load_embeddings(embeddings)]
    else:
        config = _config(vector_size, window, min_count, negative, epochs, seed, workers, sample, backend, model, embedding)
        models = _train_seeds(corpus, id_field, text_field, config, seeds, device)
    rows = weat_across_models(models, tests, allow_oov=allow_oov, n_permutations=n_permutations,
                              n_bootstrap=n_bootstrap)
    _print_weat(rows, as_json, len(models))


def _weat_lm(tests, corpus, id_field, text_field, seeds, as_json, allow_oov, n_permutations, n_bootstrap, config,
             checkpoint, templates, device):
    from .lm_metrics import load_templates
    from .metrics import weat_across_models

    if checkpoint is not None and seeds > 1:
        raise typer.BadParameter("--seeds needs training; it cannot be used with --checkpoint", param_hint="--seeds")
    models = ([_load_checkpoint(checkpoint, "lm", device)] if checkpoint is not None
              else _train_seeds(corpus, id_field, text_field, config, seeds, device))
    rows = weat_across_models(models, tests, allow_oov=allow_oov, templates=load_templates(templates),
                              n_permutations=n_permutations, n_bootstrap=n_bootstrap)
    _print_weat(rows, as_json, len(models))


def _print_weat(rows: list, as_json: bool, n_models: int) -> None:
    for r in rows:
        if r["dropped_words"] and not as_json:
            err.print(f"[yellow]dropped out-of-vocabulary words[/] in {escape(r['test'])}: "
                      + "; ".join(f"{k}: {', '.join(v)}" for k, v in r["dropped_words"].items()))
    if as_json:
        sys.stdout.write(json.dumps(rows, indent=2) + "\n")
        return
    table = Table(caption="effect size d = (mean_X s - mean_Y s) / sample sd of s over X u Y; d > 0: X goes with A, "
                  "Y with B. CI: bootstrap over words.")
    for col in ("test", "seed", "d", "95% CI", "p-value", "stat", "sizes"):
        table.add_column(col, justify="left" if col == "test" else "right", overflow="fold")
    for r in rows:
        p = (f"{r['p_value']:.2g} exact" if r["exact"] else f"{r['p_value']:.2g} ± {r['p_value_se']:.1g} MC")
        table.add_row(r["test"], "-" if r["seed"] is None else str(r["seed"]), f"{r['effect_size']:+.3f}",
                      f"[{r['ci_low']:+.2f}, {r['ci_high']:+.2f}]", p, f"{r['statistic']:+.3f}",
                      ",".join(str(v) for v in r["sizes"].values()))
    out.print(table)
    if n_models > 1:
        seen = {}
        for r in rows:
            seen[r["test"]] = r["seed_spread"]
        for name, s in seen.items():
            out.print(f"{name}: effect size over {s['n_seeds']} seeds: mean {s['mean']:+.3f}, sd {s['sd']:.3f}, "
                      f"range [{s['min']:+.3f}, {s['max']:+.3f}]")


@app.command()
def score(corpus: Optional[str] = CorpusOpt, id_field: str = IdFieldOpt, text_field: str = TextFieldOpt,
          test: Optional[List[str]] = typer.Option(None, "--test", "-t", help="Bundled test name or test file "
                                                   "(repeatable). Default: math-arts, science-arts, career-family."),
          query: Optional[str] = typer.Option(None, "--query", help="Score a word query instead: which documents "
                                              "pull WORD toward --toward words (and away from --away words)."),
          toward: Optional[str] = typer.Option(None, "--toward", help="Comma-separated words for --query."),
          away: Optional[str] = typer.Option(None, "--away", help="Comma-separated words for --query."),
          estimator: Optional[str] = typer.Option(None, "--estimator", "-e", help="Embeddings: block (default), cg, "
                                                  "lissa or gradient-dot; --model lm: ekfac (default) or gradient-dot. "
                                                  "With settings: 'cg:damping=0.05,max_iter=300'."),
          pairs: Optional[Path] = typer.Option(None, "--pairs", help="--model lm: JSONL of paired sentences "
                                               "{\"more\": ..., \"less\": ...} (CrowS-Pairs fields sent_more/sent_less "
                                               "also read); scored as one more measure."),
          strict_oov: bool = typer.Option(False, "--strict-oov", help="Fail on test words missing from the "
                                          "vocabulary instead of dropping them (dropped words are always listed)."),
          out_dir: Optional[Path] = typer.Option(None, "--out", "-o", help="Output folder. Default: "
                                                 "reports/<corpus>-skipgram-<hash>/"),
          top: int = typer.Option(10, "--top", help="Documents to show in each direction."),
          overwrite: bool = typer.Option(False, "--overwrite", help="Reuse an output folder made with another config."),
          vector_size: int = VectorSizeOpt, window: int = WindowOpt, min_count: int = MinCountOpt,
          negative: int = NegativeOpt, epochs: int = EpochsOpt, seed: int = SeedOpt, workers: int = WorkersOpt,
          sample: float = SampleOpt, backend: str = BackendOpt, model: str = ModelOpt, embedding: Optional[str] = EmbeddingOpt, device: str = DeviceOpt,
          scheduler: Optional[str] = SchedulerOpt, lm_config: Optional[str] = LMConfigOpt,
          checkpoint: Optional[Path] = CheckpointOpt, templates: Optional[Path] = TemplatesOpt):
    """Rank every training document by its contribution to a bias (cross-loss influence).

    delta_bias_if_removed(d) = grad B^T H^-1 grad L_d: the predicted change of the effect size if document d is
    removed and the model retrained. NEGATIVE means the document drives the bias UP.
    delta_bias_if_upweighted(d) (one more copy of d) is its negative (GloVe: computed from the added counts).
    With --model lm the measure is the template association of each test (and --pairs), and the influence is
    kronfluence's EK-FAC over the network's linear layers (and its embeddings when the vocabulary is small).
    """
    from .corpus import load_corpus
    from .distributed import dask_client
    from .influence.estimators import EstimatorConfig
    from .influence.report import run_score
    from .lm_metrics import load_pairs, load_templates

    config = _config(vector_size, window, min_count, negative, epochs, seed, workers, sample, backend, model, embedding,
                     lm_config)
    est = EstimatorConfig.parse(_estimator_default(estimator, model))
    _check_estimators([est], model)
    if query is not None and test:
        raise typer.BadParameter("use either --test or --query", param_hint="--query")
    if (toward or away) and query is None:
        raise typer.BadParameter("--toward/--away need --query", param_hint="--toward")
    if (templates is not None or pairs is not None) and model != "lm":
        raise ConfigError("--templates and --pairs measure language models; add --model lm")
    tpl = load_templates(templates) if model == "lm" else None
    pair_spec = (pairs.stem, load_pairs(pairs)) if pairs is not None else None
    model = (_load_checkpoint(checkpoint, model, device) if checkpoint is not None
             else _train_seeds(corpus, id_field, text_field, config, 1, device)[0])
    corp = load_corpus(corpus, id_field, text_field)
    with dask_client(scheduler) as client, _progress() as update:
        summary = run_score(model, corp, test, est, out_dir=out_dir, overwrite=overwrite, allow_oov=not strict_oov,
                            query=(query, [w.strip().lower() for w in (toward or "").split(",") if w.strip()],
                                   [w.strip().lower() for w in (away or "").split(",") if w.strip()])
                            if query else None, top=top, progress=update, client=client, device=device,
                            templates=tpl, pairs=pair_spec)
    for note in summary["notes"]:
        err.print(f"[yellow]note:[/] {escape(note)}")
    for t in summary["tests"]:
        out.print(f"\n[bold]{escape(t['name'])}[/]: B = {t['bias_value']:+.3f} ({escape(t['kind'])}); "
                  f"estimator {escape(est.label)}; sum of predicted changes {t['sum_delta_if_removed']:+.3f}")
        if t.get("warning"):
            out.print(f"[yellow]warning:[/] {escape(t['warning'])}")
        for direction, title in (("increase_bias", "drive the bias UP (removing them lowers it)"),
                                 ("decrease_bias", "drive the bias DOWN (removing them raises it)")):
            table = Table(title=f"documents that {title}", title_justify="left")
            table.add_column("doc id", overflow="fold")
            table.add_column("delta_if_removed", justify="right")
            table.add_column("test words")
            table.add_column("text", overflow="fold")
            for d in t["top"][direction]:
                table.add_row(escape(d["doc_id"]), f"{d['delta_bias_if_removed']:+.4f}", escape(", ".join(d["test_words"])),
                              escape(d["snippet"]))
            out.print(table)
    from .html_report import write_report

    page = write_report(summary["out_dir"])
    out.print(f"\nwrote {summary['out_dir']}/scores.jsonl and summary.json "
              f"({summary['timings']['total']:.1f} s scoring)\nreport: {page}")


def _parse_estimators(specs: List[str]) -> list:
    """``block,cg,block:damping=0.5,max_iter=9`` (settings without a ':' continue the estimator before them)."""
    from .influence.estimators import EstimatorConfig

    parts: list[str] = []
    for spec in specs:
        for tok in [t.strip() for t in spec.split(",") if t.strip()]:
            if "=" in tok and ":" not in tok and parts:
                parts[-1] += "," + tok
            else:
                parts.append(tok)
    ests = [EstimatorConfig.parse(p) for p in parts]
    labels = [e.label for e in ests]
    if len(set(labels)) < len(labels):
        raise ConfigError(f"--estimator: an estimator is given twice ({', '.join(labels)})")
    return ests


@app.command()
def experiment(corpus: Optional[str] = CorpusOpt, id_field: str = IdFieldOpt, text_field: str = TextFieldOpt,
               test: Optional[List[str]] = typer.Option(None, "--test", "-t", help="Bundled test name or test file "
                                                        "(repeatable). Default: math-arts, science-arts, career-family."),
               heldout: Optional[List[str]] = typer.Option(None, "--heldout", help="Held-out companion test file "
                                                           "(repeatable; 'heldout_for' names the audited test, else "
                                                           "they pair in order). Default: the bundled companions."),
               estimator: Optional[List[str]] = typer.Option(None, "--estimator", "-e", help="Estimators whose "
                                                             "rankings are retrained, comma-separated: block,cg,"
                                                             "gradient-dot,block:damping=0.5 (default block; ekfac "
                                                             "for --model lm)."),
               k: str = typer.Option("0.1%,0.5%,1%", "--k", help="Sizes of the document sets: percentages of the "
                                     "corpus or counts, comma-separated."),
               seeds: int = typer.Option(3, "--seeds", help="Paired seeds (seed, seed+1, ...) for every condition."),
               conditions: Optional[str] = typer.Option(None, "--conditions",
                                                        help="Comma-separated: baseline, remove-top, remove-bottom, "
                                                        "upweight-top, remove-random, remove-ids, hard-debias. "
                                                        "Default: all but remove-ids (and hard-debias for --model lm)."),
               upweight: int = typer.Option(5, "--upweight", help="Copies in all of each upweighted document."),
               mode: str = typer.Option("scratch", "--mode", help="scratch (retrain from scratch: the honest "
                                        "check), warm-start (continue the baseline on the edited corpus for "
                                        "--warm-epochs) or undo (the paper's gradient ascent on removed documents)."),
               warm_epochs: int = typer.Option(1, "--warm-epochs", help="Epochs (or ascent steps) for warm-start/undo."),
               remove_ids: Optional[Path] = typer.Option(None, "--remove-ids", help="File of document ids, one per "
                                                         "line, for condition remove-ids."),
               lds: int = typer.Option(0, "--lds", help="Linear datamodeling score: retrain on this many random "
                                       "subsets and correlate predicted with actual changes (0: off)."),
               lds_fraction: float = typer.Option(0.5, "--lds-fraction", help="Fraction of documents each LDS "
                                                  "subset removes."),
               no_quality: bool = typer.Option(False, "--no-quality", help="Skip WordSim-353 / SimLex-999 / analogy "
                                               "evaluation of each model."),
               strict_oov: bool = typer.Option(False, "--strict-oov", help="Fail on test words missing from the "
                                               "vocabulary instead of dropping them."),
               out_dir: Optional[Path] = typer.Option(None, "--out", "-o", help="Output folder. Default: "
                                                      "reports/<corpus>-<model>-experiment-<hash>/"),
               overwrite: bool = typer.Option(False, "--overwrite", help="Reuse a folder holding another "
                                              "experiment (its runs are deleted)."),
               scheduler: str = typer.Option("local", "--scheduler", help="Where retrains run: 'local' (a Dask "
                                             "LocalCluster, one worker per core), a scheduler address "
                                             "(tcp://host:8786), or 'none' (in this process)."),
               vector_size: int = VectorSizeOpt, window: int = WindowOpt, min_count: int = MinCountOpt,
               negative: int = NegativeOpt, epochs: int = EpochsOpt, seed: int = SeedOpt, workers: int = WorkersOpt,
               sample: float = SampleOpt, backend: str = BackendOpt, model: str = ModelOpt, embedding: Optional[str] = EmbeddingOpt,
               lm_config: Optional[str] = LMConfigOpt, templates: Optional[Path] = TemplatesOpt):
    """Retrain without (or with more of) the top-ranked documents and check that the bias moves as predicted.

    Conditions are compared with paired seeds against the baseline and against removing the same number of
    random documents. Results: results.csv (one row per estimator, test, condition, k, seed), experiment.json
    (means, sds, paired differences from random removal with p-values, predicted-vs-actual correlations).
    Finished retrains are kept in runs/; rerunning the same command resumes.
    """
    import hashlib

    from .corpus import load_corpus
    from .distributed import dask_client
    from .experiment import DEFAULT_CONDITIONS, ExperimentSpec, run_experiment
    from .lm_metrics import load_templates
    from .wordsets import resolve_heldout, resolve_tests

    config = _config(vector_size, window, min_count, negative, epochs, seed, workers, sample, backend, model, embedding,
                     lm_config)
    if templates is not None and model != "lm":
        raise ConfigError("--templates measures language models; add --model lm")
    if conditions is None:
        conditions = ",".join(c for c in DEFAULT_CONDITIONS if not (model == "lm" and c == "hard-debias"))
    tests = resolve_tests(test)
    ids: tuple = ()
    if remove_ids is not None:
        try:
            ids = tuple(dict.fromkeys(l.strip() for l in remove_ids.read_text(encoding="utf-8").splitlines()
                                      if l.strip()))
        except (OSError, UnicodeDecodeError) as e:
            raise ConfigError(f"--remove-ids: cannot read {remove_ids} ({e})") from e
        if not ids:
            raise ConfigError(f"--remove-ids: {remove_ids} holds no document id")
    corp = load_corpus(corpus, id_field, text_field)
    spec = ExperimentSpec(corpus=corp, model=config, tests=tests, heldout=resolve_heldout(tests, heldout),
                          estimators=_parse_estimators(estimator or [_estimator_default(None, model)]), ks=k,
                          seeds=seeds, templates=load_templates(templates) if templates is not None else None,
                          conditions=tuple(c.strip() for c in conditions.split(",") if c.strip()),
                          upweight=upweight, mode=mode, warm_epochs=warm_epochs, remove_ids=ids, lds=lds,
                          lds_fraction=lds_fraction, quality=not no_quality, allow_oov=not strict_oov)
    spec.validate()
    _check_estimators(spec.estimators, model)
    if out_dir is None:
        key = hashlib.sha256(json.dumps(spec.to_config(), sort_keys=True).encode()).hexdigest()[:8]
        out_dir = Path("reports") / f"{corp.name}-{model}-experiment-{key}"
    with dask_client(None if scheduler == "none" else scheduler) as client, _progress() as update:
        summary = run_experiment(spec, out_dir, overwrite=overwrite, client=client, progress=update,
                                 log=lambda m: err.print(f"[yellow]note:[/] {escape(m)}"))
    table = Table(title=f"{summary['mode']} retraining, {len(summary['seeds'])} paired seed(s); change = effect size "
                  "minus the same seed's baseline (mean ± sd)", title_justify="left")
    for col in ("estimator", "test", "condition", "k", "change", "predicted", "held-out change", "vs random (p)",
                "WordSim"):
        table.add_column(col, justify="left" if col in ("estimator", "test", "condition") else "right")
    fmt = lambda v, sd=None: "-" if v is None else (f"{v:+.3f}" + ("" if sd is None else f" ± {sd:.3f}"))
    for d in summary["conditions"]:
        vs = "-" if "difference_from_random" not in d else (
            f"{d['difference_from_random']:+.3f}" + ("" if d.get("difference_from_random_p") is None
                                                     else f" ({d['difference_from_random_p']:.2g})"))
        table.add_row(escape(d["estimator"]), escape(d["test"]), d["condition"], d["k"],
                      fmt(d["change_mean"], d["change_sd"]), fmt(d["predicted_change_mean"]),
                      fmt(d["heldout_change_mean"], d["heldout_change_sd"]), vs,
                      "-" if d["wordsim353_mean"] is None else f"{d['wordsim353_mean']:.3f}")
    out.print(table)
    for c in summary["predicted_vs_actual"]:
        out.print(f"{c['estimator']} / {c['test']}: predicted vs actual change over {c['n']} runs: Pearson "
                  f"{fmt(c['pearson'])}, Spearman {fmt(c['spearman'])}, median actual/predicted "
                  f"{fmt(c['median_actual_over_predicted'])}")
    for l in summary["lds"]:
        out.print(f"LDS {l['estimator']} / {l['test']}: Spearman {fmt(l['spearman'])} over {l['n_subsets']} subsets")
    out.print(f"scope: {summary['scope']}")
    from .html_report import write_report

    page = write_report(out_dir)
    out.print(f"wrote {out_dir}/results.csv and experiment.json ({summary['run_seconds']:.0f} s)\nreport: {page}")


@app.command()
def report(folder: Path = typer.Argument(..., help="Output folder of `biasaudit score` or `biasaudit experiment`.")):
    """Write FOLDER/report.html: one self-contained page (no network) with the tests, the documents that carry
    the bias, the influence distribution and, for experiments, the retraining results."""
    from .html_report import write_report

    out.print(f"report: {write_report(folder)}")


def main() -> None:
    """Console entry point: run the app, turning BiasAuditErrors into one red line and exit code 1."""
    debug = "--debug" in sys.argv[1:]
    try:
        app()  # usage errors: click prints them and exits 2
    except BiasAuditError as e:
        if debug:
            traceback.print_exc()
        err.print(f"[red]error:[/red] {escape(str(e))}", highlight=False, soft_wrap=True)
        sys.exit(1)

if __name__ == "__main__":
    main()
