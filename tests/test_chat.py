"""`entropic-local chat`, driven like a person in a real pseudo-terminal (pexpect + pyte, a
VT100 emulator, so the assertions are on what the screen shows), plus the piped mode and the
session logic (context trimming, /save and /load, /set) on the real default model.
"""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from entropic_local.chat.repl import (
    Chat, Printer, block_open, entropy_colour, history_path, prob_colour, strip_block,
)
from entropic_local.chat.session import ChatSession, ReplyStats, special_token_text
from entropic_local.chat.templates import ChatTemplateError, select_template
from entropic_local.errors import ContextOverflow, InvalidSamplerSpec, UsageError
from entropic_local.generation import Step
from entropic_local.registry import check_gguf_header
from entropic_local.samplers import SamplerChain

ROOT = Path(__file__).resolve().parent.parent
WAIT = float(os.environ.get("ENTROPIC_LOCAL_TEST_WAIT", "180"))  # seconds, per screen event
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    for k in ("NO_COLOR", "ENTROPIC_LOCAL_HOME"):
        env.pop(k, None)
    # run this checkout's package even from another directory (an editable install does too)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env.update(PROMPT_TOOLKIT_NO_CPR="1", TERM="xterm-256color",
               XDG_STATE_HOME=str(tmp_path / "state"), **extra)
    return env


# --------------------------------------------------------------------------- a terminal

class Term:
    """A chat process in a pseudo-terminal, its output fed to a pyte screen."""

    def __init__(self, args: list[str], env: dict[str, str], cwd: Path, rows: int = 200, cols: int = 120):
        pexpect = pytest.importorskip("pexpect")
        pyte = pytest.importorskip("pyte")
        self._pexpect = pexpect
        self.screen = pyte.Screen(cols, rows)
        self.stream = pyte.ByteStream(self.screen)
        self.raw = bytearray()
        # one thread: tiny models decode fast on one, and llama.cpp's threads spin-wait badly
        # on a busy machine (measured here: 4 s with -t 1 vs 70 s with -t 2 under load)
        self.child = pexpect.spawn(sys.executable, ["-m", "entropic_local", "chat", "-t", "1", *args], env=env,
                                   cwd=str(cwd), dimensions=(rows, cols))
        self.eof = False

    def pump(self, seconds: float = 0.2) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end and not self.eof:
            try:
                data = self.child.read_nonblocking(65536, timeout=0.05)
            except self._pexpect.TIMEOUT:
                continue
            except self._pexpect.EOF:
                self.eof = True
                break
            self.raw += data
            self.stream.feed(data)

    @property
    def lines(self) -> list[str]:
        return [ln.rstrip() for ln in self.screen.display]

    @property
    def text(self) -> str:
        return "\n".join(ln for ln in self.lines if ln)

    def last_line(self) -> str:
        filled = [ln for ln in self.lines if ln]
        return filled[-1] if filled else ""

    def wait(self, pred, what: str, timeout: float = WAIT) -> str:
        end = time.monotonic() + timeout
        while True:
            self.pump(0.2)
            if pred(self.text):
                return self.text
            if time.monotonic() > end or self.eof:
                raise AssertionError(f"waited for {what}; the screen shows:\n{self.text}")

    def wait_for(self, s: str, timeout: float = WAIT) -> str:
        return self.wait(lambda t: s in t, repr(s), timeout)

    def at_prompt(self) -> bool:
        return self.last_line() == ">>>"

    def wait_prompt(self, timeout: float = WAIT) -> str:
        return self.wait(lambda t: self.at_prompt(), "the >>> prompt", timeout)

    def replies(self) -> int:
        return self.text.count("mean entropy")

    def send(self, s: str) -> None:
        self.child.send(s)

    def say(self, message: str) -> str:
        """Type a message and Enter; wait for the reply's stats line and the next prompt."""
        n = self.replies()
        self.send(message + "\r")
        return self.wait(lambda t: t.count("mean entropy") > n and self.at_prompt(), f"a reply to {message!r}")

    def command(self, line: str, expect: str) -> str:
        self.send(line + "\r")
        return self.wait(lambda t: expect in t.rsplit(">>> " + line, 1)[-1] and self.at_prompt(),
                         f"{expect!r} after {line}")

    def finish(self, timeout: float = 60) -> int:
        end = time.monotonic() + timeout
        while not self.eof and time.monotonic() < end:
            self.pump(0.2)
        self.child.close()
        return self.child.exitstatus

    def close(self) -> None:
        if self.child.isalive():
            self.child.terminate(force=True)

    def rows_of(self, needle: str) -> list[int]:
        return [i for i, ln in enumerate(self.lines) if needle in ln]

    def colours(self, row: int) -> set[str]:
        line = self.screen.buffer[row]
        return {line[x].fg for x in range(self.screen.columns) if line[x].data.strip()}


@pytest.fixture
def term_factory(tmp_path):
    terms: list[Term] = []

    def make(*args: str, **env: str) -> Term:
        t = Term(list(args), _env(tmp_path, **env), cwd=tmp_path)
        terms.append(t)
        return t

    yield make
    for t in terms:
        t.close()


# --------------------------------------------------------------------------- in a terminal

def test_chat_in_a_terminal(term_factory, tmp_path):
    """Two turns, a multi-line message, Ctrl-C in a long reply, bad input, /set temp,
    /trace, /save; then a new session: history recalled, /load, a pasted message, Ctrl-D;
    then Ctrl-C on an empty prompt exits."""
    t = term_factory("--seed", "7", "-n", "12", "--n-ctx", "1024")
    screen = t.wait_prompt()
    status = screen.splitlines()[0]
    assert status.startswith("entropic-local chat · smollm2-135m · context 1024 · ")
    assert "threads" in status and status.endswith("sampler top_k=40,top_p=0.95,min_p=0.05,temp=0.8")
    assert "chat template gguf" in screen

    # turn 1
    screen = t.say("Hi! What is your name?")
    after = screen.split(">>> Hi! What is your name?")[1].strip().splitlines()
    assert after[0].strip(), "a reply is shown"
    stats = [ln for ln in after if "mean entropy" in ln][0]
    assert re.match(r"\d+ tokens · prompt \d+ tok at \d+ tok/s · generation [\d.]+ tok/s · "
                    r"mean entropy [\d.]+ nats", stats), stats
    # the reply's characters are coloured by entropy (pyte calls ANSI yellow "brown")
    reply_row = t.rows_of(">>> Hi! What is your name?")[0] + 1
    stats_row = t.rows_of(stats)[0]
    colours = set().union(*(t.colours(r) for r in range(reply_row, stats_row)))
    assert colours <= {"default", "brown", "red", "magenta"} and colours - {"default"}, colours

    # turn 2: a """ block is one message over two lines
    t.send('"""What is 2+2?\r')
    t.wait(lambda s: t.last_line() == "...", "the continuation prompt")
    screen = t.say('Answer briefly."""')
    assert t.replies() == 2
    assert '>>> """What is 2+2?' in screen and '... Answer briefly."""' in screen

    # a long reply, interrupted with Ctrl-C: kept, marked, and the chat goes on
    t.command("/set max_tokens 1000", "max_tokens = 1000")
    t.send("Write a very long story about a dragon.\r")
    t.wait(lambda s: len(s.split("a dragon.")[-1].strip()) > 15, "the story to start")
    t.child.sendintr()
    screen = t.wait(lambda s: "[interrupted]" in s and t.at_prompt(), "[interrupted]")
    assert re.search(r"\d+ tokens · .* · interrupted", screen)

    t.command("/set max_tokens 12", "max_tokens = 12")
    t.command("/set temp 0.2", "temp = 0.2 → sampler top_k=40,top_p=0.95,min_p=0.05,temp=0.2")
    t.command("/trace trace.jsonl", "token records to trace.jsonl")
    recs = [json.loads(ln) for ln in (tmp_path / "trace.jsonl").read_text().splitlines()]
    assert recs and all({"token_id", "text", "entropy", "logprob", "varentropy"} <= r.keys() for r in recs)

    # bad input: one clear message each, the session goes on
    t.command("/frobnicate", "error: unknown command /frobnicate")
    t.command("/set bogus 1", "error: unknown parameter 'bogus'")
    t.command("/set temp hot", "error: temp must be a number, got 'hot'")
    t.command("/set top_p 1.5", "error: top_p: p=1.5 is out of range (0, 1]")
    t.command("/load missing.json", "error: cannot load missing.json: no such file")
    (tmp_path / "garbage.json").write_text("{not json")
    t.command("/load garbage.json", "error: cannot load garbage.json: not valid JSON")
    t.say("And what is 3+3?")
    assert t.replies() == 4

    t.command("/show history", "[interrupted]")
    t.command("/save chat.json", "saved 8 messages and the settings to chat.json")
    t.send("/bye\r")
    assert t.finish() == 0
    assert "bye" in t.text

    saved = json.loads((tmp_path / "chat.json").read_text())
    assert saved["format"] == "entropic-local-chat" and saved["model"] == "smollm2-135m"
    assert saved["settings"]["sampler"] == "top_k=40,top_p=0.95,min_p=0.05,temp=0.2"
    assert saved["settings"]["seed"] == 7 and saved["settings"]["max_tokens"] == 12
    roles = [m["role"] for m in saved["messages"]]
    assert roles == ["user", "assistant"] * 4
    assert saved["messages"][2]["content"] == "What is 2+2?\nAnswer briefly."
    assert saved["messages"][5].get("interrupted") is True and saved["messages"][5]["content"]
    assert not any(m.get("interrupted") for i, m in enumerate(saved["messages"]) if i != 5)

    # a new session: the input history survived, /load restores conversation and settings
    t2 = term_factory("--n-ctx", "1024")
    t2.wait_prompt()
    t2.send("\x1b[A")  # Up: the last line typed in the previous session
    t2.wait(lambda s: t2.last_line() == ">>> /bye", "history recall")
    t2.child.sendintr()  # Ctrl-C on a non-empty line clears it
    t2.wait_prompt()
    t2.command("/load chat.json", "loaded 8 messages from chat.json")
    screen = t2.command("/show params", "temp=0.2")
    assert re.search(r"max_tokens\s+12", screen) and re.search(r"seed\s+7", screen)
    n = t2.replies()
    t2.send("\x1b[200~Thanks!\nAnd what about 5+5?\x1b[201~")  # a bracketed paste: one message
    t2.wait_for("... And what about 5+5?")
    t2.send("\r")
    t2.wait(lambda s: s.count("mean entropy") > n and t2.at_prompt(), "the reply to the paste")
    screen = t2.command("/show history", "user: Thanks! And what about 5+5?")
    assert "user: Write a very long story about a dragon." in screen and "[interrupted]" in screen
    stats = t2.command("/show stats", "context")
    # the loaded conversation was sent as context: many prompt tokens for one short message
    m = re.search(r"last reply\s+\d+ tokens · prompt (\d+) tok", stats)
    assert m and int(m.group(1)) > 100, stats
    t2.send("\x04")  # Ctrl-D
    assert t2.finish() == 0

    # Ctrl-C on an empty prompt exits cleanly; /show prompt shows the system prompt in place
    t3 = term_factory("--system", "You are terse.", "--no-color", "--n-ctx", "512")
    t3.wait_prompt()
    screen = t3.command("/show prompt", "tokens · n_ctx 512 · template gguf")
    assert "<|im_start|>system\nYou are terse.<|im_end|>\n<|im_start|>user\n‹your next message›" in screen
    t3.child.sendintr()
    assert t3.finish() == 0


# --------------------------------------------------------------------------- piped

def _run(args: list[str], stdin: str, tmp_path: Path, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "entropic_local", "chat", "-t", "1", *args], input=stdin,
                          capture_output=True, text=True, timeout=timeout, cwd=tmp_path,
                          env=_env(tmp_path))


def test_piped_lines_get_replies(tmp_path, chat_model, smollm2_path):
    """One message per line, slash commands allowed, plain replies on stdout (no escape
    codes), errors on stderr with the session going on; the first reply is exactly the
    greedy continuation of the model's own chat-template prompt."""
    r = _run(["--sampler", "greedy", "-n", "8", "--n-ctx", "1024"],
             "Hi!\n/set bogus 1\n\nWhat is 2+2?\n", tmp_path)
    assert r.returncode == 2, r.stderr  # the last error's code; both messages were answered
    assert "entropic-local chat: error: unknown parameter 'bogus'" in r.stderr
    assert "\x1b[" not in r.stdout
    out = r.stdout.splitlines()
    assert len(out) >= 2 and all(ln.strip() for ln in out[:2])

    tmpl, _ = select_template(None, gguf_template=check_gguf_header(smollm2_path).chat_template,
                              registry_template="gguf", model_label="smollm2-135m")
    prompt = tmpl.render([{"role": "user", "content": "Hi!"}])
    ids = chat_model.tokenize(prompt, add_special=False, parse_special=True)
    expected = chat_model.generate(ids, max_tokens=8, sampler="greedy").text.strip()
    assert r.stdout.startswith(expected + "\n")


def test_piped_single_message(tmp_path):
    r = _run(["--single", "--sampler", "greedy", "-n", "6", "--n-ctx", "512", "-v"],
             "Summarise this:\nline one\nline two\n", tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.strip()
    assert r.stderr.count("mean entropy") == 1  # one reply (stats go to stderr with -v)


def test_piped_base_model_fallback_notice(tmp_path):
    r = _run(["gemma3-270m", "--sampler", "greedy", "-n", "6", "--n-ctx", "512"], "Hello\n", tmp_path)
    assert r.returncode == 0, r.stderr
    assert "note: gemma3-270m has no chat template" in r.stderr and "'plain'" in r.stderr
    assert r.stdout.strip()


def test_attention_option(tmp_path):
    r = _run(["--attention", "last", "--sampler", "greedy", "-n", "6"], "Hi\n", tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip()
    bad = _run(["--attention", "999"], "Hi\n", tmp_path)
    assert bad.returncode == 2
    lines = bad.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("entropic-local: error:") and "999" in lines[0]


# --------------------------------------------------------------------------- the session

@pytest.fixture(scope="module")
def chat_model():
    """The default model on one thread (see Term: steadier on a loaded machine)."""
    import entropic_local as el

    m = el.load("smollm2-135m", n_ctx=1024, n_threads=1, seed=0)
    yield m
    m.close()


def _chat_session(model, **kw) -> ChatSession:
    path = model.engine.path
    tmpl, _ = select_template(
        None, gguf_template=check_gguf_header(path).chat_template, registry_template="gguf",
        model_label="smollm2-135m",
        bos_token=special_token_text(model.engine, "tokenizer.ggml.bos_token_id"),
        eos_token=special_token_text(model.engine, "tokenizer.ggml.eos_token_id"))
    return ChatSession(model, tmpl, SamplerChain.parse("greedy"), **kw)


def test_context_trimming_keeps_system_prompt(chat_model):
    s = _chat_session(chat_model, system="SYSTEM-PROMPT-KEPT", max_tokens=200)
    filler = " ".join(["word"] * 90)
    for i in range(12):
        s.add_user(f"question {i}: {filler}")
        s.turns.append({"role": "assistant", "content": f"answer {i}: {filler}"})
    s.add_user("the last question")
    n_ctx = chat_model.n_ctx
    assert len(s.prompt_tokens()) > n_ctx - s.reserve
    tokens, notice = s.fit()
    assert notice and "dropped the" in notice and "oldest turns" in notice and "system prompt is kept" in notice
    assert len(tokens) <= (n_ctx - s.reserve)
    assert s.context_start > 0 and s.turns[s.context_start]["role"] == "user"
    prompt = s.render_prompt()
    assert prompt.startswith("<|im_start|>system\nSYSTEM-PROMPT-KEPT<|im_end|>")
    assert "the last question" in prompt and "question 0:" not in prompt
    assert len(s.messages()) == 1 + 25  # dropped turns stay in the session (and in /save)
    # a reply now fits and streams
    reply = s.start_reply()
    steps = []
    for st in reply:
        steps.append(st)
        if len(steps) == 2:
            reply.interrupt()
    stats = reply.finish()
    assert stats.finish == "interrupted" and s.turns[-1]["interrupted"] is True
    # a second fit needs no trimming: the window is stable (the cache prefix stays valid)
    s.add_user("one more")
    _, notice2 = s.fit()
    assert notice2 is None


def test_message_too_long_is_reported_and_dropped(chat_model):
    s = _chat_session(chat_model, max_tokens=16)
    out, err = io.StringIO(), io.StringIO()
    chat = Chat(s, Printer(out, err, color=False, interactive=False))
    assert chat.respond("word " * (chat_model.n_ctx + 100))
    assert "does not fit" in err.getvalue() or "context holds" in err.getvalue()
    assert s.turns == []  # the message that could not be sent is not kept
    with pytest.raises(ContextOverflow):
        s.add_user("word " * (chat_model.n_ctx + 100))
        s.fit()


def test_reply_cut_by_full_context(chat_model):
    """A message that leaves less room than the reserve is still answered, with a notice;
    the reply stops when the context is full and says so."""
    s = _chat_session(chat_model)
    eog = sorted(chat_model.engine.eog_tokens)
    s.chain = SamplerChain.parse("logit_bias:" + ",".join(f"{t}=-inf" for t in eog) + ",greedy")
    n_ctx = chat_model.n_ctx
    words = 900
    while True:
        s.turns = [{"role": "user", "content": "Repeat after me: " + "blue " * words}]
        n = len(s.prompt_tokens())
        if n_ctx - 24 <= n <= n_ctx - 12:
            break
        words += (n_ctx - 18) - n
    out, err = io.StringIO(), io.StringIO()
    chat = Chat(s, Printer(out, err, color=False, interactive=False))
    s.turns = []
    chat.respond("Repeat after me: " + "blue " * words)
    assert "the reply may be cut short" in err.getvalue()
    assert s.last_stats.finish == "context", s.last_stats
    assert "the context is full" in err.getvalue()
    assert s.last_stats.n_tokens == n_ctx - n


def test_set_params(chat_model):
    s = _chat_session(chat_model)
    s.chain = SamplerChain.parse("llama")
    assert "temp=0.3" in s.set_param("temperature", "0.3")
    s.set_param("top-k", "7")
    s.set_param("repeat_penalty", "1.1")
    s.set_param("top_p.min_keep", "3")
    assert str(s.chain) == "penalties:repeat=1.1,top_k=7,top_p:p=0.95,min_keep=3,min_p=0.05,temp=0.3"
    s.set_param("sampler", "greedy")
    assert str(s.chain) == "greedy"
    s.set_param("seed", "42")
    assert s.seed == 42
    s.set_param("seed", "random")
    assert s.seed is None
    s.set_param("max_tokens", "12")
    assert s.max_tokens == 12
    s.set_param("system", "Be brief.")
    assert s.messages()[0] == {"role": "system", "content": "Be brief."}
    s.set_param("system", "none")
    assert s.system is None
    s.set_param("template", "chatml")
    assert s.template.name == "chatml"
    before = str(s.chain)
    for name, value, exc, words in [
        ("bogus", "1", UsageError, "unknown parameter 'bogus'"),
        ("tmp", "1", UsageError, "did you mean 'temp'"),
        ("temp", "hot", UsageError, "must be a number"),
        ("top_k", "2.5", UsageError, "must be an integer"),
        ("top_p", "1.5", InvalidSamplerSpec, "out of range"),
        ("sampler", "topk=3", InvalidSamplerSpec, "did you mean 'top_k'"),
        ("seed", "-3", UsageError, "non-negative"),
        ("min_p.q", "1", UsageError, "no 'min_p' stage"),
        ("nostage.x", "1", UsageError, "unknown sampler stage"),
        ("template", "no-such-template", ChatTemplateError, "unknown chat template"),
    ]:
        with pytest.raises(exc, match=re.escape(words)):
            s.set_param(name, value)
    assert str(s.chain) == before


def test_save_load_round_trip_and_bad_files(chat_model, tmp_path):
    s = _chat_session(chat_model, system="sys", seed=3, max_tokens=9)
    s.add_user("hello")
    s.turns.append({"role": "assistant", "content": "partial", "interrupted": True})
    s.set_param("temp", "0.5")
    p = s.save(tmp_path / "sub" / "c.json")
    s2 = _chat_session(chat_model)
    assert s2.load(p) == []
    assert s2.messages() == s.messages() and s2.seed == 3 and s2.max_tokens == 9
    assert str(s2.chain) == str(s.chain)
    # plain OpenAI message lists load too
    (tmp_path / "list.json").write_text(json.dumps([{"role": "user", "content": "q"}]))
    s2.load(tmp_path / "list.json")
    assert s2.messages() == [{"role": "user", "content": "q"}]
    # bad files: a clear error, nothing changed
    (tmp_path / "bad1.json").write_text('{"messages": [{"role": "wizard", "content": "x"}]}')
    (tmp_path / "bad2.json").write_text('{"messages": [], "settings": {"sampler": "top_k=-"}}')
    (tmp_path / "bad3.json").write_bytes(b"\xff\xfe\x00")
    (tmp_path / "dir.json").mkdir()
    for name, words in [("bad1.json", "message 0 is not"), ("bad2.json", "bad sampler"),
                        ("bad3.json", "not a UTF-8"), ("dir.json", "directory"), ("nope.json", "no such file")]:
        with pytest.raises(UsageError, match=re.escape(words)):
            s2.load(tmp_path / name)
    assert s2.messages() == [{"role": "user", "content": "q"}]
    with pytest.raises(UsageError, match="no reply to trace"):
        s2.write_trace(tmp_path / "t.jsonl")


def test_commands_regen_undo_clear_show(chat_model, tmp_path):
    s = _chat_session(chat_model, max_tokens=4)
    out, err = io.StringIO(), io.StringIO()
    chat = Chat(s, Printer(out, err, color=False, interactive=False),
                model_info=lambda: ["model         smollm2-135m"])
    chat.respond("Hi!")
    first = s.turns[-1]["content"]
    assert out.getvalue() and s.last_stats is not None and s.last_stats.n_tokens <= 4
    chat.command("/regen")
    assert [m["role"] for m in s.turns] == ["user", "assistant"]  # replaced, not appended
    assert s.turns[-1]["content"] == first  # greedy: the same reply again
    chat.command("/show model")
    chat.command("/show stats")
    chat.command("/show params")
    assert "smollm2-135m" in out.getvalue() and "session       2 replies" in out.getvalue()
    assert re.search(r"sampler\s+greedy", out.getvalue())
    chat.command("/undo")
    assert s.turns == []
    chat.command("/undo")
    assert "nothing to undo" in err.getvalue()
    chat.command("/regen")
    assert "nothing to regenerate" in err.getvalue()
    chat.respond("Hello again")
    chat.command("/clear")
    assert s.turns == [] and "conversation cleared" in err.getvalue()
    chat.command("/color off")
    assert s.color == "off"
    chat.command("/show nonsense")
    assert "expected one of params, prompt, model, stats, history" in err.getvalue()
    assert chat.command("/bye") == "exit"
    assert chat.errors == 2  # /regen with nothing to regenerate, /show nonsense


def test_printer_colours_and_action_markers():
    step = Step(index=0, token_id=1, piece="Hi", text="Hi", logprob=-2.0, entropy=2.0, varentropy=1.0,
                n_candidates=3, info={"action": "clarify"})
    out = io.StringIO()
    Printer(out, io.StringIO(), color=True, interactive=True).step(step, "entropy")
    assert "‹clarify›" in ANSI.sub("", out.getvalue()) and "\x1b[31m" in out.getvalue()  # red
    out = io.StringIO()
    Printer(out, io.StringIO(), color=False, interactive=False).step(step, "entropy")
    assert out.getvalue() == "Hi"  # piped: plain text, no markers
    # model output cannot drive the terminal: control characters are shown, not sent
    evil = Step(0, 1, "x", "\x1b]0;pwned\x07\x1b[2J", -0.1, 0.1, 0.0, 1, {})
    out = io.StringIO()
    Printer(out, io.StringIO(), color=False, interactive=True).step(evil, "off")
    assert out.getvalue() == "^[]0;pwned^G^[[2J"
    quiet = Step(0, 1, "a", "a", -0.01, 0.1, 0.0, 1, {"action": "argmax"})
    out = io.StringIO()
    Printer(out, io.StringIO(), color=True, interactive=True).step(quiet, "logprob")
    assert out.getvalue() == "a"
    assert [entropy_colour(h) for h in (0.1, 1.0, 2.0, 5.0)] == [None, "yellow", "red", "magenta"]
    assert [prob_colour(lp) for lp in (-0.1, -1.0, -2.0, -5.0)] == [None, "yellow", "red", "magenta"]
    st = ReplyStats(n_tokens=3, prompt_eval_tokens=5, prompt_tps=100, gen_tps=50, mean_entropy=1.234,
                    actions={"clarify": 2})
    assert st.line() == ("3 tokens · prompt 5 tok at 100 tok/s · generation 50.0 tok/s · "
                         "mean entropy 1.23 nats · actions clarify×2")


def test_input_helpers_and_history_path(monkeypatch, tmp_path):
    assert block_open('"""hello') and block_open('"""') and not block_open('"""a"""')
    assert not block_open("plain")
    assert strip_block('"""line 1\nline 2"""') == "line 1\nline 2"
    monkeypatch.setenv("ENTROPIC_LOCAL_HOME", str(tmp_path / "home"))
    assert history_path() == tmp_path / "home" / "chat_history"
    monkeypatch.delenv("ENTROPIC_LOCAL_HOME")
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    assert history_path() == tmp_path / "state" / "entropic-local" / "chat_history"
    monkeypatch.delenv("XDG_STATE_HOME")
    assert history_path() == Path.home() / ".local" / "state" / "entropic-local" / "chat_history"


def test_word_wrap_breaks_between_words_only():
    from entropic_local.chat.repl import WordWrap

    tokens = [" The", " quick", " bro", "wn", " fox", " jum", "ps", " over", " the", " la", "zy", " dog",
              ".", "\n", "Next", " line", " with", " 日本語", " wide", " characters", " and", " a",
              " supercalifragilisticexpialidocious", " word."]
    ww = WordWrap(20)
    text = "".join(ww.feed(t) for t in tokens) + ww.end()
    assert text.replace("\n", " ").split() == "".join(tokens).replace("\n", " ").split()
    from wcwidth import wcswidth
    for line in text.split("\n"):
        if "supercali" in line:  # a word longer than a line starts one; the terminal folds it
            assert line.startswith("supercali")
        else:
            assert wcswidth(line.rstrip()) <= 20, line
    assert "brown" in text and "jumps" in text and "lazy" in text  # never cut inside a word
    # styling wraps the pieces but is not counted as width
    ww = WordWrap(10)
    styled = ww.feed(" aaaa bbbb cccc", lambda t: f"\x1b[31m{t}\x1b[0m") + ww.end()
    assert ANSI.sub("", styled) == " aaaa bbbb\ncccc"


def test_reply_text_starts_without_whitespace_and_rate_needs_enough_tokens():
    from entropic_local.chat.session import MIN_RATE_TOKENS, _rate

    out = io.StringIO()
    p = Printer(out, io.StringIO(), color=False, interactive=False)
    p.begin_reply()
    for t in ("", " ", " The", " capital", " is Paris."):
        p.text(t)
    p.end_reply()
    assert out.getvalue() == "The capital is Paris."
    assert _rate([0.1 * i for i in range(MIN_RATE_TOKENS)]) == pytest.approx(10.0)
    assert _rate([0.1 * i for i in range(MIN_RATE_TOKENS - 1)]) is None
    st = ReplyStats(n_tokens=4, prompt_eval_tokens=5, prompt_tps=100, gen_tps=None, mean_entropy=1.0)
    assert st.line() == "4 tokens · prompt 5 tok at 100 tok/s · mean entropy 1.00 nats"
