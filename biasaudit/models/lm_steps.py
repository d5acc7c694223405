"""A language model's training examples (a document's tokens cut into pieces, each knowing its document) and one
training step: its batch (right-padded), the per-example summed token losses, the
step's weighted loss, and its gradients, accumulated over pieces of the batch where ``LMConfig.micro_batch`` asks
(the loss is divided by the whole batch's token count, so the pieces' gradients add up to the batch's: a batch of
128 examples fits the memory of 16). Training, the replay and the reverse pass of ``--estimator magic`` all take
their steps from here.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..corpus import Corpus
from ..errors import CorpusError


@dataclass
class Examples:
    """Training examples: token ids (each starting with <bos> where the tokenizer has one) and their document."""
    ids: list[np.ndarray]
    doc: np.ndarray            # (n_examples,) index of the example's document in ``doc_ids``
    doc_ids: list[str]

    @property
    def n_tokens(self) -> int:
        """Next-token predictions (the loss terms): all tokens but each example's first."""
        return int(sum(len(x) - 1 for x in self.ids))


def make_examples(corpus: Corpus, encoder, max_len: int) -> Examples:
    ids, doc, doc_ids = [], [], []
    piece = max_len - (1 if encoder.bos_id is not None else 0)
    for d_index, d in enumerate(corpus):
        doc_ids.append(d.id)
        toks = encoder.encode(d.text)
        if encoder.eos_id is not None:
            toks = toks + [encoder.eos_id]
        for s in range(0, len(toks), piece):
            part = toks[s:s + piece]
            if encoder.bos_id is not None:
                part = [encoder.bos_id] + part
            if len(part) >= 2:
                ids.append(np.asarray(part, dtype=np.int64))
                doc.append(d_index)
    if not ids:
        raise CorpusError(f"corpus {corpus.name!r}: no document has two tokens; nothing to train on")
    return Examples(ids, np.asarray(doc, dtype=np.int64), doc_ids)


def collate(seqs: list[np.ndarray], pad_id: int) -> dict:
    """Right-padded batch: input_ids, attention_mask and labels (-100 at padding)."""
    L = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), L), pad_id, dtype=torch.long)       # (batch, L)
    mask = torch.zeros((len(seqs), L), dtype=torch.long)
    for i, s in enumerate(seqs):
        ids[i, :len(s)] = torch.as_tensor(s)
        mask[i, :len(s)] = 1
    labels = ids.masked_fill(mask == 0, -100)
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


def token_losses(net, batch: dict) -> torch.Tensor:
    """Per-example SUMMED next-token loss, (batch,)."""
    logits = net(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits  # (b, L, V)
    labels = batch["labels"][:, 1:]
    logits = logits if logits.dtype == torch.float64 else logits.float()
    nll = torch.nn.functional.cross_entropy(logits[:, :-1].flatten(0, 1), labels.flatten(),
                                            ignore_index=-100, reduction="none").view(labels.shape)
    return nll.sum(1)


# ------------------------------------------------------------------ the model


def weighted_batch_loss(net, ex: Examples, idx: np.ndarray, pad: int, dev, example_weight=None,
                        tokens: int | None = None):
    """The step's loss: the weighted sum of the batch's per-example summed token losses over its token count
    (weights 1: the mean next-token loss; ``tokens``: another divisor, the whole batch's for a piece of it).
    Returns (loss, per-example losses, tokens)."""
    batch = {k: v.to(dev) for k, v in collate([ex.ids[i] for i in idx], pad).items()}
    per_example = token_losses(net, batch)
    if tokens is None:
        tokens = int((batch["labels"][:, 1:] != -100).sum())
    weighted = per_example if example_weight is None else per_example * example_weight
    return weighted.sum() / tokens, per_example, tokens


def pieces(idx: np.ndarray, micro_batch: int) -> list[np.ndarray]:
    """The batch's example indices in consecutive pieces of ``micro_batch`` (0: the whole batch in one)."""
    if not micro_batch or micro_batch >= len(idx):
        return [idx]
    return [idx[s:s + micro_batch] for s in range(0, len(idx), micro_batch)]


def batch_tokens(ex: Examples, idx: np.ndarray) -> int:
    """The batch's next-token predictions (each example's tokens but its first): the step loss's divisor."""
    return int(sum(len(ex.ids[i]) - 1 for i in idx))


def step_backward(net, ex: Examples, idx: np.ndarray, pad: int, dev, example_weight=None,
                  micro_batch: int = 0) -> tuple[torch.Tensor, int]:
    """``backward()`` of the step's loss into the network's ``.grad``: in one piece (``micro_batch`` 0, the
    batch's loss as ``weighted_batch_loss`` gives it), or piece by piece, each divided by the whole batch's token
    count, so their gradients add up to the batch's. Returns (the per-example losses, detached; tokens)."""
    if not micro_batch or micro_batch >= len(idx):
        loss, per_example, tokens = weighted_batch_loss(net, ex, idx, pad, dev, example_weight)
        loss.backward()
        return per_example.detach(), tokens
    tokens = batch_tokens(ex, idx)
    out, s = [], 0
    for part in pieces(idx, micro_batch):
        w = None if example_weight is None else example_weight[s:s + len(part)]
        loss, per_example, _ = weighted_batch_loss(net, ex, part, pad, dev, w, tokens=tokens)
        loss.backward()
        out.append(per_example.detach())
        s += len(part)
    return torch.cat(out), tokens
