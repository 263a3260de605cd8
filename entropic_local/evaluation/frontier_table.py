"""The frontier's rows: one per (sampler, temperature), from its samples, and the Pareto front.

Per row:

* ``judge_ppl``: the judge's perplexity of the continuations, pooled over tokens:
  ``exp(-Σ logprob / Σ tokens)`` over all the row's samples (coherence; lower is better);
  ``ppl_vs_t1``: that over the same sampler's ``judge_ppl`` at T = 1 (when T = 1 is in the grid).
* ``distinct_2``, ``distinct_3``: distinct-n over each prompt's samples (its seeds),
  averaged over prompts; ``self_bleu``: likewise (``quality_metrics``).
* ``seq_rep_4``: mean over samples; ``loops``: the share of samples that end in a loop;
  ``empty``: the share with no token generated.
* ``gen_entropy``, ``gen_logprob``: the generator's own entropy and log-probability of the
  chosen tokens (nats, temperature 1, full vocabulary), averaged over all generated tokens;
  ``info``: the sampler's numeric per-step fields (α, temperature...) averaged over steps;
  ``actions``: the share of steps of each action (Entropix).
* ``front``: whether the row is on the Pareto front of the rows *at the same temperature*
  for (``judge_ppl`` ↓, ``distinct_2`` ↑), and ``dominated_by``: the samplers there that are
  at least as good on both and better on one. ``front_all``: the same over all rows.

The diversity axis of the front is distinct-2; it was fixed before any run.
"""

from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

from .quality_metrics import distinct_n, self_bleu

__all__ = ["summarise", "pareto_front", "format_frontier_table", "DIVERSITY"]

DIVERSITY = "distinct_2"


def _mean(xs) -> float:
    xs = [x for x in xs if x is not None and not (isinstance(x, float) and math.isnan(x))]
    return sum(xs) / len(xs) if xs else math.nan


def pareto_front(points: Sequence[tuple[float, float]]) -> list[list[int]]:
    """For each ``(cost, gain)`` point, the indices of the points that dominate it (cost ≤
    and gain ≥, one of them strictly); a point with none is on the front. NaN points are
    dominated by nothing and dominate nothing."""
    out: list[list[int]] = []
    for i, (c, g) in enumerate(points):
        dom = []
        if not (math.isnan(c) or math.isnan(g)):
            for j, (c2, g2) in enumerate(points):
                if j != i and c2 <= c and g2 >= g and (c2 < c or g2 > g):
                    dom.append(j)
        out.append(dom)
    return out


def summarise(samples: Sequence[Mapping[str, Any]], names: Sequence[str],
              temps: Sequence[float]) -> list[dict[str, Any]]:
    """The rows (module doc), ordered by temperature, then sampler as given."""
    rows: list[dict[str, Any]] = []
    for t in temps:
        for name in names:
            mine = [s for s in samples if s["sampler"] == name and s["temperature"] == t]
            if not mine:
                continue
            by_prompt: dict[int, list[str]] = {}
            for s in mine:
                by_prompt.setdefault(s["prompt_index"], []).append(s["text"])
            lp = sum(s["judge_logprob"] for s in mine)
            nt = sum(s["judge_tokens"] for s in mine)
            steps = sum(s["tokens"] for s in mine)
            info: dict[str, float] = {}
            for key in sorted({k for s in mine for k in s["info"]}):
                w = [(s["info"][key], s["tokens"]) for s in mine if key in s["info"]]
                tot = sum(n for _, n in w)
                info[key] = sum(v * n for v, n in w) / tot if tot else math.nan
            actions: dict[str, float] = {}
            for s in mine:
                for a, c in s["actions"].items():
                    actions[a] = actions.get(a, 0) + c
            rows.append({
                "sampler": name, "spec": mine[0]["spec"], "temperature": t, "samples": len(mine),
                "judge_ppl": math.exp(-lp / nt) if nt else math.nan,
                "distinct_2": _mean(distinct_n(v, 2) for v in by_prompt.values()),
                "distinct_3": _mean(distinct_n(v, 3) for v in by_prompt.values()),
                "self_bleu": _mean(self_bleu(v) for v in by_prompt.values()),
                "seq_rep_4": _mean(s["seq_rep_4"] for s in mine),
                "loops": sum(bool(s["loop"]) for s in mine) / len(mine),
                "empty": sum(s["tokens"] == 0 for s in mine) / len(mine),
                "tokens": steps / len(mine),
                "gen_entropy": (sum((s["gen_entropy"] or 0.0) * s["tokens"] for s in mine) / steps
                                if steps else math.nan),
                "gen_logprob": (sum((s["gen_logprob"] or 0.0) * s["tokens"] for s in mine) / steps
                                if steps else math.nan),
                "info": info,
                "actions": {a: c / steps for a, c in sorted(actions.items())} if steps else {},
            })
    base = {r["sampler"]: r["judge_ppl"] for r in rows if r["temperature"] == 1.0}
    for r in rows:
        b = base.get(r["sampler"])
        r["ppl_vs_t1"] = r["judge_ppl"] / b if b else math.nan
    for t in temps:
        at = [r for r in rows if r["temperature"] == t]
        for r, dom in zip(at, pareto_front([(r["judge_ppl"], r[DIVERSITY]) for r in at])):
            r["front"] = not dom
            r["dominated_by"] = [at[j]["sampler"] for j in dom]
    for r, dom in zip(rows, pareto_front([(r["judge_ppl"], r[DIVERSITY]) for r in rows])):
        r["front_all"] = not dom
    return rows


def _f(x: float, d: int = 2) -> str:
    return "nan" if x is None or x != x else f"{x:.{d}f}"


def format_frontier_table(result: Mapping[str, Any]) -> str:
    """The rows as a markdown table, with a header line naming the run."""
    secs = result.get("seconds", {})
    lines = [
        f"Generator `{result['model']}`, judge `{result['judge']}`: {result['prompts']} prompts × "
        f"{len(result['seeds'])} seeds, {result['max_tokens']} tokens; generated in "
        f"{secs.get('generate', 0):.0f} s, judged in {secs.get('judge', 0):.0f} s.",
        "",
        "| T | sampler | judge ppl ↓ | ×T=1 | distinct-2 ↑ | distinct-3 ↑ | self-BLEU ↓ | seq-rep-4 ↓ "
        "| loops | tokens | gen H | gen logp | front@T | per-step |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|",
    ]
    for r in result["rows"]:
        per = [f"{k} {_f(v)}" for k, v in r["info"].items() if k in ("alpha", "temperature", "support")]
        per += [f"{a} {100 * v:.0f}%" for a, v in r["actions"].items()]
        front = "**front**" if r["front"] else "< " + ", ".join(r["dominated_by"])
        lines.append(
            f"| {r['temperature']:g} | {r['sampler']} | {_f(r['judge_ppl'])} | {_f(r['ppl_vs_t1'])} | "
            f"{_f(r['distinct_2'], 3)} | {_f(r['distinct_3'], 3)} | {_f(r['self_bleu'], 1)} | "
            f"{_f(r['seq_rep_4'], 3)} | {100 * r['loops']:.0f}% | {_f(r['tokens'], 1)} | "
            f"{_f(r['gen_entropy'])} | {_f(r['gen_logprob'])} | {front} | {', '.join(per)} |")
    return "\n".join(lines) + "\n"
