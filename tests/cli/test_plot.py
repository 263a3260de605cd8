"""``entropic-local plot``: a real trace from the real default model, drawn; and its errors."""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys

import pytest

from entropic_local.errors import UsageError
from entropic_local.plot import read_trace


CLI = [sys.executable, "-m", "entropic_local"]


PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def run(*args, timeout=240, env=None):
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})})


def assert_one_line_error(r, *needles, code):
    assert r.returncode == code, (r.returncode, r.stderr)
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, r.stderr
    assert "Traceback" not in r.stderr
    assert lines[0].startswith("entropic-local: error: ")
    for n in needles:
        assert n.lower() in lines[0].lower(), lines[0]
    return lines[0]


def png_size(path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC
    assert data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


@pytest.fixture(scope="module")
def entropix_trace(tmp_path_factory):
    """24 tokens of Entropix with attention from the default model, through the CLI."""
    path = tmp_path_factory.mktemp("trace") / "t.jsonl"
    r = run("generate", "--sampler", "entropix", "--attention", "last", "--trace", str(path),
            "-n", "24", "--seed", "3", "Once upon a time, in a small village by the sea,")
    assert r.returncode == 0, r.stderr
    return path


def test_trace_is_read_back(entropix_trace):
    steps = read_trace(entropix_trace)
    assert 8 <= len(steps) <= 24
    assert [s["index"] for s in steps] == list(range(len(steps)))
    assert all({"entropy", "varentropy", "action", "attn_entropy"} <= set(s) for s in steps)


def test_plot_png_default_output(entropix_trace):
    out = entropix_trace.with_suffix(".png")
    r = run("plot", str(entropix_trace))
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == str(out)
    w, h = png_size(out)
    assert 800 <= w <= 3000 and 500 <= h <= 3000, (w, h)
    assert out.stat().st_size > 20_000  # three panels and a scatter, not an empty canvas


def test_plot_formats_by_suffix_bits_thresholds(entropix_trace, tmp_path):
    svg, pdf, png = tmp_path / "t.svg", tmp_path / "t.PDF", tmp_path / "bits.png"
    assert run("plot", str(entropix_trace), "-o", str(svg)).returncode == 0
    assert b"<svg" in svg.read_bytes()[:400]
    assert run("plot", str(entropix_trace), "-o", str(pdf)).returncode == 0
    assert pdf.read_bytes().startswith(b"%PDF")
    r = run("plot", str(entropix_trace), "-o", str(png), "--bits", "--thresholds", "llama")
    assert r.returncode == 0, r.stderr
    assert png_size(png)[0] >= 800


def test_bad_json_line_named(tmp_path):
    f = tmp_path / "bad.jsonl"
    f.write_text('{"index": 0, "entropy": 1.0, "varentropy": 2.0}\n'
                 '{"index": 1, "entropy": 1.0, "varentropy": 2.0}\n'
                 '{"index": 2, "entropy": \n')
    line = assert_one_line_error(run("plot", str(f)), str(f), "line 3", "json", code=2)
    assert not (tmp_path / "bad.png").exists(), line
    with pytest.raises(UsageError, match="line 3"):
        read_trace(f)


def test_empty_trace(tmp_path):
    f = tmp_path / "empty.jsonl"
    f.write_text("")
    assert_one_line_error(run("plot", str(f)), str(f), "empty", code=2)
    f.write_text("\n\n")
    assert_one_line_error(run("plot", str(f)), "empty", code=2)


def test_missing_trace(tmp_path):
    f = tmp_path / "nope.jsonl"
    assert_one_line_error(run("plot", str(f)), str(f), "no such file", code=2)


def test_not_a_trace(tmp_path):
    f = tmp_path / "x.jsonl"
    f.write_text("[1, 2]\n")
    assert_one_line_error(run("plot", str(f)), "line 1", "object", code=2)
    f.write_text(json.dumps({"index": 0, "text": "hi"}) + "\n")
    assert_one_line_error(run("plot", str(f)), "line 1", "entropy", code=2)


def test_unsupported_suffix_and_thresholds(entropix_trace, tmp_path):
    assert_one_line_error(run("plot", str(entropix_trace), "-o", str(tmp_path / "t.jpg")),
                          ".jpg", ".png", code=2)
    assert_one_line_error(run("plot", str(entropix_trace), "--thresholds", "nonsense"),
                          "nonsense", code=2)


def test_without_matplotlib(entropix_trace, tmp_path):
    """An installation without the [plot] extra: one line saying what to install."""
    fake = tmp_path / "site" / "matplotlib"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("raise ImportError(\"No module named 'matplotlib'\")\n")
    path = os.pathsep.join([str(tmp_path / "site"), os.environ.get("PYTHONPATH", ""), os.getcwd()])
    r = run("plot", str(entropix_trace), "-o", str(tmp_path / "x.png"), env={"PYTHONPATH": path})
    assert_one_line_error(r, "matplotlib is not installed: pip install 'entropic-local[plot]'",
                          code=1)
    assert not (tmp_path / "x.png").exists()


