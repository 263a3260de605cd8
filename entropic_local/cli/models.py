"""``entropic-local models``: the model registry and what is on disk."""

from __future__ import annotations

import json

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
    name_w = max(len(r["name"]) for r in rows) + 2
    src_w = max(len(r["source"]) for r in rows) + 2
    click.echo(f"{'NAME':<{name_w}}{'SOURCE':<{src_w}}LOCAL")
    for r in rows:
        mark = "*" if r.get("default") else " "
        local = r.get("path") or "-"
        if r.get("path") and r.get("size"):
            local = f"{r['path']} ({r['size'] / 1e6:.0f} MB)"
        click.echo(f"{r['name'] + mark:<{name_w}}{r['source']:<{src_w}}{local}")
    click.echo("* default model")
