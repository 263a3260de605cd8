"""The serving loop: one thread owns the model's batch context and steps one ``Scheduler``
(``decode/scheduler.py``) for every request the HTTP side submits.

The HTTP side (asyncio) calls ``submit`` with a prepared request and gets a ``Channel``: an
asyncio queue the loop thread fills, through ``call_soon_threadsafe``, with one event per
token (``("step", step, top)``) and one at the end (``("end", ticket)``). A request
submitted while others decode joins at the next step. ``cancel`` (a client that went away)
takes effect at the start of the next step, so the slot is free within one decode step.

The queue is bounded: past ``queue_size`` waiting requests ``submit`` raises ``QueueFull``
(the app answers 503 with ``Retry-After``). ``shutdown`` ends every open request with
``finish_reason`` ``stop`` at the next step boundary (their streams end with a final
chunk), then the thread exits.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from ..decode.request import Prepared
from ..decode.scheduler import Scheduler, Ticket
from ..errors import EntropicError, QueueFull

__all__ = ["Runtime", "Channel"]


@dataclass(eq=False)
class Channel:
    """Where one request's events arrive (on the event loop that submitted it)."""

    ticket: Ticket
    loop: asyncio.AbstractEventLoop
    queue: asyncio.Queue = field(default_factory=asyncio.Queue)

    def put(self, event) -> None:
        try:
            self.loop.call_soon_threadsafe(self.queue.put_nowait, event)
        except RuntimeError:  # the event loop is closed: nobody is listening
            pass


class Runtime:
    """The model's serving loop. ``start()`` it once; ``shutdown()`` ends it."""

    def __init__(self, model: Any, *, parallel: int = 4, n_cells: int | None = None,
                 queue_size: int = 64, keep_prefix: bool = True):
        self.model = model
        self.parallel = int(parallel)
        self.n_cells = int(n_cells) if n_cells else model.n_ctx * self.parallel
        self.n_ctx_seq = max(16, self.n_cells // self.parallel)
        self.queue_size = int(queue_size)
        self.keep_prefix = keep_prefix
        self._cv = threading.Condition()
        self._inbox: deque[Ticket] = deque()
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._sched: Scheduler | None = None
        self._rate: deque[tuple[float, int]] = deque()
        self.ready = threading.Event()
        self.error: BaseException | None = None
        self.on_end = None  # called with each ended ticket (metrics), on the loop thread

    # ------------------------------------------------------------------ the HTTP side
    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="entropic-serve", daemon=True)
        self._thread.start()
        self.ready.wait()
        if self.error is not None:
            raise self.error

    @property
    def queued(self) -> int:
        s = self._sched
        return len(self._inbox) + (len(s.waiting) if s is not None else 0)

    def submit(self, req: Prepared, *, top_logprobs: int = 0, prompt_logprobs: bool = False) -> Channel:
        """Queue ``req``; its events arrive on the returned channel. Call from the event loop."""
        t = Ticket(req, top_logprobs=top_logprobs, prompt_logprobs=prompt_logprobs)
        ch = Channel(t, asyncio.get_running_loop())
        t.user = ch
        with self._cv:
            if self._stopping:
                raise QueueFull("the server is shutting down")
            if self.queued >= self.queue_size:
                raise QueueFull(f"{self.queued} requests are waiting (the queue holds {self.queue_size})")
            self._inbox.append(t)
            self._cv.notify()
        return ch

    def cancel(self, ch: Channel) -> None:
        """Stop ``ch``'s request (a client that went away); a no-op once it has ended."""
        if not ch.ticket.done:
            ch.ticket.cancelled = True
            with self._cv:
                self._cv.notify()

    def shutdown(self, wait: float | None = 10.0) -> None:
        """End every open request (``finish_reason`` stop) and stop the loop thread."""
        with self._cv:
            self._stopping = True
            self._cv.notify()
        if wait is not None and self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(wait)

    def snapshot(self) -> dict[str, Any]:
        """Busy slots, queue depth, reserved cells and the recent generation rate."""
        s = self._sched
        now = time.perf_counter()
        rate = list(self._rate)
        recent = [n for t, n in rate if now - t <= 5.0]
        span = min(5.0, now - rate[0][0]) if rate else 0.0
        return {
            "slots": self.parallel,
            "busy": s.busy if s is not None else 0,
            "queued": self.queued,
            "reserved": s.reserved if s is not None else 0,
            "kept_cells": s.kept_cells if s is not None else 0,
            "n_cells": self.n_cells,
            "n_ctx_seq": self.n_ctx_seq,
            "tokens_per_second": round(sum(recent) / span, 2) if span > 0.5 else 0.0,
        }

    # ------------------------------------------------------------------ the loop thread
    def _run(self) -> None:
        try:
            with self.model.hold():
                engine = self.model.batch_engine(self.parallel, self.n_cells)
                self.n_cells = engine.n_ctx
                self._sched = Scheduler(engine, parallel=self.parallel, n_ctx_seq=self.n_ctx_seq,
                                        model_name=self.model.name, keep_prefix=self.keep_prefix)
                self.ready.set()
                self._loop(self._sched)
        except BaseException as e:  # noqa: BLE001 - reported to every waiting request
            self.error = e
            self.ready.set()
            with self._cv:
                self._stopping = True
                pending = list(self._inbox)
                self._inbox.clear()
            for t in pending:
                t.done, t.error = True, EntropicError(f"the serving loop failed: {e}")
                t.user.put(("end", t))

    def _loop(self, sched: Scheduler) -> None:
        while True:
            with self._cv:
                while not self._inbox and not self._stopping and sched.idle:
                    self._cv.wait()
                while self._inbox:
                    sched.submit(self._inbox.popleft())
                stopping = self._stopping
            if stopping:
                self._dispatch(sched.finish_all("stop"))
                sched.close()
                return
            try:
                events = sched.step()
            except Exception as e:  # a decode that failed: end what was live, keep serving
                err = e if isinstance(e, EntropicError) else EntropicError(f"decoding failed: {e}")
                events = sched.fail_live(err)
            self._dispatch(events)

    def _dispatch(self, events) -> None:
        """Deliver one step's events: one wake-up of each event loop per step, not one per
        token."""
        n = 0
        by_loop: dict[Any, list] = {}
        for t, step in events:
            ch = t.user
            if step is not None:
                n += 1
                ev = ("step", step, t.tops[-1] if t.top_logprobs else [])
            else:
                if self.on_end is not None:
                    try:
                        self.on_end(t)
                    except Exception:  # noqa: BLE001 - metrics never stop the loop
                        pass
                ev = ("end", t)
            by_loop.setdefault(ch.loop, []).append((ch.queue, ev))
        for loop, items in by_loop.items():
            try:
                loop.call_soon_threadsafe(_deliver, items)
            except RuntimeError:  # that event loop is closed: nobody is listening
                pass
        if n:
            now = time.perf_counter()
            self._rate.append((now, n))
            while self._rate and now - self._rate[0][0] > 5.0:
                self._rate.popleft()


def _deliver(items) -> None:
    for queue, ev in items:
        queue.put_nowait(ev)
