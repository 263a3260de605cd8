"""Grammar-constrained choice, as llama.cpp's ``common_sampler_sample`` does it, and what the
constraint costs per step.

Per step (``Constraint.choose``): the chain samples from the unconstrained candidates; the
grammar checks that one token; only when it is rejected is the grammar applied to the whole
vocabulary, the candidate set reduced to the allowed tokens (llama.cpp masks them with
``-inf`` instead; reducing keeps stages such as mirostat and typical-p off masked entries)
and the chain run again on it. When nothing but end-of-generation tokens is allowed the
grammar is complete and the generation ends (finish reason ``stop``); when nothing at all
is allowed the grammar is a dead end (``GrammarError``). The grammar state advances with
every generated token (``accept``) and starts over per generation (``start``).

The cost of the constraint, per step, in nats (``info``): ``grammar_log_mass``, the log of
the model's probability mass (temperature 1, full vocabulary) on the tokens the grammar
allows; ``grammar_entropy``, the entropy of the model's distribution renormalised to those
tokens (next to the step's own ``entropy``); ``grammar_forced``, whether one token alone is
allowed; ``grammar_rejected``, whether the chain's first draw was refused. On a step whose
first draw was refused the whole vocabulary was checked, so these are exact
(``grammar_unchecked_mass`` 0). Otherwise only the ``check`` most likely tokens (and the
chosen one) are checked, since checking a whole vocabulary costs more than decoding a token
(measured: README); ``grammar_unchecked_mass`` is the model's mass outside them, so the true
allowed mass lies in ``[e^grammar_log_mass, e^grammar_log_mass + grammar_unchecked_mass]``.
``summary()``: ``log_mass_removed`` (``−Σ grammar_log_mass`` over every step, the final one
that ended the generation included, nats: what the constraint took from the model over the
generation), ``end_log_mass`` (that final step's, which has no Step record), ``rejections``
(first draws refused), ``steps``, ``complete`` (the grammar ended the generation).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..errors import GrammarError
from ..kernels.selection import top_sorted
from ..samplers.candidates import Candidates

__all__ = ["Constraint", "DEFAULT_CHECK"]

DEFAULT_CHECK = 256


def _masses(z: np.ndarray, log_z: float, allowed: np.ndarray) -> tuple[float, float, float]:
    """(log allowed mass, entropy of the allowed renormalised distribution, checked mass)."""
    lp = z.astype(np.float64) - log_z
    p = np.exp(lp)
    checked = float(p.sum())
    pa = p[allowed]
    mass = float(pa.sum())
    if mass <= 0.0:
        return -math.inf, 0.0, checked
    q = pa / mass
    lq = lp[allowed] - math.log(mass)
    h = float(-(q * lq).sum())
    return math.log(mass), max(h, 0.0), checked


class Constraint:
    """One sequence's grammar (an ``engine.grammar.Grammar``) applied to its chain."""

    def __init__(self, grammar: Any, is_eog: Any, check: int = DEFAULT_CHECK):
        self.grammar = grammar
        self.is_eog = is_eog   # token -> whether it ends a generation
        self.check = int(check)
        self._all: np.ndarray | None = None
        self.start()

    def start(self) -> None:
        """A new generation: the grammar from its start, the summary cleared."""
        self.grammar.reset()
        self.log_mass_total = 0.0
        self.rejections = 0
        self.steps = 0
        self.complete = False
        self.end_log_mass = 0.0
        self._info: dict[str, Any] = {}

    def clone(self) -> "Constraint":
        return Constraint(self.grammar.clone(), self.is_eog, self.check)

    def check_start(self, n_vocab: int) -> None:
        """``GrammarError`` when no token at all can begin the grammar (checked before any
        decoding, so a dead grammar is refused up front)."""
        ids = np.arange(n_vocab, dtype=np.int32)
        if not self.grammar.allowed_mask(ids, n_vocab).any():
            raise GrammarError("the grammar is a dead end: no token can begin it")

    # -- one step --------------------------------------------------------------------------------
    def choose(self, cands: Candidates, raw: np.ndarray, stats: tuple, chain: Any) -> int | None:
        """The token to take this step (the chain has already applied to ``cands``), or None
        when the grammar is complete (only end-of-generation tokens remain)."""
        tok = cands.selected_token
        log_z = float(stats[1])
        self.steps += 1
        if self.grammar.allows(tok):
            self._fast_info(raw, log_z, tok)
            if self.is_eog(tok):  # the model ended where the grammar may end
                self.complete = True
                self.end_log_mass = self._info["grammar_log_mass"]
            return tok
        self.rejections += 1
        v = raw.shape[0]
        if self._all is None or self._all.shape[0] != v:
            self._all = np.arange(v, dtype=np.int32)
        allowed = self.grammar.allowed_mask(self._all, v)
        ids = np.flatnonzero(allowed).astype(np.int32)
        if ids.shape[0] == 0:
            raise GrammarError(f"the grammar is a dead end after {self.steps - 1} tokens: "
                               "no token can continue it")
        lm, h, _ = _masses(raw, log_z, allowed)
        only_eog = all(self.is_eog(int(t)) for t in ids)
        self._record(lm, h, forced=ids.shape[0] == 1, rejected=True, unchecked=0.0)
        if only_eog:
            self.complete = True
            self.end_log_mass = lm
            return None
        cands.reset(raw, stats)
        n = ids.shape[0]
        cands.ids[:n] = ids
        cands.logits[:n] = raw[ids]
        cands.n = n
        cands.touch()
        chain.apply(cands)
        tok = cands.selected_token
        if self.is_eog(tok):  # allowed only where the grammar may end
            self.complete = True
            self.end_log_mass = lm
        return tok

    def _fast_info(self, raw: np.ndarray, log_z: float, tok: int) -> None:
        v = raw.shape[0]
        _, pos, found = top_sorted(raw, v, min(self.check, v))
        ids = pos[:found].astype(np.int32)
        if tok not in ids:
            ids = np.append(ids, np.int32(tok))
        allowed = self.grammar.allowed_mask(ids, ids.shape[0])
        lm, h, checked = _masses(raw[ids], log_z, allowed)
        unchecked = max(0.0, 1.0 - checked)
        forced = int(allowed.sum()) == 1 and unchecked < 1e-3
        self._record(lm, h, forced=forced, rejected=False, unchecked=unchecked)

    def _record(self, lm: float, h: float, *, forced: bool, rejected: bool, unchecked: float) -> None:
        self.log_mass_total += lm
        self._info = {"grammar_log_mass": lm, "grammar_entropy": h, "grammar_forced": forced,
                      "grammar_rejected": rejected, "grammar_unchecked_mass": unchecked}

    def accept(self, token: int) -> None:
        if not self.is_eog(int(token)):
            self.grammar.accept(int(token))

    def info(self) -> dict[str, Any]:
        return dict(self._info)

    def summary(self) -> dict[str, Any]:
        return {"log_mass_removed": -self.log_mass_total, "end_log_mass": self.end_log_mass,
                "rejections": self.rejections, "steps": self.steps, "complete": self.complete}
