"""``entropic-local frontier`` as a user runs it: a tiny real run, and bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

TEXT = Path(__file__).resolve().parents[2] / "benchmarks" / "texts" / "heldout.txt"
CLI = [sys.executable, "-m", "entropic_local"]


def run(*args, timeout=600):
    return subprocess.run([*CLI, "frontier", *args], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ})


def one_line_error(r, needle):
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert r.returncode == 2, (r.returncode, r.stderr)
    assert len(lines) == 1 and lines[0].startswith("entropic-local: error: "), r.stderr
    assert needle in lines[0], lines[0]


def test_frontier_tiny_run_writes_table_samples_and_plot(tmp_path):
    samples, plot = tmp_path / "s.jsonl", tmp_path / "f.png"
    r = run(str(TEXT), "--prompts", "2", "-n", "6", "--temps", "1,2", "--seeds", "2", "-q",
            "-s", "min-p=min_p=0.1", "-s", "aes=aes", "--samples", str(samples), "--plot", str(plot), "--json")
    assert r.returncode == 0, r.stderr
    assert r.stderr == ""
    out = json.loads(r.stdout)
    assert out["model"] == "smollm2-135m" and out["judge"] == "gemma3-270m"
    assert [(row["temperature"], row["sampler"]) for row in out["rows"]] == [
        (1.0, "min-p"), (1.0, "aes"), (2.0, "min-p"), (2.0, "aes")]
    assert any(row["front"] for row in out["rows"] if row["temperature"] == 1.0)
    lines = samples.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 2 * 2 * 2 * 2
    first = json.loads(lines[0])
    assert first["prompt"].startswith("The village school") and first["tokens"] == len(first["token_ids"])
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_frontier_bad_input_is_one_line():
    one_line_error(run(str(TEXT), "--temps", "1,x"), "--temps")
    one_line_error(run(str(TEXT), "--temps", "0"), "above 0")
    one_line_error(run(str(TEXT), "--sweep", "-s", "a=aes"), "not both")
    one_line_error(run("/nonexistent/text.txt"), "cannot read")
    one_line_error(run(str(TEXT), "-s", "aes"), "NAME=SPEC")
    one_line_error(run(str(TEXT), "--prompt-words", "500"), "no paragraph")
