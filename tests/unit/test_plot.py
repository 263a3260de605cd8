"""Reading a trace back."""

from __future__ import annotations

import struct

from entropic_local.plot import plot_trace, read_trace


PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def png_size(path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC
    assert data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def test_read_trace_keeps_null_metrics(tmp_path):
    f = tmp_path / "t.jsonl"
    f.write_text('{"index": 0, "entropy": 1.0, "varentropy": 2.0, "attn_entropy": null}\n\n'
                 '{"index": 1, "entropy": 0.5, "varentropy": 1.0, "attn_entropy": 0.7}\n')
    steps = read_trace(f)
    assert len(steps) == 2 and steps[0]["attn_entropy"] is None
    plot_trace(steps, tmp_path / "t.png")  # a partly missing attention series still draws
    assert png_size(tmp_path / "t.png")[0] >= 800
