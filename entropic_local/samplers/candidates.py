"""The candidate set every sampler works on, and a selecting stage's request to branch.

The candidate set is the first ``n`` entries of two preallocated buffers, ``ids`` (int32
token ids) and ``logits`` (float32). Kernels compact survivors to the front in place and
return the new ``n``; ``-inf`` is a mask, NaN is an error.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .. import kernels


class Fork(NamedTuple):
    """A selecting stage's request to branch before committing to a token: roll each of
    ``tokens`` out ``depth`` tokens deep on its own KV sequence and keep the one with the
    best score (Σ logprob − ``entropy_weight`` · Σ entropy). The first token is the stage's
    own choice, taken when the loop cannot branch. See ``entropic_local.decode.branching``."""

    tokens: tuple[int, ...]
    depth: int
    entropy_weight: float


class Candidates:
    """The live candidates of one sampling step, in reusable buffers.

    Attributes:
        ids, logits: buffers of capacity ``n_vocab``; entries ``[:n]`` are live.
        n: number of live candidates.
        sorted: live entries are sorted by logit, descending.
        identity: the untouched full vocabulary (``n == n_vocab`` and ``ids[i] == i``), so
            kernels may index by token id directly.
        selected: index (into the live entries) of the chosen token, or -1.
        max_logit, log_z, entropy, varentropy: statistics of the model's own distribution
            for this step (temperature 1, full vocabulary), in nats; set by ``reset``.
        attention: this step's attention metrics when the engine captures attention (an
            object with ``entropy``, ``varentropy``, ``agreement``, ``interaction_strength``
            in nats and ``n_valid``), else None; set by the decode loop.
        fork: a branching request from the selecting stage (``Fork``), else None.
    """

    __slots__ = (
        "n_vocab", "ids", "logits", "n", "sorted", "identity", "selected",
        "max_logit", "log_z", "entropy", "varentropy", "attention", "fork", "_arange", "_stats",
    )

    def __init__(self, n_vocab: int):
        if n_vocab < 1:
            raise ValueError("n_vocab must be at least 1")
        self.n_vocab = int(n_vocab)
        self._arange = np.arange(self.n_vocab, dtype=np.int32)
        self.ids = self._arange.copy()
        self.logits = np.empty(self.n_vocab, dtype=np.float32)
        self._stats = np.empty(4)
        self.n = 0
        self.sorted = False
        self.identity = False
        self.selected = -1
        self.max_logit = self.log_z = self.entropy = self.varentropy = float("nan")
        # attention metrics of this step (an object with entropy, varentropy, agreement,
        # interaction_strength in nats) when the engine captures attention; else None
        self.attention = None
        # a branching request from the selecting stage (``Fork``) or None; reset per step
        self.fork = None

    def reset(self, raw_logits: np.ndarray, stats: tuple | None = None) -> None:
        """Load a fresh full-vocabulary candidate set from the model's logits.

        ``stats`` is ``(max_logit, log_z, entropy, varentropy)`` of ``raw_logits`` at
        temperature 1 when the caller already computed them (the generation loop does, in
        one fused pass); otherwise they are computed here.
        """

        if raw_logits.shape[0] != self.n_vocab:
            raise ValueError(f"expected {self.n_vocab} logits, got {raw_logits.shape[0]}")
        np.copyto(self.logits, raw_logits, casting="same_kind")
        if not self.identity:
            np.copyto(self.ids, self._arange)
        self.n = self.n_vocab
        self.sorted = False
        self.identity = True
        self.selected = -1
        self.fork = None
        if stats is None:
            stats = kernels.logit_stats(self.logits, 1.0)
        self.max_logit, self.log_z, self.entropy, self.varentropy = stats

    def reset_top_k(self, raw_logits: np.ndarray, stats: tuple | None, k: int) -> tuple:
        """``reset(raw_logits, stats)`` followed by top-k (``k`` best, sorted descending) in
        one kernel that reads the model's logits in place: the full vocabulary is never
        copied (a chain that starts with ``top_k`` takes this path). ``stats`` None: they
        are computed in the same call, sharing its pass over the vocabulary. Returns the
        stats."""
        if raw_logits.shape[0] != self.n_vocab:
            raise ValueError(f"expected {self.n_vocab} logits, got {raw_logits.shape[0]}")
        if stats is None:
            buf = self._stats
            self.n = kernels.top_k_stats_into(raw_logits, int(k), self.ids, self.logits, buf)
            stats = (float(buf[0]), float(buf[1]), float(buf[2]), float(buf[3]))
        else:
            self.n = kernels.top_k_into(raw_logits, int(k), self.ids, self.logits)
        self.sorted = True
        self.identity = False
        self.selected = -1
        self.fork = None
        self.max_logit, self.log_z, self.entropy, self.varentropy = stats
        return stats

    def touch(self) -> None:
        """Mark the set as no longer the untouched vocabulary (after any truncation)."""
        self.identity = False

    @property
    def selected_token(self) -> int:
        if self.selected < 0:
            raise RuntimeError("no token has been selected")
        return int(self.ids[self.selected])


def require_candidates(stage: str, cands: Candidates) -> None:
    """``ValueError`` when no candidate is left for ``stage`` to work on."""
    if cands.n < 1:
        raise ValueError(f"{stage}: no candidates left to choose from")
