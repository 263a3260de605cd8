"""The selecting stages of llama.cpp: ``greedy`` (the most likely candidate) and ``dist``
(a seeded draw from the softmax of the live logits; the end of every chain that does not
select otherwise)."""

from __future__ import annotations

import numbers
import secrets
from typing import Any

import numpy as np

from ... import kernels as _k
from ...errors import InvalidSamplerSpec
from ..candidates import Candidates, require_candidates
from ..stage import Stage
from .temperature import keep_argmax

__all__ = ["Greedy", "Dist"]


class Greedy(Stage):
    """Select the candidate with the largest logit (first one on ties).

    Like ``temp ≤ 0`` it reduces the set to that one token (``n = 1``, ``selected = 0``):
    the kept set is what the selector could have picked.
    """

    name = "greedy"
    selects = True

    def __init__(self) -> None:
        pass

    def apply(self, cands: Candidates) -> None:
        keep_argmax(cands, self.name)
        cands.selected = 0


def _check_seed(seed: Any) -> int:
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or int(seed) < 0:
        raise InvalidSamplerSpec(f"dist: seed must be a non-negative integer, got {seed!r}")
    return int(seed)


class Dist(Stage):
    """Select by sampling ``p_i = softmax(z)_i`` over the live candidates.

    Inverse-CDF sampling with one uniform ``u ∈ [0, 1)`` per step drawn from a numpy
    ``Generator(PCG64(seed))``: exactly one draw per ``apply`` whatever the candidates, so a
    run is reproducible from its seed. ``Dist()`` picks a random 32-bit seed; ``seed``
    reports the seed in use. ``reset(seed)`` restarts the stream from ``seed``;
    ``reset()`` restarts it from the current seed. ``clone`` copies the stream state.
    """

    name = "dist"
    selects = True
    stochastic = True

    def __init__(self, seed: int | None = None):
        self._seed = secrets.randbits(32) if seed is None else _check_seed(seed)
        self._rng = np.random.Generator(np.random.PCG64(self._seed))

    @property
    def seed(self) -> int:
        return self._seed

    def reset(self, seed: int | None = None) -> None:
        if seed is not None:
            self._seed = _check_seed(seed)
        self._rng = np.random.Generator(np.random.PCG64(self._seed))

    def take_state(self, old: Stage) -> None:
        if isinstance(old, Dist):
            self._seed = old._seed
            self._rng = old.clone()._rng

    def apply(self, cands: Candidates) -> None:
        u = self._rng.random()
        require_candidates(self.name, cands)
        cands.selected = int(_k.sample_categorical(cands.logits, cands.n, u))
