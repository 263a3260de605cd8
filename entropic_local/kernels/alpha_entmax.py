"""α-entmax, sparsemax and entmax15 over a logit vector: numba kernels.

Reference: B. Peters, V. Niculae, A. F. T. Martins, "Sparse Sequence-to-Sequence Models",
ACL 2019 (https://github.com/deep-spin/entmax); sampling from it: P. H. Martins, Z. Marinho,
A. F. T. Martins, "Sparse Text Generation", EMNLP 2020.

Definition. With logits ``z``, temperature ``T > 0`` and ``α ∈ [1, 2]``::

    entmax_α(z/T)_i = [(α-1) z_i/T - τ]_+ ^ (1/(α-1)),     τ such that Σ_i p_i = 1.

α = 1 is softmax (the limit, special-cased: exactly ``α == 1.0``), α = 2 is sparsemax and
α = 1.5 is entmax15; both have exact sort-based forms, used here for exactly 2.0 and 1.5.

Working variables. ``d_i = (z_i - max z)/T ≤ 0`` (logit units, float64), ``a = α-1``,
``e = 1/a``. Writing ``τ = a·(max z/T) - 1 + a·ν``, the solution is::

    p_i = w_i^e,   w_i = [1 + a (d_i - ν)]_+,   S(ν) = Σ_i w_i^e = 1.

``ν`` is in logit units and tends to softmax's log-partition ``ln Σ e^d`` as α → 1
(``w^e = exp(log1p(a(d - ν))/a) → e^{d - ν}``), so the solve behaves the same for α close to
1 as for α = 2. ``S`` is decreasing and convex in ``ν`` (``e ≥ 1``); ``S(0) ≥ 1`` (the max
has ``w = 1``) and ``S(ν_hi) ≤ 1`` at ``ν_hi = (1 - m^{-a})/a ≤ ln m`` for ``m`` candidates
(the notes' bracket ``τ_lo = max X - 1``, ``τ_hi = max X - (1/m)^{α-1}``, in these units).

Exact candidate filter (always first). ``ν ≥ 0`` gives ``p_i = 0`` whenever
``d_i ≤ -1/(α-1)``, i.e. ``z_i ≤ max z - T/(α-1)``: one logit for sparsemax, two for
entmax15, ten for α = 1.1. The max pass (vectorised over monotone int32 keys of the
float32 bits, NaN check included) also records per-block maxima, so counting and gathering
the survivors only visits blocks that hold one. On Gemma 3 logits (262,144 entries) 1 to
25 entries survive at α = 1.5, 10 to 1,500 at α = 1.1; at α ≤ 1.05 most of the vocabulary
does.

Two layouts. Few survivors (always for the sort-based α = 1.5 and 2): they are gathered
(indices + float64 d) and solved alone, then scattered into the zeroed output. More than
half surviving (α near 1; softmax always): the passes run over the float32 logits directly,
with d computed on the fly and the filtered entries giving w ≤ 0, and the last pass writes
the output in place (no gather, no scatter).

Root finding (general α). Safeguarded Newton on ``ν`` with a bracket ``[lo, hi]``,
``S(lo) ≥ 1 ≥ S(hi)``. Start: ``ν0 = L - (a/2) E_q[(d - L)²]``, ``L = ln Σ e^d``,
``q = softmax(d)`` (first order in a; one cheap exp pass). Step: Newton on ``log S``
(exact for a softmax-like S, hence few steps near α = 1), else Newton on ``S``, else
bisection, whichever first lands strictly inside the bracket; ``S' = -Σ w^{e-1}`` comes
from the same pass. Entries with ``w`` dead at ``lo`` can never re-enter the support and are
compacted away once an eighth of the working set is dead, as are entries whose
``p ≤ (1 + a d_i)^e`` is below ``1e-17/n`` (they cannot move S; they still get their exact
value in the output). Stop at ``|S - 1| ≤ 1e-6``, then take one more Newton step without
evaluating (quadratic convergence: ~1e-13) and write ``w^e`` normalised by the output pass's
own sum. Typically 1 to 4 passes (plus the start and the output pass).

Powers. ``w^e = 2^{e·log2 w}`` with a branch-free float64 ``log2`` (exponent bits +
atanh series, abs. error 3e-16) and ``exp2`` (rint + degree-10 polynomial + exponent bits,
rel. error 7e-16) so that LLVM vectorises every pass (numba has no vector libm without
SVML). ``w ≤ w_min = 2^{-1023/e}`` (every w ≤ 0 included) gives exactly 0: probabilities
below 2^-1022.5 (~1e-308) are flushed to 0 and are outside the reported support.

sparsemax (α = 2): sort the survivors descending ``s``;
``K = max{k: k s_k > Σ_{j≤k} s_j - 1}``; ``τ = (Σ_{j≤K} s_j - 1)/K``; ``p = [d - τ]_+``.

entmax15 (α = 1.5): ``x = d/2`` sorted descending; with ``μ_k``, ``m2_k`` the mean and mean
square of the top k, ``δ_k = (1 - k (m2_k - μ_k²))/k``, ``τ_k = μ_k - sqrt(max(δ_k, 0))``;
``K = #{k: τ_k ≤ s_k}``; ``p = [x - τ_K]_+²``.

softmax (α = 1): ``p = e^{d} / Σ e^{d}`` over all finite entries.

Special values (same conventions as ``stats``): ``-inf`` is a mask (``p = 0`` exactly, the
rest is the entmax of the unmasked entries); NaN raises ``ValueError("NaN in logits")``; all
``-inf`` raises ``ValueError("all logits are masked")``. ``+inf`` logits take ALL the mass,
shared equally among them (the limit of a logit growing without bound; for several ``+inf``
the equal split is the symmetric choice), every finite entry gets 0. ``α`` outside [1, 2] or
NaN, and ``T`` not in (0, inf), raise ``ValueError``.

Support size. Every kernel returns ``k``, the number of entries with a strictly positive
output (in the output's dtype: a probability that underflows the output dtype counts as 0, so
the returned support always matches the exact zeros of the output).

Precision. All arithmetic on the survivors is float64; results agree with the float64
numpy references (``entmax_reference``) to ~1e-13 absolute, and the output sums to 1 up to
the rounding of its dtype.

Inputs. ``z``/``logits`` must be float32 (the max pass works on float32 bits); ``out`` /
``probs`` float32 or float64; α and T Python floats (ints compile a separate
specialisation). ``T`` must be positive, finite and have a finite reciprocal.

Cost (one core, 262,144 Gemma 3 logits, float32 out): ~0.06 to 0.2 ms for α ≥ 1.1 (the
floor is the max pass plus zeroing the output), ~0.55 ms for softmax, ~2.7 ms for
α ∈ [1.001, 1.05] where most of the vocabulary is in the support. See ``entmax_bench``.
"""

from __future__ import annotations

import math

import numba
import numpy as np

# The float bit casts and monotone int32 keys (a max over int keys vectorises; NaN shows up as
# |bits| > bits(inf) in the same pass) are shared with the statistics kernels.
from .stats import ABS_INF_BITS as _ABS_INF_BITS
from .stats import KEY_MIN as _KEY_MIN
from .stats import KEY_NEG_INF as _KEY_NEG_INF
from .stats import bits_f64 as _bits_f64
from .stats import f32_bits as _f32_bits
from .stats import f64_bits as _f64_bits
from .stats import key as _key
from .stats import key_value as _key_value

# fastmath without 'nnan'/'ninf': -inf is our mask and must keep IEEE semantics.
FASTMATH = {"reassoc", "contract", "arcp", "nsz"}

_BLOCK = 128  # entries per block of the max pass (block maxima drive the gather)
_SOLVE_TOL = 1e-6  # |S - 1| at which the iteration stops (then one last Newton step)
_TAIL_EPS = 1e-17  # total mass bound of the entries left out of the iterations
_MAX_ITER = 200

__all__ = [
    "entmax", "sparsemax", "entmax15", "softmax_dense", "entmax_candidates",
    "entmax_support_window",
]


# ---------------------------------------------------------------------------------------------
# vectorisable float64 log2 / exp2 (numba has no vector libm without Intel's SVML)


_LOG2E = 1.4426950408889634
_TWO_OVER_LN2 = 2.8853900817779268  # 2/ln 2
_SQRT2 = 1.4142135623730951
_EXP2_MIN = -1023.0  # _exp2(-1023) == 0.0 exactly (zero exponent bits, f = 0)
_F64_TINY = 2.2250738585072014e-308  # smallest normal float64 (_log2 needs a normal number)
# 2^f on [-1/2, 1/2] = 1 + f (c1 + f (c2 + ...)): weighted least squares on Chebyshev
# nodes, max relative error 7e-16.
_E1 = 0.6931471805599501
_E2 = 0.24022650695909198
_E3 = 0.05550410866445987
_E4 = 0.009618129107938038
_E5 = 0.0013333558228377426
_E6 = 0.0001540353004244619
_E7 = 1.5252658223142696e-05
_E8 = 1.3215632569136566e-06
_E9 = 1.0208517561802208e-07
_E10 = 7.041399329453762e-09


@numba.njit(inline="always", error_model="numpy", fastmath=FASTMATH)
def _exp2(t):
    """2^t for t in [-1023, ~1]: rint range reduction, degree-10 polynomial, 2^k from bits
    (k = -1023 gives the bit pattern of 0.0: results below 2^-1022.5 are exactly 0)."""
    kf = np.rint(t)
    f = t - kf
    q = _E10
    q = q * f + _E9
    q = q * f + _E8
    q = q * f + _E7
    q = q * f + _E6
    q = q * f + _E5
    q = q * f + _E4
    q = q * f + _E3
    q = q * f + _E2
    q = q * f + _E1
    q = q * f + 1.0
    return q * _bits_f64((np.int64(kf) + np.int64(1023)) << np.int64(52))


@numba.njit(inline="always", error_model="numpy", fastmath=FASTMATH)
def _log2(w):
    """log2(w) for a positive normal float64: w = 2^k m, m in [1/sqrt2, sqrt2),
    ln m = 2 atanh(u), u = (m-1)/(m+1) (|u| ≤ 0.1716; 10 terms: abs error 3e-16)."""
    b = _f64_bits(w)
    k = (b >> np.int64(52)) - np.int64(1023)
    m = _bits_f64((b & np.int64(0x000FFFFFFFFFFFFF)) | np.int64(0x3FF0000000000000))
    big = m > _SQRT2
    m = m * 0.5 if big else m
    kf = np.float64(k) + (1.0 if big else 0.0)
    u = (m - 1.0) / (m + 1.0)
    u2 = u * u
    q = 1.0 / 19.0
    q = q * u2 + 1.0 / 17.0
    q = q * u2 + 1.0 / 15.0
    q = q * u2 + 1.0 / 13.0
    q = q * u2 + 1.0 / 11.0
    q = q * u2 + 1.0 / 9.0
    q = q * u2 + 1.0 / 7.0
    q = q * u2 + 1.0 / 5.0
    q = q * u2 + 1.0 / 3.0
    q = q * u2 + 1.0
    return kf + _TWO_OVER_LN2 * u * q


# ---------------------------------------------------------------------------------------------
# pass 1: max (and NaN check) with per-block maxima


@numba.njit(cache=True, error_model="numpy", fastmath=FASTMATH)
def _block_max(z, n, bmax):
    """Max key of each block of ``_BLOCK`` entries of z[:n] into bmax; returns (max key,
    max |bits|)."""
    nb = (n + _BLOCK - 1) // _BLOCK
    gk = _KEY_MIN
    ma = np.int32(0)
    nfull = n // _BLOCK
    for b in range(nfull):
        base = b * _BLOCK
        mk = _KEY_MIN
        for j in range(_BLOCK):
            x = z[base + j]
            mk = max(mk, _key(x))
            ma = max(ma, np.int32(_f32_bits(x) & np.int32(0x7FFFFFFF)))
        bmax[b] = mk
        gk = max(gk, mk)
    if nfull < nb:
        mk = _KEY_MIN
        for i in range(nfull * _BLOCK, n):
            x = z[i]
            mk = max(mk, _key(x))
            ma = max(ma, np.int32(_f32_bits(x) & np.int32(0x7FFFFFFF)))
        bmax[nfull] = mk
        gk = max(gk, mk)
    return gk, ma


@numba.njit(cache=True, error_model="numpy")
def _check_params(alpha, temperature):
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
    _check_params(alpha, temperature)
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


# ---------------------------------------------------------------------------------------------
# the solvers. A "source" is an array x with a transform d_i = (x_i - off) * sc: the raw
# float32 logits with (max z, 1/T) in the dense form, or gathered float64 d with (0, 1).


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
    t = e * _log2(max(w, _F64_TINY))
    return _exp2(max(t, _EXP2_MIN) if w > w_min else _EXP2_MIN)


@numba.njit(cache=True, error_model="numpy", fastmath=FASTMATH)
def _lse(x, n, off, sc):
    """ln Σ e^d over the source (softmax's log-partition, d ≤ 0 so no overflow)."""
    s0 = 0.0
    for i in range(n):
        s0 += _exp2(max(_d(x[i], off, sc) * _LOG2E, _EXP2_MIN))
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
        q = _exp2(max(y * _LOG2E, _EXP2_MIN))
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
        pw1 = _exp2(max(e1 * _log2(w), _EXP2_MIN))
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
    w_min = math.pow(2.0, _EXP2_MIN * a)  # _pow_e(w) == 0 for w <= w_min
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
        v = _exp2(max((_d(x[i], off, sc) - lse) * _LOG2E, _EXP2_MIN))
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
def _solve_into(x, n, off, sc, alpha, out):
    """out[:n] = entmax_α(d) over the source, for α = 1 or general α (not the sort-based
    1.5 / 2). Returns the support size (#out > 0)."""
    if alpha == 1.0:
        lse = _lse(x, n, off, sc)
        tot, k = _write_softmax(x, n, off, sc, lse, out)
    else:
        a = alpha - 1.0
        nu, _ = _generic_nu(x, n, off, sc, alpha)
        tot, k = _write_generic(x, n, off, sc, a, 1.0 / a, math.pow(2.0, _EXP2_MIN * a),
                                nu, out)
    if abs(tot - 1.0) > 1e-13:  # normally |tot - 1| ~ 1e-15: no second pass
        k = _rescale(out, n, 1.0 / tot)
    return k


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
def _solve_d(d, alpha, p):
    """p = entmax_α over gathered survivors d (float64, max(d) == 0), normalised."""
    if d.size == 1:
        p[0] = 1.0
    elif alpha == 2.0:
        _sparsemax_d(d, p)
    elif alpha == 1.5:
        _entmax15_d(d, p)
    else:
        _solve_into(d, d.size, 0.0, 1.0, alpha, p)


# ---------------------------------------------------------------------------------------------
# the filter


@numba.njit(cache=True, error_model="numpy", fastmath=FASTMATH)
def _count_above(z, n, thr, kthr, bmax):
    """#{i < n: z_i > thr}, visiting only the blocks whose max is above thr."""
    c = 0
    nfull = n // _BLOCK
    for b in range(nfull):
        if bmax[b] > kthr:
            base = b * _BLOCK
            cb = np.int32(0)
            for j in range(_BLOCK):  # fixed trip count: vectorises
                cb += z[base + j] > thr
            c += cb
    for i in range(nfull * _BLOCK, n):
        c += z[i] > thr
    return c


@numba.njit(cache=True, error_model="numpy")
def _scan(z, n, alpha, temperature, bmax):
    """Validate, max pass (block maxima into bmax), exact filter threshold and survivor count.

    Returns (zmax, thr, kthr, c): thr is a float32 at or below ``max z - T/(α-1)`` (every
    entry that can have p > 0 has z > thr; -inf for α = 1), kthr its key, c the number of
    entries with z > thr (for zmax = +inf: the number of +inf entries).
    """
    _check_params(alpha, temperature)
    if n < 1:
        raise ValueError("no candidates (n < 1)")
    if n > z.shape[0]:
        raise ValueError("n is larger than the buffer")
    gk, ma = _block_max(z, n, bmax)
    if ma > _ABS_INF_BITS:
        raise ValueError("NaN in logits")
    if gk == _KEY_NEG_INF:
        raise ValueError("all logits are masked")
    zmax = np.float64(_key_value(gk))
    if zmax == np.inf:
        thr = np.float32(np.inf)
        c = 0
        for i in range(n):
            c += z[i] == np.inf
        return zmax, thr, _key(thr), c
    if alpha == 1.0:
        # no filter: softmax always takes the dense path, which needs no count
        thr = np.float32(-np.inf)
        return zmax, thr, _key(thr), n
    thr = _f32_at_or_below(zmax - temperature / (alpha - 1.0))
    below_max = np.nextafter(np.float32(zmax), np.float32(-np.inf))
    if thr > below_max:  # a window narrower than one float32 step: keep the max itself
        thr = below_max
    # z > thr  <=>  key(z) > key(thr) (up to -0/+0, which only flags a block needlessly)
    kthr = _key(thr)
    return zmax, thr, kthr, _count_above(z, n, thr, kthr, bmax)


@numba.njit(cache=True, error_model="numpy")
def _gather(z, n, zmax, temperature, thr, kthr, bmax, c):
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
            for i in range(b * _BLOCK, min(n, (b + 1) * _BLOCK)):
                x = z[i]
                if x > thr:
                    idx[j] = i
                    d[j] = (np.float64(x) - zmax) * inv_t
                    j += 1
    return idx, d


@numba.njit(cache=True, error_model="numpy")
def _use_dense(alpha, c, n, zmax):
    """Solve over the whole vector in place of gathering the survivors: when most entries
    survive (α near 1), for softmax and general α (the sort-based forms always gather)."""
    return zmax < np.inf and alpha != 2.0 and alpha != 1.5 and c > (n >> 1)


@numba.njit(cache=True, error_model="numpy")
def _sparse_probs(z, n, zmax, alpha, temperature, thr, kthr, bmax, c):
    idx, d = _gather(z, n, zmax, temperature, thr, kthr, bmax, c)
    p = np.empty(c)
    if zmax == np.inf:
        p[:] = 1.0 / c  # +inf entries share all the mass
    else:
        _solve_d(d, alpha, p)
    return idx, p


# ---------------------------------------------------------------------------------------------
# public kernels


@numba.njit(cache=True, error_model="numpy", fastmath=FASTMATH)
def _zero(out):
    for i in range(out.shape[0]):
        out[i] = 0.0


@numba.njit(cache=True, error_model="numpy")
def entmax(z, alpha, temperature, out):
    """α-entmax of ``z/T`` (dense): ``out[i] = [(α-1) z_i/T - τ]_+^{1/(α-1)}``, Σ out = 1.

    Args:
        z: float32[V] logits (``-inf`` = masked; NaN raises).
        alpha: in [1, 2]; 1.0 exactly is softmax, 2.0 sparsemax, 1.5 the exact entmax15,
            anything else Newton on the threshold.
        temperature: T > 0, divides z first.
        out: float32[V] or float64[V], receives the probabilities (exact zeros outside the
            support).

    Returns:
        k, the support size (number of entries with ``out > 0``).
    """
    n = z.shape[0]
    if out.shape[0] != n:
        raise ValueError("out must have the length of z")
    bmax = np.empty((n + _BLOCK - 1) // _BLOCK, np.int32)
    zmax, thr, kthr, c = _scan(z, n, alpha, temperature, bmax)
    if _use_dense(alpha, c, n, zmax):
        return _solve_into(z, n, zmax, 1.0 / temperature, alpha, out)
    idx, p = _sparse_probs(z, n, zmax, alpha, temperature, thr, kthr, bmax, c)
    _zero(out)
    k = 0
    for j in range(idx.size):
        i = idx[j]
        out[i] = p[j]
        k += out[i] > 0
    return k


@numba.njit(cache=True, error_model="numpy")
def sparsemax(z, temperature, out):
    """sparsemax(z/T) = entmax with α = 2 (exact, sort-based on the survivors of
    ``z > max z - T``); returns the support size. See ``entmax``."""
    return entmax(z, 2.0, temperature, out)


@numba.njit(cache=True, error_model="numpy")
def entmax15(z, temperature, out):
    """1.5-entmax(z/T) (exact, sort-based on the survivors of ``z > max z - 2T``); returns
    the support size. See ``entmax``."""
    return entmax(z, 1.5, temperature, out)


@numba.njit(cache=True, error_model="numpy")
def softmax_dense(z, temperature, out):
    """softmax(z/T) = entmax with α = 1 (no sparsity: the support is every unmasked entry,
    unless its probability underflows the output dtype); returns the support size."""
    return entmax(z, 1.0, temperature, out)


@numba.njit(cache=True, error_model="numpy")
def entmax_candidates(ids, logits, n, alpha, temperature, probs):
    """α-entmax over a candidate set, truncated to its support, in place.

    The live candidates are ``ids[:n]`` (int32) and ``logits[:n]`` (float32, ``-inf`` =
    masked). On return the first ``n_support`` entries of ``ids`` and ``logits`` are the
    candidates with non-zero probability, in their original relative order (a sorted set
    stays sorted), their logits unchanged, and ``probs[:n_support]`` (float32 or float64)
    holds their probabilities under ``entmax_α(logits[:n]/T)`` (Σ = 1, all > 0). Entries
    of the three buffers past ``n_support`` are left in an unspecified state.

    ``probs`` needs room for the support only; with capacity ≥ n (the usual: a buffer of
    the vocabulary's size) the dense case (α near 1, most candidates surviving) is written
    straight into it, otherwise through a temporary.

    Returns:
        n_support (≥ 1). Raises ValueError on n < 1, n > len(logits) or len(ids), NaN, all
        masked, bad α or T, or ``probs`` smaller than the support.
    """
    if ids.shape[0] < n:
        raise ValueError("n is larger than the buffer")
    bmax = np.empty((max(n, 1) + _BLOCK - 1) // _BLOCK, np.int32)
    zmax, thr, kthr, c = _scan(logits, n, alpha, temperature, bmax)
    k = 0
    if _use_dense(alpha, c, n, zmax):
        if probs.shape[0] >= n:
            _solve_into(logits, n, zmax, 1.0 / temperature, alpha, probs)
            for i in range(n):
                v = probs[i]
                if v > 0:
                    probs[k] = v
                    ids[k] = ids[i]
                    logits[k] = logits[i]
                    k += 1
            return k
        tmp = np.empty(n)
        _solve_into(logits, n, zmax, 1.0 / temperature, alpha, tmp)
        for i in range(n):
            v = tmp[i]
            if v > 0:
                if k >= probs.shape[0]:
                    raise ValueError("probs is too small")
                probs[k] = v
                if probs[k] > 0:
                    ids[k] = ids[i]
                    logits[k] = logits[i]
                    k += 1
        return k
    idx, p = _sparse_probs(logits, n, zmax, alpha, temperature, thr, kthr, bmax, c)
    for j in range(idx.size):
        i = idx[j]
        if p[j] > 0:
            if k >= probs.shape[0]:
                raise ValueError("probs is too small")
            probs[k] = p[j]
            if probs[k] > 0:
                ids[k] = ids[i]
                logits[k] = logits[i]
                k += 1
    return k
