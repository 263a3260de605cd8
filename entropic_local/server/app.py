"""``create_app(model)``: the OpenAI-compatible Starlette app.

Routes: ``POST /v1/chat/completions``, ``POST /v1/completions`` (also without ``/v1``),
``GET /v1/models``, ``GET /health`` (503 while the model loads), ``POST /tokenize``,
``POST /detokenize``, ``GET /metrics`` (Prometheus text), ``GET /slots`` (the runtime's
counters as JSON).

Safe by default: with ``api_key`` every route but ``/health`` (and routes added outside the
API prefixes, such as static files) needs ``Authorization: Bearer KEY`` (compared in
constant time); bodies over ``max_body`` bytes are refused with 413; the queue of waiting
requests is bounded (503 with ``Retry-After``); every error is OpenAI's shape
``{"error": {"message", "type", "param", "code"}}``.

To extend it (a web page, other routes): pass ``routes=[...]`` (matched after the API's),
or mount later, ``app.mount("/", StaticFiles(directory=..., html=True))``; the API routes
come first, so a static mount at ``/`` never hides them. ``app.state.server`` is the
``ServerState`` (model, runtime, metrics).
"""

from __future__ import annotations

import hmac
import threading
import time
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, Callable

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ..errors import APIError, EntropicError
from . import wire
from .generation import Generator
from .metrics import CONTENT_TYPE_LATEST, Metrics
from .protocol import ChatRequest, CompletionRequest, DetokenizeRequest, TokenizeRequest, parse_body, validate
from .runtime import Runtime
from .webui import mount_webui

__all__ = ["create_app", "ServerState", "DEFAULT_MAX_BODY"]

DEFAULT_MAX_BODY = 8 * 1024 * 1024
API_PREFIXES = ("/v1/", "/completions", "/chat/", "/tokenize", "/detokenize", "/metrics", "/slots")
RETRY_AFTER_S = 1


@dataclass
class ServerState:
    model: Any = None
    runtime: Runtime | None = None
    metrics: Metrics = field(default_factory=Metrics)
    sampler: str = "llama"
    name: str = ""
    registry_name: str | None = None
    api_key: str | None = None
    max_body: int = DEFAULT_MAX_BODY
    loading_error: BaseException | None = None
    created: int = field(default_factory=lambda: int(time.time()))

    @property
    def ready(self) -> bool:
        return self.runtime is not None and self.runtime.ready.is_set() and self.runtime.error is None

    def on_end(self, t) -> None:
        """Count an ended request's tokens (on the loop thread)."""
        g = t.generation
        if g is None:
            return
        m = self.metrics
        m.prompt_tokens.inc(len(t.req.tokens))
        m.cached_tokens.inc(len(t.req.tokens) - g.timings.prompt_eval_tokens)
        m.completion_tokens.inc(len(g.token_ids))
        if t.t_first:
            m.ttft.observe(t.t_first - t.t_submit)


def _error(status: int, message: str, type: str = "invalid_request_error", param=None, code=None,
           headers=None) -> JSONResponse:
    return JSONResponse(wire.error_body(message, type, param, code), status_code=status, headers=headers)


async def read_json(request: Request, limit: int) -> Any:
    """The body as JSON, refusing more than ``limit`` bytes (413) before reading them all."""
    n = request.headers.get("content-length")
    if n is not None and n.isdigit() and int(n) > limit:
        raise APIError(f"the request body is {int(n)} bytes, more than the {limit} allowed", 413,
                       code="request_too_large")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise APIError(f"the request body is more than the {limit} bytes allowed", 413,
                           code="request_too_large")
        chunks.append(chunk)
    return parse_body(b"".join(chunks))


class _Auth:
    """Pure ASGI middleware: the Bearer token on the API routes (constant-time compare)."""

    def __init__(self, app, state: ServerState):
        self.app = app
        self.state = state

    async def __call__(self, scope, receive, send):
        key = self.state.api_key
        if key and scope["type"] == "http" and scope["path"].startswith(API_PREFIXES):
            got = b""
            for k, v in scope.get("headers", ()):
                if k == b"authorization":
                    got = v
            want = b"Bearer " + key.encode()
            if not hmac.compare_digest(got, want):
                resp = _error(401, "Incorrect API key provided.", "invalid_request_error", None, "invalid_api_key",
                              headers={"WWW-Authenticate": "Bearer"})
                await resp(scope, receive, send)
                return
        await self.app(scope, receive, send)


def create_app(model: Any = None, *, loader: Callable[[], Any] | None = None, parallel: int = 4,
               n_cells: int | None = None, queue_size: int = 64, api_key: str | None = None,
               sampler: str = "llama", max_body: int = DEFAULT_MAX_BODY, name: str | None = None,
               registry_name: str | None = None, keep_prefix: bool = True,
               routes: list | None = None, webui: bool = True) -> Starlette:
    """The server app for ``model`` (a loaded ``entropic_local.Model``), or for the model
    ``loader()`` returns, loaded in a thread at start-up (``/health`` answers 503 until it
    is ready). ``parallel`` sequences are decoded together in a KV cache of ``n_cells``
    cells (default ``parallel × model.n_ctx``; each request may use ``n_cells //
    parallel``). ``sampler``: the chain requests start from."""
    if model is None and loader is None:
        raise EntropicError("create_app needs a model or a loader")
    state = ServerState(sampler=sampler, api_key=api_key or None, max_body=int(max_body),
                        registry_name=registry_name)
    metrics = state.metrics
    gen = Generator(state)

    def attach(m) -> None:
        state.model = m
        state.name = name or m.name
        rt = Runtime(m, parallel=parallel, n_cells=n_cells, queue_size=queue_size, keep_prefix=keep_prefix)
        rt.on_end = state.on_end
        metrics.runtime = rt
        state.runtime = rt
        rt.start()

    def load_in_thread() -> None:
        try:
            attach(loader())
        except BaseException as e:  # noqa: BLE001 - reported by /health
            state.loading_error = e

    @asynccontextmanager
    async def lifespan(app):
        if model is not None:
            attach(model)
        else:
            threading.Thread(target=load_in_thread, name="entropic-load", daemon=True).start()
        try:
            yield
        finally:
            if state.runtime is not None:
                state.runtime.shutdown()

    def need_ready() -> None:
        if not state.ready:
            why = "the model failed to load" if state.loading_error or (state.runtime and state.runtime.error) \
                else "the model is loading"
            raise APIError(why, 503, type="server_error", code="unavailable")

    async def chat(request: Request):
        need_ready()
        req = validate(ChatRequest, await read_json(request, state.max_body))
        return await gen.chat(request, req)

    async def completions(request: Request):
        need_ready()
        req = validate(CompletionRequest, await read_json(request, state.max_body))
        return await gen.completion(request, req)

    async def models(request: Request):
        need_ready()
        m = state.model
        return JSONResponse({"object": "list", "data": [{
            "id": state.name, "object": "model", "created": state.created, "owned_by": "entropic-local",
            "meta": {"n_vocab": m.n_vocab, "n_ctx": state.runtime.n_ctx_seq, "n_ctx_train": m.engine.n_ctx_train,
                     "n_params": m.engine.n_params, "size": m.engine.size_bytes, "path": str(m.path)},
        }]})

    async def health(request: Request):
        if state.ready:
            return JSONResponse({"status": "ok"})
        if state.loading_error is not None or (state.runtime is not None and state.runtime.error is not None):
            return _error(503, "the model failed to load", "server_error", code="unavailable")
        return _error(503, "Loading model", "unavailable_error", code=503)

    async def tokenize(request: Request):
        need_ready()
        req = validate(TokenizeRequest, await read_json(request, state.max_body))
        m = state.model
        toks = m.tokenize(req.content, add_special=req.add_special, parse_special=req.parse_special)
        if req.with_pieces:
            return JSONResponse({"tokens": [{"id": t, "piece": m.engine.piece(t).decode("utf-8", "replace")}
                                            for t in toks]})
        return JSONResponse({"tokens": toks})

    async def detokenize(request: Request):
        need_ready()
        req = validate(DetokenizeRequest, await read_json(request, state.max_body))
        m = state.model
        bad = [t for t in req.tokens if not 0 <= t < m.n_vocab]
        if bad:
            raise APIError(f"token id {bad[0]} is outside the vocabulary (0..{m.n_vocab - 1})", param="tokens",
                           code="invalid_value")
        return JSONResponse({"content": m.detokenize(req.tokens)})

    async def metrics_route(request: Request):
        return Response(metrics.render(), media_type=CONTENT_TYPE_LATEST)

    async def slots(request: Request):
        need_ready()
        return JSONResponse(state.runtime.snapshot())

    async def on_api_error(request: Request, e: APIError):
        headers = {"Retry-After": str(RETRY_AFTER_S)} if e.status == 503 else None
        return _error(e.status, str(e), e.type, e.param, e.code, headers=headers)

    async def on_http(request: Request, e: HTTPException):
        msg = {404: f"no route {request.url.path}", 405: f"method {request.method} is not allowed on "
               f"{request.url.path}"}.get(e.status_code, str(e.detail))
        return _error(e.status_code, msg, "invalid_request_error", code=e.status_code)

    async def on_entropic(request: Request, e: EntropicError):
        return _error(400, str(e), "invalid_request_error")

    async def on_other(request: Request, e: Exception):
        return _error(500, f"internal error: {type(e).__name__}: {e}", "server_error")

    table = [
        Route("/v1/chat/completions", chat, methods=["POST"]),
        Route("/chat/completions", chat, methods=["POST"]),
        Route("/v1/completions", completions, methods=["POST"]),
        Route("/completions", completions, methods=["POST"]),
        Route("/v1/models", models, methods=["GET"]),
        Route("/models", models, methods=["GET"]),
        Route("/health", health, methods=["GET"]),
        Route("/v1/health", health, methods=["GET"]),
        Route("/tokenize", tokenize, methods=["POST"]),
        Route("/detokenize", detokenize, methods=["POST"]),
        Route("/metrics", metrics_route, methods=["GET"]),
        Route("/slots", slots, methods=["GET"]),
        *(routes or []),
    ]

    class _Counted:
        """Counts every answered request by endpoint and status."""

        def __init__(self, app):
            self.app = app

        async def __call__(self, scope, receive, send):
            if scope["type"] != "http":
                return await self.app(scope, receive, send)
            path = scope["path"]

            async def send_counted(msg):
                if msg["type"] == "http.response.start":
                    metrics.requests.labels(path if path.startswith(API_PREFIXES) or path == "/health" else "other",
                                            str(msg["status"])).inc()
                await send(msg)

            await self.app(scope, receive, send_counted)

    app = Starlette(
        routes=table, lifespan=lifespan,
        middleware=[Middleware(_Counted), Middleware(_Auth, state=state)],
        exception_handlers={APIError: on_api_error, HTTPException: on_http, EntropicError: on_entropic,
                            Exception: on_other},
    )
    if webui:  # the chat page at /, after the API's routes
        mount_webui(app)
    app.state.server = state
    return app
