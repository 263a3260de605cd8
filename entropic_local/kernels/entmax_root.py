"""α-entmax by root finding, for α = 1 (softmax) and general α in (1, 2): the safeguarded
Newton solve of ``S(ν) = Σ_i (1 + (α-1)(d_i - ν))_+^{1/(α-1)} = 1`` and the output pass
(the math: ``kernels/alpha_entmax.py``).

A "source" is an array ``x`` with a transform ``d_i = (x_i - off) · sc``: the raw float32
logits with ``(max z, 1/T)`` in the dense form, or gathered float64 ``d`` with ``(0, 1)``.
"""

from __future__ import annotations

import math

import numba
import numpy as np

from .fastmath import EXP2_MIN, F64_TINY, FASTMATH, LOG2E, exp2_precise, log2_precise

__all__ = ["solve_dense"]

_SOLVE_TOL = 1e-6  # |S - 1| at which the iteration stops (then one last Newton step)
_TAIL_EPS = 1e-17  # total mass bound of the entries left out of the iterations
_MAX_ITER = 200


@numba.njit(inline="always", error_model="numpy", fastmath=FASTMATH)
def _d(x, off, sc):
    return (np.float64(x) - off) * sc


@numba.njit(inline="always", error_model="numpy", fastmath=FASTMATH)
def _pow_e(w, e, w_min):
    """``w^e`` for ``w ≤ 1``, branch-free (so that the loops vectorise); exactly 0 when
    ``w ≤ w_min = 2^(-1023/e)`` (every ``w ≤ 0`` included): the exponent is set to -1023,
    where ``_exp2`` builds the bit pattern 0. Results below 2^-1022.5 flush to 0. (``w_min``
    is subnormal for α above 1.999, where ``_log2`` does not hold: hence the select, not a
    clamp of ``w`` at ``w_min``.)"""
    t = e * log2_precise(max(w, F64_TINY))
    return exp2_precise(max(t, EXP2_MIN) if w > w_min else EXP2_MIN)


@numba.njit(cache=True, error_model="numpy", fastmath=FASTMATH)
def _lse(x, n, off, sc):
    """ln Σ e^d over the source (softmax's log-partition, d ≤ 0 so no overflow)."""
    s0 = 0.0
    for i in range(n):
        s0 += exp2_precise(max(_d(x[i], off, sc) * LOG2E, EXP2_MIN))
    return math.log(s0)


@numba.njit(cache=True, error_model="numpy", fastmath=FASTMATH)
def _start(x, n, off, sc, a):
    """Starting point for ν and the number m of entries with d > -1/a, in one pass.

    ν is softmax's log-partition L = ln Σ e^d as α → 1; to first order in a = α-1
    (``log1p(a y)/a = y - a y²/2``), ``ν ≈ L - (a/2) E_q[(d - L)²]`` with q = softmax(d)
    (i.e. ``L - (a/2)(H² + V)``, q's entropy H and varentropy V). From there the log-Newton
    iteration needs 1 or 2 passes for α ≤ 1.01 and 3 for α ≈ 1.05 (4 or 5 from ν = 0).
    """
    s0 = 0.0
    s1 = 0.0
    s2 = 0.0
    m = 0
    lo = -1.0 / a
    for i in range(n):
        di = _d(x[i], off, sc)
        y = max(di, -745.0)  # -inf -> a finite value whose weight is exactly 0
        q = exp2_precise(max(y * LOG2E, EXP2_MIN))
        qy = q * y
        s0 += q
        s1 += qy
        s2 += qy * y
        m += di > lo
    lse = math.log(s0)
    m2 = s2 / s0 - 2.0 * lse * (s1 / s0) + lse * lse
    nu = lse - 0.5 * a * max(m2, 0.0)
    return max(nu, 0.0), m


@numba.njit(cache=True, error_model="numpy", fastmath=FASTMATH)
def _s_and_slope(x, n, off, sc, a, e, w_min, nu, cut):
    """One vectorised pass, with w = 1 + a(d - ν): S(ν) = Σ w^e, G = -S'(ν) = Σ w^(e-1),
    and the number of entries still worth keeping (w > w_min and d > cut). w^e is computed
    as w^(e-1)·w (an exp2 is cheaper than a division)."""
    s = 0.0
    g = 0.0
    keep = 0
    e1 = e - 1.0
    for i in range(n):
        di = _d(x[i], off, sc)
        w0 = 1.0 + a * (di - nu)
        ok = w0 > w_min
        w = max(w0, w_min)
        pw1 = exp2_precise(max(e1 * log2_precise(w), EXP2_MIN))
        pw1 = pw1 if ok else 0.0
        s += pw1 * w
        g += pw1
        keep += ok & (di > cut)
    return s, g, keep


@numba.njit(cache=True, error_model="numpy", fastmath=FASTMATH)
def _compact(x, n, off, sc, a, w_min, nu, cut, dst):
    """Branch-free stable compaction of the d values still worth keeping into dst (which
    may be x itself when off = 0, sc = 1); returns their number."""
    j = 0
    for i in range(n):
        di = _d(x[i], off, sc)
        dst[j] = di
        j += (1.0 + a * (di - nu) > w_min) & (di > cut)
    return j


@numba.njit(cache=True, error_model="numpy")
def _generic_nu(x, n, off, sc, alpha):
    """ν solving S(ν) = Σ (1 + a(d_i - ν))_+^e = 1 over the source, general α in (1, 2)
    (safeguarded Newton, module docstring). Returns (ν, number of passes)."""
    a = alpha - 1.0
    e = 1.0 / a
    w_min = math.pow(2.0, EXP2_MIN * a)  # _pow_e(w) == 0 for w <= w_min
    # entries with (1 + a d)^e < _TAIL_EPS/n can never matter to S: the compaction drops
    # them from the working set (they still get their exact value in the output)
    cut = -1.0 / a
    c2 = math.expm1(a * math.log(_TAIL_EPS / n)) / a  # (1 + a c2)^e == _TAIL_EPS/n
    if c2 > cut:
        cut = c2
    # bracket: S(0) >= 1 (the max has w = 1); S(hi) <= 1 at hi = (1 - m^-a)/a, m = the
    # number of entries that can be live (each has w <= m^-a there, so S <= m * 1/m)
    lo = 0.0
    nu, m = _start(x, n, off, sc, a)
    hi = -math.expm1(-a * math.log(max(m, 1))) / a
    if nu > hi:
        nu = hi
    work = np.empty(0)  # private float64 copy of the live d, made by the first compaction
    own = False
    w_n = n
    it = 0
    while True:
        it += 1
        if own:
            s, g, keep = _s_and_slope(work, w_n, 0.0, 1.0, a, e, w_min, nu, cut)
        else:
            s, g, keep = _s_and_slope(x, n, off, sc, a, e, w_min, nu, cut)
        if s >= 1.0:
            lo = nu
            if s - 1.0 <= _SOLVE_TOL or it >= _MAX_ITER:
                break
            if keep < w_n - (w_n >> 3):
                # entries dead at lo stay dead (ν only grows past lo): drop them
                if own:
                    w_n = _compact(work, w_n, 0.0, 1.0, a, w_min, nu, cut, work)
                else:
                    # sized n, not keep: the scalar count may round differently from the
                    # vectorised one (pages never written cost nothing)
                    work = np.empty(n)
                    w_n = _compact(x, n, off, sc, a, w_min, nu, cut, work)
                    own = True
        else:
            hi = nu
            if 1.0 - s <= _SOLVE_TOL or it >= _MAX_ITER:
                break
        nxt = 0.5 * (lo + hi)
        if s > 0.0 and g > 0.0:
            c = nu + s * math.log(s) / g  # Newton on log S
            if c > lo and c < hi:
                nxt = c
            else:
                c = nu + (s - 1.0) / g  # Newton on S
                if c > lo and c < hi:
                    nxt = c
        if nxt <= lo or nxt >= hi:
            break  # the bracket has collapsed to adjacent floats
        nu = nxt
    # one more Newton step for free: quadratic convergence takes |S - 1| <= 1e-6 to ~1e-13
    if s > 0.0 and g > 0.0 and s != 1.0:
        c = nu + s * math.log(s) / g
        if c > lo and c < hi:
            nu = c
    return nu, it


@numba.njit(cache=True, error_model="numpy", fastmath=FASTMATH)
def _write_generic(x, n, off, sc, a, e, w_min, nu, out):
    """out[i] = w_i^e (unnormalised); returns (Σ, #out > 0)."""
    tot = 0.0
    k = 0
    for i in range(n):
        v = _pow_e(1.0 + a * (_d(x[i], off, sc) - nu), e, w_min)
        out[i] = v
        tot += v
        k += out[i] > 0
    return tot, k


@numba.njit(cache=True, error_model="numpy", fastmath=FASTMATH)
def _write_softmax(x, n, off, sc, lse, out):
    """out[i] = e^(d_i - lse); returns (Σ, #out > 0)."""
    tot = 0.0
    k = 0
    for i in range(n):
        v = exp2_precise(max((_d(x[i], off, sc) - lse) * LOG2E, EXP2_MIN))
        out[i] = v
        tot += v
        k += out[i] > 0
    return tot, k


@numba.njit(cache=True, error_model="numpy", fastmath=FASTMATH)
def _rescale(out, n, c):
    k = 0
    for i in range(n):
        out[i] *= c
        k += out[i] > 0
    return k


@numba.njit(cache=True, error_model="numpy")
def solve_dense(x, n, off, sc, alpha, out):
    """out[:n] = entmax_α(d) over the source, for α = 1 or general α (not the sort-based
    1.5 / 2). Returns the support size (#out > 0)."""
    if alpha == 1.0:
        lse = _lse(x, n, off, sc)
        tot, k = _write_softmax(x, n, off, sc, lse, out)
    else:
        a = alpha - 1.0
        nu, _ = _generic_nu(x, n, off, sc, alpha)
        tot, k = _write_generic(x, n, off, sc, a, 1.0 / a, math.pow(2.0, EXP2_MIN * a),
                                nu, out)
    if abs(tot - 1.0) > 1e-13:  # normally |tot - 1| ~ 1e-15: no second pass
        k = _rescale(out, n, 1.0 / tot)
    return k
