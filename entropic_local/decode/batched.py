"""Batched generation: several prompts decoded together, with continuous batching.

One context with ``n_seq_max = parallel`` sequences in one unified KV cache (a sibling of
the model's own context: same weights, loaded once). Every step is ONE ``llama_decode`` for
all live sequences: each decoding sequence contributes its newest token, and sequences still
reading their prompt fill the rest of the batch with prompt tokens (prefill chunked to
``n_batch``, logits only for a prompt's last token). Each sequence has its own sampler chain
(cloned), seed and ``SequenceState`` (``decode/sequence.py``), so every sampler (Entropix, AES, the
thermostat...) runs per sequence exactly as in ``Model.generate``. When a sequence ends, its
cells are dropped and the next waiting prompt takes its place at once.

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

import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Iterable, Iterator

from ..errors import ContextOverflow, DecodeError, UsageError
from ..samplers.candidates import Candidates
from ..samplers.chain import SamplerChain
from .sequence import Generation, SequenceState, Step


@dataclass
class BatchRequest:
    """One prompt of a batch, with its own settings (None: the batch's default)."""

    prompt: str | list[int]
    max_tokens: int | None = None
    sampler: str | SamplerChain | None = None
    seed: int | None = None
    stop: list[str] | str | None = None
    grammar: str | None = None           # GBNF text
    json_schema: Any = None              # a JSON schema (dict or JSON text)


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
    constraint: Any = None     # the request's grammar (decode/constrained.py), or None


@dataclass
class _Live:
    req: Prepared
    seq: int
    need: int
    state: SequenceState
    fed: int = 0                       # prompt tokens already in the cache
    steps: list[Step] = field(default_factory=list)
    t_admit: float = 0.0
    t_first: float = 0.0


def reservation(r: Prepared, n_ctx_seq: int) -> int:
    """The KV cells a request may fill: its prompt and max_tokens, at most ``n_ctx_seq``."""
    return min(len(r.tokens) + r.max_tokens, n_ctx_seq)


def cache_size(requests: list[Prepared], parallel: int, n_ctx_seq: int) -> int:
    """Cells for ``parallel`` sequences of the largest reservation, rounded up to 256."""
    need = max((reservation(r, n_ctx_seq) for r in requests), default=16)
    cells = need * max(1, min(parallel, len(requests)))
    return max(256, -(-cells // 256) * 256)


def batched_generations(engine: Any, requests: Iterable[Prepared], *, parallel: int, n_ctx_seq: int,
                        model_name: str = "") -> Iterator[tuple[int, Generation]]:
    """Generate for every request on ``engine`` (a context with ``n_seq_max ≥ parallel``),
    yielding ``(index, Generation)`` as each finishes."""
    if parallel > engine.n_seq_max:
        raise UsageError(f"the batch context holds {engine.n_seq_max} sequences, {parallel} asked")
    waiting = deque(requests)
    free = list(range(parallel - 1, -1, -1))
    live: dict[int, _Live] = {}
    reserved = 0
    capacity = engine.n_ctx
    cands = Candidates(engine.n_vocab)
    n_batch = engine.n_batch
    try:
        while waiting or live:
            # -- admit waiting prompts into free sequences, while their reservation fits
            while waiting and free:
                r = waiting[0]
                need = reservation(r, n_ctx_seq)
                if live and reserved + need > capacity:
                    break
                if need > capacity:
                    raise ContextOverflow(f"request {r.index} needs {need} cells, the batch cache has {capacity}")
                waiting.popleft()
                seq = free.pop()
                state = SequenceState(engine, r.chain, r.tokens, max_tokens=r.max_tokens, stop=r.stop,
                                      constraint=r.constraint)
                state.timings.prompt_eval_tokens = len(r.tokens)
                live[seq] = _Live(r, seq, need, state, t_admit=time.perf_counter())
                reserved += need
            # -- one batch: the newest token of each decoding sequence, then prompt chunks
            entries: list[tuple[int, int, int, bool]] = []
            outputs: list[tuple[int, int]] = []  # (entry index, sequence) of each output
            for seq, lv in live.items():
                if lv.fed == len(lv.req.tokens):
                    toks = lv.state.token_ids
                    outputs.append((len(entries), seq))
                    entries.append((toks[-1], len(lv.req.tokens) + len(toks) - 1, seq, True))
            for seq, lv in live.items():
                room = n_batch - len(entries)
                if room <= 0:
                    break
                rest = len(lv.req.tokens) - lv.fed
                if rest <= 0:
                    continue
                take = min(rest, room)
                for j in range(lv.fed, lv.fed + take):
                    last = j == len(lv.req.tokens) - 1
                    if last:
                        outputs.append((len(entries), seq))
                    entries.append((lv.req.tokens[j], j, seq, last))
                lv.fed += take
            rc = engine.decode_entries(entries)
            if rc != 0:
                raise ContextOverflow(f"the batch cache ({capacity} cells) is full") if rc == 1 \
                    else DecodeError(f"llama_decode failed with code {rc}")
            now = time.perf_counter()
            finished: list[int] = []
            for entry, seq in outputs:
                lv = live[seq]
                st = lv.state
                if not st.token_ids and not lv.t_first:
                    lv.t_first = now
                    st.timings.prompt_ms = (now - lv.t_admit) * 1000
                step = st.step(cands, engine.logits_at(entry))
                if step is not None:
                    lv.steps.append(step)
                if st.done:
                    finished.append(seq)
                elif len(lv.req.tokens) + len(st.token_ids) - 1 >= n_ctx_seq:
                    st.finish_reason = "context"  # as a single generation: the context is full
                    finished.append(seq)
            for seq in finished:
                lv = live.pop(seq)
                lv.state.finish()
                lv.state.timings.gen_ms = (time.perf_counter() - lv.t_first) * 1000
                engine.seq_remove(seq)
                free.append(seq)
                reserved -= lv.need
                yield lv.req.index, lv.state.generation(lv.req.prompt, lv.steps, lv.req.seed, model_name)
    finally:
        for seq in list(live):
            engine.seq_remove(seq)

