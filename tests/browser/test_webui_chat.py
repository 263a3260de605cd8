"""The chat page in headless Chromium against a real ``serve``: a streamed reply whose
tokens carry the API's numbers, the tooltip, stop, regenerate, reload, export (read back
by the terminal chat's /load), and model output that stays text."""

from __future__ import annotations

import json
import math
import time

import pytest
from selenium.webdriver.common.keys import Keys

QUESTION = "What is the capital of France?"
# no prefix reuse: the page's request and the test's direct one then decode the same prompt the
# same way, so their numbers agree exactly (a prompt continued from cached cells takes other
# matmul paths)
SERVE_ARGS = ["--no-prefix-cache"]
GREEDY = {"sampler": "greedy", "seed": 7, "max_tokens": 16, "top_logprobs": 4}


@pytest.fixture(scope="module")
def first_reply(page):
    """One greedy reply written through the page (the module's conversation starts here)."""
    page.settings(**GREEDY)
    page.requests_sent()  # forget the log so far
    page.send(QUESTION)
    return {"tokens": page.tokens(), "text": page.reply_text(), "bodies": page.requests_sent()}


def test_the_page_sends_its_controls_as_request_fields(first_reply):
    (body,) = first_reply["bodies"]
    assert body["messages"] == [{"role": "user", "content": QUESTION}]
    assert body["stream"] is True and body["logprobs"] is True
    for k, v in GREEDY.items():
        assert body[k] == v, k


def test_streamed_tokens_carry_the_entropy_the_api_returns(first_reply, server):
    status, direct = server.request("/v1/chat/completions", {
        "messages": [{"role": "user", "content": QUESTION}], "logprobs": True, **GREEDY})
    assert status == 200, direct
    choice = direct["choices"][0]
    entries = choice["logprobs"]["content"]
    toks = first_reply["tokens"]
    assert first_reply["text"] == choice["message"]["content"]
    assert [t["text"] for t in toks] == [e["token"] for e in entries]
    for t, e in zip(toks, entries):
        assert t["entropy"] == pytest.approx(e["entropy"], rel=1e-9, abs=1e-12)
        assert t["varentropy"] == pytest.approx(e["varentropy"], rel=1e-9, abs=1e-12)
        assert t["logprob"] == pytest.approx(e["logprob"], rel=1e-9, abs=1e-12)


def test_tokens_are_tinted_by_their_level(first_reply):
    bounds = [0.5, 1.0, 2.0, 3.0, math.inf]
    for t in first_reply["tokens"]:
        want = next(i for i, b in enumerate(bounds) if t["entropy"] < b)
        assert f"lv{want}" in t["cls"].split(), t


def test_hovering_a_token_shows_its_numbers(page, first_reply):
    toks = first_reply["tokens"]
    i = max(range(len(toks)), key=lambda j: toks[j]["entropy"])  # the most uncertain token
    page.hover(page.els(".msg.assistant .tok")[i])
    tip = page.tooltip()
    t = toks[i]
    assert tip["entropy"] == f"{t['entropy']:.3f} nats"
    assert tip["varentropy"] == f"{t['varentropy']:.3f} nats²"
    assert tip["logprob"] == f"{t['logprob']:.3f}"
    assert tip["probability"] == f"{100 * math.exp(t['logprob']):.1f}%"
    alts = tip["alternatives"]
    assert len(alts) == GREEDY["top_logprobs"]
    probs = [float(p.rstrip("%")) for _, p in alts]
    assert probs == sorted(probs, reverse=True)
    # greedy: the chosen token is the most probable alternative
    assert alts[0][1] == tip["probability"]


def test_keyboard_moves_between_tokens_and_shows_each_ones_numbers(page, first_reply):
    toks = first_reply["tokens"]
    # from the message box, Shift+Tab reaches the reply: one tab stop, its first token
    page.el("#prompt").click()
    for _ in range(40):
        page.d.switch_to.active_element.send_keys(Keys.SHIFT, Keys.TAB)
        if page.d.switch_to.active_element.get_attribute("class").startswith("tok"):
            break
    active = page.d.switch_to.active_element
    assert "tok" in active.get_attribute("class").split() and active.get_attribute("data-i") == "0"
    assert page.tooltip()["entropy"] == f"{toks[0]['entropy']:.3f} nats"
    active.send_keys(Keys.ARROW_RIGHT)
    active = page.d.switch_to.active_element
    assert active.get_attribute("data-i") == "1"
    tip = page.tooltip()
    assert tip["entropy"] == f"{toks[1]['entropy']:.3f} nats"
    assert tip["describes"] == "tip"  # the focused token is described by the tooltip
    page.d.switch_to.active_element.send_keys(Keys.END)
    assert page.d.switch_to.active_element.get_attribute("data-i") == str(len(toks) - 1)


def test_the_chart_has_a_bar_per_token_and_names_the_numbers(page, first_reply):
    toks = first_reply["tokens"]
    label = page.el(".msg.assistant svg.chart").get_attribute("aria-label")
    mean = sum(t["entropy"] for t in toks) / len(toks)
    assert label.startswith(f"Entropy over {len(toks)} tokens: mean {mean:.2f}, max {max(t['entropy'] for t in toks):.2f}")
    n_bars = page.js("return document.querySelector('.msg.assistant svg.chart')"
                     ".querySelectorAll('path.bar').length ? Array.from(document.querySelectorAll("
                     "'.msg.assistant svg.chart path.bar')).reduce((n, p) => n + (p.getAttribute('d').match(/M/g) || []).length, 0) : 0")
    assert n_bars == len(toks)


def test_regenerate_replaces_the_last_reply(page, first_reply):
    page.el("#regenerate").click()
    page.wait_idle()
    assert len(page.replies()) == 1
    assert len(page.els(".msg.user")) == 1
    assert page.reply_text() == first_reply["text"]  # greedy: the same reply again


def test_stop_ends_a_long_reply_and_keeps_what_was_written(page, server):
    page.settings(sampler="llama", seed="", max_tokens=1500)
    page.send("Write a very long story about a dragon and a knight.", wait=False)
    page.wait(lambda d: len(page.tokens()) >= 4, "the first tokens")
    page.el("#stop").click()
    page.wait_idle(timeout=30)
    n = len(page.tokens())
    assert 4 <= n < 1500
    assert "interrupted" in page.replies()[-1].get_attribute("class").split()
    # the server cancelled the request: its slot is free again
    deadline = time.monotonic() + 10
    while server.request("/slots")[1]["busy"] and time.monotonic() < deadline:
        time.sleep(0.1)
    assert server.request("/slots")[1]["busy"] == 0
    time.sleep(1.0)
    assert len(page.tokens()) == n  # nothing more arrives
    # the server is free again: the next reply is written
    page.settings(**GREEDY)
    page.send("Say hello.")
    assert page.tokens() and "interrupted" not in page.replies()[-1].get_attribute("class").split()
    stored = page.js("return JSON.parse(localStorage.getItem('entropic-local.conversations'))")
    (conv,) = stored
    assert [m.get("interrupted", False) for m in conv["messages"] if m["role"] == "assistant"] == [False, True, False]


def test_reload_finds_the_conversation_with_its_numbers(page):
    before = [page.tokens(i) for i in range(len(page.replies()))]
    texts = [page.reply_text(i) for i in range(len(page.replies()))]
    page.d.refresh()
    page.wait(lambda d: len(page.replies()) == len(before), "the conversation after reload", 20)
    assert page.el(".conversations .open[aria-current='true']").text.startswith(QUESTION[:20])
    assert [page.reply_text(i) for i in range(len(before))] == texts
    assert [page.tokens(i) for i in range(len(before))] == before


def test_export_is_a_saved_chat_the_terminal_loads(page, tmp_path):
    from entropic_local.chat.saved import load_session
    from entropic_local.chat.session import ChatSession
    from entropic_local.chat.templates import select_template, special_token_text
    from entropic_local.registry import check_gguf_header
    from entropic_local.samplers import SamplerChain
    import entropic_local as el

    for f in page.downloads.glob("*"):
        f.unlink()
    page.el("#export-chat").click()
    page.wait(lambda d: [f for f in page.downloads.glob("chat-*.json")], "the downloaded file", 20)
    (path,) = page.downloads.glob("chat-*.json")
    data = json.loads(path.read_text(encoding="utf-8"))
    assert data["format"] == "entropic-local-chat" and data["version"] == 1
    assert data["model"] == "smollm2-135m"
    assert data["settings"]["sampler"] == "greedy" and data["settings"]["max_tokens"] == GREEDY["max_tokens"]
    roles = [m["role"] for m in data["messages"]]
    assert roles == ["user", "assistant"] * 3
    assistant = [m for m in data["messages"] if m["role"] == "assistant"]
    shown = [page.tokens(i) for i in range(len(page.replies()))]
    for m, toks in zip(assistant, shown):
        assert [e["entropy"] for e in m["logprobs"]["content"]] == [t["entropy"] for t in toks]

    m = el.load("smollm2-135m", n_ctx=512, n_threads=1, seed=0)
    try:
        tmpl, _ = select_template(
            None, gguf_template=check_gguf_header(m.engine.path).chat_template, registry_template="gguf",
            model_label="smollm2-135m", bos_token=special_token_text(m.engine, "tokenizer.ggml.bos_token_id"),
            eos_token=special_token_text(m.engine, "tokenizer.ggml.eos_token_id"))
        s = ChatSession(m, tmpl, SamplerChain.parse("llama"))
        load_session(s, path)
        assert s.messages() == [{k: v for k, v in msg.items() if k in ("role", "content", "interrupted")}
                                for msg in data["messages"]]
        assert str(s.chain) == str(SamplerChain.parse("greedy"))
        assert s.max_tokens == GREEDY["max_tokens"]
    finally:
        m.close()


HOSTILE = '<script>window.__pwned = 1</script><img src=x onerror="window.__pwned = 2">'


def _markup_in_page(page) -> dict:
    return page.js("""return {
        scripts: document.querySelectorAll('script').length,
        imgs: document.querySelectorAll('img').length,
        pwned: window.__pwned === undefined ? null : window.__pwned,
        texts: Array.from(document.querySelectorAll('.msg-text, .conversations .open, #system')).map(e => e.value || e.textContent)};""")


def test_a_reply_containing_html_stays_text(page):
    """The model writes an <img onerror> tag (greedy SmolLM2 does for this prompt): it shows as text."""
    page.js("document.getElementById('new-chat').click()")
    page.settings(sampler="greedy", seed=7, max_tokens=40)
    page.send("Write an HTML img tag with an onerror attribute.")
    text = page.reply_text()
    assert "<img" in text and "onerror" in text
    seen = _markup_in_page(page)
    assert seen["imgs"] == 0 and seen["scripts"] == 1  # the page's own module only
    assert "<img" in "".join(t["text"] for t in page.tokens())


def test_an_imported_chat_full_of_markup_stays_text(page, tmp_path):
    saved = {
        "format": "entropic-local-chat", "version": 1, "model": HOSTILE, "title": HOSTILE,
        "settings": {"sampler": "greedy", "max_tokens": 8},
        "messages": [
            {"role": "system", "content": HOSTILE},
            {"role": "user", "content": HOSTILE},
            {"role": "assistant", "content": HOSTILE, "logprobs": {"content": [
                {"token": piece, "logprob": -0.5, "bytes": list(piece.encode()), "entropy": 3.5, "varentropy": 1.0,
                 "top_logprobs": [{"token": HOSTILE, "logprob": -0.5, "bytes": list(HOSTILE.encode())}],
                 "action": HOSTILE}
                for piece in ("<script>window.__pwned = 1</script>", '<img src=x onerror="window.__pwned = 2">')]}},
        ],
    }
    f = tmp_path / "hostile.json"
    f.write_text(json.dumps(saved), encoding="utf-8")
    page.el("#import-file").send_keys(str(f))
    page.wait(lambda d: page.status().startswith("imported"), "the import", 10)
    page.hover(page.els(".msg.assistant .tok")[1])
    tip = page.tooltip()
    time.sleep(0.3)  # an injected <img> would have fired onerror by now
    seen = _markup_in_page(page)
    assert seen["imgs"] == 0 and seen["scripts"] == 1 and seen["pwned"] is None
    assert seen["texts"].count(HOSTILE) >= 3  # system prompt, user message, assistant reply
    assert tip["action"] == HOSTILE and tip["alternatives"][0][0] == HOSTILE.replace(" ", "␣")
    assert any(t.startswith("<script>") for t in seen["texts"])  # the list title


def test_a_malformed_import_is_refused_with_a_reason(page, tmp_path):
    n = len(page.els(".conversations li"))
    f = tmp_path / "bad.json"
    f.write_text(json.dumps({"messages": [{"role": "user", "content": "a"}, {"role": "system", "content": "b"}]}))
    page.el("#import-file").send_keys(str(f))
    page.wait(lambda d: page.status().startswith("cannot import"), "the refusal", 10)
    assert "a system message may only come first (message 1)" in page.status()
    assert len(page.els(".conversations li")) == n


def test_an_adaptive_samplers_decisions_show_in_the_tooltip(page, server):
    """Every extra key the API puts on a token entry (sampler decisions such as Entropix's
    action and temperature) is a row of that token's tooltip."""
    fields = {"sampler": "entropix", "seed": 3, "max_tokens": 6, "top_logprobs": 3}
    page.js("document.getElementById('new-chat').click()")
    page.settings(**fields)
    page.send("Name a colour.")
    status, direct = server.request("/v1/chat/completions", {
        "messages": [{"role": "user", "content": "Name a colour."}], "logprobs": True, **fields})
    assert status == 200, direct
    entries = direct["choices"][0]["logprobs"]["content"]
    standard = {"token", "logprob", "bytes", "top_logprobs", "entropy", "varentropy"}
    spans = page.els(".msg.assistant .tok")
    assert len(spans) == len(entries)
    for span, e in zip(spans, entries):
        page.hover(span)
        tip = page.tooltip()
        extra = {k for k, v in e.items() if k not in standard and v is not None}
        shown = set(tip) - {"logprob", "probability", "entropy", "varentropy", "token", "alternatives", "describes"}
        flat = set()
        for k in extra:
            flat |= set(e[k]) if isinstance(e[k], dict) else {k}
        assert shown == flat, (e, tip)
        for k in flat:
            v = e[k] if k in e else next(e[x][k] for x in extra if isinstance(e[x], dict) and k in e[x])
            if isinstance(v, bool) or v is None:
                want = json.dumps(v)
            elif isinstance(v, (int, float)):
                want = str(int(v)) if float(v).is_integer() else f"{v:.3f}"
            else:
                want = str(v)
            assert tip[k] == want, k


def test_a_refused_request_shows_the_servers_reason_and_keeps_no_reply(page):
    page.js("document.getElementById('new-chat').click()")
    page.settings(sampler="no_such_stage=1", max_tokens=4)
    page.send("Hello")
    assert page.status().startswith("error: ")
    assert "no_such_stage" in page.status()
    assert page.replies() == [] and len(page.els(".msg.user")) == 1
    page.settings(sampler="greedy")
    page.el("#regenerate").click()  # the same message, now with a valid sampler
    page.wait_idle()
    assert len(page.replies()) == 1 and page.tokens()
