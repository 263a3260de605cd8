"""What the attention hook costs: ms/token of a plain decode with the eval callback in its
configurations, alternated in one run, paired against no hook.

    python benchmarks/attention_hook.py [MODEL] [N_TOKENS]      (default: smollm2-135m, 64)
"""

from __future__ import annotations

import argparse

import statistics
import time

import numpy as np

from entropic_local.engine import Engine
from entropic_local.registry import resolve_model


def bench_attention_hook(
    path,
    n_tokens: int = 64,
    *,
    rounds: int = 5,
    n_ctx: int = 512,
    n_threads: int | None = None,
    prompt: str = "The history of the printing press begins",
    verbose: bool = True,
) -> dict:
    """The hook's own cost, ms/token of ``eval_token``, configurations alternating in one run.

    Configurations (all flash attention off unless said): ``no_hook``; ``hook_nothing``
    (callback installed, no layer wanted: the cost of ``ask`` on every node); ``last``;
    ``last+scores``; ``all``; ``all+scores``; ``last+metrics`` (last layer plus the metric
    kernels every token); and ``no_hook_fa_auto`` (llama.cpp's default flash-attention
    setting, for reference). Every engine decodes the same greedy continuation (the logits
    are identical with and without the hook). Returns ``{config: median wall ms/token}``
    plus ``"_cpu"`` (median process CPU ms/token: less sensitive to other load on the
    machine when ``n_threads=1``) and ``"_meta"``.
    """
    configs = {
        "no_hook": dict(flash_attn=False),
        "no_hook_fa_auto": dict(),
        "hook_nothing": dict(attention=[]),
        "last": dict(attention="last"),
        "last+scores": dict(attention="last", attention_scores=True),
        "last+metrics": dict(attention="last", attention_scores=True),
        "all": dict(attention="all"),
        "all+scores": dict(attention="all", attention_scores=True),
    }
    engines = {k: Engine(path, n_ctx=n_ctx, n_threads=n_threads, **kw) for k, kw in configs.items()}
    try:
        ref = engines["no_hook"]
        prompt_toks = ref.tokenize(prompt)
        # the greedy continuation, fixed once, fed to every engine
        ref.eval_prompt(prompt_toks)
        cont = []
        for _ in range(n_tokens):
            t = int(np.argmax(ref.logits()))
            cont.append(t)
            ref.eval_token(t)
        times: dict[str, list[float]] = {k: [] for k in configs}
        cpu: dict[str, list[float]] = {k: [] for k in configs}
        asks = {}
        for _ in range(rounds):
            for k, e in engines.items():
                e.clear()
                e.eval_prompt(prompt_toks)
                with_metrics = k == "last+metrics"
                a0 = e.attention.asks if e.attention is not None else 0
                c0 = time.process_time()
                t0 = time.perf_counter()
                for t in cont:
                    e.eval_token(t)
                    if with_metrics:
                        e.attention.metrics()
                dt = time.perf_counter() - t0
                dc = time.process_time() - c0
                times[k].append(1000.0 * dt / len(cont))
                cpu[k].append(1000.0 * dc / len(cont))
                if e.attention is not None:
                    asks[k] = (e.attention.asks - a0) / len(cont)
        out = {k: statistics.median(v) for k, v in times.items()}
        out["_cpu"] = {k: statistics.median(v) for k, v in cpu.items()}
        # paired per-round differences against no_hook: robust to slow drifts of machine load
        out["_delta"] = {k: statistics.median(x - y for x, y in zip(v, times["no_hook"])) for k, v in times.items()}
        out["_meta"] = {
            "model": ref.description,
            "n_tokens": n_tokens,
            "rounds": rounds,
            "n_threads": ref.n_threads,
            "graph_nodes_per_token": asks.get("hook_nothing"),
            "all_ms_per_round": {k: [round(x, 3) for x in v] for k, v in times.items()},
        }
        if verbose:
            base, cbase = out["no_hook"], out["_cpu"]["no_hook"]
            print(f"{ref.description}: {n_tokens} tokens x {rounds} rounds, {ref.n_threads} threads")
            print(f"  {'config':16s} {'wall ms/token':>22s} {'cpu ms/token':>22s}")
            for k in configs:
                c = out["_cpu"][k]
                d = out["_delta"][k]
                print(f"  {k:16s} {out[k]:9.3f} ({out[k] - base:+7.3f}) {c:9.3f} ({c - cbase:+7.3f})  paired {d:+7.3f}")
        return out
    finally:
        for e in engines.values():
            e.close()


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description="The attention hook's cost per token, paired against no hook.")
    ap.add_argument("model", nargs="?", default="smollm2-135m")
    ap.add_argument("tokens", nargs="?", type=int, default=64)
    a = ap.parse_args()
    bench_attention_hook(resolve_model(a.model), a.tokens)
