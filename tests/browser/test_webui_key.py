"""The chat page against a server with an API key: the page asks once, keeps the key in the
browser, sends it as a Bearer token; the page itself loads without it."""

from __future__ import annotations

import urllib.request

KEY = "webui-test-key-8c1f"
SERVE_ARGS = ["--api-key", KEY]


def test_the_page_loads_without_the_key_and_the_api_refuses_without_it(server):
    with urllib.request.urlopen(server.url + "/", timeout=10) as r:
        assert r.status == 200 and b"<title>entropic-local chat</title>" in r.read()
    status, body = server.request("/v1/models", key=None)
    assert status == 401 and body["error"]["code"] == "invalid_api_key"


def test_the_page_asks_for_the_key_once_and_keeps_it(page):
    # a fresh browser: the page asks
    assert page.el("#key-dialog").get_property("open") is True
    assert page.el("#model-info").text == "API key needed"
    page.el("#key-input").send_keys("wrong-key")
    page.el("#key-save").click()
    # the wrong key is refused by the server: asked again
    page.wait(lambda d: page.el("#key-dialog").get_property("open") is True, "the second ask", 10)
    box = page.el("#key-input")
    box.clear()
    box.send_keys(KEY)
    page.el("#key-save").click()
    page.wait(lambda d: page.el("#model-info").text == "smollm2-135m", "the model info", 20)
    assert page.js("return localStorage.getItem('entropic-local.api-key')") == KEY

    page.settings(sampler="greedy", max_tokens=6)
    page.requests_sent()
    page.send("Hello!")
    assert page.tokens() and not page.els(".msg.error")
    # a reload finds the key: no dialog, the model info comes at once
    page.d.refresh()
    page.wait(lambda d: page.el("#model-info").text == "smollm2-135m", "the model info after reload", 20)
    assert page.el("#key-dialog").get_property("open") is False
    assert len(page.replies()) == 1


def test_a_key_forgotten_is_asked_for_at_the_next_request(page):
    page.js("localStorage.removeItem('entropic-local.api-key')")
    page.type_message("Hi again")
    page.el("#send").click()
    page.wait(lambda d: page.el("#key-dialog").get_property("open") is True, "the ask on 401", 20)
    page.el("#key-input").send_keys(KEY)
    page.el("#key-save").click()
    page.wait_idle()
    # the refused attempt left no reply behind; the retried one is there
    assert len(page.replies()) == 2 and page.tokens() and not page.els(".msg.error")
