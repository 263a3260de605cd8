"""The OpenAI-compatible server (``entropic-local serve``; needs the ``server`` extra):
``create_app(model)`` is a Starlette app a local program can run or mount."""

from __future__ import annotations

__all__ = ["create_app"]


def __getattr__(name: str):
    if name == "create_app":
        from .app import create_app

        return create_app
    raise AttributeError(name)
