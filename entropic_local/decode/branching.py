"""Branching: roll candidate tokens out on sibling KV sequences and keep the best.

When a selecting stage sets ``cands.fork`` (a ``Fork``: Entropix does on "explore" steps
when ``entropix:fork=K`` is given), the decode loop calls ``roll_out`` before committing to
a token. Sequence 0 holds the generation so far, ``n_past`` tokens. For each candidate
``c_i`` (i = 1..K):

1. ``llama_memory_seq_cp(0 -> i)``: sequence i shares sequence 0's cells (the unified cache
   only tags cells; no tensor is copied).
2. ``depth`` batched decodes: step d feeds every live branch's newest token at position
   ``n_past + d`` (one ``llama_decode`` for all branches), reads each branch's distribution
   q_d, adds its entropy H(q_d) and, before the last step, extends the branch greedily with
   x = argmax q_d, adding log q_d(x). A branch that produces an end-of-generation token stops
   there.
3. Score: ``Σ logprob − w · Σ entropy`` along the branch (w = ``Fork.entropy_weight``), the
   first logprob being the candidate's under the step's own distribution (T = 1). High
   likelihood and a model that stays sure of itself afterwards both count.
4. ``llama_memory_seq_rm(i)`` for every branch: the cache holds exactly sequence 0 again.

Only the winning first token is kept; the loop then decodes it on sequence 0 as usual (the
rolled-out tokens are not reused: the sampler chain must see every token it emits). Cost:
K · depth tokens in ``depth`` decodes, reported per step (``fork_ms``) and in
``Timings.branch_tokens`` / ``branch_ms``. When the cache has no room for the branches
(``llama_decode`` returns 1) or the context would overflow, nothing is branched and the
stage's own choice (the first candidate) stands; the step records ``fork_skipped``.

Numerics: a branch's scores equal a sequential recomputation up to llama.cpp's batching
noise (a micro-batch of several rows takes another matmul path; ``docs/measurements.md``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..kernels import logit_stats
from ..samplers.candidates import Fork


@dataclass
class BranchResult:
    token: int                 # the winning first token
    index: int                 # its position in Fork.tokens
    scores: list[float]        # per candidate
    logprobs: list[float]      # per candidate: Σ logprob along the branch
    entropies: list[float]     # per candidate: Σ entropy along the branch
    n_tokens: int              # tokens decoded for the branches
    ms: float
    skipped: str | None = None  # why nothing was branched, else None
    candidates: tuple[int, ...] = ()  # Fork.tokens

    def info(self) -> dict:
        d = {"fork_tokens": [int(t) for t in self.candidates], "fork_chosen": self.token,
             "fork_scores": [round(s, 6) for s in self.scores], "fork_ms": round(self.ms, 3),
             "fork_decoded": self.n_tokens}
        if self.skipped:
            d["fork_skipped"] = self.skipped
        return d


def roll_out(engine: Any, fork: Fork, first_logprobs: list[float], n_past: int) -> BranchResult:
    """Branch on sequences 1..K of ``engine`` (module doc); sequence 0 is left as it was."""
    t0 = time.perf_counter()
    tokens = tuple(int(t) for t in fork.tokens)
    k = len(tokens)

    def skip(why: str) -> BranchResult:
        return BranchResult(tokens[0], 0, [], [], [], 0, (time.perf_counter() - t0) * 1000,
                            skipped=why, candidates=tokens)

    if k + 1 > engine.n_seq_max:
        return skip(f"the context holds {engine.n_seq_max} sequences, {k + 1} needed")
    depth = min(int(fork.depth), engine.n_ctx - n_past - 1)
    if depth < 1:
        return skip("no room left in the context")
    logprob = [float(x) for x in first_logprobs]
    entropy = [0.0] * k
    live = [not engine.is_eog(t) for t in tokens]
    current = list(tokens)
    decoded = 0
    try:
        for i in range(k):
            engine.seq_copy(0, i + 1, 0, n_past)
        for d in range(depth):
            rows = [i for i in range(k) if live[i]]
            if not rows:
                break
            rc = engine.decode_entries([(current[i], n_past + d, i + 1, True) for i in rows])
            if rc != 0:
                return skip("no room in the KV cache for the branches" if rc == 1
                            else f"llama_decode failed with code {rc}")
            decoded += len(rows)
            for out, i in enumerate(rows):
                logits = engine.logits_at(out)
                max_logit, log_z, h, _ = logit_stats(logits, 1.0)
                entropy[i] += h
                if d + 1 < depth:
                    x = int(np.argmax(logits))
                    logprob[i] += float(logits[x]) - log_z
                    current[i] = x
                    if engine.is_eog(x):
                        live[i] = False
    finally:
        for i in range(k):
            engine.seq_remove(i + 1)
    w = float(fork.entropy_weight)
    scores = [logprob[i] - w * entropy[i] for i in range(k)]
    best = max(range(k), key=lambda i: (scores[i], -i))
    return BranchResult(tokens[best], best, scores, logprob, entropy, decoded,
                        (time.perf_counter() - t0) * 1000, candidates=tokens)

