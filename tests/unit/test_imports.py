"""Imports cost what they use: the package faces load names on first use, the command loads
a command's module only when it runs, and nothing imports a layer above it."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PKG = ROOT / "entropic_local"
HEAVY = ("numba", "llama_cpp", "jinja2", "prompt_toolkit", "matplotlib")


def loaded_after(code: str) -> set[str]:
    """The HEAVY modules a fresh interpreter holds after running ``code``."""
    probe = (f"import sys\n{code}\n"
             f"print(' '.join(m for m in {HEAVY!r} if m in sys.modules))")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    r = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env, cwd=ROOT,
                       timeout=120)
    assert r.returncode == 0, r.stderr
    return set(r.stdout.split())


@pytest.mark.parametrize("code, allowed", [
    ("import entropic_local", set()),
    ("import entropic_local.kernels", set()),
    ("import entropic_local.samplers", set()),
    ("from entropic_local.samplers import SamplerChain, STAGES; SamplerChain.parse('llama')", set()),
    ("import entropic_local.engine.attention", {"numba"}),
    ("import entropic_local.registry", set()),
    ("from entropic_local import kernels; kernels.top_k", {"numba"}),
])
def test_importing_a_layer_loads_only_what_it_needs(code, allowed):
    assert loaded_after(code) <= allowed


def test_help_loads_no_engine_kernels_or_templates():
    code = ("import contextlib, io\n"
            "from entropic_local.cli.main import main\n"
            "sys.argv = ['entropic-local', '--help']\n"
            "with contextlib.redirect_stdout(io.StringIO()):\n"
            "    try:\n        main()\n    except SystemExit:\n        pass")
    assert loaded_after(code) == set()


def _package_imports(path: Path) -> list[tuple[str, bool]]:
    """``(imported module, inside a function)`` for every import of this package in ``path``."""
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    package = parts[:-1]  # the package a relative import starts from (for __init__.py: itself)
    out = []

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            inner = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef))
            if isinstance(child, ast.ImportFrom):
                if child.level:
                    start = package[: len(package) - child.level + 1]
                    target = ".".join(start + ([child.module] if child.module else []))
                else:
                    target = child.module or ""
                if target.startswith("entropic_local"):
                    out.append((target, inner))
            elif isinstance(child, ast.Import):
                out.extend((a.name, inner) for a in child.names if a.name.startswith("entropic_local"))
            visit(child, inner)

    visit(ast.parse(path.read_text(encoding="utf-8")), False)
    return out


LAYERS = {  # a module may import its own layer and the ones below it
    "kernels": 0, "samplers": 1, "engine": 1, "decode": 2,
    "api": 3, "cli": 4, "chat": 3, "batch": 3, "evaluation": 3, "bench": 4, "plot": 3, "server": 3,
}


def _layer(module: str) -> int | None:
    parts = module.split(".")
    return LAYERS.get(parts[1]) if len(parts) > 1 else None


def test_no_module_imports_a_layer_above_it():
    upward = []
    for path in sorted(PKG.rglob("*.py")):
        here = _layer(".".join(path.relative_to(ROOT).with_suffix("").parts))
        if here is None:
            continue
        for target, inner in _package_imports(path):
            there = _layer(target)
            if there is not None and there > here:
                upward.append(f"{path.relative_to(ROOT)} -> {target}{' (in a function)' if inner else ''}")
    assert not upward, upward
