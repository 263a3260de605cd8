"""Teacher-forced evaluation on real text with the real model."""

from __future__ import annotations

import math

import numpy as np
import pytest

from entropic_local import kernels as K
from entropic_local.errors import UsageError
from entropic_local.evaluation.scoring import DEFAULT_SAMPLERS, evaluate_text, format_eval_table
from entropic_local.samplers.chain import SamplerChain


LN2 = math.log(2.0)


TEXT = ("The river rises in the hills to the north of the town and flows south through a wide "
        "valley of farms and small villages. In spring, melting snow fills it to the edge of its "
        "banks, and the old stone bridge near the market is sometimes closed for a few days.")


def test_evaluate_text_smollm2(smollm2):
    samplers = {
        "softmax T=1.0": "temp=1.0", "softmax T=0.7": "temp=0.7", "top-k 40": "top_k=40",
        "min-p 0.1": "min_p=0.1", "entmax 1.5": "entmax=1.5", "aes": "aes",
        "thermostat": "thermostat", "greedy": "greedy",
    }
    r = evaluate_text(smollm2, TEXT, samplers, max_tokens=40)
    assert r["tokens"] == 40 and r["decode"] == "sequential" and r["n_vocab"] == 49152
    assert r["truncated"]
    s = r["samplers"]
    assert set(s) == set(samplers)
    for name, row in s.items():
        assert row["eps_perplexity"] >= 1.0
        assert 0.0 <= row["js"] <= LN2
        assert 0.0 <= row["sparsemax_score"] <= 1.0
        assert row["support"] >= 1.0
    full = s["softmax T=1.0"]
    assert full["gold_cut"] == 0.0
    assert full["support"] == pytest.approx(49152, rel=0.01)     # dense (up to underflow)
    assert s["greedy"]["support"] == 1.0
    assert s["top-k 40"]["support"] == 40.0
    assert s["entmax 1.5"]["support"] < 100
    assert 1.0 <= s["aes"]["info"]["alpha"] <= 2.0
    assert "temperature" in s["thermostat"]["info"]
    # the true perplexity of the model on this text, computed independently
    engine = smollm2.engine
    toks = engine.tokenize(TEXT, add_special=True, parse_special=False)
    nll = []
    engine.eval_prompt(toks[:1])
    for i in range(40):
        if i:
            engine.eval_token(toks[i])
        raw = engine.logits()
        nll.append(float(K.logit_stats(raw, 1.0)[1]) - float(raw[toks[i + 1]]))
    p_gold = np.exp(-np.array(nll))
    eps, v = r["epsilon"], r["n_vocab"]
    want = math.exp(-np.mean(np.log((p_gold + eps) / (1 + v * eps))))
    assert full["eps_perplexity"] == pytest.approx(want, rel=1e-6)
    assert full["eps_perplexity"] > math.exp(np.mean(nll))      # the ε smoothing costs a little
    table = format_eval_table(r)
    assert table.count("\n| ") == len(samplers) + 1
    assert "| aes | `aes` |" in table and "ε-perplexity" in table


def test_evaluate_defaults_and_errors(smollm2):
    r = evaluate_text(smollm2, TEXT, max_tokens=5)
    assert set(r["samplers"]) == set(DEFAULT_SAMPLERS)
    with pytest.raises(UsageError):
        evaluate_text(smollm2, "   ", {"a": "temp=1.0"})
    with pytest.raises(UsageError):
        evaluate_text(smollm2, TEXT, {"a": "temp=1.0"}, max_tokens=0)


def test_eval_scores_with_one_blas_thread(smollm2):
    """numpy's BLAS threads would fight llama.cpp's for the cores while scoring: evaluate_text
    runs its numpy work with one BLAS thread, and lifts the limit afterwards."""
    from threadpoolctl import threadpool_info, threadpool_limits

    from entropic_local.samplers import Dist, Sampler

    def blas_threads() -> int:
        return max(i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas")

    seen: list[int] = []

    class Probe(Sampler):
        name = "blas_probe"

        def apply(self, cands):
            seen.append(blas_threads())

        def spec(self):
            return self.name

    with threadpool_limits(limits=2, user_api="blas"):
        assert blas_threads() == 2
        evaluate_text(smollm2, "The capital of France is Paris.", {"probe": SamplerChain([Probe(), Dist(0)])},
                      max_tokens=3)
        assert seen and set(seen) == {1}
        assert blas_threads() == 2
