"""Where chat output goes: terminal colours by the model's entropy or the chosen token's
probability, and terminal-safe text.

Colour: each token is coloured by the model's entropy (or the chosen token's probability)
with click's ANSI styling, only when stdout is a terminal and colour is not turned off.
"""

from __future__ import annotations

import math
import re
import shutil
from typing import Any, Callable, TextIO

import click
from wcwidth import wcswidth

from .reply import QUIET_ACTIONS

__all__ = ["Printer", "WordWrap", "legend", "safe", "entropy_colour", "prob_colour", "ENTROPY_LEVELS", "PROB_LEVELS"]

# (upper bound, colour): a token whose entropy (nats) is below the bound gets the colour
ENTROPY_LEVELS: tuple[tuple[float, str | None], ...] = (
    (0.5, None), (1.5, "yellow"), (3.0, "red"), (math.inf, "magenta"))
# (lower bound on p = exp(logprob), colour)
PROB_LEVELS: tuple[tuple[float, str | None], ...] = (
    (0.7, None), (0.3, "yellow"), (0.1, "red"), (0.0, "magenta"))


FORCED_COLOUR = "blue"  # a token a grammar forced (the only one it allowed)


def entropy_colour(entropy: float) -> str | None:
    for bound, colour in ENTROPY_LEVELS:
        if entropy < bound:
            return colour
    return ENTROPY_LEVELS[-1][1]


def prob_colour(logprob: float) -> str | None:
    p = math.exp(logprob) if logprob > -700 else 0.0
    for bound, colour in PROB_LEVELS:
        if p >= bound:
            return colour
    return PROB_LEVELS[-1][1]


_CONTROL = {c: f"^{chr(c + 64)}" for c in range(32) if chr(c) not in "\n\t"}
_CONTROL[0x7F] = "^?"
_CONTROL.update({c: f"\\x{c:02x}" for c in range(0x80, 0xA0)})


def safe(text: str) -> str:
    """Text with terminal control characters made visible (``ESC`` → ``^[``): model output
    and loaded files must not be able to drive the user's terminal."""
    return text.translate(_CONTROL)


class WordWrap:
    """Streamed text broken into lines between words, never inside one (a terminal wraps at
    the last column, mid-word). A word is held back until the whitespace after it arrives,
    then printed on this line if it fits, else on the next; a word longer than a whole line
    starts a line and is left to the terminal to fold. Widths are display columns
    (``wcwidth``); ``pieces`` may carry ANSI styling, measured by their plain text."""

    _SPLIT = re.compile(r"(\s+)")

    def __init__(self, width: int):
        self.width = max(8, int(width))
        self.col = 0
        self._word: list[str] = []
        self._word_cols = 0

    def feed(self, text: str, style: Callable[[str], str] = lambda t: t) -> str:
        """What to write now for ``text`` (styled by ``style``, piece by piece)."""
        out: list[str] = []
        for part in self._SPLIT.split(text):
            if not part:
                continue
            if part.isspace():
                out.append(self._flush())
                for ch in part:
                    if ch == "\n":
                        out.append("\n")
                        self.col = 0
                    elif self.col + 1 >= self.width:  # a space at the margin: break instead
                        out.append("\n")
                        self.col = 0
                    else:
                        out.append(ch)
                        self.col += 1
            else:
                self._word.append(style(part))
                self._word_cols += max(0, wcswidth(part))
        return "".join(out)

    def _flush(self) -> str:
        if not self._word:
            return ""
        word, cols = "".join(self._word), self._word_cols
        self._word, self._word_cols = [], 0
        pre = ""
        if self.col > 0 and self.col + cols > self.width:
            pre, self.col = "\n", 0
        self.col = (self.col + cols) % self.width if cols > self.width else self.col + cols
        return pre + word

    def end(self) -> str:
        """The word still held back (the end of a reply)."""
        return self._flush()


class Printer:
    """Where chat output goes; colours only when ``color`` (a terminal, not --no-color).

    A reply is ``begin_reply()``, ``step()`` per token, ``end_reply()``: its leading
    whitespace is dropped (a transcript template ends in ``Assistant:``, the reply's first
    token is `` The``), and on a terminal lines break between words."""

    def __init__(self, out: TextIO, err: TextIO, *, color: bool, interactive: bool, verbose: bool = False,
                 width: int | None = None):
        self.out = out
        self.err = err
        self.color = color
        self.interactive = interactive
        self.verbose = verbose
        self._width = width
        self._wrap: WordWrap | None = None
        self._started = False

    def begin_reply(self) -> None:
        self._started = False
        if self.interactive:
            width = self._width or shutil.get_terminal_size((80, 24)).columns
            self._wrap = WordWrap(width)

    def end_reply(self) -> None:
        if self._wrap is not None:
            self.write(self._wrap.end())
            self._wrap = None

    def style(self, text: str, **kw: Any) -> str:
        return click.style(text, **kw) if self.color else text

    def write(self, text: str, *, err: bool = False) -> None:
        stream = self.err if err else self.out
        stream.write(text)
        stream.flush()

    def line(self, text: str = "", **style: Any) -> None:
        self.write((self.style(text, **style) if style else text) + "\n")

    def dim(self, text: str) -> None:
        # in batch mode status lines would pollute the replies: stderr, and only with -v
        if self.interactive:
            self.line(text, dim=True)
        elif self.verbose:
            self.write(text + "\n", err=True)

    def info(self, text: str) -> None:
        """A confirmation (``/set``, ``/save``...): dim on a terminal, stderr when piped."""
        if self.interactive:
            self.line(text, dim=True)
        else:
            self.write(text + "\n", err=True)

    def notice(self, text: str) -> None:
        msg = "note: " + text
        if self.interactive:
            self.line(msg, fg="yellow")
        else:
            self.write(msg + "\n", err=True)

    def error(self, text: str) -> None:
        msg = "error: " + text
        if self.interactive:
            self.line(msg, fg="red", bold=True)
        else:
            self.write(f"entropic-local chat: {msg}\n", err=True)

    def step(self, step: Any, mode: str) -> None:
        self.text(step.text, step, mode)

    def text(self, text: str, step: Any = None, mode: str = "off") -> None:
        """Reply text (a step's, or text released after the last step), coloured by that
        step's entropy or logprob."""
        text = safe(text) if self.interactive else text
        if not self._started:
            text = text.lstrip()
            self._started = bool(text)
        action = step.info.get("action") if step is not None and step.info else None
        marker = ""
        if action is not None and self.interactive and str(action).lower() not in QUIET_ACTIONS:
            marker = self.style(f"‹{action}›", fg="cyan", bold=True)
        if not text and not marker:
            return
        colour = None
        if step is not None and self.color and mode != "off" and text.strip():
            colour = entropy_colour(step.entropy) if mode == "entropy" else prob_colour(step.logprob)
            if step.info and step.info.get("grammar_forced"):
                colour = FORCED_COLOUR  # the grammar left no choice
        style = (lambda t: click.style(t, fg=colour)) if colour else (lambda t: t)
        if self._wrap is not None:
            self.write(self._wrap.feed(marker) + self._wrap.feed(text, style) if marker else
                       self._wrap.feed(text, style))
        else:
            self.write(marker + style(text))


def legend(p: Printer) -> list[str]:
    def sw(text: str, colour: str | None) -> str:
        return p.style(text, fg=colour) if colour else text

    ent = " · ".join([sw("plain < 0.5", None), sw("yellow 0.5–1.5", "yellow"),
                      sw("red 1.5–3", "red"), sw("magenta ≥ 3", "magenta")])
    prob = " · ".join([sw("plain p ≥ 0.7", None), sw("yellow 0.3–0.7", "yellow"),
                       sw("red 0.1–0.3", "red"), sw("magenta < 0.1", "magenta")])
    return [
        f"Colours, /color entropy (the model's entropy in nats): {ent}",
        f"Colours, /color logprob (probability of the chosen token): {prob}",
        "  " + p.style("forced", fg=FORCED_COLOUR)
        + ": a token the grammar or JSON schema forced (it allowed no other)",
        "  " + p.style("‹clarify›", fg="cyan", bold=True)
        + " marks a step where an adaptive sampler (entropix) acted: clarify, explore, resample, fork...",
    ]
