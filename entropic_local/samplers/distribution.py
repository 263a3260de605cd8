"""The distribution a chain would sample from, instead of a sample.

The chain's stages run on the candidates as when sampling, up to the stage that would draw
(the first stochastic or selecting one), which is returned unapplied; then:

* a stochastic stage gives its probabilities over the live candidates
  (``Sampler.distribution``: ``entmax``, ``aes``, ``entropix``), or None for the softmax of
  the live logits as the earlier stages left them (``dist``: temperature included);
* a selecting stage that draws nothing (``greedy``) is applied: a one-hot on its choice.

Used by the evaluation (probabilities scored against a text) and by the llama-cpp-python
logits processor (log-probabilities handed back to llama-cpp-python's own draw).
"""

from __future__ import annotations

from typing import Iterable

import numpy as np

from .. import kernels as _k
from .base import Sampler
from .candidates import Candidates

__all__ = ["run_to_draw", "chain_distribution"]


def run_to_draw(stages: Iterable[Sampler], cands: Candidates) -> Sampler | None:
    """Apply ``stages`` to ``cands`` up to the first that is stochastic or selects, and
    return that one unapplied; None when an earlier stage selected a token itself."""
    for s in stages:
        if s.selects or s.stochastic:
            return s
        s.apply(cands)
        if cands.selected >= 0:
            return None
    return None


def chain_distribution(stages: Iterable[Sampler], cands: Candidates, out: np.ndarray) -> int:
    """Write the probabilities with which a chain of ``stages`` would choose among the
    candidates it keeps into ``out[:n]`` (float64, aligned with ``cands.ids[:n]``); returns
    ``n``. Draws nothing (no random stream advances)."""
    stage = run_to_draw(stages, cands)
    if stage is not None and stage.stochastic:
        q = stage.distribution(cands)
        if q is None:
            _k.softmax(cands.logits, cands.n, out)
        else:
            out[: cands.n] = q
        return cands.n
    if stage is not None:
        stage.apply(cands)
    i = cands.selected
    if i < 0:
        raise ValueError("the chain ended without selecting a token")
    cands.ids[0], cands.logits[0] = cands.ids[i], cands.logits[i]
    cands.n = 1
    out[0] = 1.0
    return 1
