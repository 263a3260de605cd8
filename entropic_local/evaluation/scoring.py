"""Teacher-forced quality of samplers' distributions on a text.

``evaluate_text(model, text, samplers)`` teacher-forces the text through the model once
(``decode.teacher``) and, at every position, asks each sampler chain for the probability
vector it *would sample from* (instead of a sample: ``samplers.distribution``), then scores
it against the gold next token (``evaluation.metrics``: ε-perplexity, sparsemax score,
Jensen-Shannon divergence), with the mean **support** (tokens with non-zero probability)
and the **gold cut**, the fraction of positions where the gold token had probability 0.
At most ``max_tokens`` tokens are scored (and no more than the context allows).

Stateful stages see the gold history: after each position every chain ``accept``s the gold
token (penalties count the text, as while generating). Adaptive stages' per-step fields
(``alpha``, ``temperature``...) are averaged into ``info``.
"""

from __future__ import annotations

import math
import time
from typing import Any, Mapping

import numpy as np
from threadpoolctl import threadpool_limits

from ..decode.teacher import teacher_forced, text_positions
from ..errors import UsageError
from ..samplers.candidates import Candidates
from ..samplers.chain import SamplerChain
from ..samplers.distribution import chain_distribution
from .metrics import DEFAULT_EPSILON, epsilon_perplexity, js_onehot
from .model_access import holding, model_engine

__all__ = ["evaluate_text", "format_eval_table", "DEFAULT_SAMPLERS"]

# The samplers compared by default (name -> spec or preset name).
DEFAULT_SAMPLERS: dict[str, str] = {
    "softmax T=0.7": "temp=0.7",
    "softmax T=1.0": "temp=1.0",
    "softmax T=1.3": "temp=1.3",
    "top-k 40": "top_k=40",
    "top-p 0.9": "top_p=0.9",
    "min-p 0.1": "min_p=0.1",
    "llama": "llama",
    "entmax 1.2": "entmax=1.2",
    "entmax 1.5": "entmax=1.5",
    "sparsemax": "entmax=2.0",
    "aes": "aes",
    "free_energy": "free_energy",
    "thermostat": "thermostat",
}


class _Acc:
    __slots__ = ("p_gold", "sp", "js", "support", "info", "info_n")

    def __init__(self) -> None:
        self.p_gold: list[float] = []
        self.sp = 0.0
        self.js = 0.0
        self.support = 0
        self.info: dict[str, float] = {}
        self.info_n: dict[str, int] = {}


# Scoring runs numpy over the whole vocabulary at every position (np.dot: BLAS). BLAS's own
# threads would fight llama.cpp's for the cores (4-6x slower on two cores): one BLAS thread.
@threadpool_limits.wrap(limits=1, user_api="blas")
def evaluate_text(model: Any, text: str, samplers: Mapping[str, "str | SamplerChain"] | None = None,
                  *, max_tokens: int | None = None, epsilon: float = DEFAULT_EPSILON) -> dict[str, Any]:
    """Teacher-force ``text`` through ``model`` (an ``entropic_local.Model`` or an
    ``Engine``) and score each sampler's distribution against the gold tokens.

    ``samplers`` maps a display name to a spec string, preset name or ``SamplerChain``
    (default ``DEFAULT_SAMPLERS``). Returns a dict::

        {"model", "n_vocab", "tokens" (positions scored), "text_tokens", "truncated",
         "epsilon", "decode": "sequential", "seconds",
         "samplers": {name: {"spec", "eps_perplexity", "sparsemax_score", "js",
                             "support", "gold_cut", "info": {field: mean}}}}
    """
    engine = model_engine(model)
    if not isinstance(text, str) or not text.strip():
        raise UsageError("empty text: nothing to evaluate")
    if samplers is None:
        samplers = DEFAULT_SAMPLERS
    if not samplers:
        raise UsageError("no samplers to evaluate")
    if max_tokens is not None and int(max_tokens) < 1:
        raise UsageError(f"max_tokens must be at least 1, got {max_tokens}")
    chains: dict[str, SamplerChain] = {}
    for name, spec in samplers.items():
        chain = SamplerChain.parse(spec)
        chains[name] = chain.clone() if chain is spec else chain
        chains[name].reset(0)

    with holding(model):
        tokens, limit, truncated = text_positions(engine, text, max_tokens)
        if len(tokens) < 2:
            raise UsageError("the text is a single token: nothing to predict",
                             hint="give at least two tokens of text")
        n_vocab = engine.n_vocab
        cands = Candidates(n_vocab)
        out = np.zeros(n_vocab, dtype=np.float64)
        accs = {name: _Acc() for name in chains}
        for chain in chains.values():
            chain.accept(tokens[0])

        t0 = time.perf_counter()
        for i, (raw, stats) in enumerate(teacher_forced(engine, tokens, limit)):
            gold = tokens[i + 1]
            for name, chain in chains.items():
                cands.reset(raw, stats)
                n = chain_distribution(chain.stages, cands, out)
                p = out[:n]
                hit = np.flatnonzero(cands.ids[:n] == gold)
                p_y = float(p[hit[0]]) if hit.size else 0.0
                acc = accs[name]
                acc.p_gold.append(p_y)
                acc.sp += p_y + 0.5 * (1.0 - float(np.dot(p, p)))
                acc.js += js_onehot(p_y)
                acc.support += int(np.count_nonzero(p > 0.0))
                for key, v in chain.step_info().items():
                    if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v):
                        acc.info[key] = acc.info.get(key, 0.0) + float(v)
                        acc.info_n[key] = acc.info_n.get(key, 0) + 1
                chain.accept(gold)
    seconds = time.perf_counter() - t0

    results: dict[str, Any] = {}
    for name, acc in accs.items():
        pg = np.asarray(acc.p_gold)
        results[name] = {
            "spec": str(chains[name]),
            "eps_perplexity": epsilon_perplexity(pg, n_vocab, epsilon),
            "sparsemax_score": acc.sp / limit,
            "js": acc.js / limit,
            "support": acc.support / limit,
            "gold_cut": float(np.mean(pg == 0.0)),
            "info": {k: acc.info[k] / acc.info_n[k] for k in acc.info},
        }
    return {
        "model": getattr(model, "name", None) or engine.path.stem,
        "n_vocab": n_vocab,
        "tokens": limit,
        "text_tokens": len(tokens),
        "truncated": truncated,
        "epsilon": epsilon,
        "decode": "sequential",
        "seconds": round(seconds, 3),
        "samplers": results,
    }


def _fmt(x: float, digits: int = 3) -> str:
    if x != x:
        return "nan"
    if abs(x) >= 1e5:
        return f"{x:.3g}"
    return f"{x:.{digits}f}"


def format_eval_table(result: Mapping[str, Any]) -> str:
    """The result of ``evaluate_text`` as a markdown table (one row per sampler)."""
    lines = [
        f"Model `{result['model']}`, {result['tokens']} tokens scored "
        f"(vocabulary {result['n_vocab']}, ε = {result['epsilon']:g}, sequential decode"
        + (", text truncated" if result.get("truncated") else "") + ").",
        "",
        "| sampler | spec | ε-perplexity ↓ | sparsemax score ↑ | JS ↓ | support | gold cut | per-step |",
        "|---|---|---:|---:|---:|---:|---:|---|",
    ]
    for name, r in result["samplers"].items():
        info = ", ".join(f"{k} {_fmt(v, 2)}" for k, v in r.get("info", {}).items()
                         if k in ("alpha", "temperature", "kept_entropy"))
        lines.append(
            f"| {name} | `{r['spec']}` | {_fmt(r['eps_perplexity'], 2)} | "
            f"{_fmt(r['sparsemax_score'], 4)} | {_fmt(r['js'], 4)} | {_fmt(r['support'], 1)} | "
            f"{100 * r['gold_cut']:.1f}% | {info} |")
    return "\n".join(lines) + "\n"
