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
