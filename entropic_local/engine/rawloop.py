"""The raw decode loop: llama.cpp alone, no sampling, on an engine's own context and
configuration. The speed limit the package's decode loop is measured against (``bench``).

``raw_decode(engine, prompt, tokens)`` decodes the prompt, then feeds ``tokens`` one at a
time (the tokens a real generation chose, so both loops see the same positions and the same
KV cache), each a one-token ``llama_decode`` followed by ``llama_get_logits_ith`` - the work
any decode loop must do per token - and nothing else.
"""

from __future__ import annotations

import time

from .backend import llama

__all__ = ["raw_decode"]


def raw_decode(engine, prompt: list[int], tokens: list[int]) -> dict:
    """Time ``tokens`` decoded one by one after ``prompt`` on ``engine``'s context (its
    cache is cleared first and left holding prompt + tokens): ``{"tokens", "gen_s",
    "prompt_s", "cpu_s"}`` (``cpu_s``: the process's CPU time over ``gen_s``), ``gen_s`` from the first generated token's logits to the last's, as the
    benchmark times the other loops."""
    engine.clear()
    t0 = time.perf_counter()
    engine.eval_prompt(list(prompt))
    t1 = time.perf_counter()
    ctx, b = engine._ctx, engine._batch
    decode, logits_ith = llama.llama_decode, llama.llama_get_logits_ith
    b.n_tokens = 1
    b.n_seq_id[0] = 1
    b.seq_id[0][0] = 0
    b.logits[0] = 1
    pos = len(prompt)
    # the first token's logits came with the prompt; the clock starts there
    t_first, c_first = time.perf_counter(), time.process_time()
    for tok in tokens[:-1]:
        b.token[0] = tok
        b.pos[0] = pos
        if decode(ctx, b) != 0:
            raise RuntimeError("llama_decode failed in the raw loop")
        logits_ith(ctx, -1)
        pos += 1
    t_end, c_end = time.perf_counter(), time.process_time()
    engine.tokens = list(prompt) + list(tokens[:-1])
    engine._saved_prompt = None
    return {"tokens": len(tokens), "gen_s": t_end - t_first, "prompt_s": t1 - t0, "cpu_s": c_end - c_first}
