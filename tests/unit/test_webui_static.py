"""The chat page's files: everything they reference is shipped with them, nothing comes
from another origin, model text never goes through an HTML parser, and the mount serves
them after the app's own routes with a same-origin Content-Security-Policy."""

from __future__ import annotations

import re

import pytest

from entropic_local.server.webui import PAGE_HEADERS, STATIC_DIR, mount_webui

JS = sorted(STATIC_DIR.glob("*.js"))
ALL = sorted(p for p in STATIC_DIR.iterdir() if p.is_file())


def test_the_page_and_its_modules_are_there():
    names = {p.name for p in ALL}
    assert {"index.html", "style.css", "api.js", "reply.js", "uncertainty.js", "chart.js", "store.js", "controls.js", "app.js"} <= names


def test_every_reference_resolves_to_a_shipped_file():
    html = (STATIC_DIR / "index.html").read_text(encoding="utf-8")
    refs = re.findall(r'(?:src|href)="([^"#][^"]*)"', html)
    refs = [r for r in refs if not r.startswith("data:")]
    assert refs, "index.html references no files"
    for r in refs:
        assert (STATIC_DIR / r).is_file(), r
    for js in JS:
        for spec in re.findall(r'^\s*import\s[^;]*?from\s+"([^"]+)"', js.read_text(encoding="utf-8"), re.M):
            assert spec.startswith("./"), f"{js.name} imports {spec} (only the page's own modules)"
            assert (STATIC_DIR / spec[2:]).is_file(), f"{js.name}: {spec}"


@pytest.mark.parametrize("path", ALL, ids=lambda p: p.name)
def test_nothing_is_fetched_from_another_origin(path):
    text = path.read_text(encoding="utf-8")
    assert not re.search(r"https?://|//cdn|@import\s+url", text.replace("http://www.w3.org/2000/svg", "")), path.name


@pytest.mark.parametrize("path", JS, ids=lambda p: p.name)
def test_no_script_parses_html(path):
    text = path.read_text(encoding="utf-8")
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function",
                 "createContextualFragment", "DOMParser"):
        assert sink not in text, f"{path.name} uses {sink}"


def test_the_mount_serves_the_page_after_the_apps_routes():
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse
    from starlette.routing import Route
    from starlette.testclient import TestClient

    app = Starlette(routes=[Route("/health", lambda r: JSONResponse({"status": "ok"}))])
    mount_webui(app)
    c = TestClient(app)
    r = c.get("/")
    assert r.status_code == 200
    assert r.text == (STATIC_DIR / "index.html").read_text(encoding="utf-8")
    for k, v in PAGE_HEADERS.items():
        assert r.headers[k] == v
    assert "script-src 'self'" in r.headers["content-security-policy"]
    assert c.get("/app.js").headers["content-type"].startswith("text/javascript")
    assert c.get("/health").json() == {"status": "ok"}  # the app's route wins
    assert c.get("/no-such-file.js").status_code == 404
    assert c.post("/v1/no-such-route", json={}).status_code == 404  # unknown routes stay 404s
    assert c.post("/app.js", json={}).status_code == 405
