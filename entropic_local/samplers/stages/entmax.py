"""Adaptive entropy sparsity: sampling from α-entmax, with α chosen per step from the
model's entropy and varentropy.

α-entmax (Peters, Niculae, Martins 2019) interpolates between softmax (α = 1,
dense) and sparsemax (α = 2, only tokens within ``T`` logits of the top can survive); tokens
with ``z_i ≤ z_max - T/(α-1)`` get probability exactly 0. Sampling from it is the "sparse
text generation" of Martins, Marinho, Martins (2020).

Stages (both *select*: they must end a chain):

``entmax`` (``entmax=1.5``, ``entmax:alpha=1.2,t=0.8``)
    Sample from ``entmax_α(z/T)`` over the live candidates. ``alpha`` in [1, 2] (default
    1.5), ``t`` > 0 (default 1). α is used as given (α in (1, 1.08) is exact but slow on a
    large vocabulary: most of it is then in the support).

``aes`` (``aes``, ``aes:s_lo=1,s_hi=4,v_split=1,alpha_max=2,alpha_min=1.5,t=1``)
    Adaptive entropy sparsity (a sparsity ``ζ(S)`` from the step's entropy): α = D(S, V) per step, then as
    ``entmax``. S and V are the entropy (nats) and varentropy (nats²) of the model's own
    distribution for this step, over the full vocabulary at temperature 1 (``cands.entropy``,
    ``cands.varentropy``, computed by the decode loop in the same pass that reads the
    logits), whatever earlier stages did to the candidates and whatever ``t`` is: the map is
    calibrated on the model's own uncertainty, not on a distribution the sampler has already
    reshaped. The map::

        x = clip((s_hi - S) / (s_hi - s_lo), 0, 1)          0 at S ≥ s_hi, 1 at S ≤ s_lo
        g = x² (3 - 2x)                                     smoothstep: g(0) = 0, g(1) = 1
        D(S, V) = α_min + (α_max - α_min) · g               if V ≥ v_split   (continuous)
        D(S, V) = α_max if x ≥ 1/2 else α_min               if V <  v_split  (snapped)

    with ``α_min`` (``alpha_min``) the floor, so D = α_min for S ≥ s_hi (softmax when
    α_min = 1; α_min > 1 keeps cutting the far tail even at open steps) and D = α_max (sparsemax at α_max = 2) for S ≤ s_lo
    at any V; in between D is continuous and non-increasing in S when the varentropy is
    high, with zero slope where it meets its bounds (α is C¹ in S), and sits at the nearer
    bound (the midpoint ``(s_lo + s_hi)/2`` goes to α_max) when the varentropy is low.
    Why V decides: a low-varentropy distribution is a plateau (a set of near-equal tokens
    and nothing else of note); there α changes little except its support, and the honest
    choice is binary: one clear answer (low S) is cut hard, a genuine plateau of options
    (high S) is kept dense. A high-varentropy distribution mixes scales (a few strong
    candidates over a long tail); there the amount of tail worth keeping shrinks gradually
    as the entropy falls, so α moves continuously.

    Finally α is *snapped*: a D(S, V) below ``ALPHA_SNAP`` (1.1) is used as exactly 1.0
    (softmax). Near 1 the exact filter ``z > z_max - T/(α-1)`` lets most of the vocabulary
    through and the entmax solve gets slow: on real Gemma 3 logits (262,144 tokens),
    measured per step: α = 1.02 ~11 ms, 1.05 ~1.9 ms, 1.06 ~1.5 ms, 1.08 and above
    ≤ 0.15 ms; and α = 1.1 already keeps every token within 10 logits of the top, within a
    few percent of softmax. So the α actually used jumps from 1 to 1.1 where D crosses 1.1
    (with the defaults at S ≈ 2.5 nats). ``info()`` reports the α actually used.

    Defaults, in nats / nats² of the model's own distribution: ``s_lo = 1.0``, ``s_hi = 4.0``,
    ``v_split = 1.0`` (the surprisal of the tokens carrying the mass varies by less than one
    nat: a plateau, where α goes to a bound), ``alpha_max = 2.0`` (sparsemax) and
    ``alpha_min = 1.5``. They are absolute, not fractions of ``ln V`` (both test models
    produce the same entropy ranges although their vocabularies differ). ``s_lo``, ``s_hi``
    and ``alpha_min`` were chosen on the generation-quality frontier of a development text
    (``benchmarks/tune_frontier.py``; the figures and the held-out check: README, "Which
    sampler?"): the former map (0.5, 3.0, α_min = 1) sampled untruncated softmax at every
    open step and fell apart at T = 2. The entropy ranges: ``docs/measurements.md``.

Per step (``info()``, into ``Step.info``): ``alpha`` (the α used) and ``support`` (the number
of tokens with non-zero probability; ``cands.n`` is reduced to it, so ``Step.n_candidates``
agrees, except on the α = 1 fast path which, like ``dist``, leaves ``n`` alone).

Selection: one uniform ``u ∈ [0, 1)`` per step from a numpy ``Generator(PCG64(seed))``,
exactly as ``dist`` (these classes extend ``Dist``: same seeding, ``reset``, ``clone``), then
inverse CDF over the support in its candidate order. ``distribution(cands)`` does everything
but the draw and returns the probabilities (the evaluation uses it).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ... import kernels as _k
from ...errors import InvalidSamplerSpec
from ..candidates import Candidates, require_candidates
from ..params import INF, Param, format_value
from .select import Dist
from .temperature import TINY_TEMPERATURE, OwnTemperature, scale_logits

__all__ = ["Entmax", "AES", "aes_alpha", "effective_alpha", "ALPHA_SNAP", "sample_probs"]

ALPHA_SNAP = 1.1    # D(S, V) < ALPHA_SNAP is used as α = 1 (softmax)

# Defaults of the map D(S, V), in nats / nats² of the model's own T = 1 distribution
# (justified in the module doc from the measured entropy ranges).
S_LO = 1.0          # below: sparsemax
S_HI = 4.0          # above: the floor α_min
V_SPLIT = 1.0       # surprisal std below 1 nat: a plateau, α snaps to a bound
ALPHA_MAX = 2.0     # sparsemax at the low-entropy end
ALPHA_MIN = 1.5     # entmax-1.5 at the high-entropy end (1.0 would be softmax)


def aes_alpha(s: float, v: float, s_lo: float = S_LO, s_hi: float = S_HI,
              v_split: float = V_SPLIT, alpha_max: float = ALPHA_MAX,
              alpha_min: float = ALPHA_MIN) -> float:
    """The map D(S, V) of the module doc (before snapping): α in [alpha_min, alpha_max]."""
    if s != s or v != v:
        raise ValueError("aes: the step's entropy/varentropy is NaN (Candidates.reset sets them)")
    if s >= s_hi:
        return alpha_min
    if s <= s_lo:
        return alpha_max
    x = (s_hi - s) / (s_hi - s_lo)
    if v < v_split:
        return alpha_max if x >= 0.5 else alpha_min
    return alpha_min + (alpha_max - alpha_min) * (x * x * (3.0 - 2.0 * x))


def effective_alpha(alpha: float) -> float:
    """α as used: values below ``ALPHA_SNAP`` become exactly 1.0 (softmax)."""
    return 1.0 if alpha < ALPHA_SNAP else alpha


def sample_probs(probs: np.ndarray, u: float) -> int:
    """Inverse CDF: the index i with ``Σ_{j<i} p_j ≤ u·Σp < Σ_{j≤i} p_j`` (u in [0, 1))."""
    c = np.cumsum(probs)
    i = int(np.searchsorted(c, u * c[-1], side="right"))
    return min(i, probs.shape[0] - 1)


class Entmax(OwnTemperature, Dist):
    """Select by sampling ``entmax_α(z/T)`` over the live candidates (see the module doc).

    ``Entmax(alpha=1.5, t=1.0, seed=None)``; seeding as ``Dist``.
    """

    name = "entmax"
    params = (Param("alpha", float, 1.5, 1.0, 2.0), Param("t", float, 1.0, 0.0, INF, lo_open=True))
    main = "alpha"
    selects = True
    stochastic = True

    def __init__(self, alpha: float = 1.5, t: float = 1.0, seed: int | None = None):
        self._set(alpha=alpha, t=t)
        self._init_common(seed)

    def _init_common(self, seed: int | None) -> None:
        Dist.__init__(self, seed)
        self._probs = np.zeros(0, dtype=np.float64)
        self.last_alpha = float("nan")
        self.last_support = 0

    # -- the α of this step ------------------------------------------------------------------
    def alpha_for(self, cands: Candidates) -> float:
        return self.alpha

    # -- sampling --------------------------------------------------------------------------
    def _buffer(self, n: int) -> np.ndarray:
        if self._probs.shape[0] < n:
            self._probs = np.zeros(n, dtype=np.float64)
        return self._probs

    def distribution(self, cands: Candidates) -> np.ndarray:
        """Truncate ``cands`` to the support of ``entmax_α(z/T)`` (relative order kept) and
        return its probabilities (a float64 view of length ``cands.n``, Σ = 1, all > 0).
        Records ``alpha`` and ``support``. Draws nothing."""
        require_candidates(self.name, cands)
        return self._entmax(cands, self.alpha_for(cands))

    def _entmax(self, cands: Candidates, alpha: float) -> np.ndarray:
        probs = self._buffer(max(cands.n, cands.n_vocab))
        t = max(self.t, TINY_TEMPERATURE)  # below it: the greedy limit (and 1/t may overflow)
        k = int(_k.entmax_candidates(cands.ids, cands.logits, cands.n, alpha, t, probs))
        if k != cands.n:
            cands.n = k
            cands.touch()
        self.last_alpha = alpha
        self.last_support = k
        return probs[:k]

    def apply(self, cands: Candidates) -> None:
        u = self._rng.random()
        require_candidates(self.name, cands)
        alpha = self.alpha_for(cands)
        if alpha == 1.0:
            # softmax: sample straight from the logits (one pass; no probability vector)
            scale_logits(cands, self.t)
            live = cands.logits[: cands.n]
            self.last_alpha = 1.0
            self.last_support = int(cands.n - np.count_nonzero(live == -np.inf))
            cands.selected = int(_k.sample_categorical(cands.logits, cands.n, u))
            return
        probs = self._entmax(cands, alpha)
        cands.selected = sample_probs(probs, u)

    def info(self) -> dict[str, Any]:
        return {"alpha": self.last_alpha, "support": self.last_support}


class AES(Entmax):
    """Adaptive entropy sparsity: ``entmax_α`` with ``α = D(S, V)`` per step (module doc).

    ``AES(s_lo=1.0, s_hi=4.0, v_split=1.0, alpha_max=2.0, t=1.0, alpha_min=1.5, seed=None)``.
    """

    name = "aes"
    params = (
        Param("s_lo", float, S_LO, 0.0, INF),
        Param("s_hi", float, S_HI, 0.0, INF),
        Param("v_split", float, V_SPLIT, 0.0, INF),
        Param("alpha_max", float, ALPHA_MAX, 1.0, 2.0),
        Param("t", float, 1.0, 0.0, INF, lo_open=True),
        Param("alpha_min", float, ALPHA_MIN, 1.0, 2.0),
    )
    main = None

    def __init__(self, s_lo: float = S_LO, s_hi: float = S_HI, v_split: float = V_SPLIT,
                 alpha_max: float = ALPHA_MAX, t: float = 1.0, alpha_min: float = ALPHA_MIN,
                 seed: int | None = None):
        self._set(s_lo=s_lo, s_hi=s_hi, v_split=v_split, alpha_max=alpha_max, t=t,
                  alpha_min=alpha_min)
        if not self.s_lo < self.s_hi:
            raise InvalidSamplerSpec(
                f"aes: s_lo={format_value(self.s_lo)} must be below s_hi={format_value(self.s_hi)}")
        if self.alpha_min > self.alpha_max:
            raise InvalidSamplerSpec(
                f"aes: alpha_min={format_value(self.alpha_min)} must not exceed "
                f"alpha_max={format_value(self.alpha_max)}")
        self._init_common(seed)

    def raw_alpha(self, entropy: float, varentropy: float) -> float:
        """D(S, V) with this stage's parameters, before snapping."""
        return aes_alpha(entropy, varentropy, self.s_lo, self.s_hi, self.v_split, self.alpha_max,
                         self.alpha_min)

    def alpha_for(self, cands: Candidates) -> float:
        return effective_alpha(self.raw_alpha(cands.entropy, cands.varentropy))
