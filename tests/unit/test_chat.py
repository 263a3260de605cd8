"""The chat's printer (colours, action markers) and input helpers (no model)."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest
from wcwidth import wcswidth

from entropic_local.chat.printer import Printer, WordWrap, entropy_colour, prob_colour
from entropic_local.chat.reply import MIN_RATE_TOKENS, ReplyStats, _rate
from entropic_local.chat.repl import block_open, history_path, strip_block
from entropic_local.decode.sequence import Step


ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


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
    tokens = [" The", " quick", " bro", "wn", " fox", " jum", "ps", " over", " the", " la", "zy", " dog",
              ".", "\n", "Next", " line", " with", " 日本語", " wide", " characters", " and", " a",
              " supercalifragilisticexpialidocious", " word."]
    ww = WordWrap(20)
    text = "".join(ww.feed(t) for t in tokens) + ww.end()
    assert text.replace("\n", " ").split() == "".join(tokens).replace("\n", " ").split()
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
