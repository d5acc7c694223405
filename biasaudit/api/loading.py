"""The API's inputs: corpora, bias tests, model configs, trained and loaded models, and what a ranking verb
takes with them (estimators, sizes, templates, seeds)."""
from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable, Sequence

from ..errors import ConfigError
from .arguments import (
    Log,
    Progress,
    _checked,
    _load_libraries,
    _path_arg,
    _phase,
    _reports_progress,
)


def load_corpus(source=None, *, id_field: str = "id", text_field: str = "text", tokenizer: str = "biasaudit",
                name: str = "memory"):
    """A corpus: a bundled name (``gcide``, ``wordnet``; None: gcide), a file, folder, glob or hub dataset, or
    documents held in memory (called ``name``): an iterable of ``(id, text)`` pairs, ``Document`` objects, or
    ``(id, tokens)`` pairs of documents you tokenized yourself (a list of strings each, used as they are).

    ``tokenizer``: how text becomes tokens, the one your model was trained with: ``biasaudit`` (lowercase runs of
    letters and digits), ``whitespace``, ``simple_preprocess`` (gensim's ``gensim.utils.simple_preprocess``, what
    most gensim Word2Vec tutorials train on) or, for files, ``field:NAME`` (a field holding each document's
    tokens). A corpus passes through unchanged."""
    from ..corpus import Corpus, Document, MemoryCorpus
    from ..corpus import load_corpus as open_corpus
    from ..tokens import Tokenizer

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
    from ..wordsets import BiasTest

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
    from ..wordsets import resolve_tests

    return resolve_tests(_test_specs([t for group in tests for t in
                                      (group if isinstance(group, (list, tuple)) else [group])]) or None)


# ------------------------------------------------------------------ models
def model_config(model: str = "skipgram", lm_config: str | None = None, **options):
    """A model family's config (``skipgram``, ``glove``, ``lm``) from gensim-style options (vector_size, window,
    min_count, negative, epochs, seed, workers, sample, backend, embedding) and, for ``lm``, its settings string
    (``"hidden_size=64,num_layers=2"``); an option the family does not take is refused."""
    from ..models import make_config

    return make_config(model, lm_config, **options)


@_reports_progress
def train_seeds(corpus, config, n_seeds: int = 1, *, device: str = "cpu", cache: str | Path | None = None,
                progress: Progress | None = None, log: Log | None = None,
                on_model: Callable[[Any, Any, bool], None] | None = None) -> list:
    """The models of ``config`` trained on ``corpus`` with seeds seed, seed+1, ...: each read from the model cache
    when this corpus and config were trained before, else trained and cached. ``on_model(model, config,
    cached)`` is called as each is ready."""
    _load_libraries(progress)
    from ..measures.options import check_count
    from ..models import family_of, train_or_load
    from ..models.base import resolve_device

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
        model, cached = train_or_load(corpus, cfg, cache=Path(cache) if cache else None, device=device,
                                      progress=_training_progress(progress, cfg.seed))
        if on_model:
            on_model(model, cfg, cached)
        models.append(model)
    return models


def _training_progress(progress, seed: int):
    """``progress`` with the training's stage named by its seed ("training seed 2")."""
    if not progress:
        return None
    return lambda s, d, t: progress(f"training seed {seed}" if s == "train" else s, d, t)


@_reports_progress
def train(corpus, model="skipgram", *, device: str = "cpu", cache: str | Path | None = None,
          progress: Progress | None = None, log: Log | None = None, lm_config: str | None = None, out=None,
          overwrite: bool = False, on_model: Callable[[Any, Any, bool], None] | None = None, **options):
    """A model trained on ``corpus`` (or read from the model cache): ``model`` is a family name with its options
    (``train(corpus, "skipgram", vector_size=50, epochs=5, seed=1)``) or a config from ``model_config``.

    ``out``: also save it in that folder (new, empty, or a model folder this tool wrote; another config there is
    replaced only with ``overwrite``), checked before any training; a model not in the cache is then not added to
    it (the folder is its only copy). ``on_model(model, config, cached)`` is called when it is ready."""
    if isinstance(model, str):
        config = model_config(model, lm_config, **options)
    elif options or lm_config:
        raise ConfigError("train: give the options in model_config(...) or with a family name, not both")
    elif not hasattr(model, "family"):
        raise ConfigError(f"model must be a family name ('skipgram', 'glove', 'lm') or a config from model_config, "
                          f"got {model!r}")
    else:
        config = model
    if out is not None:
        return _train_into(out, corpus, config, overwrite, device=device, cache=cache, progress=progress,
                           on_model=on_model)
    return train_seeds(corpus, config, 1, device=device, cache=cache, progress=progress, log=log,
                       on_model=on_model)[0]


def _train_into(out, corpus, config, overwrite: bool, *, device, cache, progress, on_model):
    """``train(..., out=)``: the folder claimed before any training, the model trained (or read from the cache)
    and saved there, and not cached."""
    from ..models import family_of, train_or_load
    from ..models.folder import model_output

    model_output(out, {"model": family_of(config).name, "config": config.to_dict()}, overwrite=overwrite)
    corpus = load_corpus(corpus)
    model, cached = train_or_load(corpus, config, cache=Path(cache) if cache else None, device=device, store=False,
                                  progress=_training_progress(progress, config.seed))
    model.save(out)
    if on_model:
        on_model(model, config, cached)
    return model


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
    from ..models import get_family
    from ..models.base import load_model as load_folder

    path = _path_arg("path", path)
    if corpus is None:
        from ..models.folder import is_model_dir
        from ..models.keyed import load_embeddings

        if model is not None:
            return get_family(model).load(path, device)
        if path.is_dir() and not is_model_dir(path) and (path / "config.json").exists():
            return load_folder(path, device)        # a language model or HF checkpoint folder
        return load_embeddings(path)                # vectors: files of other tools, embedding model folders
    from ..models.imported import check_vocabulary, load_glove_c, load_word2vec

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

    from ..models.imported import check_vocabulary, keyed_vectors, word2vec_model

    if isinstance(obj, Word2Vec):
        model = word2vec_model(obj, "the given Word2Vec")
        return check_vocabulary(model, load_corpus(corpus), "the given Word2Vec") if corpus is not None else model
    if isinstance(obj, KeyedVectors):
        return keyed_vectors(obj)
    raise ConfigError(f"from_gensim takes a gensim Word2Vec or KeyedVectors, not {type(obj).__name__}")


def from_hf(model, tokenizer, *, device: str = "cpu"):
    """A transformers causal language model and its tokenizer, held in memory, to measure (template association)
    and score (EK-FAC); like a ``--checkpoint`` folder, its training corpus is not checked."""
    from ..models.imported import hf_model

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


def check_templates(family, templates) -> None:
    """Templates given (not None) are for a family that takes them (a language model), else a ConfigError."""
    from .checks import model_family

    if templates is not None and not model_family(family).takes_templates:
        raise ConfigError("templates= measures language models (model='lm')").with_cli(
            "--templates measures language models; add --model lm")


def read_templates(family, templates):
    """Templates for a family that takes them: a file, a sequence of strings, or None (the bundled set); None
    for a family that does not (``templates`` given to one is a ConfigError)."""
    from ..measures.lm import load_templates
    from .checks import model_family

    check_templates(family, templates)
    if not model_family(family).takes_templates:
        return None
    return _template_list(templates) if templates is not None else load_templates(None)


def run_config(model):
    """The training config of a model trained here, which the family's default estimator can depend on; None for a
    model trained elsewhere (a user's files or object, a checkpoint without a config)."""
    if (getattr(model, "meta", None) or {}).get("origin"):
        return None
    return getattr(model, "config", None)


def estimators(specs, family, config=None) -> list:
    """Estimator configs from names with settings (``"block"``, ``"cg:damping=0.05,max_iter=300"``, or configs),
    checked against the model family (its default when ``specs`` is None, for ``config`` where given) and, given,
    its ``config``."""
    from ..influence.estimators import (
        EstimatorConfig,
        check_estimators,
        parse_estimators,
    )
    from ..models import get_family
    from ..models.base import default_estimator_of

    fam = get_family(family) if isinstance(family, str) else family
    if isinstance(specs, (str, EstimatorConfig)):
        specs = [specs]
    if specs is not None and not isinstance(specs, (list, tuple)):
        specs = [specs]
    specs = list(specs or [default_estimator_of(fam, config)])
    odd = [s for s in specs if not isinstance(s, (str, EstimatorConfig))]
    if odd:
        raise ConfigError(f"estimator must be a name with settings (\"block\", \"cg:damping=0.05\") or an "
                          f"EstimatorConfig, got {odd[0]!r}")
    ests = [s for s in specs if isinstance(s, EstimatorConfig)]
    names = [s for s in specs if not isinstance(s, EstimatorConfig)]
    ests += parse_estimators(names) if names else []
    check_estimators(ests, fam, config)
    return ests


def seed_count(family, seeds: int | None = None, ensemble: int = 1, trained: bool = True) -> int:
    """How many seeds' models a score run uses: ``seeds``, else the family's default (1 for a model not trained
    here), and at least ``ensemble``."""
    from ..models import get_family

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


def _template_list(templates) -> tuple:
    """Templates from a file or a sequence of strings (each with {target} and {attribute}), checked here, before
    any training."""
    from ..measures.lm import check_template, load_templates

    if isinstance(templates, (str, os.PathLike)):
        return load_templates(templates)
    if not isinstance(templates, (list, tuple)) or not templates:
        raise ConfigError(f"templates must be a file or a list of strings with {{target}} and {{attribute}}, got "
                          f"{templates!r}")
    for t in templates:
        check_template(t)
    return tuple(templates)
