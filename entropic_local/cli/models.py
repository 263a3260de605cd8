"""``entropic-local models``: the model registry and what is on disk."""

from __future__ import annotations

import json
import os
import shutil
import textwrap

import click

from .options import CONTEXT_SETTINGS


@click.command("models", context_settings=CONTEXT_SETTINGS)
@click.option("--json", "as_json", is_flag=True, help="Print the registry as JSON.")
def models_command(as_json):
    """List the model registry (models.txt) and what is on disk."""
    from ..registry import list_models

    rows = list_models()
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    click.echo(format_models_table(rows, shutil.get_terminal_size((80, 24)).columns))


def _shorten_middle(text: str, width: int) -> str:
    """``text`` cut to ``width`` characters in the middle (``…``), keeping its last path
    component (the file name) whole when it fits."""
    if len(text) <= width:
        return text
    if width < 2:
        return text[len(text) - max(width, 0):]
    tail = text[text.rstrip("/").rfind("/"):] if "/" in text else ""
    keep_end = len(tail) if 0 < len(tail) <= width - 2 else (width - 1) // 2
    return text[: width - keep_end - 1] + "…" + text[len(text) - keep_end:]


def format_models_table(rows: list[dict], width: int) -> str:
    """The registry as a table that fits ``width`` columns: the local file (home as ``~``,
    long paths cut in the middle) or, for a model not on disk, where it comes from."""
    home = os.path.expanduser("~")

    def where(r: dict) -> str:
        if r.get("path"):
            p = r["path"]
            return "~" + p[len(home):] if home != "/" and p.startswith(home + os.sep) else p
        kind, _, rest = r["source"].partition(":")
        if kind == "pypi":
            return f"pypi:{rest.split('/')[0]}" + (f" ({r['hint']})" if r.get("hint") else "")
        return r["source"]

    head = ("NAME", "DEFAULT", "ON DISK", "FILE, OR WHERE IT COMES FROM")
    body = [(r["name"], "yes" if r.get("default") else "",
             f"{r['size'] / 1e6:.0f} MB" if r.get("size") else "no", where(r)) for r in rows]
    w0 = max(len(head[0]), *(len(b[0]) for b in body))
    lead = w0 + 2 + len(head[1]) + 2 + len(head[2]) + 2
    room = max(24, width - lead)
    lines = [f"{head[0]:<{w0}}  {head[1]}  {head[2]}  {head[3]}"]
    for name, default, size, loc in body:
        lines.append(f"{name:<{w0}}  {default:<{len(head[1])}}  {size:>{len(head[2])}}  "
                     f"{_shorten_middle(loc, room)}")
    if any(not r.get("path") and r["source"].startswith("hf:") for r in rows):
        lines += textwrap.wrap("Hugging Face models download on first use (pip install "
                               "'entropic-local[hub]'); --json shows every field.", max(40, width))
    return "\n".join(lines)
