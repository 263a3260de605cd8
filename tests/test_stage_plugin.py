"""A stage from another package, declared in this one file, reaches every front end: spec
strings, ``with_params``, a command-line flag, chat's ``/set`` and batch lines.

The stage ``ban`` masks one token; it declares the flag ``ban_token`` (``--ban-token``,
off at -1). In this process it is registered with ``register_stage``; in the commands run
as subprocesses it comes in through the entry-point group ``entropic_local.stages`` of a
small distribution written into a temporary directory, as a third-party package would
install it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from entropic_local.samplers.candidates import Candidates
from entropic_local.samplers.chain import SamplerChain
from entropic_local.samplers.flags import Flag
from entropic_local.samplers.params import Param
from entropic_local.samplers.registry import STAGES, find_flag, flag_table, register_stage
from entropic_local.samplers.stage import Stage

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


class Ban(Stage):
    """Mask one token: ``z_token ← -inf``."""

    name = "ban"
    params = (Param("token", int, Param.REQUIRED, 0),)
    main = "token"
    order = 0.5   # after logit_bias, before the penalties
    flags = (Flag("ban_token", "token", int, "--ban-token", "Never choose this token id (-1: off).",
                  off=-1, off_below=True),)

    def __init__(self, token: int):
        self._set(token=token)

    def apply(self, cands: Candidates) -> None:
        live = cands.ids[: cands.n]
        cands.logits[: cands.n][live == self.token] = -np.inf
        cands.sorted = False


@pytest.fixture
def registered():
    register_stage(Ban)
    try:
        yield
    finally:
        del STAGES["ban"]


def test_spec_flags_and_order_in_process(registered):
    chain = SamplerChain.parse("ban=7,top_k=3")
    assert str(chain) == "ban=7,top_k=3" and SamplerChain.parse(str(chain)) == chain
    assert str(SamplerChain.parse("llama").with_params(ban_token=5)) == \
        "ban=5,top_k=40,top_p=0.95,min_p=0.05,temp=0.8"
    assert str(SamplerChain.parse("penalties:repeat=1.1,greedy").with_params(ban_token=2)) == \
        "ban=2,penalties:repeat=1.1,greedy"
    assert str(chain.with_params(ban_token=-1)) == "top_k=3"       # the off value removes it
    assert find_flag("ban-token").key == "ban_token" and "ban_token" in flag_table()
    cands = Candidates(8)
    raw = np.arange(8, dtype=np.float32)
    cands.reset(raw)
    SamplerChain.parse("ban=7,greedy").apply(cands)
    assert cands.selected_token == 6


def _plugin_env(tmp_path: Path) -> dict[str, str]:
    dist = tmp_path / "ban_stage-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: ban-stage\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(f"[entropic_local.stages]\nban = {Path(__file__).stem}:Ban\n")
    path = os.pathsep.join([str(tmp_path), str(HERE), str(ROOT)])
    return {**os.environ, "PYTHONPATH": path}


def _run(env, *args, stdin=None):
    return subprocess.run([sys.executable, "-m", "entropic_local", *args], input=stdin, capture_output=True,
                          text=True, timeout=300, env=env)


def test_entry_point_stage_on_the_command_line(tmp_path):
    env = _plugin_env(tmp_path)
    r = _run(env, "generate", "--help")
    assert r.returncode == 0, r.stderr
    assert "--ban-token" in r.stdout and "Never choose this token id" in r.stdout
    plain = _run(env, "generate", "The capital of France is", "-n", "4", "--sampler", "greedy", "--json")
    assert plain.returncode == 0, plain.stderr
    first = json.loads(plain.stdout)["token_ids"][0]
    r = _run(env, "generate", "The capital of France is", "-n", "4", "--sampler", "greedy",
             "--ban-token", str(first), "--json")
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    assert d["sampler"] == f"ban={first},greedy"
    assert first not in d["token_ids"]


def test_entry_point_stage_in_chat_set_and_batch_lines(tmp_path):
    env = _plugin_env(tmp_path)
    r = _run(env, "chat", "--sampler", "greedy", "-n", "4", stdin="/set ban_token 13\nHi\n/show params\n")
    assert r.returncode == 0, r.stderr
    assert "ban_token = 13 → sampler ban=13,greedy" in r.stderr
    assert "ban=13,greedy" in r.stdout
    inp, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    inp.write_text(json.dumps({"custom_id": "a", "prompt": "Hello", "ban_token": 11, "max_tokens": 3}) + "\n"
                   + json.dumps({"custom_id": "b", "prompt": "Hello", "ban_token": "x"}) + "\n")
    r = _run(env, "batch", str(inp), "-o", str(out), "--sampler", "greedy")
    assert r.returncode == 0, r.stderr
    rows = {json.loads(ln)["custom_id"]: json.loads(ln) for ln in out.read_text().splitlines()}
    assert rows["a"]["response"]["body"]["entropic"]["sampler"] == "ban=11,greedy"
    assert "ban_token must be an integer" in rows["b"]["error"]["message"]
