"""Batch output: OpenAI batch output rows, appended and flushed one line at a time.

A success row::

    {"id": "batch_req_<16 hex>", "custom_id": "q1",
     "response": {"status_code": 200, "request_id": "<16 hex>", "body": {
         "id": "chatcmpl-<16 hex>", "object": "chat.completion" | "text_completion",
         "created": <unix time>, "model": "smollm2-135m",
         "choices": [{"index": 0, "message": {"role": "assistant", "content": TEXT}
                      (or "text": TEXT), "finish_reason": "stop" | "length" | "context"}],
         "usage": {"prompt_tokens": P, "completion_tokens": C, "total_tokens": P + C},
         "entropic": {"seed", "sampler", "mean_entropy", "mean_varentropy", "mean_logprob",
                      "perplexity", "actions" (counts, adaptive samplers), "gen_tps", "engine" (repack,
                      n_ubatch, flash_attn... as run),
                      "steps" (with --steps: one record per token, as --json prints)}}},
     "error": null}

An error row has ``"response": null`` and ``"error": {"code": ..., "message": ...}``. Ids
are derived from the custom_id, so a rerun writes the same ids.

Never losing work: each row is written with one ``write`` of the whole line and flushed
at once, so a run killed at any point leaves complete lines plus at most one partial last
line. ``OutputFile.open`` (resume) reads what is there, keeps every complete row, cuts a
partial last line off (and a line that is not valid JSON at the end), and reports the
custom_ids already done, which the rerun skips.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
from collections import Counter
from typing import Any

from ..errors import UsageError


def _hex(custom_id: str, salt: str) -> str:
    return hashlib.sha256(f"{salt}:{custom_id}".encode("utf-8", "surrogatepass")).hexdigest()[:16]


def _num(x: float) -> float | None:
    return None if x is None or not math.isfinite(x) else round(float(x), 6)


def summary(generation, steps: bool) -> dict[str, Any]:
    """The ``entropic`` block: the seed, the chain and per-token statistics."""
    st = generation.steps
    n = len(st)
    out: dict[str, Any] = {"seed": generation.seed, "sampler": generation.sampler}
    if n:
        mean_lp = sum(s.logprob for s in st) / n
        out.update(mean_entropy=_num(sum(s.entropy for s in st) / n),
                   mean_varentropy=_num(sum(s.varentropy for s in st) / n),
                   mean_logprob=_num(mean_lp), perplexity=_num(math.exp(-mean_lp)))
    else:
        out.update(mean_entropy=None, mean_varentropy=None, mean_logprob=None, perplexity=None)
    actions = Counter(s.info.get("action") for s in st if s.info.get("action"))
    if actions:
        out["actions"] = dict(actions)
    alphas = [s.info["alpha"] for s in st if isinstance(s.info.get("alpha"), (int, float))]
    if alphas:
        out["mean_alpha"] = _num(sum(alphas) / len(alphas))
    out["gen_tps"] = round(generation.timings.gen_tps, 2)
    if getattr(generation, "engine", None) is not None:  # the engine settings that made it
        out["engine"] = generation.engine
    if steps:
        out["steps"] = [s.to_dict() for s in st]
    return out


def success_row(custom_id: str, kind: str, generation, *, model: str, steps: bool) -> dict[str, Any]:
    chat = kind == "chat"
    choice: dict[str, Any] = {"index": 0}
    if chat:
        choice["message"] = {"role": "assistant", "content": generation.text}
    else:
        choice["text"] = generation.text
    choice["finish_reason"] = generation.finish_reason
    p = generation.timings.prompt_tokens
    c = len(generation.token_ids)
    body = {
        "id": ("chatcmpl-" if chat else "cmpl-") + _hex(custom_id, "body"),
        "object": "chat.completion" if chat else "text_completion",
        "created": int(time.time()),
        "model": model,
        "choices": [choice],
        "usage": {"prompt_tokens": p, "completion_tokens": c, "total_tokens": p + c},
        "entropic": summary(generation, steps),
    }
    return {"id": "batch_req_" + _hex(custom_id, "req"), "custom_id": custom_id,
            "response": {"status_code": 200, "request_id": _hex(custom_id, "request"), "body": body},
            "error": None}


def error_row(custom_id: str, code: str, message: str) -> dict[str, Any]:
    return {"id": "batch_req_" + _hex(custom_id, "req"), "custom_id": custom_id, "response": None,
            "error": {"code": code, "message": message}}


class OutputFile:
    """The output JSONL file, opened for appending after a resume scan."""

    def __init__(self, path: str):
        self.path = path
        self.done: set[str] = set()
        self.repaired = 0          # bytes cut off a partial last line
        self.rows_before = 0
        self.errors_before = 0
        self._f = None

    def open(self) -> "OutputFile":
        path = self.path
        parent = os.path.dirname(os.path.abspath(path))
        if not os.path.isdir(parent):
            raise UsageError(f"cannot write {path}: no such directory {parent}")
        if os.path.isdir(path):
            raise UsageError(f"cannot write {path}: it is a directory")
        if os.path.isfile(path):  # a regular file to resume (never read a device such as /dev/full)
            self._scan()
        try:
            self._f = open(path, "ab")
        except OSError as e:
            raise UsageError(f"cannot write {path}: {e.strerror or e}") from None
        return self

    def _scan(self) -> None:
        try:
            with open(self.path, "rb") as f:
                data = f.read()
        except OSError as e:
            raise UsageError(f"cannot read {self.path} to resume: {e.strerror or e}") from None
        good = 0                       # bytes of complete, valid rows
        pos = 0
        while pos < len(data):
            nl = data.find(b"\n", pos)
            if nl < 0:
                break                  # partial last line: cut it
            line = data[pos:nl]
            if line.strip():
                try:
                    row = json.loads(line)
                    cid = row["custom_id"]
                except (ValueError, KeyError, TypeError):
                    if data.find(b"\n", nl + 1) < 0 and not data[nl + 1:].strip():
                        break          # a corrupt LAST line: cut it too
                    lineno = data.count(b"\n", 0, pos) + 1
                    raise UsageError(f"{self.path} line {lineno} is not an output row: not resuming into it",
                                     hint="give another -o file") from None
                self.done.add(str(cid))
                self.rows_before += 1
                if row.get("error"):
                    self.errors_before += 1
            pos = nl + 1
            good = pos
        if good < len(data):
            self.repaired = len(data) - good
            try:
                with open(self.path, "r+b") as f:
                    f.truncate(good)
            except OSError as e:
                raise UsageError(f"cannot repair {self.path}: {e.strerror or e}") from None

    def write(self, row: dict[str, Any]) -> None:
        """Append one row and flush it: it survives the process being killed right after."""
        line = (json.dumps(row, ensure_ascii=False) + "\n").encode("utf-8", "surrogatepass")
        try:
            self._f.write(line)
            self._f.flush()
        except OSError as e:
            # e.g. a full disk: what was flushed before stays; the partial line is cut on resume
            raise UsageError(f"cannot write {self.path}: {e.strerror or e}",
                             hint="free some space, then rerun the same command to resume") from None
        self.done.add(row["custom_id"])

    def close(self) -> None:
        if self._f is not None:
            try:
                self._f.close()
            except OSError:
                pass
            self._f = None
