"""Teacher-forced evaluation (entropic_local/evaluate.py): the metrics against hand-computed
values, chains' distributions, and a short real-text evaluation on SmolLM2."""

from __future__ import annotations

import math

import numpy as np
import pytest

from entropic_local import kernels as K
from entropic_local.errors import UsageError
from entropic_local.evaluation.metrics import epsilon_perplexity, js_divergence, js_onehot, sparsemax_score
from entropic_local.evaluation.scoring import DEFAULT_SAMPLERS, evaluate_text, format_eval_table
from entropic_local.samplers.distribution import chain_distribution
from entropic_local.samplers import Candidates, SamplerChain

LN2 = math.log(2.0)


# ---------------------------------------------------------------------------------------
# metrics, by hand


def test_js_onehot_hand_values():
    assert js_onehot(1.0) == 0.0
    assert js_onehot(0.0) == pytest.approx(LN2)
    # p = [0.5, 0.5], gold 0: m = [0.75, 0.25]
    # KL(p||m) = 0.5 ln(0.5/0.75) + 0.5 ln(0.5/0.25) = 0.5 ln(2/3) + 0.5 ln 2
    # KL(e||m) = ln(1/0.75)
    want = 0.5 * (0.5 * math.log(2 / 3) + 0.5 * LN2 + math.log(4 / 3))
    assert want == pytest.approx(0.215761, abs=1e-6)
    assert js_onehot(0.5) == pytest.approx(want, abs=1e-12)
    assert js_divergence([0.5, 0.5], [1.0, 0.0]) == pytest.approx(want, abs=1e-12)


@pytest.mark.parametrize("p", [[0.2, 0.3, 0.5], [0.7, 0.1, 0.1, 0.1], [1.0, 0.0], [0.0, 1.0],
                               [0.25, 0.25, 0.25, 0.25]])
def test_js_onehot_matches_general_form(p):
    p = np.array(p)
    for y in range(p.size):
        e = np.zeros(p.size)
        e[y] = 1.0
        assert js_onehot(p[y]) == pytest.approx(js_divergence(p, e), abs=1e-12)
        assert 0.0 <= js_onehot(p[y]) <= LN2 + 1e-15


def test_sparsemax_score_hand_values():
    assert sparsemax_score([0.5, 0.5], 0.5) == pytest.approx(0.75)   # 0.5 + ½(1 - 0.5)
    assert sparsemax_score([1.0], 1.0) == 1.0                         # one-hot on the gold
    assert sparsemax_score([1.0], 0.0) == 0.0                         # one-hot elsewhere
    # [0.2, 0.3, 0.5], gold = 0.3: 0.3 + ½(1 - 0.38) = 0.61
    assert sparsemax_score([0.2, 0.3, 0.5], 0.3) == pytest.approx(0.61)
    # uniform over 4 with the gold excluded from the support: ½(1 - 1/4)
    assert sparsemax_score([0.25] * 4, 0.0) == pytest.approx(0.375)


def test_epsilon_perplexity_hand_values():
    # ε = 0: plain perplexity; p_gold = [0.5, 0.25] -> exp(-(ln .5 + ln .25)/2) = sqrt(8)
    assert epsilon_perplexity([0.5, 0.25], 4, 0.0) == pytest.approx(math.sqrt(8))
    # always right: (1 + |V| ε)/(1 + ε); |V| = 4, ε = 0.1 -> 1.4/1.1
    assert epsilon_perplexity([1.0, 1.0], 4, 0.1) == pytest.approx(1.4 / 1.1)
    # gold cut: p = 0 -> (1 + |V| ε)/ε; |V| = 4, ε = 0.1 -> 14
    assert epsilon_perplexity([0.0], 4, 0.1) == pytest.approx(14.0)
    # mixed: exp(-(ln(0.6/1.4) + ln(0.1/1.4))/2)
    want = math.exp(-(math.log(0.6 / 1.4) + math.log(0.1 / 1.4)) / 2)
    assert epsilon_perplexity([0.5, 0.0], 4, 0.1) == pytest.approx(want)


# ---------------------------------------------------------------------------------------
# a chain's distribution


def _dist(spec, z):
    c = Candidates(z.shape[0])
    c.reset(z)
    out = np.zeros(z.shape[0])
    n = chain_distribution(SamplerChain.parse(spec, seed=0), c, out)
    full = np.zeros(z.shape[0])
    full[c.ids[:n]] = out[:n]
    return full


def _softmax(x):
    e = np.exp(x - x.max())
    return e / e.sum()


def test_chain_distributions_tiny():
    z = np.array([-2.0, 0.0, 0.5], dtype=np.float32)
    np.testing.assert_allclose(_dist("temp=1.0", z), [0.0486, 0.3592, 0.5922], atol=1e-4)
    np.testing.assert_allclose(_dist("entmax=2.0", z), [0, 0.25, 0.75], atol=1e-6)
    np.testing.assert_allclose(_dist("entmax=1.5", z), [0, 0.326007, 0.673993], atol=1e-6)
    np.testing.assert_allclose(_dist("greedy", z), [0, 0, 1])
    np.testing.assert_allclose(_dist("temp=0.5", z), _softmax(z.astype(np.float64) / 0.5), rtol=1e-6)
    np.testing.assert_allclose(_dist("top_k=2", z), [0, *_softmax(np.array([0.0, 0.5]))], rtol=1e-6)
    z5 = np.array([1, 2, 3, 4, 5], dtype=np.float32)
    assert _dist("entmax=1.25", z5).max() == pytest.approx(0.749986, abs=1e-5)


def test_chain_distribution_draws_nothing():
    z = np.array([0.0, 1.0, 2.0], dtype=np.float32)
    chain = SamplerChain.parse("top_k=2", seed=5)
    c = Candidates(3)
    out = np.zeros(3)
    for _ in range(3):
        c.reset(z)
        chain_distribution(chain, c, out)
    ref = SamplerChain.parse("top_k=2", seed=5)
    c.reset(z)
    chain.apply(c)
    a = c.selected_token
    c.reset(z)
    ref.apply(c)
    assert a == c.selected_token


def test_free_energy_and_thermostat_distributions():
    z = np.array([3.0, 2.5, 0.0, -1.0, 2.9], dtype=np.float32)
    # window w = 3 at T = 0.8: softmax(z/0.8) over z >= max - 3
    keep = z >= 0.0
    want = np.where(keep, np.exp(z / 0.8), 0.0)
    np.testing.assert_allclose(_dist("free_energy:t=0.8", z), want / want.sum(), rtol=1e-5)
    np.testing.assert_allclose(_dist("free_energy:w=2.9,t=0.8", z), _dist("min_p=0.055,temp=0.8", z),
                               rtol=1e-6)
    p = _dist("thermostat=0.9", z)
    nz = p[p > 0]
    assert -np.sum(nz * np.log(nz)) == pytest.approx(0.9, abs=2e-3)


# ---------------------------------------------------------------------------------------
# real text

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
