"""Softmax of a candidate set: ``p_i = e^{z_i - m} / sum_j e^{z_j - m}``, ``m = max z``.

Returns ``log Z = m + ln sum_j e^{z_j - m}``. One vectorised max pass over the int32 keys of
the logits, one vectorised pass of the shared branch-free exponential (``stats.exp2``) that
writes the unnormalised weights and sums them in float64, one scaling pass.

``-inf`` (masked) gets probability exactly 0. ``+inf`` logits share all the mass equally
(``log Z = +inf``). NaN raises ``ValueError("NaN in logits")``; all ``-inf`` raises
``ValueError("all logits are masked")``.
"""

from __future__ import annotations

import math

import numba
import numpy as np

from .fastmath import FASTMATH, LOG2E
from .stats import checked_max, weight


@numba.njit(cache=True, fastmath=FASTMATH)
def _fill_weights(logits, n, zmax, out):
    s = 0.0
    for i in range(n):
        e = weight(logits[i], zmax, LOG2E)
        out[i] = e
        s += e
    return s


@numba.njit(cache=True, fastmath=FASTMATH)
def _scale(out, n, c):
    for i in range(n):
        out[i] = out[i] * c


@numba.njit(cache=True)
def softmax(logits, n, out):
    """Write softmax(logits[:n]) into out[:n] (float32 or float64); return log Z (float64)."""
    zmax = checked_max(logits, n)
    if out.shape[0] < n:
        raise ValueError("out is shorter than n")
    if zmax == np.inf:
        c = 0
        for i in range(n):
            c += logits[i] == np.inf
        q = 1.0 / c
        for i in range(n):
            out[i] = q if logits[i] == np.inf else 0.0
        return np.inf
    s = _fill_weights(logits, n, zmax, out)
    _scale(out, n, 1.0 / s)
    return zmax + math.log(s)
