"""Adaptive-p (llama.cpp's ``adaptive_p``): reshape the distribution to favour tokens whose
probability is near a moving target, then sample from it.

With ``p = softmax(z[:n])`` and the step's adapted target ``a``, every unmasked logit becomes::

    d = |p_i − a| / 0.3,    z_i ← 5 − 10 · d² / (1 + d)

quadratic near the target, linear in the tails; masked (``-inf``) logits stay masked.
The original probabilities are written to ``orig[:n]`` (the EMA of the chosen token's
original probability needs them). Probabilities are exact (float64); llama.cpp's are
float32 with a float32 sum, so its transformed logits differ in the last bits.
"""

from __future__ import annotations

import math

import numba
import numpy as np

from .fastmath import LOG2E
from .stats import checked_max, weight_sum

WIDTH = 0.3
PEAK = 5.0
SHARPNESS = 10.0


@numba.njit(cache=True)
def adaptive_p_transform(logits, n, target, orig):
    """Transform ``logits[:n]`` in place for adapted target ``target``; ``orig[:n]`` gets
    the probabilities before the transform."""
    zmax = checked_max(logits, n)
    if zmax == np.inf:
        c = 0
        for i in range(n):
            c += logits[i] == np.inf
        for i in range(n):
            orig[i] = 1.0 / c if logits[i] == np.inf else 0.0
    else:
        log_z = zmax + math.log(weight_sum(logits, n, zmax, LOG2E))
        for i in range(n):
            z = logits[i]
            orig[i] = 0.0 if z == -np.inf else math.exp(np.float64(z) - log_z)
    inv = 1.0 / WIDTH
    for i in range(n):
        if logits[i] == -np.inf:
            continue
        d = abs((orig[i] - target) * inv)
        logits[i] = np.float32(PEAK - SHARPNESS * d * d / (1.0 + d))
