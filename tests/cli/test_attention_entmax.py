"""``eval --attention-entmax``: entmax attention through the command, with the sparsity it reports."""

from __future__ import annotations

import json
import os
import subprocess
import sys


def test_cli_eval_attention_entmax(tmp_path):
    f = tmp_path / "t.txt"
    f.write_text("The quick brown fox jumps over the lazy dog. " * 3)
    r = subprocess.run(
        [sys.executable, "-m", "entropic_local", "eval", str(f), "-n", "12", "-s", "softmax=temp=1.0",
         "--attention-entmax", "1.5", "--attention", "last", "--json"],
        capture_output=True, text=True, timeout=240, env=dict(os.environ),
    )
    assert r.returncode == 0, r.stderr
    a = json.loads(r.stdout)["attention_entmax"]
    assert a["config"] == "1.5" and a["layers"] == [29] and 0.0 < a["zero_fraction"] < 1.0
    r = subprocess.run(
        [sys.executable, "-m", "entropic_local", "eval", str(f), "-n", "4", "--attention-entmax", "9"],
        capture_output=True, text=True, timeout=240, env=dict(os.environ),
    )
    assert r.returncode == 2 and "attention_entmax" in r.stderr
