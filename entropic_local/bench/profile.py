"""``bench --profile``: where our decode loop's time per token goes (``cProfile`` over one
generation with the ``llama`` preset), the functions by their own time."""

from __future__ import annotations

import cProfile
import pstats

__all__ = ["profile_ours"]


def profile_ours(model, n_tokens: int, prompt: str = "Once upon a time", sampler: str = "llama",
                 top: int = 18) -> dict:
    """Profile one generation of ``n_tokens``: the top functions by own time, per token."""
    model.engine.clear()
    prof = cProfile.Profile()
    n = 0
    prof.enable()
    for _ in model.stream(prompt, max_tokens=n_tokens, sampler=sampler, seed=7):
        n += 1
    prof.disable()
    st = pstats.Stats(prof)
    rows = []
    for (file, line, fn), (cc, nc, tt, ct, _) in st.stats.items():
        rows.append({"function": f"{fn} ({'/'.join(file.rsplit('/', 2)[-2:])}:{line})",
                     "calls": nc, "own_us_per_token": tt * 1e6 / max(n, 1),
                     "cum_us_per_token": ct * 1e6 / max(n, 1)})
    rows.sort(key=lambda r: -r["own_us_per_token"])
    total = sum(r["own_us_per_token"] for r in rows)
    decode = sum(r["own_us_per_token"] for r in rows if r["function"].startswith("_submit ("))
    return {"tokens": n, "us_per_token": total, "decode_us_per_token": decode,
            "decode_share": decode / total if total else float("nan"), "top": rows[:top]}


def format_profile(p: dict) -> str:
    lines = [f"{p['model']}: {p['profile']['tokens']} tokens, {p['profile']['us_per_token']:.0f} us/token "
             f"profiled (cProfile adds overhead), {p['profile']['decode_share']:.3f} of it in llama_decode "
             f"({p['profile']['decode_us_per_token']:.0f} us), the rest Python; own time per token:"]
    for r in p["profile"]["top"]:
        lines.append(f"  {r['own_us_per_token']:8.1f} us  {r['calls']:>7} calls  {r['function']}")
    return "\n".join(lines)
