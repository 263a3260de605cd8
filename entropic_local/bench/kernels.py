"""Micro-benchmark of the kernels on one logit vector (default: 262,144 synthetic logits).

``run_kernel_bench(logits=None, repeats=200)`` times, as the median over ``repeats`` calls on
one thread (the kernels are single-threaded; the in-place kernels get a fresh copy of the
vector before every call, outside the timed region):

* ``logit_stats``: the fused one-pass statistics (max pass + one vectorised pass);
* ``naive_numba``: the textbook scalar loop compiled with numba (max pass; a pass computing
  ``e^{z-m}`` with ``math.exp`` into a buffer and its sum; a pass accumulating ``H`` and
  ``V = E[(log p)^2] - H^2``);
* ``numpy``: the same computation as float64 numpy array operations;
* ``softmax``, ``argmax``, ``top_k`` (k = 40), ``top_p`` (p = 0.9, unsorted input),
  ``min_p`` (p = 0.05), ``sample`` (``sample_categorical``), each on the full vector.

It also reports the relative error of the fused statistics against the float64 numpy
reference, and whether ``logit_stats`` meets its 0.3 ms target. ``format_kernel_bench``
renders the result as a small table.
"""

from __future__ import annotations

import math
import time

import numba
import numpy as np
from threadpoolctl import threadpool_limits

from ..kernels.sampling import argmax, sample_categorical
from ..kernels.probabilities import softmax
from ..kernels.stats import logit_stats
from ..kernels.truncation import min_p, top_k, top_p

TARGET_MS = 0.3
N_SYNTHETIC = 262_144
TOP_K, TOP_P, MIN_P = 40, 0.9, 0.05


def synthetic_logits(n: int = N_SYNTHETIC, seed: int = 0) -> np.ndarray:
    """normal(0, 3) float32 logits with a few large spikes (a peaked LM-like distribution)."""
    rng = np.random.default_rng(seed)
    z = rng.normal(0.0, 3.0, n).astype(np.float32)
    spikes = rng.choice(n, size=min(n, 5), replace=False)
    z[spikes] = np.float32(20.0) + rng.uniform(0.0, 8.0, spikes.shape[0]).astype(np.float32)
    return z


@numba.njit(cache=True)
def naive_stats(logits):
    """Textbook scalar statistics (reference for the benchmark): 3 passes, libm exp."""
    n = logits.shape[0]
    m = -np.inf
    for i in range(n):
        if logits[i] > m:
            m = np.float64(logits[i])
    e = np.empty(n, dtype=np.float64)
    s = 0.0
    for i in range(n):
        e[i] = math.exp(np.float64(logits[i]) - m)
        s += e[i]
    log_s = math.log(s)
    h = 0.0
    q = 0.0
    for i in range(n):
        p = e[i] / s
        if p > 0.0:
            lp = np.float64(logits[i]) - m - log_s
            h -= p * lp
            q += p * lp * lp
    return m, m + log_s, h, q - h * h


def numpy_stats(logits: np.ndarray) -> tuple[float, float, float, float]:
    """The statistics as float64 numpy array operations (also the accuracy reference)."""
    z = logits.astype(np.float64)
    m = z.max()
    y = z - m
    e = np.exp(y)
    s = e.sum()
    log_s = np.log(s)
    p = e / s
    lp = np.where(p > 0.0, y - log_s, 0.0)
    h = -np.dot(p, lp)
    v = np.dot(p, (lp + h) ** 2)
    return float(m), float(m + log_s), float(h), float(v)


def _median_ms(fn, repeats: int, setup=None) -> float:
    times = []
    for _ in range(repeats):
        if setup is not None:
            setup()
        t0 = time.perf_counter_ns()
        fn()
        times.append(time.perf_counter_ns() - t0)
    return float(np.median(times)) / 1e6


def _rel(a: float, b: float) -> float:
    return abs(a - b) / abs(b) if b != 0.0 else abs(a - b)


# One thread, as documented: the numpy reference's BLAS dot products would otherwise start
# their own threads and fight llama.cpp's (and each other) for the cores.
@threadpool_limits.wrap(limits=1, user_api="blas")
def run_kernel_bench(logits: np.ndarray | None = None, repeats: int = 200) -> dict:
    """Time the kernels on ``logits`` (float32 1-D; default synthetic 262,144); see module doc."""
    source = "synthetic" if logits is None else "given"
    if logits is None:
        z = synthetic_logits()
    else:
        z = np.ascontiguousarray(logits, dtype=np.float32).ravel()
    n = int(z.shape[0])
    repeats = max(1, int(repeats))
    ids0 = np.arange(n, dtype=np.int32)
    ids = ids0.copy()
    buf = z.copy()
    out = np.empty(n, dtype=np.float32)
    rng = np.random.default_rng(1)
    us = rng.random(repeats)
    u_iter = iter(np.tile(us, 2))

    def fresh() -> None:
        np.copyto(ids, ids0)
        np.copyto(buf, z)

    # compile / warm up everything first
    logit_stats(z, 1.0)
    naive_stats(z)
    softmax(z, n, out)
    argmax(z, n)
    sample_categorical(z, n, 0.5)
    for f in (lambda: top_k(ids, buf, n, TOP_K), lambda: top_p(ids, buf, n, TOP_P, 1, False),
              lambda: min_p(ids, buf, n, MIN_P, 1)):
        fresh()
        f()

    kept = {}
    fresh()
    kept["top_k"] = int(top_k(ids, buf, n, TOP_K))
    fresh()
    kept["top_p"] = int(top_p(ids, buf, n, TOP_P, 1, False))
    fresh()
    kept["min_p"] = int(min_p(ids, buf, n, MIN_P, 1))

    ms = {
        "logit_stats": _median_ms(lambda: logit_stats(z, 1.0), repeats),
        "naive_numba": _median_ms(lambda: naive_stats(z), repeats),
        "numpy": _median_ms(lambda: numpy_stats(z), max(1, repeats // 4)),
        "softmax": _median_ms(lambda: softmax(z, n, out), repeats),
        "argmax": _median_ms(lambda: argmax(z, n), repeats),
        "top_k": _median_ms(lambda: top_k(ids, buf, n, TOP_K), repeats, fresh),
        "top_p": _median_ms(lambda: top_p(ids, buf, n, TOP_P, 1, False), repeats, fresh),
        "min_p": _median_ms(lambda: min_p(ids, buf, n, MIN_P, 1), repeats, fresh),
        "sample": _median_ms(lambda: sample_categorical(z, n, next(u_iter)), repeats),
    }
    fused = logit_stats(z, 1.0)
    ref = numpy_stats(z)
    rel_err = {
        "log_z": _rel(fused[1], ref[1]),
        "entropy": _rel(fused[2], ref[2]),
        "varentropy": _rel(fused[3], ref[3]),
    }
    return {
        "source": source,
        "n_vocab": n,
        "repeats": repeats,
        "ms": ms,
        "speedup_vs_naive": ms["naive_numba"] / ms["logit_stats"],
        "speedup_vs_numpy": ms["numpy"] / ms["logit_stats"],
        "target_ms": TARGET_MS,
        "meets_target": bool(ms["logit_stats"] <= TARGET_MS),
        "entropy": float(fused[2]),
        "varentropy": float(fused[3]),
        "rel_err": rel_err,
        "params": {"top_k": TOP_K, "top_p": TOP_P, "min_p": MIN_P},
        "kept": kept,
    }


def format_kernel_bench(result: dict) -> str:
    """Render ``run_kernel_bench``'s result as a table (unknown extra keys are ignored)."""
    ms = result.get("ms", {})
    n = result.get("n_vocab", "?")
    params = result.get("params", {})
    kept = result.get("kept", {})
    label = {
        "logit_stats": "logit_stats (fused, 1 pass)",
        "naive_numba": "naive numba (scalar, 3 passes)",
        "numpy": "numpy float64",
        "softmax": "softmax",
        "argmax": "argmax",
        "top_k": f"top_k k={params.get('top_k', TOP_K)}",
        "top_p": f"top_p p={params.get('top_p', TOP_P)} (unsorted)",
        "min_p": f"min_p p={params.get('min_p', MIN_P)}",
        "sample": "sample_categorical",
    }
    reps = result.get("repeats", "?")
    lines = [f"{'kernel':<34}{'median ms':>10}  ({n} logits, {reps} repeats, one thread)"]
    for k, v in ms.items():
        extra = f"  kept {kept[k]}" if k in kept else ""
        lines.append(f"{label.get(k, k):<34}{v:>10.4f}{extra}")
    if "speedup_vs_naive" in result:
        lines.append(
            f"logit_stats speed-up: {result['speedup_vs_naive']:.1f}x vs naive numba, "
            f"{result['speedup_vs_numpy']:.1f}x vs numpy; "
            f"target {result.get('target_ms', TARGET_MS)} ms "
            f"{'met' if result.get('meets_target') else 'MISSED'}"
        )
    if "rel_err" in result:
        r = result["rel_err"]
        lines.append(
            f"logit_stats vs float64 numpy: relative error entropy {r['entropy']:.1e}, "
            f"varentropy {r['varentropy']:.1e}, log Z {r['log_z']:.1e} "
            f"(H = {result.get('entropy', float('nan')):.4f} nats, "
            f"V = {result.get('varentropy', float('nan')):.4f} nats^2)"
        )
    return "\n".join(lines)
