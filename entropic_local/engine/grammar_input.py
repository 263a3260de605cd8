"""Reading a constraint as a user gives it: GBNF text, a grammar file, a JSON schema as JSON
text or a file (``--grammar``, ``--grammar-file``, ``--json-schema``, chat's ``/set``).
No llama.cpp here (the command line builds its options from it)."""

from __future__ import annotations

import json
import os
from typing import Any

from ..errors import GrammarError, UsageError

__all__ = ["read_constraint", "parse_json_schema"]


def _read(path: str, what: str) -> str:
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except FileNotFoundError:
        raise UsageError(f"no such {what} file: {path}") from None
    except (OSError, UnicodeDecodeError) as e:
        raise UsageError(f"cannot read the {what} file {path}: {getattr(e, 'strerror', None) or e}") from None


def parse_json_schema(value: str) -> Any:
    """``--json-schema``'s value: JSON text (starts with ``{``), else a file holding it."""
    inline = value.lstrip()[:1] in ("{", "[", '"') and not os.path.exists(value)
    text = value if inline else _read(value, "JSON schema")
    try:
        return json.loads(text)
    except ValueError as e:
        src = "the JSON schema" if text is value else f"the JSON schema in {value}"
        raise GrammarError(f"{src} is not valid JSON: {e}") from None


def read_constraint(grammar: str | None, grammar_file: str | None,
                    json_schema: str | None) -> tuple[str | None, Any]:
    """(GBNF text, schema) from the three options; at most one may be given."""
    given = [n for n, v in (("--grammar", grammar), ("--grammar-file", grammar_file),
                            ("--json-schema", json_schema)) if v is not None]
    if len(given) > 1:
        raise UsageError(f"{' and '.join(given)} both constrain the output: give one of them")
    if grammar_file is not None:
        grammar = _read(grammar_file, "grammar")
    schema = parse_json_schema(json_schema) if json_schema is not None else None
    return grammar, schema
