"""Benchmark: the numba α-entmax kernel against the plain-numpy sort/bisection reference.

``run_entmax_bench()`` times ``entmax.entmax`` (one numba thread, float32 output, median of
``repeats`` calls after a warm-up call that also compiles) and ``entmax_reference.entmax_ref``
(the deep-spin-style numpy implementation on the whole vector: sort-based for α = 1.5 and 2,
50-step bisection otherwise; median of ``ref_repeats`` calls, as it is slow) over one
vocabulary-sized logit vector, per α, and checks that the two agree.

Targets (the issue): ≤ 0.5 ms per call at 262,144 entries on one core, and ≥ 20x faster than
the numpy reference.

``logits``: a float32 vector (or a matrix whose rows are vectors: each timing cycles through the
rows); default a synthetic vector shaped like real LM logits: ``normal(0, 3)`` over 262,144
entries (seeded) plus a few spikes 0.5 to 6 logits above the bulk's max, so that the exact
filter keeps a few dozen to a few hundred entries at α = 1.1 (on Gemma 3 logits it keeps
about 30 to 1,500).

    python benchmarks/entmax_kernel.py [MODEL]     (synthetic logits, or 16 steps of MODEL's)
"""

from __future__ import annotations

import time

import numba
import numpy as np

from entropic_local.kernels import alpha_entmax as _em
from entropic_local.kernels.entmax_filter import BLOCK, scan
from entropic_local.kernels.entmax_reference import entmax_ref

__all__ = ["run_entmax_bench", "format_entmax_bench", "synthetic_logits"]

TARGET_MS = 0.5
TARGET_SPEEDUP = 20.0


def synthetic_logits(n: int = 262_144, seed: int = 0) -> np.ndarray:
    """normal(0, 3) float32 logits with 8 spikes above the bulk (seeded)."""
    rng = np.random.default_rng(seed)
    z = rng.normal(0.0, 3.0, n).astype(np.float32)
    top = float(z.max())
    spikes = top + np.array([6.0, 5.0, 4.0, 3.0, 2.0, 1.5, 1.0, 0.5])
    pos = rng.choice(n, spikes.size, replace=False)
    z[pos] = spikes.astype(np.float32)
    return z


def _median_ms(fn, rows, repeats):
    times = []
    for r in range(repeats):
        z = rows[r % len(rows)]
        t0 = time.perf_counter()
        fn(z)
        times.append(time.perf_counter() - t0)
    return 1e3 * float(np.median(times))


def run_entmax_bench(logits=None, alphas=(1.1, 1.25, 1.5, 1.75, 2.0), repeats=100,
                     ref_repeats=5, temperature=1.0) -> dict:
    """Time ``entmax`` vs the numpy reference at each α; see the module docstring.

    Returns a dict: ``n`` (vocabulary size), ``rows`` (number of logit vectors), ``source``
    ("synthetic" or "given"), ``threads`` (1), ``repeats``, ``ref_repeats``, ``temperature``,
    ``targets`` ({"ms": 0.5, "speedup": 20.0}), ``ok`` (every α meets both targets) and
    ``results``: one dict per α with ``alpha``, ``kernel_ms`` and ``reference_ms`` (medians),
    ``speedup`` (reference_ms / kernel_ms), ``support`` (support size on the first row),
    ``survivors`` (entries passing the exact filter, first row), ``max_abs_diff`` (kernel vs
    reference, first row) and ``ok``.
    """
    source = "given" if logits is not None else "synthetic"
    if logits is None:
        logits = synthetic_logits()
    arr = np.ascontiguousarray(logits, dtype=np.float32)
    rows = [arr] if arr.ndim == 1 else [np.ascontiguousarray(r) for r in arr]
    n = rows[0].shape[0]
    out = np.empty(n, np.float32)
    bmax = np.empty((n + BLOCK - 1) // BLOCK, np.int32)

    old_threads = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        results = []
        for alpha in alphas:
            alpha = float(alpha)
            k = _em.entmax(rows[0], alpha, temperature, out)  # compile + warm up
            survivors = int(scan(rows[0], n, alpha, temperature, bmax)[3])
            kernel_ms = _median_ms(lambda z: _em.entmax(z, alpha, temperature, out), rows,
                                   repeats)
            ref = entmax_ref(rows[0], alpha, temperature)
            _em.entmax(rows[0], alpha, temperature, out)
            diff = float(np.abs(out.astype(np.float64) - ref).max())
            reference_ms = _median_ms(lambda z: entmax_ref(z, alpha, temperature), rows,
                                      ref_repeats)
            speedup = reference_ms / kernel_ms
            results.append({
                "alpha": alpha, "kernel_ms": kernel_ms, "reference_ms": reference_ms,
                "speedup": speedup, "support": int(k), "survivors": survivors,
                "max_abs_diff": diff,
                "ok": bool(kernel_ms <= TARGET_MS and speedup >= TARGET_SPEEDUP),
            })
    finally:
        numba.set_num_threads(old_threads)
    return {
        "n": int(n), "rows": len(rows), "source": source, "threads": 1,
        "repeats": int(repeats), "ref_repeats": int(ref_repeats),
        "temperature": float(temperature),
        "targets": {"ms": TARGET_MS, "speedup": TARGET_SPEEDUP},
        "ok": all(r["ok"] for r in results), "results": results,
    }


def format_entmax_bench(d: dict) -> str:
    """A plain-text table of ``run_entmax_bench``'s result."""
    lines = [
        f"entmax vs numpy reference: n={d['n']:,} ({d['source']}, {d['rows']} row(s)), "
        f"T={d['temperature']:g}, {d['threads']} numba thread, median of {d['repeats']} "
        f"(reference: {d['ref_repeats']})",
        f"{'alpha':>6} {'kernel ms':>10} {'numpy ms':>10} {'speedup':>8} {'survivors':>9} "
        f"{'support':>8} {'max|diff|':>10}  ok",
    ]
    for r in d["results"]:
        lines.append(
            f"{r['alpha']:>6g} {r['kernel_ms']:>10.4f} {r['reference_ms']:>10.2f} "
            f"{r['speedup']:>7.0f}x {r['survivors']:>9,} {r['support']:>8,} "
            f"{r['max_abs_diff']:>10.1e}  {'yes' if r['ok'] else 'NO'}"
        )
    t = d["targets"]
    lines.append(f"targets: <= {t['ms']} ms and >= {t['speedup']:g}x: "
                 f"{'met' if d['ok'] else 'NOT met'}")
    return "\n".join(lines)


def model_logits(name: str, n_rows: int = 16) -> np.ndarray:
    """Real logits: the raw distributions of ``n_rows`` consecutive generation steps of
    model ``name`` (a path or a models.txt name) on a fixed prompt."""
    import entropic_local as el

    m = el.load(name, n_ctx=512, seed=0, n_threads=1)
    try:
        eng = m.engine
        eng.eval_prompt(m.tokenize("The history of the printing press begins in the fifteenth century,"))
        rows = []
        for _ in range(n_rows):
            z = eng.logits().copy()
            rows.append(z)
            eng.eval_token(int(np.argmax(z)))
        return np.stack(rows)
    finally:
        m.close()


if __name__ == "__main__":
    import argparse

    ap = argparse.ArgumentParser(description="α-entmax kernels against the numpy reference.")
    ap.add_argument("model", nargs="?", help="real logits of this model (default: synthetic logits)")
    model = ap.parse_args().model
    if model:
        d = run_entmax_bench(model_logits(model))
        d["source"] = f"real {model} logits, 16 generation steps"
        print(format_entmax_bench(d))
    else:
        print(format_entmax_bench(run_entmax_bench()))
