"""Batched decoding on this machine: llama.cpp's own ceiling, and how often batching changes
greedy outputs.

    python benchmarks/batch_scaling.py [--raw | --noise] [MODEL ...]   (default: both test models)

``--raw``: one ``llama_decode`` of N one-token sequences, no sampling, N = 1, 2, 4, 8, 16
(median ms per step): the most batching can gain here. ``--noise``: greedy batch outputs
against single runs from an empty cache, per ``parallel``: batching changes llama.cpp's
matmul paths, which can flip near-ties. Without a flag: the table of ``entropic-local bench
--batch``.
"""

from __future__ import annotations

import argparse

import statistics
import sys
import time

from _cli import run
from entropic_local import load
from entropic_local.bench.batch import PROMPTS, format_batch_report, run_batch_bench


def raw_decode_scaling(name: str, sizes=(1, 2, 4, 8, 16), steps: int = 40) -> list[tuple[int, float]]:
    """llama.cpp alone: median ms of one ``llama_decode`` of N one-token sequences (no
    sampling), the ceiling of what batching can gain on this machine."""

    m = load(name, n_ctx=512, seed=0)
    e = m.engine.sibling(n_ctx=2048, n_seq_max=max(sizes))
    out = []
    try:
        p = m.tokenize(PROMPTS[0])
        for n in sizes:
            for s in range(max(sizes)):
                e.seq_remove(s)
            if e.decode_entries([(t, j, s, j == len(p) - 1) for s in range(n) for j, t in enumerate(p)]) != 0:
                raise RuntimeError("prefill failed")
            times = []
            for k in range(steps):
                t0 = time.perf_counter()
                if e.decode_entries([(1000 + s, len(p) + k, s, True) for s in range(n)]) != 0:
                    raise RuntimeError("decode failed")
                times.append(time.perf_counter() - t0)
            out.append((n, statistics.median(times) * 1000))
    finally:
        e.close()
        m.close()
    return out


def batching_noise(name: str, parallels=(1, 2, 8), n_prompts: int = 8, n_tokens: int = 32) -> list[dict]:
    """Per ``parallel``: how many greedy batch outputs equal single runs (each from an empty
    cache); the largest logprob shift of a token both runs chose at the same position; and, at
    each first divergence, the gap log p(a) - log p(b) between the single run's pick a and the
    batch's pick b under the single run's own distribution (replayed token by token as it
    was decoded): batching changes llama.cpp's matmul paths, which can flip near-ties."""
    import numpy as np

    m = load(name, n_ctx=512, seed=0)
    e = m.engine
    try:
        prompts = PROMPTS[:n_prompts]
        single = []
        for p in prompts:
            m.reset()
            single.append(m.generate(p, max_tokens=n_tokens, sampler="greedy"))

        def single_logprobs(i: int, k: int) -> np.ndarray:
            m.reset()
            e.eval_prompt(m.tokenize(prompts[i]))
            for t in single[i].token_ids[:k]:
                e.eval_token(t)
            x = e.logits().astype(np.float64)
            return x - (x.max() + np.log(np.exp(x - x.max()).sum()))

        rows = []
        for par in parallels:
            got = m.generate_batch(prompts, max_tokens=n_tokens, sampler="greedy", parallel=par)
            same, shift, gaps = 0, 0.0, []
            for i, (a, g) in enumerate(zip(single, got)):
                k = next((j for j, (x, y) in enumerate(zip(a.token_ids, g.token_ids)) if x != y), None)
                shared = len(a.steps) if k is None else k
                for sa, sb in zip(a.steps[:shared], g.steps[:shared]):
                    shift = max(shift, abs(sa.logprob - sb.logprob))
                if k is None and a.token_ids == g.token_ids:
                    same += 1
                elif k is not None:
                    lp = single_logprobs(i, k)
                    if int(lp.argmax()) != a.token_ids[k]:
                        raise RuntimeError("the replay did not reproduce the single run's greedy pick")
                    gaps.append(float(lp[a.token_ids[k]] - lp[g.token_ids[k]]))
            rows.append({"parallel": par, "identical": same, "prompts": len(prompts),
                         "max_logprob_shift": shift, "max_gap": max(gaps) if gaps else None})
        return rows
    finally:
        m.close()


def format_noise_table(results: dict[str, list[dict]]) -> str:
    lines = ["| model | parallel | identical to single runs | largest logprob shift before a divergence "
             "| largest gap between the two picks |", "|---|---|---|---|---|"]
    for name, rows in results.items():
        for r in rows:
            gap = "-" if r["max_gap"] is None else f"{r['max_gap']:.3f} nats"
            lines.append(f"| {name} | {r['parallel']} | {r['identical']}/{r['prompts']} | "
                         f"{r['max_logprob_shift']:.3f} nats | {gap} |")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description="Batch scaling: the batch loop, llama.cpp's ceiling (--raw), batching noise (--noise).")
    ap.add_argument("models", nargs="*", default=["smollm2-135m", "gemma3-270m"])
    ap.add_argument("--raw", action="store_true", help="llama.cpp's batched-decode ceiling, no sampling")
    ap.add_argument("--noise", action="store_true", help="batch against single agreement")
    a = ap.parse_args(argv)
    names = a.models
    argv = [f for f, on in (("--raw", a.raw), ("--noise", a.noise)) if on]
    if "--noise" in argv:
        print(format_noise_table({name: batching_noise(name) for name in names}))
    elif "--raw" in argv:
        for name in names:
            rows = raw_decode_scaling(name)
            base = rows[0][1]
            print(name + ": " + "; ".join(f"N={n} {ms:.1f} ms/step, {n / ms * 1000:.0f} tok/s "
                                          f"({n * base / ms:.2f}x)" for n, ms in rows))
    else:
        print(format_batch_report(run_batch_bench(names)))
    return 0


if __name__ == "__main__":
    raise SystemExit(run(main, sys.argv[1:]))
