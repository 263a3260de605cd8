"""A chat saved to a file and read back (``/save``, ``/load``: OpenAI-shaped messages with
the session's settings), and the per-token trace of the last reply (``/trace``). Every file
is written all or nothing."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

from ..atomic_file import write_text_atomic
from ..errors import EntropicError, UsageError
from ..samplers.chain import SamplerChain

__all__ = ["SAVE_FORMAT", "SAVE_VERSION", "session_dict", "save_session", "load_session", "write_trace"]

SAVE_FORMAT = "entropic-local-chat"
SAVE_VERSION = 1
COLOR_MODES = ("entropy", "logprob", "off")


def session_dict(session: Any) -> dict[str, Any]:
    """A session as its saved JSON object (OpenAI messages, the settings)."""
    return {
        "format": SAVE_FORMAT,
        "version": SAVE_VERSION,
        "model": session.model.name,
        "settings": session.params(),
        "context_start": session.context_start,
        "messages": session.messages(),
    }

def save_session(session: Any, path: str | os.PathLike) -> Path:
    p = Path(path).expanduser()
    data = json.dumps(session_dict(session), ensure_ascii=False, indent=2) + "\n"
    try:
        if p.parent and not p.parent.exists():
            p.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(p, data)  # all or nothing: an older file stays whole
    except OSError as e:
        raise UsageError(f"cannot save to {p}: {e.strerror or e}",
                         hint="free some space or choose another path") from None
    return p

def load_session(session: Any, path: str | os.PathLike) -> list[str]:
    """Replace the conversation and settings with a saved session; returns notices.
    Validates everything before changing anything."""
    p = Path(path).expanduser()
    try:
        raw = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UsageError(f"cannot load {p}: no such file") from None
    except IsADirectoryError:
        raise UsageError(f"cannot load {p}: it is a directory") from None
    except UnicodeDecodeError:
        raise UsageError(f"cannot load {p}: not a UTF-8 text file") from None
    except OSError as e:
        raise UsageError(f"cannot load {p}: {e.strerror or e}") from None
    try:
        data = json.loads(raw)
    except ValueError as e:
        raise UsageError(f"cannot load {p}: not valid JSON ({e})") from None
    if isinstance(data, list):
        data = {"messages": data}
    if not isinstance(data, dict) or not isinstance(data.get("messages"), list):
        raise UsageError(f"cannot load {p}: expected a saved chat (an object with a 'messages' "
                         "list, or a list of messages)")
    messages = data["messages"]
    system = None
    turns: list[dict[str, Any]] = []
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or m.get("role") not in ("system", "user", "assistant") \
                or not isinstance(m.get("content"), str):
            raise UsageError(f"cannot load {p}: message {i} is not a {{role: system|user|assistant, "
                             "content: text}} object")
        if m["role"] == "system":
            if i != 0:
                raise UsageError(f"cannot load {p}: a system message may only come first (message {i})")
            system = m["content"]
            continue
        msg = {"role": m["role"], "content": m["content"]}
        if m.get("interrupted"):
            msg["interrupted"] = True
        turns.append(msg)
    settings = data.get("settings") or {}
    if not isinstance(settings, dict):
        raise UsageError(f"cannot load {p}: 'settings' must be an object")
    chain = session.chain
    if settings.get("sampler"):
        try:
            chain = SamplerChain.parse(str(settings["sampler"]))
        except EntropicError as e:
            raise UsageError(f"cannot load {p}: bad sampler in settings: {e}") from None
    seed = settings.get("seed", session.seed)
    if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool) or seed < 0):
        raise UsageError(f"cannot load {p}: bad seed {seed!r} in settings")
    max_tokens = settings.get("max_tokens", session.max_tokens)
    if max_tokens is not None and (not isinstance(max_tokens, int) or isinstance(max_tokens, bool)
                                   or max_tokens < 1):
        raise UsageError(f"cannot load {p}: bad max_tokens {max_tokens!r} in settings")
    start = data.get("context_start", 0)
    if not isinstance(start, int) or isinstance(start, bool) or not 0 <= start <= len(turns):
        start = 0
    while start < len(turns) and turns[start]["role"] != "user":
        start += 1
    notices: list[str] = []
    saved_model = data.get("model")
    if saved_model and saved_model != session.model.name:
        notices.append(f"this chat was saved with model {saved_model}; continuing with {session.model.name}")
    saved_tmpl = settings.get("chat_template")
    if saved_tmpl and saved_tmpl != session.template.name:
        notices.append(f"it was saved with chat template {saved_tmpl}; this session uses "
                       f"{session.template.name} (/set template to change)")
    # all checked: apply
    session.system = system
    session.turns = turns
    session.context_start = start
    session.chain = chain
    session.seed = seed
    session.max_tokens = max_tokens
    color = settings.get("color")
    if color in COLOR_MODES:
        session.color = color
    session.last_steps = []
    session.last_stats = None
    return notices

def write_trace(session: Any, path: str | os.PathLike) -> tuple[Path, int]:
    """Per-token metrics of the last reply as JSON lines."""
    if not session.last_steps:
        raise UsageError("no reply to trace yet")
    p = Path(path).expanduser()
    lines = []
    for s in session.last_steps:
        d = s.to_dict()
        for k, v in list(d.items()):
            if isinstance(v, float) and not math.isfinite(v):
                d[k] = None
        lines.append(json.dumps(d, ensure_ascii=False) + "\n")
    try:
        write_text_atomic(p, "".join(lines))  # all or nothing: never a cut line
    except OSError as e:
        raise UsageError(f"cannot write {p}: {e.strerror or e}",
                         hint="free some space or choose another path") from None
    return p, len(session.last_steps)
