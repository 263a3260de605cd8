"""The exact candidate filter of α-entmax: one max pass over the float32 logits (block
maxima, NaN check) gives the threshold ``max z - T/(α-1)`` below which every probability is
exactly 0; counting and gathering the survivors then visit only the blocks that hold one.
"""

from __future__ import annotations

import numba
import numpy as np

from .entmax_sort import solve_survivors
from .fastmath import ABS_INF_BITS, FASTMATH, KEY_MIN, KEY_NEG_INF, f32_bits, key, key_value

__all__ = ["BLOCK", "scan", "gather", "use_dense", "sparse_probs", "check_params", "entmax_support_window"]

BLOCK = 128  # entries per block of the max pass (block maxima drive the gather)


@numba.njit(cache=True, error_model="numpy", fastmath=FASTMATH)
def _block_max(z, n, bmax):
    """Max key of each block of ``BLOCK`` entries of z[:n] into bmax; returns (max key,
    max |bits|)."""
    nb = (n + BLOCK - 1) // BLOCK
    gk = KEY_MIN
    ma = np.int32(0)
    nfull = n // BLOCK
    for b in range(nfull):
        base = b * BLOCK
        mk = KEY_MIN
        for j in range(BLOCK):
            x = z[base + j]
            mk = max(mk, key(x))
            ma = max(ma, np.int32(f32_bits(x) & np.int32(0x7FFFFFFF)))
        bmax[b] = mk
        gk = max(gk, mk)
    if nfull < nb:
        mk = KEY_MIN
        for i in range(nfull * BLOCK, n):
            x = z[i]
            mk = max(mk, key(x))
            ma = max(ma, np.int32(f32_bits(x) & np.int32(0x7FFFFFFF)))
        bmax[nfull] = mk
        gk = max(gk, mk)
    return gk, ma


@numba.njit(cache=True, error_model="numpy")
def check_params(alpha, temperature):
    if not (alpha >= 1.0 and alpha <= 2.0):
        raise ValueError("alpha must be in [1, 2]")
    if not (temperature > 0.0 and temperature < np.inf and 1.0 / temperature < np.inf):
        raise ValueError("temperature must be positive and finite")


@numba.njit(cache=True, error_model="numpy")
def entmax_support_window(alpha, temperature):
    """Width ``T/(α-1)`` of the exact candidate filter, in raw logits: every logit
    ``z_i ≤ max z - T/(α-1)`` has probability exactly 0 under ``entmax_α(z/T)``
    (``inf`` for α = 1, softmax). A sampler may truncate to this window before calling
    ``entmax_candidates`` without changing the result."""
    check_params(alpha, temperature)
    if alpha == 1.0:
        return np.inf
    return temperature / (alpha - 1.0)


@numba.njit(cache=True, error_model="numpy")
def _f32_at_or_below(x):
    """Largest float32 ≤ x (float64), as float32 (x finite or -inf)."""
    f = np.float32(x)
    if np.float64(f) > x:
        f = np.nextafter(f, np.float32(-np.inf))
    return f


@numba.njit(cache=True, error_model="numpy", fastmath=FASTMATH)
def _count_above(z, n, thr, kthr, bmax):
    """#{i < n: z_i > thr}, visiting only the blocks whose max is above thr."""
    c = 0
    nfull = n // BLOCK
    for b in range(nfull):
        if bmax[b] > kthr:
            base = b * BLOCK
            cb = np.int32(0)
            for j in range(BLOCK):  # fixed trip count: vectorises
                cb += z[base + j] > thr
            c += cb
    for i in range(nfull * BLOCK, n):
        c += z[i] > thr
    return c


@numba.njit(cache=True, error_model="numpy")
def scan(z, n, alpha, temperature, bmax):
    """Validate, max pass (block maxima into bmax), exact filter threshold and survivor count.

    Returns (zmax, thr, kthr, c): thr is a float32 at or below ``max z - T/(α-1)`` (every
    entry that can have p > 0 has z > thr; -inf for α = 1), kthr its key, c the number of
    entries with z > thr (for zmax = +inf: the number of +inf entries).
    """
    check_params(alpha, temperature)
    if n < 1:
        raise ValueError("no candidates (n < 1)")
    if n > z.shape[0]:
        raise ValueError("n is larger than the buffer")
    gk, ma = _block_max(z, n, bmax)
    if ma > ABS_INF_BITS:
        raise ValueError("NaN in logits")
    if gk == KEY_NEG_INF:
        raise ValueError("all logits are masked")
    zmax = np.float64(key_value(gk))
    if zmax == np.inf:
        thr = np.float32(np.inf)
        c = 0
        for i in range(n):
            c += z[i] == np.inf
        return zmax, thr, key(thr), c
    if alpha == 1.0:
        # no filter: softmax always takes the dense path, which needs no count
        thr = np.float32(-np.inf)
        return zmax, thr, key(thr), n
    thr = _f32_at_or_below(zmax - temperature / (alpha - 1.0))
    below_max = np.nextafter(np.float32(zmax), np.float32(-np.inf))
    if thr > below_max:  # a window narrower than one float32 step: keep the max itself
        thr = below_max
    # z > thr  <=>  key(z) > key(thr) (up to -0/+0, which only flags a block needlessly)
    kthr = key(thr)
    return zmax, thr, kthr, _count_above(z, n, thr, kthr, bmax)


@numba.njit(cache=True, error_model="numpy")
def gather(z, n, zmax, temperature, thr, kthr, bmax, c):
    """Indices (ascending) and d = (z - max)/T of the c entries with z > thr; for
    zmax = +inf, the +inf entries (d = 0)."""
    idx = np.empty(c, np.int64)
    d = np.empty(c)
    j = 0
    if zmax == np.inf:
        for i in range(n):
            if z[i] == np.inf:
                idx[j] = i
                d[j] = 0.0
                j += 1
        return idx, d
    inv_t = 1.0 / temperature
    for b in range(bmax.size):
        if bmax[b] > kthr:
            for i in range(b * BLOCK, min(n, (b + 1) * BLOCK)):
                x = z[i]
                if x > thr:
                    idx[j] = i
                    d[j] = (np.float64(x) - zmax) * inv_t
                    j += 1
    return idx, d


@numba.njit(cache=True, error_model="numpy")
def use_dense(alpha, c, n, zmax):
    """Solve over the whole vector in place of gathering the survivors: when most entries
    survive (α near 1), for softmax and general α (the sort-based forms always gather)."""
    return zmax < np.inf and alpha != 2.0 and alpha != 1.5 and c > (n >> 1)


@numba.njit(cache=True, error_model="numpy")
def sparse_probs(z, n, zmax, alpha, temperature, thr, kthr, bmax, c):
    idx, d = gather(z, n, zmax, temperature, thr, kthr, bmax, c)
    p = np.empty(c)
    if zmax == np.inf:
        p[:] = 1.0 / c  # +inf entries share all the mass
    else:
        solve_survivors(d, alpha, p)
    return idx, p
