"""The frontier as a picture: judge perplexity (log scale, lower is better) against
distinct-2 (higher is better), one point per sampler and temperature (colour: sampler,
marker: temperature), the Pareto front over all points drawn as a step line and each
temperature's front points ringed. Needs matplotlib (``pip install 'entropic-local[plot]'``)."""

from __future__ import annotations

import math
import os
from typing import Any, Mapping

from ..errors import EntropicError

__all__ = ["plot_frontier", "require_matplotlib", "MATPLOTLIB_MISSING"]

MATPLOTLIB_MISSING = "matplotlib is not installed: pip install 'entropic-local[plot]'"
_MARKERS = "ovs^DP*Xh<>"


def require_matplotlib():
    """pyplot on the Agg backend, or one clear error."""
    import logging

    try:
        import matplotlib
    except ImportError:
        raise EntropicError(MATPLOTLIB_MISSING) from None
    logging.getLogger("matplotlib").setLevel(logging.ERROR)
    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def plot_frontier(result: Mapping[str, Any], out: str | os.PathLike, *, title: str | None = None) -> str:
    """Draw ``result`` (``run_frontier``'s) to ``out`` (.png, .svg, .pdf); returns the path."""
    plt = require_matplotlib()
    rows = [r for r in result["rows"] if math.isfinite(r["judge_ppl"]) and math.isfinite(r["distinct_2"])]
    names = list(dict.fromkeys(r["sampler"] for r in rows))
    temps = list(dict.fromkeys(r["temperature"] for r in rows))
    cmap = plt.get_cmap("tab10" if len(names) <= 10 else "tab20")
    fig, ax = plt.subplots(figsize=(9, 6))
    try:
        for r in rows:
            c = cmap(names.index(r["sampler"]) % cmap.N)
            m = _MARKERS[temps.index(r["temperature"]) % len(_MARKERS)]
            ax.scatter(r["distinct_2"], r["judge_ppl"], color=c, marker=m, s=46, zorder=3)
            if r.get("front"):
                ax.scatter(r["distinct_2"], r["judge_ppl"], facecolors="none", edgecolors="black",
                           s=140, linewidths=0.8, zorder=4)
        front = sorted((r["distinct_2"], r["judge_ppl"]) for r in rows if r.get("front_all"))
        if front:
            ax.step([x for x, _ in front], [y for _, y in front], where="post", color="black",
                    linewidth=1.2, zorder=2, label="Pareto front (all points)")
        for n in names:
            ax.scatter([], [], color=cmap(names.index(n) % cmap.N), marker="o", label=n)
        for t in temps:
            ax.scatter([], [], facecolors="none", edgecolors="black", marker=_MARKERS[temps.index(t) % len(_MARKERS)], label=f"T = {t:g}")
        ax.scatter([], [], facecolors="none", edgecolors="black", s=140, label="on the front at its T")
        ax.set_yscale("log")
        ax.set_xlabel("distinct-2 across a prompt's samples (higher: more diverse)")
        ax.set_ylabel(f"judge perplexity, {result.get('judge', '')} (lower: more coherent)")
        ax.set_title(title or f"{result.get('model', '')}: generation-quality frontier")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7, loc="upper left", ncol=2)
        fig.tight_layout()
        fig.savefig(out, dpi=110)
    finally:
        plt.close(fig)
    return os.fspath(out)
