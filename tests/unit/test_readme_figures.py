"""The README's generated figure blocks and ``benchmarks/readme_figures.py`` agree: every block
has a command that produces it, every command's block is in the README, and every benchmark
script the README or a block names exists."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def _figures_module():
    spec = importlib.util.spec_from_file_location("readme_figures", ROOT / "benchmarks" / "readme_figures.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules.setdefault(spec.name, mod)  # dataclasses look their module up there
    spec.loader.exec_module(mod)
    return mod


def test_every_block_has_a_command_and_every_command_a_block():
    mod = _figures_module()
    blocks = [m.group("name") for m in mod.BLOCK.finditer(README)]
    assert len(blocks) == len(set(blocks)), "a figures block appears twice"
    assert set(blocks) == set(mod.FIGURES), (sorted(set(blocks) - set(mod.FIGURES)),
                                             sorted(set(mod.FIGURES) - set(blocks)))
    # every opening marker is closed before the next one opens
    markers = re.findall(r"<!-- (figures: [\w.-]+|/figures) -->", README)
    assert markers == [m for name in blocks for m in (f"figures: {name}", "/figures")]


def test_every_benchmark_script_named_exists():
    mod = _figures_module()
    named = {a for f in mod.FIGURES.values() for a in f.argv if a.startswith("benchmarks/")}
    named |= set(re.findall(r"benchmarks/[a-z0-9_/]+\.(?:py|txt)", README))  # not NAME.py
    assert named, "no benchmark named anywhere"
    missing = sorted(n for n in named if not (ROOT / n).is_file())
    assert not missing, missing
