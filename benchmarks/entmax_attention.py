"""Perplexity and attention sparsity with entmax attention on all layers (the README's table).

    python benchmarks/entmax_attention.py [TEXT] [-n 300] [--models A,B] [--configs "1;1.5;adaptive"] [-t 1]

Teacher-forced perplexity of each model's own distribution (the ``temp=1.0`` sampler, ε = 0)
with ``attention_entmax`` set to each configuration, one run each, and the sparsity achieved.
"""

from __future__ import annotations

import argparse
import time
from typing import Sequence

import entropic_local as el
from entropic_local.evaluation.scoring import evaluate_text


DEFAULT_CONFIGS = ("1", "1.1", "1.25", "1.5", "2", "adaptive")


def measure(text: str, models: Sequence[str] = ("smollm2-135m", "gemma3-270m"),
            configs: Sequence[str] = DEFAULT_CONFIGS, *, max_tokens: int = 300,
            n_ctx: int = 1024, n_threads: int | None = None, verbose: bool = True) -> list[dict]:
    """Teacher-forced perplexity of each model's own distribution (the ``temp=1.0`` softmax
    sampler, ε = 0: plain perplexity) with entmax attention on all layers, per config, one
    run each (``entropic_local.evaluation.scoring.evaluate_text``), plus the sparsity achieved.
    One engine per model; the KV cache is cleared and the statistics reset between configs."""
    rows = []
    for name in models:
        m = el.load(name, n_ctx=n_ctx, n_threads=n_threads, attention_entmax="off")
        try:
            cap = m.engine.attention
            for c in configs:
                cap.configure(c)
                m.reset()
                cap.reset_entmax_stats()
                t0 = time.perf_counter()
                r = evaluate_text(m, text, {"softmax": "temp=1.0"}, max_tokens=max_tokens, epsilon=0.0)
                dt = time.perf_counter() - t0
                s = r["samplers"]["softmax"]
                st = cap.entmax_stats()
                row = {
                    "model": name, "config": c, "tokens": r["tokens"], "perplexity": s["eps_perplexity"],
                    "sparsemax_score": s["sparsemax_score"], "js": s["js"],
                    "zero_fraction": st["zero_fraction"], "mean_support": st["mean_support"],
                    "mean_valid": st["mean_valid"], "mean_alpha": st["mean_alpha"],
                    "rows_skipped": st["rows_skipped"], "flags": st["flags"], "seconds": dt,
                }
                rows.append(row)
                if verbose:
                    print(f"{name:14s} {c:9s} ppl {row['perplexity']:8.3f}  zero {100 * row['zero_fraction']:5.1f}%  "
                          f"support {row['mean_support']:6.2f} / {row['mean_valid']:6.2f}  "
                          f"mean α {row['mean_alpha']:.3f}  {dt:5.1f} s", flush=True)
        finally:
            m.close()
    return rows


def format_table(rows: Sequence[dict]) -> str:
    """Markdown table of ``measure``'s rows (perplexity relative to α = 1 of the same model)."""
    base = {r["model"]: r["perplexity"] for r in rows if r["config"] in ("1", "off")}
    lines = [
        "| model | attention | perplexity | vs softmax | zero weights | mean support / valid cells per head | mean α |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        c = r["config"]
        label = "softmax (α = 1)" if c in ("1", "off") else ("adaptive" if c.startswith("adaptive") else f"α = {c}")
        b = base.get(r["model"])
        rel = f"{r['perplexity'] / b:.3f}×" if b else ""
        lines.append(
            f"| {r['model']} | {label} | {r['perplexity']:.2f} | {rel} | {100 * r['zero_fraction']:.1f}% | "
            f"{r['mean_support']:.1f} / {r['mean_valid']:.1f} | {r['mean_alpha']:.3f} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description="Perplexity and attention sparsity with entmax attention on all layers.")
    ap.add_argument("text", nargs="?", default="README.md", help="text file (default: README.md)")
    ap.add_argument("-n", "--max-tokens", type=int, default=300)
    ap.add_argument("--models", default="smollm2-135m,gemma3-270m")
    ap.add_argument("--configs", default=";".join(DEFAULT_CONFIGS),
                    help="';'-separated attention_entmax specs (default: 1;1.1;1.25;1.5;2;adaptive)")
    ap.add_argument("-t", "--threads", type=int, default=None)
    a = ap.parse_args()
    with open(a.text, encoding="utf-8", errors="replace") as f:
        txt = f.read()
    cfgs = [c.strip() for c in a.configs.split(";") if c.strip()]
    res = measure(txt, [x for x in a.models.split(",") if x], cfgs, max_tokens=a.max_tokens, n_threads=a.threads)
    print()
    print(format_table(res))
