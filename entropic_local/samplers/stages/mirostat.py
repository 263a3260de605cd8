"""``mirostat`` and ``mirostat_v2``: llama.cpp's selecting stages that steer the surprise
of the chosen tokens towards a target ``tau`` (bits) with a running ``mu`` (Basu et al.
2021). Kernels: ``kernels/mirostat.py``.

As in llama.cpp, ``--mirostat 1|2`` makes the chain ``logit_bias``, the temperature, then
mirostat: the other stages are dropped (llama.cpp ignores top-k, top-p, min-p, typical,
penalties, DRY and XTC under mirostat); ``--mirostat-ent`` sets ``tau``, ``--mirostat-lr``
``eta``. A spec may still combine mirostat with any stages (``top_k=40,mirostat_v2``).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ... import kernels as _k
from ..candidates import Candidates, require_candidates
from ..flags import Flag
from ..params import INF, Param
from ..spec import slot_of
from ..stage import Stage
from .seeded import Seeded

__all__ = ["Mirostat", "MirostatV2"]

_KEPT_SLOTS = ("logit_bias", "temp")


class _MirostatBase(Seeded, Stage):
    """What both versions share: ``mu`` starts at ``2 · tau``; after each step the chosen
    token's surprise ``s = −log2 p`` (``p`` its probability in the truncated, renormalised
    distribution it was drawn from) moves it: ``mu ← mu − eta · (s − tau)``.

    The update happens in ``accept`` (for the token finally taken; a token that was not in
    the truncated set leaves ``mu`` as it is), not in ``apply`` as in llama.cpp: when a
    grammar rejects a draw and the chain draws again, llama.cpp updates ``mu`` twice, here it
    moves once per generated token. ``reset`` restores ``mu = 2 · tau`` and the stream;
    ``clone`` copies both. ``info()``: ``mirostat_mu`` (the ``mu`` this step cut with) and
    ``mirostat_k`` (the candidates kept)."""

    selects = True
    slot = "mirostat"

    def _init_state(self, seed: int | None) -> None:
        self._init_stream(seed)
        self.mu = 2.0 * self.tau
        self._mu_used = self.mu
        self._kept_ids = np.zeros(0, dtype=np.int32)
        self._kept_p = np.zeros(0, dtype=np.float64)
        self._k = 0

    def reset(self, seed: int | None = None) -> None:
        self._reset_stream(seed)
        self.mu = 2.0 * self.tau
        self._mu_used = self.mu
        self._kept_ids = self._kept_ids[:0]
        self._k = 0

    def take_state(self, old: Stage) -> None:
        self._take_stream(old)
        if isinstance(old, _MirostatBase) and type(old) is type(self) and old.tau == self.tau:
            self.mu = old.mu

    def _cut(self, cands: Candidates) -> None:  # pragma: no cover - per version
        raise NotImplementedError

    def truncate(self, cands: Candidates) -> np.ndarray:
        """Cut the candidates for the current ``mu`` (no draw); the renormalised
        probabilities of the kept ones."""
        require_candidates(self.name, cands)
        self._mu_used = self.mu
        self._cut(cands)
        p = np.empty(cands.n, dtype=np.float64)
        _k.softmax(cands.logits, cands.n, p)
        return p

    def distribution(self, cands: Candidates) -> np.ndarray:
        return self.truncate(cands)

    def apply(self, cands: Candidates) -> None:
        u = self._rng.random()
        p = self.truncate(cands)
        n = cands.n
        self._k = n
        cands.selected = int(_k.sample_categorical(cands.logits, n, u))
        self._kept_ids = cands.ids[:n].copy()
        self._kept_p = p

    def observe(self, p: float) -> None:
        """Move ``mu`` for a chosen token of probability ``p`` (in the truncated set)."""
        if p > 0.0:
            self.mu = self.mu - self.eta * (-math.log2(p) - self.tau)

    def accept(self, token: int) -> None:
        if self._kept_ids.shape[0] == 0:
            return
        hit = np.flatnonzero(self._kept_ids == int(token))
        if hit.shape[0]:
            self.observe(float(self._kept_p[hit[0]]))
        self._kept_ids = self._kept_ids[:0]

    def info(self) -> dict[str, Any]:
        return {"mirostat_mu": self._mu_used, "mirostat_k": self._k}

    # -- llama.cpp's flags ---------------------------------------------------------------------
    @classmethod
    def from_flags(cls, current: Stage | None, values: dict[str, Any]) -> Stage | None:
        version = values.get("mirostat")
        if version is None:
            version = 2 if isinstance(current, MirostatV2) else 1 if isinstance(current, Mirostat) else 0
        if version not in (0, 1, 2):
            from ...errors import InvalidSamplerSpec
            raise InvalidSamplerSpec(f"mirostat must be 0 (off), 1 or 2, got {version}")
        if version == 0:
            return None
        tau = values.get("mirostat_tau", current.tau if isinstance(current, _MirostatBase) else 5.0)
        eta = values.get("mirostat_eta", current.eta if isinstance(current, _MirostatBase) else 0.1)
        if version == 1:
            m = current.m if isinstance(current, Mirostat) else 100
            new: _MirostatBase = Mirostat(tau, eta, m)
        else:
            new = MirostatV2(tau, eta)
        if current is not None:
            new.take_state(current)
        return new

    def chain_from_flags(self, stages: list) -> list:
        """The chain llama.cpp builds under ``--mirostat``: logit bias, temperature, this."""
        return [s for s in stages[:-1] if slot_of(s) in _KEPT_SLOTS] + [self]


_FLAGS = (
    Flag("mirostat", "version", int, "--mirostat",
         "Mirostat: 1 or 2 (0: off); the chain becomes logit bias, temperature, mirostat."),
    Flag("mirostat_tau", "tau", float, "--mirostat-ent",
         "Mirostat target surprise tau in bits (default 5.0).", aliases=("mirostat_ent",)),
    Flag("mirostat_eta", "eta", float, "--mirostat-lr",
         "Mirostat learning rate eta (default 0.1).", aliases=("mirostat_lr",)),
)


class Mirostat(_MirostatBase):
    """Mirostat 1.0 (llama.cpp ``mirostat``): keep the top ``k`` tokens, ``k`` from the Zipf
    exponent of the ``m`` most likely and ``mu`` (``kernels.mirostat_v1_k``; ``N`` is the
    vocabulary size), then draw from them."""

    name = "mirostat"
    params = (
        Param("tau", float, 5.0, 0.0, INF),
        Param("eta", float, 0.1, 0.0, INF),
        Param("m", int, 100, 2),
    )
    flags = _FLAGS

    def __init__(self, tau: float = 5.0, eta: float = 0.1, m: int = 100, seed: int | None = None):
        self._set(tau=tau, eta=eta, m=m)
        self._init_state(seed)

    def _cut(self, cands: Candidates) -> None:
        k, _ = _k.mirostat_v1_k(cands.logits, cands.n, self.mu, self.m, cands.n_vocab)
        cands.n = int(_k.top_k(cands.ids, cands.logits, cands.n, int(k)))
        cands.sorted = True
        cands.touch()


class MirostatV2(_MirostatBase):
    """Mirostat 2.0 (llama.cpp ``mirostat-v2``): keep the tokens with surprise
    ``−log2 p ≤ mu`` (at least the most likely), then draw from them."""

    name = "mirostat_v2"
    params = (
        Param("tau", float, 5.0, 0.0, INF),
        Param("eta", float, 0.1, 0.0, INF),
    )

    def __init__(self, tau: float = 5.0, eta: float = 0.1, seed: int | None = None):
        self._set(tau=tau, eta=eta)
        self._init_state(seed)

    def _cut(self, cands: Candidates) -> None:
        n = int(_k.mirostat_v2_cut(cands.ids, cands.logits, cands.n, self.mu))
        if n != cands.n:
            cands.n = n
            cands.touch()
