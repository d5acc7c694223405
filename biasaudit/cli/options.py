from __future__ import annotations

"""The options commands share, each declared once: the corpus and training options (``run_options``), the tests,
checkpoints, templates, the measure, the ensemble, and the count options' checks (a usage error, exit 2)."""
import functools
import inspect
from dataclasses import dataclass
from typing import Optional

import typer

from ..errors import ConfigError


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
    from_scratch: bool
    device: str

    def config(self):
        from ..api import model_config
        return model_config(self.model, self.lm_config, vector_size=self.vector_size, window=self.window,
                           min_count=self.min_count, negative=self.negative, epochs=self.epochs, seed=self.seed,
                           workers=self.workers, sample=self.sample, backend=self.backend, embedding=self.embedding,
                           from_scratch=self.from_scratch or None)

    @property
    def family(self):
        from ..api import model_family
        return model_family(self.model)

    def load_corpus(self):
        from ..api import load_corpus
        if self.tokenizer != "biasaudit" and self.family.unit == "tokens":
            raise ConfigError("--tokenizer applies to word-vector models; a language model reads text with its own "
                              "tokenizer")
        return load_corpus(self.corpus, id_field=self.id_field, text_field=self.text_field, tokenizer=self.tokenizer)


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
        from ..api import check_count
        try:
            return value if value is None else check_count(name, value)   # None: the command's default
        except ConfigError as e:
            raise typer.BadParameter(e.for_cli()) from e
    return check


def _tokenizer_spec(value: str) -> str:
    from ..api import check_tokenizer
    try:
        check_tokenizer(value)
    except ConfigError as e:
        raise typer.BadParameter(e.for_cli().replace("--tokenizer ", "")) from e
    return value


def _option_help(name: str, extra: str = "") -> str:
    """An option's help, read from the family configs that have the field (their help text and each default)."""
    from dataclasses import MISSING, fields

    from ..api import model_families

    text, defaults = "", []
    for fam in model_families():
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


from ..api import model_limits  # noqa: E402

LIMITS = model_limits()     # the option bounds are the configs' own

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
              "language model: a bundled base fine-tuned on the corpus in a smooth audited phase, or trained from "
              "scratch with --from-scratch, or loaded with --checkpoint).")),
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
                  "'learning_rate=0.001,epochs=1'. Default: the smooth audited phase on the bundled base "
                  "(eps_root=1e-6,dropout=0,batch_size=128,epochs=2,dtype=float64,max_len=16); with "
                  "--from-scratch a 2-layer, 64-wide Llama trained with AdamW (e.g. 'hidden_size=64,num_layers=2,"
                  "max_len=64,learning_rate=0.003,batch_size=32').")),
    "from_scratch": (bool, typer.Option(False, "--from-scratch", help="--model lm: train the whole network on the "
                     "corpus (AdamW, dropout, at least 2,000 steps) instead of fine-tuning the bundled base: a rough "
                     "run whose rankings are not expected to confirm on retraining (its metasmoothness is "
                     "measured and shown).")),
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


def declared(table: dict):
    """A command whose options are declared in ``table`` ({parameter: (annotation, typer.Option or Argument)}, in
    the order --help lists them) rather than as its parameters: it takes them as ``**options`` (and ``opts``
    from ``run_options``, which wraps it); typer reads the signature built here."""
    def declare(fn):
        sig = inspect.signature(fn)
        params = [inspect.Parameter(name, inspect.Parameter.POSITIONAL_OR_KEYWORD, default=opt, annotation=ann)
                  for name, (ann, opt) in table.items()]
        rest = [p for p in sig.parameters.values() if p.kind is not inspect.Parameter.VAR_KEYWORD]
        fn.__signature__ = sig.replace(parameters=params + rest)
        return fn
    return declare


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


def seeds_option(default, help: str):
    """``--seeds``: how many training seeds (seed, seed+1, ...), checked where the API checks it; each command
    says what they are for."""
    return typer.Option(default, "--seeds", callback=_count("seeds"), help=help)


def min_word_count_option(tail: str = " (listed, like missing words)."):
    """``--min-word-count``: test words rarer than this in training are dropped."""
    return typer.Option(1, "--min-word-count", min=1, help="Drop test words seen fewer times than this in "
                        "training" + tail)


MinWordCountOpt = min_word_count_option()
PermutationsOpt = typer.Option(100_000, "--permutations", callback=_count("n_permutations"), help="Monte Carlo "
                               "samples when exact enumeration exceeds 100,000 partitions (1 to 10,000,000).")


def bootstrap_option(cis: str = "CI"):
    """``--bootstrap``: resamples of the bootstrap interval(s)."""
    return typer.Option(1000, "--bootstrap", callback=_count("n_bootstrap"), help=f"Bootstrap resamples for the "
                        f"{cis} (100 to 10,000).")


def _check_scheduler(value: Optional[str]) -> Optional[str]:
    from ..api import check_scheduler
    try:
        return value if value in (None, "none") else check_scheduler(value)
    except ConfigError as e:
        raise typer.BadParameter(str(e).removeprefix("--scheduler: ")) from e


SchedulerOpt = typer.Option(None, "--scheduler", callback=_check_scheduler, help="Dask scheduler for sharded work: "
                            "'local' (a LocalCluster sized to this machine) or an address such as tcp://host:8786. "
                            "Default: in-process.")



MeasureOpt = typer.Option("weat", "--measure", help="The bias measure documents are ranked by and retrains are "
                          "measured with: weat (default), or for word vectors ripa (Ethayarajh et al. 2019), "
                          "direct-bias (Bolukbasi et al. 2016), rnd (Garg et al. 2018) or mac (Manzini et al. "
                          "2019). ECT and RNSB have no useful derivative: `biasaudit measure` reports them.")
EnsembleOpt = typer.Option(1, "--ensemble", callback=_count("ensemble"), help="Rank by the mean score of this many "
                           "seeds' models (seed, seed+1, ...; at most 100; each trained and scored with the "
                           "estimator): rankings that hold across training seeds. Each document's sign agreement "
                           "across seeds is written beside its score. 1: the first seed's model alone.")



def _check_ks(value: str) -> str:
    from ..api import check_sizes
    try:
        check_sizes(value)
    except ConfigError as e:
        raise typer.BadParameter(str(e).removeprefix("--k: ")) from e
    return value

