"""The web chat page: the static files in ``static/`` served at ``/`` of the server's app.

The page is plain HTML, CSS and ES modules (no build step, nothing fetched from another
origin), so it works with no network. It talks to the same app's ``/v1/chat/completions``
and ``/v1/models`` with the API key the user gives it, and keeps its conversations in the
browser. The files themselves are public (the page must load to ask for the key); every
answer carries a Content-Security-Policy that allows scripts, styles and connections from
this origin only, so even text that slipped into the page as markup could not run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from starlette.exceptions import HTTPException
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles

__all__ = ["STATIC_DIR", "PAGE_HEADERS", "mount_webui"]

STATIC_DIR = Path(__file__).resolve().parent / "static"

PAGE_HEADERS: dict[str, str] = {
    "content-security-policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; form-action 'none'; base-uri 'none'; frame-ancestors 'none'"),
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "cache-control": "no-cache",
}


class _WithHeaders:
    """An ASGI app that adds ``headers`` to every HTTP response of ``app``."""

    def __init__(self, app: Any, headers: dict[str, str]):
        self.app = app
        self.raw = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if scope["method"] not in ("GET", "HEAD"):
            # POST /v1/no-such-route is a 404 like any unknown route; 405 only for the page's files
            _, found = self.app.lookup_path(self.app.get_path(scope))
            raise HTTPException(405 if found is not None else 404)

        async def send_with_headers(message):
            if message["type"] == "http.response.start":
                names = {k for k, _ in self.raw}
                kept = [(k, v) for k, v in message.get("headers", []) if k.lower() not in names]
                message = {**message, "headers": kept + self.raw}
            await send(message)

        await self.app(scope, receive, send_with_headers)


def mount_webui(app: Any, path: str = "/") -> None:
    """Serve the page at ``path`` of a Starlette app, after the app's own routes (so the
    API keeps its paths; anything else under ``path`` is a static file or a 404)."""
    static = StaticFiles(directory=STATIC_DIR, html=True)
    app.router.routes.append(Mount(path.rstrip("/") or "", app=_WithHeaders(static, PAGE_HEADERS), name="webui"))
