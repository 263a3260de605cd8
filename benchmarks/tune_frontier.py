"""Tune the adaptive samplers on the development text: each round compares a family's
candidate settings with fixed baselines on the generation-quality frontier
(``entropic_local.evaluation.frontier``), at the temperatures given.

    python benchmarks/tune_frontier.py --round aes [--model smollm2-135m] [--prompts 12]
        [--tokens 48] [--temps 1,2] [--seeds 1] [--out results.json]

The text is ``benchmarks/texts/dev.txt`` (never the held-out text). Rounds: ``ROUNDS``
below. Prints the markdown table; ``--out`` keeps the whole result (every sample).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import entropic_local as el
from _cli import run
from entropic_local.evaluation.frontier import prompts_from_text, run_frontier
from entropic_local.evaluation.frontier_table import format_frontier_table

DEV = Path(__file__).parent / "texts" / "dev.txt"
BASELINES = {"min-p 0.1": "min_p=0.1", "top-p 0.9": "top_p=0.9"}
ROUNDS: dict[str, dict[str, str]] = {
    "aes": {
        "aes (old)": "aes:s_lo=0.5,s_hi=3.0,alpha_min=1.0",
        "aes lo1 hi4 amin1.25": "aes:s_lo=1.0,s_hi=4.0,alpha_min=1.25",
        "aes lo1 hi4 amin1.5": "aes:s_lo=1.0,s_hi=4.0,alpha_min=1.5",
        "aes lo0.5 hi3 amin1.25": "aes:s_lo=0.5,s_hi=3.0,alpha_min=1.25",
        "aes lo1 hi5 amin1.25": "aes:s_lo=1.0,s_hi=5.0,alpha_min=1.25",
    },
    # each candidate spelled out (not a preset name): the presets are the rounds' winners, and a
    # round must compare what it compared when it was run
    "thermostat": {
        "thermostat 0.75": "thermostat=0.75",
        "thermostat 1.0": "thermostat=1.0",
        "thermostat 1.5": "thermostat=1.5",
        "thermostat 2.0": "thermostat=2.0",
        "thermostat 1.5 w2.3": "thermostat:target=1.5,w=2.3",
    },
    "free_energy": {
        "free_energy w1.5": "free_energy:w=1.5",
        "free_energy w2": "free_energy:w=2",
        "free_energy w2.5": "free_energy:w=2.5",
        "free_energy w3": "free_energy:w=3",
    },
    "entropix": {
        "entropix best_of 5": "entropix:best_of=5",
        "entropix clarify off": "entropix:clarify=,best_of=5",
        "entropix minp 0.1": "entropix:minp=0.1,best_of=5",
        "entropix p 0.8": "entropix:p=0.8,best_of=5",
        "entropix best_of 1": "entropix:best_of=1",
    },
    "adaptive": {
        "entropix best_of 5": "entropix:best_of=5",
        "entropix clarify off": "entropix:clarify=,best_of=5",
        "thermostat 1.0": "thermostat=1.0",
        "thermostat 1.5": "thermostat=1.5",
        "free_energy w3": "free_energy:w=3",
        "free_energy w2": "free_energy:w=2",
    },
}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--round", required=True, help="one of: " + ", ".join(ROUNDS) + ", or NAME=SPEC;...")
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--judge", default=None)
    ap.add_argument("--prompts", type=int, default=12)
    ap.add_argument("--words", type=int, default=20)
    ap.add_argument("--tokens", type=int, default=48)
    ap.add_argument("--temps", default="1,2")
    ap.add_argument("--seeds", type=int, default=1)
    ap.add_argument("--parallel", type=int, default=32)
    ap.add_argument("--no-baselines", action="store_true")
    ap.add_argument("--out", default=None)
    a = ap.parse_args(argv)
    if a.round in ROUNDS:
        samplers = dict(ROUNDS[a.round])
    else:
        samplers = dict(item.split("=", 1) for item in a.round.split(";"))
    if not a.no_baselines:
        samplers = {**BASELINES, **samplers}
    judge = a.judge or ("gemma3-270m" if a.model == "smollm2-135m" else "smollm2-135m")
    g = el.load(a.model, n_ctx=2048, n_threads=1)
    j = el.load(judge, n_ctx=2048, n_threads=1)
    prompts = prompts_from_text(DEV.read_text(encoding="utf-8"), a.prompts, a.words)
    r = run_frontier(g, j, prompts, samplers, temperatures=[float(t) for t in a.temps.split(",")],
                     seeds=a.seeds, max_tokens=a.tokens, parallel=a.parallel,
                     progress=lambda m: print(m, file=sys.stderr, flush=True))
    print(format_frontier_table(r))
    if a.out:
        Path(a.out).write_text(json.dumps(r), encoding="utf-8")


if __name__ == "__main__":
    run(main)
