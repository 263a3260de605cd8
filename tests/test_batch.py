"""Batch generation: the batched engine against single-prompt runs, the API, and the
``entropic-local batch`` command (shapes, error rows, resume after kill -9 and SIGTERM,
the Ray path run locally)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

import entropic_local as el
from entropic_local import BatchRequest
from entropic_local.batch.jobs import BadLine, Job, derive_seed, parse_line
from entropic_local.batch.output import OutputFile

CLI = [sys.executable, "-m", "entropic_local"]
PROMPTS = ["The capital of France is", "Once upon a time", "1, 2, 3, 4,", "Water boils at",
           "The best way to learn Python is", "My favourite colour is", "In 1492,",
           "def fibonacci(n):"]


def run(*args, timeout=300, env=None):
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})})


def singles(model, prompts, **kw):
    out = []
    for p in prompts:
        model.reset()  # a fresh cache, as each batch sequence has (no prefix reuse)
        out.append(model.generate(p, **kw))
    return out


# ---------------------------------------------------------------------------------------
# the batched engine against single-prompt runs


@pytest.mark.parametrize("name", ["smollm2", "gemma"])
def test_parallel_one_equals_single_exactly(name, request):
    m = request.getfixturevalue(name)
    ref = singles(m, PROMPTS[:4], max_tokens=16, sampler="greedy")
    got = m.generate_batch(PROMPTS[:4], max_tokens=16, sampler="greedy", parallel=1)
    for a, b in zip(ref, got):
        assert a.token_ids == b.token_ids
        assert [s.logprob for s in a.steps] == [s.logprob for s in b.steps]
        assert a.text == b.text and a.finish_reason == b.finish_reason


@pytest.mark.parametrize("name", ["smollm2", "gemma"])
def test_batched_equals_single_within_noise(name, request):
    """Several sequences per micro-batch change llama.cpp's matmul path (measured, module doc
    of batching.py): outputs are equal except where two tokens were nearly tied."""
    m = request.getfixturevalue(name)
    ref = singles(m, PROMPTS, max_tokens=24, sampler="greedy")
    got = m.generate_batch(PROMPTS, max_tokens=24, sampler="greedy", parallel=4)
    same = 0
    for a, b in zip(ref, got):
        n = next((i for i, (x, y) in enumerate(zip(a.token_ids, b.token_ids)) if x != y), None)
        same += n is None
        common = len(a.steps) if n is None else n
        for sa, sb in zip(a.steps[:common], b.steps[:common]):
            assert abs(sa.logprob - sb.logprob) < 0.5 and abs(sa.entropy - sb.entropy) < 0.5
        if n is not None:  # a near-tie: both picks about equally likely
            assert abs(a.steps[n].logprob - b.steps[n].logprob) < 0.5
    assert same >= len(PROMPTS) // 2, same


def test_seeded_samplers_run_per_sequence(smollm2):
    """Each sequence has its own chain and seed: AES / Entropix decisions are recorded per
    sequence, and with parallel=1 the seeded outputs equal single runs."""
    seeds = [11, 12, 13]
    for spec in ("llama", "aes", "entropix"):
        ref = []
        for p, s in zip(PROMPTS[:3], seeds):
            smollm2.reset()
            ref.append(smollm2.generate(p, max_tokens=12, sampler=spec, seed=s))
        got = smollm2.generate_batch(PROMPTS[:3], max_tokens=12, sampler=spec, seeds=seeds, parallel=1)
        assert [g.token_ids for g in got] == [g.token_ids for g in ref], spec
        assert [g.seed for g in got] == seeds
        if spec == "entropix":
            assert all("action" in st.info for g in got for st in g.steps)
        if spec == "aes":
            assert all("alpha" in st.info for g in got for st in g.steps)
    # in a real batch too: every sequence's records are its own
    got = smollm2.generate_batch(PROMPTS, max_tokens=8, sampler="entropix", seeds=list(range(8)), parallel=8)
    assert all(g.steps and all("action" in st.info for st in g.steps) for g in got)


def test_continuous_batching_and_iterator(smollm2):
    reqs = [BatchRequest(p, max_tokens=4 + 6 * (i % 3)) for i, p in enumerate(PROMPTS)]
    order = [i for i, _ in smollm2.iter_batch(reqs, sampler="greedy", parallel=3)]
    assert sorted(order) == list(range(len(PROMPTS)))       # each exactly once
    assert order != list(range(len(PROMPTS)))                # short ones finish first
    assert smollm2._batch.n_seq_max >= 3  # reused from an earlier, bigger batch when there is one
    gens = smollm2.generate_batch(reqs, sampler="greedy", parallel=3)
    assert [len(g.token_ids) <= r.max_tokens for g, r in zip(gens, reqs)] == [True] * len(reqs)
    assert [g.prompt for g in gens] == PROMPTS                # input order
    # the batch cache is empty again afterwards
    assert all(smollm2._batch.seq_pos_max(s) == -1 for s in range(smollm2._batch.n_seq_max))


def test_per_request_settings_and_stop(smollm2):
    reqs = [BatchRequest("1, 2, 3, 4,", max_tokens=30, stop=" 7"),
            BatchRequest("1, 2, 3, 4,", max_tokens=3),
            BatchRequest(smollm2.tokenize("1, 2, 3, 4,"), max_tokens=5, sampler="greedy")]
    a, b, c = smollm2.generate_batch(reqs, sampler="greedy", parallel=3)
    assert a.finish_reason == "stop" and " 7" not in a.text and a.text.startswith(" 5, 6,")
    assert b.finish_reason == "length" and len(b.token_ids) == 3
    assert c.finish_reason == "length" and c.token_ids[:3] == b.token_ids
    assert "".join(s.text for s in a.steps) == a.text


def test_context_limit_per_sequence():
    m = el.load("smollm2-135m", n_ctx=256, seed=0)
    try:
        prompt = "Once upon a time, in a land far away, there lived a king. " * 15
        n = len(m.tokenize(prompt))
        assert m.n_ctx - 40 < n < m.n_ctx - 8
        m.reset()
        single = m.generate(prompt, max_tokens=100, sampler="greedy")
        batch = m.generate_batch([prompt, "Hi"], max_tokens=100, sampler="greedy", parallel=2)
        assert single.finish_reason == batch[0].finish_reason == "context"
        assert batch[0].token_ids == single.token_ids
        with pytest.raises(el.ContextOverflow):
            m.generate_batch(["Hi", "word " * 300], max_tokens=4)
        with pytest.raises(el.UsageError):
            m.generate_batch(["a", "b"], seeds=[1])
        with pytest.raises(el.InvalidSamplerSpec):
            m.generate_batch(["a"], sampler="top_k=")
    finally:
        m.close()


# ---------------------------------------------------------------------------------------
# input lines, seeds, output rows


def test_parse_line_shapes():
    j = parse_line('{"custom_id": 7, "prompt": "Hi", "max_tokens": 5, "temperature": 0.5, "stop": "x"}', 1)
    assert isinstance(j, Job) and j.custom_id == "7" and j.kind == "prompt"
    assert j.settings == {"max_tokens": 5, "temperature": 0.5, "stop": ["x"]}
    j = parse_line(json.dumps({"custom_id": "c", "method": "POST", "url": "/v1/chat/completions",
                               "body": {"model": "x", "messages": [{"role": "user", "content": [
                                   {"type": "text", "text": "Hi"}]}], "max_completion_tokens": 9}}), 2)
    assert j.kind == "chat" and j.messages == [{"role": "user", "content": "Hi"}]
    assert j.settings == {"max_tokens": 9}
    for bad, code in [("{", "invalid_json"), ("[1]", "invalid_request"), ('{"prompt": "x"}', "invalid_request"),
                      ('{"custom_id": "a"}', "invalid_request"),
                      ('{"custom_id": "a", "prompt": "x", "max_tokens": "9"}', "invalid_request"),
                      ('{"custom_id": "a", "url": "/v1/embeddings", "body": {}}', "invalid_request"),
                      ('{"custom_id": "a", "url": "/v1/chat/completions", "body": {"messages": []}}',
                       "invalid_request")]:
        r = parse_line(bad, 3)
        assert isinstance(r, BadLine) and r.code == code, bad
        assert r.message.startswith("line 3: ")


def test_derived_seeds():
    assert derive_seed(1, "a") == derive_seed(1, "a")
    assert len({derive_seed(1, "a"), derive_seed(1, "b"), derive_seed(2, "a")}) == 3
    assert 0 <= derive_seed(123, "x") < 2**63


def test_output_resume_repairs_partial_last_line(tmp_path):
    p = tmp_path / "out.jsonl"
    rows = [json.dumps({"custom_id": c, "response": {}, "error": None}) for c in "abc"]
    p.write_text("\n".join(rows) + "\n" + rows[0][:17])       # killed mid-line
    out = OutputFile(str(p)).open()
    assert out.done == {"a", "b", "c"} and out.repaired == 17
    out.write({"custom_id": "d", "response": {}, "error": None})
    out.close()
    lines = p.read_text().splitlines()
    assert [json.loads(x)["custom_id"] for x in lines] == ["a", "b", "c", "d"]


# ---------------------------------------------------------------------------------------
# the command


def write_input(path, n, *, max_tokens=8, extra=()):
    with open(path, "w") as f:
        for i in range(n):
            f.write(json.dumps({"custom_id": f"q{i}", "prompt": PROMPTS[i % len(PROMPTS)],
                                "max_tokens": max_tokens}) + "\n")
        for line in extra:
            f.write(line + "\n")


def read_rows(path):
    with open(path) as f:
        return [json.loads(x) for x in f if x.strip()]


def texts(rows):
    return {r["custom_id"]: (r["response"]["body"]["choices"][0].get("text") if r["response"] else None)
            for r in rows}


def test_cli_batch_rows_errors_and_openai_shape(tmp_path):
    inp, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    write_input(inp, 3, extra=[
        "this is not json",
        json.dumps({"custom_id": "chat", "method": "POST", "url": "/v1/chat/completions",
                    "body": {"messages": [{"role": "user", "content": "What is 2+2?"}],
                             "max_tokens": 12, "temperature": 0}}),
        json.dumps({"custom_id": "badspec", "prompt": "x", "sampler": "top_k=-1"}),
        json.dumps({"custom_id": "long", "prompt": "word " * 600}),
    ])
    r = run("batch", str(inp), "-o", str(out), "--seed", "3", "-p", "4", "--steps", "--n-ctx", "256")
    assert r.returncode == 0, r.stderr
    rows = read_rows(out)
    by = {row["custom_id"]: row for row in rows}
    assert sorted(by) == sorted(["q0", "q1", "q2", "line-4", "chat", "badspec", "long"])
    assert len(rows) == 7
    assert by["line-4"]["error"]["code"] == "invalid_json" and by["line-4"]["response"] is None
    assert by["badspec"]["error"]["code"] == "invalid_sampler"
    assert by["long"]["error"]["code"] == "context_length_exceeded"
    body = by["q0"]["response"]["body"]
    assert by["q0"]["response"]["status_code"] == 200 and body["object"] == "text_completion"
    assert body["usage"]["completion_tokens"] == len(body["entropic"]["steps"]) <= 8
    assert body["usage"]["total_tokens"] == body["usage"]["prompt_tokens"] + body["usage"]["completion_tokens"]
    assert body["entropic"]["seed"] == derive_seed(3, "q0")
    assert {"entropy", "varentropy", "logprob"} <= set(body["entropic"]["steps"][0])
    chat = by["chat"]["response"]["body"]
    assert chat["object"] == "chat.completion"
    assert chat["choices"][0]["message"]["role"] == "assistant"
    assert chat["choices"][0]["message"]["content"].strip()
    assert "<|im_end|>" not in chat["choices"][0]["message"]["content"]
    assert chat["choices"][0]["finish_reason"] in ("stop", "length")
    summary = [ln for ln in r.stderr.splitlines() if ln.startswith("batch:")]
    assert summary and "7 rows written (4 ok, 3 errors)" in summary[-1]
    # the same command again: everything is done, nothing is added
    r2 = run("batch", str(inp), "-o", str(out), "--seed", "3", "-p", "4", "--n-ctx", "256")
    assert r2.returncode == 0 and "7 already done" in r2.stderr
    assert read_rows(out) == rows


def test_cli_batch_duplicates_fail_before_running(tmp_path):
    inp, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    inp.write_text('{"custom_id": "a", "prompt": "x"}\n{"custom_id": "b", "prompt": "y"}\n'
                   '{"custom_id": "a", "prompt": "z"}\n')
    r = run("batch", str(inp), "-o", str(out))
    assert r.returncode == 2 and "duplicate custom_id 'a' on lines 1 and 3" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and not out.exists()
    r = run("batch", str(inp), "-o", str(tmp_path / "missing" / "out.jsonl"))
    assert r.returncode == 2 and "Traceback" not in r.stderr


def test_cli_batch_kill_9_then_resume_is_exactly_once(tmp_path):
    """-p 1: every sequence decodes alone, so the outputs are bit-exact whatever the
    interruption (with more, the mixing of sequences in micro-batches depends on timing and
    the numbers move within llama.cpp's batching noise)."""
    inp = tmp_path / "in.jsonl"
    write_input(inp, 16, max_tokens=24)
    ref_out, out = tmp_path / "ref.jsonl", tmp_path / "out.jsonl"
    r = run("batch", str(inp), "-o", str(ref_out), "--seed", "5", "-p", "1", "-t", "1")
    assert r.returncode == 0, r.stderr
    p = subprocess.Popen([*CLI, "batch", str(inp), "-o", str(out), "--seed", "5", "-p", "1", "-t", "1"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 240
    while time.time() < deadline and (not out.exists() or out.read_text().count("\n") < 3):
        time.sleep(0.05)
    p.send_signal(signal.SIGKILL)
    p.wait()
    before = out.read_text().count("\n")
    assert 3 <= before < 16, before
    with open(out, "a") as f:             # as if the kill had landed in the middle of a write
        f.write('{"id": "batch_req_x", "custom_id": "q1')
    r = run("batch", str(inp), "-o", str(out), "--seed", "5", "-p", "1", "-t", "1")
    assert r.returncode == 0, r.stderr
    assert "half-written last line" in r.stderr and f"{before} already done" in r.stderr
    rows = read_rows(out)
    ids = [row["custom_id"] for row in rows]
    assert sorted(ids) == sorted(f"q{i}" for i in range(16)) and len(ids) == 16
    assert texts(rows) == texts(read_rows(ref_out))


def test_cli_batch_sigterm_flushes_and_resumes(tmp_path):
    inp, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    write_input(inp, 12, max_tokens=24)
    p = subprocess.Popen([*CLI, "batch", str(inp), "-o", str(out), "-p", "2", "--seed", "1", "-t", "1"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 240
    while time.time() < deadline and (not out.exists() or out.read_text().count("\n") < 2):
        time.sleep(0.05)
    p.send_signal(signal.SIGTERM)
    _, err = p.communicate(timeout=60)
    assert p.returncode == 143, err
    assert "terminated" in err and "rerun the same command to resume" in err and "Traceback" not in err
    data = out.read_text()
    assert data.endswith("\n") and all(json.loads(x) for x in data.splitlines())
    r = run("batch", str(inp), "-o", str(out), "-p", "2", "--seed", "1", "-t", "1")
    assert r.returncode == 0
    assert sorted(row["custom_id"] for row in read_rows(out)) == sorted(f"q{i}" for i in range(12))


def test_cli_batch_on_ray_locally(tmp_path):
    pytest.importorskip("ray")
    inp = tmp_path / "in.jsonl"
    write_input(inp, 6, max_tokens=8, extra=["oops"])
    local, on_ray = tmp_path / "local.jsonl", tmp_path / "ray.jsonl"
    r = run("batch", str(inp), "-o", str(local), "--seed", "2", "-p", "1")
    assert r.returncode == 0, r.stderr
    env = {"RAY_ADDRESS": ""}
    r = run("batch", str(inp), "-o", str(on_ray), "--seed", "2", "-p", "1", "--ray", "--ray-actors", "2",
            "-t", "1", "--shard-size", "2", env=env, timeout=600)
    assert r.returncode == 0, r.stderr
    rows = read_rows(on_ray)
    assert sorted(row["custom_id"] for row in rows) == sorted([f"q{i}" for i in range(6)] + ["line-7"])
    assert texts(rows) == texts(read_rows(local))


def test_cli_batch_sigint_keeps_complete_rows(tmp_path):
    inp, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    write_input(inp, 12, max_tokens=24)
    p = subprocess.Popen([*CLI, "batch", str(inp), "-o", str(out), "-p", "2", "-t", "1"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 240
    while time.time() < deadline and (not out.exists() or out.read_text().count("\n") < 2):
        time.sleep(0.05)
    p.send_signal(signal.SIGINT)
    _, err = p.communicate(timeout=60)
    assert p.returncode == 130, err
    assert "Traceback" not in err
    data = out.read_text()
    assert data.endswith("\n") and len([json.loads(x) for x in data.splitlines()]) >= 2


def test_cli_batch_huge_inputs(tmp_path):
    """100,000 input lines (all but three already done: the resume scan and the skip are
    fast), a 10 MB prompt and a 10 MB line of garbage: error rows, the rest runs."""
    inp, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    n = 100_000
    with open(inp, "w") as f:
        for i in range(n):
            f.write(f'{{"custom_id": "q{i}", "prompt": "Hello", "max_tokens": 2}}\n')
        f.write(json.dumps({"custom_id": "huge", "prompt": "word " * 2_000_000}) + "\n")
        f.write("x" * 10_000_000 + "\n")
    with open(out, "w") as f:
        for i in range(n - 1):
            f.write(json.dumps({"custom_id": f"q{i}", "response": None, "error": {"code": "x", "message": "x"}}) + "\n")
    t0 = time.time()
    r = run("batch", str(inp), "-o", str(out), "-p", "2", "--n-ctx", "256")
    assert r.returncode == 0, r.stderr
    rows = read_rows(out)
    assert len(rows) == n + 2 and len({row["custom_id"] for row in rows}) == n + 2
    by = {row["custom_id"]: row for row in rows[n - 1:]}
    assert by[f"q{n - 1}"]["response"]["status_code"] == 200
    assert by["huge"]["error"]["code"] == "context_length_exceeded"
    assert by[f"line-{n + 2}"]["error"]["code"] == "invalid_json"
    assert f"{n - 1} already done" in r.stderr
    assert time.time() - t0 < 120


def test_cli_batch_full_disk_and_bad_output(tmp_path):
    inp = tmp_path / "in.jsonl"
    write_input(inp, 2, max_tokens=4)
    if os.path.exists("/dev/full"):
        r = run("batch", str(inp), "-o", "/dev/full")
        assert r.returncode == 2 and "No space left on device" in r.stderr, r.stderr
        assert len(r.stderr.strip().splitlines()) == 1
        assert "Traceback" not in r.stderr
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        if not os.access(ro, os.W_OK):  # not root
            r = run("batch", str(inp), "-o", str(ro / "out.jsonl"))
            assert r.returncode == 2 and "cannot write" in r.stderr and "Traceback" not in r.stderr
    finally:
        ro.chmod(0o700)
