"""Drawing a per-step trace written by ``generate --trace`` (``entropic-local plot``).

A trace is JSON Lines, one object per generated token (``Step.to_dict``): ``index``,
``entropy`` (nats), ``varentropy`` (nats²), ``logprob`` and, when they were recorded, the
attention metrics (``attn_entropy``, ``attn_varentropy``, ...) and what an adaptive sampler
decided (``action``, ``quadrant``, ``temperature``, ``alpha``...). The figure has

* logit entropy and varentropy (right axis) over the token index;
* attention entropy and varentropy, when the trace has them;
* the sampler's effective temperature / α, when the trace has them;
* a quadrant scatter: entropy against varentropy, one point per step.

Steps are coloured by their ``action`` (Entropix) wherever the trace has one: background
bands and markers on the time series, point colours in the scatter, one legend entry per
action with its share. The Entropix thresholds are not in a trace; ``--thresholds`` draws
them on the scatter (a family name such as ``llama`` / ``gemma3``, ``generic``,
``upstream``, or a file written by ``Thresholds.save``).

matplotlib is an optional dependency (``pip install 'entropic-local[plot]'``); it is only
imported here, with the Agg backend (no display needed). Values stay in nats in the data;
``bits=True`` divides entropies by ln 2 and varentropies by (ln 2)² for display.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any


from .errors import EntropicError, UsageError

__all__ = ["read_trace", "plot_trace", "draw_trace", "share_text", "load_thresholds", "output_path",
           "FORMATS", "MATPLOTLIB_MISSING"]

FORMATS = (".png", ".svg", ".pdf")
MATPLOTLIB_MISSING = "matplotlib is not installed: pip install 'entropic-local[plot]'"
LN2 = math.log(2.0)

# Entropix's actions in a fixed order and colour; any other action gets the next colour
# of the tab10 cycle.
ACTION_COLORS = {
    "argmax": "#1f77b4",    # blue
    "adaptive": "#ff7f0e",  # orange
    "explore": "#2ca02c",   # green
    "resample": "#d62728",  # red
    "clarify": "#9467bd",   # purple
}
_EXTRA_COLORS = ("#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf")

_REQUIRED = ("entropy", "varentropy")


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def read_trace(path: str | os.PathLike) -> list[dict[str, Any]]:
    """The steps of a trace file, in order. Raises ``UsageError`` naming the file (and the
    line) for a missing, unreadable, empty or malformed trace. Blank lines are skipped; a
    metric recorded as null (unavailable) is kept as None."""
    name = os.fspath(path)
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except FileNotFoundError:
        raise UsageError(f"cannot read trace {name}: no such file") from None
    except IsADirectoryError:
        raise UsageError(f"cannot read trace {name}: it is a directory") from None
    except UnicodeDecodeError as e:
        raise UsageError(f"cannot read trace {name}: not UTF-8 text (byte {e.start})") from None
    except OSError as e:
        raise UsageError(f"cannot read trace {name}: {e.strerror or e}") from None
    steps: list[dict[str, Any]] = []
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise UsageError(f"{name} line {n}: bad JSON ({e.msg} at column {e.colno})",
                             hint="a trace has one JSON object per line, "
                                  "as written by 'generate --trace'") from None
        if not isinstance(row, dict):
            raise UsageError(f"{name} line {n}: expected a JSON object, got "
                             f"{type(row).__name__}")
        for key in _REQUIRED:
            if key not in row:
                raise UsageError(f"{name} line {n}: no '{key}' (not a trace written by "
                                 "'generate --trace'?)")
            if row[key] is not None and not _number(row[key]):
                raise UsageError(f"{name} line {n}: '{key}' is not a number: {row[key]!r}")
        if "index" in row and not (_number(row["index"]) or row["index"] is None):
            raise UsageError(f"{name} line {n}: 'index' is not a number: {row['index']!r}")
        steps.append(row)
    if not steps:
        raise UsageError(f"trace {name} is empty (no steps)",
                         hint="write one with 'entropic-local generate --trace FILE ...'")
    return steps


def share_text(count: int, total: int) -> str:
    """``count`` of ``total`` as a whole percentage that never reads 0% for something that
    happened or 100% for something that did not always happen (``<1%``, ``>99%``)."""
    pct = 100.0 * count / total if total else 0.0
    if 0 < pct < 1:
        return "<1%"
    if 99 < pct < 100:
        return ">99%"
    return f"{pct:.0f}%"


def load_thresholds(spec: str):
    """Entropix thresholds from a family name (``llama``, ``gemma3``...), ``generic``,
    ``upstream`` or a thresholds JSON file."""
    from .samplers.entropix_thresholds import FAMILY_THRESHOLDS, GENERIC, UPSTREAM, Thresholds

    named = {"generic": GENERIC, "upstream": UPSTREAM, **FAMILY_THRESHOLDS}
    if spec in named:
        return named[spec]
    if not os.path.exists(spec):
        raise UsageError(f"--thresholds: '{spec}' is neither a file nor one of "
                         f"{', '.join(sorted(named))}")
    return Thresholds.load(spec)


def _import_pyplot():
    import logging

    try:
        import matplotlib
    except ImportError:
        raise EntropicError(MATPLOTLIB_MISSING) from None
    # no "building the font cache" notices on stderr: one line per error, nothing else
    logging.getLogger("matplotlib").setLevel(logging.ERROR)
    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _series(steps: list[dict[str, Any]], key: str, scale: float = 1.0) -> list[float]:
    out = []
    for s in steps:
        v = s.get(key)
        out.append(float(v) / scale if _number(v) else math.nan)
    return out


def _has(steps: list[dict[str, Any]], key: str) -> bool:
    return any(_number(s.get(key)) for s in steps)


def _runs(actions: list[str | None], xs: list[float]) -> list[tuple[str, float, float]]:
    """Consecutive steps with the same action, as (action, x_start, x_end) bands."""
    out: list[tuple[str, float, float]] = []
    i = 0
    while i < len(actions):
        j = i
        while j + 1 < len(actions) and actions[j + 1] == actions[i]:
            j += 1
        if actions[i] is not None:
            out.append((actions[i], xs[i] - 0.5, xs[j] + 0.5))
        i = j + 1
    return out


def output_path(trace: str | os.PathLike, output: str | os.PathLike | None) -> Path:
    """``output``, or the trace's path with a ``.png`` suffix; the suffix picks the format."""
    out = Path(output) if output is not None else Path(trace).with_suffix(".png")
    if out.suffix.lower() not in FORMATS:
        raise UsageError(f"cannot write {out}: unsupported format '{out.suffix or '(none)'}'",
                         hint="use a .png, .svg or .pdf file name")
    return out


def plot_trace(steps: list[dict[str, Any]], out: str | os.PathLike, *, bits: bool = False,
               thresholds: Any = None, title: str | None = None) -> Path:
    """Draw ``steps`` (``read_trace``) to ``out`` (.png, .svg or .pdf). ``bits``: show
    entropies in bits (display only); ``thresholds``: Entropix ``Thresholds`` to draw on the
    quadrant scatter. Returns the path written."""
    out = Path(out)
    fmt = out.suffix.lower()
    if fmt not in FORMATS:
        raise UsageError(f"cannot write {out}: unsupported format '{out.suffix or '(none)'}'",
                         hint="use a .png, .svg or .pdf file name")
    plt = _import_pyplot()
    fig = draw_trace(steps, bits=bits, thresholds=thresholds, title=title)
    try:
        fig.savefig(out, format=fmt[1:])
    except OSError as e:
        raise UsageError(f"cannot write {out}: {e.strerror or e}") from None
    finally:
        plt.close(fig)
    return out


def draw_trace(steps: list[dict[str, Any]], *, bits: bool = False, thresholds: Any = None,
               title: str | None = None):
    """The matplotlib figure ``plot_trace`` saves (the caller closes it)."""
    plt = _import_pyplot()
    from matplotlib.patches import Patch

    h_scale, v_scale = (LN2, LN2 ** 2) if bits else (1.0, 1.0)
    h_unit, v_unit = ("bits", "bits²") if bits else ("nats", "nats²")
    xs = [float(s["index"]) if _number(s.get("index")) else float(i) for i, s in enumerate(steps)]
    ent = _series(steps, "entropy", h_scale)
    vent = _series(steps, "varentropy", v_scale)
    actions = [s.get("action") if isinstance(s.get("action"), str) else None for s in steps]
    has_actions = any(a is not None for a in actions)
    has_attn = _has(steps, "attn_entropy") or _has(steps, "attn_varentropy")
    params = [k for k in ("temperature", "alpha") if _has(steps, k)]

    colors: dict[str, str] = {}
    extra = iter(_EXTRA_COLORS * 10)
    for a in list(ACTION_COLORS) + sorted({a for a in actions if a is not None}):
        if a in actions and a not in colors:
            colors[a] = ACTION_COLORS.get(a) or next(extra)

    rows = 1 + has_attn + bool(params)
    fig = plt.figure(figsize=(14, 3.2 * rows + 1.4), dpi=100)
    gs = fig.add_gridspec(rows, 2, width_ratios=(2.3, 1), wspace=0.32, hspace=0.12)
    axes = [fig.add_subplot(gs[0, 0])]
    for r in range(1, rows):
        axes.append(fig.add_subplot(gs[r, 0], sharex=axes[0]))
    scatter_ax = fig.add_subplot(gs[:, 1])
    bands = _runs(actions, xs) if has_actions else []
    marker = 4 if len(xs) <= 400 else 2

    def series_panel(ax, h, v, label):
        for a, x0, x1 in bands:
            ax.axvspan(x0, x1, color=colors[a], alpha=0.13, lw=0)
        h_line, = ax.plot(xs, h, color="black", lw=1.2, label=f"{label}entropy ({h_unit})")
        if has_actions:
            for a, c in colors.items():
                pts = [(x, y) for x, y, aa in zip(xs, h, actions) if aa == a]
                if pts:
                    ax.plot(*zip(*pts), ls="none", marker="o", ms=marker, color=c)
        ax.set_ylabel(f"entropy ({h_unit})")
        ax.set_ylim(bottom=0)
        tw = ax.twinx()
        v_line, = tw.plot(xs, v, color="#17becf", lw=1.0, ls="--", label=f"{label}varentropy ({v_unit})")
        tw.set_ylabel(f"varentropy ({v_unit})", color="#138a9b")
        tw.set_ylim(bottom=0)
        # the drawn lines themselves, so each legend entry shows exactly its line's style
        ax.legend([h_line, v_line], [f"{label}entropy", f"{label}varentropy"], loc="upper left",
                  fontsize=8, framealpha=0.8, handlelength=3.0)

    series_panel(axes[0], ent, vent, "logit ")
    axes[0].set_title("logit distribution (full vocabulary, T = 1)", fontsize=10, loc="left")
    r = 1
    if has_attn:
        series_panel(axes[r], _series(steps, "attn_entropy", h_scale),
                     _series(steps, "attn_varentropy", v_scale), "attention ")
        axes[r].set_title("attention (last captured layer, mean over heads)", fontsize=10,
                          loc="left")
        r += 1
    if params:
        ax = axes[r]
        for a, x0, x1 in bands:
            ax.axvspan(x0, x1, color=colors[a], alpha=0.13, lw=0)
        styles = {"temperature": ("#444444", "-"), "alpha": ("#8c564b", "-.")}
        for k in params:
            c, ls = styles[k]
            ax.plot(xs, _series(steps, k), color=c, ls=ls, lw=1.2, drawstyle="steps-mid",
                    label="temperature T" if k == "temperature" else "entmax α")
        ax.set_ylabel("sampler parameter")
        ax.set_title("what the sampler used", fontsize=10, loc="left")
        ax.legend(loc="upper left", fontsize=8, framealpha=0.8)
    for ax in axes[:-1]:
        ax.tick_params(labelbottom=False)
    axes[-1].set_xlabel("token index")
    if xs:
        axes[0].set_xlim(min(xs) - 0.5, max(xs) + 0.5)

    # quadrant scatter
    if has_actions:
        for a, c in colors.items():
            pts = [(h, v) for h, v, aa in zip(ent, vent, actions) if aa == a]
            if pts:
                scatter_ax.scatter(*zip(*pts), s=18, color=c, alpha=0.85, edgecolors="none")
        none = [(h, v) for h, v, aa in zip(ent, vent, actions) if aa is None]
        if none:
            scatter_ax.scatter(*zip(*none), s=14, color="#999999", alpha=0.7, edgecolors="none")
    else:
        sc = scatter_ax.scatter(ent, vent, s=18, c=xs, cmap="viridis", alpha=0.85,
                                edgecolors="none")
        fig.colorbar(sc, ax=scatter_ax, label="token index", fraction=0.05, pad=0.02)
    scatter_ax.set_xlabel(f"entropy ({h_unit})")
    scatter_ax.set_ylabel(f"varentropy ({v_unit})")
    scatter_ax.set_xlim(left=0)
    scatter_ax.set_ylim(bottom=0)
    scatter_ax.set_title("quadrants: entropy vs varentropy", fontsize=10, loc="left")
    if thresholds is not None:
        # every threshold line inside the axes, even beyond the data
        xs_th = [getattr(thresholds, k) / h_scale for k in ("low_ent", "med_ent", "high_ent")]
        ys_th = [getattr(thresholds, k) / v_scale for k in ("low_vent", "high_vent")]
        scatter_ax.set_xlim(0, max(scatter_ax.get_xlim()[1], 1.08 * max(xs_th)))
        scatter_ax.set_ylim(0, max(scatter_ax.get_ylim()[1], 1.08 * max(ys_th)))
        box = {"boxstyle": "round,pad=0.15", "fc": "white", "ec": "none", "alpha": 0.8}
        for i, (k, name) in enumerate((("low_ent", "low H"), ("med_ent", "medium H"),
                                       ("high_ent", "high H"))):
            x = getattr(thresholds, k) / h_scale
            scatter_ax.axvline(x, color="#555555", lw=0.8, ls=":")
            lo, hi = scatter_ax.get_xlim()
            right = hi > lo and (x - lo) / (hi - lo) > 0.7  # near the right edge: label to the left
            # horizontal, inside the axes, staggered so that close lines stay readable
            scatter_ax.annotate(f"{name} {x:.2g}", (x, 0.98 - 0.06 * i), xycoords=("data", "axes fraction"),
                                xytext=(-3 if right else 3, 0), textcoords="offset points", fontsize=8,
                                ha="right" if right else "left", va="top", color="#333333", bbox=box)
        for k, name in (("low_vent", "low V"), ("high_vent", "high V")):
            y = getattr(thresholds, k) / v_scale
            scatter_ax.axhline(y, color="#555555", lw=0.8, ls=":")
            scatter_ax.annotate(f"{name} {y:.2g}", (0.98, y), xycoords=("axes fraction", "data"),
                                xytext=(0, 2), textcoords="offset points", fontsize=8, ha="right",
                                va="bottom", color="#333333", bbox=box)

    if has_actions:
        n = len(actions)
        handles = [Patch(color="none", label="action:")]
        handles += [Patch(color=c, label=f"{a} ({share_text(actions.count(a), n)})")
                    for a, c in colors.items()]
        fig.legend(handles=handles, loc="upper right", ncol=len(handles), fontsize=9,
                   frameon=False, bbox_to_anchor=(0.98, 1.0), handlelength=1.2,
                   columnspacing=1.2)
    mean_h = [h for h in ent if not math.isnan(h)]
    head = title or "trace"
    fig.suptitle(f"{head}: {len(steps)} steps, mean entropy "
                 f"{sum(mean_h) / max(1, len(mean_h)):.2f} {h_unit}",
                 x=0.02, ha="left", fontsize=11)
    fig.subplots_adjust(left=0.06, right=0.97 if has_actions else 0.93, top=1 - 0.75 / (3.2 * rows + 1.4), bottom=0.08)
    return fig
