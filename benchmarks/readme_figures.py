"""Regenerate the README's figures from the commands that produce them.

Every generated block in README.md sits between two markers::

    <!-- figures: NAME -->
    ...what the command printed...
    <!-- /figures -->

and ``FIGURES`` says which command prints it. Deterministic figures (teacher-forced scores:
no sampling, no clock) must match exactly; timing figures depend on the machine and its load
(the batching-noise counts on its CPU's matmul paths) and are regenerated only with
``--timing``.

    python benchmarks/readme_figures.py              # rewrite the deterministic blocks
    python benchmarks/readme_figures.py --check      # exit 1 and show a diff where they differ
    python benchmarks/readme_figures.py --timing     # also rerun the (slow) timing benchmarks
    python benchmarks/readme_figures.py --only quality-gemma3-270m

Run from the checkout, with the project's virtual environment (``.venv``) next to it and the
seed text at ``../shared/seed/``.
"""

from __future__ import annotations

import argparse
import difflib
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
SEED = "../shared/seed/000_2a5b1666b09d7513.txt"
PY = sys.executable
CLI = [PY, "-m", "entropic_local.cli"]

QUALITY_SAMPLERS = ["softmax=temp=1.0", "softmax-t0.7=temp=0.7", "softmax-t1.3=temp=1.3",
                    "top-k-40=top_k=40", "top-p-0.9=top_p=0.9", "min-p-0.1=min_p=0.1",
                    "entmax-1.5=entmax:alpha=1.5", "sparsemax=entmax:alpha=2", "aes=aes",
                    "thermostat=thermostat", "llama=llama"]


@dataclass(frozen=True)
class Figure:
    name: str
    argv: list[str]
    timing: bool = False       # depends on the machine: only with --timing
    table_only: bool = True    # keep only the markdown table lines of the output
    fenced: bool = False       # the whole output, as a ```text block (plain-text reports)


def _quality(model: str) -> Figure:
    argv = [*CLI, "eval", SEED, "-m", model, "-n", "300", "-t", "1"]
    for s in QUALITY_SAMPLERS:
        argv += ["-s", s]
    return Figure(f"quality-{model}", argv, table_only=False)


FIGURES = {f.name: f for f in [
    _quality("smollm2-135m"),
    _quality("gemma3-270m"),
    Figure("entmax-attention", [PY, "benchmarks/entmax_attention.py", SEED, "-n", "300", "-t", "1"]),
    Figure("bench", [*CLI, "bench", "--rounds", "5", "-n", "128", "--no-kernels", "--presets",
                     "aes,thermostat,entropix"], timing=True, table_only=False, fenced=True),
    Figure("batch-scaling", [*CLI, "bench", "--batch", "--rounds", "2"], timing=True),
    Figure("batch-ceiling", [PY, "benchmarks/batch_scaling.py", "--raw"], timing=True, table_only=False,
           fenced=True),
    Figure("branching-cost", [PY, "benchmarks/branching_cost.py"], timing=True, table_only=False, fenced=True),
    Figure("batch-noise", [PY, "benchmarks/batch_scaling.py", "--noise"], timing=True),
    Figure("structured-speed", [PY, "benchmarks/structured_speed.py"], timing=True),
    Figure("structured-speed-prose", [PY, "benchmarks/structured_speed.py", "--prose"], timing=True),
    Figure("structured-grammar-pass", [PY, "benchmarks/structured_speed.py", "--grammar-pass"], timing=True),
    Figure("server", [PY, "benchmarks/bench_server.py"], timing=True, table_only=False),
    Figure("kernels", [PY, "benchmarks/kernel_timings.py", "gemma3-270m"], timing=True, table_only=False,
           fenced=True),
    *(Figure(f"attention-hook-{m}", [PY, "benchmarks/attention_hook.py", m], timing=True, table_only=False,
             fenced=True) for m in ("smollm2-135m", "gemma3-270m")),
    *(Figure(f"frontier-{m}", [*CLI, "frontier", "benchmarks/texts/heldout.txt", "-m", m, "--prompts", "6",
                               "--seeds", "2", "-n", "32", "-q", "--plot", f"docs/frontier/{m}.png"],
             timing=True, table_only=False) for m in ("smollm2-135m", "gemma3-270m")),
    Figure("bench-configs", [*CLI, "bench", "--configs", "--rounds", "3", "-n", "64"], timing=True,
           table_only=False, fenced=True),
    Figure("bench-numerics", [*CLI, "bench", "--numerics", "--rounds", "3"], timing=True, table_only=False,
           fenced=True),
]}

BLOCK = re.compile(r"(<!-- figures: (?P<name>[\w.-]+) -->\n)(?P<body>.*?)(<!-- /figures -->)", re.S)


def produce(fig: Figure) -> str:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    out = subprocess.run(fig.argv, cwd=ROOT, env=env, capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"readme_figures: {fig.name}: {' '.join(fig.argv)} exited {out.returncode}:\n"
                         f"{out.stderr.strip()}")
    lines = out.stdout.strip("\n").splitlines()
    if fig.table_only:
        lines = [ln for ln in lines if ln.startswith("|")]
    body = "\n".join(lines).strip("\n") + "\n"
    return f"```text\n{body}```\n" if fig.fenced else body


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--check", action="store_true", help="compare, do not write; exit 1 on a difference")
    ap.add_argument("--timing", action="store_true", help="also rerun the timing benchmarks")
    ap.add_argument("--only", action="append", default=None, metavar="NAME", help=f"one of {', '.join(FIGURES)}")
    args = ap.parse_args(argv)

    text = README.read_text(encoding="utf-8")
    found = {m.group("name") for m in BLOCK.finditer(text)}
    missing = [n for n in FIGURES if n not in found]
    unknown = sorted(found - set(FIGURES))
    if unknown:
        raise SystemExit(f"readme_figures: README has blocks no command produces: {', '.join(unknown)}")
    wanted = args.only or [n for n, f in FIGURES.items() if args.timing or not f.timing]
    new = {n: produce(FIGURES[n]) for n in wanted if n in found}
    # read again: the runs take minutes, and the README may have been edited meanwhile
    text = README.read_text(encoding="utf-8")

    def replace(m: re.Match) -> str:
        body = new.get(m.group("name"), m.group("body"))
        return m.group(1) + body + m.group(4)

    updated = BLOCK.sub(replace, text)
    if args.check:
        diff = list(difflib.unified_diff(text.splitlines(), updated.splitlines(), "README.md", "regenerated",
                                         lineterm=""))
        print("\n".join(diff) if diff else f"readme_figures: {len(new)} blocks match: {', '.join(new)}")
        return 1 if diff else 0
    if updated != text:
        README.write_text(updated, encoding="utf-8")
    print(f"readme_figures: regenerated {', '.join(new) or 'nothing'}"
          + (f"; not in the README: {', '.join(missing)}" if missing else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
