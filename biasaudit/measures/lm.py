"""Bias measures of causal language models, differentiable in torch: template association (WEAT-shaped) and
paired sentences (CrowS-Pairs-style). Both are functions of the network, so cross-loss influence can take their
gradient.

Template association, decided here:
- A template has a ``{target}`` and an ``{attribute}`` slot, e.g. "{target} works in {attribute}". For a target
  word w and an attribute word a, ll(w, a) = log p(later slot's word | the template text before it, the earlier slot
  filled): the attribute's log-probability after the target when the attribute comes later (the usual case), the
  target's after the attribute otherwise. Words of several tokens sum their tokens' log-probabilities. Text after
  the later slot is not read (a causal LM's probability of the word does not depend on it).
- S(w, a) = mean of ll(w, a) over templates; s(w) = mean_{a in A} S(w, a) - mean_{b in B} S(w, b) (a word's prior
  cancels in this difference); effect size d = (mean_X s - mean_Y s) / sd_{X u Y}(s), sample sd (ddof=1), as WEAT.
  Positive: X goes with A and Y with B.
Paired sentences: for pairs (more, less stereotyping), f = mean over pairs of log p(more) - log p(less) (whole
sentences, summed token log-probabilities after <bos>), with a bootstrap CI over pairs; also reported, as a
secondary figure: the fraction of pairs where the more stereotyping sentence is preferred (CrowS-Pairs'
percentage). A pair is dropped (and counted) when the tokenizer cannot represent a sentence (a token mapped to
<unk>, characters no token covers), a sentence is longer than the model's context (checked on its length in
characters before it is tokenised), or a pair repeats an earlier pair's tokens (a copy would count twice).
Statistics are drawn in blocks of bounded size: memory does not grow with the square of the pair count.
``--pairs`` names a file (UTF-8, a byte-order mark allowed) or a bundled set (``crows-pairs``:
``measures.crows_pairs``).
"""
from __future__ import annotations

import json
import string
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np
import torch

from ..errors import ConfigError, VocabularyError
from ..io import MAX_RECORD_BYTES, MAX_RESULT_BYTES, parse_json, read_regular
from ..wordsets import BiasTest
from .result import MeasureResult
from .weat import N_BOOTSTRAP, bootstrap_from_blocks, effect_size, effect_size_bound, permutation_p_value


def bundled_templates() -> tuple[str, ...]:
    data = json.loads(resources.files("biasaudit").joinpath("data/wordsets/templates.json").read_text("utf-8"))
    return tuple(data["templates"])


class Templates(tuple):
    """Templates read from a file, knowing which (``source``): a command line that measures again names it."""
    source: str | None = None


def load_templates(path: str | Path | None) -> tuple[str, ...]:
    """Templates from a file (a JSON list, or one per line; '#' lines are comments), else the bundled set."""
    if path is None:
        return bundled_templates()
    try:
        text = read_regular(path, "--templates file", ConfigError, MAX_RECORD_BYTES).decode("utf-8")
    except UnicodeDecodeError as e:
        raise ConfigError(f"--templates: cannot read {path} ({e})") from e
    if text.lstrip().startswith("["):
        items = parse_json(text, f"--templates: {path}", "JSON", ConfigError)   # too deep: one line
    else:
        items = [l.strip() for l in text.splitlines() if l.strip() and not l.lstrip().startswith("#")]
    for t in items:
        check_template(t)
    if not items:
        raise ConfigError(f"--templates: {path} holds no template")
    out = Templates(items)
    out.source = str(path)
    return out


def check_template(t) -> None:
    if not isinstance(t, str):
        raise ConfigError(f"template {t!r} is not a string")
    try:
        parts = [(f, spec, conv) for _, f, spec, conv in string.Formatter().parse(t) if f is not None]
    except ValueError as e:
        raise ConfigError(f"template {t!r}: {e}") from e
    if any(spec or conv for _, spec, conv in parts):
        raise ConfigError(f"template {t!r}: slots are plain {{target}} and {{attribute}}, without a conversion or "
                          "format")
    slots = [f for f, _, _ in parts]
    if sorted(slots) != ["attribute", "target"]:
        raise ConfigError(f"template {t!r} must hold {{target}} and {{attribute}} once each")


def _split(template: str) -> tuple[str, str, str]:
    """(text before the later slot with the earlier slot left as a field, later slot's name, earlier's name)."""
    i_t, i_a = template.index("{target}"), template.index("{attribute}")
    later = "attribute" if i_a > i_t else "target"
    cut = max(i_t, i_a)
    return template[:cut], later, "target" if later == "attribute" else "attribute"


def _encode_scored(encoder, prefix: str, word: str) -> tuple[list[int], int]:
    """Token ids of <bos> + prefix + word and how many trailing tokens are the word's."""
    # the prefix's trailing space belongs to the word (" algebra" is one piece in a subword vocabulary): encoding
    # "studied " and " algebra" apart would put a lone space token before the word, which training text never has
    head = ([encoder.bos_id] if encoder.bos_id is not None else []) + encoder.encode(prefix.rstrip())
    tail = encoder.encode(" " + word)
    if not head:
        raise ConfigError("a template must not start with its later slot when the tokenizer has no <bos>")
    return head + tail, len(tail)


def sequence_log_probs(net, seqs: list[list[int]], n_scored: list[int], pad_id: int) -> torch.Tensor:
    """log p of the last ``n_scored[i]`` tokens of each sequence given the ones before, summed: (n_seqs,).

    Only the scored positions go through the output layer (a template batch times the vocabulary would not fit)."""
    L = max(len(s) for s in seqs)
    dev = next(net.parameters()).device
    ids = torch.full((len(seqs), L), pad_id, dtype=torch.long)      # (N, L)
    mask = torch.zeros((len(seqs), L), dtype=torch.long)
    rows, pos = [], []
    for i, (s, k) in enumerate(zip(seqs, n_scored)):
        ids[i, :len(s)] = torch.as_tensor(s)
        mask[i, :len(s)] = 1
        rows += [i] * k
        pos += list(range(len(s) - k, len(s)))
    ids, mask = ids.to(dev), mask.to(dev)
    rows_t, pos_t = torch.tensor(rows, device=dev), torch.tensor(pos, device=dev)
    hidden = net.get_decoder()(input_ids=ids, attention_mask=mask).last_hidden_state   # (N, L, H)
    h = hidden[rows_t, pos_t - 1]                                                      # (M, H)
    logits = net.get_output_embeddings()(h)                                            # (M, V)
    logp = torch.log_softmax(logits if logits.dtype == torch.float64 else logits.float(), dim=-1)
    tok = logp.gather(1, ids[rows_t, pos_t][:, None])[:, 0]                             # (M,)
    return torch.zeros(len(seqs), device=dev, dtype=tok.dtype).index_add(0, rows_t, tok)


@dataclass
class TemplateMeasure:
    """The template-association effect size of a BiasTest (see the module docstring)."""
    test: BiasTest
    templates: tuple[str, ...]
    seqs: list[list[int]] = field(repr=False)
    n_scored: list[int] = field(repr=False)
    cell: np.ndarray = field(repr=False)       # (n_seqs,) target_index * n_attributes + attribute_index
    pad_id: int = 0
    kind: str = "template"

    @property
    def name(self) -> str:
        return self.test.name

    @property
    def description(self) -> str:
        return (f"template association ({len(self.templates)} templates): mean log p of {self.test.attribute_a.name} "
                f"minus {self.test.attribute_b.name} words with {self.test.target_x.name} vs "
                f"{self.test.target_y.name} words, WEAT-shaped effect size")

    @property
    def words(self) -> tuple[str, ...]:
        return self.test.words

    @property
    def bound(self) -> float:
        return effect_size_bound(len(self.test.target_x.words), len(self.test.target_y.words))

    @property
    def shape(self) -> tuple[int, int]:
        t = self.test
        return len(t.target_x.words) + len(t.target_y.words), len(t.attribute_a.words) + len(t.attribute_b.words)

    def association_matrix(self, net) -> torch.Tensor:
        """S(w, a): (n_targets, n_attributes), rows X then Y, columns A then B."""
        n_t, n_a = self.shape
        lp = sequence_log_probs(net, self.seqs, self.n_scored, self.pad_id)               # (n_seqs,)
        cell = torch.as_tensor(self.cell, device=lp.device)
        total = torch.zeros(n_t * n_a, device=lp.device, dtype=lp.dtype).index_add(0, cell, lp)
        return (total / len(self.templates)).view(n_t, n_a)

    def fn(self, net) -> torch.Tensor:
        S = self.association_matrix(net)
        nx, na = len(self.test.target_x.words), len(self.test.attribute_a.words)
        s = S[:, :na].mean(1) - S[:, na:].mean(1)                                          # (n_targets,)
        return (s[:nx].mean() - s[nx:].mean()) / s.std(unbiased=True)

    @torch.no_grad()
    def stats(self, net, n_permutations: int = 20_000, n_bootstrap: int = 500, seed: int = 0) -> MeasureResult:
        """Effect size in float64 with a permutation p-value over target words and a bootstrap CI over words."""
        S = self.association_matrix(net).double().cpu().numpy()
        nx, na = len(self.test.target_x.words), len(self.test.attribute_a.words)
        s = S[:, :na].mean(1) - S[:, na:].mean(1)
        d = effect_size(s[:nx], s[nx:])
        p, exact, n_used, se = permutation_p_value(s, nx, n_permutations, seed)
        boots = bootstrap_from_blocks(S[:nx, :na], S[:nx, na:], S[nx:, :na], S[nx:, na:], n_bootstrap, seed)
        lo, hi = (np.quantile(boots, [0.025, 0.975]) if len(boots) >= max(10, n_bootstrap // 2) else (d, d))
        return MeasureResult(self.name, d, float(s[:nx].sum() - s[nx:].sum()), p, exact, n_used, se, float(lo),
                             float(hi), 0.95, len(boots),
                             {f: len(w.words) for f, w in zip(("x", "y", "a", "b"), self.test.sets)},
                             metric="template association")


    @torch.no_grad()
    def paired_change(self, net, start_net, n_bootstrap: int = 500, seed: int = 0) -> tuple:
        """(d on ``net`` minus d on ``start_net``, CI low, CI high): a fine-tune against the checkpoint it started
        from (one tokenizer), the 95% CI a paired bootstrap over words (both models read on the same resampled
        words); no CI (None) where too few resamples are defined."""
        nx, na = len(self.test.target_x.words), len(self.test.attribute_a.words)
        ds, boots = [], []
        for n in (net, start_net):
            S = self.association_matrix(n).double().cpu().numpy()
            s = S[:, :na].mean(1) - S[:, na:].mean(1)
            ds.append(effect_size(s[:nx], s[nx:]))
            boots.append(bootstrap_from_blocks(S[:nx, :na], S[:nx, na:], S[nx:, :na], S[nx:, na:], n_bootstrap, seed))
        if len(boots[0]) != len(boots[1]) or len(boots[0]) < max(10, n_bootstrap // 2):
            return ds[0] - ds[1], None, None
        lo, hi = np.quantile(boots[0] - boots[1], [0.025, 0.975])
        return ds[0] - ds[1], float(lo), float(hi)


def template_measure(test: BiasTest, model, templates: tuple[str, ...] | None = None,
                     allow_oov: bool = True) -> tuple[TemplateMeasure, dict]:
    """The measure of ``test`` on an LM, and the words dropped because the tokenizer does not know them."""
    templates = templates or bundled_templates()
    for t in templates:
        check_template(t)
    enc = model.encoder
    kept, dropped = test.restrict({w for w in test.words if enc.known(w)}, allow_oov)
    targets = kept.target_x.words + kept.target_y.words
    attributes = kept.attribute_a.words + kept.attribute_b.words
    seqs, n_scored, cell = [], [], []
    for tpl in templates:
        prefix, later, earlier = _split(tpl)
        for i, w in enumerate(targets):
            for j, a in enumerate(attributes):
                fill = {"target": w, "attribute": a}
                ids, k = _encode_scored(enc, prefix.format(**{earlier: fill[earlier]}), fill[later])
                if len(ids) > model.max_len:
                    raise ConfigError(f"template {tpl!r} with {w!r}, {a!r} is {len(ids)} tokens, more than the "
                                      f"model's {model.max_len}")
                seqs.append(ids)
                n_scored.append(k)
                cell.append(i * len(attributes) + j)
    return TemplateMeasure(kept, tuple(templates), seqs, n_scored, np.asarray(cell), enc.pad_id), dropped


# ------------------------------------------------------------------ paired sentences
@dataclass(frozen=True)
class PairSet:
    """Paired sentences measured as one figure: (more stereotyping, less stereotyping) sentences, each pair's id
    (its line in a file; its row index in CrowS-Pairs) and where they come from."""
    name: str
    pairs: tuple[tuple[str, str], ...]
    ids: tuple[int, ...]
    source: str


def load_pairs(path: str | Path) -> list[tuple[str, str]]:
    """JSONL pairs: {"more": ..., "less": ...} (CrowS-Pairs' "sent_more"/"sent_less" also read)."""
    return list(pair_file(path).pairs)


def pair_file(path: str | Path) -> PairSet:
    """A JSONL file of pairs as a PairSet named by the file's stem; ids are line numbers."""
    pairs, lines_used = [], []
    try:
        # JSON Lines end at "\n" only: str.splitlines() also splits at U+2028, U+2029 and U+0085, which JSON holds
        # unescaped inside strings (a valid line was "not a JSON object"); json.loads takes the "\r" of "\r\n"
        lines = read_regular(path, "--pairs file", ConfigError, MAX_RESULT_BYTES).decode("utf-8-sig").split("\n")
    except UnicodeDecodeError as e:
        raise ConfigError(f"--pairs: cannot read {path} ({e})") from e
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
            more = rec.get("more", rec.get("sent_more"))
            less = rec.get("less", rec.get("sent_less"))
        except (json.JSONDecodeError, AttributeError) as e:
            raise ConfigError(f"--pairs: {path}:{n} is not a JSON object") from e
        except RecursionError as e:     # 100,000 nested '[' on one line
            raise ConfigError(f"--pairs: {path}:{n} is nested too deep; not a pair") from e
        if not (isinstance(more, str) and isinstance(less, str) and more.strip() and less.strip()):
            raise ConfigError(f"--pairs: {path}:{n} needs non-empty string fields 'more' and 'less'")
        pairs.append((more, less))
        lines_used.append(n)
    if not pairs:
        raise ConfigError(f"--pairs: {path} holds no pair")
    return PairSet(Path(path).stem, tuple(pairs), tuple(lines_used), str(path))


def resolve_pairs(spec) -> list[PairSet]:
    """What ``--pairs`` names, as pair sets. A path that exists is always a file; otherwise ``crows-pairs`` (the
    bundled CrowS-Pairs, one set per bias type, named ``crows-pairs:TYPE``) or ``crows-pairs:TYPE``. PairSets,
    (name, [(more, less), ...]) tuples and lists of either pass through."""
    from .crows_pairs import NAME, crows_sets, crows_types

    if spec is None:
        return []
    if isinstance(spec, PairSet):
        return [spec]
    if isinstance(spec, tuple) and len(spec) == 2 and isinstance(spec[0], str) and not isinstance(spec[1], str):
        pairs = tuple((str(m), str(l_)) for m, l_ in spec[1])
        return [PairSet(spec[0], pairs, tuple(range(1, len(pairs) + 1)), spec[0])]
    if isinstance(spec, (list, tuple)):
        return [s for item in spec for s in resolve_pairs(item)]
    if not isinstance(spec, (str, Path)):
        raise ConfigError(f"--pairs: expected a file or a bundled set name, got {type(spec).__name__}")
    types = None if Path(spec).exists() else crows_types(str(spec))
    if types is None:
        if not Path(spec).exists():
            raise ConfigError(f"--pairs: {spec}: no such file, and not a bundled set ({NAME}, or "
                              f"{NAME}:TYPE for one bias type)")
        return [pair_file(spec)]
    return [PairSet(name, tuple((r.sent_more, r.sent_less) for r in rows), tuple(r.id for r in rows), NAME)
            for name, rows in crows_sets(types)]


SCORE_BATCH = 256          # pairs per forward pass when a measure's value is reported (no gradient)
BLOCK_VALUES = 1 << 20     # values per block of sign-flip and bootstrap draws (8 MB of float64)


def _row_blocks(n_rows: int, n_cols: int):
    """Row counts of blocks of at most BLOCK_VALUES values (at least one row each) covering n_rows rows."""
    step = max(1, BLOCK_VALUES // max(1, n_cols))
    for start in range(0, n_rows, step):
        yield min(step, n_rows - start)


@dataclass
class PairMeasure:
    """Mean log-likelihood difference, more minus less stereotyping sentence (positive: the model prefers the
    stereotype), over the pairs the model can read (``dropped``: reason -> ids of the others)."""
    name: str
    pairs: list[tuple[str, str]]
    seqs: list[list[int]] = field(repr=False)     # more_0, less_0, more_1, less_1, ...
    n_scored: list[int] = field(repr=False)
    pad_id: int = 0
    kind: str = "pairs"
    words: tuple[str, ...] = ()
    bound: float = float("inf")   # a log-likelihood difference has no bound
    ids: tuple[int, ...] = ()
    dropped: dict = field(default_factory=dict)
    source: str = ""

    @property
    def description(self) -> str:
        return f"paired sentences ({len(self.pairs)} pairs): mean log p(more stereotyping) - log p(less)"

    @property
    def n_dropped(self) -> int:
        return sum(len(v) for v in self.dropped.values())

    def differences(self, net, batch: int | None = None) -> torch.Tensor:
        """log p(more) - log p(less) of each pair: (n_pairs,). ``batch`` pairs per forward pass (without
        gradients: memory bounded whatever the pair count); None: one pass over all pairs (differentiable)."""
        if batch is None:
            lp = sequence_log_probs(net, self.seqs, self.n_scored, self.pad_id)
        else:
            step = 2 * batch
            lp = torch.cat([sequence_log_probs(net, self.seqs[i:i + step], self.n_scored[i:i + step], self.pad_id)
                            for i in range(0, len(self.seqs), step)])
        return lp[0::2] - lp[1::2]                                                         # (n_pairs,)

    def fn(self, net) -> torch.Tensor:
        """The mean difference; without gradients (a reported value, a prediction) in batches of SCORE_BATCH."""
        return self.differences(net, batch=None if torch.is_grad_enabled() else SCORE_BATCH).mean()

    # The mean is linear in the pairs: its gradient is the sum of the parts' gradients, each over SCORE_BATCH pairs,
    # so an influence estimator differentiates it part by part (kronfluence sums the query gradients) and its memory
    # does not grow with the pair count (one pass over 40,000 pairs took 7.7 GB).
    def parts(self) -> int:
        """How many parts of at most SCORE_BATCH pairs ``part`` splits the measure into."""
        return max(1, -(-len(self.n_scored) // (2 * SCORE_BATCH)))

    def part(self, net, i: int) -> torch.Tensor:
        """Part ``i`` of the mean (differentiable): the sum of its pairs' differences over the number of pairs; the
        parts add up to ``fn``."""
        lo, hi = 2 * SCORE_BATCH * i, 2 * SCORE_BATCH * (i + 1)
        lp = sequence_log_probs(net, self.seqs[lo:hi], self.n_scored[lo:hi], self.pad_id)
        return (lp[0::2] - lp[1::2]).sum() / (len(self.n_scored) // 2)

    @torch.no_grad()
    def stats(self, net, n_permutations: int = 20_000, n_bootstrap: int = N_BOOTSTRAP, seed: int = 0,
              **_) -> MeasureResult:
        """Mean difference (nats) with a one-sided sign-flip permutation p-value (exact up to 16 pairs) and a
        percentile bootstrap 95% interval over pairs; beside it, as a secondary figure, the fraction of pairs
        where the more stereotyping sentence is preferred (CrowS-Pairs' percentage, a step function)."""
        diff = self.differences(net, batch=SCORE_BATCH).double().cpu().numpy()
        obs, n = diff.mean(), len(diff)
        tol = 1e-12 * max(1.0, np.abs(diff).sum())
        if n <= 16:
            signs = 1 - 2 * ((np.arange(2 ** n)[:, None] >> np.arange(n)) & 1)     # (2^n, n) every sign pattern
            p, exact, used = float(np.mean((signs * diff).mean(1) >= obs - tol)), True, 2 ** n
        else:
            # row blocks of one generator draw what one (n_permutations, n) call drew: the same p for a seed
            rng, hits = np.random.default_rng(seed), 0
            for m in _row_blocks(n_permutations, n):
                signs = rng.choice([-1.0, 1.0], size=(m, n))                                 # (m, n)
                hits += int(np.sum((signs * diff).mean(1) >= obs - tol))
            p, exact, used = (1 + hits) / (1 + n_permutations), False, n_permutations
        lo, hi, n_boot = float(obs), float(obs), 0
        if n > 1 and n_bootstrap > 0:
            rng = np.random.default_rng(seed)
            boots = np.concatenate([diff[rng.integers(0, n, (m, n))].mean(1)
                                    for m in _row_blocks(n_bootstrap, n)])                 # (n_bootstrap,)
            (lo, hi), n_boot = np.quantile(boots, [0.025, 0.975]), n_bootstrap
        extra = {"fraction_preferred": float(np.mean(diff > 0)), "n_pairs": n}
        if self.dropped:
            extra["dropped_pairs"] = {k: list(v) for k, v in self.dropped.items()}
        return MeasureResult(self.name, float(obs), float(diff.sum()), p, exact, used,
                             0.0 if exact else float(np.sqrt(p * (1 - p) / used)), float(lo), float(hi), 0.95,
                             n_boot, {"pairs": n}, metric="paired sentences", extra=extra)


UNREADABLE = "with text the tokenizer cannot represent"
REPEATED = "repeating an earlier pair's tokens"
CHARS_PER_TOKEN = 100      # more characters than this per token of context cannot fit: dropped before tokenising


def _unreadable(enc, text: str) -> bool:
    """Whether the tokenizer loses part of ``text``: a token mapped to <unk>, or characters no token covers."""
    if hasattr(enc, "unrepresented"):
        return bool(enc.unrepresented(text))
    unk = getattr(enc, "unk_id", None)
    return unk is not None and unk in enc.encode(text)


def pair_measure(name: str, pairs, model, ids=None, source: str = "") -> PairMeasure:
    """The paired-sentence measure of ``pairs`` on an LM. Pairs the model cannot read are dropped and counted
    (``PairMeasure.dropped``): a sentence with text the tokenizer cannot represent, or longer than the model's
    context (a sentence of more than CHARS_PER_TOKEN characters per token of context is not even tokenised), or
    the same tokens as an earlier pair (a copy would count twice in the p-value and the interval); a set whose
    every pair is dropped is a VocabularyError."""
    enc = model.encoder
    ids = tuple(range(1, len(pairs) + 1)) if ids is None else tuple(ids)
    too_long = f"longer than the model's {model.max_len} tokens"
    max_chars = CHARS_PER_TOKEN * model.max_len
    seqs, n_scored, kept, kept_ids, dropped, seen = [], [], [], [], {}, set()
    for pid, (more, less) in zip(ids, pairs):
        encoded, reason = [], None
        if max(len(more), len(less)) > max_chars:
            dropped.setdefault(f"longer than {max_chars:,} characters", []).append(pid)
            continue
        for text in (more, less):
            toks = enc.encode(text)
            if enc.bos_id is not None:
                toks = [enc.bos_id] + toks
            if len(toks) < 2:
                raise VocabularyError(f"pair sentence {text!r} has no token to score")
            if _unreadable(enc, text):
                reason = UNREADABLE
            elif len(toks) > model.max_len and reason is None:
                reason = too_long
            encoded.append(toks)
        key = (tuple(encoded[0]), tuple(encoded[1]))
        if reason is None and key in seen:
            reason = REPEATED
        if reason is not None:
            dropped.setdefault(reason, []).append(pid)
            continue
        seen.add(key)
        for toks in encoded:
            seqs.append(toks)
            n_scored.append(len(toks) - 1)
        kept.append((more, less))
        kept_ids.append(pid)
    if not kept:
        raise VocabularyError(f"{name}: the model can read none of its {len(ids)} pairs (" +
                              ", ".join(f"{len(v)} {k}" for k, v in dropped.items()) + ")")
    return PairMeasure(name, kept, seqs, n_scored, enc.pad_id, ids=tuple(kept_ids),
                       dropped={k: tuple(v) for k, v in dropped.items()}, source=source or name)


def dropped_pairs_notes(measures) -> list[str]:
    """One line per source (a file, ``crows-pairs``) saying how many pairs its measures dropped and why."""
    by_source: dict[str, list] = {}
    for m in measures:
        if getattr(m, "kind", None) == "pairs":
            by_source.setdefault(m.source, []).append(m)
    lines = []
    for source, ms in by_source.items():
        gone = sum(m.n_dropped for m in ms)
        if not gone:
            continue
        total = gone + sum(len(m.pairs) for m in ms)
        reasons: dict[str, int] = {}
        for m in ms:
            for k, v in m.dropped.items():
                reasons[k] = reasons.get(k, 0) + len(v)
        each = ("; " + ", ".join(f"{m.name.rsplit(':', 1)[-1]} {m.n_dropped}/{m.n_dropped + len(m.pairs)}"
                                 for m in ms if m.n_dropped)) if len(ms) > 1 else ""
        lines.append(f"{source}: dropped {gone:,} of {total:,} pairs (" +
                     ", ".join(f"{n:,} {k}" for k, n in reasons.items()) + f"){each}")
    return lines
