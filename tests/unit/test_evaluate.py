"""The evaluation's measures against hand-computed values, and chains' distributions."""

from __future__ import annotations

import math

import numpy as np
import pytest

from entropic_local.evaluation.metrics import epsilon_perplexity, js_divergence, js_onehot, sparsemax_score
from entropic_local.samplers.distribution import chain_distribution
from entropic_local.samplers import Candidates, SamplerChain


LN2 = math.log(2.0)


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
