"""The server's request validation and response shapes, without a model: OpenAI's field
names, types and ranges; every response shape parses with the official ``openai`` package's
own types (a strict client), extra keys kept."""

from __future__ import annotations

import math

import pytest

pytest.importorskip("pydantic")

from entropic_local.decode.sequence import Step, Timings
from entropic_local.errors import APIError
from entropic_local.server import wire
from entropic_local.server.protocol import ChatRequest, CompletionRequest, parse_body, validate

MSG = [{"role": "user", "content": "hi"}]


def err(cls, body) -> APIError:
    with pytest.raises(APIError) as e:
        validate(cls, body)
    return e.value


def test_valid_requests_become_typed_objects():
    r = validate(ChatRequest, {"messages": MSG, "max_completion_tokens": 5, "temperature": 1, "top_k": 40,
                               "stop": "END", "logit_bias": {"42": -100}, "stream": True,
                               "stream_options": {"include_usage": True}, "sampler": "entropix", "n": 1})
    assert r.limit == 5 and r.stop == ["END"] and r.logit_bias == {42: -100}
    assert r.include_usage and r.flags() == {"temp": 1.0, "top_k": 40}
    assert validate(ChatRequest, {"messages": [{"role": "user", "content": [{"type": "text", "text": "a"},
                                                                            {"type": "text", "text": "b"}]}]}
                    ).messages[0].text() == "ab"
    for prompt, want in (("x", "x"), ([1, 2], [1, 2]), (["x"], "x"), ([[3]], [3])):
        assert validate(CompletionRequest, {"prompt": prompt}).prompt == want
    assert validate(CompletionRequest, {"prompt": "x", "repeat_last_n": 64}).flags() == {"penalty_last_n": 64}


@pytest.mark.parametrize("body, param, code", [
    ({"messages": MSG, "foo": 1}, "foo", "unknown_parameter"),
    ({"messages": MSG, "stream_options": {"bar": True}}, "stream_options.bar", "unknown_parameter"),
    ({}, "messages", "missing_required_parameter"),
    ({"messages": []}, "messages", "invalid_value"),
    ({"messages": MSG, "max_tokens": 0}, "max_tokens", "invalid_value"),
    ({"messages": MSG, "max_tokens": True}, "max_tokens", "invalid_value"),
    ({"messages": MSG, "max_tokens": 1.5}, "max_tokens", "invalid_value"),
    ({"messages": MSG, "temperature": "0.7"}, "temperature", "invalid_value"),
    ({"messages": MSG, "top_p": 1.5}, "top_p", "invalid_value"),
    ({"messages": MSG, "top_logprobs": 21}, "top_logprobs", "invalid_value"),
    ({"messages": MSG, "seed": -1}, "seed", "invalid_value"),
    ({"messages": MSG, "n": 2}, "n", "invalid_value"),
    ({"messages": MSG, "logit_bias": {"a": 1}}, "logit_bias", "invalid_value"),
    ({"messages": MSG, "logit_bias": {"1": 101}}, "logit_bias", "invalid_value"),
    ({"messages": [{"role": "wizard", "content": "x"}]}, "messages", "invalid_value"),
    ({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {}}]}]}, "messages",
     "invalid_value"),
])
def test_bad_chat_requests_name_the_field(body, param, code):
    e = err(ChatRequest, body)
    assert e.status == 400 and e.param == param and e.code == code


def test_bad_completion_requests():
    assert err(CompletionRequest, {"prompt": ""}).param == "prompt"
    assert err(CompletionRequest, {"prompt": ["a", "b"]}).param == "prompt"
    assert err(CompletionRequest, {"prompt": "x", "logprobs": 21}).param == "logprobs"
    assert err(CompletionRequest, {"prompt": "x", "logprobs": True}).param == "logprobs"
    assert err(CompletionRequest, [1]).status == 400


def test_bodies_that_are_not_utf8_or_json():
    assert parse_body(b'{"a": 1}') == {"a": 1}
    for raw in (b"\xff\xfe{}", b"{bad", b"", b"[" * 100000):
        with pytest.raises(APIError):
            parse_body(raw)


def _steps():
    return [Step(0, 5, "Hi", "Hi", -0.5, 1.25, 0.5, 40, {"action": "argmax"}),
            Step(1, 6, "!", "!", -1.5, 2.25, 1.5, 40, {"action": "argmax"})]


def test_summary_and_timings():
    s = wire.entropic_summary(_steps(), "entropix", 7)
    assert s["mean_entropy"] == 1.75 and s["mean_varentropy"] == 1.0
    assert s["perplexity"] == pytest.approx(math.exp(1.0))
    assert s["actions"] == {"argmax": 2} and s["sampler"] == "entropix" and s["seed"] == 7
    t = wire.timings(Timings(prompt_tokens=10, prompt_eval_tokens=4, prompt_ms=8.0, gen_tokens=2, gen_ms=20.0))
    assert t["cache_n"] == 6 and t["prompt_n"] == 4 and t["predicted_per_second"] == 100.0
    assert wire.finish_reason("context") == "length" and wire.finish_reason("stop") == "stop"


def test_shapes_parse_with_the_openai_types():
    types = pytest.importorskip("openai.types")
    from openai.types.chat import ChatCompletion, ChatCompletionChunk

    steps = _steps()
    lps = [wire.chat_logprob(s.piece.encode(), s.logprob, s.entropy, s.varentropy, [(b"Hi", -0.5), (b"Ho", -2.0)])
           for s in steps]
    use = wire.usage(10, 2, 6)
    summary = wire.entropic_summary(steps, "greedy", 1)
    r = ChatCompletion.model_validate(wire.chat_response("chatcmpl-1", 1, "m", "Hi!", "stop", lps, summary, use,
                                                         {"prompt_n": 4}))
    c = r.choices[0]
    assert c.message.content == "Hi!" and c.finish_reason == "stop"
    assert c.logprobs.content[1].model_extra["entropy"] == 2.25
    assert c.logprobs.content[0].top_logprobs[1].token == "Ho"
    assert c.model_extra["entropic"]["sampler"] == "greedy"
    assert r.usage.prompt_tokens_details.cached_tokens == 6 and r.model_extra["timings"] == {"prompt_n": 4}
    ch = ChatCompletionChunk.model_validate(wire.chat_chunk("c", 1, "m", {"content": "x"}, logprobs=lps[:1],
                                                            with_usage=True))
    assert ch.choices[0].delta.content == "x" and ch.usage is None
    ChatCompletionChunk.model_validate(wire.usage_chunk("c", 1, "m", "chat.completion.chunk", use))
    entries = [(b"A", None, None, None, []), (b"B", -1.0, 2.0, 3.0, [(b"B", -1.0)])]
    legacy = wire.completion_logprobs(entries)
    assert legacy["text_offset"] == [0, 1] and legacy["entropy"] == [None, 2.0] and legacy["top_logprobs"][0] is None
    # the first prompt token under echo has no logprob: null, as OpenAI's own API answers
    # (its Python types say float; the client parses responses without validating them)
    legacy = wire.completion_logprobs(entries[1:])
    comp = types.Completion.model_validate(wire.completion_response("cmpl-1", 1, "m", "B", "length", legacy, summary,
                                                                    use, {}))
    assert comp.choices[0].logprobs.token_logprobs == [-1.0]
    assert comp.choices[0].logprobs.model_extra["varentropy"] == [3.0]
    types.Completion.model_validate(wire.completion_chunk("c", 1, "m", "A", reason="stop", summary=summary))
    # no NaN or inf in JSON
    assert wire.chat_logprob(b"x", float("-inf"), float("nan"), 0.0, [])["logprob"] is None
