"""The generation-quality frontier: how coherent and how diverse the text each sampler
*writes* is, across temperatures.

``run_frontier(model, judge, prompts, samplers)`` generates ``max_tokens`` tokens for every
prompt × sampler × temperature × seed with the batched decode loop (``Model.iter_batch``:
continuous batching, one chain and seed per sequence), has a *judge* model (another model)
score every continuation given the same prompt (``judge.score_continuations``), and
summarises each (sampler, temperature) in one row (``frontier_table.summarise``).

Temperature. Every sampler gets each temperature of the grid as its own: ``with_params(temp=T)``
(a ``temp`` stage after the truncation stages, in llama.cpp's order; or the stage's own
``t``: ``aes``, ``entmax``, ``entropix``' base temperature, ``free_energy``'s window mode).
A thermostat chooses its temperature per step, so there the grid temperature ``T`` is its
starting point and scales its range: ``t = T``, ``[t_min·T, t_max·T]``.

Seeds. Seed ``s`` (``seed``, ``seed + 1``...) is the same for every prompt and sampler:
each sampler draws from the same random stream (common random numbers), and the same seeds
give the same table.

Prompts: ``prompts_from_text(text, n, words)``: the first ``words`` words of each of the
first ``n`` paragraphs (blocks separated by blank lines) with more than ``words`` words,
whitespace kept as in the text.
"""

from __future__ import annotations

import math
import re
import time
from typing import Any, Callable, Mapping, Sequence

from ..decode.batched import BatchRequest
from ..errors import UsageError
from ..samplers.chain import SamplerChain
from ..samplers.entropix_thresholds import THRESHOLD_NAMES, thresholds_for
from .frontier_table import summarise
from .judge import score_continuations
from .quality_metrics import ends_in_loop, seq_rep_n, words

__all__ = ["DEFAULT_SAMPLERS", "DEFAULT_TEMPERATURES", "prompts_from_text", "at_temperature",
           "sweep_samplers", "run_frontier", "SWEEP_SIZE"]

# name -> spec; each is given every temperature of the grid as its own
DEFAULT_SAMPLERS: dict[str, str] = {
    "softmax": "dist",
    "top-p 0.9": "top_p=0.9",
    "min-p 0.1": "min_p=0.1",
    "top-nσ 1": "top_n_sigma=1.0",
    "free_energy": "free_energy",
    "thermostat": "thermostat",
    "aes": "aes",
    "entropix": "entropix",
}
DEFAULT_TEMPERATURES = (0.7, 1.0, 1.5, 2.0)
SWEEP_SIZE = 4
# --sweep: each family's main parameter over SWEEP_SIZE settings
_SWEEP: dict[str, tuple[str, tuple[Any, ...]]] = {
    "top-k": ("top_k={}", (10, 20, 40, 100)),
    "top-p": ("top_p={}", (0.8, 0.9, 0.95, 0.98)),
    "min-p": ("min_p={}", (0.02, 0.05, 0.1, 0.2)),
    "top-nσ": ("top_n_sigma={}", (0.5, 1.0, 1.5, 2.0)),
    "typical-p": ("typical_p={}", (0.5, 0.8, 0.9, 0.95)),
    "entmax": ("entmax={}", (1.1, 1.3, 1.5, 2.0)),
    "free_energy": ("free_energy:w={}", (1.0, 2.0, 3.0, 4.0)),
    "thermostat": ("thermostat={}", (0.5, 1.0, 1.5, 2.0)),
    "aes": ("aes:s_hi={}", (2.0, 3.0, 4.0, 5.0)),
}
# entropix: its five thresholds (the model family's) scaled by one factor
_ENTROPIX_SCALES = (0.5, 0.75, 1.0, 1.5)

_PARA = re.compile(r"\n\s*\n")
_WORD_SPAN = re.compile(r"\S+")


def prompts_from_text(text: str, n: int, n_words: int) -> list[str]:
    """The first ``n_words`` words of each of the first ``n`` paragraphs longer than that."""
    if n < 1 or n_words < 1:
        raise UsageError(f"prompts and prompt words must be at least 1, got {n} and {n_words}")
    out: list[str] = []
    for para in _PARA.split(text):
        spans = list(_WORD_SPAN.finditer(para))
        if len(spans) <= n_words:
            continue
        out.append(para[spans[0].start():spans[n_words - 1].end()])
        if len(out) == n:
            break
    if not out:
        raise UsageError(f"the text has no paragraph of more than {n_words} words",
                         hint="paragraphs are separated by blank lines; try fewer --prompt-words")
    return out


def at_temperature(spec: str | SamplerChain, t: float) -> SamplerChain:
    """The chain ``spec`` at temperature ``t`` (module doc: a thermostat scales its range)."""
    chain = SamplerChain.parse(spec)
    thermo = [s for s in chain.stages if getattr(s, "mode", None) == "thermostat"]
    if thermo:
        s = thermo[0]
        return chain.with_stage_params(s.name, t=min(max(t * s.t, s.t_min * t), s.t_max * t),
                                       t_min=s.t_min * t, t_max=s.t_max * t)
    return chain.with_params(temp=t)


def sweep_samplers(model: Any, families: Sequence[str] | None = None) -> dict[str, str]:
    """``--sweep``: ``SWEEP_SIZE`` settings of each family's main parameter; entropix's five
    thresholds (its family's for ``model``) scaled by 0.5, 0.75, 1, 1.5."""
    known = list(_SWEEP) + ["entropix"]
    families = list(families) if families else known
    bad = [f for f in families if f not in known]
    if bad:
        raise UsageError(f"unknown sweep family '{bad[0]}' (known: {', '.join(known)})")
    out: dict[str, str] = {}
    for fam in families:
        if fam == "entropix":
            arch = model.engine.meta("general.architecture")
            th = thresholds_for(arch)
            for f in _ENTROPIX_SCALES:
                vals = ",".join(f"{k}={round(getattr(th, k) * f, 3):g}" for k in THRESHOLD_NAMES)
                out[f"entropix ×{f:g}"] = f"entropix:{vals}"
            continue
        pattern, grid = _SWEEP[fam]
        for v in grid:
            out[f"{fam} {v:g}"] = pattern.format(v)
    return out


def _step_summary(steps) -> dict[str, Any]:
    info: dict[str, float] = {}
    counts: dict[str, int] = {}
    actions: dict[str, int] = {}
    for st in steps:
        for k, v in st.info.items():
            if k == "action" and isinstance(v, str):
                actions[v] = actions.get(v, 0) + 1
            elif isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v):
                info[k] = info.get(k, 0.0) + float(v)
                counts[k] = counts.get(k, 0) + 1
    return {"info": {k: info[k] / counts[k] for k in info}, "actions": actions}


def run_frontier(model: Any, judge: Any, prompts: Sequence[str],
                 samplers: Mapping[str, str | SamplerChain] | None = None, *,
                 temperatures: Sequence[float] = DEFAULT_TEMPERATURES, seeds: int = 2,
                 seed: int = 0, max_tokens: int = 64, parallel: int = 32,
                 judge_parallel: int = 32,
                 progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Generate, judge and summarise (module doc). Returns ``{"model", "judge", "prompts",
    "temperatures", "seeds", "max_tokens", "seconds": {...}, "rows": [...], "samples": [...]}``
    (rows: ``frontier_table.summarise``; samples: one dict per continuation)."""
    samplers = dict(DEFAULT_SAMPLERS if samplers is None else samplers)
    if not samplers:
        raise UsageError("no samplers to compare")
    if not prompts:
        raise UsageError("no prompts")
    if seeds < 1 or max_tokens < 1:
        raise UsageError(f"seeds and max_tokens must be at least 1, got {seeds} and {max_tokens}")
    temps = [float(t) for t in temperatures]
    if not temps or any(not t > 0 for t in temps):
        raise UsageError("temperatures must be above 0")
    say = progress or (lambda _msg: None)
    chains = {(name, t): at_temperature(spec, t) for name, spec in samplers.items() for t in temps}
    requests: list[BatchRequest] = []
    keys: list[tuple[str, float, int, int]] = []
    for (name, t), chain in chains.items():
        for s in range(seeds):
            for p, prompt in enumerate(prompts):
                requests.append(BatchRequest(prompt, max_tokens=max_tokens, sampler=chain, seed=seed + s))
                keys.append((name, t, seed + s, p))
    t0 = time.perf_counter()
    say(f"generating {len(requests)} continuations of {max_tokens} tokens with {model.name} "
        f"({len(samplers)} samplers × {len(temps)} temperatures × {seeds} seeds × {len(prompts)} prompts)")
    gens: list[Any] = [None] * len(requests)
    for i, g in model.iter_batch(requests, max_tokens=max_tokens, parallel=parallel):
        gens[i] = g
    t_gen = time.perf_counter() - t0
    say(f"generated in {t_gen:.0f} s; judging with {judge.name}")
    t1 = time.perf_counter()
    scores = score_continuations(judge, [(g.prompt, g.text) for g in gens], parallel=judge_parallel)
    t_judge = time.perf_counter() - t1

    samples: list[dict[str, Any]] = []
    for (name, t, sd, p), g, js in zip(keys, gens, scores):
        ws = words(g.text)
        steps = _step_summary(g.steps)
        n = len(g.steps)
        samples.append({
            "sampler": name, "spec": str(chains[(name, t)]), "temperature": t, "seed": sd,
            "prompt_index": p, "prompt": g.prompt, "text": g.text, "finish_reason": g.finish_reason,
            "tokens": n,
            "judge_logprob": js.logprob, "judge_tokens": js.tokens,
            "judge_ppl": math.exp(-js.logprob / js.tokens) if js.tokens else None,
            "judge_entropy": js.entropy if js.tokens else None,
            "seq_rep_4": None if len(ws) < 4 else seq_rep_n(ws, 4),
            "loop": ends_in_loop(ws),
            "gen_entropy": sum(s.entropy for s in g.steps) / n if n else None,
            "gen_logprob": sum(s.logprob for s in g.steps) / n if n else None,
            "info": steps["info"], "actions": steps["actions"],
            "token_ids": g.token_ids,
            "logprobs": [round(s.logprob, 5) for s in g.steps],
            "entropies": [round(s.entropy, 5) for s in g.steps],
        })
    rows = summarise(samples, list(samplers), temps)
    return {
        "model": model.name, "judge": judge.name, "prompts": len(prompts),
        "temperatures": temps, "seeds": [seed + s for s in range(seeds)], "max_tokens": max_tokens,
        "samplers": {name: str(SamplerChain.parse(spec)) for name, spec in samplers.items()},
        "seconds": {"generate": round(t_gen, 1), "judge": round(t_judge, 1)},
        "generated_tokens": sum(s["tokens"] for s in samples),
        "rows": rows, "samples": samples,
    }
