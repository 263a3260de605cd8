"""The frontier with the real models: the judge's scores against a teacher-forced
recomputation, and the same seeds giving the same table."""

from __future__ import annotations

import math

import numpy as np
import pytest

import entropic_local as el

from entropic_local.decode.teacher import teacher_forced
from entropic_local.evaluation.frontier import run_frontier
from entropic_local.evaluation.judge import judge_tokens, score_continuations

PROMPTS = ["The old lighthouse on the northern cape was built of granite blocks",
           "Bread dough rises because yeast feeds on the sugars in the flour"]
CONTS = [" carried by boat from a quarry two days away, and its lamp burned oil.",
         " and releases carbon dioxide, which the gluten traps in small pockets.",
         " of the town."]
# Scoring many continuations in one batch could take other matmul paths than one token at a
# time (llama.cpp's batching noise, docs/measurements.md). Measured: with SmolLM2 as the
# judge the sums agree exactly (difference 0.0); with Gemma 3 they differ by up to 0.03
# nats per token; with flash attention off (the default) llama.cpp's multi-sequence path
# differs from one sequence on SmolLM2 too (0.004-0.07 nats per token measured), while with it
# on SmolLM2 agrees exactly. So the test scores on SmolLM2 with flash attention on and allows
# float rounding only.
TOL = 1e-5


@pytest.fixture(scope="module")
def smollm2_fa():
    m = el.load("smollm2-135m", n_ctx=1024, seed=0, flash_attn="on")
    yield m
    m.close()


def _recompute(engine, prompt, cont):
    p, c = judge_tokens(engine, prompt, cont)
    toks = p + c
    lps = []
    for i, (raw, (_, log_z, _, _)) in enumerate(teacher_forced(engine, toks, len(toks) - 1)):
        if i >= len(p) - 1:
            lps.append(float(raw[toks[i + 1]]) - float(log_z))
    return np.array(lps)


def test_judge_equals_teacher_forced_recomputation(smollm2_fa):
    smollm2 = smollm2_fa
    items = [(PROMPTS[0], CONTS[0]), (PROMPTS[0], CONTS[2]), (PROMPTS[1], CONTS[1]), (PROMPTS[1], "")]
    got = score_continuations(smollm2, items, parallel=2)
    with smollm2.hold():
        for (prompt, cont), s in zip(items, got):
            want = _recompute(smollm2.engine, prompt, cont) if cont else np.array([])
            assert s.tokens == want.size
            if cont:
                assert s.logprob == pytest.approx(float(want.sum()), abs=TOL * want.size)
                assert s.logprob < 0 and math.isfinite(s.entropy)
            else:
                assert s.logprob == 0.0 and math.isnan(s.entropy)
    # a continuation's score does not depend on what it is batched with
    alone = score_continuations(smollm2, [items[0]], parallel=1)[0]
    assert alone.tokens == got[0].tokens
    assert alone.logprob == pytest.approx(got[0].logprob, abs=TOL * alone.tokens)


def test_same_seeds_same_table(smollm2, gemma):
    samplers = {"min-p 0.1": "min_p=0.1", "aes": "aes", "entropix": "entropix"}
    kw = dict(temperatures=(1.0, 2.0), seeds=2, max_tokens=12, parallel=8, judge_parallel=8)
    a = run_frontier(smollm2, gemma, PROMPTS, samplers, **kw)
    b = run_frontier(smollm2, gemma, PROMPTS, samplers, **kw)
    assert [s["text"] for s in a["samples"]] == [s["text"] for s in b["samples"]]
    assert a["rows"] == b["rows"]
    assert len(a["rows"]) == 6 and len(a["samples"]) == 3 * 2 * 2 * 2
    # two seeds differ somewhere (the seed reaches the sampler)
    texts = {(s["sampler"], s["temperature"], s["prompt_index"]): set() for s in a["samples"]}
    for s in a["samples"]:
        texts[(s["sampler"], s["temperature"], s["prompt_index"])].add(s["text"])
    assert any(len(v) == 2 for v in texts.values())
    for s in a["samples"]:
        assert s["judge_tokens"] >= 1 and s["judge_ppl"] > 1.0
        assert len(s["token_ids"]) == s["tokens"] == len(s["logprobs"])
