"""The training loss of a causal LM as influence needs it: the network made trackable by kronfluence (which tracks
only ``nn.Linear`` and ``nn.Conv2d``), and the kronfluence ``Task`` (summed per-example training loss, the bias
measure as measurement). The family's objective; ``biasaudit.influence.ekfac`` drives kronfluence with it.

Decided here:
- Training loss per example = its SUMMED next-token loss (kronfluence requires sums); the Fisher is sampled from
  the model's own predictions (the true Fisher, kronfluence's default).
- Tracked modules: every ``nn.Linear`` of the network, and the input embeddings rewritten as a one-hot
  ``nn.Linear`` with the same values, except (both) when the vocabulary has more than ``MAX_TRACKED_VOCAB``
  entries (their EK-FAC factors are vocabulary x vocabulary). The influence is the part carried by the tracked
  weights. GPT-2's ``Conv1D`` layers (x @ W + b, W of shape (in, out)) become the equivalent ``nn.Linear``
  (weight W^T): the same function, now trackable. Tied input and output embeddings are tracked as two layers
  (kronfluence's factors are per layer).
"""
from __future__ import annotations

import copy

import torch

from ..errors import ConfigError

MAX_TRACKED_VOCAB = 4096


class OneHotEmbedding(torch.nn.Module):
    """An embedding lookup written as one-hot inputs times an ``nn.Linear`` (same values), so kronfluence can
    track the input embeddings (it supports only nn.Linear and nn.Conv2d)."""

    def __init__(self, emb: torch.nn.Embedding):
        super().__init__()
        self.proj = torch.nn.Linear(emb.num_embeddings, emb.embedding_dim, bias=False)
        with torch.no_grad():
            self.proj.weight.copy_(emb.weight.T)                                  # (dim, V)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        onehot = torch.nn.functional.one_hot(input_ids, self.proj.in_features).to(self.proj.weight.dtype)
        return self.proj(onehot)                                                  # (b, L, dim)


def conv1d_as_linear(conv) -> torch.nn.Linear:
    """HF GPT-2's Conv1D (y = x @ W + b, W: (in, out)) as the same nn.Linear (weight W^T)."""
    n_in, n_out = conv.weight.shape
    lin = torch.nn.Linear(n_in, n_out, bias=conv.bias is not None, device=conv.weight.device,
                          dtype=conv.weight.dtype)
    with torch.no_grad():
        lin.weight.copy_(conv.weight.T)
        if conv.bias is not None:
            lin.bias.copy_(conv.bias)
    return lin


def _replace_conv1d(net) -> None:
    try:
        from transformers.pytorch_utils import Conv1D
    except ImportError:         # pragma: no cover - transformers without GPT-2's layer
        return
    for name, m in list(net.named_modules()):
        for child_name, child in list(m.named_children()):
            if isinstance(child, Conv1D):
                setattr(m, child_name, conv1d_as_linear(child))


def trackable(net):
    """A copy of ``net`` whose layers kronfluence can track: GPT-2's Conv1D as nn.Linear, and the input embeddings
    a one-hot linear layer when the vocabulary is small enough."""
    net = copy.deepcopy(net)
    _replace_conv1d(net)
    emb = net.get_input_embeddings()
    if isinstance(emb, torch.nn.Embedding) and emb.num_embeddings <= MAX_TRACKED_VOCAB:
        net.set_input_embeddings(OneHotEmbedding(emb))
    return net


def tracked_modules(net) -> list[str]:
    out_layer = net.get_output_embeddings()
    names = []
    for name, m in net.named_modules():
        if isinstance(m, torch.nn.Linear):
            if m is out_layer and m.out_features > MAX_TRACKED_VOCAB:
                continue
            names.append(name)
    if not names:
        raise ConfigError("the LM has no nn.Linear (or GPT-2 Conv1D) layer that kronfluence can track")
    return names


def make_task(tracked: list[str]):
    """kronfluence's task: the training loss per example and the bias measure (set ``task.measure`` before
    scoring; the fitted factors depend only on the training loss, so they serve every measure)."""
    from kronfluence.task import Task

    class BiasTask(Task):
        measure = None

        def compute_train_loss(self, batch, model, sample: bool = False) -> torch.Tensor:
            logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
            logits = logits[:, :-1].float()                                     # (b, L-1, V)
            labels = batch["labels"][:, 1:]
            if sample:   # the true Fisher: targets drawn from the model's own predictions
                with torch.no_grad():
                    drawn = torch.multinomial(torch.softmax(logits.flatten(0, 1), -1), 1).view(labels.shape)
                labels = drawn.masked_fill(labels == -100, -100)
            return torch.nn.functional.cross_entropy(logits.flatten(0, 1), labels.flatten(), ignore_index=-100,
                                                     reduction="sum")

        def compute_measurement(self, batch, model) -> torch.Tensor:
            # a measure that is a sum of parts (paired sentences) is differentiated part by part: the query item
            # names the part, and kronfluence sums the parts' gradients (aggregate_query_gradients)
            if hasattr(self.measure, "part") and isinstance(batch, torch.Tensor):
                return self.measure.part(model, int(batch.reshape(-1)[0]))
            return self.measure.fn(model)

        def get_influence_tracked_modules(self):
            return tracked

        def get_attention_mask(self, batch):
            return batch["attention_mask"] if isinstance(batch, dict) else None

    return BiasTask()
