"""``entropic-local batch`` as a user runs it: rows and error rows in the OpenAI shapes, resume after
SIGKILL, SIGTERM and SIGINT, huge inputs, a full disk, Ray."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from entropic_local.batch.jobs import derive_seed


CLI = [sys.executable, "-m", "entropic_local"]


PROMPTS = ["The capital of France is", "Once upon a time", "1, 2, 3, 4,", "Water boils at",
           "The best way to learn Python is", "My favourite colour is", "In 1492,",
           "def fibonacci(n):"]


def run(*args, timeout=300, env=None):
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})})


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
    r = run("batch", str(inp), "-o", str(out), "-p", "2", "--n-ctx", "256")
    assert r.returncode == 0, r.stderr
    rows = read_rows(out)
    assert len(rows) == n + 2 and len({row["custom_id"] for row in rows}) == n + 2
    by = {row["custom_id"]: row for row in rows[n - 1:]}
    assert by[f"q{n - 1}"]["response"]["status_code"] == 200
    assert by["huge"]["error"]["code"] == "context_length_exceeded"
    assert by[f"line-{n + 2}"]["error"]["code"] == "invalid_json"
    assert f"{n - 1} already done" in r.stderr


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
