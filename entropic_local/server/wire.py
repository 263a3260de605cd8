"""Response and chunk shapes: OpenAI's, plus extra keys only (a strict OpenAI client parses
every response unchanged).

The extras:

* every token's logprob entry carries ``entropy`` and ``varentropy`` (nats, the model's full
  distribution at temperature 1, the one ``logprob`` is taken from). Chat:
  keys of each ``logprobs.content[]`` entry. Completions (legacy shape): arrays
  ``logprobs.entropy`` and ``logprobs.varentropy`` parallel to ``token_logprobs`` (``null``
  for the first prompt token under ``echo``, which has no distribution);
* each choice carries ``entropic``: ``mean_entropy``, ``mean_varentropy``, ``perplexity``
  (exp of the mean negative logprob of the generated tokens), ``actions`` (Entropix action
  counts, when the chain reports them), ``sampler`` (the chain's spec) and ``seed``;
* ``usage`` always (``prompt_tokens_details.cached_tokens``: prompt tokens reused from the
  KV cache), and llama-server's ``timings``.

``finish_reason``: ``stop`` (end of generation, a stop string, or the server shutting down),
``length`` (``max_tokens`` or the context).
"""

from __future__ import annotations

import math
import time
import uuid
from collections import Counter
from typing import Any

__all__ = ["new_id", "finish_reason", "usage", "timings", "entropic_summary", "chat_logprob",
           "chat_response", "chat_chunk", "completion_logprobs", "completion_response",
           "completion_chunk", "error_body"]

FINGERPRINT = "entropic-local"


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:24]}"


def finish_reason(reason: str) -> str:
    return "length" if reason in ("length", "context") else "stop"


def _num(x: float) -> float | None:
    return None if x is None or (isinstance(x, float) and not math.isfinite(x)) else float(x)


def usage(n_prompt: int, n_completion: int, cached: int = 0) -> dict[str, Any]:
    return {"prompt_tokens": n_prompt, "completion_tokens": n_completion,
            "total_tokens": n_prompt + n_completion,
            "prompt_tokens_details": {"cached_tokens": cached}}


def timings(t) -> dict[str, Any]:
    """llama-server's ``timings`` from a ``Timings``."""
    pn, pms, gn, gms = t.prompt_eval_tokens, t.prompt_ms, t.gen_tokens, t.gen_ms
    return {
        "cache_n": t.prompt_tokens - t.prompt_eval_tokens,
        "prompt_n": pn, "prompt_ms": round(pms, 3),
        "prompt_per_token_ms": round(pms / pn, 3) if pn else 0.0,
        "prompt_per_second": round(pn / pms * 1000, 2) if pms > 0 else 0.0,
        "predicted_n": gn, "predicted_ms": round(gms, 3),
        "predicted_per_token_ms": round(gms / gn, 3) if gn else 0.0,
        "predicted_per_second": round(gn / gms * 1000, 2) if gms > 0 else 0.0,
    }


def entropic_summary(steps, sampler: str, seed: int, constraint: dict | None = None) -> dict[str, Any]:
    """A choice's ``entropic`` block; ``constraint`` (a grammar's summary: the log-mass it
    removed...) when the request had one."""
    n = len(steps)
    actions = Counter(s.info["action"] for s in steps if "action" in s.info)
    extra = {"constraint": constraint} if constraint is not None else {}
    return {**extra,
        "mean_entropy": sum(s.entropy for s in steps) / n if n else None,
        "mean_varentropy": sum(s.varentropy for s in steps) / n if n else None,
        "perplexity": math.exp(-sum(s.logprob for s in steps) / n) if n else None,
        "actions": dict(actions),
        "sampler": sampler,
        "seed": seed,
    }


def _token(piece: bytes) -> tuple[str, list[int]]:
    return piece.decode("utf-8", errors="replace"), list(piece)


# ----------------------------------------------------------------------------- chat


def chat_logprob(piece: bytes, logprob: float, entropy: float, varentropy: float,
                 top: list[tuple[bytes, float]], info: dict[str, Any] | None = None) -> dict[str, Any]:
    """One ``logprobs.content[]`` entry, with ``entropy`` and ``varentropy`` and the step's
    sampler fields (``info``: an adaptive sampler's action, temperature, α; a grammar's allowed
    log-mass...) as extra keys, scalar values only, never over the OpenAI keys."""
    text, b = _token(piece)
    alts = []
    for p, lp in top:
        t, bb = _token(p)
        alts.append({"token": t, "logprob": _num(lp), "bytes": bb})
    entry = {"token": text, "logprob": _num(logprob), "bytes": b, "top_logprobs": alts,
             "entropy": _num(entropy), "varentropy": _num(varentropy)}
    for k, v in (info or {}).items():
        if k not in entry and isinstance(v, (bool, int, float, str)):
            entry[k] = _num(v) if isinstance(v, float) else v
    return entry


def chat_response(rid: str, created: int, model: str, text: str, reason: str,
                  logprobs: list[dict] | None, summary: dict, use: dict, tim: dict) -> dict[str, Any]:
    return {
        "id": rid, "object": "chat.completion", "created": created, "model": model,
        "system_fingerprint": FINGERPRINT,
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": text, "refusal": None},
            "logprobs": None if logprobs is None else {"content": logprobs, "refusal": None},
            "finish_reason": finish_reason(reason),
            "entropic": summary,
        }],
        "usage": use,
        "timings": tim,
    }


def _chunk(obj: str, rid: str, created: int, model: str, choice: dict[str, Any], summary: dict | None,
           tim: dict | None, with_usage: bool) -> dict[str, Any]:
    """A streamed chunk's envelope around its one ``choice``: the summary on the choice,
    ``usage: null`` while a final usage chunk is still to come, llama-server's ``timings``."""
    if summary is not None:
        choice["entropic"] = summary
    out: dict[str, Any] = {"id": rid, "object": obj, "created": created, "model": model,
                           "system_fingerprint": FINGERPRINT, "choices": [choice]}
    if with_usage:
        out["usage"] = None
    if tim is not None:
        out["timings"] = tim
    return out


def chat_chunk(rid: str, created: int, model: str, delta: dict, *, logprobs: list[dict] | None = None,
               reason: str | None = None, summary: dict | None = None, tim: dict | None = None,
               with_usage: bool = False) -> dict[str, Any]:
    choice: dict[str, Any] = {"index": 0, "delta": delta,
                              "logprobs": None if logprobs is None else {"content": logprobs, "refusal": None},
                              "finish_reason": None if reason is None else finish_reason(reason)}
    return _chunk("chat.completion.chunk", rid, created, model, choice, summary, tim, with_usage)


def usage_chunk(rid: str, created: int, model: str, obj: str, use: dict) -> dict[str, Any]:
    return {"id": rid, "object": obj, "created": created, "model": model, "system_fingerprint": FINGERPRINT,
            "choices": [], "usage": use}


# ----------------------------------------------------------------------------- completions


def completion_logprobs(entries: list[tuple[bytes, float | None, float | None, float | None, list]],
                        offset0: int = 0) -> dict[str, Any]:
    """The legacy ``logprobs`` object from ``(piece, logprob, entropy, varentropy, top)``
    per token, ``top`` as ``(piece, logprob)`` pairs; ``text_offset`` counts characters
    from ``offset0``."""
    tokens, lps, tops, offs, hs, vs = [], [], [], [], [], []
    pos = offset0
    for piece, lp, h, v, top in entries:
        text, _ = _token(piece)
        tokens.append(text)
        lps.append(_num(lp))
        tops.append(None if lp is None else {_token(p)[0]: _num(l) for p, l in top})
        offs.append(pos)
        pos += len(text)
        hs.append(_num(h))
        vs.append(_num(v))
    return {"tokens": tokens, "token_logprobs": lps, "top_logprobs": tops, "text_offset": offs,
            "entropy": hs, "varentropy": vs}


def completion_response(rid: str, created: int, model: str, text: str, reason: str,
                        logprobs: dict | None, summary: dict, use: dict, tim: dict) -> dict[str, Any]:
    return {
        "id": rid, "object": "text_completion", "created": created, "model": model,
        "system_fingerprint": FINGERPRINT,
        "choices": [{"text": text, "index": 0, "logprobs": logprobs, "finish_reason": finish_reason(reason),
                     "entropic": summary}],
        "usage": use,
        "timings": tim,
    }


def completion_chunk(rid: str, created: int, model: str, text: str, *, logprobs: dict | None = None,
                     reason: str | None = None, summary: dict | None = None, tim: dict | None = None,
                     with_usage: bool = False) -> dict[str, Any]:
    choice: dict[str, Any] = {"text": text, "index": 0, "logprobs": logprobs,
                              "finish_reason": None if reason is None else finish_reason(reason)}
    return _chunk("text_completion", rid, created, model, choice, summary, tim, with_usage)


def error_body(message: str, type: str = "invalid_request_error", param: str | None = None,
               code: str | int | None = None) -> dict[str, Any]:
    """OpenAI's error shape."""
    return {"error": {"message": message, "type": type, "param": param, "code": code}}


def now() -> int:
    return int(time.time())
