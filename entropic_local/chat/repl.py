"""The chat's input loops: the interactive prompt (prompt_toolkit) and the piped mode.

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
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable, TextIO

from ..errors import Terminated, UsageError
from .commands import EXIT, Chat

__all__ = ["run_interactive", "run_piped", "history_path", "strip_block", "block_open"]


def history_path() -> Path:
    """``$ENTROPIC_LOCAL_HOME/chat_history``, else ``$XDG_STATE_HOME/entropic-local/chat_history``
    (``~/.local/state/...``)."""
    home = os.environ.get("ENTROPIC_LOCAL_HOME")
    if home:
        return Path(home).expanduser() / "chat_history"
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base).expanduser() / "entropic-local" / "chat_history"


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


def run_piped(chat: Chat, stdin: TextIO, *, single: bool) -> int:
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
