"""Turning token pieces into text as they arrive, and cutting at stop strings.

Two small state machines used by the decode loops:

* ``Utf8Stream`` — token pieces are *bytes*; a multi-byte UTF-8 character can be split across
  tokens (byte-fallback vocabularies do this for emoji and CJK). Each piece goes through an
  incremental UTF-8 decoder, so text comes out only once a character is complete, and the
  whole output is never re-decoded per token.
* ``StopMatcher`` — holds back the shortest tail of the text that could still become a stop
  string, so no part of a stop string is ever emitted; on a match it releases the text before
  the stop and reports the match.
"""

from __future__ import annotations

import codecs


class Utf8Stream:
    __slots__ = ("_dec",)

    def __init__(self) -> None:
        self._dec = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def push(self, piece: bytes) -> str:
        return self._dec.decode(piece)

    def flush(self) -> str:
        """End of output: an incomplete trailing character (generation stopped in the middle
        of its bytes) is dropped rather than shown as U+FFFD, as it is not text yet."""
        self._dec.reset()
        return ""


class StopMatcher:
    __slots__ = ("stops", "_held", "_max")

    def __init__(self, stops: list[str] | tuple[str, ...] | None):
        self.stops = tuple(s for s in (stops or ()) if s)
        self._held = ""
        self._max = max((len(s) for s in self.stops), default=0)

    def push(self, text: str) -> tuple[str, bool]:
        """Add text; return (text safe to release now, whether a stop string matched)."""
        if not self.stops:
            return text, False
        buf = self._held + text
        cut = -1
        for s in self.stops:
            i = buf.find(s)
            if i != -1 and (cut == -1 or i < cut):
                cut = i
        if cut != -1:
            self._held = ""
            return buf[:cut], True
        # Hold back the longest suffix of buf that is a proper prefix of some stop string.
        keep = 0
        for k in range(min(len(buf), self._max - 1), 0, -1):
            tail = buf[-k:]
            if any(s.startswith(tail) for s in self.stops):
                keep = k
                break
        self._held = buf[len(buf) - keep:] if keep else ""
        return buf[: len(buf) - keep], False

    def flush(self) -> str:
        held, self._held = self._held, ""
        return held
