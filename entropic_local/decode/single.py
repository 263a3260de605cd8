"""``DecodeLoop``: one generation on sequence 0 of an engine's context.

Per token: decode the previous token (the prompt first, reusing what the KV cache already
holds), hand the logits to ``SequenceState.step``, yield the Step. When the chain asks to
branch (``entropix:fork``) the candidates are rolled out on sibling sequences first
(``branching.roll_out``).
"""

from __future__ import annotations

import time
from typing import Any, Iterator

from ..samplers.candidates import Candidates
from ..samplers.chain import SamplerChain
from .branching import roll_out
from .sequence import SequenceState, Step

__all__ = ["DecodeLoop"]


class DecodeLoop(SequenceState):
    """Generates from ``prompt_tokens`` with ``chain`` on sequence 0 of ``engine`` until a
    stop condition; yields Steps. After iteration ``finish_reason``, ``text``,
    ``token_ids`` and ``timings`` are final."""

    def __init__(self, engine: Any, cands: Candidates, chain: SamplerChain,
                 prompt_tokens: list[int], *, max_tokens: int, stop: list[str] | None = None,
                 constraint=None):
        super().__init__(engine, chain, prompt_tokens, max_tokens=max_tokens, stop=stop,
                         constraint=constraint)
        self.cands = cands

    def __iter__(self) -> Iterator[Step]:
        engine, cands, chain = self.engine, self.cands, self.chain
        t0 = time.perf_counter()
        # Branching (entropix:fork=K) needs K sibling KV sequences: made once, before the
        # prompt is decoded (re-creating the context empties the cache).
        engine.ensure_sequences(max((s.sequences_needed for s in chain.stages), default=1))
        self.timings.prompt_eval_tokens = engine.eval_prompt(self.prompt_tokens)
        t1 = time.perf_counter()
        self.timings.prompt_ms = (t1 - t0) * 1000
        n_ctx = engine.n_ctx
        attn = engine.attention

        def branch(fork, lps):
            return roll_out(engine, fork, lps, len(engine.tokens))

        try:
            while True:
                if self.token_ids:
                    if len(engine.tokens) >= n_ctx:
                        self.finish_reason = "context"
                        break
                    engine.eval_token(self.token_ids[-1])
                step = self.step(cands, engine.logits(), attn.metrics() if attn is not None else None,
                                 branch)
                if step is None:
                    break
                yield step
                if self.done:
                    break
            self.finish()
        finally:
            self.timings.gen_ms = (time.perf_counter() - t1) * 1000
