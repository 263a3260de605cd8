"""Plain-numpy α-entmax references (float64): the ground truth for the tests and the thing to
beat in ``benchmarks/entmax_kernel.py``.

These follow deep-spin/entmax (Peters, Niculae, Martins 2019) and the textbook definitions
literally, on the whole vector, with no candidate filter:

- ``softmax_ref``: ``e^{z/T - max} / Σ``;
- ``sparsemax_ref``: sort descending ``s``; ``K = #{k: k s_k > Σ_{j≤k} s_j - 1}``,
  ``τ = (Σ_{j≤K} s_j - 1)/K``, ``p = [z - τ]_+``;
- ``entmax15_ref``: ``z' = (z - max)/2`` sorted; ``τ_k = μ_k - sqrt(max(δ_k, 0))``,
  ``δ_k = (1 - k (m2_k - μ_k²))/k``; ``K = #{k: τ_k ≤ s_k}``; ``p = [z' - τ_K]_+²``;
- ``entmax_bisect_ref``: ``X = (α-1) z/T``; bisection on ``f(τ) = Σ [X - τ]_+^{1/(α-1)} - 1``
  over ``[max X - 1, max X - (1/d)^{α-1}]`` (``d`` = number of finite entries), ``n_iter``
  halvings (deep-spin's default is 50; the bracket is ≤ 1 wide, so 50 halvings pin τ to
  ~1e-15), then renormalised.

Conventions shared with the kernels: ``-inf`` entries are masked (probability 0, the rest is
computed without them); ``+inf`` entries share all the mass equally; NaN or all ``-inf``
raise ``ValueError``. Inputs may be any float dtype; outputs are float64.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "softmax_ref", "sparsemax_ref", "entmax15_ref", "entmax_bisect_ref", "entmax_ref",
]


def _prepare(z, temperature):
    """(finite-entry mask, z/T on them as float64) or a finished +inf answer."""
    z = np.asarray(z, dtype=np.float64)
    if z.ndim != 1 or z.size == 0:
        raise ValueError("z must be a non-empty 1-D array")
    if not (temperature > 0 and np.isfinite(temperature)):
        raise ValueError("temperature must be positive and finite")
    if np.isnan(z).any():
        raise ValueError("NaN in logits")
    pos = z == np.inf
    if pos.any():
        return None, pos / pos.sum()
    live = z > -np.inf
    if not live.any():
        raise ValueError("all logits are masked")
    return live, z[live] / temperature


def _finish(live, q):
    p = np.zeros(live.size)
    p[live] = q
    return p


def softmax_ref(z, temperature=1.0):
    live, x = _prepare(z, temperature)
    if live is None:
        return x
    e = np.exp(x - x.max())
    return _finish(live, e / e.sum())


def _sparsemax_core(x):
    s = np.sort(x)[::-1]
    cs = np.cumsum(s)
    k = np.arange(1, s.size + 1)
    support = k * s > cs - 1.0
    kk = int(support.sum())
    tau = (cs[kk - 1] - 1.0) / kk
    p = np.maximum(x - tau, 0.0)
    return p / p.sum()


def sparsemax_ref(z, temperature=1.0):
    live, x = _prepare(z, temperature)
    if live is None:
        return x
    return _finish(live, _sparsemax_core(x))


def _entmax15_core(x):
    x = (x - x.max()) / 2.0
    s = np.sort(x)[::-1]
    k = np.arange(1, s.size + 1)
    mu = np.cumsum(s) / k
    m2 = np.cumsum(s * s) / k
    ss = k * (m2 - mu * mu)
    delta = (1.0 - ss) / k
    tau = mu - np.sqrt(np.clip(delta, 0.0, None))
    kk = int((tau <= s).sum())
    p = np.clip(x - tau[kk - 1], 0.0, None) ** 2
    return p / p.sum()


def entmax15_ref(z, temperature=1.0):
    live, x = _prepare(z, temperature)
    if live is None:
        return x
    return _finish(live, _entmax15_core(x))


def _bisect_core(x, alpha, n_iter):
    a = alpha - 1.0
    e = 1.0 / a
    X = x * a
    mx = X.max()
    tau_lo = mx - 1.0
    tau_hi = mx - (1.0 / X.size) ** a

    def pfun(tau):
        return np.clip(X - tau, 0.0, None) ** e

    f_lo = pfun(tau_lo).sum() - 1.0
    dm = tau_hi - tau_lo
    p = pfun(tau_lo)
    for _ in range(n_iter):
        dm /= 2.0
        tau_m = tau_lo + dm
        p = pfun(tau_m)
        f_m = p.sum() - 1.0
        if f_m * f_lo >= 0.0:
            tau_lo = tau_m
    return p / p.sum()


def entmax_bisect_ref(z, alpha, temperature=1.0, n_iter=50):
    """General-α entmax by bisection (deep-spin's ``entmax_bisect``), any α in (1, 2]."""
    if not (1.0 < alpha <= 2.0):
        raise ValueError("alpha must be in (1, 2] for bisection")
    live, x = _prepare(z, temperature)
    if live is None:
        return x
    return _finish(live, _bisect_core(x, alpha, n_iter))


def entmax_ref(z, alpha, temperature=1.0, n_iter=50):
    """Dispatch as the kernels do: α = 1 softmax, 1.5 entmax15, 2 sparsemax (sort-based),
    otherwise bisection."""
    if not (1.0 <= alpha <= 2.0):
        raise ValueError("alpha must be in [1, 2]")
    if alpha == 1.0:
        return softmax_ref(z, temperature)
    if alpha == 2.0:
        return sparsemax_ref(z, temperature)
    if alpha == 1.5:
        return entmax15_ref(z, temperature)
    return entmax_bisect_ref(z, alpha, temperature, n_iter)
