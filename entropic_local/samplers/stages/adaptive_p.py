"""``adaptive_p``: llama.cpp's adaptive-p, a selecting stage (always last) that favours tokens
whose probability is near a target which adapts to the probabilities of the tokens chosen
so far (an exponential moving average). Kernel: ``kernels/adaptive_p.py``."""

from __future__ import annotations

from typing import Any

import numpy as np

from ... import kernels as _k
from ..candidates import Candidates, require_candidates
from ..flags import Flag
from ..params import REQUIRED, Param
from ..stage import Stage
from .seeded import Seeded

__all__ = ["AdaptiveP"]


class AdaptiveP(Seeded, Stage):
    """Adaptive-p (llama.cpp semantics: target < 0 is plain ``dist``; decay in [0, 0.99]).

    State: ``S = Σ p_j · decay^j`` and ``W = Σ decay^j`` over the chosen tokens (newest
    first), ``p_j`` a chosen token's probability *before* the transform; both start at
    their fixed point for a history at the target (``S = target/(1 − decay)``,
    ``W = 1/(1 − decay)``). Per step the adapted target is ``a = clamp(2·target − S/W, 0, 1)``
    (the step pulls the average back towards the target), the logits are reshaped around
    ``a`` (``kernels.adaptive_p_transform``) and one token is drawn from their softmax.
    ``accept`` of the drawn token updates ``S ← p + decay·S``, ``W ← 1 + decay·W`` (another
    token, e.g. a grammar's correction, leaves the state as it is, as in llama.cpp).
    Float64 here; llama.cpp keeps the state in float32. ``info()``: ``adaptive_target`` (the
    adapted target of this step) and ``adaptive_avg`` (``S/W`` after it).
    """

    name = "adaptive_p"
    selects = True
    params = (
        Param("target", float, REQUIRED, -1.0, 1.0),
        Param("decay", float, 0.9, 0.0, 0.99),
    )
    main = "target"
    flags = (
        Flag("adaptive_target", "target", float, "--adaptive-target",
             "Adaptive-p: select tokens near this probability, adapted to the recent choices "
             "(0 to 1; negative: off); replaces the final dist."),
        Flag("adaptive_decay", "decay", float, "--adaptive-decay",
             "Adaptive-p: decay of the moving average (0 to 0.99, default 0.9)."),
    )

    def __init__(self, target: float, decay: float = 0.9, seed: int | None = None):
        self._set(target=target, decay=decay)
        self._init_stream(seed)
        self._fresh()

    def _fresh(self) -> None:
        self.weighted_sum = self.target / (1.0 - self.decay)
        self.total_weight = 1.0 / (1.0 - self.decay)
        self._pending = -1
        self._pending_p = 0.0
        self.last_target = float("nan")
        self._orig = np.zeros(0, dtype=np.float64)

    @classmethod
    def flags_off(cls, values: dict[str, Any]) -> bool:
        return values.get("target", -1.0) < 0.0

    def chain_from_flags(self, stages: list) -> list:
        """``--adaptive-target`` replaces the selector, except mirostat (which llama.cpp keeps,
        ignoring adaptive-p, when both are given)."""
        last = stages[-1] if stages else None
        if last is not None and getattr(last, "slot", None) == "mirostat":
            return list(stages)
        return super().chain_from_flags(stages)

    def reset(self, seed: int | None = None) -> None:
        self._reset_stream(seed)
        self._fresh()

    def take_state(self, old: Stage) -> None:
        self._take_stream(old)
        if isinstance(old, AdaptiveP) and old.target == self.target and old.decay == self.decay:
            self.weighted_sum, self.total_weight = old.weighted_sum, old.total_weight

    def adapted_target(self) -> float:
        t = min(max(self.target, 0.0), 1.0)
        a = t if self.total_weight == 0.0 else 2.0 * t - self.weighted_sum / self.total_weight
        return min(max(a, 0.0), 1.0)

    def transform(self, cands: Candidates) -> None:
        """Reshape ``cands.logits`` around this step's adapted target (no draw)."""
        require_candidates(self.name, cands)
        if self._orig.shape[0] < cands.n_vocab:
            self._orig = np.zeros(cands.n_vocab, dtype=np.float64)
        self.last_target = self.adapted_target()
        _k.adaptive_p_transform(cands.logits, cands.n, self.last_target, self._orig)
        cands.sorted = False

    def distribution(self, cands: Candidates) -> np.ndarray | None:
        if self.target < 0.0:
            return None
        self.transform(cands)
        p = np.empty(cands.n, dtype=np.float64)
        _k.softmax(cands.logits, cands.n, p)
        return p

    def apply(self, cands: Candidates) -> None:
        u = self._rng.random()
        if self.target < 0.0:
            require_candidates(self.name, cands)
            cands.selected = int(_k.sample_categorical(cands.logits, cands.n, u))
            return
        self.transform(cands)
        i = int(_k.sample_categorical(cands.logits, cands.n, u))
        cands.selected = i
        self._pending = int(cands.ids[i])
        self._pending_p = float(self._orig[i])

    def observe(self, p: float) -> None:
        """Move the average for a chosen token of original probability ``p``."""
        self.weighted_sum = p + self.decay * self.weighted_sum
        self.total_weight = 1.0 + self.decay * self.total_weight

    def accept(self, token: int) -> None:
        if self._pending >= 0 and int(token) == self._pending:
            self.observe(self._pending_p)
        self._pending = -1

    def info(self) -> dict[str, Any]:
        avg = self.weighted_sum / self.total_weight if self.total_weight else float("nan")
        return {"adaptive_target": self.last_target, "adaptive_avg": avg}
