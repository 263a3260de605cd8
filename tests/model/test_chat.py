"""A chat session on the real model: context trimming, overlong messages, a full context, /set,
/save and /load, the slash commands."""

from __future__ import annotations

import io
import json
import re

import pytest

from entropic_local.chat.commands import Chat
from entropic_local.chat.printer import Printer
from entropic_local.chat.session import ChatSession
from entropic_local.chat.templates import special_token_text
from entropic_local.chat.templates import ChatTemplateError, select_template
from entropic_local.errors import ContextOverflow, InvalidSamplerSpec, UsageError
from entropic_local.registry import check_gguf_header
from entropic_local.samplers import SamplerChain


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
