"""``entropic-local serve`` as a client sees it: the official ``openai`` package and ``llm``
against a server started on 127.0.0.1 (a free port), the real model, one thread. Greedy
output equals ``generate --sampler greedy``; per-token entropy equals ``generate --json``'s;
16 concurrent streams; mixed load with cancellations back to the baseline; bad input and
faults; SIGTERM during streams."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time

import pytest

openai = pytest.importorskip("openai")
httpx = pytest.importorskip("httpx")
pytest.importorskip("uvicorn")

CLI = [sys.executable, "-m", "entropic_local"]
PROMPT = "The capital of France is"


class Server:
    def __init__(self, *args: str, env: dict | None = None):
        self.proc = subprocess.Popen([*CLI, "serve", "--port", "0", "-t", "1", *args], stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True, env={**os.environ, **(env or {})})
        line = self.proc.stdout.readline()
        m = re.search(r"(http://\S+)/v1", line)
        if not m:
            self.proc.kill()
            raise AssertionError(f"no URL printed: {line!r} {self.proc.stderr.read()}")
        self.base = m.group(1)
        self.url = self.base + "/v1"

    def client(self, **kw) -> "openai.OpenAI":
        return openai.OpenAI(base_url=self.url, api_key=kw.pop("api_key", "none"), max_retries=0, **kw)

    def slots(self) -> dict:
        return httpx.get(self.base + "/slots", headers={"Authorization": "Bearer k"}).json()

    def post(self, path: str, content: bytes | str, headers: dict | None = None) -> httpx.Response:
        return httpx.post(self.base + path, content=content, headers=headers or {}, timeout=60)

    def stop(self, sig=signal.SIGTERM, timeout=60) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()


@pytest.fixture(scope="module")
def server():
    s = Server("--parallel", "16", "--n-ctx", "256")
    yield s
    assert s.stop() == 0, s.proc.stderr.read()


def generate_json(prompt: str, n: int, *extra: str) -> dict:
    r = subprocess.run([*CLI, "generate", "-t", "1", "--sampler", "greedy", "-n", str(n), "--json", *extra, prompt],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def eos_bias(server) -> dict:
    toks = httpx.post(server.base + "/tokenize", json={"content": "<|im_end|><|endoftext|>"}).json()["tokens"]
    return {str(t): -100 for t in toks}


# ----------------------------------------------------------------------------- real clients

def test_greedy_completion_equals_generate_and_entropy_too(server):
    ref = generate_json(PROMPT, 16)
    c = server.client()
    r = c.completions.create(model="x", prompt=PROMPT, max_tokens=16, logprobs=0, extra_body={"sampler": "greedy"})
    ch = r.choices[0]
    assert ch.text == ref["text"]
    lp = ch.logprobs
    assert len(lp.tokens) == len(ref["token_ids"])
    ent = lp.model_extra["entropy"]
    var = lp.model_extra["varentropy"]
    for s, h, v, l in zip(ref["steps"], ent, var, lp.token_logprobs):
        assert h == pytest.approx(s["entropy"], rel=1e-6, abs=1e-9)
        assert v == pytest.approx(s["varentropy"], rel=1e-6, abs=1e-9)
        assert l == pytest.approx(s["logprob"], rel=1e-6, abs=1e-9)
    assert r.usage.completion_tokens == len(ref["token_ids"])
    assert r.model_extra["timings"]["predicted_n"] == len(ref["token_ids"])
    summary = ch.model_extra["entropic"]
    assert summary["sampler"] == "greedy"
    assert summary["mean_entropy"] == pytest.approx(sum(s["entropy"] for s in ref["steps"]) / len(ref["steps"]))
    # temperature 0 is greedy as well (llama-server's meaning)
    r0 = c.completions.create(model="x", prompt=PROMPT, max_tokens=16, temperature=0)
    assert r0.choices[0].text == ref["text"]


def test_chat_stream_equals_chat_response_with_logprobs(server):
    c = server.client()
    msgs = [{"role": "user", "content": "What is the capital of France?"}]
    full = c.chat.completions.create(model="x", messages=msgs, max_tokens=20, temperature=0, logprobs=True,
                                     top_logprobs=3)
    ch = full.choices[0]
    assert ch.message.role == "assistant" and ch.message.content
    entries = ch.logprobs.content
    assert len(entries) == full.usage.completion_tokens
    for e in entries:
        assert len(e.top_logprobs) == 3
        assert e.top_logprobs[0].logprob >= e.top_logprobs[-1].logprob
        assert e.logprob == pytest.approx(e.top_logprobs[0].logprob)  # greedy takes the top one
        assert e.model_extra["entropy"] >= 0 and e.model_extra["varentropy"] >= 0
        assert bytes(e.bytes).decode("utf-8", "replace") == e.token
    assert full.usage.total_tokens == full.usage.prompt_tokens + full.usage.completion_tokens

    stream = c.chat.completions.create(model="x", messages=msgs, max_tokens=20, temperature=0, stream=True,
                                       logprobs=True, stream_options={"include_usage": True})
    text, n_lp, reasons, usage = [], 0, [], None
    for chunk in stream:
        if chunk.usage is not None:
            usage = chunk.usage
        for choice in chunk.choices:
            text.append(choice.delta.content or "")
            if choice.logprobs and choice.logprobs.content:
                n_lp += len(choice.logprobs.content)
            if choice.finish_reason:
                reasons.append(choice.finish_reason)
    assert "".join(text) == ch.message.content
    assert n_lp == full.usage.completion_tokens
    assert reasons == [ch.finish_reason]
    assert usage.completion_tokens == full.usage.completion_tokens
    # the second identical prompt reused the KV cache
    assert usage.prompt_tokens_details.cached_tokens > 0


def test_completion_echo_scores_the_prompt(server):
    c = server.client()
    r = c.completions.create(model="x", prompt=PROMPT, max_tokens=4, echo=True, logprobs=2, temperature=0)
    ch = r.choices[0]
    plain = c.completions.create(model="x", prompt=PROMPT, max_tokens=4, logprobs=2, temperature=0).choices[0]
    assert ch.text == PROMPT + plain.text
    lp = ch.logprobs
    n_prompt = r.usage.prompt_tokens
    assert len(lp.tokens) == n_prompt + r.usage.completion_tokens
    assert lp.token_logprobs[0] is None and lp.model_extra["entropy"][0] is None
    assert all(x is not None and x <= 0 for x in lp.token_logprobs[1:])
    assert len(lp.model_extra["entropy"]) == len(lp.tokens) == len(lp.model_extra["varentropy"])
    assert "".join(lp.tokens) == ch.text
    assert lp.text_offset == [sum(len(t) for t in lp.tokens[:i]) for i in range(len(lp.tokens))]
    # the generated part matches the plain request's: the same tokens (the texts above), and
    # logprobs up to batching noise (the echoed prompt is decoded in one batch, the plain one
    # continues from its cached cells: other matmul paths, up to 0.1 nats measured)
    for a, b in zip(lp.token_logprobs[n_prompt:], plain.logprobs.token_logprobs):
        assert a == pytest.approx(b, abs=0.25)
    # the prompt as token ids gives the same text
    ids = httpx.post(server.base + "/tokenize", json={"content": PROMPT, "add_special": True}).json()["tokens"]
    r2 = c.completions.create(model="x", prompt=ids, max_tokens=4, temperature=0)
    assert r2.choices[0].text == plain.text
    assert httpx.post(server.base + "/detokenize", json={"tokens": ids}).json()["content"] == PROMPT


def test_models_health_metrics(server):
    c = server.client()
    (m,) = c.models.list().data
    assert m.id == "smollm2-135m" and m.object == "model"
    assert httpx.get(server.base + "/health").json() == {"status": "ok"}
    text = httpx.get(server.base + "/metrics").text
    for name in ("entropic_local_requests_total", "entropic_local_completion_tokens_total",
                 "entropic_local_busy_slots", "entropic_local_queue_depth", "entropic_local_tokens_per_second"):
        assert name in text


def test_llm_cli_against_the_server(tmp_path):
    llm_bin = os.path.join(os.path.dirname(sys.executable), "llm")
    if not os.path.exists(llm_bin):
        pytest.skip("llm is not installed")
    # a server of its own without prefix reuse: the three requests repeat one prompt, and a
    # prompt continued from cached cells takes other matmul paths (greedy can flip a near tie)
    server = Server("--n-ctx", "256", "--no-prefix-cache")
    try:
        _llm_against(server, llm_bin, tmp_path)
    finally:
        assert server.stop() == 0, server.proc.stderr.read()


def _llm_against(server, llm_bin, tmp_path):
    (tmp_path / "extra-openai-models.yaml").write_text(
        f"- model_id: entropic\n  model_name: smollm2-135m\n  api_base: \"{server.url}\"\n")
    env = {**os.environ, "LLM_USER_PATH": str(tmp_path), "OPENAI_API_KEY": "none"}
    out = []
    for args in (["-o", "temperature", "0", "-o", "max_tokens", "16"], ["--no-stream", "-o", "temperature", "0",
                                                                         "-o", "max_tokens", "16"]):
        r = subprocess.run([llm_bin, "-m", "entropic", *args, "--no-log", "What is the capital of France?"],
                           capture_output=True, text=True, timeout=120, env=env)
        assert r.returncode == 0, r.stderr
        out.append(r.stdout.strip())
    assert out[0] and out[0] == out[1]
    ref = server.client().chat.completions.create(
        model="x", messages=[{"role": "user", "content": "What is the capital of France?"}], max_tokens=16,
        temperature=0)
    assert out[0] == ref.choices[0].message.content.strip()


# ----------------------------------------------------------------------------- load

async def _stream(client, prompt, n, bias, cancel_after=None):
    t0 = time.perf_counter()
    times, text, reason = [], [], None
    stream = await client.completions.create(model="x", prompt=prompt, max_tokens=n, stream=True,
                                             logit_bias=bias, seed=1)
    async for chunk in stream:
        if not chunk.choices:
            continue
        choice = chunk.choices[0]
        times.append(time.perf_counter() - t0)
        text.append(choice.text)
        reason = choice.finish_reason or reason
        if cancel_after is not None and len(times) >= cancel_after:
            await stream.close()
            return None
    return times, "".join(text), reason


def test_16_concurrent_streams_complete(server):
    bias = eos_bias(server)

    async def main():
        client = openai.AsyncOpenAI(base_url=server.url, api_key="none", max_retries=0)
        res = await asyncio.gather(*(_stream(client, f"Story number {i}:", 64, bias) for i in range(16)))
        await client.close()
        return res

    results = asyncio.run(main())
    for times, text, reason in results:
        assert reason == "length"
        assert len(times) == 64 + 1  # 64 token chunks and the final one
        assert text
    s = server.slots()
    assert s["busy"] == 0 and s["queued"] == 0 and s["reserved"] == 0


def _rss(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def test_mixed_requests_with_cancellations_return_to_baseline(server):
    bias = eos_bias(server)
    n = int(os.environ.get("ENTROPIC_SERVER_MIXED", "80"))

    async def one(client, i):
        kind = i % 5
        if kind == 0:
            return await _stream(client, f"Item {i}:", 24, bias, cancel_after=3)
        if kind == 1:
            return await _stream(client, f"Item {i}:", 8, bias)
        if kind == 2:
            r = await client.chat.completions.create(model="x", messages=[{"role": "user", "content": f"Hi {i}"}],
                                                     max_tokens=6)
            return r.choices[0].finish_reason
        if kind == 3:
            r = await client.completions.create(model="x", prompt=f"{i} +", max_tokens=5, logprobs=1, echo=True)
            return r.choices[0].finish_reason
        try:  # a request that is refused
            await client.completions.create(model="x", prompt="x", max_tokens=5, extra_body={"sampler": "nope"})
        except openai.UnprocessableEntityError:
            return "refused"
        return "accepted?"

    async def main():
        client = openai.AsyncOpenAI(base_url=server.url, api_key="none", max_retries=0)
        sem = asyncio.Semaphore(24)

        async def limited(i):
            async with sem:
                return await one(client, i)

        res = await asyncio.gather(*(limited(i) for i in range(n)))
        await client.close()
        return res

    asyncio.run(main())  # warm: caches, allocator
    base = _rss(server.proc.pid)
    res = asyncio.run(main())
    assert [r for i, r in enumerate(res) if i % 5 == 4] == ["refused"] * len(range(4, n, 5))
    assert all(r is None for i, r in enumerate(res) if i % 5 == 0)
    for _ in range(50):  # the cancellations land within a step
        s = server.slots()
        if s["busy"] == 0:
            break
        time.sleep(0.1)
    assert s["busy"] == 0 and s["queued"] == 0 and s["reserved"] == 0
    assert _rss(server.proc.pid) - base < 64 * 1024 * 1024
    metrics = httpx.get(server.base + "/metrics").text
    assert float(re.search(r"^entropic_local_cancelled_total (\S+)", metrics, re.M).group(1)) >= len(range(0, n, 5))


# ----------------------------------------------------------------------------- bad input and faults

@pytest.mark.parametrize("body, status, param", [
    (b"{bad", 400, None),
    (b"[1, 2]", 400, None),
    (b'{"prompt": "x", "foo": 1}', 400, "foo"),
    (b'{"prompt": "x", "max_tokens": -1}', 400, "max_tokens"),
    (b'{"prompt": "x", "max_tokens": "5"}', 400, "max_tokens"),
    (b'{"prompt": "x", "temperature": true}', 400, "temperature"),
    (b'{"prompt": "x", "top_logprobs": 3}', 400, "top_logprobs"),
    (b'{"prompt": "x", "logprobs": 21}', 400, "logprobs"),
    (b'{"prompt": "x", "n": 2}', 400, "n"),
    (b'{"prompt": ""}', 400, "prompt"),
    (b'{"prompt": [1, 99999999]}', 400, "prompt"),
    (b'{"prompt": "x", "sampler": "top_k=-1"}', 422, "sampler"),
    (b'{"prompt": "\xff\xfe"}', 400, None),
    (b'{"max_tokens": 3}', 400, "prompt"),
])
def test_bad_completion_requests_are_openai_errors(server, body, status, param):
    r = server.post("/v1/completions", body, {"Content-Type": "application/json"})
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert set(err) == {"message", "type", "param", "code"} and err["message"]
    assert err["param"] == param


def test_chat_errors_and_limits(server):
    c = server.client()
    with pytest.raises(openai.BadRequestError) as e:
        c.chat.completions.create(model="x", messages=[{"role": "user", "content": "hi"}], max_tokens=-5)
    assert e.value.body["param"] == "max_tokens"
    with pytest.raises(openai.BadRequestError) as e:
        c.chat.completions.create(model="x", messages=[{"role": "user", "content": "word " * 400}])
    assert e.value.body["code"] == "context_length_exceeded"
    with pytest.raises(openai.BadRequestError):
        c.chat.completions.create(model="x", messages=[], max_tokens=2)
    # a huge max_tokens is capped by the context
    r = c.completions.create(model="x", prompt="Count: 1, 2,", max_tokens=10**9, logit_bias=eos_bias(server))
    assert r.choices[0].finish_reason == "length"
    assert r.usage.prompt_tokens + r.usage.completion_tokens == 256
    big = b'{"prompt": "' + b"a" * (9 * 1024 * 1024) + b'"}'
    r = server.post("/v1/completions", big)
    assert r.status_code == 413 and r.json()["error"]["code"] == "request_too_large"
    r = httpx.get(server.base + "/v1/nothing")
    assert r.status_code == 404 and "error" in r.json()


def test_a_vanishing_client_is_cancelled_and_the_server_keeps_serving(server):
    before = server.slots()
    body = json.dumps({"prompt": "A long story:", "max_tokens": 200, "stream": True,
                       "logit_bias": eos_bias(server)}).encode()
    sock = socket.create_connection(socket.getaddrinfo("127.0.0.1", int(server.base.rsplit(":", 1)[1]))[0][4])
    sock.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                 + f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
    got = b""
    while got.count(b"data:") < 3:
        got += sock.recv(65536)
    sock.close()  # gone mid-stream
    for _ in range(50):
        s = server.slots()
        if s["busy"] == before["busy"]:
            break
        time.sleep(0.1)
    assert s["busy"] == before["busy"] == 0
    r = server.client().completions.create(model="x", prompt=PROMPT, max_tokens=3)
    assert r.choices[0].text


def test_api_key_queue_bound_and_sigterm_during_streams():
    s = Server("--parallel", "1", "--queue-size", "1", "--n-ctx", "256", "--api-key", "k")
    try:
        r = httpx.get(s.url + "/models")
        assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_api_key"
        r = httpx.get(s.url + "/models", headers={"Authorization": "Bearer wrong"})
        assert r.status_code == 401
        assert httpx.get(s.base + "/health").status_code == 200  # health needs no key
        c = s.client(api_key="k")
        assert c.models.list().data[0].id == "smollm2-135m"
        bias = eos_bias_key(s)

        async def main():
            client = openai.AsyncOpenAI(base_url=s.url, api_key="k", max_retries=0)
            # one decoding, one waiting: a third is refused with 503 and Retry-After
            t1 = asyncio.create_task(_stream(client, "One:", 200, bias))
            await asyncio.sleep(1.0)
            t2 = asyncio.create_task(_stream(client, "Two:", 200, bias))
            await asyncio.sleep(0.5)
            r = await asyncio.to_thread(httpx.post, s.url + "/completions", json={"prompt": "x", "max_tokens": 2},
                                        headers={"Authorization": "Bearer k"})
            assert r.status_code == 503 and r.headers["retry-after"]
            assert r.json()["error"]["code"] == "queue_full"
            await asyncio.sleep(0.5)
            s.proc.send_signal(signal.SIGTERM)  # ends the open stream with a final chunk
            res = await asyncio.gather(t1, t2, return_exceptions=True)
            await client.close()
            return res

        first, second = asyncio.run(main())
        times, text, reason = first
        assert reason == "stop" and 0 < len(times) < 200
        assert s.proc.wait(60) == 0
    finally:
        s.stop()


def eos_bias_key(s) -> dict:
    toks = httpx.post(s.base + "/tokenize", json={"content": "<|im_end|><|endoftext|>"},
                      headers={"Authorization": "Bearer k"}).json()["tokens"]
    return {str(t): -100 for t in toks}


SCHEMA = {"type": "object", "properties": {"name": {"type": "string", "maxLength": 20},
                                            "age": {"type": "integer"}},
          "required": ["name", "age"], "additionalProperties": False}


def test_response_format_json_schema_and_grammar_constrain_the_reply(server):
    jsonschema = pytest.importorskip("jsonschema")
    c = server.client()
    msgs = [{"role": "user", "content": "Describe a person as JSON."}]
    for seed in range(3):
        r = c.chat.completions.create(
            model="x", messages=msgs, max_tokens=60, temperature=1.0, seed=seed, logprobs=True,
            response_format={"type": "json_schema", "json_schema": {"name": "person", "schema": SCHEMA}})
        ch = r.choices[0]
        assert ch.finish_reason == "stop", ch.message.content
        jsonschema.validate(json.loads(ch.message.content), SCHEMA)
        summary = ch.model_extra["entropic"]["constraint"]
        assert summary["complete"] and summary["log_mass_removed"] >= 0
        assert all("grammar_log_mass" in e.model_extra for e in ch.logprobs.content)
    # llama-server's grammar field, on completions
    g = 'root ::= ("yes" | "no") "."'
    r = c.completions.create(model="x", prompt="Is the sky blue? Answer:", max_tokens=8, temperature=1.0,
                             seed=1, extra_body={"grammar": g})
    assert r.choices[0].text in ("yes.", "no.")


@pytest.mark.parametrize("extra,param", [
    ({"grammar": "root ::= ("}, "response_format"),
    ({"response_format": {"type": "json_schema", "json_schema": {"name": "x"}}}, "response_format"),
    ({"response_format": {"type": "xml"}}, "response_format"),
    ({"grammar": 'root ::= "a"', "response_format": {"type": "json_object"}}, "response_format"),
])
def test_bad_constraints_are_openai_errors(server, extra, param):
    body = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 4, **extra}
    r = server.post("/v1/chat/completions", json.dumps(body), {"Content-Type": "application/json"})
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    assert err["message"] and err["param"].startswith(param)
    assert server.client().completions.create(model="x", prompt="ok", max_tokens=2).choices[0].text is not None


def test_adaptive_samplers_per_token_fields_reach_the_logprobs(server):
    r = server.client().chat.completions.create(
        model="x", messages=[{"role": "user", "content": "Tell me a story."}], max_tokens=12, seed=3,
        logprobs=True, extra_body={"sampler": "entropix"})
    entries = r.choices[0].logprobs.content
    assert entries and all(isinstance(e.model_extra.get("action"), str) for e in entries)
    counts = r.choices[0].model_extra["entropic"]["actions"]
    assert sum(counts.values()) == len(entries)
