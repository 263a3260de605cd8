"""What branching costs: ``entropix`` against ``entropix:fork=4``, alternated on one model.

``python benchmarks/branching_cost.py [MODEL ...]`` (default: both test models): 4 prompts ×
64 tokens × 2 rounds; prints tokens/s of both, the share of steps that forked, the roll-out
tokens decoded, the share of generation time spent branching and the time per fork.
"""

from __future__ import annotations

import argparse

import statistics

from entropic_local import load


def measure_cost(name: str, prompts=None, n_tokens: int = 64, rounds: int = 2, fork: int = 4) -> dict:
    """Tokens/s of ``entropix`` against ``entropix:fork=K``, alternated on one model, and what
    the forks cost."""
    prompts = prompts or ["Write a short story about a dragon:", "The three primary colours are",
                          "Here are some facts about volcanoes.", "An essay on the history of bread. First,"]
    specs = ("entropix", f"entropix:fork={fork}")
    m = load(name, n_ctx=1024, seed=0)
    tps: dict[str, list[float]] = {s: [] for s in specs}
    forks = steps = decoded = 0
    branch_ms = gen_ms = 0.0
    try:
        m.generate("warm up", max_tokens=4, sampler=specs[1])
        for r in range(rounds):
            for p in prompts:
                for spec in (specs if r % 2 == 0 else specs[::-1]):
                    g = m.generate(p, max_tokens=n_tokens, sampler=spec, seed=7)
                    tps[spec].append(g.timings.gen_tps)
                    if spec != specs[0]:
                        forks += sum("fork_tokens" in s.info for s in g.steps)
                        steps += len(g.steps)
                        decoded += g.timings.branch_tokens
                        branch_ms += g.timings.branch_ms
                        gen_ms += g.timings.gen_ms
    finally:
        m.close()
    a, b = statistics.median(tps[specs[0]]), statistics.median(tps[specs[1]])
    return {"model": name, "tps": a, "tps_fork": b, "ratio": b / a, "forks": forks, "steps": steps,
            "rollout_tokens": decoded, "branch_share": branch_ms / gen_ms if gen_ms else 0.0,
            "ms_per_fork": branch_ms / forks if forks else 0.0}


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description="The cost of entropix:fork=4 against plain entropix, alternated.")
    ap.add_argument("models", nargs="*", default=["smollm2-135m", "gemma3-270m"])
    for name in ap.parse_args().models:
        c = measure_cost(name)
        print(f"{name}: entropix {c['tps']:.1f} tok/s, entropix:fork=4 {c['tps_fork']:.1f} tok/s "
              f"({c['ratio']:.3f}x); {c['forks']}/{c['steps']} steps forked, {c['rollout_tokens']} roll-out "
              f"tokens, branching {100 * c['branch_share']:.1f}% of generation time, "
              f"{c['ms_per_fork']:.1f} ms per fork")
