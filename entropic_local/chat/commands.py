"""The chat's slash commands and replies over one ``ChatSession`` (``Chat``), for the
interactive and the piped mode alike."""

from __future__ import annotations

import difflib
import shutil
import textwrap
from typing import Callable

from ..errors import EntropicError, Terminated, UsageError
from ..samplers.registry import flag_table
from .printer import Printer, legend, safe
from .saved import COLOR_MODES
from .session import ChatSession, random_seed, settable_names
from .templates import BUILTIN

__all__ = ["Chat", "HELP", "EXIT"]

EXIT = "exit"


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
            columns = shutil.get_terminal_size((80, 24)).columns
            for i, m in enumerate(s.turns):
                marks = []  # (text, style)
                if m.get("interrupted"):
                    marks.append(("[interrupted]", {"fg": "red"}))
                if i < s.context_start:
                    marks.append(("(out of context)", {"dim": True}))
                # one screen line each: the content is cut so that the marks fit too
                room = columns - len(f"  {m['role']}: ") - sum(len(t) + 1 for t, _ in marks) - 1
                text = safe(_short(m["content"], max(20, min(100, room))))
                tail = " ".join(p.style(t, **st) for t, st in marks)
                p.line(f"  {m['role']}: {text} {tail}".rstrip())
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
