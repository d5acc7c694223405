"""The Python API: the nouns and verbs the command line is written on, for scripts and notebooks.

    import biasaudit as ba
    corpus = ba.load_corpus("corpus.jsonl")
    model = ba.train(corpus, vector_size=50, epochs=5)          # or ba.load_model / ba.from_gensim / ba.from_hf
    ba.measure(model, ["math-arts"])                             # WEAT with p-values and CIs
    result = ba.score(model, corpus, ["math-arts"])              # every document's influence on the bias
    result.top(10); result.to_pandas()
    ba.experiment(model, corpus, ["math-arts"], k="1%", seeds=3) # retrain without the top documents

Each verb does what its command does and writes the same output folder (``score``: summary.json and scores.jsonl,
``experiment``: experiment.json and results.csv, ``debias_corpus``: manifest.json and the edited corpus), so a
folder written here is read by ``biasaudit report`` and the other way round (``load_result``). Results are
objects over those folders: ``to_pandas()``, ``top(n)``, ``save(folder)`` / ``load(folder)``, and
``_repr_html_`` (the report's tables and charts in a notebook cell).

Heavy libraries (torch, gensim, transformers, pandas, wefe) are imported by the verbs that need them, never by
``import biasaudit``. Messages go to the caller's ``log`` (a note) and ``progress`` (stage, done, total)
callbacks when given; errors are BiasAuditError subclasses, as everywhere in the library.
"""
from __future__ import annotations

import functools
import importlib.util
import json
import os
import shutil
import sys
from contextlib import contextmanager
from dataclasses import dataclass, fields, replace
from numbers import Integral, Real
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

from .errors import ArtifactError, ConfigError

__all__ = ["load_corpus", "model_config", "train", "train_seeds", "load_model", "from_gensim", "from_hf",
           "bias_tests", "measure", "measures", "measures_request", "score", "experiment", "debias_corpus",
           "write_report", "load_result", "WeatResult", "MeasuresResult", "ScoreResult", "ExperimentResult",
           "DebiasResult", "Rows"]

Progress = Callable[[str, int, int], None]
Log = Callable[[str], None]


@contextmanager
def _progress_of(progress):
    """The callback a verb reports its phases to. ``progress``: None or False (silent), a callback (stage, done,
    total), or True: the command line's display on stderr (``biasaudit.terminal.Phases``): a bar per phase on a
    terminal and in a notebook, plain lines (a phase's start, its count every 10 s, its end) in a log."""
    if progress is None or progress is False:
        yield None
    elif progress is True:
        from rich.console import Console

        from .terminal import Phases

        console = Console(stderr=True, width=None if sys.stderr.isatty() else 200, highlight=False)   # the CLI's
        # in a notebook rich draws its bars with ipywidgets, and they stay as the run's record; without
        # ipywidgets, the lines a log gets
        notebook = console.is_jupyter and importlib.util.find_spec("ipywidgets") is not None
        with Phases(console, live=console.is_terminal or notebook, transient=not notebook) as phases:
            yield phases
    elif callable(progress):
        yield progress
    else:
        raise ConfigError(f"progress must be True (show progress), None or a callback (stage, done, total), got "
                          f"{type(progress).__name__}")


def _reports_progress(verb):
    """A verb whose ``progress`` may also be True (``_progress_of``), its arguments' kinds checked (``_checked``)."""
    verb = _checked(verb)

    @functools.wraps(verb)
    def run(*args, progress=None, **kwargs):
        with _progress_of(progress) as callback:
            return verb(*args, progress=callback, **kwargs)
    return run


# an argument annotated with one of these must be of that kind (a bool is not a number here); the counts
# (``measures.options.COUNTS``) and sizes (``k``) have checks of their own, with their ranges
_KINDS = {"bool": ((bool,), "True or False"), "int": ((Integral,), "a whole number"), "str": ((str,), "a string"),
          "float": ((Real,), "a number"), "int | None": ((Integral, type(None)), "a whole number or None"),
          "str | None": ((str, type(None)), "a string or None"),
          "float | None": ((Real, type(None)), "a number or None")}
_PATHS = ("out", "cache")
_OWN_CHECKS = ("k", "n_seeds", "n_permutations", "n_bootstrap", "seeds", "ensemble", "resamples", "measure")


def _checked(verb):
    """``verb`` with each argument of the wrong kind refused first, one ConfigError naming it (``ba.score(m, c,
    top="5")``, ``out=3``, ``overwrite="no"``), not a TypeError from deep inside."""
    import inspect

    sig = inspect.signature(verb)

    @functools.wraps(verb)
    def run(*args, **kwargs):
        try:
            given = sig.bind_partial(*args, **kwargs).arguments
        except TypeError:
            return verb(*args, **kwargs)      # a wrong keyword: Python's own error names it
        for name, value in given.items():
            if name in _PATHS:
                if value is not None:
                    _path_arg(name, value)
                continue
            kinds = _KINDS.get(sig.parameters[name].annotation) if name not in _OWN_CHECKS else None
            if kinds and (not isinstance(value, kinds[0]) or (isinstance(value, bool) and bool not in kinds[0])):
                raise ConfigError(f"{name} must be {kinds[1]}, got {value!r}")
            if name == "top" and value < 1:
                raise ConfigError(f"top must be 1 or more, got {value!r}")
        return verb(*args, **kwargs)
    return run


def _load_libraries(progress) -> None:
    """torch, gensim and the model families imported as a phase of their own (the first import takes seconds)."""
    if "gensim" in sys.modules and "biasaudit.models" in sys.modules:
        return
    with _phase(progress, "loading torch and gensim"):
        import gensim  # noqa: F401

        from . import models  # noqa: F401


@contextmanager
def _phase(progress, stage: str):
    """A step with no count of its own reported as a phase (0/1, then 1/1), so its time is on the screen."""
    if progress:
        progress(stage, 0, 1)
    yield
    if progress:
        progress(stage, 1, 1)


# ------------------------------------------------------------------ corpora and bias tests
def load_corpus(source=None, *, id_field: str = "id", text_field: str = "text", tokenizer: str = "biasaudit",
                name: str = "memory"):
    """A corpus: a bundled name (``gcide``, ``wordnet``; None: gcide), a file, folder, glob or hub dataset, or
    documents held in memory (called ``name``): an iterable of ``(id, text)`` pairs, ``Document`` objects, or
    ``(id, tokens)`` pairs of documents you tokenized yourself (a list of strings each, used as they are).

    ``tokenizer``: how text becomes tokens, the one your model was trained with: ``biasaudit`` (lowercase runs of
    letters and digits), ``whitespace``, ``simple_preprocess`` (gensim's ``gensim.utils.simple_preprocess``, what
    most gensim Word2Vec tutorials train on) or, for files, ``field:NAME`` (a field holding each document's
    tokens). A corpus passes through unchanged."""
    from .corpus import Corpus, Document, MemoryCorpus
    from .corpus import load_corpus as open_corpus
    from .tokens import Tokenizer

    if isinstance(source, Corpus):
        return source
    if source is None or isinstance(source, (str, os.PathLike)):
        return open_corpus(source, id_field, text_field, tokenizer)
    if isinstance(source, (bytes, dict)) or not hasattr(source, "__iter__"):
        raise ConfigError(f"corpus: {type(source).__name__} is not a corpus (a name, a path, or documents: (id, "
                          "text) pairs, (id, tokens) pairs or Documents)")
    tok = tokenizer if isinstance(tokenizer, Tokenizer) else Tokenizer(tokenizer)
    docs, tokenized = [], 0
    for i, d in enumerate(source):
        if isinstance(d, Document):
            docs.append(d)
            tokenized += d.tokens is not None
            continue
        if not isinstance(d, (tuple, list)) or len(d) != 2:
            raise ConfigError(f"corpus: document {i + 1} is a {type(d).__name__}, not an (id, text) or (id, tokens) "
                              "pair or a Document")
        doc_id, body = d
        if isinstance(body, str):
            docs.append(Document(str(doc_id), body))
        elif isinstance(body, (list, tuple)) and all(isinstance(t, str) for t in body):
            docs.append(Document(str(doc_id), " ".join(body), tokens=tuple(body)))
            tokenized += 1
        else:
            raise ConfigError(f"corpus: document {i + 1} ({doc_id!r}) holds a {type(body).__name__}, not a text or "
                              "a list of tokens")
    if tokenized:
        if tokenized != len(docs):
            raise ConfigError(f"corpus: {tokenized} of {len(docs)} documents are lists of tokens; give every "
                              "document as text or every one as tokens")
        if tokenizer != "biasaudit":
            raise ConfigError(f"tokenizer={tokenizer!r}: the documents are already tokens (used as given)")
        tok = Tokenizer("field:tokens")
    elif tok.field is not None:
        raise ConfigError(f"tokenizer={tokenizer!r} reads token lists: give the documents as (id, tokens) pairs")
    return MemoryCorpus(docs, name=name, tokenizer=tok)


def _wefe_test(query, where: str):
    """A WEFE ``Query`` of two target and two attribute sets as a test (WEFE itself is not imported). Its words,
    not WEFE's number: WEFE's WEAT d divides by the population sd (ddof=0), this tool's by the sample sd (ddof=1),
    so WEFE's is larger by sqrt(n/(n-1)), n = |X| + |Y|; ``measure(..., sd="population")`` gives WEFE's."""
    targets, attributes = list(query.target_sets), list(query.attribute_sets)
    if len(targets) != 2 or len(attributes) != 2:
        raise ConfigError(f"{where}: a WEAT test needs 2 target and 2 attribute sets; the WEFE query has "
                          f"{len(targets)} and {len(attributes)}")
    t_names = list(getattr(query, "target_sets_names", None) or ["target_x", "target_y"])
    a_names = list(getattr(query, "attribute_sets_names", None) or ["attribute_a", "attribute_b"])
    return {"name": str(getattr(query, "query_name", "") or "wefe-query"), "source": "WEFE Query",
            "target_x": {"name": t_names[0], "words": list(targets[0])},
            "target_y": {"name": t_names[1], "words": list(targets[1])},
            "attribute_a": {"name": a_names[0], "words": list(attributes[0])},
            "attribute_b": {"name": a_names[1], "words": list(attributes[1])}}


def _test_specs(tests) -> list | None:
    """Test specs as ``resolve_tests`` takes them: names and files kept (so the check command can name them),
    dicts and WEFE queries made ``BiasTest``s; None: the default tests."""
    from .wordsets import BiasTest

    if tests is None:
        return None
    if isinstance(tests, (str, os.PathLike, BiasTest, dict)) or hasattr(tests, "target_sets"):
        tests = [tests]
    if not hasattr(tests, "__iter__"):
        raise ConfigError(f"tests: {type(tests).__name__} is not a test (a name, file, dict, BiasTest or WEFE "
                          "Query) or a list of them")
    out = []
    for i, t in enumerate(tests):
        if isinstance(t, os.PathLike):
            t = str(t)
        if isinstance(t, (str, BiasTest)):
            out.append(t)
        elif isinstance(t, dict):
            out.append(BiasTest.from_dict(t, f"test {i + 1}"))
        elif hasattr(t, "target_sets") and hasattr(t, "attribute_sets"):
            out.append(BiasTest.from_dict(_wefe_test(t, f"test {i + 1}"), f"test {i + 1} (WEFE Query)"))
        else:
            raise ConfigError(f"test {i + 1}: {type(t).__name__} is not a test name, file, dict, BiasTest or WEFE "
                              "Query")
    return out


def bias_tests(*tests) -> list:
    """Bias tests (``BiasTest``, frozen): bundled names (``biasaudit wordsets`` lists them), JSON/YAML test files,
    dicts with name, target_x, target_y, attribute_a, attribute_b, or WEFE ``Query`` objects (two target and two
    attribute sets). No argument: the default tests."""
    from .wordsets import resolve_tests

    return resolve_tests(_test_specs([t for group in tests for t in
                                      (group if isinstance(group, (list, tuple)) else [group])]) or None)


# ------------------------------------------------------------------ models
def model_config(model: str = "skipgram", lm_config: str | None = None, **options):
    """A model family's config (``skipgram``, ``glove``, ``lm``) from gensim-style options (vector_size, window,
    min_count, negative, epochs, seed, workers, sample, backend, embedding) and, for ``lm``, its settings string
    (``"hidden_size=64,num_layers=2"``); an option the family does not take is refused."""
    from .models import make_config

    return make_config(model, lm_config, **options)


@_reports_progress
def train_seeds(corpus, config, n_seeds: int = 1, *, device: str = "cpu", cache: str | Path | None = None,
                progress: Progress | None = None, log: Log | None = None,
                on_model: Callable[[Any, Any, bool], None] | None = None) -> list:
    """The models of ``config`` trained on ``corpus`` with seeds seed, seed+1, ...: each read from the model cache
    when this corpus and config were trained before, else trained and cached. ``on_model(model, config,
    cached)`` is called as each is ready."""
    _load_libraries(progress)
    from .measures.options import check_count
    from .models import family_of, train_or_load
    from .models.base import resolve_device

    n_seeds = check_count("n_seeds", n_seeds)
    resolve_device(device)     # an unusable device is an error before any work
    corpus = load_corpus(corpus)
    if not hasattr(config, "family"):
        raise ConfigError(f"config must be a model config (model_config makes one), got {config!r}")
    fam = family_of(config)
    with _phase(progress, "reading the corpus"):
        stats = corpus.scan()
    if log and stats.n_empty:
        log(f"skipped {stats.n_empty} empty document(s) in {corpus.name}")
    if log and fam.unit == "tokens" and stats.n_documents > 20_000 and not str(device).startswith(("cuda", "auto")):
        log(f"training a language model on {stats.n_documents:,} documents on the CPU can take hours; "
            "--device cuda, or a smaller corpus, is faster (the cache keeps the result)")
    models = []
    for k in range(n_seeds):
        cfg = replace(config, seed=config.seed + k)
        stage = f"training seed {cfg.seed}"
        model, cached = train_or_load(corpus, cfg, cache=Path(cache) if cache else None, device=device,
                                      progress=(lambda s, d, t: progress(stage if s == "train" else s, d, t))
                                      if progress else None)
        if on_model:
            on_model(model, cfg, cached)
        models.append(model)
    return models


@_reports_progress
def train(corpus, model="skipgram", *, device: str = "cpu", cache: str | Path | None = None,
          progress: Progress | None = None, log: Log | None = None, lm_config: str | None = None, **options):
    """A model trained on ``corpus`` (or read from the model cache): ``model`` is a family name with its options
    (``train(corpus, "skipgram", vector_size=50, epochs=5, seed=1)``) or a config from ``model_config``."""
    _load_libraries(progress)
    if isinstance(model, str):
        config = model_config(model, lm_config, **options)
    elif options or lm_config:
        raise ConfigError("train: give the options in model_config(...) or with a family name, not both")
    elif not hasattr(model, "family"):
        raise ConfigError(f"model must be a family name ('skipgram', 'glove', 'lm') or a config from model_config, "
                          f"got {model!r}")
    else:
        config = model
    return train_seeds(corpus, config, 1, device=device, cache=cache, progress=progress, log=log)[0]


FILE_SETTINGS = ("vector_size", "window", "min_count", "negative", "epochs", "sample", "workers", "backend", "seed")


def _check_file_settings(family: str, vocab, settings: dict) -> None:
    """A model trained elsewhere brings its own settings: a gensim file all of them (``FILE_SETTINGS``; no
    ``vocab``), GloVe C output its size and vocabulary (``vocab`` needed; no ``vector_size``, ``min_count``).
    Each refusal is a usage error of the command line's ``--embeddings`` or ``--vocab``."""
    flag = lambda n: "--" + n.replace("_", "-")
    if family == "skipgram":
        given = [n for n in FILE_SETTINGS if settings.get(n) is not None]
        words = "a gensim model's settings are read from its file; drop "
        if given:
            raise ConfigError(words + ", ".join(given + (["vocab"] if vocab is not None else []))).with_cli(
                words + ", ".join(map(flag, given))).usage("--embeddings")
        if vocab is not None:
            raise ConfigError(words + "vocab").with_cli(
                "--vocab goes with GloVe C output (--model glove)").usage("--vocab")
    elif family == "glove":
        if vocab is None:
            raise ConfigError("GloVe C output needs vocab= vocab.txt (vocab_count's output)").with_cli(
                "GloVe C output needs --vocab vocab.txt (vocab_count's output)").usage("--embeddings")
        for n in ("vector_size", "min_count"):
            if settings.get(n) is not None:
                raise ConfigError(f"{n} is read from the GloVe files").with_cli(
                    f"{flag(n)} is read from the GloVe files").usage("--embeddings")


@_checked
def load_model(path, corpus=None, *, model: str | None = None, vocab=None, device: str = "cpu", **settings):
    """A saved model.

    Without ``corpus``: a biasaudit model folder of any family or a local HF causal-LM checkpoint folder
    (``model="lm"``), or word vectors from other tools (word2vec or GloVe text/binary, gensim KeyedVectors),
    which are measured but not scored. With ``corpus``: a model you trained elsewhere, to score (``--embeddings``):
    a full gensim Word2Vec file (``model="skipgram"``, its settings read from the file) or the GloVe C tool's
    parameters (``model="glove"``, ``vocab=`` vocab_count's vocab.txt; ``settings``: window, epochs, embedding,
    seed), checked against the corpus's vocabulary."""
    from .models import get_family
    from .models.base import load_model as load_folder

    path = _path_arg("path", path)
    if corpus is None:
        from .models.folder import is_model_dir
        from .models.keyed import load_embeddings

        if model is not None:
            return get_family(model).load(path, device)
        if path.is_dir() and not is_model_dir(path) and (path / "config.json").exists():
            return load_folder(path, device)        # a language model or HF checkpoint folder
        return load_embeddings(path)                # vectors: files of other tools, embedding model folders
    from .models.imported import check_vocabulary, load_glove_c, load_word2vec

    corpus = load_corpus(corpus)
    fam = get_family(model or "skipgram")
    _check_file_settings(fam.name, vocab, settings)
    if fam.name == "skipgram":
        loaded = load_word2vec(path)
    elif fam.name == "glove":
        loaded = load_glove_c(path, vocab, {k: settings.get(k) for k in ("window", "epochs", "embedding", "seed")})
    else:
        raise ConfigError(f"load_model(path, corpus) reads a gensim Word2Vec (model='skipgram') or GloVe C output "
                          f"(model='glove'); model={fam.name!r} reads a checkpoint: load_model(path, model="
                          f"{fam.name!r})").with_cli(
            f"--embeddings audits a gensim Word2Vec (--model skipgram) or GloVe C output (--model glove); --model "
            f"{fam.name} takes --checkpoint")
    return check_vocabulary(loaded, corpus, str(path))


def from_gensim(obj, corpus=None):
    """A gensim model held in memory: a ``Word2Vec`` (skip-gram, negative sampling; its settings, input and output
    vectors and counts are read from it) to measure and score, checked against ``corpus`` when given; or
    ``KeyedVectors`` (plain vectors) to measure."""
    from gensim.models import KeyedVectors, Word2Vec

    from .models.imported import check_vocabulary, keyed_vectors, word2vec_model

    if isinstance(obj, Word2Vec):
        model = word2vec_model(obj, "the given Word2Vec")
        return check_vocabulary(model, load_corpus(corpus), "the given Word2Vec") if corpus is not None else model
    if isinstance(obj, KeyedVectors):
        return keyed_vectors(obj)
    raise ConfigError(f"from_gensim takes a gensim Word2Vec or KeyedVectors, not {type(obj).__name__}")


def from_hf(model, tokenizer, *, device: str = "cpu"):
    """A transformers causal language model and its tokenizer, held in memory, to measure (template association)
    and score (EK-FAC); like a ``--checkpoint`` folder, its training corpus is not checked."""
    from .models.imported import hf_model

    return hf_model(model, tokenizer, device)


def _is_model(obj) -> bool:
    """A model of one of the families (it carries its family's name); a gensim object is not one until
    ``from_gensim`` makes it one."""
    return hasattr(obj, "family") and (hasattr(obj, "meta") or hasattr(obj, "index_to_key"))


def _models(model, seed_models: Sequence = ()) -> list:
    """``model`` (one, or a list of seeds' models) and ``seed_models`` as a list of models; a ConfigError naming
    ``model`` for anything else (None, an empty list, a path: ``load_model`` reads one)."""
    models = (list(model) if isinstance(model, (list, tuple)) else [model]) + list(seed_models)
    if not models:
        raise ConfigError("model: an empty list; give a model (train, load_model, from_gensim, from_hf) or a list "
                          "of seeds' models")
    for i, m in enumerate(models):
        if not _is_model(m):
            how = ("a gensim object: ba.from_gensim(it) makes one" if type(m).__module__.startswith("gensim")
                   else "train, load_model, from_gensim or from_hf make one")
            raise ConfigError(f"model{f' {i + 1}' if len(models) > 1 else ''}: {type(m).__name__} is not a model "
                              f"({how})")
    return models


def _one_model(model, verb: str):
    """The one model a ranking verb takes (other seeds' models go in ``seed_models``)."""
    if isinstance(model, (list, tuple)):
        raise ConfigError(f"model: {verb} ranks by one model (give other seeds' models as seed_models), got a "
                          f"{type(model).__name__}")
    return _models(model)[0]


def _sizes(k) -> str:
    """``k`` as the comma-separated sizes experiments and debias read: a string ("1%", "0.1%,1%", "100") or a
    list of such strings; anything else a ConfigError naming ``k``."""
    if isinstance(k, (list, tuple)) and k and all(isinstance(x, str) for x in k):
        return ",".join(k)
    if not isinstance(k, str):
        raise ConfigError(f"k must be sizes as a string, percentages of the corpus or counts (\"1%\", "
                          f"\"0.1%,1%\", \"100\"), got {k!r}")
    return k


def _templates(fam, templates):
    """Templates for a family that takes them: a file, a sequence of strings, or None (the bundled set)."""
    from .measures.lm import load_templates

    if not fam.takes_templates:
        if templates is not None:
            raise ConfigError("templates= measures language models (model='lm')").with_cli(
                "--templates measures language models; add --model lm")
        return None
    return _template_list(templates) if templates is not None else load_templates(None)


def estimators(specs, family) -> list:
    """Estimator configs from names with settings (``"block"``, ``"cg:damping=0.05,max_iter=300"``, or configs),
    checked against the model family (its default when ``specs`` is None)."""
    from .influence.estimators import EstimatorConfig, check_estimators, parse_estimators
    from .models import get_family

    fam = get_family(family) if isinstance(family, str) else family
    if isinstance(specs, (str, EstimatorConfig)):
        specs = [specs]
    if specs is not None and not isinstance(specs, (list, tuple)):
        specs = [specs]
    specs = list(specs or [fam.default_estimator])
    odd = [s for s in specs if not isinstance(s, (str, EstimatorConfig))]
    if odd:
        raise ConfigError(f"estimator must be a name with settings (\"block\", \"cg:damping=0.05\") or an "
                          f"EstimatorConfig, got {odd[0]!r}")
    ests = [s for s in specs if isinstance(s, EstimatorConfig)]
    names = [s for s in specs if not isinstance(s, EstimatorConfig)]
    ests += parse_estimators(names) if names else []
    check_estimators(ests, fam)
    return ests


def seed_count(family, seeds: int | None = None, ensemble: int = 1, trained: bool = True) -> int:
    """How many seeds' models a score run uses: ``seeds``, else the family's default (1 for a model not trained
    here), and at least ``ensemble``."""
    from .models import get_family

    fam = get_family(family) if isinstance(family, str) else family
    return max(seeds or (getattr(fam, "default_seeds", 1) if trained else 1), ensemble)


def _more_seeds(model, corpus, have: int, n_more: int, *, device, cache, progress, log, on_model, why: str) -> list:
    """``n_more`` models with the settings of ``model`` at the seeds after its own and the ``have`` given."""
    if n_more <= 0:
        return []
    config = getattr(model, "config", None)
    if config is None:
        raise ConfigError(f"{why} needs training; a model without a training config (a checkpoint) is one model")
    return train_seeds(corpus, replace(config, seed=config.seed + 1 + have), n_more, device=device, cache=cache,
                       progress=progress, log=log, on_model=on_model)


# ------------------------------------------------------------------ result objects
class Rows(list):
    """A list of result rows (dicts) that shows as a table in a notebook and converts to a DataFrame."""

    def to_pandas(self):
        """The rows as a pandas DataFrame (pandas is imported here; a clear error when it is missing)."""
        return _pandas().DataFrame(list(self))

    def _repr_html_(self) -> str:
        return _html_table(self)


def _pandas():
    try:
        import pandas
    except ImportError as e:
        raise ConfigError("to_pandas needs pandas: pip install pandas") from e
    return pandas


def _html_table(rows: list[dict], limit: int = 50) -> str:
    import html

    cols = list(dict.fromkeys(k for r in rows[:limit] for k in r))
    cell = lambda v: html.escape(", ".join(map(str, v)) if isinstance(v, (list, tuple)) else
                                 f"{v:.4g}" if isinstance(v, float) else str(v))
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in cols)
    body = "".join("<tr>" + "".join(f"<td>{cell(r.get(c, ''))}</td>" for c in cols) + "</tr>" for r in rows[:limit])
    more = f"<p>{len(rows) - limit:,} more rows</p>" if len(rows) > limit else ""
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>{more}"


class _FolderResult:
    """A result over an output folder: ``folder``, the JSON ``summary`` saved there (read-only view through
    ``result[key]``), ``save``, ``load``, ``report`` and the notebook view."""
    kind = ""
    summary_file = ""
    files: tuple = ()

    def __init__(self, folder, summary=None):
        self.folder = Path(folder)
        self.summary = summary if summary is not None else _read_summary(self.folder / self.summary_file)

    def __getitem__(self, key: str):
        return self.summary[key]

    def get(self, key: str, default=None):
        return self.summary.get(key, default)

    def to_dict(self) -> dict:
        """The summary as a plain dict (a copy)."""
        return json.loads(json.dumps(dict(self.summary)))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self.folder)!r})"

    @classmethod
    def load(cls, folder):
        """The result a run wrote in ``folder`` (by the API or the command line)."""
        folder = Path(folder)
        if not (folder / cls.summary_file).is_file():
            raise ArtifactError(f"{folder}: no {cls.summary_file}; not a biasaudit {cls.kind} folder")
        return cls(folder)

    def save(self, folder, overwrite: bool = False):
        """Copy this result's files into ``folder`` (new, empty, or one holding this tool's outputs of the same
        kind: score, experiment or debias; another config there is replaced only with ``overwrite``) and return
        the result there."""
        from .io import MANIFEST, claim_folder, read_manifest

        folder = Path(folder)
        if folder.exists() and folder.resolve() == self.folder.resolve():
            return self
        manifest = read_manifest(self.folder) or {}
        out = claim_folder(folder, self.kind, manifest.get("config", self.summary.get("config")), overwrite,
                           known=self.files)
        with out.stage() as tmp:
            for p in sorted(self.folder.rglob("*")):
                rel = p.relative_to(self.folder)
                if p.is_file() and not p.is_symlink() and str(rel) != MANIFEST and ".tmp-biasaudit" not in str(rel):
                    (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(p, tmp / rel)
        return type(self).load(folder)

    @property
    def report_path(self) -> Path:
        """Where ``report()`` writes the page: ``folder/report.html``."""
        return self.folder / "report.html"

    def report(self) -> Path:
        """Write ``folder/report.html`` (the self-contained page) and return its path."""
        from .report import write_report

        return write_report(self.folder)

    def _repr_html_(self) -> str:
        from .report.notebook import fragment

        return fragment(self.folder)


def _read_summary(path: Path) -> dict:
    """A result's summary: a regular file of bounded size and depth (``biasaudit.io.read_json``)."""
    from .io import MAX_RESULT_BYTES, read_json

    return read_json(path, "result summary", MAX_RESULT_BYTES, follow=False)   # a link in the folder: refused


class ScoreResult(_FolderResult):
    """What ``score`` wrote: summary.json (evidence per test, top documents, removal predictions, solver, config)
    and scores.jsonl (one row per document and test with a non-zero score)."""
    kind, summary_file = "score", "summary.json"
    files = ("scores.jsonl", "summary.json", "config.json", "report.html")

    @property
    def tests(self) -> list[str]:
        """The names of the tests scored, in order."""
        return [t["name"] for t in self.summary["tests"]]

    @property
    def dropped_words(self) -> dict:
        """{test: {set: [words]}}: the words each test lost (missing from the model, or too rare)."""
        return {t["name"]: dict(t["weat"]["dropped_words"]) for t in self.summary["tests"]
                if (t.get("weat") or {}).get("dropped_words")}

    def test(self, name: str) -> dict:
        """One test's part of the summary (evidence, WEAT statistics, top documents, predictions)."""
        for t in self.summary["tests"]:
            if t["name"] == name:
                return t
        raise ConfigError(f"no test {name!r} in {self.folder} (tests: {', '.join(self.tests)})")

    @property
    def scores(self) -> Rows:
        """Every row of scores.jsonl (read once): doc_id, test, delta_bias_if_removed, delta_bias_if_upweighted,
        test_words and, where computed, stability and sign_agreement."""
        if getattr(self, "_scores", None) is None:
            import io

            from .io import MAX_DATA_BYTES, open_regular

            path = self.folder / "scores.jsonl"
            try:
                with open_regular(path, "scores file", ArtifactError, MAX_DATA_BYTES, follow=False) as raw:
                    self._scores = Rows(json.loads(line) for line in io.TextIOWrapper(raw, encoding="utf-8")
                                        if line.strip())
            except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as e:
                raise ArtifactError(f"{path}: cannot read ({getattr(e, 'strerror', None) or e})") from e
        return self._scores

    def to_pandas(self):
        """scores.jsonl as a DataFrame (one row per document and test)."""
        pd = _pandas()
        return pd.DataFrame(list(self.scores), columns=list(dict.fromkeys(
            ["doc_id", "test", "delta_bias_if_removed", "delta_bias_if_upweighted", "test_words"]
            + [k for r in self.scores[:1] for k in r])))

    def top(self, n: int = 10, test: str | None = None, direction: str = "up") -> Rows:
        """The ``n`` documents that drive the bias up most (``direction="up"``: the most negative
        delta_bias_if_removed first) or down (``"down"``) per test (or for one ``test``), with their text
        snippet where the summary holds it."""
        if direction not in ("up", "down"):
            raise ConfigError(f"direction must be up or down, got {direction!r}")
        names = [test] if test is not None else self.tests
        for name in names:
            self.test(name)
        snippets = {(t["name"], d["doc_id"]): d.get("snippet") for t in self.summary["tests"]
                    for d in t.get("table", []) + t["top"]["increase_bias"] + t["top"]["decrease_bias"]}
        out = Rows()
        for name in names:
            rows = [r for r in self.scores if r["test"] == name
                    and (r["delta_bias_if_removed"] < 0 if direction == "up" else r["delta_bias_if_removed"] > 0)]
            rows.sort(key=lambda r: r["delta_bias_if_removed"], reverse=direction == "down")
            for rank, r in enumerate(rows[:n], 1):
                out.append({"test": name, "rank": rank, **{k: v for k, v in r.items() if k != "test"},
                            "snippet": snippets.get((name, r["doc_id"]))})
        return out


class ExperimentResult(_FolderResult):
    """What ``experiment`` wrote: experiment.json (per condition: means, sds, paired differences from random edits,
    verdicts; predicted-vs-actual correlations, LDS, leaderboard), results.csv (one row per estimator, test,
    condition, k and seed) and, in score/, the first estimator's ranking."""
    kind, summary_file = "experiment", "experiment.json"
    files = ("experiment-config.json", "scores.json", "results.csv", "summary.csv", "experiment.json",
             "report.html", "runs", "score")

    @property
    def results(self) -> Rows:
        """results.csv as rows (strings, as written)."""
        import csv

        import io

        from .io import MAX_DATA_BYTES, open_regular

        with open_regular(self.folder / "results.csv", "results file", ArtifactError, MAX_DATA_BYTES,
                          follow=False) as raw:
            return Rows(csv.DictReader(io.TextIOWrapper(raw, encoding="utf-8", newline="")))

    @property
    def conditions(self) -> Rows:
        """One row per (estimator, test, condition, k): the summary's statistics."""
        return Rows(self.summary["conditions"])

    @property
    def ranking(self) -> ScoreResult:
        """The first estimator's ranking (the score outputs in score/)."""
        return ScoreResult.load(self.folder / "score")

    def to_pandas(self):
        """results.csv as a DataFrame."""
        from .io import MAX_DATA_BYTES, open_regular

        with open_regular(self.folder / "results.csv", "results file", ArtifactError, MAX_DATA_BYTES,
                          follow=False) as f:
            return _pandas().read_csv(f)

    def top(self, n: int = 10, test: str | None = None, direction: str = "up") -> Rows:
        """The ranking's top ``n`` documents (the ones the experiment removed first)."""
        return self.ranking.top(n, test, direction)


class DebiasResult(_FolderResult):
    """What ``debias_corpus`` wrote: the edited corpus (the input's format) and manifest.json (edited ids, each
    document's predicted change, the predicted effect, the swap list's hash)."""
    kind, summary_file = "debias", "manifest.json"
    files = ("corpus.jsonl", "corpus.csv", "corpus.tsv", "manifest.json", "report.html")

    @property
    def corpus_file(self) -> Path:
        """The edited corpus (load it with ``load_corpus``)."""
        return self.folder / self.summary["corpus_out"]["file"]

    @property
    def edited(self) -> Rows:
        """One row per (edited document, test): id, test, rank, delta_bias_if_removed, predicted_change,
        rewritten, snippet, rewrite."""
        rows = Rows()
        for e in self.summary["edited"]:
            for test, r in e["tests"].items():
                rows.append({"id": e["id"], "test": test, **r, "rewritten": e["rewritten"],
                             "snippet": e["snippet"], "rewrite": e["rewrite"]})
        return rows

    def to_pandas(self):
        """The edited documents as a DataFrame."""
        return self.edited.to_pandas()

    def top(self, n: int = 10, test: str | None = None) -> Rows:
        """The first ``n`` edited documents per test (or for one ``test``), by rank."""
        rows = [r for r in self.edited if test is None or r["test"] == test]
        return Rows(r for r in sorted(rows, key=lambda r: (r["test"], r["rank"])) if r["rank"] <= n)


class WeatResult:
    """What ``measure`` returns: one row per (test, model) with the effect size, permutation p-value, bootstrap CI,
    set sizes, dropped words and the spread over the models' seeds (the rows of ``biasaudit weat --json``), and
    the tests skipped for lack of words ({name: reason})."""

    kind, summary_file = "weat", "weat.json"

    def __init__(self, rows: list[dict], skipped: dict):
        self.rows = Rows(rows)
        self.skipped = dict(skipped)

    def save(self, folder, overwrite: bool = False) -> "WeatResult":
        """Write ``folder/weat.json`` (the rows and the skipped tests; new folder, or one holding this tool's
        WEAT result for the same tests, another replaced only with ``overwrite``) and return the result there."""
        from .io import claim_folder, write_json

        out = claim_folder(_path_arg("folder", folder), self.kind, self._config(), overwrite,
                           known=(self.summary_file,))
        with out.stage() as tmp:
            write_json(tmp / self.summary_file, self.to_dict())
        return WeatResult.load(folder)

    @classmethod
    def load(cls, folder) -> "WeatResult":
        """The WEAT result ``save`` wrote in ``folder``."""
        folder = _path_arg("folder", folder)
        if not (folder / cls.summary_file).is_file():
            raise ArtifactError(f"{folder}: no {cls.summary_file}; not a biasaudit WEAT result folder")
        data = _read_summary(folder / cls.summary_file)
        if not isinstance(data, dict) or not isinstance(data.get("rows"), list) or \
                not isinstance(data.get("skipped", {}), dict):
            raise ArtifactError(f"{folder / cls.summary_file}: not a WEAT result (rows and skipped)")
        return cls(data["rows"], data.get("skipped", {}))

    def _config(self) -> dict:
        """What identifies the result in its folder: its tests and models' seeds."""
        return {"tests": sorted({str(r.get("test")) for r in self.rows}),
                "seeds": sorted({str(r.get("seed")) for r in self.rows})}

    def __eq__(self, other) -> bool:
        return isinstance(other, WeatResult) and self.to_dict() == other.to_dict()

    @property
    def dropped_words(self) -> dict:
        """{test: {set: [words]}}: the words each test lost (missing from the model, or too rare)."""
        return {r["test"]: dict(r["dropped_words"]) for r in self.rows if r.get("dropped_words")}

    def __iter__(self):
        return iter(self.rows)

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i):
        return self.rows[i]

    def __repr__(self) -> str:
        return f"WeatResult({len(self.rows)} rows, {len(self.skipped)} skipped)"

    def to_dict(self) -> dict:
        """{"rows": [...], "skipped": {...}}."""
        return {"rows": list(self.rows), "skipped": self.skipped}

    def to_pandas(self):
        """The rows as a DataFrame."""
        return self.rows.to_pandas()

    def top(self, n: int = 10) -> Rows:
        """The ``n`` rows with the largest absolute effect size."""
        return Rows(sorted(self.rows, key=lambda r: -abs(r["effect_size"]))[:n])

    def _repr_html_(self) -> str:
        cols = ("test", "seed", "effect_size", "p_value", "ci_low", "ci_high", "sizes")
        return _html_table([{c: r.get(c) for c in cols} for r in self.rows]) + "".join(
            f"<p>{_esc(name)}: skipped, {_esc(reason)}</p>" for name, reason in self.skipped.items())


def _path_arg(name: str, value) -> Path:
    """An argument that names a file or folder, as a Path; anything else a ConfigError naming the argument."""
    if isinstance(value, (str, os.PathLike)) and str(value):
        return Path(value)
    raise ConfigError(f"{name} must be a path (str or pathlib.Path), got {type(value).__name__}")


def _esc(text) -> str:
    import html

    return html.escape(str(text))


_RESULTS = {"summary.json": ScoreResult, "experiment.json": ExperimentResult, "manifest.json": DebiasResult,
            "weat.json": WeatResult}


def load_result(folder):
    """The result in an output folder of ``score`` (summary.json), ``experiment`` (experiment.json),
    ``debias`` (manifest.json), written by the API or the command line, or a saved ``measure`` (weat.json)."""
    folder = _path_arg("folder", folder)
    for name, cls in _RESULTS.items():
        if (folder / name).is_file():
            return cls.load(folder)
    raise ArtifactError(f"{folder}: no summary.json, experiment.json, manifest.json or weat.json: not a biasaudit "
                        "result")


# ------------------------------------------------------------------ the use cases
@_checked
def measure(model, tests=None, *, seed_models: Sequence = (), strict_oov: bool = False,
            n_permutations: int = 100_000, n_bootstrap: int = 1000, min_word_count: int = 1,
            templates=None, sd: str = "sample") -> WeatResult:
    """WEAT effect sizes (template association for language models), exact or Monte Carlo permutation p-values
    and bootstrap CIs over words, for one model or several seeds' models (``model`` a list, or ``seed_models``:
    their spread is in each row). Missing words are dropped (a ``DroppedWordsWarning``) and listed in
    ``dropped_words`` (``strict_oov``: an error).

    ``sd``: the spread d is divided by: ``"sample"`` (ddof=1, Caliskan et al.'s and this tool's everywhere) or
    ``"population"`` (ddof=0, WEFE's ``WEAT(return_effect_size=True)``), which is larger by sqrt(n/(n-1)) for
    n = |X| + |Y| target words (0.686 here is 0.733 in WEFE with 4 + 4 words). p-values do not change."""
    from .audit import weat_across_models
    from .measures.options import check_count
    from .models import family_of
    from .wordsets import resolve_tests

    models = _models(model, seed_models)
    n_permutations, n_bootstrap = check_count("n_permutations", n_permutations), check_count("n_bootstrap",
                                                                                               n_bootstrap)
    min_word_count = check_count("min_word_count", min_word_count)
    fam = family_of(models[0])
    tpl = _templates(fam, templates)
    extra = {"templates": tpl} if fam.takes_templates else {}
    rows, skipped = weat_across_models(models, resolve_tests(_test_specs(tests)), strict=strict_oov,
                                       n_permutations=n_permutations, n_bootstrap=n_bootstrap,
                                       min_word_count=min_word_count, **extra)
    if sd not in ("sample", "population"):
        raise ConfigError(f"sd must be 'sample' (ddof=1) or 'population' (ddof=0, WEFE's), got {sd!r}")
    if sd == "population":
        rows = [_population_sd(r) for r in rows]
    result = WeatResult(rows, skipped)
    _warn_dropped(result.dropped_words)
    return result


def _population_sd(row: dict) -> dict:
    """A WEAT row with d over the population sd (ddof=0, WEFE's): d, its CI and every bootstrap resample (the same
    n words) scale by sqrt(n/(n-1)), n = |X| + |Y|; p is a rank and does not change."""
    if "metric" in row:        # WEAT's rows on word vectors carry no metric field
        raise ConfigError("sd='population' is WEFE's convention for WEAT on word vectors; language models' "
                          "template association keeps the sample sd")
    n = row["sizes"]["x"] + row["sizes"]["y"]
    f = (n / (n - 1)) ** 0.5
    out = dict(row, effect_size=row["effect_size"] * f, ci_low=row["ci_low"] * f, ci_high=row["ci_high"] * f)
    out["effect_size_convention"] = row["effect_size_convention"].replace(
        "sample std (ddof=1)", "population std (ddof=0, WEFE's)")
    if row.get("seed_spread"):
        s = row["seed_spread"]
        out["seed_spread"] = dict(s, **{k: s[k] * f for k in ("mean", "sd", "min", "max") if k in s})
    return out


def _warn_dropped(dropped: dict) -> None:
    """One warning per test that lost words (``DroppedWordsWarning``; the result lists them too), pointing at the
    caller's line (the first frame outside this package, whatever wraps the verb)."""
    import warnings

    from .errors import DroppedWordsWarning

    package = os.path.dirname(os.path.abspath(__file__))
    frame, stacklevel = sys._getframe(1), 2
    while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(package + os.sep):
        frame, stacklevel = frame.f_back, stacklevel + 1
    for test, sets in dropped.items():
        warnings.warn(f"{test}: dropped words the model lacks (absent, or under min_count or min_word_count): "
                      + "; ".join(f"{k}: {', '.join(v)}" for k, v in sets.items()),
                      DroppedWordsWarning, stacklevel=stacklevel)


@_checked
def _score_settings(*, estimator=None, pairs=None, templates=None, ensemble: int = 1, resamples: int = 100,
                    min_word_count: int = 1, strict_oov: bool = False, top: int = 10, out=None,
                    overwrite: bool = False, device: str = "cpu", measure: str = "weat") -> tuple:
    """``score``'s run settings given as keywords (each of the wrong kind one ConfigError naming it), in order."""
    return (estimator, pairs, templates, ensemble, resamples, min_word_count, strict_oov, top, out, overwrite,
            device, measure)


def _score_options(options, query, settings: dict) -> tuple:
    """``score``'s run settings: from ``options`` (an ``audit.ScoreOptions``; its query when ``query`` is None)
    or from the keywords (``_score_settings``), not both."""
    from .audit import ScoreOptions

    if options is None:
        return (query, *_score_settings(**settings))
    if not isinstance(options, ScoreOptions):
        raise ConfigError(f"options must be a ScoreOptions, got {type(options).__name__}")
    if settings:
        raise ConfigError("options: give the settings in ScoreOptions or as keywords, not both ("
                          + ", ".join(settings) + ")")
    o = options
    return (query if query is not None or o.query is None else o.query, o.estimator, o.pairs, o.templates,
            o.ensemble, o.n_resamples, o.min_word_count, o.strict_oov, o.top, o.out_dir, o.overwrite, o.device,
            o.measure)


@_reports_progress
def score(model, corpus, tests=None, *, options=None, query: str | None = None, toward: Iterable[str] = (),
          away: Iterable[str] = (), seeds: int | None = None, seed_models: Sequence = (),
          scheduler: str | None = None, cache=None, progress: Progress | None = None, log: Log | None = None,
          on_model=None, report: bool = True, **settings) -> ScoreResult:
    """Rank every document of ``corpus`` by its influence on each bias test (``biasaudit score``).

    delta_bias_if_removed(d): the predicted change of the effect size if d is removed and the model retrained;
    negative means d drives the bias up. ``estimator``: the family's default (block; ekfac for LMs), or a name
    with settings ("cg:damping=0.05", "magic"). ``query``/``toward``/``away``: score a word query instead of tests;
    ``pairs`` (LMs): a JSONL file of paired sentences, or a bundled set: "crows-pairs" (one measure per bias type,
    named "crows-pairs:gender", ...) or "crows-pairs:TYPE"; a path that exists is always a file. ``seeds`` (or
    ``seed_models``): other seeds' models for the effect size's spread and the ranking's stability; ``ensemble``:
    rank by the mean score of that many seeds'
    models (missing seeds are trained with the model's settings). ``measure``: the bias measure the tests are
    read with and documents ranked by: "weat" or, for word vectors, a differentiable one of
    ``biasaudit.measures.embedding`` ("ripa", "direct-bias", "rnd", "mac"). Writes ``out`` (default
    reports/<corpus>-<family>-<hash>/) and, with ``report``, report.html there.

    The run settings (``estimator``, ``pairs``, ``templates``, ``ensemble``, ``resamples``, ``min_word_count``,
    ``strict_oov``, ``top``, ``out``, ``overwrite``, ``device``, ``measure``) are keywords, or one
    ``options=ScoreOptions(...)`` (``biasaudit.audit.ScoreOptions``)."""
    from .audit import SCORE_FILES, ScoreOptions, check_run_tests, check_target_measure, run_score
    from .distributed import dask_client
    from .io import check_writable, claim_folder
    from .measures.lm import resolve_pairs
    from .measures.options import check_count
    from .models import family_of

    (query, estimator, pairs, templates, ensemble, resamples, min_word_count, strict_oov, top, out, overwrite, device,
     measure) = _score_options(options, query, settings)
    if isinstance(query, tuple):                 # ScoreOptions' (word, toward, away)
        query, toward, away = query
    model = _one_model(model, "score")
    fam = family_of(model)
    (est,) = estimators([estimator] if estimator is not None else None, fam)
    ensemble, resamples = check_count("ensemble", ensemble), check_count("resamples", resamples)
    seeds = None if seeds is None else check_count("seeds", seeds)
    check_target_measure(fam, measure)
    corpus = load_corpus(corpus)
    specs = _test_specs(tests)
    if query is not None and specs:
        raise ConfigError("use either tests or query, not both").with_cli("use either --test or --query")
    if (toward or away) and query is None:
        raise ConfigError("toward/away need query").with_cli("--toward/--away need --query")
    if pairs is not None:
        if not fam.takes_templates:
            raise ConfigError("pairs= measures language models (model='lm')").with_cli(
                "--templates and --pairs measure language models; add --model lm")
        pairs = resolve_pairs(pairs)
    if query is None:          # the tests' measures and every name checked before any training
        check_run_tests(fam, specs, pairs, measure)
    tpl = _templates(fam, templates)
    words = lambda ws: [w.strip().lower() for w in ws if w.strip()]
    run = ScoreOptions(est, out_dir=out, overwrite=overwrite, strict_oov=strict_oov,
                       query=(query, words(toward), words(away)) if query is not None else None, top=top,
                       device=device, templates=tpl, pairs=pairs, min_word_count=min_word_count,
                       n_resamples=resamples, ensemble=ensemble, measure=measure)
    if out is not None:       # checked before any training; held (the folder's run lock) until score returns
        held = claim_folder(out, "score", None, overwrite=True, known=SCORE_FILES, check_config=False)  # noqa: F841
    else:
        check_writable("reports")
    n = seed_count(fam, seeds, ensemble, trained=getattr(model, "config", None) is not None)
    seed_models = list(seed_models)
    seed_models += _more_seeds(model, corpus, len(seed_models), n - 1 - len(seed_models), device=device, cache=cache,
                               progress=progress, log=log, on_model=on_model, why="--seeds or --ensemble")
    with dask_client(scheduler) as client:
        res = run_score(model, corpus, specs, run, seed_models=tuple(seed_models), progress=progress,
                        client=client)
    result = ScoreResult(res.folder, res.summary)
    _warn_dropped(result.dropped_words)
    if report:
        with _phase(progress, "writing the report"):
            result.report()
    return result


@dataclass(frozen=True)
class _ExperimentKeywords:
    """``experiment``'s settings given as keywords, before they are read into an ExperimentSpec; built through
    ``_checked`` (each of the wrong kind one ConfigError naming it)."""
    heldout: Any = None
    estimator: Any = None
    k: str = "0.1%,0.5%,1%"
    seeds: int = 3
    conditions: Any = None
    upweight: int = 5
    mode: str = "scratch"
    warm_epochs: int = 1
    remove_ids: Iterable[str] = ()
    lds: int = 0
    lds_fraction: float = 0.5
    ensemble: int = 1
    fresh_seeds: bool = False
    select: str = "top-k"
    quality: bool = True
    strict_oov: bool = False
    min_word_count: int = 1
    rank_by: str = "test"
    swaps: Any = None
    templates: Any = None
    measure: str = "weat"


def _experiment_settings(**settings) -> dict:
    """``experiment``'s keyword settings, checked, by name (``_ExperimentKeywords``' defaults for the rest)."""
    s = _checked(_ExperimentKeywords)(**settings)
    return {f.name: getattr(s, f.name) for f in fields(s)}


def _experiment_spec(model, corpus, tests, s: dict):
    """The ExperimentSpec of ``experiment``'s arguments: the model (or config) retrained, the corpus, the tests
    read with ``s["measure"]`` (and their held-out companions), the estimators, conditions, templates and swaps."""
    from .audit import check_target_measure, read_tests_with
    from .experiments import DEFAULT_CONDITIONS, ExperimentSpec
    from .models import family_of
    from .swaps import SwapList, load_swaps
    from .wordsets import resolve_heldout, resolve_tests

    given = None
    if _is_model(model):
        config = getattr(model, "config", None)
        if config is None:
            raise ConfigError("experiment retrains: a model without a training config (a checkpoint) is "
                              "retrained by fine-tuning it (model_config('lm', finetune=...) or --finetune)")
        if (getattr(model, "meta", None) or {}).get("origin"):
            given = model
    elif hasattr(model, "family") and hasattr(model, "seed"):
        config = model
    else:
        raise ConfigError(f"model: {type(model).__name__} is neither a model nor a model config (model_config "
                          "makes one)")
    fam = family_of(config)
    k, measure = _sizes(s["k"]), s["measure"]
    conditions, swaps, templates = s["conditions"], s["swaps"], s["templates"]
    check_target_measure(fam, measure)
    corpus = load_corpus(corpus)
    resolved = read_tests_with(fam, resolve_tests(_test_specs(tests)), measure)
    if conditions is None:
        conditions = [c for c in DEFAULT_CONDITIONS if fam.word_vectors or c != "hard-debias"]
    elif isinstance(conditions, str):
        conditions = conditions.split(",")
    ests = estimators(s["estimator"], fam)
    if templates is not None and not fam.takes_templates:
        raise ConfigError("templates= measures language models (model='lm')").with_cli(
            "--templates measures language models; add --model lm")
    tpl = None if templates is None else _template_list(templates)
    if swaps is not None and not isinstance(swaps, SwapList):
        swaps = load_swaps(swaps)
    heldout = s["heldout"]
    held = heldout if isinstance(heldout, dict) else resolve_heldout(resolved, heldout)
    return ExperimentSpec(corpus=corpus, model=config, tests=resolved, ranking_model=given,
                          heldout=dict(zip(held, read_tests_with(fam, list(held.values()), measure))),
                          estimators=ests, ks=k, seeds=s["seeds"], templates=tpl,
                          conditions=tuple(c.strip() for c in conditions if c.strip()), upweight=s["upweight"],
                          mode=s["mode"], warm_epochs=s["warm_epochs"],
                          remove_ids=tuple(dict.fromkeys(s["remove_ids"])), lds=s["lds"],
                          lds_fraction=s["lds_fraction"], quality=s["quality"], strict_oov=s["strict_oov"],
                          min_word_count=s["min_word_count"], rank_by=s["rank_by"], ensemble=s["ensemble"],
                          fresh_seeds=s["fresh_seeds"], swaps=swaps, select=s["select"])


@_reports_progress
def experiment(model, corpus, tests=None, *, options=None, out=None, overwrite: bool = False,
               scheduler: str | None = None, cache=None, progress: Progress | None = None, log: Log | None = None,
               report: bool = True, on_plan=None, dry_run: bool = False, **settings) -> ExperimentResult:
    """Retrain without (or with more of) the top-ranked documents, against random edits of the same size, over
    paired seeds, and measure whether the bias moves as predicted (``biasaudit experiment``).

    Before anything is trained, ``on_plan`` gets the plan (``experiments.cost.ExperimentCost``: trainings, the time
    of one measured on the model's recorded or cached baseline training, workers, folder); ``dry_run`` returns that
    plan instead, having trained nothing and written no folder.

    ``model``: a config (``model_config``), a model trained here (its config is retrained) or a model you trained
    elsewhere (``load_model(path, corpus)``, ``from_gensim``: the rankings come from it, baselines and edits are
    retrained with its settings). ``estimator``: one name or several ("block,gradient-dot"), or a list.
    ``conditions``: names, comma-separated or a list (default: baseline, remove-top, remove-bottom, upweight-top,
    remove-random, and hard-debias for word vectors). ``lds``: random subsets for the linear datamodeling score;
    ``ensemble``/``fresh_seeds``: rank by several seeds' models / retrain on seeds the ranking did not use.
    ``select="greedy"``: add remove-selected, k documents chosen as a set on the group predictions, beside
    remove-top at the same k (``biasaudit.influence.select``). ``measure``: as ``score``'s; rankings, predictions
    and every retrained model's measurement (held-out companions too) read it. Resumes from the finished retrains
    in ``out``.

    The experiment's settings (``heldout`` to ``templates``, and ``measure``) are keywords, or one
    ``options=ExperimentSpec(...)`` (``biasaudit.experiments.ExperimentSpec``, which holds the corpus and tests:
    ``corpus`` and ``tests`` are then None)."""
    from .distributed import dask_client
    from .experiments import ExperimentSpec, default_folder, run_experiment

    if options is None:
        spec = _experiment_spec(model, corpus, tests, _experiment_settings(**settings))
    elif not isinstance(options, ExperimentSpec):
        raise ConfigError(f"options must be an ExperimentSpec, got {type(options).__name__}")
    elif settings or corpus is not None or tests is not None:
        raise ConfigError("options: an ExperimentSpec holds the corpus, tests and settings; give them there or as "
                          "arguments, not both (" + ", ".join([*settings] + ["corpus"] * (corpus is not None)
                                                             + ["tests"] * (tests is not None)) + ")")
    else:
        spec = options
    out = Path(out) if out is not None else default_folder(spec)
    if on_plan is not None or dry_run:
        from .experiments.cost import experiment_cost
        plan = experiment_cost(spec, out, scheduler, Path(cache) if cache else None,
                               trained=model if _is_model(model) else None)
        if on_plan is not None:
            on_plan(plan)
        if dry_run:
            return plan
    with dask_client(scheduler) as client:
        res = run_experiment(spec, out, overwrite=overwrite, client=client, progress=progress, log=log,
                             cache=Path(cache) if cache else None)
    result = ExperimentResult(res.folder, res.summary)
    if report:
        result.report()
    return result


def _template_list(templates) -> tuple:
    """Templates from a file or a sequence of strings (each with {target} and {attribute}), checked here, before
    any training."""
    from .measures.lm import check_template, load_templates

    if isinstance(templates, (str, os.PathLike)):
        return load_templates(templates)
    if not isinstance(templates, (list, tuple)) or not templates:
        raise ConfigError(f"templates must be a file or a list of strings with {{target}} and {{attribute}}, got "
                          f"{templates!r}")
    for t in templates:
        check_template(t)
    return tuple(templates)


@dataclass(frozen=True)
class _DebiasKeywords:
    """``debias_corpus``'s edit settings given as keywords, in the order ``_debias_options`` returns them; built
    through ``_checked`` (each of the wrong kind one ConfigError naming it)."""
    k: str = "1%"
    method: str = "swap"
    estimator: Any = None
    swaps: Any = None
    rank_by: str = "test"
    heldout: Any = None
    strict_oov: bool = False
    min_word_count: int = 1
    templates: Any = None
    select: str = "greedy"
    target: float | None = None
    force: bool = False
    verify: int = 0
    out: Any = None
    overwrite: bool = False
    command: str = ""
    device: str = "cpu"
    cache: Any = None


def _debias_settings(**settings) -> tuple:
    """``debias_corpus``'s keyword settings, checked, in ``_DebiasKeywords``' order."""
    s = _checked(_DebiasKeywords)(**settings)
    return tuple(getattr(s, f.name) for f in fields(s))


def _debias_options(options, settings: dict) -> tuple:
    """``debias_corpus``'s edit settings: from ``options`` (a ``debias.DebiasOptions``) or from the keywords
    (``_debias_settings``), not both."""
    from .debias import DebiasOptions

    if options is None:
        return _debias_settings(**settings)
    if not isinstance(options, DebiasOptions):
        raise ConfigError(f"options must be a DebiasOptions, got {type(options).__name__}")
    if settings:
        raise ConfigError("options: give the settings in DebiasOptions or as keywords, not both ("
                          + ", ".join(settings) + ")")
    o = options
    return (o.k, o.method, o.estimator, o.swaps, o.rank_by, o.heldout, o.strict_oov, o.min_word_count, o.templates,
            o.select, o.target, o.force, o.verify, o.out_dir, o.overwrite, o.command, o.device, o.cache)


@_reports_progress
def debias_corpus(model, corpus, tests=None, *, options=None, ensemble: int = 1, seed_models: Sequence = (),
                  seeds: int | None = None, progress: Progress | None = None, log: Log | None = None,
                  on_model=None, report: bool = True, **settings) -> DebiasResult:
    """Write an edited corpus that should carry less of each test's bias (``biasaudit debias``): the top ``k``
    documents that drive it up, removed (``method="remove"``), replaced by their counterfactual rewrite with the
    gendered words swapped (``"swap"``) or with the rewrite added beside them (``"augment"``). ``ensemble``: rank
    by the mean score of that many seeds' models (missing seeds trained with the model's settings). Writes ``out``
    (default reports/<corpus>-debias-<hash>/): the corpus in the input's format and manifest.json.

    The edit aims at |d| -> 0: documents that move each test's measure toward 0, chosen as a set (``select=
    "greedy"``, or ``"top-k"`` by individual score), as few as bring the re-measured prediction inside
    |d| <= ``target``, else the seed-noise band (the sd of d over ``seeds`` models, when 2 or more: missing seeds
    trained; ensemble seeds count), else the bootstrap 95% CI half-width of d; ``k`` is the upper bound. A test
    whose bias is not significant is refused with its evidence unless ``force``. ``verify``: retrain that many
    seeds on the edited corpus; actual against predicted, held-out tests and WordSim go into the manifest.

    The edit settings (``k``, ``method``, ``estimator``, ``swaps``, ``rank_by``, ``heldout``, ``strict_oov``,
    ``min_word_count``, ``templates``, ``select``, ``target``, ``force``, ``verify``, ``out``, ``overwrite``,
    ``command``, ``device``, ``cache``) are keywords, or one ``options=DebiasOptions(...)``
    (``biasaudit.debias.DebiasOptions``)."""
    from .debias import METHODS, DebiasOptions, claim_out, run_debias
    from .models import family_of
    from .audit import read_tests_with
    from .measures.options import check_count
    from .swaps import SwapList, load_swaps
    from .wordsets import resolve_heldout, resolve_tests

    (k, method, estimator, swaps, rank_by, heldout, strict_oov, min_word_count, templates, select, target, force,
     verify, out, overwrite, command, device, cache) = _debias_options(options, settings)
    if method not in METHODS:
        raise ConfigError(f"method must be one of {', '.join(METHODS)}, got {method!r}").with_cli(
            f"--method must be one of {', '.join(METHODS)}, got {method!r}")
    model = _one_model(model, "debias_corpus")
    fam = family_of(model)
    (est,) = estimators([estimator] if estimator is not None else None, fam)
    k, ensemble = _sizes(k), check_count("ensemble", ensemble)
    seeds = None if seeds is None else check_count("seeds", seeds)
    tpl = _templates(fam, templates)
    resolved = resolve_tests(_test_specs(tests))
    read_tests_with(fam, resolved)  # a measure a test carries, checked before any training
    if swaps is not None and not isinstance(swaps, SwapList):
        swaps = load_swaps(swaps)
    corpus = load_corpus(corpus)
    edit = DebiasOptions(est, k, method, swaps, out, overwrite, rank_by,
                         heldout if isinstance(heldout, dict) else resolve_heldout(resolved, heldout), strict_oov,
                         min_word_count, tpl, command=command, select=select, target=target, force=force,
                         verify=verify, cache=cache, device=device)
    claim_out(out, corpus)          # before any training: the folder is usable and outside the corpus
    if ensemble > 1 and (getattr(model, "meta", None) or {}).get("origin"):
        raise ConfigError("ensemble trains its seeds' models; it cannot be used with a model trained elsewhere"
                          ).with_cli("--ensemble trains its seeds' models; it cannot be used with a model trained "
                                     "elsewhere")
    seed_models = list(seed_models)
    seed_models += _more_seeds(model, corpus, len(seed_models), ensemble - 1 - len(seed_models), device=device,
                               cache=cache, progress=progress, log=log, on_model=on_model, why="--ensemble")
    noise_models = []             # --seeds beyond the ensemble: their models only measure the seed-noise band
    if seeds is not None and seeds > 1 + len(seed_models):
        if (getattr(model, "meta", None) or {}).get("origin"):
            raise ConfigError("seeds trains other seeds' models; it cannot be used with a model trained elsewhere"
                              ).with_cli("--seeds trains other seeds' models; it cannot be used with a model "
                                         "trained elsewhere")
        noise_models = _more_seeds(model, corpus, len(seed_models), seeds - 1 - len(seed_models), device=device,
                                   cache=cache, progress=progress, log=log, on_model=on_model, why="--seeds")
    folder, manifest = run_debias(model, corpus, resolved, edit, seed_models=tuple(seed_models),
                                  noise_models=tuple(noise_models), progress=progress, log=log)
    result = DebiasResult(folder, manifest)
    if report:
        result.report()
    return result


def write_report(result) -> Path:
    """Write report.html (one self-contained page) for a result or an output folder; returns its path."""
    from .report import write_report as write

    if not isinstance(result, _FolderResult) and not (isinstance(result, (str, os.PathLike)) and str(result)):
        raise ConfigError(f"result must be a result (score, experiment, debias) or its folder, got "
                          f"{type(result).__name__}")
    return write(result.folder if isinstance(result, _FolderResult) else Path(result))


from dataclasses import dataclass  # noqa: E402  (measures' result; the other verbs' results live in audit/)


@dataclass(frozen=True)
class MeasuresResult:
    """What ``measures`` gives: ``rows`` (one per test, measure and seed: value, 95% CI over words, p where the
    measure has one, verdict), ``skipped`` ({test: reason}) and ``not_run`` ([{test, measure, reason}]: a measure
    a test cannot feed)."""
    rows: list
    skipped: dict
    not_run: list


def measures_request(model: str = "skipgram", tests=None, names=None) -> tuple[list, list]:
    """The measure names and tests ``measures`` computes for a model family (a family name), resolved and checked
    before any model is trained or loaded: (measure names, tests). ``names``: measure names (a list, or one
    comma-separated string); None: all."""
    from .audit import check_carried_measures
    from .measures.suite import resolve_measures
    from .models import get_family
    from .wordsets import resolve_tests

    if isinstance(names, str):
        names = [names]
    names = resolve_measures([n for m in names or [] for n in m.split(",") if n.strip()])
    tests = resolve_tests(_test_specs(tests))
    check_carried_measures(tests)
    fam = get_family(model)
    if not fam.word_vectors:
        raise ConfigError(f"the word-vector measures need word vectors; model={fam.name!r} has none (measure() "
                          "measures language models)").with_cli(
            f"the word-vector measures need word vectors; --model {fam.name} has none (`biasaudit weat` measures "
            "language models)")
    return names, tests


@_checked
def measures(model, tests=None, *, names=None, seed_models: Sequence = (), strict_oov: bool = False,
             n_permutations: int = 100_000, n_bootstrap: int = 1000, min_word_count: int = 1) -> MeasuresResult:
    """Every word-vector bias measure side by side (``biasaudit measure``): WEAT, RIPA, Direct Bias, RND, MAC, ECT
    and RNSB (``names``: a subset), each with its bootstrap 95% CI over words, a permutation p where it has one
    and a verdict, for one model or several seeds' models. ``measure`` is WEAT alone (``biasaudit weat``), for
    word vectors and language models."""
    from .audit import measures_across_models
    from .measures.options import check_count
    from .models import family_of

    models = _models(model, seed_models)
    n_permutations, n_bootstrap = (check_count("n_permutations", n_permutations),
                                   check_count("n_bootstrap", n_bootstrap))
    min_word_count = check_count("min_word_count", min_word_count)
    names, tests = measures_request(family_of(models[0]).name, tests, names)
    rows, skipped, not_run = measures_across_models(models, tests, names, strict=strict_oov,
                                                    min_word_count=min_word_count, n_permutations=n_permutations,
                                                    n_bootstrap=n_bootstrap)
    return MeasuresResult(rows, skipped, not_run)
