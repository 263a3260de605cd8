"""Teacher forcing: feed a text to the model one token at a time and read, at every position,
the model's own distribution for the next token.

Token by token (``Engine.eval_prompt`` on the first token, then ``Engine.eval_token`` for
each next one), one decode per position, exactly as the generation loop feeds tokens: one
batched pass over the text would give other numbers (llama.cpp's batching changes the
matmul paths; measured 9% (SmolLM2) and 16% (Gemma 3) apart in entropy), so every position
is the very distribution a sampler would see while generating that text. The text is
tokenised with the model's special tokens added (BOS where the model has one) and none
parsed; position ``t`` predicts token ``t + 1``, so the first token is context only.
"""

from __future__ import annotations

from typing import Any, Iterator, NamedTuple

import numpy as np

from ..kernels import logit_stats

__all__ = ["Positions", "text_positions", "teacher_forced"]


class Positions(NamedTuple):
    """A text made ready for teacher forcing: ``tokens`` and the ``n`` positions to read
    (at most ``max_tokens`` and what the context holds); ``truncated`` when fewer than the
    text has."""

    tokens: list[int]
    n: int
    truncated: bool


def text_positions(engine: Any, text: str, max_tokens: int | None = None) -> Positions:
    tokens = list(engine.tokenize(text, add_special=True, parse_special=False))
    available = len(tokens) - 1
    n = available if max_tokens is None else min(available, int(max_tokens))
    n = min(n, engine.n_ctx - 1)
    return Positions(tokens, n, n < available)


def teacher_forced(engine: Any, tokens: list[int], n: int) -> Iterator[tuple[np.ndarray, tuple]]:
    """For positions ``0..n-1``: ``(logits, (max_logit, log_z, entropy, varentropy))`` of the
    model after ``tokens[:i + 1]`` (the logits are a view valid until the next position)."""
    for i in range(n):
        if i == 0:
            engine.eval_prompt(tokens[:1])
        else:
            engine.eval_token(tokens[i])
        raw = engine.logits()
        yield raw, logit_stats(raw, 1.0)
