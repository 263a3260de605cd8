"""Batch input: one JSON object per line, turned into jobs before anything runs.

Two shapes are accepted on each line:

* plain: ``{"custom_id": "q1", "prompt": "Once upon a time", ...settings}``;
* the OpenAI batch shape: ``{"custom_id": "q1", "method": "POST", "url":
  "/v1/chat/completions", "body": {"messages": [...], ...settings}}`` (``/v1/completions``
  with ``body.prompt`` works too). Chat messages are rendered with the model's chat template
  (sandboxed, as in ``entropic-local chat``).

Settings (top level for the plain shape, in ``body`` for the OpenAI one): ``max_tokens`` (or
``max_completion_tokens``), ``seed``, ``stop`` (a string or a list), ``sampler`` (a chain
spec, an entropic-local extension) and the request field of every sampling flag the stages
declare, as llama-server names them (``temperature``, ``top_p``, ``top_k``, ``min_p``,
``typical_p``, ``top_n_sigma``, ``repeat_penalty``, ``frequency_penalty``,
``presence_penalty``, ``repeat_last_n``, ``dynatemp_range``, ``dynatemp_exponent``);
``model``, ``n``\\ =1 and OpenAI fields with no meaning here are ignored. Structured output
(``constraint_setting``): ``grammar`` (GBNF text) or ``json_schema`` (a schema object), as
llama-server names them, or OpenAI's ``response_format``: ``{"type": "json_object"}`` (any
JSON object), ``{"type": "json_schema", "json_schema": {"name": ..., "schema": {...}}}``,
``{"type": "text"}`` (none).

A line that cannot be used (bad JSON, not an object, no prompt, a bad setting) becomes an
error row in the output and the run goes on; its ``custom_id`` is the line's own when it has
one, else ``line-N``. A ``custom_id`` used twice is an error before anything runs.

Seeds: a line's ``seed`` wins; otherwise, with ``--seed S``, the line gets
``derive_seed(S, custom_id)`` (the first 8 bytes of SHA-256 of ``"S:custom_id"``), so the
same command gives the same outputs whatever the order, sharding or parallelism.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, Iterator

from ..decode.request import constraint_setting
from ..errors import UsageError
from ..samplers.flags import check_flag_value
from ..samplers.registry import flag_table

CHAT_URLS = ("/v1/chat/completions", "/chat/completions")
COMPLETION_URLS = ("/v1/completions", "/completions")
SETTING_KEYS = ("max_tokens", "max_completion_tokens", "seed", "stop", "sampler")


@dataclass
class Job:
    """One usable input line."""

    custom_id: str
    line: int                        # 1-based line number in the input
    kind: str                        # "prompt" (plain), "chat" or "completion" (OpenAI shape)
    prompt: str | None = None
    messages: list[dict[str, Any]] | None = None
    settings: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"custom_id": self.custom_id, "line": self.line, "kind": self.kind,
                "prompt": self.prompt, "messages": self.messages, "settings": self.settings}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Job":
        return cls(**d)


@dataclass
class BadLine:
    """An input line that cannot be used: it becomes an error row."""

    custom_id: str
    line: int
    code: str
    message: str


def derive_seed(seed: int, custom_id: str) -> int:
    """A per-line seed from the run's ``--seed`` and the line's custom_id (module doc)."""
    h = hashlib.sha256(f"{seed}:{custom_id}".encode("utf-8", "surrogatepass")).digest()
    return int.from_bytes(h[:8], "little") >> 1   # 63 bits: fits every seed field


def sampling_flags(settings: dict[str, Any]) -> dict[str, Any]:
    """The sampling flags of a line's settings, by flag key (``temperature`` -> ``temp``)."""
    return {f.key: settings[f.request_field] for f, _ in flag_table().values()
            if f.request_field in settings}


def _settings(src: dict[str, Any], where: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for f, _ in flag_table().values():
        v = src.get(f.request_field)
        if v is not None:
            out[f.request_field] = check_flag_value(f, v, where)
    out.update(constraint_setting(src, where))
    for k in SETTING_KEYS:
        if k not in src or src[k] is None:
            continue
        v = src[k]
        if k in ("max_tokens", "max_completion_tokens", "seed"):
            if isinstance(v, bool) or not isinstance(v, int):
                raise ValueError(f"{where}{k} must be an integer, got {json.dumps(v)[:40]}")
            if v < (1 if "tokens" in k else 0):
                raise ValueError(f"{where}{k} must be {'at least 1' if 'tokens' in k else '>= 0'}, got {v}")
            if k == "seed" and v >= 2**64:
                raise ValueError(f"{where}seed must be below 2**64")
        elif k == "stop":
            if isinstance(v, str):
                v = [v]
            if not isinstance(v, list) or not all(isinstance(s, str) and s for s in v):
                raise ValueError(f"{where}stop must be a non-empty string or a list of them")
        elif k == "sampler":
            if not isinstance(v, str) or not v.strip():
                raise ValueError(f"{where}sampler must be a chain spec string")
        out["max_tokens" if k == "max_completion_tokens" else k] = v
    return out



def _messages(body: dict[str, Any]) -> list[dict[str, Any]]:
    msgs = body.get("messages")
    if not isinstance(msgs, list) or not msgs:
        raise ValueError("body.messages must be a non-empty list")
    out = []
    for i, m in enumerate(msgs):
        if not isinstance(m, dict) or not isinstance(m.get("role"), str):
            raise ValueError(f"body.messages[{i}] must be an object with a role")
        content = m.get("content")
        if isinstance(content, list):  # OpenAI content parts: keep the text ones
            parts = [p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text"]
            if len(parts) != len(content):
                raise ValueError(f"body.messages[{i}]: only text content is supported")
            content = "".join(parts)
        if not isinstance(content, str):
            raise ValueError(f"body.messages[{i}].content must be text")
        out.append({"role": m["role"], "content": content})
    return out


def parse_line(text: str, line: int) -> Job | BadLine:
    """One input line (without its newline) -> a Job or a BadLine."""
    fallback = f"line-{line}"
    try:
        obj = json.loads(text)
    except (json.JSONDecodeError, RecursionError) as e:
        msg = e.msg if isinstance(e, json.JSONDecodeError) else "nested too deeply"
        return BadLine(fallback, line, "invalid_json", f"line {line}: bad JSON: {msg}")
    if not isinstance(obj, dict):
        return BadLine(fallback, line, "invalid_request", f"line {line}: not a JSON object")
    cid = obj.get("custom_id")
    if cid is None:
        return BadLine(fallback, line, "invalid_request", f"line {line}: no custom_id")
    if not isinstance(cid, (str, int)) or isinstance(cid, bool) or str(cid) == "":
        return BadLine(fallback, line, "invalid_request", f"line {line}: custom_id must be a non-empty string")
    cid = str(cid)
    try:
        if "body" in obj or "url" in obj:
            body = obj.get("body")
            url = obj.get("url", "/v1/chat/completions")
            if not isinstance(body, dict):
                raise ValueError("body must be an object")
            if obj.get("method", "POST") != "POST":
                raise ValueError(f"method {obj.get('method')!r} is not supported (POST)")
            if body.get("n", 1) != 1:
                raise ValueError("n > 1 is not supported: use several lines")
            if url in CHAT_URLS:
                return Job(cid, line, "chat", messages=_messages(body), settings=_settings(body, "body."))
            if url in COMPLETION_URLS:
                p = body.get("prompt")
                if not isinstance(p, str) or not p:
                    raise ValueError("body.prompt must be a non-empty string")
                return Job(cid, line, "completion", prompt=p, settings=_settings(body, "body."))
            raise ValueError(f"url {url!r} is not supported (/v1/chat/completions, /v1/completions)")
        p = obj.get("prompt")
        if not isinstance(p, str) or not p:
            raise ValueError("prompt must be a non-empty string")
        return Job(cid, line, "prompt", prompt=p, settings=_settings(obj, ""))
    except ValueError as e:
        return BadLine(cid, line, "invalid_request", f"line {line}: {e}")


def read_jobs(path: str) -> Iterator[Job | BadLine]:
    """Every line of the input file (blank lines skipped), in order."""
    import sys

    f = sys.stdin.buffer if path == "-" else open(path, "rb")
    try:
        for n, raw in enumerate(f, 1):
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                yield BadLine(f"line-{n}", n, "invalid_json", f"line {n}: not UTF-8 ({e.reason} at byte {e.start})")
                continue
            if not text.strip():
                continue
            yield parse_line(text.rstrip("\r\n"), n)
    finally:
        if f is not sys.stdin.buffer:
            f.close()


def check_unique(items: list[Job | BadLine]) -> None:
    """A custom_id used on two lines is an error before anything runs."""
    seen: dict[str, int] = {}
    for it in items:
        first = seen.setdefault(it.custom_id, it.line)
        if first != it.line:
            raise UsageError(f"duplicate custom_id {it.custom_id!r} on lines {first} and {it.line}",
                             hint="every line needs its own custom_id")
