"""``entropic-local chat`` driven like a person: in a real pseudo-terminal (pexpect + pyte, a VT100
emulator, so the assertions are on what the screen shows) and piped."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from entropic_local.chat.templates import select_template
from entropic_local.registry import check_gguf_header


ROOT = Path(__file__).resolve().parents[2]


WAIT = float(os.environ.get("ENTROPIC_LOCAL_TEST_WAIT", "180"))  # seconds, per screen event


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    for k in ("NO_COLOR", "ENTROPIC_LOCAL_HOME"):
        env.pop(k, None)
    # run this checkout's package even from another directory (an editable install does too)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env.update(PROMPT_TOOLKIT_NO_CPR="1", TERM="xterm-256color",
               XDG_STATE_HOME=str(tmp_path / "state"), **extra)
    return env


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


@pytest.fixture(scope="module")
def chat_model():
    """The default model on one thread (see Term: steadier on a loaded machine)."""
    import entropic_local as el

    m = el.load("smollm2-135m", n_ctx=1024, n_threads=1, seed=0)
    yield m
    m.close()
