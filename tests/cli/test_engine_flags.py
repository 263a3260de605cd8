"""``entropic-local info`` and the engine flags in llama.cpp's words, as a user runs them."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

CLI = [sys.executable, "-m", "entropic_local"]


def run(*args, env=None, stdin=None):
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=300, input=stdin,
                          env={**os.environ, **(env or {})})


def test_info_json_reports_build_machine_and_choice():
    r = run("info", "--json")
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    hw = d["hardware"]
    assert "CPU" in hw["system_info"] and hw["devices"] and hw["devices"][0]["type"] == "CPU"
    assert isinstance(hw["amx"], bool) and hw["physical_cores"] >= 1
    assert set(d["configuration"]) == {"single", "batch"}
    for c in d["configuration"].values():
        assert c["reason"] and c["flash_attn"] == d["flash_attn_default"]
    assert d["numba_cache"]["dir"] and d["threads"]["chosen"] >= 1
    text = run("info")
    assert text.returncode == 0 and "extra buffer types" in text.stdout


def test_info_shows_a_simulated_broken_fast_path():
    env = {"ENTROPIC_LOCAL_PROBE_FAULT": "multirow", "ENTROPIC_LOCAL_PROBE": "fresh"}
    d = json.loads(run("info", "--json", env=env).stdout)
    assert d["probe"]["multirow"] is False and d["probe"]["onerow"] is True
    assert d["configuration"]["single"]["n_ubatch"] == 1
    assert d["configuration"]["batch"]["repack"] is False


def test_generate_takes_llama_cpp_engine_flags_and_records_them(tmp_path):
    trace = tmp_path / "t.jsonl"
    r = run("generate", "The capital of France is", "-n", "3", "--sampler", "greedy", "--json",
            "-fa", "on", "--no-repack", "-ub", "8", "-b", "16", "-ngl", "0", "--trace", str(trace))
    assert r.returncode == 0, r.stderr
    e = json.loads(r.stdout)["engine"]
    assert (e["flash_attn"], e["repack"], e["n_ubatch"], e["n_batch"], e["n_gpu_layers"]) == ("on", False, 8, 16, 0)
    assert json.loads(trace.read_text().splitlines()[0])["engine"] == e


def test_batch_records_engine_settings_in_every_row(tmp_path):
    src = tmp_path / "in.jsonl"
    src.write_text('{"custom_id": "a", "prompt": "Hello"}\n{"custom_id": "b", "prompt": "The sky is"}\n')
    out = tmp_path / "out.jsonl"
    r = run("batch", str(src), "-o", str(out), "-n", "2", "-p", "2", "-fa", "on", "-ub", "4")
    assert r.returncode == 0, r.stderr
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    engines = [row["response"]["body"]["entropic"]["engine"] for row in rows]
    assert len(engines) == 2
    assert all(e["flash_attn"] == "on" and e["n_ubatch"] == 4 and e["workload"] == "batch" for e in engines)


@pytest.mark.parametrize("args, needle", [
    (["-ngl", "some"], "number of layers"),
    (["-fa", "maybe"], "maybe"),
    (["-ub", "0"], "0"),
])
def test_bad_engine_flags_are_one_line(args, needle):
    r = run("generate", "Hi", "-n", "1", *args)
    assert r.returncode == 2
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "Traceback" not in r.stderr and needle in lines[0]
