"""The measures of Martins, Marinho, Martins, "Sparse Text Generation" (EMNLP 2020) for a
distribution ``p`` scored against the gold next token ``y`` (notes §3):

* **ε-perplexity** ``exp(-mean_t log((p_t(y_t) + ε) / (1 + |V| ε)))``, ``|V|`` the model's
  vocabulary size: perplexity that stays finite when a truncating sampler gives the gold
  token probability 0;
* **sparsemax score** ``p_y + ½ (1 - ‖p‖²)`` (higher is better; 1 for a one-hot on the
  gold token, ½(1 - 1/|V|) for uniform with the gold excluded);
* **Jensen-Shannon divergence** between ``p`` and the one-hot of ``y`` (natural log, in
  [0, ln 2]; lower is better). With ``m = (p + e_y)/2`` it depends on ``p_y`` alone::

      JS = ½ [(1 - p_y) ln 2 + p_y ln(2 p_y / (1 + p_y))] + ½ ln(2 / (1 + p_y)).
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["js_onehot", "js_divergence", "sparsemax_score", "epsilon_perplexity", "DEFAULT_EPSILON"]

DEFAULT_EPSILON = 1e-6


def js_onehot(p_gold: float) -> float:
    """Jensen-Shannon divergence (nats) between a distribution giving the gold token
    ``p_gold`` and the one-hot on the gold token (closed form, see the module doc)."""
    p = min(max(float(p_gold), 0.0), 1.0)
    kl_pm = (1.0 - p) * math.log(2.0) + (p * math.log(2.0 * p / (1.0 + p)) if p > 0 else 0.0)
    kl_em = math.log(2.0 / (1.0 + p))
    return max(0.0, 0.5 * (kl_pm + kl_em))


def js_divergence(p: np.ndarray, q: np.ndarray) -> float:
    """Jensen-Shannon divergence (nats) between two probability vectors of equal length
    (general form, ``0 log 0 = 0``)."""
    p = np.asarray(p, dtype=np.float64)
    q = np.asarray(q, dtype=np.float64)
    m = 0.5 * (p + q)

    def kl(a: np.ndarray) -> float:
        nz = a > 0
        return float(np.sum(a[nz] * np.log(a[nz] / m[nz])))

    return max(0.0, 0.5 * (kl(p) + kl(q)))


def sparsemax_score(probs: np.ndarray, p_gold: float) -> float:
    """``p_y + ½ (1 - ‖p‖²)`` for one position (``probs``: the non-zero probabilities, or
    all of them; ``p_gold``: the gold token's probability)."""
    probs = np.asarray(probs, dtype=np.float64)
    return float(p_gold) + 0.5 * (1.0 - float(np.dot(probs, probs)))


def epsilon_perplexity(p_gold: "np.ndarray | list[float]", vocab_size: int,
                       epsilon: float = DEFAULT_EPSILON) -> float:
    """``exp(-mean log((p_y + ε) / (1 + |V| ε)))`` over positions."""
    p = np.asarray(p_gold, dtype=np.float64)
    if p.size == 0:
        raise ValueError("no positions to score")
    return float(np.exp(-np.mean(np.log((p + epsilon) / (1.0 + vocab_size * epsilon)))))
