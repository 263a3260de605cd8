"""A trace made by the Python API (aes: no actions) drawn."""

from __future__ import annotations

import struct

from entropic_local.plot import plot_trace, read_trace


PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def png_size(path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC
    assert data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def test_plot_api_aes_trace_without_actions(smollm2, tmp_path):
    """A trace with no action (aes records alpha) through the Python API."""
    g = smollm2.generate("The meaning of life is", max_tokens=16, sampler="aes", seed=5)
    trace = tmp_path / "aes.jsonl"
    g.trace(trace)
    steps = read_trace(trace)
    assert len(steps) == len(g.steps) and "alpha" in steps[0] and "action" not in steps[0]
    out = plot_trace(steps, tmp_path / "aes.png", bits=True, title="aes")
    assert png_size(out)[0] >= 800
