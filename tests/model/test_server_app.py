"""``create_app`` in process (Starlette's test client, the real model): 503 while the model
loads, then served; extra routes sit next to the API without hiding it."""

from __future__ import annotations

import threading

import pytest

pytest.importorskip("starlette")
pytest.importorskip("httpx")

from starlette.responses import PlainTextResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from entropic_local.server import create_app


def test_health_is_503_while_loading_then_ok(smollm2):
    go = threading.Event()

    def loader():
        go.wait(30)
        return smollm2

    app = create_app(loader=loader, parallel=2, n_cells=512)
    with TestClient(app) as c:
        r = c.get("/health")
        assert r.status_code == 503 and r.json()["error"]["message"] == "Loading model"
        r = c.post("/v1/completions", json={"prompt": "x", "max_tokens": 1})
        assert r.status_code == 503 and r.headers["retry-after"]
        go.set()
        for _ in range(100):
            if c.get("/health").status_code == 200:
                break
            threading.Event().wait(0.1)
        assert c.get("/health").json() == {"status": "ok"}
        r = c.post("/v1/completions", json={"prompt": "The capital of France is", "max_tokens": 3,
                                            "sampler": "greedy"})
        assert r.status_code == 200 and r.json()["usage"]["completion_tokens"] == 3
    assert app.state.server.runtime.snapshot()["busy"] == 0


def test_extra_routes_and_api_key(smollm2):
    page = Route("/", lambda request: PlainTextResponse("hello page"))
    app = create_app(smollm2, parallel=2, n_cells=512, api_key="secret", routes=[page])
    with TestClient(app) as c:
        assert c.get("/").text == "hello page"  # not an API route: no key needed
        assert c.get("/v1/models").status_code == 401
        ok = c.get("/v1/models", headers={"Authorization": "Bearer secret"})
        assert ok.status_code == 200 and ok.json()["data"][0]["meta"]["n_ctx"] == 256
        r = c.post("/tokenize", json={"content": "Hello", "with_pieces": True},
                   headers={"Authorization": "Bearer secret"})
        assert "".join(p["piece"] for p in r.json()["tokens"]) == "Hello"
