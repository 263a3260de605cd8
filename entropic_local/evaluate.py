"""Teacher-forced quality of samplers' distributions on a text (issue 4; notes §3).

``evaluate_text(model, text, samplers)`` feeds the text through the model once and, at
every position, asks each sampler chain for the probability vector it *would sample from*
(instead of a sample), then scores it against the gold next token with the measures of
Martins, Marinho, Martins, "Sparse Text Generation" (EMNLP 2020):

* **ε-perplexity** ``exp(-mean_t log((p_t(y_t) + ε) / (1 + |V| ε)))``, ``|V|`` the model's
  vocabulary size, ε = 1e-6 by default: perplexity that stays finite when a truncating
  sampler gives the gold token probability 0;
* **sparsemax score** ``mean_t [p_t(y_t) + ½ (1 - ‖p_t‖²)]`` (higher is better; 1 for a
  one-hot on the gold token, ½(1 - 1/|V|) for uniform with the gold excluded);
* **Jensen-Shannon divergence** between ``p_t`` and the one-hot of ``y_t`` (natural log,
  in [0, ln 2]; lower is better). With ``m = (p + e_y)/2`` it depends on ``p_y`` alone::

      JS = ½ [(1 - p_y) ln 2 + p_y ln(2 p_y / (1 + p_y))] + ½ ln(2 / (1 + p_y));

* the mean **support** (tokens with non-zero probability) and **gold cut**, the fraction
  of positions where the gold token had probability 0.

Decoding: token by token (``Engine.eval_prompt`` on the first token, then
``Engine.eval_token`` for each next one), one decode per position, exactly as the
generation loop feeds tokens. The notes (llama-cpp-facts, "batching changes the numbers")
measured a one-batch teacher-forced pass differing from the decode loop by 9% (SmolLM2)
and 16% (Gemma) in entropy; sequential decoding makes every sampler here see the very
distribution it would see while generating that text, at the price of one decode per
token (a 135M-270M model does ~100 tokens/s on a CPU core, so a few thousand tokens take
under a minute). The text is tokenised with the model's special tokens added (BOS where
the model has one); position ``t`` scores token ``t+1``, so the first token is context only.
At most ``max_tokens`` tokens are scored (and no more than the context allows).

Getting a chain's distribution (``chain_distribution``): the chain's stages run on the
candidates as when sampling, up to the selecting stage; that stage then gives its
probabilities over the live candidates instead of drawing: a stage with a
``distribution(cands)`` method (``entmax``, ``aes``) returns them itself; ``dist`` is the
softmax of the live logits (as transformed by the earlier stages: temperature included);
``greedy`` is the one-hot on the argmax. Stateful stages see the gold history: after each
position every chain ``accept``s the gold token (penalties count the text, as while
generating). Adaptive stages' per-step fields (``alpha``, ``temperature``...) are averaged
into ``info``.
"""

from __future__ import annotations

import math
import time
from typing import Any, Mapping

import numpy as np
from threadpoolctl import threadpool_limits

from . import kernels as _k
from .errors import UsageError
from .samplers import Candidates, Dist, Greedy, SamplerChain
from .samplers import aes as _aes, thermo as _thermo  # registers entmax, aes, free_energy, thermostat
from .samplers.chain import PRESETS

__all__ = [
    "evaluate_text", "format_eval_table", "chain_distribution", "selector_distribution",
    "epsilon_perplexity", "sparsemax_score", "js_divergence", "js_onehot", "DEFAULT_SAMPLERS",
    "DEFAULT_EPSILON", "resolve_spec",
]

DEFAULT_EPSILON = 1e-6

# The samplers the issue asks to compare (name -> spec or preset name).
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


def _extra_presets() -> dict[str, str]:
    return {**_thermo.PRESETS_EXTRA, **_aes.PRESETS_EXTRA}


def resolve_spec(spec: "str | SamplerChain") -> "str | SamplerChain":
    """A preset name of this issue's samplers (``aes``, ``thermostat``, ``free_energy``) that
    ``PRESETS`` does not know yet becomes its spec string; anything else is returned as is."""
    if isinstance(spec, str):
        key = spec.strip()
        if key not in PRESETS:
            return _extra_presets().get(key, spec)
    return spec


# ---------------------------------------------------------------------------------------
# metrics (pure functions)


def js_onehot(p_gold: float) -> float:
    """Jensen-Shannon divergence (nats) between a distribution giving the gold token
    ``p_gold`` and the one-hot on the gold token (closed form, see the module doc)."""
    p = min(max(float(p_gold), 0.0), 1.0)
    kl_pm = (1.0 - p) * math.log(2.0) + (p * math.log(2.0 * p / (1.0 + p)) if p > 0 else 0.0)
    kl_em = math.log(2.0 / (1.0 + p))
    return max(0.0, 0.5 * (kl_pm + kl_em))


def js_divergence(p: np.ndarray, q: np.ndarray) -> float:
    """Jensen-Shannon divergence (nats) between two probability vectors of equal length
    (general form, ``0 log 0 = 0``)."""
    p = np.asarray(p, dtype=np.float64)
    q = np.asarray(q, dtype=np.float64)
    m = 0.5 * (p + q)

    def kl(a: np.ndarray) -> float:
        nz = a > 0
        return float(np.sum(a[nz] * np.log(a[nz] / m[nz])))

    return max(0.0, 0.5 * (kl(p) + kl(q)))


def sparsemax_score(probs: np.ndarray, p_gold: float) -> float:
    """``p_y + ½ (1 - ‖p‖²)`` for one position (``probs``: the non-zero probabilities, or
    all of them; ``p_gold``: the gold token's probability)."""
    probs = np.asarray(probs, dtype=np.float64)
    return float(p_gold) + 0.5 * (1.0 - float(np.dot(probs, probs)))


def epsilon_perplexity(p_gold: "np.ndarray | list[float]", vocab_size: int,
                       epsilon: float = DEFAULT_EPSILON) -> float:
    """``exp(-mean log((p_y + ε) / (1 + |V| ε)))`` over positions."""
    p = np.asarray(p_gold, dtype=np.float64)
    if p.size == 0:
        raise ValueError("no positions to score")
    return float(np.exp(-np.mean(np.log((p + epsilon) / (1.0 + vocab_size * epsilon)))))


# ---------------------------------------------------------------------------------------
# a chain's probability vector instead of a sample


def selector_distribution(stage: Any, cands: Candidates, out: np.ndarray) -> int:
    """Write the probabilities with which the selecting ``stage`` would choose among the
    live candidates into ``out[:n]`` (float64, aligned with ``cands.ids[:n]``); returns
    ``n`` (``cands.n`` afterwards: a stage may truncate to its support)."""
    fn = getattr(stage, "distribution", None)
    if callable(fn):
        p = fn(cands)
        out[: cands.n] = p
        return cands.n
    if isinstance(stage, Greedy):
        stage.apply(cands)
        out[0] = 1.0
        return 1
    if isinstance(stage, Dist):
        _k.softmax(cands.logits, cands.n, out)
        return cands.n
    raise UsageError(f"cannot get the distribution of the selecting stage '{stage.name}' "
                     f"(it needs a distribution(cands) method)")


def chain_distribution(chain: SamplerChain, cands: Candidates, out: np.ndarray) -> int:
    """Run ``chain`` on ``cands`` up to its selecting stage and write that stage's
    probabilities over the live candidates into ``out[:n]``; returns ``n``. Draws nothing
    (a ``dist`` stage's random stream is not advanced)."""
    for s in chain.stages:
        if getattr(s, "selects", False):
            return selector_distribution(s, cands, out)
        s.apply(cands)
        if cands.selected >= 0:   # a stage that selected without declaring it
            out[0] = 1.0
            i = cands.selected
            cands.ids[0], cands.logits[0] = cands.ids[i], cands.logits[i]
            cands.n = 1
            return 1
    return selector_distribution(Dist(0), cands, out)  # pragma: no cover - chains end in one


# ---------------------------------------------------------------------------------------
# the evaluation


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
    engine = getattr(model, "engine", model)
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
        chain = SamplerChain.parse(resolve_spec(spec))
        chains[name] = chain.clone() if chain is spec else chain
        chains[name].reset(0)

    tokens = list(engine.tokenize(text, add_special=True, parse_special=False))
    if len(tokens) < 2:
        raise UsageError("the text is a single token: nothing to predict",
                         hint="give at least two tokens of text")
    n_score = len(tokens) - 1
    limit = n_score
    if max_tokens is not None:
        limit = min(limit, int(max_tokens))
    limit = min(limit, engine.n_ctx - 1)
    truncated = limit < n_score
    n_vocab = engine.n_vocab

    cands = Candidates(n_vocab)
    out = np.zeros(n_vocab, dtype=np.float64)
    accs = {name: _Acc() for name in chains}
    for chain in chains.values():
        chain.accept(tokens[0])

    t0 = time.perf_counter()
    for i in range(limit):
        if i == 0:
            engine.eval_prompt(tokens[:1])
        else:
            engine.eval_token(tokens[i])
        raw = engine.logits()
        stats = _k.logit_stats(raw, 1.0)
        gold = tokens[i + 1]
        for name, chain in chains.items():
            cands.reset(raw, stats)
            n = chain_distribution(chain, cands, out)
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
