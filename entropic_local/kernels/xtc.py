"""XTC, "exclude top choices" (p-e-w's sampler as llama.cpp has it): when it fires, remove
every token whose probability is at least ``threshold`` except the least likely of them.

With ``p = softmax(z[:n])`` and ``c = #{i: p_i ≥ threshold}`` (the top ``c`` tokens by
probability): when ``c ≥ 2`` and ``n − (c − 1) ≥ min_keep`` the ``c − 1`` most likely tokens
are dropped; otherwise nothing changes. Whether it fires (llama.cpp: a uniform draw ``≤
probability``) is the caller's decision. ``n < 2`` changes nothing. Survivors keep their
order; masked (``-inf``) entries count as candidates of probability 0 (as in llama.cpp).

Probabilities are exact (float64 log-partition); llama.cpp compares float32 probabilities
normalised by a sequential float32 sum, which can put a token within ~1e-7 of the threshold
on the other side. Among tied logits at the cut the later position is the one kept.
Returns ``(n, removed)``.
"""

from __future__ import annotations

import math

import numba
import numpy as np

from .fastmath import LOG2E
from .stats import checked_max, weight_sum


@numba.njit(cache=True)
def xtc(ids, logits, n, threshold, min_keep):
    """Apply XTC to ``ids[:n], logits[:n]`` in place (it has fired); returns (new n, removed)."""
    if n < 2:
        return n, 0
    zmax = checked_max(logits, n)
    if zmax == np.inf:
        return n, 0
    log_z = zmax + math.log(weight_sum(logits, n, zmax, LOG2E))
    # p_i >= threshold  <=>  z_i >= log_z + ln(threshold)
    cut = -np.inf if threshold <= 0.0 else log_z + math.log(threshold)
    c = 0
    low = np.inf
    low_i = -1
    for i in range(n):
        z = np.float64(logits[i])
        # a masked token (p = 0) is never one of the top choices, even at threshold 0
        if z > -np.inf and (threshold <= 0.0 or (z >= cut and math.exp(z - log_z) >= threshold)):
            c += 1
            if z <= low:
                low = z
                low_i = i
    if c < 2 or n - (c - 1) < max(min_keep, 1):
        return n, 0
    j = 0
    for i in range(n):
        z = np.float64(logits[i])
        above = z > -np.inf and (threshold <= 0.0 or (z >= cut and math.exp(z - log_z) >= threshold))
        if above and i != low_i:
            continue
        ids[j] = ids[i]
        logits[j] = logits[i]
        j += 1
    return j, c - 1
