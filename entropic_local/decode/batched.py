"""Batched generation: several prompts decoded together, with continuous batching.

One context with ``n_seq_max = parallel`` sequences in one unified KV cache (a sibling of
the model's own context: same weights, loaded once). Every step is ONE ``llama_decode`` for
all live sequences: each decoding sequence contributes its newest token, and sequences still
reading their prompt fill the rest of the batch with prompt tokens (prefill chunked to
``n_batch``, logits only for a prompt's last token). Each sequence has its own sampler chain
(cloned), seed and ``SequenceState`` (``decode/sequence.py``), so every sampler (Entropix, AES, the
thermostat...) runs per sequence exactly as in ``Model.generate``. When a sequence ends, its
cells are dropped and the next waiting prompt takes its place at once.

The loop itself is ``decode/scheduler.py``'s ``Scheduler`` (the server steps the same one).

Room in the cache: a sequence is admitted only when its reservation (prompt + max_tokens,
capped at the model's ``n_ctx``, the most a single generation may hold) fits next to the
others', so a decode never runs out of cells. The cache holds ``parallel`` × the largest
reservation, rounded up to 256 cells.

What is not batched: attention capture and entmax attention (the sibling context installs
no hook, so attention metrics are absent, Entropix runs on logits alone, and
``attention_entmax`` does not apply) and branching
(``entropix:fork`` needs sibling sequences of its own; in a batch the stage's own choice
stands).

Numerics: batching changes speed, not results, up to llama.cpp's batching noise. With
``parallel=1`` every sequence decodes as ``Model.generate`` does from an empty cache, and the
outputs are bit-identical (tested on both models). With several sequences per micro-batch
llama.cpp takes other matmul paths (a micro-batch's shape changes with what is mixed in it):
logprobs move by up to ~0.3 nats and near-tied tokens can flip. How often
that changes an output: ``docs/measurements.md`` (``python benchmarks/batch_scaling.py
--noise``).
"""

from __future__ import annotations

from typing import Any, Iterable, Iterator

from .request import BatchRequest, Prepared, cache_size, reservation
from .scheduler import Scheduler, Ticket
from .sequence import Generation

__all__ = ["BatchRequest", "Prepared", "cache_size", "reservation", "batched_generations"]


def batched_generations(engine: Any, requests: Iterable[Prepared], *, parallel: int, n_ctx_seq: int,
                        model_name: str = "") -> Iterator[tuple[int, Generation]]:
    """Generate for every request on ``engine`` (a context with ``n_seq_max ≥ parallel``),
    yielding ``(index, Generation)`` as each finishes: every request submitted to one
    ``Scheduler`` (``decode/scheduler.py``), stepped until all have ended."""
    sched = Scheduler(engine, parallel=parallel, n_ctx_seq=n_ctx_seq, model_name=model_name)
    for r in requests:
        sched.submit(Ticket(r))
    try:
        while not sched.idle:
            for t, step in sched.step():
                if step is None:
                    if t.error is not None:
                        raise t.error
                    yield t.req.index, t.generation
    finally:
        sched.close()
