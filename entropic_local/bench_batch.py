"""``entropic-local bench --batch``: aggregate tokens/s of batched generation against one
prompt at a time, side by side in one process.

For each model: 32 different prompts × 64 tokens (the ``llama`` preset, a fixed seed per
prompt, end-of-generation tokens banned with a ``logit_bias`` so every prompt makes exactly
64 tokens and every configuration does the same work). "One at a time" is
``Model.generate`` per prompt; "parallel P" is ``Model.generate_batch(parallel=P)``
(continuous batching, one ``llama_decode`` per step for all live sequences). Wall time
includes prompt evaluation on both sides. Each round runs every configuration once, in
turn, so all see the same machine noise; ratios are medians of per-round ratios against
the one-at-a-time run of the same round.
"""

from __future__ import annotations

import statistics
import sys
import time

TOPICS = ["the ocean", "a lighthouse keeper", "the history of bread", "volcanoes", "a chess match",
          "the moon landing", "a small robot", "autumn in the mountains"]
FRAMES = ["Write a short story about {}:", "Here are some facts about {}.", "An essay on {}. First,",
          "A poem about {}:\n"]
PROMPTS = [f.format(t) for f in FRAMES for t in TOPICS]  # 32


def _sampler(model) -> str:
    eog = sorted(model.engine.eog_tokens)
    llama = "top_k=40,top_p=0.95,min_p=0.05,temp=0.8"  # the llama preset
    return ("logit_bias:" + ",".join(f"{t}=-inf" for t in eog) + "," + llama) if eog else llama


def bench_batch_model(name: str, *, n_prompts: int = 32, n_tokens: int = 64, parallels=(1, 2, 4, 8, 16),
                      rounds: int = 1, n_threads: int | None = None, log=print) -> dict:
    from . import load

    prompts = (PROMPTS * (n_prompts // len(PROMPTS) + 1))[:n_prompts]
    seeds = list(range(1, n_prompts + 1))
    model = load(name, n_ctx=512, n_threads=n_threads, seed=0)
    spec = _sampler(model)
    runs: dict[str, list[dict]] = {"one at a time": []}
    for p in parallels:
        runs[f"parallel {p}"] = []
    try:
        model.generate_batch(prompts[:2], max_tokens=4, sampler=spec, seeds=seeds[:2], parallel=2)  # warm-up
        for r in range(rounds):
            t0 = time.perf_counter()
            n = 0
            for prompt, seed in zip(prompts, seeds):
                n += len(model.generate(prompt, max_tokens=n_tokens, sampler=spec, seed=seed).token_ids)
            runs["one at a time"].append({"tokens": n, "s": time.perf_counter() - t0})
            log(f"  {name} round {r + 1}: one at a time {n / (time.perf_counter() - t0):.1f} tok/s")
            for p in parallels:
                t0 = time.perf_counter()
                gens = model.generate_batch(prompts, max_tokens=n_tokens, sampler=spec, seeds=seeds, parallel=p)
                s = time.perf_counter() - t0
                n = sum(len(g.token_ids) for g in gens)
                runs[f"parallel {p}"].append({"tokens": n, "s": s})
                log(f"  {name} round {r + 1}: parallel {p} {n / s:.1f} tok/s")
    finally:
        model.close()
    base = runs["one at a time"]
    out = {"model": name, "prompts": n_prompts, "tokens": n_tokens, "threads": n_threads, "rows": []}
    for label, rs in runs.items():
        tps = [x["tokens"] / x["s"] for x in rs]
        ratios = [(x["tokens"] / x["s"]) / (b["tokens"] / b["s"]) for x, b in zip(rs, base)]
        out["rows"].append({"config": label, "tokens_per_s": statistics.median(tps),
                            "ratio": statistics.median(ratios), "tokens": rs[-1]["tokens"]})
    return out


def format_batch_report(reports: list[dict]) -> str:
    lines = ["| model | configuration | aggregate tokens/s | ratio to one at a time |", "|---|---|---|---|"]
    for rep in reports:
        for row in rep["rows"]:
            lines.append(f"| {rep['model']} | {row['config']} | {row['tokens_per_s']:.1f} | {row['ratio']:.2f} |")
    return "\n".join(lines)


def run_batch_bench(names, *, n_prompts=32, n_tokens=64, parallels=(1, 2, 4, 8, 16), rounds=1,
                    n_threads=None, progress=True) -> list[dict]:
    def log(msg):
        if progress:
            print(msg, file=sys.stderr, flush=True)

    return [bench_batch_model(n, n_prompts=n_prompts, n_tokens=n_tokens, parallels=parallels, rounds=rounds,
                              n_threads=n_threads, log=log) for n in names]


def raw_decode_scaling(name: str, sizes=(1, 2, 4, 8, 16), steps: int = 40) -> list[tuple[int, float]]:
    """llama.cpp alone: median ms of one ``llama_decode`` of N one-token sequences (no
    sampling), the ceiling of what batching can gain on this machine."""
    from . import load

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


def batching_noise(name: str, parallels=(1, 2, 8), n_prompts: int = 8, n_tokens: int = 32) -> list[str]:
    """How many greedy batch outputs equal single runs (each from an empty cache), per
    ``parallel``: batching changes llama.cpp's matmul paths, which can flip near-ties."""
    from . import load

    m = load(name, n_ctx=512, seed=0)
    try:
        prompts = PROMPTS[:n_prompts]
        single = []
        for p in prompts:
            m.reset()
            single.append(m.generate(p, max_tokens=n_tokens, sampler="greedy").token_ids)
        out = []
        for par in parallels:
            got = m.generate_batch(prompts, max_tokens=n_tokens, sampler="greedy", parallel=par)
            same = sum(a == g.token_ids for a, g in zip(single, got))
            out.append(f"parallel {par}: {same}/{len(prompts)} identical")
        return out
    finally:
        m.close()


if __name__ == "__main__":  # pragma: no cover
    # python -m entropic_local.bench_batch [--raw | --noise] [MODEL ...]
    args = [a for a in sys.argv[1:] if a not in ("--raw", "--noise")]
    names = args or ["smollm2-135m", "gemma3-270m"]
    if "--noise" in sys.argv[1:]:
        for name in names:
            print(f"{name}: " + "; ".join(batching_noise(name)))
    elif "--raw" in sys.argv[1:]:
        for name in names:
            rows = raw_decode_scaling(name)
            base = rows[0][1]
            print(name + ": " + "; ".join(f"N={n} {ms:.1f} ms/step, {n / ms * 1000:.0f} tok/s "
                                          f"({n * base / ms:.2f}x)" for n, ms in rows))
    else:
        print(format_batch_report(run_batch_bench(names)))
