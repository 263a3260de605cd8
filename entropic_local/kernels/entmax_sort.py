"""α-entmax of gathered survivors: the exact sort-based solvers of Peters, Niculae and
Martins (2019), as in deep-spin/entmax, for sparsemax (α = 2) and entmax15 (α = 1.5); the
root-finding solver for any other α.

sparsemax: sort the survivors descending ``s``; ``K = max{k: k s_k > Σ_{j≤k} s_j - 1}``;
``τ = (Σ_{j≤K} s_j - 1)/K``; ``p = [d - τ]_+``.

entmax15: ``x = d/2`` sorted descending; with ``μ_k``, ``m2_k`` the mean and mean square of
the top k, ``δ_k = (1 - k (m2_k - μ_k²))/k``, ``τ_k = μ_k - sqrt(max(δ_k, 0))``;
``K = #{k: τ_k ≤ s_k}``; ``p = [x - τ_K]_+²``.
"""

from __future__ import annotations

import math

import numba
import numpy as np

from .entmax_root import solve_dense

__all__ = ["solve_survivors"]


@numba.njit(cache=True, error_model="numpy")
def _sparsemax_d(d, p):
    m = d.size
    s = np.sort(d)  # ascending: s[m-k] is the k-th largest
    cs = 0.0
    csk = 0.0
    kk = 0
    for k in range(1, m + 1):
        v = s[m - k]
        cs += v
        if k * v > cs - 1.0:
            kk = k
            csk = cs
    tau = (csk - 1.0) / kk
    tot = 0.0
    for i in range(m):
        v = d[i] - tau
        v = v if v > 0.0 else 0.0
        p[i] = v
        tot += v
    inv = 1.0 / tot
    for i in range(m):
        p[i] *= inv


@numba.njit(cache=True, error_model="numpy")
def _entmax15_d(d, p):
    m = d.size
    s = np.sort(d)
    cs = 0.0
    cs2 = 0.0
    kk = 0
    taus = np.empty(m)
    for k in range(1, m + 1):
        x = 0.5 * s[m - k]
        cs += x
        cs2 += x * x
        mu = cs / k
        ss = k * (cs2 / k - mu * mu)
        delta = (1.0 - ss) / k
        tau = mu - math.sqrt(delta if delta > 0.0 else 0.0)
        taus[k - 1] = tau
        if tau <= x:
            kk += 1
    tau = taus[kk - 1]
    tot = 0.0
    for i in range(m):
        v = 0.5 * d[i] - tau
        v = v * v if v > 0.0 else 0.0
        p[i] = v
        tot += v
    inv = 1.0 / tot
    for i in range(m):
        p[i] *= inv


@numba.njit(cache=True, error_model="numpy")
def solve_survivors(d, alpha, p):
    """p = entmax_α over gathered survivors d (float64, max(d) == 0), normalised."""
    if d.size == 1:
        p[0] = 1.0
    elif alpha == 2.0:
        _sparsemax_d(d, p)
    elif alpha == 1.5:
        _entmax15_d(d, p)
    else:
        solve_dense(d, d.size, 0.0, 1.0, alpha, p)
