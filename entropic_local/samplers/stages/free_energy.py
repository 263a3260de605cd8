"""Free-energy sampling: truncation and temperature in the language of thermodynamics.

One energy/β interface. A step's logits ``z`` are energies ``E_i = -z_i``; at
inverse temperature ``β = 1/T`` the sampling distribution over a kept set ``S`` is
``p_i = e^{-β E_i} / Z_S``, ``Z_S = Σ_{i∈S} e^{-β E_i}``, and its Helmholtz free energy is
``F_S = -T ln Z_S``. The full ensemble (every live candidate) has ``F = -T ln Z``. Since
``P(S) = Z_S / Z``::

    F_S - F = -T ln P(S) ≥ 0.

The stage ``free_energy`` chooses the kept set and the temperature in three modes:

``mode=window`` (default; params ``w``, ``t``)
    An **energy window** of width ``w`` above the ground state: keep ``E_i ≤ E_min + w``,
    i.e. ``z_i ≥ z_max - w`` (raw logits, independent of T), then sample at ``T = t``.
    This is min-p at temperature T with ``p_base = exp(-w/T)``
    (``p_i ≥ p_base p_max ⟺ z_i/T ≥ z_max/T - w/T``): the same kept set as
    ``temp=T,min_p=exp(-w/T)``, or as ``min_p=exp(-w),temp=T`` in llama.cpp's order.
    ``w = inf`` keeps everything; ``w = 0`` keeps the ground state (and its ties).
``mode=budget`` (params ``eps``, ``t``)
    A **free-energy budget** ``ε``: keep the smallest lowest-energy set ``S`` with
    ``F_S - F ≤ ε`` at ``T = t``, i.e. ``P_T(S) ≥ exp(-ε/T)``: top-p at temperature T with
    ``p = exp(-ε/T)`` (the same kept set as ``temp=T,top_p=exp(-ε/T)``). ``ε = 0`` keeps
    the whole ensemble, ``ε = inf`` the single lowest-energy token.
``mode=thermostat`` (params ``target``, ``w``, ``t``, ``t_min``, ``t_max``, ``iters``)
    The energy window ``w`` first, then a **thermostat**: T is chosen per step so that the
    entropy of the kept distribution, ``H_S(T)``, equals ``target`` (nats). ``H_S`` rises
    with T (``dH/dT = V/T``, varentropy = heat capacity), from ``ln #ground states`` at
    T → 0 to ``ln |S|`` at T → ∞. Newton's method on ``H`` as a function of ``ln T``
    (``dH/d ln T = T · dH/dT = V``, the same derivative; working in ``ln T`` keeps T
    positive): ``ln T ← ln T + (target - H)/V``, starting from the current temperature
    ``t`` (clamped into ``[t_min, t_max]``), safeguarded by a bracket in ``ln T`` (a step
    that leaves the bracket first tries the untried end of ``[t_min, t_max]``, then
    bisects), at most ``iters`` evaluations of ``(H, V)`` at a trial T, stopping early when
    ``|H - target| ≤ 1e-3``. After the last evaluation one more Newton step is taken
    (clamped to the bracket). When the target is out of reach T ends at the bound:
    ``t_max`` when even ``H_S(t_max) < target`` (e.g. a one-token window), ``t_min`` when
    ``H_S(t_min) > target``. Each evaluation is one fused pass over the kept set only.
    The stage ``thermostat`` is this mode on its own, with ``target`` as its main
    parameter (``thermostat=1.0``).

The stages transform and truncate; they do not select: the chain's final ``dist`` samples
``softmax(-β E)`` over the kept set (the logits are left divided by T).

Per step (``info()``, into ``Step.info`` through ``SamplerChain.step_info()``):

* ``free_energy``: ``F_S = -T ln Z_S`` of the **kept set** at the sampling temperature,
  i.e. of the distribution that is actually sampled (``F`` of the full ensemble would need
  another pass over the vocabulary whenever T ≠ 1; at T = 1 it is ``-Step``'s log Z);
* ``temperature``: T used for sampling; ``beta``: 1/T;
* ``kept_entropy``: ``H_S(T)``, the entropy (nats) of the kept distribution (what the
  thermostat aims at ``target``).

Presets (``samplers/presets.py``):

* ``free_energy``: ``free_energy:t=0.8`` = window ``w = 3`` (min-p ≈ 0.05 at T = 1, as
  llama's preset) sampled at T = 0.8: llama's min-p and temperature, without its top-k and
  top-p, which an energy window makes redundant.
* ``thermostat``: ``thermostat`` = window ``w = 3`` with the entropy of the kept
  distribution held at 1.0 nats (about e ≈ 2.7 effective choices per token), T in
  [0.25, 2], 4 evaluations at most (what T it picks on real text: ``docs/measurements.md``).
  A one-token window cannot reach any positive target: T goes to t_max, which changes
  nothing there.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import numpy as np

from ... import kernels as _k
from ...errors import InvalidSamplerSpec
from ..candidates import Candidates, require_candidates
from ..params import INF, Param, format_value
from ..stage import Stage
from .temperature import TINY_TEMPERATURE, OwnTemperature, scale_logits

__all__ = ["FreeEnergy", "Thermostat", "MODES", "MODE_PARAMS", "solve_temperature"]

MODES = ("window", "budget", "thermostat")

W_DEFAULT = 3.0          # exp(-3) = 0.0498: min-p ≈ 0.05 at T = 1 (llama's preset)
EPS_DEFAULT = 0.05       # exp(-0.05) = 0.951: top-p ≈ 0.95 at T = 1 (llama's preset)
TARGET_DEFAULT = 1.0     # nats
T_MIN_DEFAULT = 0.25
T_MAX_DEFAULT = 2.0
ITERS_DEFAULT = 4
TOLERANCE = 1e-3         # nats: the thermostat stops early within this of the target


_P_W = Param("w", float, W_DEFAULT, 0.0, INF, hi_open=False)   # inf: keep everything
_P_EPS = Param("eps", float, EPS_DEFAULT, 0.0, INF, hi_open=False)
_P_T = Param("t", float, 1.0, 0.0, INF, lo_open=True)
_P_TARGET = Param("target", float, TARGET_DEFAULT, 0.0, INF)
_P_T_MIN = Param("t_min", float, T_MIN_DEFAULT, 0.0, INF, lo_open=True)
_P_T_MAX = Param("t_max", float, T_MAX_DEFAULT, 0.0, INF, lo_open=True)
_P_ITERS = Param("iters", int, ITERS_DEFAULT, 1, 64)

MODE_PARAMS = {
    "window": ("w", "t"),
    "budget": ("eps", "t"),
    "thermostat": ("target", "w", "t", "t_min", "t_max", "iters"),
}


def solve_temperature(logits, n: int, target: float, t0: float, t_min: float, t_max: float,
                      iters: int) -> tuple[float, int]:
    """The thermostat: T in ``[t_min, t_max]`` with ``H(softmax(logits[:n]/T)) ≈ target``.

    ``H`` rises from ``ln #ground states`` (T → 0) to ``H_max = ln m`` (T → ∞, ``m`` the
    number of unmasked candidates) along a sigmoid in ``ln T``. Newton's method works on
    that sigmoid's logit, ``y = ln(H / (H_max - H))``, as a function of ``ln T``; its
    derivative comes from ``dH/dT = V/T``::

        dy/d ln T = V · H_max / (H (H_max - H)),    ln T ← ln T - (y(H) - y(target)) / (dy/d ln T)

    (the same root as Newton on ``H`` itself, but nearly linear where ``H`` saturates, so a
    start on a flat part does not overshoot: typically 2 to 4 evaluations to 1e-3 nats).
    Safeguards: a bracket in ``ln T`` (a step leaving it first tries the untried end of
    ``[t_min, t_max]``, then bisects), at most ``iters`` evaluations of ``logit_stats`` over
    ``logits[:n]`` (raw, unscaled), early stop within ``TOLERANCE`` of the target; after
    the last evaluation one more step is taken without evaluating. A target that no T can
    reach clamps T to the bound: ``t_max`` when ``H(t_max) < target`` (always when
    ``target ≥ H_max``, e.g. a one-token window), ``t_min`` when ``H(t_min) > target``.
    Returns ``(T, evaluations)``.
    """
    live = logits[:n]
    m = int(n - np.count_nonzero(live == -np.inf))
    if m <= 1 or target >= math.log(m):
        return t_max, 0
    if target <= 0.0:
        return t_min, 0
    h_max = math.log(m)
    ratio = target / (h_max - target)
    if ratio <= 0.0:  # a subnormal target underflows: it is 0 for every T we can reach
        return t_min, 0
    y_target = math.log(ratio)
    log_t_min, log_t_max = math.log(t_min), math.log(t_max)
    lo, hi = log_t_min, log_t_max
    lo_tried = hi_tried = False      # whether H was evaluated at the original bounds
    x = min(max(math.log(t0), lo), hi)
    k = 0
    while k < iters:
        k += 1
        # below TINY_TEMPERATURE the distribution is the greedy limit (and 1/T may overflow)
        _, _, h, v = _k.logit_stats(live, max(math.exp(x), TINY_TEMPERATURE))
        err = h - target
        if abs(err) <= TOLERANCE:
            return math.exp(x), k
        if err < 0.0:                # too cold: the answer is above x
            if x >= hi:
                return t_max, k      # unreachable: clamp at t_max
            lo = x
            lo_tried = lo_tried or x <= log_t_min
        else:                        # too hot
            if x <= lo:
                return t_min, k      # unreachable: clamp at t_min
            hi = x
            hi_tried = hi_tried or x >= log_t_max
        hc = min(max(h, 1e-12 * h_max), h_max * (1.0 - 1e-12))
        slope = v * h_max / (hc * (h_max - hc))
        y = math.log(hc / (h_max - hc))
        if slope > 0.0 and math.isfinite(slope):
            xn = x - (y - y_target) / slope
        else:
            xn = math.inf if err < 0.0 else -math.inf
        if not (lo < xn < hi):
            if xn >= hi and not hi_tried and hi == log_t_max:
                xn, hi_tried = hi, True
            elif xn <= lo and not lo_tried and lo == log_t_min:
                xn, lo_tried = lo, True
            else:
                xn = 0.5 * (lo + hi)
        x = xn
    return math.exp(x), k


class FreeEnergy(OwnTemperature, Stage):
    """Free-energy truncation and temperature (see the module doc): ``mode=window`` (energy
    window ``w``, ≡ min-p), ``mode=budget`` (free-energy budget ``eps``, ≡ top-p) or
    ``mode=thermostat`` (window ``w``, then T such that the kept entropy is ``target``).

    Spec: ``free_energy`` (window w = 3, T = 1), ``free_energy:w=2.3,t=0.8``,
    ``free_energy:mode=budget,eps=0.1``, ``free_energy:mode=thermostat,target=1.5``.
    Parameters that do not apply to the mode are rejected.
    """

    name = "free_energy"
    params = (_P_W, _P_EPS, _P_T, _P_TARGET, _P_T_MIN, _P_T_MAX, _P_ITERS)
    order = 7
    fixed_mode: ClassVar[str | None] = None

    def __init__(self, mode: str = "window", w: float = W_DEFAULT, eps: float = EPS_DEFAULT,
                 t: float = 1.0, target: float = TARGET_DEFAULT, t_min: float = T_MIN_DEFAULT,
                 t_max: float = T_MAX_DEFAULT, iters: int = ITERS_DEFAULT):
        if self.fixed_mode is not None:
            mode = self.fixed_mode
        self.mode = self._check_mode(mode)
        values = dict(w=w, eps=eps, t=t, target=target, t_min=t_min, t_max=t_max, iters=iters)
        self._set(**{p.name: values[p.name] for p in self.params})
        for p in FreeEnergy.params:
            if not hasattr(self, p.name):
                setattr(self, p.name, p.default)
        for p in self.params:
            if p.name not in MODE_PARAMS[self.mode] and getattr(self, p.name) != p.default:
                raise InvalidSamplerSpec(self._not_for_mode(p.name))
        if self.mode == "thermostat" and self.t_min > self.t_max:
            raise InvalidSamplerSpec(
                f"{self.name}: t_min={format_value(self.t_min)} is above "
                f"t_max={format_value(self.t_max)}")
        self._last: dict[str, Any] = {}

    # -- spec ------------------------------------------------------------------------------
    @classmethod
    def _check_mode(cls, mode: Any) -> str:
        if mode not in MODES:
            raise InvalidSamplerSpec(
                f"{cls.name}: mode must be one of {', '.join(MODES)}, got {mode!r}")
        return mode

    def _not_for_mode(self, key: str) -> str:
        return (f"{self.name}: parameter '{key}' does not apply to mode={self.mode} "
                f"(it takes {', '.join(MODE_PARAMS[self.mode])})")

    @classmethod
    def accepts_param(cls, key: str) -> bool:
        return (key == "mode" and cls.fixed_mode is None) or cls.param(key) is not None

    @classmethod
    def param_help(cls) -> str:
        if cls.fixed_mode is None:
            return (f"{cls.name} takes mode (window, budget, thermostat), "
                    + ", ".join(p.name for p in cls.params)
                    + "; window: w, t; budget: eps, t; thermostat: "
                    + ", ".join(MODE_PARAMS["thermostat"]))
        return f"{cls.name} takes " + ", ".join(p.name for p in cls.params)

    @classmethod
    def convert(cls, key: str, raw: str) -> Any:
        if key == "mode":
            return cls._check_mode(raw.strip())
        return super().convert(key, raw)

    @classmethod
    def from_params(cls, values: dict[str, Any]) -> "FreeEnergy":
        mode = cls.fixed_mode or values.get("mode", "window")
        for key in values:
            if key != "mode" and key not in MODE_PARAMS[mode]:
                raise InvalidSamplerSpec(
                    f"{cls.name}: parameter '{key}' does not apply to mode={mode} "
                    f"(it takes {', '.join(MODE_PARAMS[mode])})")
        return cls(**values)

    def param_values(self) -> dict[str, Any]:
        d: dict[str, Any] = {} if self.fixed_mode else {"mode": self.mode}
        d.update({p.name: getattr(self, p.name) for p in self.params
                  if p.name in MODE_PARAMS[self.mode]})
        return d

    def take_flags(self, values: dict[str, Any]) -> Stage:
        if self.mode == "thermostat":  # T is chosen per step: a fixed one would undo target
            raise self.refuse(self, values["temp"])
        return super().take_flags(values)

    def spec(self) -> str:
        shown: list[tuple[str, Any]] = []
        if self.fixed_mode is None and self.mode != "window":
            shown.append(("mode", self.mode))
        shown += [(p.name, getattr(self, p.name)) for p in self.params
                  if getattr(self, p.name) != p.default]
        if self.main is not None and len(shown) == 1 and shown[0][0] == self.main:
            return f"{self.name}={format_value(shown[0][1])}"
        if not shown:
            return self.name
        return self.name + ":" + ",".join(
            f"{k}={v if isinstance(v, str) else format_value(v)}" for k, v in shown)

    # -- sampling --------------------------------------------------------------------------
    def _window(self, cands: Candidates) -> None:
        if math.isinf(self.w):
            return
        p = math.exp(-self.w)       # z_i ≥ z_max + ln p = z_max - w
        if p <= 0.0:                # w > 745: a window wider than float64 can resolve
            return
        old = cands.n
        cands.n = _k.min_p(cands.ids, cands.logits, old, p, 1)
        if cands.n != old:
            cands.touch()

    def apply(self, cands: Candidates) -> None:
        require_candidates(self.name, cands)
        evals = 0
        if self.mode == "budget":
            t = self.t
            scale_logits(cands, t)
            p = math.exp(-self.eps / t)         # P_T(S) ≥ p  ⟺  F_S - F ≤ eps
            if p < 1.0:
                cands.n = _k.top_p(cands.ids, cands.logits, cands.n, p, 1, cands.sorted)
                cands.sorted = True
                cands.touch()
            _, log_z, h, _ = _k.logit_stats(cands.logits[: cands.n], 1.0)
        else:
            self._window(cands)
            if self.mode == "thermostat":
                t, evals = solve_temperature(cands.logits, cands.n, self.target, self.t,
                                             self.t_min, self.t_max, self.iters)
            else:
                t = self.t
            _, log_z, h, _ = _k.logit_stats(cands.logits[: cands.n], max(t, TINY_TEMPERATURE))
            scale_logits(cands, t)
        self._last = {
            "free_energy": -t * float(log_z),
            "temperature": t,
            "beta": 1.0 / t,
            "kept_entropy": float(h),
        }
        if self.mode == "thermostat":
            self._last["thermostat_evals"] = evals

    def info(self) -> dict[str, Any]:
        return dict(self._last)


class Thermostat(FreeEnergy):
    """``free_energy:mode=thermostat`` as a stage of its own: window ``w``, then T in
    ``[t_min, t_max]`` such that the kept distribution's entropy is ``target`` nats
    (Newton on ``dH/d ln T = V`` from ``t``, at most ``iters`` evaluations).
    Spec: ``thermostat`` (target 1.0), ``thermostat=1.5``, ``thermostat:target=1.5,w=inf``.
    """

    name = "thermostat"
    params = (_P_TARGET, _P_W, _P_T, _P_T_MIN, _P_T_MAX, _P_ITERS)
    main = "target"
    fixed_mode = "thermostat"

    def __init__(self, target: float = TARGET_DEFAULT, w: float = W_DEFAULT, t: float = 1.0,
                 t_min: float = T_MIN_DEFAULT, t_max: float = T_MAX_DEFAULT,
                 iters: int = ITERS_DEFAULT):
        super().__init__(mode="thermostat", w=w, t=t, target=target, t_min=t_min,
                         t_max=t_max, iters=iters)
