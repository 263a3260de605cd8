"""``xtc``: llama.cpp's "exclude top choices" (p-e-w): with probability ``probability`` per
step, drop every token at or above ``threshold`` except the least likely of them, so the
model picks a less obvious continuation. The kernel is ``kernels/xtc.py``."""

from __future__ import annotations

from typing import Any

from ... import kernels as _k
from ..candidates import Candidates
from ..flags import Flag
from ..params import Param
from ..stage import Stage
from .seeded import Seeded

__all__ = ["XTC"]


class XTC(Seeded, Stage):
    """XTC (llama.cpp semantics and defaults: probability 0 = off, threshold 0.1, off above
    0.5, min_keep 1). Per step one uniform ``u ∈ [0, 1)`` is drawn when at least two
    candidates are live; it fires when ``u ≤ probability`` (probability 1: always). See
    ``kernels.xtc`` for what firing removes. ``info()`` reports ``xtc_removed``: the number
    of tokens it removed this step (0 when it did not fire). Seeded like ``dist``; the
    stream is its own (``seeded.Seeded``), not llama.cpp's mt19937."""

    name = "xtc"
    params = (
        Param("probability", float, 0.0, 0.0, 1.0),
        Param("threshold", float, 0.1, 0.0, 1.0),
        Param("min_keep", int, 1, 1),
    )
    main = "probability"
    order = 6.5
    flags = (
        Flag("xtc_probability", "probability", float, "--xtc-probability",
             "XTC: the chance per step of removing the top choices (0: off).", off=0.0,
             off_below=True),
        Flag("xtc_threshold", "threshold", float, "--xtc-threshold",
             "XTC: tokens at or above this probability are the top choices (default 0.1; "
             "above 0.5: off)."),
    )

    def __init__(self, probability: float = 0.0, threshold: float = 0.1, min_keep: int = 1,
                 seed: int | None = None):
        self._set(probability=probability, threshold=threshold, min_keep=min_keep)
        self._init_stream(seed)
        self.last_removed = 0

    @classmethod
    def flags_off(cls, values: dict[str, Any]) -> bool:
        return values["probability"] <= 0.0 or values["threshold"] > 0.5

    @property
    def active(self) -> bool:
        return not self.flags_off(self.param_values())

    def reset(self, seed: int | None = None) -> None:
        self._reset_stream(seed)
        self.last_removed = 0

    def take_state(self, old: Stage) -> None:
        self._take_stream(old)

    def apply(self, cands: Candidates) -> None:
        self.last_removed = 0
        if not self.active or cands.n < 2:
            return
        if self._rng.random() > self.probability:
            return
        n, removed = _k.xtc(cands.ids, cands.logits, cands.n, self.threshold, self.min_keep)
        if removed:
            cands.n = int(n)
            cands.touch()
            self.last_removed = int(removed)

    def info(self) -> dict[str, Any]:
        return {"xtc_removed": self.last_removed}
