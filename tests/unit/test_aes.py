"""Adaptive entropy sparsity (samplers/stages/entmax.py): the map D(S, V), entmax sampling, support,
specs."""

from __future__ import annotations

import math

import numpy as np
import pytest

from entropic_local import kernels as K
from entropic_local.errors import InvalidSamplerSpec
from entropic_local.samplers import Candidates, SamplerChain
from entropic_local.samplers.stages import entmax as aes_mod
from entropic_local.samplers.stages.entmax import AES, ALPHA_SNAP, Entmax, aes_alpha, effective_alpha

S_LO, S_HI, V_SPLIT, A_MAX = aes_mod.S_LO, aes_mod.S_HI, aes_mod.V_SPLIT, aes_mod.ALPHA_MAX


# The map's shape with a softmax floor (alpha_min = 1.0); the default floor: test_frontier.py
@pytest.mark.parametrize("v", [0.0, 0.1, V_SPLIT, 5.0, 50.0])
def test_map_ends(v):
    for s in (S_HI, S_HI + 0.01, 5.0, 12.5, 1e3):
        assert aes_alpha(s, v, alpha_min=1.0) == 1.0
    for s in (S_LO, S_LO - 0.01, 0.1, 0.0):
        assert aes_alpha(s, v, alpha_min=1.0) == A_MAX
    assert aes_alpha(0.0, v, alpha_max=1.5, alpha_min=1.0) == 1.5
    assert aes_alpha(10.0, v, alpha_max=1.5, alpha_min=1.0) == 1.0


@pytest.mark.parametrize("v", [V_SPLIT, V_SPLIT + 0.5, 10.0])
@pytest.mark.parametrize("alpha_max", [1.3, 2.0])
def test_map_continuous_and_monotone_for_high_varentropy(v, alpha_max):
    s = np.linspace(S_LO - 1.0, S_HI + 1.0, 20001)
    a = np.array([aes_alpha(x, v, alpha_max=alpha_max, alpha_min=1.0) for x in s])
    assert np.all(np.diff(a) <= 0.0)                       # non-increasing in S
    ds = s[1] - s[0]
    # Lipschitz with the smoothstep's slope 1.5 (α_max - 1)/(s_hi - s_lo): no jumps
    assert np.max(np.abs(np.diff(a))) <= 1.5 * (alpha_max - 1) / (S_HI - S_LO) * ds * 1.001
    assert a[0] == alpha_max and a[-1] == 1.0
    mid = aes_alpha(0.5 * (S_LO + S_HI), v, alpha_max=alpha_max, alpha_min=1.0)
    assert mid == pytest.approx(1 + 0.5 * (alpha_max - 1))
    # C¹ at the bounds: zero slope where the map meets them
    h = 1e-4
    assert abs(aes_alpha(S_LO + h, v, alpha_max=alpha_max, alpha_min=1.0) - alpha_max) < 1e-6
    assert abs(aes_alpha(S_HI - h, v, alpha_max=alpha_max, alpha_min=1.0) - 1.0) < 1e-6


@pytest.mark.parametrize("v", [0.0, 0.2, V_SPLIT - 1e-9])
def test_map_snaps_for_low_varentropy(v):
    s = np.linspace(S_LO - 1.0, S_HI + 1.0, 2001)
    a = np.array([aes_alpha(x, v, alpha_min=1.0) for x in s])
    assert set(np.unique(a)) <= {1.0, A_MAX}
    mid = 0.5 * (S_LO + S_HI)
    assert np.all(a[s <= mid] == A_MAX)
    assert np.all(a[s > mid] == 1.0)
    assert np.all(np.diff(a) <= 0.0)


def test_map_formula():
    s = S_LO + 0.3 * (S_HI - S_LO)
    x = 0.7
    assert aes_alpha(s, V_SPLIT, alpha_min=1.0) == pytest.approx(1 + (A_MAX - 1) * x * x * (3 - 2 * x))
    with pytest.raises(ValueError, match="NaN"):
        aes_alpha(float("nan"), 1.0)


def test_snap_near_one():
    assert effective_alpha(1.0) == 1.0
    assert effective_alpha(1.04) == 1.0
    assert effective_alpha(ALPHA_SNAP - 1e-9) == 1.0
    assert effective_alpha(ALPHA_SNAP) == ALPHA_SNAP
    assert effective_alpha(1.7) == 1.7


def _cands(z, entropy=None, varentropy=None):
    c = Candidates(z.shape[0])
    stats = K.logit_stats(z, 1.0)
    if entropy is not None:
        stats = (stats[0], stats[1], entropy, varentropy)
    c.reset(z, stats)
    return c


def _entmax_dense(z, alpha, t=1.0):
    out = np.zeros(z.shape[0], dtype=np.float64)
    K.entmax(z, alpha, t, out)
    return out


@pytest.mark.parametrize("alpha,t", [(1.0, 1.0), (1.2, 1.0), (1.5, 1.0), (1.5, 0.7), (2.0, 1.0),
                                     (2.0, 3.0)])
def test_entmax_sampling_frequencies(alpha, t):
    z = np.array([1.0, 2.5, 2.0, -1.0, 2.2, 0.3, 1.8, -np.inf], dtype=np.float32)
    p = _entmax_dense(z, alpha, t)
    chain = SamplerChain([Entmax(alpha, t)], seed=123)
    counts = np.zeros(z.shape[0])
    c = Candidates(z.shape[0])
    draws = 30_000
    support = int(np.count_nonzero(p > 0))
    for _ in range(draws):
        c.reset(z)
        chain.apply(c)
        counts[c.selected_token] += 1
    assert chain.step_info() == {"alpha": alpha, "support": support}
    freq = counts / draws
    np.testing.assert_allclose(freq, p, atol=4 * math.sqrt(0.25 / draws))
    assert np.all(counts[p == 0] == 0)          # never outside the support


@pytest.mark.parametrize("n", [1000, 262_144])
@pytest.mark.parametrize("alpha", [1.1, 1.5, 2.0])
def test_entmax_support_and_distribution(n, alpha):
    rng = np.random.default_rng(int(alpha * 10) + n)
    z = (rng.standard_normal(n) * 2).astype(np.float32)
    p = _entmax_dense(z, alpha)
    st = Entmax(alpha, seed=1)
    c = _cands(z)
    probs = st.distribution(c)
    assert c.n == int(np.count_nonzero(p > 0)) == st.info()["support"]
    np.testing.assert_allclose(probs, p[c.ids[: c.n]], rtol=1e-6, atol=1e-12)
    assert probs.sum() == pytest.approx(1.0)
    # apply: same truncation, and a token from the support
    c2 = _cands(z)
    st.apply(c2)
    assert c2.n == c.n and p[c2.selected_token] > 0
    assert st.info() == {"alpha": alpha, "support": c.n}


def test_aes_alpha_follows_the_map():
    z = np.array([3.0, 2.0, 1.5, 1.0, 0.0, -2.0], dtype=np.float32)
    st = AES(seed=0)
    for s, v in [(0.1, 0.1), (0.1, 5.0), (S_HI + 1, 0.1), (S_HI + 1, 5.0),
                 (0.5 * (S_LO + S_HI), 5.0), (S_LO + 0.2 * (S_HI - S_LO), 0.1),
                 (S_LO + 0.8 * (S_HI - S_LO), 0.1), (S_HI - 0.05, 5.0)]:
        c = _cands(z, s, v)
        st.apply(c)
        want = effective_alpha(aes_alpha(s, v))
        info = st.info()
        assert info["alpha"] == want
        assert info["support"] == int(np.count_nonzero(_entmax_dense(z, want) > 0))
        assert c.selected >= 0


def test_aes_uses_the_full_distribution_stats():
    # S and V come from cands (the model's full distribution), not from the live set
    z = (np.random.default_rng(0).standard_normal(5000) * 0.3).astype(np.float32)
    chain = SamplerChain.parse("top_k=3,aes", seed=0)
    c = _cands(z)                                   # S ≈ ln 5000 ≈ 8.5 > s_hi
    chain.apply(c)
    assert chain.step_info()["alpha"] == aes_mod.ALPHA_MIN and chain.step_info()["support"] == 3


def test_aes_reproducible():
    rng = np.random.default_rng(9)
    zs = [(rng.standard_normal(3000) * rng.uniform(1, 15)).astype(np.float32) for _ in range(40)]

    def run(seed):
        chain = SamplerChain.parse("aes", seed=seed)
        out = []
        for z in zs:
            c = _cands(z)
            chain.apply(c)
            out.append((c.selected_token, chain.step_info()["alpha"]))
            chain.accept(c.selected_token)
        return out

    a = run(4)
    assert a == run(4)
    assert a != run(5)
    assert len({x[1] for x in a}) > 2               # α really moves


def test_selecting_stages_end_the_chain():
    with pytest.raises(InvalidSamplerSpec, match="must be the last stage"):
        SamplerChain.parse("aes,temp=0.5")
    with pytest.raises(InvalidSamplerSpec, match="must be the last stage"):
        SamplerChain.parse("entmax=1.5,dist")
    c = SamplerChain.parse("top_k=40,entmax=1.5")
    assert len(c) == 2 and c.stages[-1].name == "entmax"      # no dist appended


@pytest.mark.parametrize("spec", [
    "entmax", "entmax=1.5", "entmax=1.2", "entmax:alpha=1.2,t=0.8", "entmax:t=2.0", "entmax=2.0",
    "entmax=1.0", "aes", "aes:s_lo=1.0", "aes:s_lo=0.2,s_hi=4.0,v_split=2.0,alpha_max=1.5,t=0.9",
    "top_k=40,min_p=0.05,aes", "penalties:repeat=1.1,entmax=1.3",
])
def test_spec_round_trip(spec):
    c = SamplerChain.parse(spec)
    assert SamplerChain.parse(str(c)) == c
    assert str(SamplerChain.parse(str(c))) == str(c)


def test_canonical_forms():
    assert str(SamplerChain.parse("entmax:alpha=1.5")) == "entmax"
    assert str(SamplerChain.parse("entmax:alpha=1.2")) == "entmax=1.2"
    assert str(SamplerChain.parse("entmax:alpha=2,t=0.5")) == "entmax:alpha=2.0,t=0.5"
    assert str(SamplerChain.parse("aes:alpha_max=2.0")) == "aes"


@pytest.mark.parametrize("spec,message", [
    ("entmax=2.5", "entmax: alpha=2.5 is out of range [1, 2]"),
    ("entmax=0.9", "entmax: alpha=0.9 is out of range [1, 2]"),
    ("entmax:t=0", "entmax: t=0.0 is out of range (0, inf)"),
    ("entmax=x", "entmax: alpha must be a number, got 'x'"),
    ("aes=1.5", "aes has no main parameter"),
    ("aes:alpha_max=3", "aes: alpha_max=3.0 is out of range [1, 2]"),
    ("aes:s_lo=3,s_hi=2", "aes: s_lo=3.0 must be below s_hi=2.0"),
    ("aes:s_lo=-1", "aes: s_lo=-1.0 is out of range [0, inf)"),
    ("aes:v_split=nan", "v_split"),
    ("aes:beta=1", "unknown parameter 'beta'"),
])
def test_invalid_params(spec, message):
    with pytest.raises(InvalidSamplerSpec) as e:
        SamplerChain.parse(spec)
    assert message in str(e.value)


def test_clone_and_reset_keep_streams():
    z = (np.random.default_rng(1).standard_normal(100) * 0.5).astype(np.float32)
    a = SamplerChain.parse("entmax=1.2", seed=7)
    b = a.clone()
    for _ in range(10):
        ca, cb = _cands(z), _cands(z)
        a.apply(ca)
        b.apply(cb)
        assert ca.selected_token == cb.selected_token
    assert a.seed == 7
