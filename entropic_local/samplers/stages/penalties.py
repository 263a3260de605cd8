"""``penalties``: llama.cpp's repetition, frequency and presence penalties over the last
``last_n`` tokens."""

from __future__ import annotations

from collections import deque

import numpy as np

from ... import kernels as _k
from ...errors import InvalidSamplerSpec
from ..candidates import Candidates
from ..flags import Flag
from ..params import INF, Param, format_value
from ..stage import Stage
from .temperature import F32_MAX, F32_TINY

__all__ = ["Penalties"]


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
    order = 1
    flags = (
        Flag("repeat_penalty", "repeat", float, "--repeat-penalty", "Penalise recent tokens (1.0: off).",
             off=1.0, alone=False),
        Flag("frequency_penalty", "freq", float, "--frequency-penalty",
             "Subtract this times a recent token's count from its logit (0: off).", off=0.0,
             alone=False, aliases=("freq_penalty", "frequency")),
        Flag("presence_penalty", "presence", float, "--presence-penalty",
             "Subtract this from the logit of every recent token (0: off).", off=0.0, alone=False,
             aliases=("presence",)),
        Flag("penalty_last_n", "last_n", int, "--repeat-last-n",
             "Recent tokens the penalties look at (default 64; 0: off, -1: all).", field="repeat_last_n",
             off=0),
    )

    def __init__(self, repeat: float = 1.0, freq: float = 0.0, presence: float = 0.0,
                 last_n: int = 64):
        self._set(repeat=repeat, freq=freq, presence=presence, last_n=last_n)
        for key in ("repeat", "freq", "presence"):  # applied as float32, as in llama.cpp
            v = getattr(self, key)
            if not abs(v) <= F32_MAX or (key == "repeat" and v < F32_TINY):
                raise InvalidSamplerSpec(
                    f"penalties: {key}={format_value(v)} is outside float32's range")
        self._window: deque[int] = deque()
        self._counts = np.zeros(0, dtype=np.int32)
        self._seen = np.zeros(0, dtype=np.int32)
        self._n_seen = 0
        self._slot: dict[int, int] = {}   # token -> index in _seen
        self._active = not self.flags_off(self.param_values())

    @property
    def active(self) -> bool:
        """False when the parameters make this stage a no-op (its flags are off)."""
        return self._active

    def take_state(self, old: Stage) -> None:
        # keep the penalty history (its last last_n tokens) when parameters change
        if isinstance(old, Penalties):
            for t in old.window:
                self.accept(t)

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
