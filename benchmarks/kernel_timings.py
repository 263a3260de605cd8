"""The kernels alone, one thread, on a model's real logits.

Two tables, from one set of logits (16 greedy steps of MODEL on a fixed prompt):

1. the fused statistics and the truncation kernels (``entropic_local.bench.kernels``: medians
   of 200 calls on the first step's logits, against a naive scalar numba loop and numpy
   float64, with the fused statistics' relative error);
2. α-entmax against the plain-numpy sort/bisection reference at α from 1.1 to 2
   (``benchmarks/entmax_kernel.py``: cycling through the 16 steps).

    python benchmarks/kernel_timings.py [MODEL]     (default gemma3-270m: a 262,144-entry vocabulary)
"""

from __future__ import annotations

import argparse
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(0, HERE)

from entmax_kernel import format_entmax_bench, model_logits, run_entmax_bench  # noqa: E402

from entropic_local.bench.kernels import format_kernel_bench, run_kernel_bench  # noqa: E402
from _cli import run  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description="The kernels alone on a model's real logits, one thread.")
    ap.add_argument("model", nargs="?", default="gemma3-270m")
    model = ap.parse_args().model
    import numba

    rows = model_logits(model)
    numba.set_num_threads(1)
    print(f"kernels on real {model} logits ({rows.shape[1]:,} entries), one thread:")
    print(format_kernel_bench(run_kernel_bench(rows[0])))
    print()
    d = run_entmax_bench(rows)
    d["source"] = f"real {model} logits, 16 generation steps"
    print(format_entmax_bench(d))


if __name__ == "__main__":
    run(main)
