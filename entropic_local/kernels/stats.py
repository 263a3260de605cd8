"""Statistics of a logit vector in ONE fused pass: max, log-partition, entropy, varentropy.

With logits ``z``, temperature ``T``, ``m = max z`` and ``y_i = (z_i - m)/T`` (so ``y <= 0``),
one pass accumulates (in float64)::

    s0 = sum e^y,   s1 = sum e^y y,   s2 = sum e^y y^2

and then::

    log Z = m/T + ln s0          (log-partition, nats)
    mu    = s1/s0                (E_p[y])
    H     = ln s0 - mu           (entropy, nats)
    V     = s2/s0 - mu^2         (varentropy = Var_p[log p] = heat capacity, nats^2)
    F     = -T log Z             (Helmholtz free energy, ``free_energy``)

The cost is the exponential. Numba has no vector ``exp`` without Intel's SVML, so the
kernels carry their own branch-free one (``kernels/fastmath.py``), written so that LLVM
vectorises the whole loop: ``e^y = 2^w`` with ``w = y log2(e)``; ``k = rint(w)``, ``f = w - k`` in [-1/2, 1/2];
``2^f`` from a degree-6 polynomial (near-minimax, relative error 2e-9, exactly 1 at f = 0);
the factor ``2^k`` applied by an integer add to the exponent bits (no multiply). Arguments
are clamped to ``w >= -1000`` (``e^-693``), so masked logits (``-inf``) add at most
``2^-1000`` each to ``s0`` in ``logit_stats`` (nothing a float64 result can show; the max
itself always adds exactly 1), and exactly 0 in the kernels that need a true zero (softmax,
sampling, top-p; see ``weight``).

The max pass works on the float32 bit patterns turned into monotone int32 keys, which LLVM
vectorises (a float max reduction with NaN semantics does not vectorise) and which detects
NaN in the same pass (``|bits| > bits(inf)``).

Special values: NaN anywhere in the live logits raises ``ValueError("NaN in logits")``; all
``-inf`` raises ``ValueError("all logits are masked")``; ``+inf`` logits take all the mass,
shared equally: ``max_logit = log_z = +inf``, ``entropy = ln(#+inf)``, ``varentropy = 0``.

Accuracy: entropy and varentropy agree with a float64 numpy reference to ~1e-8 relative
(bounded by about twice the 2e-9 error of the exponential plus float64 rounding).
"""

from __future__ import annotations

import math

import numba
import numpy as np

from .fastmath import (
    ABS_INF_BITS, FASTMATH, KEY_MIN, KEY_NEG_INF, LN2, LOG2E, W_MIN, abs_bits, exp2, key, key_value,
)

@numba.njit(inline="always", fastmath=FASTMATH)
def weight(z, zmax, a):
    """Unnormalised probability ``e^{(z - zmax) a ln 2}`` of a float32 logit; exactly 0 for -inf.

    ``a`` is ``log2(e)/T``. Weights below 2^-1000 are flushed to 0.
    """
    w = (np.float64(z) - zmax) * a
    ok = w > W_MIN
    w = w if ok else W_MIN
    e = exp2(w)
    return e if ok else 0.0


@numba.njit(cache=True, fastmath=FASTMATH)
def max_key(logits, n):
    """(max key, max |bits|) of logits[:n], one vectorised pass over the int32 keys."""
    mk = KEY_MIN
    ma = np.int32(0)
    for i in range(n):
        x = logits[i]
        mk = max(mk, key(x))
        ma = max(ma, abs_bits(x))
    return mk, ma


@numba.njit(cache=True)
def check_n(logits, n):
    if n < 1:
        raise ValueError("no candidates (n < 1)")
    if n > logits.shape[0]:
        raise ValueError("n is larger than the buffer")


@numba.njit(cache=True)
def checked_max(logits, n):
    """Max of logits[:n] as float64; raises on n out of range, NaN, or all -inf."""
    check_n(logits, n)
    mk, ma = max_key(logits, n)
    if ma > ABS_INF_BITS:
        raise ValueError("NaN in logits")
    if mk == KEY_NEG_INF:
        raise ValueError("all logits are masked")
    return np.float64(key_value(mk))


@numba.njit(cache=True)
def count_pos_inf(logits, n):
    c = 0
    for i in range(n):
        c += logits[i] == np.inf
    return c


@numba.njit(cache=True, fastmath=FASTMATH)
def moments(logits, n, zmax, a):
    """s0, s1, s2 of the fused pass, in base-2 units: w = (z - zmax) * a."""
    s0 = 0.0
    s1 = 0.0
    s2 = 0.0
    for i in range(n):
        w = (np.float64(logits[i]) - zmax) * a
        w = w if w > W_MIN else W_MIN
        e = exp2(w)
        ew = e * w
        s0 += e
        s1 += ew
        s2 += ew * w
    return s0, s1, s2


@numba.njit(cache=True, fastmath=FASTMATH)
def weight_sum(logits, n, zmax, a):
    """sum of ``weight`` over logits[:n] (exact zeros for masked entries)."""
    s = 0.0
    for i in range(n):
        s += weight(logits[i], zmax, a)
    return s


@numba.njit(cache=True)
def stats_n(logits, n, temperature):
    """``logit_stats`` over logits[:n]."""
    # LOG2E / T must be finite too: a subnormal T would turn (z - max) * a into 0 * inf = NaN
    if not (temperature > 0.0 and temperature < np.inf and LOG2E / temperature < np.inf):
        raise ValueError("temperature must be positive and finite")
    return moment_stats(logits, n, checked_max(logits, n), temperature)


@numba.njit(cache=True)
def moment_stats(logits, n, zmax, temperature):
    """``stats_n`` given the max ``zmax`` of logits[:n] (not -inf, no NaN)."""
    if zmax == np.inf:
        c = count_pos_inf(logits, n)
        return np.inf, np.inf, math.log(c), 0.0
    a = LOG2E / temperature
    s0, s1, s2 = moments(logits, n, zmax, a)
    mu = s1 / s0
    log_s0 = math.log(s0)
    entropy = log_s0 - LN2 * mu
    var = (s2 / s0 - mu * mu) * (LN2 * LN2)
    if var < 0.0:
        var = 0.0
    if entropy < 0.0:
        entropy = 0.0
    return zmax, zmax / temperature + log_s0, entropy, var


@numba.njit(cache=True)
def logit_stats(logits, temperature):
    """(max_logit, log_z, entropy, varentropy) of softmax(logits / T), float64, one fused pass.

    ``max_logit`` is the raw max (not divided by T); ``log_z = max/T + ln sum e^{(z-max)/T}``;
    entropy in nats, varentropy in nats^2. Whole array. NaN -> ValueError; all -inf ->
    ValueError; +inf logits share all the mass (log_z = inf, entropy = ln #inf, varentropy 0).
    """
    return stats_n(logits, logits.shape[0], temperature)


@numba.njit(cache=True)
def free_energy(log_z, temperature):
    """Helmholtz free energy ``F = -T log Z``."""
    return -temperature * log_z
