"""Continuous batching, one step at a time: the ``Scheduler`` that both the batch command
(``decode/batched.py``) and the server drive.

One context with ``n_seq_max = parallel`` sequences in one unified KV cache. ``submit`` a
request at any time; every ``step()`` is ONE ``llama_decode`` for all live sequences: each
decoding sequence contributes its newest token, sequences still reading their prompt fill
the rest of the batch with prompt tokens (prefill chunked to ``n_batch``; logits only for a
prompt's last token, or for every prompt token when the request asks for prompt logprobs).
The logits of every output come back as one ``[n_outputs, n_vocab]`` view, and their
statistics (max, log Z, entropy, varentropy) from one compiled call over all rows
(``kernels/rows.py``); then each sequence's chain selects from its own row.
A request submitted between two steps joins at the next one. Each sequence has its own
sampler chain, seed and ``SequenceState``, so every sampler runs per sequence exactly as in
``Model.generate``. A finished or cancelled sequence frees its slot at once, and the next
waiting request takes it in the same step.

Room in the cache: a request is admitted only when its reservation (prompt + max_tokens,
capped at ``n_ctx_seq``) fits next to the live ones', so a decode never runs out of cells.

Prefix reuse (``keep_prefix``): a finished sequence's cells stay in the cache, tagged with
its slot. A new request goes to the free slot whose kept tokens share the longest prefix
with its prompt, and only the rest of the prompt is decoded (its last token always is, for
its logits). The reuse shows as ``timings.prompt_eval_tokens < prompt_tokens``.

Kept cells are not free: in one unified cache a decode step attends over every cell up to
the highest one in use (masked), so a kept cell far up the cache slows every live
sequence's every token. Two rules bound that cost:

* a sequence that was decoded beside others keeps only its prompt's cells: its generated
  tokens were placed one per step, interleaved with the others' across the whole span the
  batch used, and keeping any of them would keep that whole span attended over (a sequence
  decoded alone keeps everything: the reply a chat's next turn starts with);
* kept cells are dropped, least recently used first, as soon as a reservation needs the
  room, and whenever a request is admitted or ends beside live ones, down to ``max_kept``
  cells in all (default ``n_ctx_seq``; the prefix a request reuses is live again and not
  counted). While nothing is live they cost nothing and stay.

Per-request extras for an API: ``top_logprobs`` (the n most likely tokens of each step's
full distribution at temperature 1, with their logprobs) and ``prompt_logprobs`` (for every
prompt token after the first: its logprob, entropy and varentropy under the model given the
tokens before it, and the top alternatives), both read from the same logits the step uses.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import ContextOverflow, DecodeError, EntropicError, UsageError
from ..kernels import rows_stats
from ..samplers.candidates import Candidates
from .request import Prepared, reservation
from .sequence import Generation, SequenceState, Step

__all__ = ["Scheduler", "Ticket", "PromptToken", "top_logprobs"]


@dataclass(slots=True)
class PromptToken:
    """A prompt token scored by the model: ``logprob`` of it given the tokens before it,
    that distribution's ``entropy``/``varentropy`` (nats), and the ``top`` alternatives."""

    token_id: int
    logprob: float
    entropy: float
    varentropy: float
    top: list[tuple[int, float]]


@dataclass(eq=False)
class Ticket:
    """One request in the scheduler and what it has made so far."""

    req: Prepared
    top_logprobs: int = 0
    prompt_logprobs: bool = False
    state: SequenceState | None = None
    steps: list[Step] = field(default_factory=list)
    tops: list[list[tuple[int, float]]] = field(default_factory=list)
    prompt_scores: list[PromptToken] = field(default_factory=list)
    slot: int = -1
    fed: int = 0
    need: int = 0
    cancelled: bool = False
    crowded: bool = False  # live at the same time as another sequence (so decoded beside it)
    done: bool = False
    error: Exception | None = None
    generation: Generation | None = None
    t_submit: float = field(default_factory=time.perf_counter)
    t_admit: float = 0.0
    t_first: float = 0.0
    user: Any = None  # the caller's own data (a server's reply channel)


def top_logprobs(raw: np.ndarray, log_z: float, n: int) -> list[tuple[int, float]]:
    """The ``n`` most likely tokens of logits ``raw`` (log-partition ``log_z``), descending."""
    if n <= 0:
        return []
    n = min(n, raw.shape[0])
    idx = np.argpartition(raw, -n)[-n:]
    idx = idx[np.argsort(-raw[idx], kind="stable")]
    return [(int(i), float(raw[i]) - log_z) for i in idx]


class Scheduler:
    """Step-wise continuous batching over ``engine`` (a context with ``n_seq_max ≥
    parallel``). Not thread-safe: one thread calls ``submit``/``cancel``/``step``."""

    def __init__(self, engine: Any, *, parallel: int, n_ctx_seq: int, model_name: str = "",
                 keep_prefix: bool = False, max_kept: int | None = None):
        if parallel > engine.n_seq_max:
            raise UsageError(f"the batch context holds {engine.n_seq_max} sequences, {parallel} asked")
        self.engine = engine
        self.parallel = parallel
        self.n_ctx_seq = n_ctx_seq
        self.model_name = model_name
        self.keep_prefix = keep_prefix
        self.max_kept = n_ctx_seq if max_kept is None else max(0, int(max_kept))
        self.capacity = engine.n_ctx
        self.waiting: deque[Ticket] = deque()
        self.live: dict[int, Ticket] = {}
        self.free: list[int] = list(range(parallel - 1, -1, -1))
        self.kept: dict[int, list[int]] = {}       # free slot -> the tokens its cells still hold
        self.kept_used: dict[int, float] = {}      # free slot -> when it was last used
        self.reserved = 0
        self.cands = Candidates(engine.n_vocab)
        self._stats = np.empty((max(1, parallel), 4))

    # ------------------------------------------------------------------ public
    @property
    def idle(self) -> bool:
        return not self.waiting and not self.live

    @property
    def busy(self) -> int:
        return len(self.live)

    def submit(self, ticket: Ticket) -> Ticket:
        """Queue a request; it is admitted at the next step that has room."""
        self.waiting.append(ticket)
        return ticket

    def cancel(self, ticket: Ticket) -> None:
        """Stop a request: its slot is freed at the start of the next step (a waiting one
        is dropped)."""
        ticket.cancelled = True

    def close(self) -> None:
        """Drop every sequence's cells (live and kept)."""
        for slot in list(self.live) + list(self.kept):
            self.engine.seq_remove(slot)
        self.live.clear()
        self.kept.clear()

    def step(self) -> list[tuple[Ticket, Step | None]]:
        """Admit, decode once, sample every sequence that has logits. Returns ``(ticket,
        step)`` for each token made (``step`` None when the ticket just ended: ``done`` is
        set and ``generation`` or ``error`` filled)."""
        events: list[tuple[Ticket, Step | None]] = []
        self._reap_cancelled(events)
        self._admit(events)
        if not self.live:
            return events
        entries, outputs = self._batch()
        rc = self.engine.decode_entries(entries)
        if rc != 0:
            err = ContextOverflow(f"the batch cache ({self.capacity} cells) is full") if rc == 1 \
                else DecodeError(f"llama_decode failed with code {rc}")
            return self.fail_live(err)
        now = time.perf_counter()
        # every output row at once: one view of the logits, one compiled stats call
        rows = self.engine.logits_rows(len(outputs))
        stats = self._stats if self._stats.shape[0] >= len(outputs) else np.empty((len(outputs), 4))
        self._stats = stats
        try:
            rows_stats(rows, stats)
        except ValueError as e:  # NaN straight from llama.cpp: a broken model file
            return self.fail_live(DecodeError(f"llama.cpp decoded unusable logits ({e})"))
        for k, (entry, slot, pos) in enumerate(outputs):
            t = self.live[slot]
            raw = rows[k]
            row = stats[k]
            if pos >= 0:  # a prompt position: score the prompt token after it
                log_z = float(row[1])
                nxt = t.req.tokens[pos + 1]
                t.prompt_scores.append(PromptToken(nxt, float(raw[nxt]) - log_z, float(row[2]),
                                                   float(row[3]), top_logprobs(raw, log_z, t.top_logprobs)))
                continue
            st = t.state
            if not st.token_ids and not t.t_first:
                t.t_first = now
                st.timings.prompt_ms = (now - t.t_admit) * 1000
            step = st.step(self.cands, raw, stats=(float(row[0]), float(row[1]), float(row[2]), float(row[3])))
            if step is not None:
                t.steps.append(step)
                if t.top_logprobs:
                    log_z = float(raw[step.token_id]) - step.logprob
                    t.tops.append(top_logprobs(raw, log_z, t.top_logprobs))
                events.append((t, step))
            if st.done:
                self._end(t, events)
            elif len(t.req.tokens) + len(st.token_ids) - 1 >= self.n_ctx_seq:
                st.finish_reason = "context"  # as a single generation: the context is full
                self._end(t, events)
        return events

    @property
    def kept_cells(self) -> int:
        """Cells held by ended sequences for prefix reuse."""
        return self._kept_total()

    def fail_live(self, error: Exception) -> list[tuple[Ticket, Step | None]]:
        """End every live request with ``error`` (a decode that raised)."""
        events: list[tuple[Ticket, Step | None]] = []
        for t in list(self.live.values()):
            self._end(t, events, error=error)
        return events

    def finish_all(self, reason: str = "stop") -> list[tuple[Ticket, Step | None]]:
        """End every live and waiting request now (shutdown), with ``reason``."""
        events: list[tuple[Ticket, Step | None]] = []
        for t in list(self.live.values()):
            if t.state is not None:
                t.state.finish_reason = reason
            self._end(t, events)
        while self.waiting:
            t = self.waiting.popleft()
            t.done = True
            t.error = EntropicError("the server is shutting down")
            events.append((t, None))
        return events

    # ------------------------------------------------------------------ internals
    def _reap_cancelled(self, events) -> None:
        if any(t.cancelled for t in self.waiting):
            keep = deque()
            for t in self.waiting:
                if t.cancelled:
                    t.done = True
                    events.append((t, None))
                else:
                    keep.append(t)
            self.waiting = keep
        for t in [t for t in self.live.values() if t.cancelled]:
            if t.state is not None:
                t.state.finish_reason = "cancelled"
            self._end(t, events, keep=False)

    def _kept_total(self, skip: int = -1) -> int:
        return sum(len(v) for s, v in self.kept.items() if s != skip)

    def _pick_slot(self, tokens: list[int]) -> tuple[int, int]:
        """The free slot sharing the longest prefix with ``tokens``, and that length."""
        best, best_n = self.free[-1], -1
        for s in self.free:
            kept = self.kept.get(s)
            n = 0
            if kept:
                lim = min(len(kept), len(tokens) - 1)  # the last prompt token is always decoded
                while n < lim and kept[n] == tokens[n]:
                    n += 1
            if n > best_n or (n == best_n and not self.kept.get(s)):
                best, best_n = s, n
        return best, max(best_n, 0)

    def _drop_kept(self, enough, skip: int = -1) -> None:
        """Drop kept prefixes, least recently used first and never slot ``skip``'s, until
        ``enough()`` holds."""
        for s in sorted(self.kept, key=lambda s: self.kept_used.get(s, 0.0)):
            if enough():
                return
            if s == skip:
                continue
            self.engine.seq_remove(s)
            del self.kept[s]

    def _trim_kept(self, skip: int = -1) -> None:
        """Kept cells down to ``max_kept`` in all (slot ``skip``'s not counted)."""
        self._drop_kept(lambda: self._kept_total(skip) <= self.max_kept, skip)

    def _evict(self, room: int, skip: int) -> None:
        """Drop kept cells until ``room`` cells are free."""
        self._drop_kept(lambda: self.capacity - self.reserved - self._kept_total(skip) >= room, skip)

    def _admit(self, events) -> None:
        while self.waiting and self.free:
            t = self.waiting[0]
            r = t.req
            need = reservation(r, self.n_ctx_seq)
            if need > self.capacity:
                self.waiting.popleft()
                t.done = True
                t.error = ContextOverflow(f"the request needs {need} cells, the cache has {self.capacity}")
                events.append((t, None))
                continue
            slot, n_keep = self._pick_slot(r.tokens) if self.keep_prefix and not t.prompt_logprobs \
                else (self.free[-1], 0)
            if self.reserved + need + self._kept_total(slot) > self.capacity:
                self._evict(need, slot)
            if self.reserved + need + self._kept_total(slot) > self.capacity:
                if self.live:
                    break  # wait for a live sequence to end
                for s in list(self.kept):  # nothing live: drop every kept cell, the slot's too
                    self.engine.seq_remove(s)
                    del self.kept[s]
                n_keep = 0
            self._trim_kept(slot)
            self.waiting.popleft()
            self.free.remove(slot)
            self.kept.pop(slot, None)
            self.engine.seq_remove(slot, n_keep, -1)
            t.slot, t.need, t.fed = slot, need, n_keep
            t.state = SequenceState(self.engine, r.chain, r.tokens, max_tokens=r.max_tokens, stop=r.stop,
                                    constraint=r.constraint)
            t.state.timings.prompt_eval_tokens = len(r.tokens) - n_keep
            t.t_admit = time.perf_counter()
            if self.live:  # it decodes beside these from the next step on
                t.crowded = True
                for other in self.live.values():
                    other.crowded = True
            self.live[slot] = t
            self.reserved += need

    def _batch(self):
        """The entries of one decode and which outputs to read: ``(entry, slot, pos)``, pos
        the prompt position of a scored prompt token, -1 for a sequence's next token."""
        entries: list[tuple[int, int, int, bool]] = []
        outputs: list[tuple[int, int, int]] = []
        n_batch = self.engine.n_batch
        for slot, t in self.live.items():
            if t.fed == len(t.req.tokens):
                toks = t.state.token_ids
                outputs.append((len(entries), slot, -1))
                entries.append((toks[-1], len(t.req.tokens) + len(toks) - 1, slot, True))
        for slot, t in self.live.items():
            room = n_batch - len(entries)
            if room <= 0:
                break
            n_prompt = len(t.req.tokens)
            rest = n_prompt - t.fed
            if rest <= 0:
                continue
            take = min(rest, room)
            for j in range(t.fed, t.fed + take):
                last = j == n_prompt - 1
                if last:
                    outputs.append((len(entries), slot, -1))
                elif t.prompt_logprobs:
                    outputs.append((len(entries), slot, j))
                entries.append((t.req.tokens[j], j, slot, last or t.prompt_logprobs))
            t.fed += take
        return entries, outputs

    def _end(self, t: Ticket, events, error: Exception | None = None, keep: bool = True) -> None:
        slot = t.slot
        self.live.pop(slot, None)
        self.reserved -= t.need
        st = t.state
        if st is not None:
            st.finish()
            st.timings.gen_ms = (time.perf_counter() - t.t_first) * 1000 if t.t_first else 0.0
        if keep and self.keep_prefix and error is None and st is not None:
            n = max(self.engine.seq_pos_max(slot) + 1, 0)
            if t.crowded and n > len(t.req.tokens):  # its generated cells are interleaved: drop them
                n = len(t.req.tokens)
                self.engine.seq_remove(slot, n, -1)
            self.kept[slot] = (list(t.req.tokens) + st.token_ids)[:n]
            self.kept_used[slot] = time.perf_counter()
            if self.live:
                self._trim_kept()
        else:
            self.engine.seq_remove(slot)
        self.free.append(slot)
        t.done = True
        t.error = error
        if error is None and st is not None:
            t.generation = st.generation(t.req.prompt, t.steps, t.req.seed, self.model_name)
        events.append((t, None))
