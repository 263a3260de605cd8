"""A seeded random stream for the stages that draw (``xtc``, ``mirostat``, ``adaptive_p``):
the same contract as ``dist`` (``reset(seed)`` restarts from ``seed``, ``reset()`` from the
current one, ``clone`` copies the stream state), each stage's stream derived from the seed
and the stage's name so two stages of one chain never draw the same numbers."""

from __future__ import annotations

import numbers
import secrets
import zlib
from typing import Any

import numpy as np

from ...errors import InvalidSamplerSpec

__all__ = ["Seeded"]


class Seeded:
    """Mixin: ``self._init_stream(seed)`` in ``__init__``, then ``self._rng.random()``."""

    stochastic = True

    def _init_stream(self, seed: Any) -> None:
        self._seed = secrets.randbits(32) if seed is None else self._check_seed(seed)
        self._restart()

    def _check_seed(self, seed: Any) -> int:
        if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or int(seed) < 0:
            raise InvalidSamplerSpec(
                f"{self.name}: seed must be a non-negative integer, got {seed!r}")  # type: ignore[attr-defined]
        return int(seed)

    def _restart(self) -> None:
        tag = zlib.crc32(self.name.encode())  # type: ignore[attr-defined]
        self._rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence((self._seed, tag))))

    @property
    def seed(self) -> int:
        return self._seed

    def _reset_stream(self, seed: int | None) -> None:
        if seed is not None:
            self._seed = self._check_seed(seed)
        self._restart()

    def _take_stream(self, old: Any) -> None:
        if isinstance(old, Seeded):
            self._seed = old._seed
            self._rng = np.random.Generator(np.random.PCG64())
            self._rng.bit_generator.state = old._rng.bit_generator.state
