"""``bench --numerics``: what flash attention does to the numbers and the speed.

For each model, two engines on the same weights' file, flash attention off and on, read the
same text teacher-forced one token at a time (as generation decodes): per position the
entropy of the model's distribution and the log-probability of the next token of the text.
Reported: perplexity with each setting, the largest and median relative entropy error and
the largest logprob error of "on" against "off", the largest difference between the
package's entropy (the fused kernel) and an independent float64 numpy computation from the
same logits (off), and tokens/s for the prompt (one batch) and one-token decoding, the
settings alternated over rounds.
"""

from __future__ import annotations

import statistics
import sys
import time

import numpy as np

TEXT = (
    "The lighthouse keeper kept a log of every ship that passed the point. Most entries were short: a "
    "name, a heading, the state of the sea. In the winter of the storm, though, the entries grew longer. "
    "He wrote about the fishing boats that came back early, their nets empty, and about the freighter "
    "that waited three days offshore because the harbour master would not let it in. He wrote that the "
    "lamp had to be trimmed twice a night, that the wind found every gap in the shutters, and that the "
    "gulls had gone inland. When the weather finally broke, he walked down to the beach and counted the "
    "timber that had washed up, the broken crates, a child's shoe, a bottle with no message in it. Years "
    "later his daughter found the log in a chest and read it aloud to her own children, who asked why "
    "anyone would write down the weather every day. She told them that a record is a kind of promise: "
    "that someone was watching, that the light was kept, that nothing passed unseen. Then she put the "
    "book back, and the next morning she began a log of her own, about the garden, the rain, the first "
    "frost, and the birds that came back each spring to the same hedge at the end of the lane."
)


def _entropy_np(z: np.ndarray) -> float:
    z = z.astype(np.float64)
    z = z - z.max()
    p = np.exp(z)
    s = p.sum()
    p /= s
    logp = z - np.log(s)
    return float(-(p[p > 0] * logp[p > 0]).sum())


def _read(engine, tokens: list[int]) -> tuple[np.ndarray, np.ndarray, float]:
    """Per position i < n-1: (entropy, logprob of tokens[i+1]); and the kernel-vs-numpy gap."""
    from ..kernels import logit_stats

    engine.clear()
    engine.eval_prompt(tokens[:1])
    ent, lp = [], []
    gap = 0.0
    for i in range(len(tokens) - 1):
        z = engine.logits()
        _, log_z, h, _ = logit_stats(z, 1.0)
        ent.append(h)
        lp.append(float(z[tokens[i + 1]]) - log_z)
        if i % 10 == 0:
            gap = max(gap, abs(h - _entropy_np(z)))
        engine.eval_token(tokens[i + 1])
    return np.array(ent), np.array(lp), gap


def _speed(engine, tokens: list[int]) -> tuple[float, float]:
    """(prompt tokens/s in one batch, one-token decode tokens/s) on ``tokens``."""
    from ..engine.rawloop import raw_decode

    r = raw_decode(engine, tokens[:128], tokens[128:256])
    return 128 / r["prompt_s"], (r["tokens"] - 1) / r["gen_s"]


def numerics_model(name: str, *, n_threads=None, rounds: int = 3, n_tokens: int = 300, log=print) -> dict:
    from ..engine import Engine
    from ..registry import resolve_model

    path = resolve_model(name)
    engines = {fa: Engine(path, n_ctx=1024, n_threads=n_threads, flash_attn=fa) for fa in ("off", "on")}
    tokens = engines["off"].tokenize(TEXT)[:n_tokens]
    res = {fa: _read(e, tokens) for fa, e in engines.items()}
    (h0, lp0, gap0), (h1, lp1, gap1) = res["off"], res["on"]
    rel = np.abs(h1 - h0) / np.maximum(h0, 1e-12)
    speeds = {"off": [], "on": []}
    for r in range(rounds):
        for fa in (("off", "on") if r % 2 == 0 else ("on", "off")):
            speeds[fa].append(_speed(engines[fa], tokens))
    settings = engines["off"].settings()
    for e in engines.values():
        e.close()
    out = {
        "model": name, "tokens": len(tokens), "threads": settings["n_threads"],
        "repack": settings["repack"], "n_ubatch": settings["n_ubatch"],
        "perplexity": {"off": float(np.exp(-lp0.mean())), "on": float(np.exp(-lp1.mean()))},
        "entropy_rel_err_max": float(rel.max()), "entropy_rel_err_median": float(np.median(rel)),
        "logprob_abs_err_max": float(np.abs(lp1 - lp0).max()),
        "kernel_vs_numpy_entropy_max": {"off": gap0, "on": gap1},
        "prompt_tps": {fa: statistics.median(s[0] for s in v) for fa, v in speeds.items()},
        "decode_tps": {fa: statistics.median(s[1] for s in v) for fa, v in speeds.items()},
        "decode_on_over_off": statistics.median(b[1] / a[1] for a, b in zip(speeds["off"], speeds["on"])),
        "prompt_on_over_off": statistics.median(b[0] / a[0] for a, b in zip(speeds["off"], speeds["on"])),
    }
    log(f"  {name}: perplexity off {out['perplexity']['off']:.3f} on {out['perplexity']['on']:.3f}")
    return out


def run_numerics(names, *, n_threads=None, rounds: int = 3, progress: bool = True) -> dict:
    def log(msg):
        if progress:
            print(msg, file=sys.stderr, flush=True)

    t0 = time.perf_counter()
    models = []
    for name in names:
        log(f"flash attention off/on on {name} ...")
        models.append(numerics_model(name, n_threads=n_threads, rounds=rounds, log=log))
    return {"models": models, "seconds": time.perf_counter() - t0}


def format_numerics(report: dict) -> str:
    lines = ["flash attention off vs on; text read one token at a time (as generation decodes); "
             "speeds: medians of alternated rounds",
             f"{'model':<14}{'tokens':>7}{'ppl off':>9}{'ppl on':>9}{'H rel err max':>15}{'median':>9}"
             f"{'logprob err':>13}{'H vs numpy (off)':>18}{'decode on/off':>15}{'prompt on/off':>15}"]
    for m in report["models"]:
        lines.append(
            f"{m['model']:<14}{m['tokens']:>7}{m['perplexity']['off']:>9.3f}{m['perplexity']['on']:>9.3f}"
            f"{m['entropy_rel_err_max']:>15.2%}{m['entropy_rel_err_median']:>9.2%}{m['logprob_abs_err_max']:>13.4f}"
            f"{m['kernel_vs_numpy_entropy_max']['off']:>18.1e}{m['decode_on_over_off']:>15.3f}"
            f"{m['prompt_on_over_off']:>15.3f}")
    return "\n".join(lines)
