"""One assistant reply in a chat: streamed, stoppable, recorded (``Reply``), and what it
cost (``ReplyStats``)."""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Iterator

__all__ = ["Reply", "ReplyStats", "QUIET_ACTIONS", "DEFAULT_REPLY_TOKENS"]

# A reply stops here unless the model ends its turn first: a base model may never do so.
DEFAULT_REPLY_TOKENS = 1024
MIN_RATE_TOKENS = 8  # fewer tokens give no meaningful tokens/s

# actions an adaptive sampler reports that are not worth showing
QUIET_ACTIONS = frozenset({"", "none", "argmax", "greedy", "sample", "default", "flow", "flowing"})


@dataclass
class ReplyStats:
    """What one reply cost and how sure the model was."""

    n_tokens: int = 0
    prompt_tokens: int = 0
    prompt_eval_tokens: int = 0
    prompt_tps: float = 0.0
    gen_tps: float | None = None   # from the first token to the last; None for short replies
    mean_entropy: float = 0.0
    mean_logprob: float = 0.0
    finish: str = ""
    seed: int | None = None
    actions: dict[str, int] = field(default_factory=dict)

    def line(self) -> str:
        parts = [f"{self.n_tokens} tokens"]
        if self.prompt_eval_tokens:
            parts.append(f"prompt {self.prompt_eval_tokens} tok at {self.prompt_tps:.0f} tok/s")
        else:
            parts.append("prompt cached")
        if self.gen_tps is not None:
            parts.append(f"generation {self.gen_tps:.1f} tok/s")
        parts.append(f"mean entropy {self.mean_entropy:.2f} nats" if self.n_tokens else "mean entropy -")
        if self.actions:
            parts.append("actions " + ", ".join(f"{k}×{v}" for k, v in sorted(self.actions.items())))
        if self.finish in ("length", "context", "interrupted"):
            parts.append({"length": "cut at max_tokens", "context": "context full",
                          "interrupted": "interrupted"}[self.finish])
        return " · ".join(parts)


def _rate(times: list[float]) -> float | None:
    """Tokens/s between the first token and the last (the prompt, the first token's wait and
    the end-of-turn step left out), or None for a reply too short to tell."""
    if len(times) < MIN_RATE_TOKENS or times[-1] <= times[0]:
        return None
    return (len(times) - 1) / (times[-1] - times[0])


class Reply:
    """One streamed assistant reply. Iterate for ``Step``s, then call ``finish()``.

    End-of-turn control tokens that llama.cpp does not flag as end-of-generation stop the
    reply too (they are never shown). ``interrupt()`` (Ctrl-C) stops it; ``finish()``
    records the reply in the conversation (marked when interrupted) and returns its stats.
    """

    def __init__(self, session: Any, tokens: list[int], seed: int | None, notice: str | None):
        self.session = session
        self.notice = notice
        self.prompt_tokens = tokens
        room = session.model.n_ctx - len(tokens)
        max_tokens = room if session.max_tokens is None else min(session.max_tokens, room)
        self._room_bound = max_tokens == room  # a reply cut there ran out of context
        self.stream = session.model.stream(tokens, max_tokens=max(1, max_tokens), sampler=session.chain,
                                           seed=seed, stop=session.text_stops or None,
                                           grammar=getattr(session, "grammar", None),
                                           json_schema=getattr(session, "json_schema", None))
        self.steps: list[Any] = []
        self._times: list[float] = []  # when each step arrived
        self.interrupted = False
        self.stopped_by_token = False
        self._it: Iterator[Any] | None = None
        self._done = False
        self.stats: ReplyStats | None = None

    def __iter__(self) -> Iterator[Any]:
        stop_ids = self.session.stop_ids
        self._it = iter(self.stream)
        for step in self._it:
            if step.token_id in stop_ids:
                self.stopped_by_token = True
                self._it.close()
                return
            self.steps.append(step)
            self._times.append(time.perf_counter())
            yield step

    @property
    def tail(self) -> str:
        """Text released after the last step (held back while it could start a stop string)."""
        return self.stream.tail if not (self.interrupted or self.stopped_by_token) else ""

    def interrupt(self) -> None:
        self.interrupted = True
        if self._it is not None:
            self._it.close()

    def finish(self) -> ReplyStats:
        if self._done:
            assert self.stats is not None
            return self.stats
        self._done = True
        if self._it is not None:
            self._it.close()
        gen = self.stream.generation
        text = gen.text if gen is not None else "".join(s.text for s in self.steps)
        finish = "interrupted" if self.interrupted else (
            "stop" if self.stopped_by_token else (gen.finish_reason if gen is not None else "stop"))
        if finish == "length" and self._room_bound:
            finish = "context"
        t = self.stream.loop.timings
        steps = self.steps
        actions = Counter(str(s.info.get("action")) for s in steps
                          if s.info.get("action") is not None
                          and str(s.info.get("action")).lower() not in QUIET_ACTIONS)
        st = ReplyStats(
            n_tokens=len(steps),
            prompt_tokens=len(self.prompt_tokens),
            prompt_eval_tokens=t.prompt_eval_tokens,
            prompt_tps=t.prompt_tps,
            gen_tps=_rate(self._times),
            mean_entropy=(sum(s.entropy for s in steps) / len(steps)) if steps else 0.0,
            mean_logprob=(sum(s.logprob for s in steps) / len(steps)) if steps else 0.0,
            finish=finish,
            seed=self.stream.seed,
            actions=dict(actions),
        )
        self.stats = st
        self.session._record_reply(text, self.interrupted, steps, st)
        return st
