"""Prior-work debiasing baselines an experiment compares with (they edit a trained model, not its corpus).

- ``hard_debias``: Bolukbasi et al. 2016, the neutralize step on word vectors.
"""
from __future__ import annotations

import numpy as np

from ..errors import ConfigError

# Bolukbasi et al. 2016's definitional pairs (female, male) for the gender direction
DEFINITIONAL_PAIRS = [("woman", "man"), ("girl", "boy"), ("she", "he"), ("mother", "father"),
                      ("daughter", "son"), ("gal", "guy"), ("female", "male"), ("her", "his"),
                      ("herself", "himself"), ("mary", "john")]


def hard_debias(model, gendered: set[str]) -> np.ndarray:
    """Bolukbasi et al. 2016, neutralize step: unit-normalise every vector, take the gender direction as the first
    principal component of the centred definitional pairs, and remove it from every word not in ``gendered``
    (the definitional words and the tests' target words). The equalize step is not applied."""
    k2i = model.vocab.key_to_index
    V = model.vectors / np.linalg.norm(model.vectors, axis=1, keepdims=True).clip(1e-12)
    diffs = []
    for f, m in DEFINITIONAL_PAIRS:
        if f in k2i and m in k2i:
            centre = (V[k2i[f]] + V[k2i[m]]) / 2
            diffs += [V[k2i[f]] - centre, V[k2i[m]] - centre]
    if len(diffs) < 4:
        raise ConfigError("hard-debias: fewer than 2 definitional gender pairs are in the vocabulary")
    g = np.linalg.svd(np.array(diffs), full_matrices=False)[2][0]
    keep = np.array([w in gendered or w in {x for p in DEFINITIONAL_PAIRS for x in p} for w in model.vocab.index_to_key])
    out = V - np.outer(V @ g, g)
    out[keep] = V[keep]
    return out
