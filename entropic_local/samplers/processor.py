"""Use a ``SamplerChain`` as a llama-cpp-python ``logits_processor``.

llama-cpp-python calls each processor as ``processor(input_ids, scores) -> scores`` with
``input_ids`` the tokens so far (prompt included, ``np.intc``) and ``scores`` the
next-token logits indexed by token id (``float32``, length ``n_vocab``, possibly a strided
view). The adapter:

1. keeps the chain's history in sync with ``input_ids``: the tokens beyond those it saw
   last time are ``accept``-ed; when ``input_ids`` no longer extends what it saw (a new
   prompt, a rewind) the non-selecting stages are ``reset`` and all of ``input_ids`` is
   accepted. So penalties count prompt tokens too, as llama.cpp's own CLI does;
2. runs the chain's stages up to the one that would draw, on a candidate set loaded from
   ``scores`` (``samplers/distribution.py``). A plain selector (``dist``) is left out. A
   selector with a distribution of its own (``entmax``, ``aes``, ``entropix``:
   ``distribution(cands)``) is asked for it, so the draw below is from exactly that
   distribution (its sparse support, its α, Entropix's per-step action and best-of-n law);
3. returns a new ``float32`` array of length ``n_vocab``: ``-inf`` for every token the
   stages dropped, the transformed logit (after penalties, bias, temperature, ...) for the
   ones they kept, or ``log q`` of the selector's distribution q. If a stage selected a
   token (``greedy``, Entropix's argmax) only that token is kept. ``scores`` itself is not
   modified.

Drawing the token is left to llama-cpp-python's own sampler: call it with neutral
settings so it adds nothing of its own: ``temperature=1.0, top_k=0, top_p=1.0,
min_p=0.0, typical_p=1.0, repeat_penalty=1.0`` (and no ``logit_bias``: llama-cpp-python
drops ``logits_processor`` when both are given; use a ``logit_bias`` stage instead).

``SamplerChain.__call__`` delegates here, so ``LogitsProcessorList([chain])`` works.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .candidates import Candidates
from .distribution import run_to_draw

__all__ = ["ChainLogitsProcessor"]


class ChainLogitsProcessor:
    """``ChainLogitsProcessor(chain)(input_ids, scores) -> scores`` (see the module doc);
    ``chain`` is a ``SamplerChain``."""

    def __init__(self, chain: Any):
        self.chain = chain
        self._history = np.zeros(0, dtype=np.int64)
        self._cands: Candidates | None = None

    def forget(self) -> None:
        """Drop the record of seen input ids (the chain was reset)."""
        self._history = np.zeros(0, dtype=np.int64)

    def clone_for(self, chain: Any) -> "ChainLogitsProcessor":
        new = ChainLogitsProcessor(chain)
        new._history = self._history.copy()
        return new

    def _sync(self, input_ids: np.ndarray) -> None:
        ids = np.asarray(input_ids).reshape(-1).astype(np.int64, copy=False)
        h = self._history
        if ids.shape[0] >= h.shape[0] and np.array_equal(ids[: h.shape[0]], h):
            new = ids[h.shape[0]:]
        else:
            for s in self.chain.stages:
                if not s.selects:
                    s.reset()
            new = ids
        if new.shape[0]:
            for t in new.tolist():
                self.chain.accept(t)
        self._history = ids.copy()

    def __call__(self, input_ids: np.ndarray, scores: np.ndarray) -> np.ndarray:
        scores = np.asarray(scores)
        if scores.ndim != 1:
            raise ValueError(f"scores must be one-dimensional, got shape {scores.shape}")
        self._sync(input_ids)
        v = scores.shape[0]
        cands = self._cands
        if cands is None or cands.n_vocab != v:
            cands = self._cands = Candidates(v)
        cands.reset(scores)
        q = None
        stage = run_to_draw(self.chain.stages, cands)
        if stage is not None:
            if stage.stochastic:
                q = stage.distribution(cands)   # None: the live logits as they are
            else:
                stage.apply(cands)              # greedy: one token
        out = np.full(v, -np.inf, dtype=np.float32)
        if cands.selected >= 0:
            i = cands.selected
            out[cands.ids[i]] = cands.logits[i]
        elif q is not None:
            n = cands.n
            with np.errstate(divide="ignore"):
                out[cands.ids[:n]] = np.log(np.asarray(q[:n], dtype=np.float64))
        else:
            n = cands.n
            out[cands.ids[:n]] = cands.logits[:n]
        return out
