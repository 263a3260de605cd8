"""The two generation endpoints, ``/v1/chat/completions`` and ``/v1/completions``: a
validated request becomes a prepared one (prompt tokens, the sampler chain with the
request's fields applied, seed, stop strings, ``max_tokens`` capped by the context), goes to
the runtime, and its events become one response or a stream of server-sent events.

Sampling: the server's ``--sampler`` chain (default ``llama``) with the request's fields
applied as llama.cpp's flags (``temperature`` 0 is greedy, as in llama-server); ``sampler``
in the request replaces the base chain (``"sampler": "entropix"``); ``logit_bias`` adds a
``logit_bias`` stage. ``max_tokens`` absent: until the sequence's context is full.
"""

from __future__ import annotations

import asyncio
import json
import threading
from typing import Any, AsyncIterator

from sse_starlette.sse import EventSourceResponse
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from ..batch.runner import ChatRenderer
from ..decode.request import BatchRequest
from ..errors import (APIError, ChatTemplateError, ContextOverflow, EntropicError, GrammarError, InvalidSamplerSpec,
                      QueueFull)
from ..samplers.chain import SamplerChain
from ..samplers.stages.logit_bias import LogitBias
from . import wire
from .protocol import ChatRequest, CompletionRequest

__all__ = ["Generator"]

SHUTDOWN_GRACE_S = 5.0


def _api_error(e: EntropicError) -> APIError:
    if isinstance(e, APIError):
        return e
    if isinstance(e, InvalidSamplerSpec):
        return APIError(str(e), 422, param="sampler", code="invalid_sampler")
    if isinstance(e, ContextOverflow):
        return APIError(str(e), 400, param="messages", code="context_length_exceeded")
    if isinstance(e, ChatTemplateError):
        return APIError(str(e), 422, param="messages", code="chat_template_error")
    if isinstance(e, GrammarError):
        return APIError(str(e), 400, param="response_format", code="invalid_grammar")
    if isinstance(e, QueueFull):
        return APIError(str(e), 503, type="server_error", code="queue_full")
    return APIError(str(e), 400)


class Generator:
    """Turns requests into runtime submissions and events into responses."""

    def __init__(self, state: Any):
        self.s = state  # the app's ServerState: model, runtime, metrics, sampler, name
        self._renderer: ChatRenderer | None = None
        self._render_lock = threading.Lock()

    # ------------------------------------------------------------------ preparing
    def _chain(self, req) -> SamplerChain:
        chain = SamplerChain.from_options(req.sampler or self.s.sampler, **req.flags())
        if req.logit_bias:
            bias = {}
            for tok, b in req.logit_bias.items():
                if not 0 <= tok < self.s.model.n_vocab:
                    raise APIError(f"logit_bias: token id {tok} is outside the vocabulary "
                                   f"(0..{self.s.model.n_vocab - 1})", param="logit_bias", code="invalid_value")
                bias[tok] = b
            chain = SamplerChain([LogitBias(bias), *chain.stages])
        return chain

    def _chat_tokens(self, req: ChatRequest) -> tuple[list[int], list[str]]:
        msgs = [{"role": "system" if m.role == "developer" else m.role, "content": m.text()}
                for m in req.messages]
        with self._render_lock:
            if self._renderer is None:
                self._renderer = ChatRenderer(self.s.model, self.s.registry_name)
            return self._renderer.tokens(msgs)

    def _prepare(self, req, tokens: list[int], stops: list[str], prompt_text: str | None = None):
        model = self.s.model
        n_ctx = self.s.runtime.n_ctx_seq
        if not tokens:
            raise APIError("the prompt is empty", param="prompt")
        bad = [t for t in tokens if not 0 <= t < model.n_vocab]
        if bad:
            raise APIError(f"token id {bad[0]} is outside the vocabulary (0..{model.n_vocab - 1})",
                           param="prompt", code="invalid_value")
        if len(tokens) >= n_ctx:
            raise APIError(f"the prompt is {len(tokens)} tokens but a request's context holds {n_ctx}",
                           400, param="messages" if isinstance(req, ChatRequest) else "prompt",
                           code="context_length_exceeded")
        room = n_ctx - len(tokens)
        limit = req.limit if req.limit is not None else room
        stop = list(req.stop or [])
        stop += [s for s in stops if s not in stop]
        chain = self._chain(req)
        p = model.prepare(BatchRequest(tokens, max_tokens=min(limit, room), sampler=chain, seed=req.seed,
                                       stop=stop or None, **req.constraint()))
        if prompt_text is not None:
            p.prompt = prompt_text
        return p

    def _submit(self, p, *, top: int, prompt_logprobs: bool = False):
        return self.s.runtime.submit(p, top_logprobs=top, prompt_logprobs=prompt_logprobs)

    # ------------------------------------------------------------------ shared pieces
    def _pieces(self, top) -> list[tuple[bytes, float]]:
        piece = self.s.model.engine.piece
        return [(piece(i), lp) for i, lp in top]

    def _finish(self, t) -> tuple[Any, dict, dict, dict]:
        g = t.generation
        n_prompt = len(t.req.tokens)
        cached = n_prompt - g.timings.prompt_eval_tokens
        use = wire.usage(n_prompt, len(g.token_ids), cached)
        return g, use, wire.timings(g.timings), wire.entropic_summary(g.steps, g.sampler, g.seed, g.constraint)

    async def _wait(self, request: Request, ch) -> list[tuple] | None:
        """Every event of a non-streamed request; None (and the request cancelled) when the
        client went away."""
        events = []
        try:
            while True:
                try:
                    ev = await asyncio.wait_for(ch.queue.get(), 0.25)
                except asyncio.TimeoutError:
                    if await request.is_disconnected():
                        self.s.runtime.cancel(ch)
                        self.s.metrics.cancelled.inc()
                        return None
                    continue
                events.append(ev)
                if ev[0] == "end":
                    return events
        except BaseException:
            self.s.runtime.cancel(ch)
            raise

    @staticmethod
    def _ended(t) -> None:
        if t.error is not None:
            err = t.error
            if isinstance(err, QueueFull) or "shutting down" in str(err):
                raise APIError(str(err), 503, type="server_error", code="unavailable")
            raise APIError(str(err), 500, type="server_error", code="decode_error")

    def _sse(self, request: Request, ch, gen: AsyncIterator[dict]) -> EventSourceResponse:
        runtime, metrics = self.s.runtime, self.s.metrics

        async def body():
            try:
                async for obj in gen:
                    yield {"data": obj if isinstance(obj, str) else json.dumps(obj, ensure_ascii=False)}
            finally:
                if not ch.ticket.done:
                    runtime.cancel(ch)
                    metrics.cancelled.inc()

        return EventSourceResponse(body(), sep="\n", ping=15, shutdown_grace_period=SHUTDOWN_GRACE_S,
                                   headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    def _error_event(self, t) -> dict:
        try:
            self._ended(t)
        except APIError as e:
            return wire.error_body(str(e), e.type, e.param, e.code)
        return wire.error_body("unknown error", "server_error")

    # ------------------------------------------------------------------ chat
    async def chat(self, request: Request, req: ChatRequest):
        try:
            tokens, stops = self._chat_tokens(req)
            p = self._prepare(req, tokens, stops)
        except EntropicError as e:
            raise _api_error(e) from None
        top = (req.top_logprobs or 0) if req.logprobs else 0
        try:
            ch = self._submit(p, top=top)
        except QueueFull as e:
            raise _api_error(e) from None
        rid, created, name = wire.new_id("chatcmpl"), wire.now(), self.s.name
        if req.stream:
            return self._sse(request, ch, self._chat_stream(ch, req, rid, created, name, top))
        events = await self._wait(request, ch)
        if events is None:
            return Response(status_code=499)
        t = events[-1][1]
        self._ended(t)
        g, use, tim, summary = self._finish(t)
        lps = None
        if req.logprobs:
            lps = [self._chat_lp(step, top_ids) for _, step, top_ids in events[:-1]]
        return JSONResponse(wire.chat_response(rid, created, name, g.text, g.finish_reason, lps, summary, use, tim))

    def _chat_lp(self, step, top) -> dict:
        return wire.chat_logprob(self.s.model.engine.piece(step.token_id), step.logprob, step.entropy,
                                 step.varentropy, self._pieces(top), step.info)

    async def _chat_stream(self, ch, req: ChatRequest, rid, created, name, top):
        inc = req.include_usage
        yield wire.chat_chunk(rid, created, name, {"role": "assistant", "content": ""}, with_usage=inc)
        sent = 0
        while True:
            ev = await ch.queue.get()
            if ev[0] == "step":
                step = ev[1]
                lps = [self._chat_lp(step, ev[2])] if req.logprobs else None
                sent += len(step.text)
                yield wire.chat_chunk(rid, created, name, {"content": step.text}, logprobs=lps, with_usage=inc)
                continue
            t = ev[1]
            if t.error is not None:
                yield self._error_event(t)
                return
            g, use, tim, summary = self._finish(t)
            rest = g.text[sent:]
            yield wire.chat_chunk(rid, created, name, {"content": rest} if rest else {}, reason=g.finish_reason,
                                  summary=summary, tim=tim, with_usage=inc)
            if inc:
                yield wire.usage_chunk(rid, created, name, "chat.completion.chunk", use)
            yield "[DONE]"
            return

    # ------------------------------------------------------------------ completions
    async def completion(self, request: Request, req: CompletionRequest):
        model = self.s.model
        try:
            if isinstance(req.prompt, str):
                text = req.prompt
                tokens = model.tokenize(text, add_special=True, parse_special=True)
            else:
                tokens = list(req.prompt)
                text = None
            p = self._prepare(req, tokens, [], prompt_text=text)
        except EntropicError as e:
            raise _api_error(e) from None
        top = req.logprobs or 0
        want_lp = req.logprobs is not None
        try:
            ch = self._submit(p, top=top, prompt_logprobs=req.echo and want_lp)
        except QueueFull as e:
            raise _api_error(e) from None
        rid, created, name = wire.new_id("cmpl"), wire.now(), self.s.name
        if req.stream:
            return self._sse(request, ch, self._completion_stream(ch, req, rid, created, name, want_lp))
        events = await self._wait(request, ch)
        if events is None:
            return Response(status_code=499)
        t = events[-1][1]
        self._ended(t)
        g, use, tim, summary = self._finish(t)
        out_text = (p.prompt + g.text) if req.echo else g.text
        lps = None
        if want_lp:
            entries = self._prompt_entries(t) if req.echo else []
            entries += [self._step_entry(step, top_ids) for _, step, top_ids in events[:-1]]
            lps = wire.completion_logprobs(entries)
        return JSONResponse(wire.completion_response(rid, created, name, out_text, g.finish_reason, lps, summary,
                                                     use, tim))

    def _step_entry(self, step, top):
        return (self.s.model.engine.piece(step.token_id), step.logprob, step.entropy, step.varentropy,
                self._pieces(top))

    def _prompt_entries(self, t) -> list:
        piece = self.s.model.engine.piece
        toks = t.req.tokens
        out = [(piece(toks[0]), None, None, None, [])]
        out += [(piece(s.token_id), s.logprob, s.entropy, s.varentropy, self._pieces(s.top))
                for s in t.prompt_scores]
        return out

    async def _completion_stream(self, ch, req: CompletionRequest, rid, created, name, want_lp):
        inc = req.include_usage
        echoed = not req.echo
        sent = 0
        offset = 0
        t = ch.ticket

        def echo_chunk():
            lps = wire.completion_logprobs(self._prompt_entries(t)) if want_lp else None
            return wire.completion_chunk(rid, created, name, t.req.prompt, logprobs=lps, with_usage=inc)

        while True:
            ev = await ch.queue.get()
            if not echoed and not (ev[0] == "end" and t.error is not None):
                echoed = True
                offset = len(t.req.prompt)
                yield echo_chunk()
            if ev[0] == "step":
                step = ev[1]
                lps = wire.completion_logprobs([self._step_entry(step, ev[2])], offset + sent) if want_lp else None
                sent += len(step.text)
                yield wire.completion_chunk(rid, created, name, step.text, logprobs=lps, with_usage=inc)
                continue
            if t.error is not None:
                yield self._error_event(t)
                return
            g, use, tim, summary = self._finish(t)
            yield wire.completion_chunk(rid, created, name, g.text[sent:], reason=g.finish_reason, summary=summary,
                                        tim=tim, with_usage=inc)
            if inc:
                yield wire.usage_chunk(rid, created, name, "text_completion", use)
            yield "[DONE]"
            return
