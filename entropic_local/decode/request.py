"""What a batched decode loop takes: a ``BatchRequest`` (a prompt with its own settings) and
the ``Prepared`` request made from it, and the KV cells each may fill; and
``constraint_setting``, which reads a request's structured-output fields (llama-server's
``grammar`` / ``json_schema``, OpenAI's ``response_format``) into ``BatchRequest``'s."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..samplers.chain import SamplerChain


@dataclass
class BatchRequest:
    """One prompt of a batch, with its own settings (None: the batch's default)."""

    prompt: str | list[int]
    max_tokens: int | None = None
    sampler: str | SamplerChain | None = None
    seed: int | None = None
    stop: list[str] | str | None = None
    grammar: str | None = None           # GBNF text
    json_schema: Any = None              # a JSON schema (dict or JSON text)


@dataclass
class Prepared:
    """A request ready to run: tokenised, its chain bound, reset and fed the prompt."""

    index: int
    prompt: str
    tokens: list[int]
    chain: SamplerChain
    seed: int
    max_tokens: int
    stop: list[str] | None
    constraint: Any = None     # the request's grammar (decode/constrained.py), or None


def reservation(r: Prepared, n_ctx_seq: int) -> int:
    """The KV cells a request may fill: its prompt and max_tokens, at most ``n_ctx_seq``."""
    return min(len(r.tokens) + r.max_tokens, n_ctx_seq)


def cache_size(requests: list[Prepared], parallel: int, n_ctx_seq: int) -> int:
    """Cells for ``parallel`` sequences of the largest reservation, rounded up to 256."""
    need = max((reservation(r, n_ctx_seq) for r in requests), default=16)
    cells = need * max(1, min(parallel, len(requests)))
    return max(256, -(-cells // 256) * 256)

def constraint_setting(src: dict[str, Any], where: str = "") -> dict[str, Any]:
    """``{"grammar": GBNF}`` or ``{"json_schema": schema or "json_object"}`` from a request's
    ``grammar``, ``json_schema`` or ``response_format`` (at most one); ``{}`` for none."""
    found: dict[str, Any] = {}
    g = src.get("grammar")
    if g is not None:
        if not isinstance(g, str) or not g.strip():
            raise ValueError(f"{where}grammar must be a non-empty GBNF string")
        found["grammar"] = g
    js = src.get("json_schema")
    if js is not None:
        if not isinstance(js, dict):
            raise ValueError(f"{where}json_schema must be an object")
        found["json_schema"] = js
    rf = src.get("response_format")
    if rf is not None:
        if not isinstance(rf, dict) or not isinstance(rf.get("type"), str):
            raise ValueError(f"{where}response_format must be an object with a type")
        kind = rf["type"]
        if kind == "json_object":
            schema = rf.get("schema")  # llama-server also takes a schema here
            found["json_schema"] = schema if isinstance(schema, dict) else "json_object"
        elif kind == "json_schema":
            spec = rf.get("json_schema")
            schema = spec.get("schema") if isinstance(spec, dict) else None
            if not isinstance(schema, dict):
                raise ValueError(f"{where}response_format.json_schema.schema must be an object")
            found["json_schema"] = schema
        elif kind != "text":
            raise ValueError(f"{where}response_format.type {kind!r} is not supported "
                             "(text, json_object, json_schema)")
    given = [k for k in ("grammar", "json_schema", "response_format") if src.get(k) is not None]
    if len(given) > 1:
        raise ValueError(f"{where}{' and '.join(given)} both constrain the output: give one")
    return found
