"""What a batched decode loop takes: a ``BatchRequest`` (a prompt with its own settings) and
the ``Prepared`` request made from it, and the KV cells each may fill."""

from __future__ import annotations

from dataclasses import dataclass

from ..samplers.chain import SamplerChain


@dataclass
class BatchRequest:
    """One prompt of a batch, with its own settings (None: the batch's default)."""

    prompt: str | list[int]
    max_tokens: int | None = None
    sampler: str | SamplerChain | None = None
    seed: int | None = None
    stop: list[str] | str | None = None


@dataclass
class Prepared:
    """A request ready to run: tokenised, its chain bound, reset and fed the prompt."""

    index: int
    prompt: str
    tokens: list[int]
    chain: SamplerChain
    seed: int
    max_tokens: int
    stop: list[str] | None


def reservation(r: Prepared, n_ctx_seq: int) -> int:
    """The KV cells a request may fill: its prompt and max_tokens, at most ``n_ctx_seq``."""
    return min(len(r.tokens) + r.max_tokens, n_ctx_seq)


def cache_size(requests: list[Prepared], parallel: int, n_ctx_seq: int) -> int:
    """Cells for ``parallel`` sequences of the largest reservation, rounded up to 256."""
    need = max((reservation(r, n_ctx_seq) for r in requests), default=16)
    cells = need * max(1, min(parallel, len(requests)))
    return max(256, -(-cells // 256) * 256)
