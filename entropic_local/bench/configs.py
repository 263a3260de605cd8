"""``bench --configs``: the engine configurations side by side on each model: extra buffer
types (repack) on and off, one row per product (``-ub 1``) or the whole batch, flash
attention off and on. Prompt tokens/s (128 tokens in one ``llama_decode``) and generation
tokens/s (the raw one-token loop, ``engine/rawloop.py``), medians of rounds in which the
configurations alternate. A configuration the probe found unsafe on this machine is not
run (it would crash); it is listed as such."""

from __future__ import annotations

import statistics
import sys

CONFIGS = (  # (label, repack, n_ubatch or None for the batch, flash attention)
    ("repack on, -ub 512", True, None, "off"),
    ("repack on, -ub 1", True, 1, "off"),
    ("repack off, -ub 512", False, None, "off"),
    ("repack off, -ub 1", False, 1, "off"),
    ("repack on, -ub 512, -fa on", True, None, "on"),
)


def configs_model(name: str, *, n_threads=None, rounds: int = 3, n_tokens: int = 64, log=print) -> dict:
    from ..engine import Engine
    from ..engine.choose import choose_config
    from ..engine.rawloop import raw_decode
    from ..engine.backend import default_threads
    from ..registry import resolve_model
    from .numerics import TEXT

    path = resolve_model(name)
    nt = n_threads or default_threads()
    chosen = {w: choose_config(path, w, n_threads=nt)[0] for w in ("single", "batch")}
    verdict = choose_config(path, "single", n_threads=nt)[1]
    engines, rows = {}, []
    for label, repack, ub, fa in CONFIGS:
        safe = not repack or verdict.multirow or (verdict.onerow and ub == 1)
        rows.append({"config": label, "repack": repack, "n_ubatch": ub or 512, "flash_attn": fa, "safe": safe})
        if safe:
            engines[label] = Engine(path, n_ctx=1024, n_threads=nt, repack=repack, n_ubatch=ub, flash_attn=fa)
    some = next(iter(engines.values()))
    toks = (some.tokenize(TEXT) * 4)[:128 + n_tokens]
    prompt, gen = toks[:128], toks[128:]
    speeds = {k: [] for k in engines}
    for e in engines.values():  # warm-up
        raw_decode(e, prompt[:8], gen[:4])
    for r in range(rounds):
        order = list(engines.items()) if r % 2 == 0 else list(reversed(engines.items()))
        for label, e in order:
            res = raw_decode(e, prompt, gen)
            speeds[label].append((len(prompt) / res["prompt_s"], (res["tokens"] - 1) / res["gen_s"]))
        log(f"  {name} round {r + 1}/{rounds}")
    for e in engines.values():
        e.close()
    for row in rows:
        v = speeds.get(row["config"])
        row["prompt_tps"] = statistics.median(s[0] for s in v) if v else None
        row["gen_tps"] = statistics.median(s[1] for s in v) if v else None
    return {"model": name, "threads": nt, "probe": verdict.to_dict(), "rows": rows,
            "chosen": {w: c.to_dict() for w, c in chosen.items()}}


def run_configs(names, *, n_threads=None, rounds: int = 3, n_tokens: int = 64, progress: bool = True) -> dict:
    def log(msg):
        if progress:
            print(msg, file=sys.stderr, flush=True)

    out = []
    for name in names:
        log(f"configurations on {name} ...")
        out.append(configs_model(name, n_threads=n_threads, rounds=rounds, n_tokens=min(n_tokens, 128), log=log))
    return {"models": out}


def format_configs(report: dict) -> str:
    lines = []
    for m in report["models"]:
        lines.append(f"{m['model']} ({m['threads']} threads): prompt = 128 tokens in one decode, "
                     "generation = one-token decodes; tokens/s, medians of alternated rounds")
        lines.append(f"  {'configuration':<30}{'prompt':>10}{'generation':>12}")
        for r in m["rows"]:
            if r["safe"]:
                lines.append(f"  {r['config']:<30}{r['prompt_tps']:>10.1f}{r['gen_tps']:>12.1f}")
            else:
                lines.append(f"  {r['config']:<30}{'unsafe here (the probe): not run':>22}")
        for w, c in m["chosen"].items():
            lines.append(f"  chosen for {w}: repack {'on' if c['repack'] else 'off'}, -ub {c['n_ubatch']}, "
                         f"-fa {c['flash_attn']} ({c['reason']})")
    return "\n".join(lines)
