"""The structured-output options of ``generate`` and ``batch``: ``--grammar GBNF``,
``--grammar-file FILE``, ``--json-schema FILE|JSON`` (llama.cpp's names). The command gets
``grammar`` (GBNF text or None) and ``json_schema`` (the parsed schema or None)."""

from __future__ import annotations

import functools
from typing import Any, Callable

import click

from ..engine.grammar_input import parse_json_schema, read_constraint

__all__ = ["constraint_options", "read_constraint", "parse_json_schema"]


def constraint_options(f: Callable) -> Callable:
    """Add the three options; the command receives ``grammar`` and ``json_schema``."""

    @functools.wraps(f)
    def command(*args: Any, **kw: Any) -> Any:
        g, s = read_constraint(kw.pop("grammar"), kw.pop("grammar_file"), kw.pop("json_schema"))
        return f(*args, grammar=g, json_schema=s, **kw)

    for opt in reversed([
        click.option("--grammar", default=None, metavar="GBNF",
                     help="Constrain the output to this GBNF grammar (llama.cpp's grammar engine)."),
        click.option("--grammar-file", default=None, metavar="FILE",
                     help="Constrain the output to the GBNF grammar in FILE."),
        click.option("--json-schema", "-j", default=None, metavar="FILE|JSON",
                     help="Constrain the output to JSON valid under this schema (JSON text or a file)."),
    ]):
        command = opt(command)
    return command
