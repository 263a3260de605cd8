"""What DRY + XTC and a JSON schema cost in tokens/s, side by side in one run.

``python benchmarks/structured_speed.py [MODEL ...]`` (default: both test models). Per model,
alternated in every round (the order flips each round), same prompts and seeds:

* ``llama`` against ``llama`` with ``--dry-multiplier 0.8 --xtc-probability 0.5`` (DRY at
  llama.cpp's defaults otherwise: base 1.75, allowed length 2, last 64, the four default
  breakers; XTC threshold 0.1);
* a JSON-schema generation (an array of objects with a name and an age) against the same
  prompt unconstrained, both with the ``llama`` chain.

Prints a markdown table of the ratios (each side's tokens/s is all its generated tokens over
all its generation time; the ratios are what to quote on a loaded machine) and the grammar's
share of refused first draws (each costs one grammar pass over the whole vocabulary);
``--json`` prints every figure as JSON. ``--grammar-pass`` times that pass alone instead, at
the start of a JSON value and inside a string. ``-t`` sets llama.cpp's threads (default 1).
"""

from __future__ import annotations

import argparse

import json
import sys

from _cli import run
from entropic_local import load

PROMPTS = ["Write a short story about a dragon:", "The three primary colours are",
           "Here are some facts about volcanoes.", "A list of people and their ages:"]
# prompts that ask for the JSON (for the schema pair): the model's own choices then agree with
# the grammar more often; with the prose PROMPTS a base model's first draw is refused at
# almost every step (--prose uses those instead)
JSON_PROMPTS = ['A JSON array of people, each with a "name" and an "age":\n',
                'Here are three employees as JSON:\n', 'The cast, as a JSON list of {"name", "age"}:\n',
                'JSON output:\n']
SCHEMA = {"type": "array", "items": {"type": "object", "additionalProperties": False,
                                     "required": ["name", "age"],
                                     "properties": {"name": {"type": "string"},
                                                    "age": {"type": "integer"}}}}
DRY_XTC = {"dry_multiplier": 0.8, "xtc_probability": 0.5}


def measure(name: str, n_tokens: int = 64, rounds: int = 2, prose: bool = False, threads: int = 1) -> dict:
    from entropic_local.samplers import SamplerChain

    m = load(name, n_ctx=1024, seed=0, n_threads=threads)
    sides = {
        "llama": dict(sampler="llama"),
        "llama+dry+xtc": dict(sampler=SamplerChain.from_options("llama", **DRY_XTC)),
        "unconstrained": dict(sampler="llama"),
        "json_schema": dict(sampler="llama", json_schema=SCHEMA),
    }
    toks = {k: 0 for k in sides}
    ms = {k: 0.0 for k in sides}
    rejected = steps = 0
    try:
        m.generate("warm up", max_tokens=4, **sides["llama+dry+xtc"])
        m.generate("warm up", max_tokens=4, **sides["json_schema"])
        for r in range(rounds):
            for i, p in enumerate(PROMPTS):
                for pair in (("llama", "llama+dry+xtc"), ("unconstrained", "json_schema")):
                    if pair[0] == "unconstrained" and not prose:
                        p = JSON_PROMPTS[i]
                    for side in (pair if (r + i) % 2 == 0 else pair[::-1]):
                        kw = dict(sides[side])
                        if isinstance(kw["sampler"], SamplerChain):
                            kw["sampler"] = kw["sampler"].clone()
                        g = m.generate(p, max_tokens=n_tokens, seed=100 * r + i, **kw)
                        toks[side] += g.timings.gen_tokens
                        ms[side] += g.timings.gen_ms
                        if g.constraint is not None:
                            rejected += g.constraint["rejections"]
                            steps += g.constraint["steps"]
    finally:
        m.close()
    med = {k: 1000.0 * toks[k] / ms[k] for k in sides}
    return {
        "model": name, "tokens_per_s": {k: round(v, 1) for k, v in med.items()},
        "dry_xtc_ratio": round(med["llama+dry+xtc"] / med["llama"], 3),
        "json_schema_ratio": round(med["json_schema"] / med["unconstrained"], 3),
        "grammar_rejected_share": round(rejected / steps, 3) if steps else None,
        "tokens_per_side": toks,
    }


def grammar_pass_ms(name: str, repeats: int = 5, threads: int = 1) -> dict:
    """Milliseconds of one grammar pass over the whole vocabulary (what a rejected first draw
    costs), at the start of a JSON object and inside a string."""
    import numpy as np

    from entropic_local.engine.grammar import Grammar, json_schema_grammar

    m = load(name, n_ctx=256, seed=0, n_threads=threads)
    try:
        e = m.engine
        g = Grammar(e, json_schema_grammar(SCHEMA))
        ids = np.arange(e.n_vocab, dtype=np.int32)
        out = {}
        for where, text in (("start", ""), ("in_string", '[{"name": "Jo')):
            g.reset()
            for t in e.tokenize(text, add_special=False) if text else []:
                g.accept(t)
            best = min(_timed(lambda: g.allowed_mask(ids, e.n_vocab)) for _ in range(repeats))
            out[where] = round(best * 1000, 2)
        return {"model": name, "full_vocabulary_pass_ms": out, "n_vocab": e.n_vocab}
    finally:
        m.close()


def _timed(f) -> float:
    import time

    t0 = time.perf_counter()
    f()
    return time.perf_counter() - t0


def format_speed_table(rows: list[dict]) -> str:
    lines = ["| model | `llama` + DRY + XTC / `llama` | JSON schema / unconstrained | first draws refused |",
             "|---|---|---|---|"]
    for d in rows:
        share = d["grammar_rejected_share"]
        lines.append(f"| {d['model']} | {d['dry_xtc_ratio']:.2f} | {d['json_schema_ratio']:.2f} | "
                     f"{'-' if share is None else f'{100 * share:.0f}%'} |")
    return "\n".join(lines)


def format_pass_table(rows: list[dict]) -> str:
    lines = ["| model | vocabulary | pass at the start of a JSON value | pass inside a string |",
             "|---|---|---|---|"]
    for d in rows:
        ms = d["full_vocabulary_pass_ms"]
        lines.append(f"| {d['model']} | {d['n_vocab']:,} tokens | {ms['start']:.1f} ms | {ms['in_string']:.1f} ms |")
    return "\n".join(lines)


def main(argv: list[str]) -> None:
    ap = argparse.ArgumentParser(description="llama vs llama+dry+xtc, a JSON schema vs unconstrained, alternated.")
    ap.add_argument("models", nargs="*", default=["smollm2-135m", "gemma3-270m"])
    ap.add_argument("--json", action="store_true", help="print the figures as JSON")
    ap.add_argument("--prose", action="store_true", help="prose prompts instead of JSON-asking ones")
    ap.add_argument("--grammar-pass", action="store_true", help="time one full-vocabulary grammar pass")
    ap.add_argument("-t", "--threads", type=int, default=1, help="llama.cpp threads (default 1)")
    a = ap.parse_args(argv)
    if a.grammar_pass:
        rows = [grammar_pass_ms(n, threads=a.threads) for n in a.models]
        print(json.dumps(rows, indent=2) if a.json else format_pass_table(rows))
        return
    rows = [measure(n, prose=a.prose, threads=a.threads) for n in a.models]
    print(json.dumps(rows, indent=2) if a.json else format_speed_table(rows))


if __name__ == "__main__":
    run(main, sys.argv[1:])
