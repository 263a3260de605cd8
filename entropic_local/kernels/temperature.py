"""Temperature: fixed (``scale_temperature``) and entropy-scaled (``dynamic_temperature``).

``scale_temperature(logits, n, t)``: ``z_i <- z_i / t`` in float32 (``t`` rounded to float32
first, as llama.cpp's ``float temp``), ``t > 0`` and finite (the sampler layer maps ``t <= 0`` to
greedy). Masks stay masked. NaN raises.

``dynamic_temperature(logits, n, temp, delta, exponent)``: llama.cpp ``temp_ext``::

    T = T_min + (T_max - T_min) * (H / ln N) ** exponent
    T_min = max(0, temp - delta),  T_max = temp + delta

with ``H`` the entropy (nats) of softmax(logits[:n]) and ``N`` the number of **unmasked**
live candidates (llama.cpp counts every entry; the two agree when nothing is masked). Then
``z_i <- z_i / T`` and ``T`` is returned. Known answer: [1, 2, 3], temp 1, delta 0.5,
exponent 1 -> T = 1.257679.

* ``N <= 1``: nothing to scale; the logits are left unchanged and 1.0 is returned (llama.cpp
  returns early too).
* ``delta <= 0``: plain temperature ``temp`` (llama.cpp).
* ``T <= 0`` (``temp <= 0`` with ``delta <= 0``, or a one-hot distribution with
  ``T_min = 0``; also a T that rounds to 0 in float32): greedy as llama.cpp's
  ``temp <= 0``: the first largest logit is kept and every other live logit is set to
  ``-inf``; returns 0.0.
* ``exponent`` must be >= 0 and every parameter finite (else ``ValueError``).
"""

from __future__ import annotations

import math

import numba
import numpy as np

from .fastmath import ABS_INF_BITS, abs_bits
from .stats import check_n, checked_max, stats_n


@numba.njit(cache=True)  # no 'arcp': an exact IEEE division, as llama.cpp
def _div_all(logits, n, t32):
    ma = np.int32(0)
    for i in range(n):
        x = logits[i]
        ma = max(ma, abs_bits(x))
        logits[i] = x / t32
    return ma


@numba.njit(cache=True)
def scale_temperature(logits, n, t):
    """logits[:n] /= t (float32), for t > 0."""
    if not (t > 0.0 and t < np.inf):
        raise ValueError("temperature must be positive and finite")
    check_n(logits, n)
    t32 = np.float32(t)
    if t32 == 0.0:
        raise ValueError("temperature underflows float32")
    if _div_all(logits, n, t32) > ABS_INF_BITS:
        raise ValueError("NaN in logits")


@numba.njit(cache=True)
def _greedy_mask(logits, n):
    """llama.cpp temp <= 0: keep the first largest logit, set every other one to -inf."""
    zmax = np.float32(checked_max(logits, n))
    kept = False
    for i in range(n):
        if logits[i] == zmax and not kept:
            kept = True
        else:
            logits[i] = -np.inf


@numba.njit(cache=True)
def dynamic_temperature(logits, n, temp, delta, exponent):
    """Entropy-scaled temperature (llama.cpp temp_ext); applies it and returns T (float)."""
    if not (abs(temp) < np.inf and abs(delta) < np.inf and abs(exponent) < np.inf):
        raise ValueError("temperature parameters must be finite")
    if exponent < 0.0:
        raise ValueError("exponent must be >= 0")
    checked_max(logits, n)  # raises on NaN or an all-masked set
    if delta <= 0.0:
        if not (np.float32(temp) > 0.0):  # also a temp that rounds to 0 in float32
            _greedy_mask(logits, n)
            return 0.0
        scale_temperature(logits, n, temp)
        return temp
    n_live = 0
    for i in range(n):
        n_live += logits[i] != -np.inf
    if n_live <= 1:
        return 1.0
    t_min = max(0.0, temp - delta)
    t_max = temp + delta
    ent = stats_n(logits, n, 1.0)[2]
    norm = ent / math.log(n_live)
    t = t_min + (t_max - t_min) * norm**exponent
    if not (np.float32(t) > 0.0):  # 0, or below float32 (llama.cpp's float temp is 0 then)
        _greedy_mask(logits, n)
        return 0.0
    scale_temperature(logits, n, t)
    return t
