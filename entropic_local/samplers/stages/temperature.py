"""Temperature: ``temp`` and its entropy-scaled form ``dyn_temp`` (llama.cpp's ``temp_ext``),
the greedy limit they share with ``greedy``, and the rule for stages with a temperature of
their own.

``temp`` and ``dyn_temp`` are alternatives (one slot): the flags ``--temp``,
``--dynatemp-range`` and ``--dynatemp-exp`` set that slot, which ends up ``temp`` whenever
the range is 0. A chain without either whose ``aes``, ``entmax``, ``entropix`` or
``free_energy`` stage has a temperature ``t`` of its own gets ``--temp`` there instead of a
second, compounding temperature; a thermostat refuses it. ``temp ≤ 0`` is greedy everywhere.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ... import kernels as _k
from ...errors import InvalidSamplerSpec
from ..candidates import Candidates, require_candidates
from ..flags import Flag
from ..params import REQUIRED, Param, format_value
from ..stage import Stage

__all__ = ["Temp", "DynTemp", "OwnTemperature", "scale_logits", "keep_argmax",
           "TINY_TEMPERATURE", "F32_MAX", "F32_TINY"]

F32_MAX = float(np.finfo(np.float32).max)
F32_TINY = float(np.finfo(np.float32).smallest_subnormal)  # smaller rounds to 0
# Below this temperature sampling is greedy for any logit gap above 1e-28, and dividing
# float32 logits by it could overflow to +inf (ties among several "+inf" tokens).
TINY_TEMPERATURE = 1e-30


def scale_logits(cands: Candidates, t: float) -> None:
    """``z ← z / t`` for a finite ``t``: ``t < TINY_TEMPERATURE`` (including ``t ≤ 0``) keeps
    only the argmax; a ``t`` above float32's range is clamped to it (the uniform limit)."""
    if t < TINY_TEMPERATURE:
        keep_argmax(cands)
    elif t != 1.0:
        _k.scale_temperature(cands.logits, cands.n, min(t, F32_MAX))


def keep_argmax(cands: Candidates, stage: str = "temp") -> None:
    """Truncate to the single largest logit (llama.cpp's temp ≤ 0)."""
    require_candidates(stage, cands)
    i = int(_k.argmax(cands.logits, cands.n))
    if i != 0:
        cands.ids[0] = cands.ids[i]
        cands.logits[0] = cands.logits[i]
    cands.n = 1
    cands.sorted = True
    cands.touch()


class Temp(Stage):
    """Temperature: ``z_i ← z_i / t`` in float32 (order kept). ``t ≤ 0`` is greedy as in
    llama.cpp: only the argmax is kept (``n = 1``), so the final stage can only pick it
    (llama.cpp masks the others with -inf instead; the choice is the same). ``t = 1`` is a
    no-op; ``0 < t < TINY_TEMPERATURE`` (1e-30) counts as 0 (dividing by it could overflow
    float32), a t above float32's range is clamped to it."""

    name = "temp"
    params = (Param("t", float, REQUIRED),)
    main = "t"
    order = 7
    flags = (Flag("temp", "t", float, "--temp", "Temperature (<= 0: greedy).", field="temperature"),)

    def __init__(self, t: float):
        self._set(t=t)

    def apply(self, cands: Candidates) -> None:
        scale_logits(cands, self.t)

    @classmethod
    def from_flags(cls, current: Stage | None, values: dict[str, Any]) -> Stage:
        """The temperature slot after ``--temp`` / ``--dynatemp-*``: ``dyn_temp`` when the
        range is not 0, else ``temp`` (base 1.0 when neither was there)."""
        if isinstance(current, DynTemp):
            base, delta, exponent = current.base, current.delta, current.exponent
        else:
            base = current.t if isinstance(current, Temp) else 1.0
            delta, exponent = 0.0, 1.0
        base = values.get("temp", base)
        delta = values.get("dynatemp_range", delta)
        exponent = values.get("dynatemp_exponent", exponent)
        if delta != 0.0:
            return DynTemp(base, delta, exponent)
        return Temp(base)


class DynTemp(Stage):
    """Entropy-scaled temperature (llama.cpp ``temp_ext``)::

        T = T_min + (T_max − T_min) · (H / ln N)^exponent,
        T_min = max(0, base − delta),  T_max = base + delta

    with ``H`` the entropy (nats) of the live candidates and ``N`` their count; then
    ``z_i ← z_i / T``. ``delta = 0`` is plain ``temp=base`` (so ``base ≤ 0`` is greedy).
    Example: z = [1, 2, 3], base 1, delta 0.5, exponent 1 → T = 1.257679.
    ``N`` counts unmasked candidates; with at most one nothing changes (T reported as 1).
    If ``T < TINY_TEMPERATURE`` (1e-30: a near one-hot distribution with ``T_min = 0``) only
    the argmax is kept, as for ``temp ≤ 0``.
    The last T is reported by ``info()`` as ``temperature``.
    """

    name = "dyn_temp"
    params = (
        Param("base", float, REQUIRED),
        Param("delta", float, 0.0, 0.0),
        Param("exponent", float, 1.0, 0.0),
    )
    order = 7
    slot = "temp"
    flags = (
        Flag("dynatemp_range", "delta", float, "--dynatemp-range",
             "Dynamic temperature: T from temp - range to temp + range by the entropy (0: off)."),
        Flag("dynatemp_exponent", "exponent", float, "--dynatemp-exp",
             "Exponent of the dynamic temperature's entropy term (default 1.0)."),
    )

    def __init__(self, base: float, delta: float = 0.0, exponent: float = 1.0):
        self._set(base=base, delta=delta, exponent=exponent)
        self.last_temperature = float("nan")

    def apply(self, cands: Candidates) -> None:
        if self.delta == 0.0:
            self.last_temperature = self.base
            scale_logits(cands, self.base)
            return
        require_candidates(self.name, cands)
        t_min = max(0.0, self.base - self.delta)
        if t_min >= TINY_TEMPERATURE:
            t = float(_k.dynamic_temperature(cands.logits, cands.n, self.base, self.delta,
                                             self.exponent))
            self.last_temperature = t
            return
        # T_min ~ 0: a near one-hot distribution gives a T so small that dividing by it
        # overflows float32; compute T here (the kernel's formula) and go greedy below
        # TINY_TEMPERATURE.
        live = cands.logits[: cands.n]
        n_live = int(np.count_nonzero(live != -np.inf))
        if n_live <= 1:
            self.last_temperature = 1.0
            return
        h = float(_k.logit_stats(live, 1.0)[2])
        t_max = self.base + self.delta
        t = t_min + (t_max - t_min) * max(0.0, h / math.log(n_live)) ** self.exponent
        self.last_temperature = t
        scale_logits(cands, t)

    def info(self) -> dict[str, Any]:
        return {"temperature": self.last_temperature}


class OwnTemperature:
    """Mixin of the stages with a temperature ``t`` of their own (``aes``, ``entmax``,
    ``entropix``, ``free_energy``): when the chain has no ``temp``/``dyn_temp``, a ``--temp``
    above 0 (and no dynatemp flag) sets ``t`` instead of inserting a compounding ``temp``."""

    takes_what = "a temperature t"

    def takes_flags(self, values: dict[str, Any]) -> bool:
        return set(values) == {"temp"} and values["temp"] > 0

    def take_flags(self, values: dict[str, Any]) -> Stage:
        new = self.clone()  # type: ignore[attr-defined]  # keeps its seed, stream and state
        new.t = type(self).param("t").check(self.name, values["temp"])  # type: ignore[attr-defined]
        return new

    @staticmethod
    def refuse(stage: Any, temp: float) -> InvalidSamplerSpec:
        """The error of a stage that chooses T per step (a thermostat)."""
        return InvalidSamplerSpec(
            f"{stage.name}: temp={format_value(temp)} does not apply: the stage chooses the "
            f"temperature per step to hold the kept entropy at target={format_value(stage.target)} nats",
            hint=f"change {stage.name}'s target, t_min or t_max instead, or use temp 0 for greedy")
