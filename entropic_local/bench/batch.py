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
    from ..api import load

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
