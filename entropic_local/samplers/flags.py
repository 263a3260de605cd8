"""llama.cpp's sampling flags as data: what a stage declares so that ``--top-k 40``, chat's
``/set top_k 40``, a batch line's ``"top_k": 40``, a request field and
``chain.with_params(top_k=40)`` all mean the same thing.

A ``Flag`` names one parameter of one stage: ``key`` (the ``with_params`` keyword and the
``/set`` name, llama.cpp's ``common_params_sampling`` name), ``cli`` (llama.cpp's
command-line flag), ``field`` (the request-body field of llama-server and the OpenAI API,
when it is not ``key``), and the value that switches the stage off. Stages list their flags
in ``Stage.flags``; ``registry.flag_table()`` collects every registered stage's, in
llama.cpp's sampler order. How a chain changes when flags are given is ``SamplerChain.with_params``.
"""

from __future__ import annotations

from dataclasses import dataclass
import json
from typing import Any

from ..errors import UsageError
from .params import parse_number

__all__ = ["Flag", "check_flag_value"]


@dataclass(frozen=True)
class Flag:
    """A llama.cpp sampling flag that sets ``param`` of the stage declaring it.

    ``off``: the value that switches the stage off (removed from a chain, not inserted);
    ``off_below``: every value below ``off`` does too (llama.cpp's ``top_k <= 0``). A stage
    with several flags is off when one of its ``alone`` flags is off, or when all its other
    flags are (the penalties: ``repeat_last_n = 0``, or no penalty at all).
    """

    key: str
    param: str
    kind: type
    cli: str
    help: str
    field: str | None = None
    off: float | None = None
    off_below: bool = False
    alone: bool = True
    aliases: tuple[str, ...] = ()
    multiple: bool = False

    @property
    def request_field(self) -> str:
        """The name of this flag in a request body (llama-server, OpenAI, batch lines)."""
        return self.field or self.key

    @property
    def names(self) -> tuple[str, ...]:
        """Every name chat's ``/set`` accepts for it (``-`` read as ``_``)."""
        out = [self.key, self.request_field, self.cli.lstrip("-").replace("-", "_"), *self.aliases]
        return tuple(dict.fromkeys(out))

    def is_off(self, value: Any) -> bool:
        if self.off is None:
            return False
        return value == self.off or (self.off_below and value < self.off)

    def parse(self, raw: str) -> Any:
        """A value typed by a user (``/set top_k 40``). Raises ``UsageError``. A text list
        is a JSON array (``["\\n", ":"]``), ``none`` (the empty list) or one text (a JSON
        string when quoted, so ``"\\n"`` is a line break)."""
        if self.kind is str:
            return _parse_texts(raw) if self.multiple else _parse_text(raw)
        v = parse_number(raw, integer=self.kind is int)
        if v is None:
            kind = "an integer" if self.kind is int else "a number"
            raise UsageError(f"{self.key} must be {kind}, got {raw!r}")
        return v


def _parse_text(raw: str) -> str:
    raw = raw.strip()
    if len(raw) >= 2 and raw[0] == raw[-1] == '"':
        try:
            v = json.loads(raw)
        except ValueError:
            raise UsageError(f"bad JSON string {raw[:40]!r}") from None
        if isinstance(v, str):
            return v
    return raw


def _parse_texts(raw: str) -> tuple[str, ...]:
    s = raw.strip()
    if s.lower() == "none":
        return ()
    if s.startswith("["):
        try:
            v = json.loads(s)
        except ValueError:
            raise UsageError(f"bad JSON array {s[:40]!r}") from None
        if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
            raise UsageError("expected a JSON array of strings")
        return tuple(v)
    return (_parse_text(raw),)


def check_flag_value(flag: Flag, value: Any, where: str = "") -> Any:
    """A flag value from JSON (a batch line, a request): an integer for an int flag (bools
    refused), a number for a float flag, a string (a list of strings for a ``multiple``
    one) for a text flag. Raises ``ValueError`` with the field named."""
    name = flag.request_field
    if flag.kind is str:
        if flag.multiple:
            if isinstance(value, str):
                value = [value]
            if not isinstance(value, list) or not all(isinstance(x, str) for x in value):
                raise ValueError(f"{where}{name} must be a list of strings, got {_short_json(value)}")
            return tuple(value)
        if not isinstance(value, str):
            raise ValueError(f"{where}{name} must be a string, got {_short_json(value)}")
        return value
    if flag.kind is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"{where}{name} must be an integer, got {_short_json(value)}")
        return value
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{where}{name} must be a number, got {_short_json(value)}")
    return float(value)


def _short_json(v: Any) -> str:
    return json.dumps(v)[:40]
