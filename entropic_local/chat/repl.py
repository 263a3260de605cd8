"""The chat loop: prompt_toolkit line editing, slash commands, streamed and coloured replies.

Interactive (stdin and stdout are terminals): a prompt_toolkit ``PromptSession`` with history
in ``$ENTROPIC_LOCAL_HOME/chat_history`` or ``$XDG_STATE_HOME/entropic-local/chat_history``
(``~/.local/state/entropic-local/chat_history``). Enter sends; a message starting with
``\"\"\"`` goes on over several lines until one ends with ``\"\"\"``; pasted text (bracketed
paste) is one message; Alt-Enter (Esc Enter) inserts a newline. Ctrl-C during a reply stops
it (the partial reply stays in the conversation, marked); Ctrl-C on a non-empty line clears
it; Ctrl-C on an empty line, Ctrl-D or ``/bye`` exit.

Non-interactive (stdin not a terminal): one message per line (``\"\"\"`` blocks allowed),
slash commands allowed, replies printed as plain text one after the other; or with
``single`` the whole input is one message. Notices and errors go to stderr there.

Colour: each token is coloured by the model's entropy (or the chosen token's probability)
with click's ANSI styling, only when stdout is a terminal and colour is not turned off.
"""

from __future__ import annotations

import math
import os
import re
import shutil
import textwrap
from pathlib import Path
from typing import Any, Callable, Iterable, TextIO

import click
from wcwidth import wcswidth

from ..errors import EntropicError, Terminated, UsageError
from ..samplers.registry import flag_table
from .session import COLOR_MODES, QUIET_ACTIONS, ChatSession, random_seed, settable_names
from .templates import BUILTIN

EXIT = "exit"

# (upper bound, colour): a token whose entropy (nats) is below the bound gets the colour
ENTROPY_LEVELS: tuple[tuple[float, str | None], ...] = (
    (0.5, None), (1.5, "yellow"), (3.0, "red"), (math.inf, "magenta"))
# (lower bound on p = exp(logprob), colour)
PROB_LEVELS: tuple[tuple[float, str | None], ...] = (
    (0.7, None), (0.3, "yellow"), (0.1, "red"), (0.0, "magenta"))


def history_path() -> Path:
    """``$ENTROPIC_LOCAL_HOME/chat_history``, else ``$XDG_STATE_HOME/entropic-local/chat_history``
    (``~/.local/state/...``)."""
    home = os.environ.get("ENTROPIC_LOCAL_HOME")
    if home:
        return Path(home).expanduser() / "chat_history"
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base).expanduser() / "entropic-local" / "chat_history"


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


def strip_block(text: str) -> str:
    """A ``\"\"\"...\"\"\"`` block without its quotes; other text as it is."""
    s = text.strip()
    if s.startswith('"""'):
        s = s[3:]
        if s.endswith('"""'):
            s = s[:-3]
        return s.strip("\n")
    return text


def block_open(text: str) -> bool:
    """Whether a ``\"\"\"`` block has been started and not yet closed."""
    s = text.lstrip()
    if not s.startswith('"""'):
        return False
    rest = s[3:].rstrip()
    return not rest.endswith('"""')


class WordWrap:
    """Streamed text broken into lines between words, never inside one (a terminal wraps at
    the last column, mid-word). A word is held back until the whitespace after it arrives,
    then printed on this line if it fits, else on the next; a word longer than a whole line
    starts a line and is left to the terminal to fold. Widths are display columns (``wcwidth``); ``pieces`` may carry
    ANSI styling, measured by their plain text."""

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
        "  " + p.style("‹clarify›", fg="cyan", bold=True)
        + " marks a step where an adaptive sampler (entropix) acted: clarify, explore, resample, fork...",
    ]


HELP = """Commands:
  /help                     this help
  /set PARAM VALUE          change a setting for the next replies:
{flags},
                              STAGE.PARAM (e.g. top_p.min_keep 2),
                              sampler SPEC, system TEXT|none, seed N|random, max_tokens N|none,
                              template NAME|FILE ({builtins})
  /show params|prompt|model|stats|history
  /clear                    forget the conversation (keeps the system prompt and settings)
  /regen                    write the last reply again (a fresh seed)
  /undo                     remove the last exchange
  /save FILE, /load FILE    the conversation as JSON (OpenAI messages) with the settings
  /trace FILE               per-token metrics of the last reply, one JSON line per token
  /color entropy|logprob|off
  /bye                      exit (also Ctrl-D, or Ctrl-C on an empty line)
Input: a message starting with \"\"\" goes on until a line ends with \"\"\"; pasted text is one
message (put text that starts with / in a \"\"\" block); Alt-Enter inserts a newline; Ctrl-C stops a
reply (it is kept, marked [interrupted]); Up/Down recall earlier input, also from past sessions."""


class Chat:
    """Slash commands and replies over one ``ChatSession``, for both modes."""

    def __init__(self, session: ChatSession, printer: Printer, *, model_info: Callable[[], list[str]] | None = None):
        self.session = session
        self.p = printer
        self.model_info = model_info or (lambda: [])
        self.errors = 0
        self.last_error_code = 0

    # ------------------------------------------------------------------ replies
    def respond(self, message: str) -> bool:
        """Send a user message and stream the reply; False when it was interrupted."""
        s = self.session
        s.add_user(message)
        return self._reply()

    def _reply(self, seed: int | None = None) -> bool:
        s, p = self.session, self.p
        try:
            reply = s.start_reply(seed=seed)
        except EntropicError as e:
            if s.turns and s.turns[-1]["role"] == "user":
                s.turns.pop()
            self._fail(e)
            return True
        if reply.notice:
            p.notice(reply.notice)
        interrupted = False
        terminated = None  # SIGTERM: wrap the reply up like Ctrl-C, then leave the chat
        p.begin_reply()
        try:
            try:
                for step in reply:
                    p.step(step, s.color)
            except KeyboardInterrupt as e:
                interrupted = True
                terminated = e if isinstance(e, Terminated) else None
                reply.interrupt()
            except EntropicError as e:
                reply.interrupt()
                stats = reply.finish()
                p.end_reply()
                p.write("\n")
                self._fail(e)
                return True
            tail = reply.tail
            if tail:
                p.text(tail)
            stats = reply.finish()
        except KeyboardInterrupt as e:  # a second Ctrl-C while wrapping up
            interrupted = True
            terminated = terminated or (e if isinstance(e, Terminated) else None)
            stats = reply.finish()
        p.end_reply()
        if interrupted:
            p.write(" " + p.style("[interrupted]", fg="red", bold=True) if p.interactive else "")
        p.write("\n")
        p.dim(stats.line())
        if stats.finish == "context":
            p.notice("the context is full: the reply was cut; older turns will be dropped next time")
        elif stats.finish == "length" and (p.interactive or p.verbose):  # piped: output only
            p.notice(f"the reply reached max_tokens ({s.max_tokens}) and was cut: "
                     "/set max_tokens N (or none) to change it")
        if terminated is not None:
            raise terminated
        return not interrupted

    def _fail(self, e: BaseException) -> None:
        self.errors += 1
        self.last_error_code = getattr(e, "exit_code", 1) or 1
        self.p.error(str(e))

    # ------------------------------------------------------------------ commands
    def command(self, line: str) -> str | None:
        """Run one slash command; returns ``EXIT`` to leave. Errors are reported, never raised."""
        parts = line.strip().split(None, 1)
        name = parts[0][1:].lower()
        arg = parts[1].strip() if len(parts) > 1 else ""
        handler = getattr(self, f"cmd_{name}", None) if name.isidentifier() else None
        if name in ("bye", "exit", "quit"):
            return EXIT
        if handler is None:
            import difflib

            known = [n[4:] for n in dir(self) if n.startswith("cmd_")] + ["bye"]
            close = difflib.get_close_matches(name, known, n=1)
            self._fail(UsageError(f"unknown command /{name}" + (f" (did you mean /{close[0]}?)" if close else ""),
                                  hint="/help lists the commands"))
            return None
        try:
            handler(arg)
        except EntropicError as e:
            self._fail(e)
        return None

    def cmd_help(self, arg: str) -> None:
        flags = textwrap.fill(", ".join(flag_table()), width=98, initial_indent=" " * 30,
                              subsequent_indent=" " * 30)
        self.p.line(HELP.format(builtins=", ".join(BUILTIN), flags=flags))
        for ln in legend(self.p):
            self.p.line(ln)

    cmd_h = cmd_help

    def cmd_set(self, arg: str) -> None:
        if not arg:
            self.cmd_show("params")
            return
        parts = arg.split(None, 1)
        name = parts[0]
        value = parts[1] if len(parts) > 1 else ""
        if not value and name.lower() not in ("system",):
            raise UsageError(f"/set {name} needs a value", hint="e.g. /set temp 0.7; settable: "
                             + ", ".join(settable_names()))
        self.p.info(self.session.set_param(name, value))

    def cmd_show(self, arg: str) -> None:
        s, p = self.session, self.p
        what = arg.strip().lower() or "params"
        if what in ("params", "parameters", "settings"):
            for k, v in s.params().items():
                p.line(f"  {k:<14}{'-' if v is None else v}")
        elif what == "prompt":
            self._show_prompt()
        elif what in ("model", "info"):
            for ln in self.model_info():
                p.line("  " + ln)
            p.line(f"  {'chat template':<14}{s.template.name} ({s.template.source})")
        elif what == "stats":
            st = s.last_stats
            if st is None:
                p.line("  no reply yet")
            else:
                p.line(f"  last reply    {st.line()}")
                p.line(f"  last seed     {st.seed}   finish {st.finish}   mean logprob {st.mean_logprob:.3f}")
            t = s.totals
            p.line(f"  session       {t['replies']} replies, {t['tokens']} tokens generated, "
                   f"{t['prompt_eval_tokens']} prompt tokens decoded, {t['interrupted']} interrupted")
            try:
                used = len(s.prompt_tokens())
                p.line(f"  context       {used}/{s.model.n_ctx} tokens; {len(s.turns) - s.context_start} of "
                       f"{len(s.turns)} messages in context")
            except EntropicError:
                pass
        elif what == "history":
            if not s.turns and not s.system:
                p.line("  (empty)")
            if s.system:
                p.line(f"  system: {safe(_short(s.system))}")
            for i, m in enumerate(s.turns):
                mark = []
                if m.get("interrupted"):
                    mark.append(p.style("[interrupted]", fg="red"))
                if i < s.context_start:
                    mark.append(p.style("(out of context)", dim=True))
                p.line(f"  {m['role']}: {safe(_short(m['content']))} {' '.join(mark)}".rstrip())
        else:
            raise UsageError(f"/show {what}: expected one of params, prompt, model, stats, history")

    def _show_prompt(self) -> None:
        s, p = self.session, self.p
        placeholder = not s.turns or s.turns[-1]["role"] != "user"
        if placeholder:
            s.add_user("‹your next message›")
        try:
            text = s.render_prompt()
            n = len(s.tokenize_prompt(text))
        finally:
            if placeholder:
                s.turns.pop()
        p.line(safe(text) if p.interactive else text)
        p.line(f"── {n} tokens · n_ctx {s.model.n_ctx} · template {s.template.name}"
               + (" · ‹your next message› stands for the message you type next" if placeholder else ""),
               dim=True)

    def cmd_clear(self, arg: str) -> None:
        self.session.clear()
        self.p.info("conversation cleared")

    def cmd_undo(self, arg: str) -> None:
        n = self.session.undo()
        self.p.info(f"removed the last exchange ({n} message{'s' if n != 1 else ''})" if n
                    else "nothing to undo")

    def cmd_regen(self, arg: str) -> None:
        if not self.session.pop_reply_for_regen():
            raise UsageError("nothing to regenerate yet")
        self._reply(seed=random_seed())

    def cmd_save(self, arg: str) -> None:
        if not arg:
            raise UsageError("/save needs a file name")
        path = self.session.save(arg)
        self.p.info(f"saved {len(self.session.messages())} messages and the settings to {path}")

    def cmd_load(self, arg: str) -> None:
        if not arg:
            raise UsageError("/load needs a file name")
        notices = self.session.load(arg)
        s = self.session
        for n in notices:
            self.p.notice(n)
        self.p.info(f"loaded {len(s.turns)} messages from {arg} (sampler {s.chain})")
        last = [m for m in s.turns if m["role"] in ("user", "assistant")][-2:]
        for m in last:
            self.p.info(f"  {m['role']}: {safe(_short(m['content'], 200))}")

    def cmd_trace(self, arg: str) -> None:
        if not arg:
            raise UsageError("/trace needs a file name")
        path, n = self.session.write_trace(arg)
        self.p.info(f"wrote {n} token records to {path}")

    def cmd_color(self, arg: str) -> None:
        mode = arg.strip().lower()
        if mode not in COLOR_MODES:
            raise UsageError(f"/color {mode or '?'}: expected one of {', '.join(COLOR_MODES)}")
        self.session.color = mode
        msg = f"colour by {mode}" if mode != "off" else "colour off"
        if mode != "off" and not self.p.color:
            msg += " (no effect here: not a terminal, or --no-color)"
        self.p.info(msg)

    cmd_colour = cmd_color


def _short(text: str, n: int = 100) -> str:
    one = " ".join(text.split())
    return one if len(one) <= n else one[: n - 1] + "…"


# --------------------------------------------------------------------------- interactive

def _key_bindings():
    from prompt_toolkit.key_binding import KeyBindings

    kb = KeyBindings()

    @kb.add("enter")
    def _enter(event) -> None:
        buf = event.current_buffer
        if block_open(buf.text):
            buf.insert_text("\n")
        else:
            buf.validate_and_handle()

    @kb.add("escape", "enter")
    def _newline(event) -> None:
        event.current_buffer.insert_text("\n")

    @kb.add("c-c")
    def _ctrl_c(event) -> None:
        buf = event.current_buffer
        if buf.text:
            buf.reset()
        else:
            event.app.exit(exception=EOFError())

    return kb


def run_interactive(chat: Chat) -> int:
    from prompt_toolkit import PromptSession
    from prompt_toolkit.history import FileHistory, InMemoryHistory

    p = chat.p
    hist_file = history_path()
    try:
        hist_file.parent.mkdir(parents=True, exist_ok=True)
        os.close(os.open(hist_file, os.O_CREAT | os.O_APPEND | os.O_WRONLY, 0o600))  # private
        history = FileHistory(str(hist_file))
    except OSError as e:
        p.notice(f"cannot keep the input history in {hist_file} ({e.strerror or e}); it lasts this session only")
        history = InMemoryHistory()
    ps = PromptSession(history=history, key_bindings=_key_bindings(), multiline=True,
                       prompt_continuation=lambda width, line_no, soft: "... ".rjust(width),
                       enable_suspend=True)
    while True:
        try:
            text = ps.prompt(">>> ")
        except (EOFError, KeyboardInterrupt) as e:
            if isinstance(e, Terminated):
                raise
            break
        msg = strip_block(text)
        if not msg.strip():
            continue
        try:
            if msg.lstrip().startswith("/") and not text.lstrip().startswith('"""'):
                if chat.command(msg.strip()) == EXIT:
                    break
            else:
                chat.respond(msg)
        except KeyboardInterrupt as e:
            if isinstance(e, Terminated):
                raise
            p.line(" [interrupted]", fg="red")
    p.line("bye", dim=True)
    return 0


# --------------------------------------------------------------------------- piped

def _messages_from_lines(lines: Iterable[str]) -> Iterable[tuple[str, bool]]:
    """(text, is_block) per message: one per line, ``\"\"\"`` blocks joined."""
    block: list[str] | None = None
    for raw in lines:
        line = raw.rstrip("\r\n")
        if block is not None:
            block.append(line)
            if line.rstrip().endswith('"""'):
                yield strip_block("\n".join(block)), True
                block = None
            continue
        if line.lstrip().startswith('"""') and block_open(line):
            block = [line]
            continue
        yield (strip_block(line) if line.lstrip().startswith('"""') else line), False
    if block is not None:
        yield strip_block("\n".join(block)), True


def run_batch(chat: Chat, stdin: TextIO, *, single: bool) -> int:
    """Non-interactive mode; returns the exit status (130 on Ctrl-C, else the last error's
    code, else 0)."""
    if single:
        text = stdin.read()
        if not text.strip():
            raise UsageError("empty input: nothing to send", hint="pipe a message into chat --single")
        if not chat.respond(text.strip("\n")):
            return 130
        return chat.last_error_code
    for msg, is_block in _messages_from_lines(stdin):
        if not msg.strip():
            continue
        if not is_block and msg.lstrip().startswith("/"):
            if chat.command(msg.strip()) == EXIT:
                break
            continue
        if not chat.respond(msg):
            return 130
    return chat.last_error_code
