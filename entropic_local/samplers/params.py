"""Stage parameters: declared type, default and range; values parsed from and printed into
spec strings.

A value in a spec is an int (decimal), a float (``0.95``, ``.5``, ``1e-3``, ``inf``, ``-inf``)
or, for a text parameter, percent-encoded text (``%``, ``,``, white space, control and
non-ASCII characters encoded as UTF-8: ``" ..."`` is written ``%20...``). Printing is the
inverse: ints in decimal, floats by Python's ``repr`` (shortest round trip: ``0.8``,
``1.0``, ``1e-05``, ``inf``), text percent-encoded, so a printed spec parses back to equal
values.
"""

from __future__ import annotations

import math
import numbers
import re
import urllib.parse
from typing import Any

from ..errors import InvalidSamplerSpec

__all__ = ["Param", "TextParam", "TextListParam", "REQUIRED", "INF", "format_value", "parse_number",
           "quote_text", "unquote_text"]

INF = math.inf
REQUIRED = object()   # the default of a parameter that must be given

_INT = re.compile(r"[+-]?\d+\Z")
_FLOAT = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?\Z")
_INF = re.compile(r"[+-]?inf(?:inity)?\Z", re.IGNORECASE)
_SAFE = "".join(chr(c) for c in range(0x21, 0x7F) if chr(c) not in "%,")


def parse_number(raw: str, integer: bool) -> int | float | None:
    """One spec value: an int when ``integer``, else a float (``inf``/``-inf`` allowed).
    None when ``raw`` is not such a number."""
    raw = raw.strip()
    if integer:
        return int(raw) if _INT.match(raw) else None
    if _FLOAT.match(raw) or _INF.match(raw):
        return float(raw)
    return None


def format_value(v: Any) -> str:
    """A number as written in a spec: ints in decimal, floats by ``repr``."""
    if isinstance(v, float):
        return repr(v)
    return str(v)


def quote_text(s: str) -> str:
    """A text value as written in a spec (percent-encoded where needed)."""
    return urllib.parse.quote(s, safe=_SAFE)


def unquote_text(s: str) -> str:
    return urllib.parse.unquote(s, errors="strict")


def _bound(x: float) -> str:
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    if float(x).is_integer():
        return str(int(x))
    return repr(float(x))


class Param:
    """One numeric stage parameter: its name, type (``int`` or ``float``), default and range.

    The range is ``lo``..``hi``; ``lo_open``/``hi_open`` say whether a bound is excluded
    (infinite bounds are always excluded, so a float parameter with range (-inf, inf) must be
    finite; ``hi_open=False`` with ``hi = inf`` admits ``inf`` itself). ``default`` is
    ``REQUIRED`` for a parameter that must be given, None for one that may stay unset.
    """

    REQUIRED = REQUIRED

    __slots__ = ("name", "kind", "default", "lo", "hi", "lo_open", "hi_open")

    def __init__(self, name: str, kind: type, default: Any = REQUIRED, lo: float = -INF,
                 hi: float = INF, lo_open: bool = False, hi_open: bool | None = None):
        self.name = name
        self.kind = kind
        self.default = default
        self.lo, self.hi = lo, hi
        self.lo_open = lo_open or math.isinf(lo)
        self.hi_open = math.isinf(hi) if hi_open is None else hi_open

    @property
    def required(self) -> bool:
        return self.default is REQUIRED

    @property
    def range_text(self) -> str:
        return (("(" if self.lo_open else "[") + _bound(self.lo) + ", " + _bound(self.hi)
                + (")" if self.hi_open else "]"))

    def in_range(self, v: float) -> bool:
        if v != v:  # NaN
            return False
        lo_ok = v > self.lo if self.lo_open else v >= self.lo
        hi_ok = v < self.hi if self.hi_open else v <= self.hi
        return lo_ok and hi_ok

    def check(self, stage: str, value: Any) -> Any:
        """Validate a Python value; return it as ``int`` or ``float``."""
        if self.kind is int:
            if isinstance(value, bool) or not isinstance(value, numbers.Integral):
                raise InvalidSamplerSpec(f"{stage}: {self.name} must be an integer, got {value!r}")
            value = int(value)
        else:
            if isinstance(value, bool) or not isinstance(value, numbers.Real):
                raise InvalidSamplerSpec(f"{stage}: {self.name} must be a number, got {value!r}")
            value = float(value)
        if not self.in_range(value):
            raise InvalidSamplerSpec(
                f"{stage}: {self.name}={format_value(value)} is out of range {self.range_text}")
        return value

    def parse(self, stage: str, raw: str) -> Any:
        """A spec-string value of this parameter, validated. Raises ``InvalidSamplerSpec``."""
        value = parse_number(raw, integer=self.kind is int)
        if value is None:
            kind = "an integer" if self.kind is int else "a number"
            raise InvalidSamplerSpec(f"{stage}: {self.name} must be {kind}, got '{raw}'")
        return self.check(stage, value)

    def format(self, value: Any) -> str:
        return format_value(value)

    def __repr__(self) -> str:
        d = ("required" if self.required else "unset" if self.default is None
             else f"default {format_value(self.default)}")
        return f"Param({self.name}: {self.kind.__name__} in {self.range_text}, {d})"


class TextParam(Param):
    """A text parameter (``default`` None: not given); percent-encoded in spec strings."""

    __slots__ = ("allow_empty",)

    def __init__(self, name: str, allow_empty: bool = True):
        super().__init__(name, str, None)
        self.allow_empty = allow_empty

    @property
    def range_text(self) -> str:
        return "text"

    def check(self, stage: str, value: Any) -> Any:
        if not isinstance(value, str):
            raise InvalidSamplerSpec(f"{stage}: {self.name} must be a string, got {value!r}")
        if not value and not self.allow_empty:
            raise InvalidSamplerSpec(f"{stage}: {self.name} must not be empty")
        return value

    def parse(self, stage: str, raw: str) -> Any:
        try:
            text = unquote_text(raw)
        except UnicodeDecodeError:
            raise InvalidSamplerSpec(f"{stage}: {self.name}: bad percent-encoding in '{raw}'") from None
        return self.check(stage, text)

    def format(self, value: Any) -> str:
        return quote_text(value)


class TextListParam(Param):
    """A list of non-empty texts (a tuple), e.g. DRY's sequence breakers. In a spec string
    the items are percent-encoded (``|`` too) and joined by ``|``: ``breakers=%0A|:|%22|*``;
    an empty value is the empty list."""

    __slots__ = ()

    def __init__(self, name: str, default: tuple[str, ...] = ()):
        super().__init__(name, tuple, tuple(default))

    @property
    def range_text(self) -> str:
        return "texts"

    def check(self, stage: str, value: Any) -> Any:
        if isinstance(value, str):
            value = (value,)
        if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
            raise InvalidSamplerSpec(f"{stage}: {self.name} must be a list of strings, got {value!r}")
        if any(not v for v in value):
            raise InvalidSamplerSpec(f"{stage}: {self.name} must not hold an empty string")
        return tuple(value)

    def parse(self, stage: str, raw: str) -> Any:
        if not raw:
            return ()
        try:
            items = tuple(unquote_text(x) for x in raw.split("|"))
        except UnicodeDecodeError:
            raise InvalidSamplerSpec(f"{stage}: {self.name}: bad percent-encoding in '{raw}'") from None
        return self.check(stage, items)

    def format(self, value: Any) -> str:
        return "|".join(urllib.parse.quote(v, safe=_SAFE.replace("|", "")) for v in value)
