"""``entropic-local plot TRACE.jsonl``: draw a trace (the drawing: ``entropic_local.plot``)."""

from __future__ import annotations

from pathlib import Path

import click

from .options import CONTEXT_SETTINGS, check_writable, verbose_option


@click.command("plot", context_settings=CONTEXT_SETTINGS)
@click.argument("trace", metavar="TRACE.jsonl", type=click.Path(dir_okay=True))
@click.option("-o", "--output", default=None, metavar="FILE",
              help="Image to write: .png, .svg or .pdf by suffix (default: TRACE with .png).")
@click.option("--bits", is_flag=True, help="Show entropies in bits (the trace is in nats).")
@click.option("--thresholds", default=None, metavar="FAMILY|FILE",
              help="Draw Entropix thresholds on the scatter: llama, gemma3, generic, upstream "
                   "or a thresholds JSON file.")
@click.option("--title", default=None, help="Figure title (default: the trace's file name).")
@verbose_option(help="Full tracebacks on errors.")
def plot_command(trace, output, bits, thresholds, title, verbose):
    """Plot a per-token trace written by 'generate --trace': logit (and attention) entropy
    and varentropy over the tokens, the sampler's action per step, and an entropy /
    varentropy quadrant scatter. Needs matplotlib (pip install 'entropic-local[plot]')."""
    from ..plot import load_thresholds, output_path, plot_trace, read_trace

    out = output_path(trace, output)
    steps = read_trace(trace)
    th = load_thresholds(thresholds) if thresholds is not None else None
    check_writable(str(out))
    written = plot_trace(steps, out, bits=bits, thresholds=th, title=title or Path(trace).name)
    click.echo(str(written))
