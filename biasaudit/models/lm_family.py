"""The language-model family (``--model lm``): what the rest of biasaudit asks of LMs, and the default recipe.

Decided here:
- The default (``--model lm``) is what users of LMs do: a base model trained once, offline (``models.lm_base``,
  built on first use and cached by its recipe's hash), then a smooth audited phase on the user's corpus, the only
  phase that is attributed: Adam with epsilon inside the square root (1e-6), no dropout, batches of 128 examples
  of similar length (``batches=length``; ``shuffled``, uniform samples, was measured and learned the planted
  association less: docs/results/lm_smooth.md), 2 epochs, float64 (the replay that magic differentiates is then
  exact), examples of at most 16 tokens (sentence sized, like the templates the measure reads; a corpus gives more
  optimizer steps per epoch). Every retrain (experiment, LDS, debias --verify) repeats the audited phase from the
  same base. ``SMOOTH`` holds the recipe; ``--lm-config`` overrides any of it, ``--checkpoint DIR --finetune``
  starts from the user's own base instead.
- ``from_scratch`` (``--from-scratch``) trains the whole network on the corpus, as before this default existed:
  plain AdamW, dropout, hundreds of steps. Its runs are rough in the documents' weights (metasmoothness 0.1-0.5
  where the smooth phase measures above 0.99, docs/results/lm_smooth.md); the audit says so.
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import torch

from ..errors import ArtifactError
from ..io import MAX_RECORD_BYTES, read_json
from ..vocab import TOKENIZER
from .base import find_replay, register, replay_refusal_of
from .lm import (FORMAT_VERSION, RUN_RECORD, LMConfig, LMModel, checkpoint_hash, doc_word_index, is_lm_dir,
                 parse_lm_config, require_lm, train_lm, word_encoder)

# the smooth audited phase (see the module docstring); learning_rate and warmup are LMConfig's defaults
SMOOTH = {"eps_root": 1e-6, "dropout": 0, "batch_size": 128, "epochs": 2, "dtype": "float64", "max_len": 16}


def bundled_base() -> str:
    """The folder of the bundled base model (``models.lm_base``), as a config names it (not built here)."""
    from .lm_base import base_path
    return str(base_path())


_COPY = re.compile(r"^(?P<id>.*)@copy[0-9]+$")


def paired_weights(edited, full) -> np.ndarray | None:
    """Each full-corpus document's count in ``edited`` (0: removed, 1: kept, e: e copies, ``Corpus.upweight``'s
    ``<id>@copyN`` with the same text), or None where ``edited`` holds anything else (a rewrite, a new document).

    Why: the audited phase's batches are a function of the seed and the examples. Retrained on a corpus without
    100 documents, every batch changes, and on the planted LM corpus that moved d by sd 0.42 across seeds where
    the same removals with the baseline's batches moved it by 0.01-0.02 (docs/results/lm_smooth.md): the seed's
    batch order, not the edit, decided the difference. With the baseline's batches (a removed document's loss
    terms weighted 0, a copy's counted again; each step's token count, hence its step size, unchanged) the
    retrain and its baseline differ by the edit alone."""
    pos = {d.id: i for i, d in enumerate(full)}
    texts = [d.text for d in full]
    weights = np.zeros(len(pos))
    for d in edited:
        i = pos.get(d.id)
        if i is None:
            m = _COPY.match(d.id)
            i = pos.get(m.group("id")) if m else None
        if i is None or d.text != texts[i]:
            return None
        weights[i] += 1
    return weights


def ensure_base(config: LMConfig, progress=None) -> None:
    """Build the bundled base model on first use (about two minutes on one core, then cached), when ``config``
    fine-tunes it."""
    if config.finetune and config.finetune == bundled_base() and not Path(config.finetune, "biasaudit.json").is_file():
        from .lm_base import base_folder
        base_folder(progress=progress)


class LMFamily:
    name = "lm"
    label = "LM"
    config_type = LMConfig
    options = frozenset({"min_count", "epochs", "seed", "from_scratch"})
    default_estimator = "ekfac"   # without a training config: a model trained elsewhere has no run to replay
    replays = True
    modes = ("scratch", "masked")
    objective_kind = "task"
    word_vectors = False
    unit = "tokens"
    smoothness_directions = 2   # score measures the audited run's metasmoothness (2 trainings per direction)
    default_seeds = 3       # a small LM's template measure varies across seeds about as much as between corpora
    takes_extra = True      # --lm-config
    takes_templates = True  # measured by template association (--templates, --pairs), from a checkpoint too

    def make_config(self, given: dict, extra: str | None = None) -> LMConfig:
        """The smooth audited phase on the bundled base (``SMOOTH``), or with ``from_scratch`` the whole network
        trained on the corpus (LMConfig's own defaults); ``extra`` (--lm-config) overrides either."""
        require_lm()
        given = dict(given)
        if given.pop("from_scratch", False):
            return LMConfig(**{**given, **parse_lm_config(extra)})
        return LMConfig(**{**SMOOTH, "finetune": bundled_base(), **given, **parse_lm_config(extra)})

    def default_estimator_for(self, config) -> str:
        """magic for a fine-tune (the audited phase: smooth, replayed exactly, 3-4 trainings per measure, and the
        only estimator whose size predictions were of the right order there); ekfac for a run from scratch (rough
        in the documents' weights: metagradients do not predict it) (docs/results/lm_smooth.md)."""
        return "magic" if getattr(config, "finetune", "") else "ekfac"

    def default_config(self, config: LMConfig) -> LMConfig:
        """The config ``--model lm`` makes without settings, of ``config``'s kind (a fine-tune or from scratch):
        what a command line needs to spell out is where ``config`` differs from it."""
        return LMConfig(**SMOOTH, finetune=bundled_base()) if config.finetune else LMConfig()

    def command_flags(self, config: LMConfig) -> list:
        return [] if config.finetune else ["--from-scratch"]

    def prepare(self, config: LMConfig, progress=None) -> None:
        """Before training: build the bundled base if ``config`` fine-tunes it and it is not built yet."""
        ensure_base(config, (lambda s, d, t: progress("building the base LM (once, then cached)", d, t))
                    if progress else None)

    def train(self, corpus, config, progress=None, device="cpu") -> LMModel:
        ensure_base(config, progress)
        return train_lm(corpus, config, progress, device)

    def retrain(self, edited, config, full) -> LMModel:
        """An experiment's retrain. From scratch: on the edited corpus with the tokenizer built on the full corpus
        (the baseline's, so a removal cannot drop test words from the vocabulary). A fine-tune (the audited
        phase): again from the same checkpoint; where the edit only removes or copies documents, with the
        baseline's batches (``paired_weights``), so the retrain differs from its baseline by the edit alone."""
        if config.finetune:
            weights = paired_weights(edited, full)
            if weights is not None:
                return train_lm(full, config, doc_weights=weights)
            return train_lm(edited, config)
        return train_lm(edited, config, encoder=word_encoder(full, config.min_count))

    def retrain_weighted(self, full, config, weights) -> LMModel:
        """``--mode masked``: the baseline's run on the full corpus (the same examples, batches, learning rates
        and random draws) with each document's loss terms weighted (0: removed, e: e copies): the retrain a
        metagradient predicts to first order."""
        encoder = None if config.finetune else word_encoder(full, config.min_count)
        return train_lm(full, config, encoder=encoder, doc_weights=weights)

    def load(self, folder, device: str = "cpu") -> LMModel:
        return LMModel.load(folder, device)

    def recognises(self, folder: Path) -> bool:
        if is_lm_dir(folder):
            return True
        try:   # a foreign HF checkpoint: config.json with a model type, no biasaudit "model" field
            head = read_json(Path(folder) / "config.json", "model config", MAX_RECORD_BYTES)
        except ArtifactError:
            return False
        return isinstance(head, dict) and "model" not in head and "model_type" in head

    def cache_spec(self, corpus_hash: str, config: LMConfig) -> dict:
        import transformers
        spec = {"model": "lm", "corpus": corpus_hash, "config": config.to_dict(), "tokenizer": TOKENIZER,
                "torch": torch.__version__, "transformers": transformers.__version__, "format": FORMAT_VERSION,
                "run_record": RUN_RECORD}
        if config.finetune:
            # its weights' hash is the key; the bundled base not built yet (train_or_load builds it first, with
            # progress) has no weights, and no model trained from it can be cached: a key nothing matches
            spec["config"] = {**spec["config"], "finetune": None}    # the weights decide, not the path
            spec["tokenizer"] = "checkpoint"
            spec["checkpoint_sha256"] = (checkpoint_hash(config.finetune) if Path(config.finetune).is_dir()
                                         else "not built")
        return spec

    def describe(self, config) -> str:
        if config.finetune == bundled_base():
            return "LM (the bundled base, fine-tuned on the corpus)"
        return f"LM fine-tuned from {config.finetune}" if config.finetune else "LM (trained from scratch)"

    def size(self, model) -> int:
        return len(model.encoder)

    def known_words(self, model, words) -> set[str]:
        return {w for w in words if model.encoder.known(w)}

    def bias_measures(self, model, tests: list, templates=None) -> list:
        from ..measures.lm import template_measure
        return [template_measure(t, model, templates, allow_oov=False)[0] for t in tests]

    def weat(self, model, test, templates=None, **stats):
        from ..measures.lm import template_measure
        return template_measure(test, model, templates, allow_oov=False)[0].stats(model.net, **stats)

    def evaluate(self, model, tests: list, heldout: dict, quality: bool = True, templates=None) -> dict:
        """Template-association effect sizes (None where a set keeps fewer than 2 known words) and the mean
        training loss per token as the quality figure."""
        from ..errors import VocabularyError
        from ..measures.lm import template_measure

        def effect(t):
            try:
                return template_measure(t, model, templates, allow_oov=True)[0].stats(
                    model.net, n_permutations=1, n_bootstrap=0).effect_size
            except VocabularyError:
                return None

        loss = model.meta.get("loss_per_epoch") or [None]
        return {"effects": {t.name: effect(t) for t in tests},
                "heldout_effects": {name: effect(h) for name, h in heldout.items()},
                "quality": {"train_loss_per_token": loss[-1]}}

    def vocabulary_summary(self, model) -> dict:
        return {"size": len(model.encoder), "tokens_in_vocabulary": model.meta.get("n_tokens")}

    def pair_measure(self, model, name: str, pairs: list, ids=None, source: str = ""):
        from ..measures.lm import pair_measure
        return pair_measure(name, pairs, model, ids, source)

    def objective(self, model):
        return model

    def starting_point(self, model) -> tuple[LMModel, str] | None:
        """The model the attributed phase started from and how to name it: a fine-tune's checkpoint (the bundled
        base or the user's). None for a run from scratch or a model without its training config; an ArtifactError
        naming the checkpoint where it is gone, cannot be read, or holds other weights than the run recorded."""
        config = getattr(model, "config", None)
        folder = getattr(config, "finetune", "") if config is not None else ""
        if not folder:
            return None
        try:
            recorded = (model.meta or {}).get("checkpoint_sha256")
            if not Path(folder).is_dir() or recorded is None or recorded != checkpoint_hash(folder):
                raise ArtifactError(f"{folder}: not the checkpoint this model's run started from (gone, or its "
                                    "weights changed since)")
            start = LMModel.load(folder, str(next(model.net.parameters()).device))
        except OSError as e:
            raise ArtifactError(f"{folder}: {e.strerror or e}") from e
        return start, "the bundled base" if folder == bundled_base() else f"the checkpoint {folder}"

    def replay(self, model, corpus, device: str = "cpu"):
        """The model's recorded training run (``--estimator magic``); refused in one line where there is none."""
        if model.config is not None:
            ensure_base(model.config)
        return find_replay("lm", model, corpus, device)

    def replay_refusal(self, model) -> str | None:
        return replay_refusal_of("lm", model)

    def magic_words(self, model, corpus, measures, replay):
        """The measures' words and, per document, the indices of those it holds (for the report)."""
        words = tuple(dict.fromkeys(w for m in measures for w in m.words))
        return words, doc_word_index(corpus, words)


FAMILY = register(LMFamily())
