"""The analyses here take a loaded ``Model`` or a bare ``Engine``: these two helpers give the
engine to drive and hold the model (its lock) while they drive it."""

from __future__ import annotations

import contextlib
from typing import Any, ContextManager

__all__ = ["model_engine", "holding"]


def model_engine(model: Any) -> Any:
    """The engine of a ``Model``; an ``Engine`` is its own."""
    return getattr(model, "engine", model)


def holding(model: Any) -> ContextManager[None]:
    """``model.hold()`` for a ``Model`` (other threads wait; see ``Model.hold``); nothing for
    an ``Engine``."""
    hold = getattr(model, "hold", None)
    return hold() if hold is not None else contextlib.nullcontext()
