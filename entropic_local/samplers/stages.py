"""The basic sampler stages: llama.cpp's samplers, one class each, over the numba kernels.

Every stage works on a ``Candidates`` set in place and keeps its flags truthful:

* a stage that truncates or reorders calls ``cands.touch()`` (the set is then no longer the
  untouched vocabulary) and sets ``cands.n`` to the kernel's result;
* ``cands.sorted`` is set to True after a kernel that leaves the live entries sorted by logit
  (descending), set to False after one that may break the order, and left alone otherwise;
* a *selecting* stage (``selects = True``: ``greedy``, ``dist``) sets ``cands.selected`` to
  the index, into the live entries, of the chosen token. ``cands.n`` at selection time is
  the number of tokens the selector could have picked: ``dist`` leaves the set as the
  earlier stages left it (masked ``-inf`` entries that no truncating stage dropped are
  still counted), ``greedy`` reduces it to the chosen token (``n = 1``), as ``temp ≤ 0``.

Parameters are validated when a stage is built; a bad value raises ``InvalidSamplerSpec``
naming the stage, the parameter and the allowed range, e.g.
``top_p: p=1.5 is out of range (0, 1]``.

Each class declares its parameters in ``params`` (name, type, default, range) and, when it
has one, its *main* parameter (``main``): the one written as ``name=value`` in a spec string
(``top_k=40``). ``spec()`` prints the stage in the canonical form described in
``samplers/spec.py``. ``STAGES`` maps stage names to classes; ``register_stage`` adds more.
"""

from __future__ import annotations

import math
import numbers
import secrets
from collections import deque
from typing import Any, ClassVar, Mapping

import numpy as np

from .. import kernels as _k
from ..errors import InvalidSamplerSpec
from .base import Candidates, Sampler

__all__ = [
    "Param", "Stage", "STAGES", "register_stage",
    "Penalties", "LogitBias", "TopNSigma", "TopK", "TypicalP", "TopP", "MinP",
    "Temp", "DynTemp", "Greedy", "Dist",
]

INF = math.inf
_REQUIRED = object()


def format_value(v: Any) -> str:
    """A parameter value as written in a spec: ints in decimal, floats by ``repr``
    (shortest round trip: ``0.95``, ``1.0``, ``1e-05``, ``inf``, ``-inf``)."""
    if isinstance(v, float):
        return repr(v)
    return str(v)


def _bound(x: float) -> str:
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    if float(x).is_integer():
        return str(int(x))
    return repr(float(x))


class Param:
    """One stage parameter: its name, type (``int`` or ``float``), default and range.

    The range is ``lo``..``hi``; ``lo_open``/``hi_open`` say whether a bound is excluded
    (infinite bounds are always excluded, so a float parameter with range (-inf, inf) must be
    finite). ``default`` is ``REQUIRED`` for a parameter that must be given.
    """

    REQUIRED = _REQUIRED

    __slots__ = ("name", "kind", "default", "lo", "hi", "lo_open", "hi_open")

    def __init__(self, name: str, kind: type, default: Any = _REQUIRED, lo: float = -INF,
                 hi: float = INF, lo_open: bool = False, hi_open: bool = False):
        self.name = name
        self.kind = kind
        self.default = default
        self.lo, self.hi = lo, hi
        self.lo_open = lo_open or math.isinf(lo)
        self.hi_open = hi_open or math.isinf(hi)

    @property
    def required(self) -> bool:
        return self.default is _REQUIRED

    @property
    def range_text(self) -> str:
        return (("(" if self.lo_open else "[") + _bound(self.lo) + ", " + _bound(self.hi)
                + (")" if self.hi_open else "]"))

    def in_range(self, v: float) -> bool:
        if v != v:  # NaN
            return False
        lo_ok = v > self.lo if self.lo_open else v >= self.lo
        hi_ok = v < self.hi if self.hi_open else v <= self.hi
        return lo_ok and hi_ok

    def check(self, stage: str, value: Any) -> Any:
        """Validate a Python value; return it as ``int`` or ``float``."""
        if self.kind is int:
            if isinstance(value, bool) or not isinstance(value, numbers.Integral):
                raise InvalidSamplerSpec(f"{stage}: {self.name} must be an integer, got {value!r}")
            value = int(value)
        else:
            if isinstance(value, bool) or not isinstance(value, numbers.Real):
                raise InvalidSamplerSpec(f"{stage}: {self.name} must be a number, got {value!r}")
            value = float(value)
        if not self.in_range(value):
            raise InvalidSamplerSpec(
                f"{stage}: {self.name}={format_value(value)} is out of range {self.range_text}")
        return value

    def __repr__(self) -> str:
        d = "required" if self.required else f"default {format_value(self.default)}"
        return f"Param({self.name}: {self.kind.__name__} in {self.range_text}, {d})"


class Stage(Sampler):
    """Base class of the stages in this module: declared parameters, validation, spec.

    Subclasses set ``name``, ``params`` and (optionally) ``main``, call ``self._set(...)``
    from ``__init__`` with every parameter, and implement ``apply``.
    """

    params: ClassVar[tuple[Param, ...]] = ()
    main: ClassVar[str | None] = None     # the parameter written as ``name=value``
    selects: ClassVar[bool] = False       # sets ``cands.selected`` (must end a chain)
    stochastic: ClassVar[bool] = False    # draws random numbers (reseeded by ``reset``)

    def _set(self, **values: Any) -> None:
        for p in self.params:
            v = values[p.name]
            if v is _REQUIRED:
                raise InvalidSamplerSpec(f"{self.name}: missing required parameter '{p.name}'")
            setattr(self, p.name, p.check(self.name, v))

    # -- spec strings -------------------------------------------------------------------
    @classmethod
    def param(cls, name: str) -> Param | None:
        for p in cls.params:
            if p.name == name:
                return p
        return None

    @classmethod
    def accepts_param(cls, key: str) -> bool:
        """Whether ``key=value`` may continue this stage in a spec string."""
        return cls.param(key) is not None

    @classmethod
    def param_help(cls) -> str:
        if not cls.params:
            return f"{cls.name} takes no parameters"
        return f"{cls.name} takes " + ", ".join(p.name for p in cls.params)

    @classmethod
    def convert(cls, key: str, raw: str) -> Any:
        """Convert one spec-string value of parameter ``key`` (already known to be accepted)
        to a Python value and validate it. Raises ``InvalidSamplerSpec``."""
        from .spec import parse_number  # spec imports this module

        p = cls.param(key)
        assert p is not None
        value = parse_number(raw, integer=p.kind is int)
        if value is None:
            kind = "an integer" if p.kind is int else "a number"
            raise InvalidSamplerSpec(f"{cls.name}: {key} must be {kind}, got '{raw}'")
        return p.check(cls.name, value)

    @classmethod
    def from_params(cls, values: dict[str, Any]) -> "Stage":
        """Build from converted spec values (``{param: value}``)."""
        for p in cls.params:
            if p.required and p.name not in values:
                example = f"{cls.name}=..." if cls.main == p.name else f"{cls.name}:{p.name}=..."
                raise InvalidSamplerSpec(
                    f"{cls.name}: missing required parameter '{p.name}' (write {example})")
        return cls(**values)

    def param_values(self) -> dict[str, Any]:
        return {p.name: getattr(self, p.name) for p in self.params}

    def spec(self) -> str:
        """Canonical form: ``name=value`` when the stage has a main parameter and every other
        parameter is at its default; else ``name`` followed by ``:p=v,...`` listing the
        required parameters and those that differ from their defaults, in declaration order."""
        shown = [(p.name, getattr(self, p.name)) for p in self.params
                 if p.required or getattr(self, p.name) != p.default]
        if self.main is not None and len(shown) == 1 and shown[0][0] == self.main:
            return f"{self.name}={format_value(shown[0][1])}"
        if not shown:
            return self.name
        return self.name + ":" + ",".join(f"{k}={format_value(v)}" for k, v in shown)

    def info(self) -> dict[str, Any] | None:
        """What the stage decided on its last ``apply`` (for per-step records), or None."""
        return None


def _require_candidates(stage: str, cands: Candidates) -> None:
    if cands.n < 1:
        raise ValueError(f"{stage}: no candidates left to choose from")


# ---------------------------------------------------------------------------------------
# Transforming stages


class Penalties(Stage):
    """Repetition penalties over the last ``last_n`` accepted tokens (llama.cpp semantics).

    For a candidate token t that occurs ``c_t > 0`` times in the window::

        z_t ← z_t / repeat   if z_t > 0      (z_t · repeat if z_t ≤ 0)
        z_t ← z_t − c_t · freq − presence

    Tokens not in the window are untouched. ``last_n = 0`` disables the stage (nothing is
    recorded); ``last_n = -1`` keeps an unbounded window (llama.cpp's "-1 = context size").
    The window slides: accepting a token when it is full evicts the oldest one.

    State: the window (a deque), ``counts`` (int32, indexed by token id) and the list of
    distinct tokens with a positive count, maintained incrementally by ``accept``.
    ``reset`` clears it; ``clone`` copies it.
    """

    name = "penalties"
    params = (
        Param("repeat", float, 1.0, 0.0, INF, lo_open=True),
        Param("freq", float, 0.0),
        Param("presence", float, 0.0),
        Param("last_n", int, 64, -1),
    )

    def __init__(self, repeat: float = 1.0, freq: float = 0.0, presence: float = 0.0,
                 last_n: int = 64):
        self._set(repeat=repeat, freq=freq, presence=presence, last_n=last_n)
        for key in ("repeat", "freq", "presence"):  # applied as float32, as in llama.cpp
            v = getattr(self, key)
            if not abs(v) <= _F32_MAX or (key == "repeat" and v < _F32_TINY):
                raise InvalidSamplerSpec(
                    f"penalties: {key}={format_value(v)} is outside float32's range")
        self._window: deque[int] = deque()
        self._counts = np.zeros(0, dtype=np.int32)
        self._seen = np.zeros(0, dtype=np.int32)
        self._n_seen = 0
        self._slot: dict[int, int] = {}   # token -> index in _seen

    @property
    def active(self) -> bool:
        """False when the parameters make this stage a no-op."""
        return self.last_n != 0 and not (
            self.repeat == 1.0 and self.freq == 0.0 and self.presence == 0.0)

    # -- history ------------------------------------------------------------------------
    @property
    def window(self) -> tuple[int, ...]:
        """The tokens in the penalty window, oldest first."""
        return tuple(self._window)

    def count(self, token: int) -> int:
        """How many times ``token`` occurs in the window."""
        t = int(token)
        return int(self._counts[t]) if 0 <= t < self._counts.shape[0] else 0

    @property
    def seen(self) -> np.ndarray:
        """The distinct tokens in the window (unordered)."""
        return self._seen[: self._n_seen].copy()

    def _inc(self, t: int) -> None:
        counts = self._counts
        if t >= counts.shape[0]:
            grown = np.zeros(max(t + 1, 2 * counts.shape[0]), dtype=np.int32)
            grown[: counts.shape[0]] = counts
            self._counts = counts = grown
        counts[t] += 1
        if counts[t] == 1:
            if self._n_seen == self._seen.shape[0]:
                grown = np.zeros(max(16, 2 * self._n_seen), dtype=np.int32)
                grown[: self._n_seen] = self._seen[: self._n_seen]
                self._seen = grown
            self._seen[self._n_seen] = t
            self._slot[t] = self._n_seen
            self._n_seen += 1

    def _dec(self, t: int) -> None:
        self._counts[t] -= 1
        if self._counts[t] == 0:
            i = self._slot.pop(t)
            last = self._n_seen - 1
            if i != last:
                moved = int(self._seen[last])
                self._seen[i] = moved
                self._slot[moved] = i
            self._n_seen = last

    def accept(self, token: int) -> None:
        if self.last_n == 0:
            return
        t = int(token)
        if t < 0:
            raise ValueError(f"penalties: token ids are non-negative, got {t}")
        if self.last_n > 0 and len(self._window) >= self.last_n:
            self._dec(self._window.popleft())
        self._window.append(t)
        self._inc(t)

    def reset(self, seed: int | None = None) -> None:
        self._window.clear()
        if self._n_seen:
            self._counts[self._seen[: self._n_seen]] = 0
        self._n_seen = 0
        self._slot.clear()

    def apply(self, cands: Candidates) -> None:
        if self._n_seen == 0 or not self.active:
            return
        v = cands.n_vocab
        if self._counts.shape[0] < v:
            grown = np.zeros(v, dtype=np.int32)
            grown[: self._counts.shape[0]] = self._counts
            self._counts = grown
        elif int(self._seen[: self._n_seen].max()) >= v:
            raise ValueError(f"penalties: the history holds token ids outside the vocabulary "
                             f"(n_vocab={v}); was the sampler used with another model?")
        _k.apply_penalties(cands.ids, cands.logits, cands.n, cands.identity, self._counts,
                           self._seen, self._n_seen, self.repeat, self.freq, self.presence)
        cands.sorted = False


class LogitBias(Stage):
    """Add a fixed bias to chosen tokens' logits: ``z_t ← z_t + b_t``.

    Built from a mapping token id → bias (``LogitBias({15043: -math.inf, 1234: 2.5})``); a
    bias of ``-inf`` bans the token (it stays in the set as a masked entry until a truncating
    stage drops it). Biases must be finite or ``-inf``. Spec form:
    ``logit_bias:15043=-inf,1234=2.5`` (token ids ascending); ``logit_bias`` alone is the
    empty bias. A token id outside the model's vocabulary raises ``InvalidSamplerSpec`` at
    the first ``apply``.
    """

    name = "logit_bias"

    def __init__(self, bias: Mapping[int, float] | None = None):
        items: dict[int, float] = {}
        for tok, b in (bias or {}).items():
            items[self._check_token(tok)] = self._check_bias(tok, b)
        self.bias = dict(sorted(items.items()))
        self._ids = np.fromiter(self.bias.keys(), dtype=np.int32, count=len(self.bias))
        self._values = np.fromiter(self.bias.values(), dtype=np.float32, count=len(self.bias))

    @staticmethod
    def _check_token(tok: Any) -> int:
        if isinstance(tok, bool) or not isinstance(tok, numbers.Integral):
            raise InvalidSamplerSpec(f"logit_bias: token ids must be integers, got {tok!r}")
        if not 0 <= int(tok) < 2**31:
            raise InvalidSamplerSpec(f"logit_bias: token id {int(tok)} is out of range [0, 2**31)")
        return int(tok)

    @staticmethod
    def _check_bias(tok: Any, b: Any) -> float:
        if isinstance(b, bool) or not isinstance(b, numbers.Real):
            raise InvalidSamplerSpec(f"logit_bias: the bias of token {tok} must be a number, got {b!r}")
        b = float(b)
        if not (math.isfinite(b) or b == -INF):
            raise InvalidSamplerSpec(
                f"logit_bias: the bias of token {tok} must be finite or -inf, got {b!r}")
        return b

    @classmethod
    def accepts_param(cls, key: str) -> bool:
        return key.isdigit()

    @classmethod
    def param_help(cls) -> str:
        return "logit_bias takes token_id=bias items"

    @classmethod
    def convert(cls, key: str, raw: str) -> Any:
        from .spec import parse_number

        value = parse_number(raw, integer=False)
        if value is None:
            raise InvalidSamplerSpec(f"logit_bias: the bias of token {key} must be a number, got '{raw}'")
        return cls._check_bias(key, value)

    @classmethod
    def from_params(cls, values: dict[str, Any]) -> "LogitBias":
        return cls({int(k): v for k, v in values.items()})

    def param_values(self) -> dict[str, Any]:
        return {"bias": dict(self.bias)}

    def spec(self) -> str:
        if not self.bias:
            return self.name
        return self.name + ":" + ",".join(f"{t}={format_value(b)}" for t, b in self.bias.items())

    def apply(self, cands: Candidates) -> None:
        if not self.bias:
            return
        if int(self._ids[-1]) >= cands.n_vocab:
            raise InvalidSamplerSpec(
                f"logit_bias: token {int(self._ids[-1])} is outside the vocabulary "
                f"(n_vocab={cands.n_vocab})")
        _k.apply_logit_bias(cands.ids, cands.logits, cands.n, cands.identity,
                            self._ids, self._values)
        cands.sorted = False


# ---------------------------------------------------------------------------------------
# Truncating stages


class TopNSigma(Stage):
    """Top-nσ (Tang et al. 2024): keep ``z_i ≥ z_max − n·σ(z)``, σ the standard deviation of
    the finite live logits. Temperature invariant; order kept. Example: z = [3, 2, 1, 0],
    n = 1 → σ = 1.118, keeps 2 tokens."""

    name = "top_n_sigma"
    params = (Param("n", float, _REQUIRED, 0.0, INF, lo_open=True),)
    main = "n"

    def __init__(self, n: float):
        self._set(n=n)

    def apply(self, cands: Candidates) -> None:
        old = cands.n
        cands.n = _k.top_n_sigma(cands.ids, cands.logits, old, self.n)
        if cands.n != old:
            cands.touch()


class TopK(Stage):
    """Top-k: keep the k largest logits, sorted descending (ties: kernel order)."""

    name = "top_k"
    params = (Param("k", int, _REQUIRED, 1),)
    main = "k"

    def __init__(self, k: int):
        self._set(k=k)

    def apply(self, cands: Candidates) -> None:
        cands.n = _k.top_k(cands.ids, cands.logits, cands.n, self.k)
        cands.sorted = True
        cands.touch()


class TypicalP(Stage):
    """Locally typical sampling (Meister et al. 2022): with ``H`` the entropy of the live
    distribution, rank tokens by ``|−log p_i − H|`` and keep the smallest prefix of that
    ranking whose probability mass reaches ``p`` (at least ``min_keep``). The result is in
    typicality order, not logit order. ``p = 1`` is a no-op."""

    name = "typical_p"
    params = (Param("p", float, _REQUIRED, 0.0, 1.0, lo_open=True), Param("min_keep", int, 1, 1))
    main = "p"

    def __init__(self, p: float, min_keep: int = 1):
        self._set(p=p, min_keep=min_keep)

    def apply(self, cands: Candidates) -> None:
        if self.p >= 1.0:
            return
        cands.n = _k.typical_p(cands.ids, cands.logits, cands.n, self.p, self.min_keep)
        cands.sorted = False
        cands.touch()


class TopP(Stage):
    """Nucleus sampling: keep the smallest set of highest-probability tokens whose mass is
    at least ``p`` (at least ``min_keep``); result sorted descending. A free-energy budget:
    the kept set's free energy exceeds the ensemble's by at most ``T ln(1/p)``.
    ``p = 1`` is a no-op."""

    name = "top_p"
    params = (Param("p", float, _REQUIRED, 0.0, 1.0, lo_open=True), Param("min_keep", int, 1, 1))
    main = "p"

    def __init__(self, p: float, min_keep: int = 1):
        self._set(p=p, min_keep=min_keep)

    def apply(self, cands: Candidates) -> None:
        if self.p >= 1.0:
            return
        cands.n = _k.top_p(cands.ids, cands.logits, cands.n, self.p, self.min_keep, cands.sorted)
        cands.sorted = True
        cands.touch()


class MinP(Stage):
    """Min-p (Nguyen et al. 2024): keep ``p_i ≥ p · p_max``, i.e. ``z_i ≥ z_max + ln p`` (an
    energy window of width ``ln(1/p)`` above the ground state), at least ``min_keep``.
    Order kept. ``p = 0`` is a no-op."""

    name = "min_p"
    params = (Param("p", float, _REQUIRED, 0.0, 1.0), Param("min_keep", int, 1, 1))
    main = "p"

    def __init__(self, p: float, min_keep: int = 1):
        self._set(p=p, min_keep=min_keep)

    def apply(self, cands: Candidates) -> None:
        if self.p <= 0.0:
            return
        old = cands.n
        cands.n = _k.min_p(cands.ids, cands.logits, old, self.p, self.min_keep)
        if cands.n != old:
            cands.touch()


# ---------------------------------------------------------------------------------------
# Temperature


_F32_MAX = float(np.finfo(np.float32).max)
_F32_TINY = float(np.finfo(np.float32).smallest_subnormal)  # smaller rounds to 0
# Below this temperature sampling is greedy for any logit gap above 1e-28, and dividing
# float32 logits by it could overflow to +inf (ties among several "+inf" tokens).
TINY_TEMPERATURE = 1e-30


def _scale(cands: Candidates, t: float) -> None:
    """``z ← z / t`` for a finite ``t``: ``t < TINY_TEMPERATURE`` (including ``t ≤ 0``) keeps
    only the argmax; a ``t`` above float32's range is clamped to it (the uniform limit)."""
    if t < TINY_TEMPERATURE:
        _keep_argmax(cands)
    elif t != 1.0:
        _k.scale_temperature(cands.logits, cands.n, min(t, _F32_MAX))


def _keep_argmax(cands: Candidates, stage: str = "temp") -> None:
    """Truncate to the single largest logit (llama.cpp's temp ≤ 0)."""
    _require_candidates(stage, cands)
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
    params = (Param("t", float, _REQUIRED),)
    main = "t"

    def __init__(self, t: float):
        self._set(t=t)

    def apply(self, cands: Candidates) -> None:
        _scale(cands, self.t)


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
        Param("base", float, _REQUIRED),
        Param("delta", float, 0.0, 0.0),
        Param("exponent", float, 1.0, 0.0),
    )

    def __init__(self, base: float, delta: float = 0.0, exponent: float = 1.0):
        self._set(base=base, delta=delta, exponent=exponent)
        self.last_temperature = float("nan")

    def apply(self, cands: Candidates) -> None:
        if self.delta == 0.0:
            self.last_temperature = self.base
            _scale(cands, self.base)
            return
        _require_candidates(self.name, cands)
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
        _scale(cands, t)

    def info(self) -> dict[str, Any]:
        return {"temperature": self.last_temperature}


# ---------------------------------------------------------------------------------------
# Selecting stages


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
        _keep_argmax(cands, self.name)
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

    def apply(self, cands: Candidates) -> None:
        u = self._rng.random()
        _require_candidates(self.name, cands)
        cands.selected = int(_k.sample_categorical(cands.logits, cands.n, u))


# ---------------------------------------------------------------------------------------
# Registry

STAGES: dict[str, type[Sampler]] = {}


def register_stage(cls: type[Sampler]) -> type[Sampler]:
    """Make a stage class known to spec strings under ``cls.name`` (usable as a decorator).

    The class needs the ``Stage`` spec protocol (``accepts_param``, ``convert``,
    ``from_params``, ``param_help``) and a ``spec()`` that ``parse`` reads back. No
    parameter name may be a stage name (the spec grammar relies on it).
    """
    name = getattr(cls, "name", "")
    if not name or not name.replace("_", "").isalnum() or not name[0].isalpha():
        raise ValueError(f"bad stage name {name!r}")
    if name in STAGES and STAGES[name] is not cls:
        raise ValueError(f"a stage named {name!r} is already registered")
    params = {p.name for p in getattr(cls, "params", ())}
    clash = params & (set(STAGES) | {name})
    for other in STAGES.values():
        if name in {p.name for p in getattr(other, "params", ())}:
            clash.add(name)
    if clash:
        raise ValueError(f"stage {name!r}: parameter names clash with stage names: {sorted(clash)}")
    STAGES[name] = cls
    return cls


for _cls in (Penalties, LogitBias, TopNSigma, TopK, TypicalP, TopP, MinP, Temp, DynTemp,
             Greedy, Dist):
    register_stage(_cls)
del _cls
