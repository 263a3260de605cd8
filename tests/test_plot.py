"""``entropic-local plot``: a real trace from the real default model, drawn; and its errors."""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys

import pytest

from entropic_local.errors import UsageError
from entropic_local.plot import plot_trace, read_trace

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


def test_plot_api_aes_trace_without_actions(smollm2, tmp_path):
    """A trace with no action (aes records alpha) through the Python API."""
    g = smollm2.generate("The meaning of life is", max_tokens=16, sampler="aes", seed=5)
    trace = tmp_path / "aes.jsonl"
    g.trace(trace)
    steps = read_trace(trace)
    assert len(steps) == len(g.steps) and "alpha" in steps[0] and "action" not in steps[0]
    out = plot_trace(steps, tmp_path / "aes.png", bits=True, title="aes")
    assert png_size(out)[0] >= 800


def test_read_trace_keeps_null_metrics(tmp_path):
    f = tmp_path / "t.jsonl"
    f.write_text('{"index": 0, "entropy": 1.0, "varentropy": 2.0, "attn_entropy": null}\n\n'
                 '{"index": 1, "entropy": 0.5, "varentropy": 1.0, "attn_entropy": 0.7}\n')
    steps = read_trace(f)
    assert len(steps) == 2 and steps[0]["attn_entropy"] is None
    plot_trace(steps, tmp_path / "t.png")  # a partly missing attention series still draws
    assert png_size(tmp_path / "t.png")[0] >= 800


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


def test_plot_details_shares_legends_and_threshold_labels():
    """Shares never read 0% for an action that happened; each legend entry shows its drawn
    line's own style; threshold labels are horizontal, readable and inside the figure."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from entropic_local.plot import draw_trace, load_thresholds, share_text

    assert [share_text(c, 256) for c in (0, 1, 2, 3, 128, 255, 256)] == \
        ["0%", "<1%", "<1%", "1%", "50%", ">99%", "100%"]
    steps = [{"index": i, "entropy": 0.5 + (i % 7) / 3, "varentropy": 0.3 + (i % 5) / 2,
              "action": "resample" if i == 100 else "argmax", "temperature": 0.7}
             for i in range(256)]
    fig = draw_trace(steps, thresholds=load_thresholds("llama"))
    try:
        texts = [t.get_text() for t in fig.legends[0].get_texts()]
        assert "resample (<1%)" in texts and "argmax (>99%)" in texts
        series = fig.axes[0]
        legend = series.get_legend()
        lines = [ln for ax in fig.axes for ln in ax.get_lines() if ln.get_label().startswith("logit ")]
        by_label = {ln.get_label().split(" (")[0]: ln for ln in lines}
        for handle, text in zip(legend.legend_handles, legend.get_texts()):
            ln = by_label[text.get_text()]
            assert (handle.get_linestyle(), handle.get_color(), handle.get_linewidth()) == \
                (ln.get_linestyle(), ln.get_color(), ln.get_linewidth())
        fig.canvas.draw()
        box = fig.bbox
        scatter = next(ax for ax in fig.axes if ax.get_title(loc="left").startswith("quadrants"))
        labels = [t for t in scatter.texts if t.get_text().startswith(("low ", "medium ", "high "))]
        assert len(labels) == 5
        for t in labels:
            assert t.get_rotation() == 0 and t.get_fontsize() >= 8
            ext = t.get_window_extent()
            assert box.x0 <= ext.x0 and ext.x1 <= box.x1 and box.y0 <= ext.y0 and ext.y1 <= box.y1, t.get_text()
    finally:
        plt.close(fig)
