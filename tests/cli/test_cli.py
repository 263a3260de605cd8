"""The entropic-local command as a user runs it: real subprocesses, real models."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest


CLI = [sys.executable, "-m", "entropic_local"]


def run(*args, stdin=None, timeout=240, env=None):
    return subprocess.run(
        [*CLI, *args], input=stdin, capture_output=True, text=True, timeout=timeout,
        env={**os.environ, **(env or {})},
    )


def assert_one_line_error(r, *needles, code=None):
    assert r.returncode != 0, r.stdout
    if code is not None:
        assert r.returncode == code, (r.returncode, r.stderr)
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, r.stderr
    assert "Traceback" not in r.stderr
    assert lines[0].startswith("entropic-local: error: ")
    for n in needles:
        assert n.lower() in lines[0].lower(), lines[0]


def test_generate_streams_text_default_model():
    r = run("generate", "The capital of France is", "-n", "12", "--seed", "1")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip()
    assert r.stderr == ""  # llama.cpp's log is silent without --verbose


def test_generate_json_and_seed_reproducible():
    args = ("generate", "Once upon a time", "-n", "10", "--seed", "42", "--json")
    a = run(*args)
    b = run(*args)
    assert a.returncode == 0, a.stderr
    da, db = json.loads(a.stdout), json.loads(b.stdout)
    assert da["token_ids"] == db["token_ids"]
    assert da["seed"] == 42
    assert da["sampler"] == "top_k=40,top_p=0.95,min_p=0.05,temp=0.8"
    assert set(da["timings"]) >= {"prompt_tps", "gen_tps", "prompt_tokens", "gen_tokens"}
    assert len(da["steps"]) == len(da["token_ids"])
    s = da["steps"][0]
    assert set(s) >= {"token_id", "piece", "logprob", "entropy", "varentropy", "n_candidates"}
    assert "".join(x["text"] for x in da["steps"]) == da["text"]


def test_generate_flags_override_sampler():
    r = run("generate", "Hello", "-n", "3", "--sampler", "greedy", "--temp", "0.5", "--top-k", "7", "--json")
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    assert "top_k=7" in d["sampler"] and "temp=0.5" in d["sampler"]
    assert all(s["n_candidates"] <= 7 for s in d["steps"])


def test_generate_reads_stdin_and_stops(gemma_path):
    r = run("generate", "-m", "gemma3-270m", "-", "-n", "40", "--sampler", "greedy", "--json",
            stdin="Count: one, two, three,")
    assert r.returncode == 0, r.stderr
    text = json.loads(r.stdout)["text"]
    stop = text[3:7]
    r2 = run("generate", "-m", str(gemma_path), "-", "-n", "40", "--sampler", "greedy", "--stop", stop,
             stdin="Count: one, two, three,")
    assert r2.returncode == 0, r2.stderr
    assert r2.stdout == text[: text.find(stop)] + "\n"


def test_models_lists_registry():
    for cols in (80, 60, 200):
        r = run("models", env={"COLUMNS": str(cols)})
        assert r.returncode == 0, r.stderr
        lines = r.stdout.splitlines()
        assert max(len(ln) for ln in lines) <= cols, r.stdout
        head = lines[0].split()
        assert head[:3] == ["NAME", "DEFAULT", "ON"]
        rows = {ln.split()[0]: ln.split()[1:] for ln in lines[1:] if ln.split()}
        assert rows["smollm2-135m"][0] == "yes"  # the default has its own column
        assert "gemma3-270m" in rows and rows["gemma3-270m"][0] != "yes"
    full = json.loads(run("models", "--json").stdout)
    local = next(r for r in full if r["name"] == "smollm2-135m")["path"]
    assert local.endswith(".gguf") and local.rsplit("/", 1)[1] in r.stdout  # the file name kept
    r = run("models", "--json")
    rows = json.loads(r.stdout)
    assert any(row["name"] == "smollm2-135m" and row.get("path") for row in rows)


def test_help_mentions_commands_and_flags():
    r = run("--help")
    assert r.returncode == 0 and "generate" in r.stdout and "models" in r.stdout and "bench" in r.stdout
    r = run("generate", "--help")
    for flag in ("--max-tokens", "--sampler", "--temp", "--top-k", "--top-p", "--min-p", "--repeat-penalty",
                 "--seed", "--n-ctx", "--threads", "--n-gpu-layers", "--json", "--verbose", "--stop"):
        assert flag in r.stdout


def test_missing_model_path(tmp_path):
    assert_one_line_error(run("generate", "-m", str(tmp_path / "nope.gguf"), "hi"), "no such file", code=4)


def test_model_is_a_directory(tmp_path):
    assert_one_line_error(run("generate", "-m", str(tmp_path), "hi"), "directory")


def test_model_not_gguf(tmp_path):
    f = tmp_path / "notes.gguf"
    f.write_text("just some text, not a model\n" * 10)
    assert_one_line_error(run("generate", "-m", str(f), "hi"), "not a gguf", code=5)


def test_model_truncated(tmp_path, smollm2_path):
    f = tmp_path / "truncated.gguf"
    with open(smollm2_path, "rb") as src:
        f.write_bytes(src.read(2_000_000))
    assert_one_line_error(run("generate", "-m", str(f), "hi"), "truncated", code=5)


def test_unknown_model_name():
    assert_one_line_error(run("generate", "-m", "smollm2-135", "hi"), "unknown model", "smollm2-135m", code=4)


def test_empty_prompt():
    assert_one_line_error(run("generate", ""), "empty prompt", code=2)
    assert_one_line_error(run("generate", "-", stdin=""), "empty prompt", code=2)


def test_prompt_longer_than_context():
    assert_one_line_error(run("generate", "--n-ctx", "256", "word " * 400), "context", code=6)


@pytest.mark.parametrize("spec,needle", [("top_k=banana", "top_k"), ("topk=3", "unknown"), ("top_p=1.5", "top_p"), ("", "empty")])
def test_bad_sampler_spec(spec, needle):
    assert_one_line_error(run("generate", "--sampler", spec, "hi"), needle, code=3)


def test_unknown_option_is_one_line():
    assert_one_line_error(run("generate", "--frobnicate", "hi"), "frobnicate", code=2)


def test_verbose_adds_traceback(tmp_path):
    f = tmp_path / "bad.gguf"
    f.write_bytes(b"GGUF" + b"\x00" * 10)
    r = run("generate", "-m", str(f), "hi", "--verbose")
    assert r.returncode == 5
    assert "Traceback" in r.stderr


def test_trace_jsonl(tmp_path):
    trace = tmp_path / "trace.jsonl"
    r = run("generate", "Hello", "-n", "6", "--sampler", "entropix", "--attention", "last", "--seed", "2",
            "--trace", str(trace), "--json")
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    rows = [json.loads(line) for line in trace.read_text().splitlines()]
    assert rows[0].pop("engine") == d["engine"]  # the settings that made it, on the first line
    assert len(rows) == len(d["steps"]) and rows == d["steps"]
    for row in rows:
        assert {"entropy", "varentropy", "logprob", "action", "temperature", "attn_entropy"} <= set(row)


def test_trace_to_missing_directory_fails_before_work(tmp_path):
    assert_one_line_error(run("generate", "Hello", "--trace", str(tmp_path / "no" / "t.jsonl")),
                          "no such directory", code=2)


def test_bench_rejects_bad_preset_before_loading():
    assert_one_line_error(run("bench", "--presets", "aes,nonsense"), "nonsense", code=3)


def test_cli_temp_sets_the_adaptive_stage():
    r = run("generate", "Hello", "-n", "3", "--seed", "1", "--sampler", "aes", "--temp", "0.5", "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["sampler"] == "aes:t=0.5"
    r = run("generate", "Hello", "-n", "3", "--sampler", "thermostat", "--temp", "0.7")
    assert r.returncode == 3, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "does not apply" in lines[0] and "Traceback" not in r.stderr


def test_stdin_prompt_drops_one_final_newline():
    # `echo PROMPT |` adds a newline that is not part of the prompt; only one is dropped
    for stdin, prompt in (("The capital of France is\n", "The capital of France is"),
                          ("The capital of France is\r\n", "The capital of France is"),
                          ("Two lines\n\n", "Two lines\n"),
                          ("No newline", "No newline")):
        r = run("generate", "-", "-n", "2", "--json", "--seed", "1", "-t", "1", stdin=stdin)
        assert r.returncode == 0, r.stderr
        assert json.loads(r.stdout)["prompt"] == prompt


def test_n_ctx_range_rounding_and_training_context():
    assert "0 for the model's training context" in " ".join(run("generate", "--help").stdout.split())
    for bad in ("5", "-1", "abc"):
        assert_one_line_error(run("generate", "Hi", "--n-ctx", bad), "--n-ctx", code=2)
    r = run("generate", "Hi", "-n", "1", "--n-ctx", "16", "-t", "1")
    assert r.returncode == 0, r.stderr
    assert r.stderr == ("entropic-local: warning: the context was rounded up from 16 to 256 tokens "
                        "(llama.cpp pads it to a multiple of 256)\n")
    r = run("generate", "Hi", "-n", "1", "--n-ctx", "16384", "-t", "1")  # SmolLM2 knows 8192
    assert r.returncode == 0, r.stderr
    lines = r.stderr.splitlines()
    assert len(lines) == 1 and "longer than the model was trained on (8192)" in lines[0], r.stderr
    r = run("generate", "Hi", "-n", "1", "--n-ctx", "512", "-t", "1")  # a multiple of 256: silent
    assert r.returncode == 0 and r.stderr == "", r.stderr


def test_one_model_label_everywhere(tmp_path, smollm2_path):
    """The default model, named or not, is `smollm2-135m` in every output; a path is its file name."""
    text = tmp_path / "t.txt"
    text.write_text("The capital of France is Paris. The capital of Italy is Rome.")
    heads = []
    for args in ([], ["-m", "smollm2-135m"]):
        r = run("eval", str(text), "-n", "4", "-s", "softmax=temp=1.0", "-t", "1", *args)
        assert r.returncode == 0, r.stderr
        heads.append(r.stdout.splitlines()[0])
    assert heads[0] == heads[1] and heads[0].startswith("Model `smollm2-135m`")
    for args, label in (([], "smollm2-135m"), (["-m", str(smollm2_path)], smollm2_path.name)):
        r = run("generate", "Hi", "-n", "1", "--json", "-t", "1", *args)
        assert r.returncode == 0, r.stderr
        assert json.loads(r.stdout)["model"] == label


@pytest.mark.parametrize("model", ["smollm2-135m", "gemma3-270m"])
def test_attention_leaves_the_text_for_a_seed_unchanged(model):
    # the hook needs flash attention off, which is the default: the same logits either way
    args = ["generate", "Once upon a time", "-m", model, "-n", "24", "--seed", "42", "--json", "-t", "1"]
    plain, hooked = (run(*args), run(*args, "--attention", "last"))
    assert plain.returncode == 0 and hooked.returncode == 0, (plain.stderr, hooked.stderr)
    a, b = json.loads(plain.stdout), json.loads(hooked.stdout)
    assert a["engine"]["flash_attn"] == b["engine"]["flash_attn"] == "off"
    assert a["token_ids"] == b["token_ids"]
    assert [s["entropy"] for s in a["steps"]] == [s["entropy"] for s in b["steps"]]
    assert "attn_entropy" in b["steps"][0] and "attn_entropy" not in a["steps"][0]


def test_verbose_names_the_engine_settings():
    r = run("generate", "Hi", "-n", "2", "-t", "1", "-v")
    assert r.returncode == 0, r.stderr
    line = [ln for ln in r.stderr.splitlines() if ln.startswith("entropic-local: engine: ")]
    assert len(line) == 1 and "flash attention off" in line[0] and "1 thread" in line[0], line
