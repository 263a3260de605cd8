"""What start-up costs: ``entropic-local --help``, ``generate --help`` and the time to the
first token of ``generate`` (from the process start to the first byte on stdout), for one
checkout or two side by side.

    python benchmarks/startup.py [--rounds 7] [ROOT ...]      (default: this checkout)

With several ROOTs (checkouts of the package) the runs alternate between them round by
round, so all see the same machine; medians in ms, and each ROOT's ratio to the first.
Also lists the heavy modules each ``--help`` imports (numba, llama_cpp, jinja2, numpy...).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

HEAVY = ("numpy", "numba", "llama_cpp", "jinja2", "prompt_toolkit", "matplotlib", "click")
CASES = {
    "--help": ["--help"],
    "generate --help": ["generate", "--help"],
}


def _env(root: Path) -> dict[str, str]:
    # the checkout comes first on the path (and is the working directory: "python -m" and
    # "-c" put the working directory before PYTHONPATH)
    return {**os.environ, "PYTHONPATH": str(root), "ENTROPIC_LOCAL_THREADS": "1",
            "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}


def run_ms(root: Path, args: list[str]) -> float:
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "entropic_local", *args], env=_env(root), cwd=root,
                   capture_output=True, check=True)
    return (time.perf_counter() - t0) * 1000


def first_token_ms(root: Path, model: str) -> float:
    """From the process start to the first byte of generated text on stdout."""
    t0 = time.perf_counter()
    p = subprocess.Popen([sys.executable, "-m", "entropic_local", "generate", "The capital of France is",
                          "-m", model, "-n", "8", "--seed", "1", "--sampler", "greedy"],
                         env=_env(root), cwd=root, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    assert p.stdout is not None
    p.stdout.read(1)
    dt = (time.perf_counter() - t0) * 1000
    p.communicate()
    return dt


def heavy_imports(root: Path, args: list[str]) -> list[str]:
    """The modules of ``HEAVY`` loaded by the time the command exits."""
    code = ("import atexit, sys\n"
            f"atexit.register(lambda: print(' '.join(m for m in {HEAVY!r} if m in sys.modules), file=sys.stderr))\n"
            "from entropic_local.cli import main\n"
            f"sys.argv = ['entropic-local', *{args!r}]\n"
            "main()\n")
    r = subprocess.run([sys.executable, "-c", code], env=_env(root), cwd=root, capture_output=True, text=True)
    return r.stderr.split()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("roots", nargs="*", help="checkouts to compare (default: this one)")
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--models", default="smollm2-135m,gemma3-270m")
    a = ap.parse_args()
    roots = [Path(r).resolve() for r in a.roots] or [Path(__file__).resolve().parent.parent]
    models = [m for m in a.models.split(",") if m]
    names = list(CASES) + [f"first token {m}" for m in models]
    times: dict[tuple[str, Path], list[float]] = {(n, r): [] for n in names for r in roots}
    for root in roots:  # warm numba's cache and the page cache
        for m in models:
            first_token_ms(root, m)
    for k in range(a.rounds):
        order = roots if k % 2 == 0 else roots[::-1]
        for root in order:
            for n, args in CASES.items():
                times[(n, root)].append(run_ms(root, args))
            for m in models:
                times[(f"first token {m}", root)].append(first_token_ms(root, m))
    print(f"median ms over {a.rounds} alternated rounds ({os.cpu_count()} CPUs)")
    for n in names:
        base = statistics.median(times[(n, roots[0])])
        cells = []
        for root in roots:
            med = statistics.median(times[(n, root)])
            cells.append(f"{med:8.0f}" + (f" ({med / base:.2f}x)" if root != roots[0] else ""))
        print(f"  {n:28s}" + "   ".join(cells))
    for root in roots:
        for n, args in CASES.items():
            print(f"  {root}: {n} imports: {' '.join(heavy_imports(root, args)) or '-'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
