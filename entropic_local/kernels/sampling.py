"""Selection: ``argmax`` and inverse-CDF ``sample_categorical``.

``sample_categorical(logits, n, u)`` returns the index ``i`` (into the live entries, not a
token id) with ``sum_{j<i} p_j <= u < sum_{j<=i} p_j``, ``p = softmax(logits[:n])`` taken in the
live order (no sorting), for a uniform ``u`` in [0, 1) drawn by the caller. Implemented
without a scratch buffer of size n: one vectorised pass computes the weights'
sums per chunk of 1024 entries, the crossing chunk is found from the chunk sums, and only
that chunk is scanned entry by entry. Masked (``-inf``) entries have weight exactly 0 and
are never returned; ``u`` close to 1 returns the last entry of positive weight (never an
out-of-range or masked index). If some logits are ``+inf`` they share all the mass equally
(the ``floor(u * count)``-th of them is returned).

``argmax(logits, n)`` is the first index of the largest logit.

NaN raises ``ValueError("NaN in logits")``; all ``-inf`` raises
``ValueError("all logits are masked")``.
"""

from __future__ import annotations

import numba
import numpy as np

from .fastmath import FASTMATH, LOG2E
from .stats import checked_max, weight

CHUNK = 1024


@numba.njit(cache=True)
def argmax(logits, n):
    """First index of the largest of logits[:n] (int)."""
    m = np.float32(checked_max(logits, n))
    lo = 0
    while lo < n:
        hi = min(lo + CHUNK, n)
        if _count_eq(logits[lo:hi], m) > 0:
            for i in range(lo, hi):
                if logits[i] == m:
                    return i
        lo = hi
    return 0  # unreachable


@numba.njit(cache=True, fastmath=FASTMATH)
def _sum_weights(xs, zmax):
    s = 0.0
    for i in range(xs.shape[0]):
        s += weight(xs[i], zmax, LOG2E)
    return s


@numba.njit(cache=True, fastmath=FASTMATH)
def _count_eq(xs, v):
    c = 0
    for i in range(xs.shape[0]):
        c += xs[i] == v
    return c


@numba.njit(cache=True, fastmath=FASTMATH)
def _chunk_sums(logits, n, zmax, sums):
    nch = sums.shape[0]
    for c in range(nch):
        lo = c * CHUNK
        hi = min(lo + CHUNK, n)
        sums[c] = _sum_weights(logits[lo:hi], zmax)


@numba.njit(cache=True)
def sample_categorical(logits, n, u):
    """Index i with probability softmax(logits[:n])_i, by inverse CDF at u in [0, 1)."""
    if not (u >= 0.0 and u < 1.0):
        raise ValueError("u must be in [0, 1)")
    zmax = checked_max(logits, n)
    if zmax == np.inf:
        c = 0
        for i in range(n):
            c += logits[i] == np.inf
        j = min(int(u * c), c - 1)
        for i in range(n):
            if logits[i] == np.inf:
                if j == 0:
                    return i
                j -= 1
        return 0  # unreachable
    nch = (n + CHUNK - 1) // CHUNK
    sums = np.empty(nch, dtype=np.float64)
    _chunk_sums(logits, n, zmax, sums)
    total = 0.0
    for c in range(nch):
        total += sums[c]
    target = u * total
    # the chunk where the cumulative sum first exceeds target (else the last non-empty one)
    cum = 0.0
    pick = -1
    last_nonempty = -1
    for c in range(nch):
        if sums[c] > 0.0:
            last_nonempty = c
            if cum + sums[c] > target:
                pick = c
                break
            cum += sums[c]
    if pick < 0:
        pick = last_nonempty
        cum = 0.0
        for c in range(pick):
            cum += sums[c]
    lo = pick * CHUNK
    hi = min(lo + CHUNK, n)
    last_pos = -1
    for i in range(lo, hi):
        e = weight(logits[i], zmax, LOG2E)
        if e > 0.0:
            last_pos = i
            cum += e
            if cum > target:
                return i
    return last_pos
