"""No crash on this machine: prompts of 1 to 1,000 tokens, batches of 1 to 16 sequences, and a
simulated broken fast path (``ENTROPIC_LOCAL_PROBE_FAULT``) that the probe must find and the
engine must avoid. A crash in llama.cpp kills the process it happens in, so everything that
could crash runs in a child process and the test reads its exit status."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap

import pytest

import entropic_local as el

PROMPT_LENGTHS = [1, 2, 17, 255, 256, 257, 512, 513, 1000]  # across the 256 and 512 batch edges
PARALLEL = [1, 2, 3, 8, 16]

# A script that loads a model, runs prompts of many lengths and batches of many widths, and
# prints the engine settings it ran with: the child of every test below.
FUZZ = textwrap.dedent("""
    import json, sys
    import entropic_local as el
    workload, model = sys.argv[1], sys.argv[2]
    lengths = [int(x) for x in sys.argv[3].split(",")]
    parallel = [int(x) for x in sys.argv[4].split(",")]
    m = el.load(model, n_ctx=2048, seed=0, workload=workload)
    base = m.tokenize("The quick brown fox jumps over the lazy dog. " * 120, add_special=False)
    for n in lengths:
        m.reset()  # the whole prompt in one decode, not the part past a cached prefix
        m.generate(base[:n], max_tokens=2, sampler="greedy")
    for p in parallel:
        prompts = [base[: 1 + (37 * i) % 200] for i in range(p + 1)]
        m.generate_batch(prompts, max_tokens=2, sampler="greedy", parallel=p)
    print(json.dumps({"single": m.engine.settings(),
                      "batch": m._batch.settings() if m._batch is not None else None}))
""")


def run_fuzz(workload="single", model="smollm2-135m", lengths=PROMPT_LENGTHS, parallel=PARALLEL, env=None):
    r = subprocess.run(
        [sys.executable, "-c", FUZZ, workload, model, ",".join(map(str, lengths)), ",".join(map(str, parallel))],
        capture_output=True, text=True, timeout=600, env={**os.environ, **(env or {})},
    )
    return r


def settings_of(r):
    assert r.returncode == 0, (r.returncode, r.stderr[-2000:])
    return json.loads(r.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("model, lengths, parallel", [
    ("smollm2-135m", PROMPT_LENGTHS, PARALLEL),
    ("gemma3-270m", [1, 2, 257, 1000], [1, 16]),
])
def test_prompt_lengths_and_batch_widths_do_not_crash(model, lengths, parallel):
    """The configuration chosen on this machine survives prompts of 1..1,000 tokens (across
    the 256/512 batch edges) and batches of 1..16 sequences, for one sequence and for a batch."""
    got = settings_of(run_fuzz("single", model, lengths, parallel))
    assert got["single"]["workload"] == "single"
    got = settings_of(run_fuzz("batch", model, lengths[-1:], parallel))
    assert got["single"]["workload"] == "batch"


@pytest.mark.parametrize("workload", ["single", "batch"])
def test_fast_path_crashing_on_several_rows_is_found_and_avoided(workload):
    """A fast path that dies on products of several rows (ggml's AMX kernels on some Xeons,
    simulated): the probe finds it, one sequence keeps it with one row per product, a batch
    turns it off, and the whole fuzz runs without a crash."""
    env = {"ENTROPIC_LOCAL_PROBE_FAULT": "multirow", "ENTROPIC_LOCAL_PROBE": "fresh"}
    got = settings_of(run_fuzz(workload, lengths=[1, 2, 300], parallel=[1, 16], env=env))
    first = got["single"]
    assert "several rows" in first["reason"]
    if workload == "single":
        assert first["repack"] is True and first["n_ubatch"] == 1
        assert got["batch"]["n_ubatch"] == 1  # a batch on the same weights keeps one row too
    else:
        assert first["repack"] is False and first["n_ubatch"] > 1


def test_fast_path_crashing_everywhere_is_turned_off():
    env = {"ENTROPIC_LOCAL_PROBE_FAULT": "segv", "ENTROPIC_LOCAL_PROBE": "fresh"}
    got = settings_of(run_fuzz("single", lengths=[1, 300], parallel=[4], env=env))
    assert got["single"]["repack"] is False
    assert got["single"]["n_ubatch"] > 1  # off: the multi-row products are safe again


def test_the_simulated_fault_is_real_without_the_probe():
    """The same fault with the probe skipped and the fast path kept: the process dies by
    SIGSEGV, as on the affected machines (so the tests above would catch a wrong choice)."""
    env = {"ENTROPIC_LOCAL_PROBE_FAULT": "multirow", "ENTROPIC_LOCAL_PROBE": "off"}
    r = run_fuzz("single", lengths=[300], parallel=[1], env=env)
    assert r.returncode == -signal.SIGSEGV


def test_forced_settings_are_kept(smollm2_path):
    """--no-repack and -ub as the user gives them; the engine records them."""
    m = el.load(smollm2_path, n_ctx=512, repack=False, n_ubatch=32, n_batch=64, flash_attn="on")
    try:
        s = m.engine.settings()
        assert (s["repack"], s["n_ubatch"], s["n_batch"], s["flash_attn"]) == (False, 32, 64, "on")
        g = m.generate("The capital of France is", max_tokens=3, sampler="greedy")
        assert g.to_dict()["engine"]["flash_attn"] == "on"
    finally:
        m.close()


def test_default_flash_attention_is_off_and_recorded(smollm2):
    g = smollm2.generate("The capital of France is", max_tokens=3, sampler="greedy")
    d = g.to_dict()
    assert d["engine"]["flash_attn"] == el.engine.FLASH_ATTN_DEFAULT == "off"
    assert json.loads(g.trace().splitlines()[0])["engine"] == d["engine"]


def test_llama_cpp_python_gets_the_same_configuration(smollm2):
    from entropic_local.engine import llama_cpp_llama

    cfg = smollm2.engine.config
    llm = llama_cpp_llama(smollm2.path, config=cfg, n_ctx=512, verbose=False)
    assert llm.model_params.use_extra_bufts == cfg.use_extra_bufts
    assert llm.context_params.n_ubatch == min(cfg.n_ubatch, llm.context_params.n_batch)
    out = llm.create_completion("The capital of France is", max_tokens=4, temperature=0.0)
    assert out["choices"][0]["text"]
