"""Small causal transformer language models: train one from scratch on a corpus (HF transformers, a tiny Llama
config), or load a local HF causal-LM checkpoint folder; the per-document training loss; save and load without
pickle (safetensors only).

Decided here:
- Tokenizer of the models trained here: word level, the project's tokenizer (lowercase runs of letters and
  digits, ``biasaudit.vocab``); vocabulary = words seen at least ``min_count`` times plus <pad> <unk> <bos> <eos>
  (ids 0-3). It is also saved as an HF ``tokenizer.json``, so the folder loads with AutoTokenizer and
  AutoModelForCausalLM anywhere.
- Architecture: Llama (RMSNorm, rotary positions, SwiGLU MLP). Every projection is ``nn.Linear`` (kronfluence
  tracks only nn.Linear and nn.Conv2d); the input and output embeddings are untied.
- Examples: a document's tokens are cut into pieces of at most ``max_len - 1`` tokens; each piece starts with
  <bos> and the document's last piece ends with <eos>. Every example knows its document. A document's training loss
  is the SUM of its tokens' next-token losses, so removing the document removes exactly that sum.
- Training: minimise the mean next-token loss over all training tokens with AdamW (linear warm-up, then linear
  decay to zero), batches of examples of similar length; deterministic for a seed on CPU.
- Folder: the HF files (config.json, model.safetensors, tokenizer.json, ...) plus ``biasaudit.json`` (family,
  config, corpus, meta, sha256 of the weights). A folder without ``biasaudit.json`` is a foreign checkpoint: it
  is scored as it is, but cannot be retrained and its training corpus cannot be checked.
"""
from __future__ import annotations

import hashlib
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch

from ..corpus import Corpus
from ..errors import ArtifactError, ConfigError, CorpusError
from ..io import MAX_RECORD_BYTES, MAX_RESULT_BYTES, open_regular, public_mode, read_json, sha256_file, to_json
from ..vocab import TOKENIZER
from .base import Config, Progress, resolve_device, setting, versions
from .checkpoint import check_checkpoint, check_loading_info, fault_line, is_panic, require_config_json
from .lm_steps import (Examples, collate, make_examples, step_backward, token_losses,  # noqa: F401
                       weighted_batch_loss)
from .lm_optim import (ADAM_BETAS, BATCHINGS, RootAdam, Schedule, adam_root_update, dropout_active,  # noqa: F401
                       length_batches, make_optimizer, replayable_attention, run_batches, step_seed)
from .lm_tokenizers import (BOS, EOS, PAD, SPECIALS, UNK, HFEncoder, WordEncoder, doc_word_index,  # noqa: F401
                            word_encoder)

FORMAT_VERSION = 1
META_FILE = "biasaudit.json"


@dataclass(frozen=True)
class LMConfig(Config):
    """A tiny Llama trained from scratch (defaults sized for a CPU)."""
    family: ClassVar[str] = "lm"
    hidden_size: int = setting(64, "Width of the network.")
    num_layers: int = setting(2, "Transformer layers.")
    num_heads: int = setting(4, "Attention heads (hidden_size must be a multiple).")
    intermediate_size: int = setting(256, "Width of the SwiGLU MLP.")
    max_len: int = setting(64, "Tokens per example, <bos> included.")
    min_count: int = setting(5, "Words seen fewer times become <unk>.")
    epochs: int = setting(10, "Training epochs (at least; see min_steps).")
    min_steps: int = setting(2000, "At least this many optimizer steps: a small corpus gets more epochs (stopped "
                                   "after a few hundred steps, a small LM's bias is mostly its initialisation, and "
                                   "varies across seeds as much as between corpora). 0: exactly --epochs. Not "
                                   "applied to fine-tuning.")
    learning_rate: float = setting(3e-3, "AdamW learning rate (linear warm-up, then linear decay).")
    batch_size: int = setting(32, "Examples per step.")
    weight_decay: float = setting(0.0, "AdamW weight decay (0: the trained model is a stationary point of the loss "
                                       "influence assumes).")
    warmup: float = setting(0.05, "Fraction of steps of linear warm-up.")
    seed: int = setting(1, "Training seed: initialisation and batch order.")
    dtype: str = setting("float32", "Parameter dtype: float32, or float64 (slow; for exactness checks).")
    finetune: str = setting("", "A local HF causal-LM checkpoint folder to fine-tune on the corpus (its architecture "
                                "and tokenizer; the size settings above are then unused). Empty: train from "
                                "scratch.")
    eps_root: float = setting(0.0, "Adam's epsilon inside the square root (update m / sqrt(v + eps_root), "
                                   "biasaudit's own Adam step, shared by training, replay and the reverse pass): "
                                   ">= 1e-6 keeps the run smooth in the document weights (Engstrom et al. 2025). "
                                   "0: torch's AdamW (epsilon 1e-8 outside the root).")
    dropout: int = setting(1, "1: the network's dropout is active in training (as its config says); 0: off (a "
                              "smooth audited phase: dropout makes the run chaotic in the document weights).")
    batches: str = setting("length", "How a step's examples are drawn. length: examples of similar length together "
                                     "(little padding), the batches in random order (the smooth audited phase). "
                                     "shuffled: each batch a uniform sample of the examples: d varies less between "
                                     "seeds, but a planted association was learned less (docs/results/lm_smooth.md).")
    micro_batch: int = setting(0, "Examples per forward and backward pass: a batch's gradients are accumulated over "
                                  "pieces of this size (the same step, in less memory). 0: the whole batch at once.")

    def __post_init__(self):
        self._positive("hidden_size", "num_layers", "num_heads", "intermediate_size", "min_count", "epochs",
                       "batch_size")
        if not isinstance(self.max_len, int) or self.max_len < 4:
            raise ConfigError(f"LMConfig.max_len must be an integer >= 4, got {self.max_len!r}")
        if self.hidden_size % self.num_heads:
            raise ConfigError(f"LMConfig.hidden_size ({self.hidden_size}) must be a multiple of num_heads "
                              f"({self.num_heads})")
        if not (self.learning_rate > 0 and self.weight_decay >= 0 and 0 <= self.warmup < 1):
            raise ConfigError("LMConfig: learning_rate > 0, weight_decay >= 0 and 0 <= warmup < 1 are required")
        if not isinstance(self.min_steps, int) or isinstance(self.min_steps, bool) or self.min_steps < 0:
            raise ConfigError(f"LMConfig.min_steps must be a whole number >= 0, got {self.min_steps!r}")
        if self.batches not in BATCHINGS:
            raise ConfigError(f"LMConfig.batches must be one of {', '.join(BATCHINGS)}, got {self.batches!r}")
        if self.dtype not in ("float32", "float64"):
            raise ConfigError(f"LMConfig.dtype must be float32 or float64, got {self.dtype!r}")
        if not isinstance(self.finetune, str):
            raise ConfigError(f"LMConfig.finetune must be a folder path, got {self.finetune!r}")
        if not (isinstance(self.eps_root, (int, float)) and not isinstance(self.eps_root, bool)
                and 0 <= self.eps_root < 1):
            raise ConfigError(f"LMConfig.eps_root must be a number from 0 to 1 (e.g. 1e-6), got {self.eps_root!r}")
        if not isinstance(self.micro_batch, int) or isinstance(self.micro_batch, bool) or self.micro_batch < 0:
            raise ConfigError(f"LMConfig.micro_batch must be a whole number >= 0, got {self.micro_batch!r}")
        if self.dropout not in (0, 1) or isinstance(self.dropout, bool):
            raise ConfigError(f"LMConfig.dropout must be 0 or 1, got {self.dropout!r}")
        self._seed()

    def to_dict(self) -> dict:
        d = super().to_dict()
        if not d["finetune"]:
            del d["finetune"]      # the keys of models trained from scratch are unchanged
        if d["dtype"] == "float32":
            del d["dtype"]
        # older configs' keys (and cache keys) unchanged
        for k, default in (("eps_root", 0.0), ("dropout", 1), ("micro_batch", 0)):
            if d[k] == default:
                del d[k]
        return d


@dataclass
class LMModel:
    family: ClassVar[str] = "lm"
    net: object                # transformers PreTrainedModel (causal LM)
    encoder: object            # WordEncoder | HFEncoder
    config: LMConfig | None    # None for a foreign checkpoint
    corpus: dict               # name, hash, counts (empty for a foreign checkpoint)
    meta: dict

    def __repr__(self) -> str:
        from .base import model_repr
        return model_repr(self)

    @property
    def trained_here(self) -> bool:
        return self.config is not None

    @property
    def max_len(self) -> int:
        """The longest sequence a measure reads: a network trained here, its examples'; else its positions (<= 512)."""
        if self.config is not None and not self.config.finetune:
            return self.config.max_len
        return int(min(getattr(self.net.config, "max_position_embeddings", 512) or 512, 512))

    @property
    def train_len(self) -> int:
        """Tokens per training example (``LMConfig.max_len``; a checkpoint's: its ``max_len``)."""
        return self.config.max_len if self.config is not None else self.max_len

    def examples(self, corpus: Corpus) -> Examples:
        return make_examples(corpus, self.encoder, self.train_len)

    def save(self, folder: str | Path, keep_existing: bool = False) -> Path:
        """Write the HF checkpoint plus biasaudit.json into ``folder`` atomically (temporary sibling, moved into
        place; only files this tool wrote are replaced)."""
        from .folder import model_output

        if not self.trained_here:
            raise ArtifactError("only models trained by biasaudit are saved; a foreign checkpoint stays where it is")
        _quiet_transformers()
        out = model_output(folder, {"model": "lm", "config": self.config.to_dict()})
        with out.stage(keep_existing=keep_existing) as tmp:
            self.net.save_pretrained(tmp, safe_serialization=True)
            self.encoder.hf_tokenizer().save_pretrained(tmp)
            weights = sha256_file(tmp / "model.safetensors", "model file")
            own = isinstance(self.encoder, WordEncoder)
            header = {"model": "lm", "format_version": FORMAT_VERSION, "config": self.config.to_dict(),
                      "tokenizer": TOKENIZER if own else "checkpoint",
                      "vocab": {"words": list(self.encoder.words)} if own else None,
                      "corpus": self.corpus, "meta": self.meta, "sha256": {"model.safetensors": weights}}
            (tmp / META_FILE).write_text(to_json(header), encoding="utf-8")
            for p in tmp.iterdir():
                os.chmod(p, public_mode())
        return Path(folder)

    @classmethod
    def load(cls, folder: str | Path, device: str = "cpu") -> "LMModel":
        """A biasaudit LM folder, or any local HF causal-LM checkpoint (safetensors weights only)."""
        from transformers import AutoModelForCausalLM, AutoTokenizer

        _quiet_transformers()
        folder = Path(folder)
        require_config_json(folder)
        check_checkpoint(folder)      # no code, no hub kernels, a tokenizer.json tokenizers can read safely
        head = None
        if (folder / META_FILE).exists():
            head = read_json(folder / META_FILE, "biasaudit LM record", MAX_RESULT_BYTES)
            if not isinstance(head, dict) or head.get("model") != "lm" or head.get("format_version") != FORMAT_VERSION:
                raise ArtifactError(f"{folder}: not a biasaudit LM of format {FORMAT_VERSION}")
            w = folder / "model.safetensors"
            want = (head.get("sha256") or {}).get("model.safetensors") if isinstance(head.get("sha256"), dict) else None
            if not w.exists() or sha256_file(w, "model file") != want:     # a regular file, read in blocks
                raise ArtifactError(f"{folder}/model.safetensors: missing or checksum mismatch")
        else:
            _check_safetensors_only(folder)
        # a float64 run is loaded as it was saved (in float32 its measures would move in the 5th digit)
        f64 = head is not None and isinstance(head.get("config"), dict) and head["config"].get("dtype") == "float64"
        try:
            net, info = AutoModelForCausalLM.from_pretrained(folder, local_files_only=True, use_safetensors=True,
                                                             dtype=torch.float64 if f64 else torch.float32,
                                                             trust_remote_code=False, output_loading_info=True)
        except Exception as e:   # transformers raises many types for a broken checkpoint
            raise ArtifactError(f"{folder}: cannot load the checkpoint ({fault_line(e)})") from e
        check_loading_info(folder, info)
        net = net.to(device)
        if f64:
            _keep_float64(net)
        net.eval()
        if head is not None and head.get("tokenizer") != "checkpoint":
            try:
                return cls(net, WordEncoder(tuple(head["vocab"]["words"])), LMConfig.from_dict(head["config"]),
                           dict(head["corpus"]), dict(head.get("meta", {})))
            except (KeyError, TypeError, ValueError, ConfigError) as e:
                raise ArtifactError(f"{folder}/{META_FILE}: corrupted ({e})") from e
        try:
            tok = AutoTokenizer.from_pretrained(folder, local_files_only=True, trust_remote_code=False)
        except BaseException as e:       # tokenizers may panic (a BaseException); other faults are Exceptions
            if not (isinstance(e, Exception) or is_panic(e)):
                raise
            raise ArtifactError(f"{folder}: cannot load the tokenizer ({fault_line(e)})") from e
        if head is not None:        # a model fine-tuned here from a checkpoint: the checkpoint's tokenizer
            try:
                return cls(net, HFEncoder(tok, folder), LMConfig.from_dict(head["config"]), dict(head["corpus"]),
                           dict(head.get("meta", {})))
            except (KeyError, TypeError, ValueError, ConfigError) as e:
                raise ArtifactError(f"{folder}/{META_FILE}: corrupted ({e})") from e
        return cls(net, HFEncoder(tok, folder), None, {}, {"checkpoint": str(folder)})


def _check_safetensors_only(folder: Path) -> None:
    """A foreign checkpoint is read only from safetensors files: its weights (and any shard index) must name
    safetensors files in the folder, each with a readable header; pickled weights (.bin, .pt) are never loaded."""
    from safetensors import safe_open

    files = sorted(folder.glob("*.safetensors"))
    for index in folder.glob("*.index.json"):
        try:
            shards = set(read_json(index, "shard index", MAX_RECORD_BYTES)["weight_map"].values())
        except (ArtifactError, KeyError, TypeError, AttributeError) as e:
            raise ArtifactError(f"{index}: not a readable shard index ({e})") from e
        bad = sorted(str(x) for x in shards if not (isinstance(x, str) and x.endswith(".safetensors")
                                                   and "/" not in x and "\\" not in x and x != ".."))
        if bad:
            raise ArtifactError(f"{index}: names weights that are not safetensors files in the folder ({bad[0]}); "
                                "pickled checkpoints are refused")
        files += [folder / x for x in shards]
    if not files:
        raise ArtifactError(f"{folder}: no safetensors weights (pickled .bin checkpoints are refused)")
    for f in sorted(set(files)):
        try:
            with safe_open(str(f), framework="pt"):
                pass
        except Exception as e:
            raise ArtifactError(f"{f}: not a readable safetensors file ({str(e)[:120]})") from e


def is_lm_dir(path: Path) -> bool:
    return (Path(path) / META_FILE).exists()


def _quiet_transformers() -> None:
    """No download or loading progress bars from transformers (ours show on stderr)."""
    from transformers.utils import logging as hf_logging
    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()


def build_net(config: LMConfig, vocab_size: int):
    from transformers import LlamaConfig, LlamaForCausalLM

    cfg = LlamaConfig(vocab_size=vocab_size, hidden_size=config.hidden_size,
                      intermediate_size=config.intermediate_size, num_hidden_layers=config.num_layers,
                      num_attention_heads=config.num_heads, num_key_value_heads=config.num_heads,
                      max_position_embeddings=config.max_len, tie_word_embeddings=False,
                      pad_token_id=PAD, bos_token_id=BOS, eos_token_id=EOS, attention_dropout=0.0)
    return LlamaForCausalLM(cfg)


def train_lm(corpus: Corpus, config: LMConfig = LMConfig(), progress: Progress | None = None,
             device: str = "cpu", encoder: "WordEncoder | None" = None,
             doc_weights: np.ndarray | None = None) -> LMModel:
    """Build the vocabulary (or use ``encoder``'s), then train a tiny Llama from scratch (see the module
    docstring). ``doc_weights`` (one per document, default 1) multiply each document's loss terms with the batches
    unchanged: the weights the metagradient differentiates (``--estimator magic``)."""
    corpus.scan()          # an empty corpus or repeated ids fail here, before any work
    dev = resolve_device(device)
    t0 = time.perf_counter()
    # transformers initialises (and dropout draws) from the global generator: seed it for this training only,
    # without changing the caller's random state
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        if config.finetune:
            net, encoder = initial_net(config, None, dev)
            origin = {"finetuned_from": config.finetune, "checkpoint_sha256": checkpoint_hash(config.finetune),
                      "architecture": type(net).__name__}
        else:
            encoder = encoder or word_encoder(corpus, config.min_count)
            net, _ = initial_net(config, encoder, dev)
            origin = {}
        return _train_loop(net, encoder, corpus, config, progress, dev, t0, origin, doc_weights)


def checkpoint_hash(folder: str | Path) -> str:
    """sha256 over a checkpoint's safetensors weights (their names and bytes): what a fine-tune starts from."""
    h = hashlib.sha256()
    for f in sorted(Path(folder).glob("*.safetensors")):
        h.update(f.name.encode() + b"\0")
        with open_regular(f, "checkpoint weights file") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()


RUN_RECORD = 1   # version of the run record saved in a model's meta["run"] (what replay needs besides the config)


def _train_loop(net, encoder, corpus: Corpus, config: LMConfig, progress, dev, t0: float, origin: dict,
                doc_weights: np.ndarray | None = None) -> LMModel:
    ex = make_examples(corpus, encoder, config.max_len)
    pad = encoder.pad_id
    sched_ = Schedule.of(config, len(ex.ids))
    opt, sched = make_optimizer(net, config, sched_)
    ex_w = None
    if doc_weights is not None:
        ex_w = torch.as_tensor(np.asarray(doc_weights, dtype=np.float64)[ex.doc], dtype=_dtype(config), device=dev)
    batches = hashlib.sha256()
    net.train(dropout_active(config))
    losses, step = [], 0
    if progress:
        progress("train", 0, sched_.n_steps)
    per_epoch_total, per_epoch_tok = 0.0, 0
    for idx in run_batches(ex, config, sched_):
        batches.update(np.asarray(idx, dtype=np.int64).tobytes())
        torch.manual_seed(step_seed(config.seed, step))
        with replayable_attention():
            opt.zero_grad(set_to_none=True)
            w = None if ex_w is None else ex_w[torch.as_tensor(idx)]
            per_example, tokens = step_backward(net, ex, idx, pad, dev, w, config.micro_batch)
        opt.step()
        sched.step()
        step += 1
        per_epoch_total += float(per_example.detach().sum())
        per_epoch_tok += tokens
        if step % sched_.per_epoch == 0:
            losses.append(per_epoch_total / per_epoch_tok)
            per_epoch_total, per_epoch_tok = 0.0, 0
            if not np.isfinite(losses[-1]):
                raise CorpusError("LM training diverged (non-finite loss); lower the learning rate")
        if progress and (step % max(1, sched_.n_steps // 200) == 0 or step == sched_.n_steps):
            progress("train", step, sched_.n_steps)
    net.eval()
    run = {"version": RUN_RECORD, "optimizer": "adam-eps-root" if config.eps_root > 0 else "adamw",
           "betas": list(opt.defaults["betas"]), "eps": opt.defaults["eps"],
           **({"eps_root": config.eps_root} if config.eps_root > 0 else {}), "steps": step, "warmup_steps": sched_.warm, "batches_sha256": batches.hexdigest(),
           "threads": torch.get_num_threads(), "dtype": config.dtype, "weighted": doc_weights is not None}
    return LMModel(net, encoder, config, corpus.describe(),
                   {"train_seconds": round(time.perf_counter() - t0, 3), "n_examples": len(ex.ids),
                    "n_tokens": ex.n_tokens, "vocab_size": len(encoder), "steps": step, "epochs": sched_.epochs,
                    "loss_per_epoch": [round(v, 5) for v in losses], "device": str(dev),
                    "parameters": int(sum(p.numel() for p in net.parameters())), **origin, "run": run,
                    "versions": versions("transformers", "torch", "numpy")})


def _dtype(config: LMConfig) -> torch.dtype:
    return torch.float64 if config.dtype == "float64" else torch.float32


def _rms_norm_in_dtype(self, hidden_states: torch.Tensor) -> torch.Tensor:
    """LlamaRMSNorm without its float32 round trip (which would quantise a float64 network to float32)."""
    variance = hidden_states.pow(2).mean(-1, keepdim=True)
    return self.weight * (hidden_states * torch.rsqrt(variance + self.variance_epsilon))


def _keep_float64(net) -> None:
    """A float64 network stays float64 throughout: the norms' float32 round trip is taken out."""
    import types
    for m in net.modules():
        if type(m).__name__.endswith("RMSNorm") and hasattr(m, "variance_epsilon"):
            m.forward = types.MethodType(_rms_norm_in_dtype, m)


def initial_net(config: LMConfig, encoder, dev):
    """The network a run starts from: the checkpoint's (fine-tuning) or a fresh one drawn from the seed, in the
    run's dtype. Call with the global generator seeded by ``config.seed`` (``train_lm`` does; so does replay)."""
    if config.finetune:
        start = LMModel.load(config.finetune, str(dev))
        net, encoder = start.net.to(_dtype(config)), start.encoder
    else:
        net = build_net(config, len(encoder)).to(dev).to(_dtype(config))
    if config.dtype == "float64":
        _keep_float64(net)
    return net, encoder


@torch.no_grad()
def document_losses(model: LMModel, corpus: Corpus, batch_size: int = 64) -> tuple[list[str], np.ndarray]:
    """Each document's summed next-token loss under the model (the training loss influence is taken over)."""
    ex = model.examples(corpus)
    dev = next(model.net.parameters()).device
    out = np.zeros(len(ex.doc_ids))
    lengths = np.array([len(x) for x in ex.ids])
    for idx in length_batches(lengths, batch_size, None):
        batch = {k: v.to(dev) for k, v in collate([ex.ids[i] for i in idx], model.encoder.pad_id).items()}
        np.add.at(out, ex.doc[idx], token_losses(model.net, batch).double().cpu().numpy())
    return ex.doc_ids, out


# ------------------------------------------------------------------ the family
def require_lm() -> None:
    """--model lm needs transformers and kronfluence (the ``lm`` extra); say how to install them."""
    import importlib.util
    missing = [m for m in ("transformers", "kronfluence") if importlib.util.find_spec(m) is None]
    if missing:
        raise ConfigError(f"--model lm needs {' and '.join(missing)}: pip install -e '.[lm]' && "
                          "pip install --no-deps kronfluence==1.0.1")


def parse_lm_config(spec: str | None) -> dict:
    """``hidden_size=64,num_layers=2,learning_rate=0.003,dtype=float64`` -> LMConfig fields (the smooth audited
    phase: ``eps_root=1e-6,dropout=0,batch_size=128,epochs=2,dtype=float64``)."""
    from dataclasses import fields

    out = {}
    types = {f.name: f.type for f in fields(LMConfig)}
    for item in [s.strip() for s in (spec or "").split(",") if s.strip()]:
        k, eq, v = item.partition("=")
        k = k.strip()
        if k == "finetune":
            raise ConfigError("--lm-config: fine-tune a checkpoint with --checkpoint DIR --finetune")
        if not eq or k not in types:
            known = ", ".join(t for t in types if t != "finetune")
            raise ConfigError(f"--lm-config: bad setting {item!r} (known: {known})")
        try:
            out[k] = v.strip() if types[k] == "str" else float(v) if types[k] == "float" else int(v)
        except ValueError as e:
            raise ConfigError(f"--lm-config: {k} needs a number, got {v!r}") from e
    return out
