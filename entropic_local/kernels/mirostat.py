"""Mirostat (Basu et al. 2021) as llama.cpp has it: the truncations that hold the observed
surprise near a target ``tau`` (bits), given the running ``mu``.

v1 (``mirostat_v1_k``): with the candidates sorted by probability, estimate the Zipf
exponent from the top ``m`` of them::

    s = Σ t_i b_i / Σ t_i²,   t_i = ln((i+2)/(i+1)),   b_i = ln(p_i / p_{i+1}) = z_i − z_{i+1}

over ``i < min(m − 1, n − 1)``; then ``ε = s − 1`` and the kept count is
``k = ⌊((ε · 2^mu) / (1 − N^(−ε)))^(1/s)⌋`` (at least 1), ``N`` the vocabulary size.

v2 (``mirostat_v2_cut``): keep the tokens whose surprise ``−log2 p_i`` is at most ``mu``
(the most likely one when none is), order preserved.

Exact arithmetic (float64, ``b_i`` from the logits, where it is exact: ``p_i/p_{i+1}`` cancels
the normaliser); llama.cpp computes the same in float32 (``powf``, float32 probabilities),
and its ``int(k)`` of an overflowed ``k`` (``inf``) is undefined behaviour (1 on x86); here
an infinite or NaN-free huge ``k`` keeps every candidate. Pairs with a masked (``-inf``)
second entry end the estimate (llama.cpp divides by a zero probability there).
"""

from __future__ import annotations

import math

import numba
import numpy as np

from .fastmath import LOG2E
from .selection import top_sorted
from .stats import checked_max, weight_sum


@numba.njit(cache=True)
def mirostat_v1_k(logits, n, mu, m, n_vocab):
    """The number of candidates mirostat v1 keeps (1..n) for this ``mu``; and ``s``."""
    if n < 2 or m < 2:
        return 1 if n >= 1 else 0, np.nan
    hv, hp, found = top_sorted(logits, n, m)
    num = 0.0
    den = 0.0
    for i in range(min(m - 1, found - 1)):
        a = np.float64(hv[i])
        b = np.float64(hv[i + 1])
        if b == -np.inf or a == np.inf:
            break
        t = math.log((i + 2.0) / (i + 1.0))
        num += t * (a - b)
        den += t * t
    if den == 0.0:
        return 1, np.nan
    s = num / den
    eps = s - 1.0
    if s <= 0.0:  # a flat top: no Zipf decay to cut by
        return n, s
    denom = 1.0 - math.pow(float(n_vocab), -eps)
    if denom == 0.0:
        return n, s
    base = eps * math.pow(2.0, mu) / denom
    if not base > 0.0:
        return 1, s
    lk = math.log(base) / s
    if lk >= math.log(float(n)):
        return n, s
    k = int(math.exp(lk))
    return max(1, min(k, n)), s


@numba.njit(cache=True)
def mirostat_v2_cut(ids, logits, n, mu):
    """Keep the candidates with ``−log2 p ≤ mu`` (at least the most likely), in order;
    returns the new n."""
    zmax = checked_max(logits, n)
    if zmax == np.inf:
        return n
    log_z = zmax + math.log(weight_sum(logits, n, zmax, LOG2E))
    # -log2 p <= mu  <=>  z >= log_z - mu ln 2
    thr = log_z - mu * math.log(2.0)
    j = 0
    best = -1
    for i in range(n):
        z = np.float64(logits[i])
        if z == zmax and best < 0:
            best = i
        if z >= thr and z > -np.inf:
            ids[j] = ids[i]
            logits[j] = logits[i]
            j += 1
    if j == 0:
        ids[0] = ids[best]
        logits[0] = logits[best]
        j = 1
    return j
