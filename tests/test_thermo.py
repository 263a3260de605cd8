"""Free-energy sampler (samplers/thermo.py): the energy window is min-p, the free-energy
budget is top-p, the thermostat hits its entropy target, per-step fields, seeds."""

from __future__ import annotations

import math

import numpy as np
import pytest

from entropic_local.errors import InvalidSamplerSpec
from entropic_local.samplers import Candidates, MinP, SamplerChain, Temp, TopP
from entropic_local.samplers import PRESETS
from entropic_local.samplers.stages.free_energy import FreeEnergy, Thermostat, solve_temperature


def _random_logits(rng, n, kind):
    if kind == "normal":
        return (rng.standard_normal(n) * 2.0).astype(np.float32)
    # "real-like": a heavy tail of junk with a handful of strong candidates, as LM logits
    z = rng.standard_normal(n) * 1.5 - 2.0
    k = int(rng.integers(1, 12))
    top = rng.choice(n, size=k, replace=False)
    z[top] = 8.0 + rng.standard_normal(k) * 2.0
    return z.astype(np.float32)


CASES = [(seed, n, kind) for seed in range(4) for n in (1000, 49_152, 262_144)
         for kind in ("normal", "real")]


def _run(stages, z):
    cands = Candidates(z.shape[0])
    cands.reset(z)
    for s in stages:
        s.apply(cands)
    return cands


def _logsumexp(x):
    m = np.max(x)
    return float(m + np.log(np.sum(np.exp(x - m))))


@pytest.mark.parametrize("seed,n,kind", CASES)
@pytest.mark.parametrize("w,t", [(0.5, 1.0), (3.0, 1.0), (2.0, 0.7), (4.0, 1.5), (0.0, 1.0)])
def test_window_is_min_p(seed, n, kind, w, t):
    z = _random_logits(np.random.default_rng(seed), n, kind)
    fe = _run([FreeEnergy(w=w, t=t)], z)
    # min-p at temperature T with p_base = exp(-w/T), after the temperature
    mp = _run([Temp(t), MinP(math.exp(-w / t))], z)
    assert fe.n == mp.n
    np.testing.assert_array_equal(fe.ids[: fe.n], mp.ids[: mp.n])
    np.testing.assert_array_equal(fe.logits[: fe.n], mp.logits[: mp.n])   # both z/T
    # and llama.cpp's order: min-p on the raw logits, then the temperature
    mp2 = _run([MinP(math.exp(-w)), Temp(t)], z)
    np.testing.assert_array_equal(fe.ids[: fe.n], mp2.ids[: mp2.n])
    # the energy definition itself: E_i <= E_min + w
    e = -z.astype(np.float64)
    ref = np.flatnonzero(e <= e.min() + w)
    np.testing.assert_array_equal(np.sort(fe.ids[: fe.n]), ref)


@pytest.mark.parametrize("seed,n,kind", CASES)
@pytest.mark.parametrize("eps,t", [(0.05, 1.0), (0.1, 0.8), (0.5, 1.3), (0.01, 1.0), (2.0, 1.0)])
def test_budget_is_top_p(seed, n, kind, eps, t):
    z = _random_logits(np.random.default_rng(100 + seed), n, kind)
    fe = _run([FreeEnergy(mode="budget", eps=eps, t=t)], z)
    tp = _run([Temp(t), TopP(math.exp(-eps / t))], z)
    assert fe.n == tp.n
    np.testing.assert_array_equal(fe.ids[: fe.n], tp.ids[: tp.n])
    # the free-energy definition: the kept set S is the smallest lowest-energy set with
    # F_S - F <= eps (F = -T log Z at temperature T)
    x = z.astype(np.float64) / t
    f_all = -t * _logsumexp(x)
    kept = fe.ids[: fe.n]
    f_s = -t * _logsumexp(x[kept])
    assert f_s - f_all <= eps + 1e-9
    assert np.min(z[kept]) >= np.max(np.delete(z, kept)) if fe.n < n else True
    if fe.n > 1:
        smaller = np.sort(z[kept].astype(np.float64))[1:] / t      # drop the highest energy
        assert -t * _logsumexp(smaller) - f_all > eps - 1e-9


def test_budget_ends():
    z = _random_logits(np.random.default_rng(7), 5000, "real")
    assert _run([FreeEnergy(mode="budget", eps=0.0)], z).n == 5000     # whole ensemble
    c = _run([FreeEnergy(mode="budget", eps=math.inf)], z)
    assert c.n == 1 and c.ids[0] == int(np.argmax(z))                  # ground state
    c = _run([FreeEnergy(w=math.inf)], z)
    assert c.n == 5000


def _kept_entropy(z, n_keep_ids, t):
    x = z[n_keep_ids].astype(np.float64) / t
    p = np.exp(x - _logsumexp(x))
    return float(-np.sum(p * np.log(p)))


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("n,w", [(1000, math.inf), (49_152, 6.0), (262_144, 5.0), (262_144, math.inf)])
def test_thermostat_hits_target(seed, n, w):
    rng = np.random.default_rng(200 + seed)
    z = _random_logits(rng, n, "real" if seed % 2 else "normal")
    kept = np.flatnonzero(z >= z.max() - w)
    h_lo, h_hi = _kept_entropy(z, kept, 0.25), _kept_entropy(z, kept, 2.0)
    target = float(h_lo + (h_hi - h_lo) * rng.uniform(0.1, 0.9))
    st = Thermostat(target=target, w=w)
    c = _run([st], z)
    info = st.info()
    assert set(info) >= {"free_energy", "temperature", "beta", "kept_entropy"}
    assert abs(info["kept_entropy"] - target) < 0.02, (info, target)
    t = info["temperature"]
    assert 0.25 <= t <= 2.0 and info["beta"] == pytest.approx(1.0 / t)
    assert abs(_kept_entropy(z, kept, t) - target) < 0.02
    np.testing.assert_array_equal(np.sort(c.ids[: c.n]), kept)
    # the recorded free energy is -T log Z of the kept set at the sampling temperature
    assert info["free_energy"] == pytest.approx(-t * _logsumexp(z[kept].astype(np.float64) / t),
                                                rel=1e-9, abs=1e-9)
    # and the logits are left divided by T for the final dist
    np.testing.assert_allclose(np.sort(c.logits[: c.n]), np.sort(z[kept] / np.float32(t)),
                               rtol=1e-6)


def test_thermostat_more_iterations_converge():
    z = _random_logits(np.random.default_rng(5), 49_152, "normal")
    for iters in (1, 2, 4, 8):
        t, evals = solve_temperature(z, z.shape[0], 4.0, 1.0, 0.25, 2.0, iters)
        assert evals <= iters
    t, _ = solve_temperature(z, z.shape[0], 4.0, 1.0, 0.25, 2.0, 12)
    assert abs(_kept_entropy(z, np.arange(z.shape[0]), t) - 4.0) < 1e-3


def test_thermostat_clamps():
    z = _random_logits(np.random.default_rng(3), 1000, "normal")
    kept = np.flatnonzero(z >= z.max() - 3.0)
    # unreachable from above: more entropy than ln|S| -> t_max
    st = Thermostat(target=math.log(len(kept)) + 0.5, w=3.0)
    _run([st], z)
    assert st.info()["temperature"] == 2.0 and st.info()["beta"] == 0.5
    assert st.info()["kept_entropy"] < math.log(len(kept))
    # unreachable from below: a target of 0 with distinct logits -> t_min
    st = Thermostat(target=0.0, w=3.0, t_min=0.5)
    _run([st], z)
    assert st.info()["temperature"] == 0.5
    # a one-token window: H = 0 at every T -> t_max, and the token is kept
    z1 = np.array([5.0, 1.0, 0.0, -1.0], dtype=np.float32)
    st = Thermostat(target=1.0, w=1.0)
    c = _run([st], z1)
    assert c.n == 1 and c.ids[0] == 0
    assert st.info()["temperature"] == 2.0 and st.info()["kept_entropy"] == 0.0


def test_thermostat_mode_equals_stage():
    z = _random_logits(np.random.default_rng(11), 49_152, "real")
    a, b = Thermostat(target=0.8, w=4.0), FreeEnergy(mode="thermostat", target=0.8, w=4.0)
    ca, cb = _run([a], z), _run([b], z)
    np.testing.assert_array_equal(ca.ids[: ca.n], cb.ids[: cb.n])
    assert a.info() == b.info()


def test_fields_recorded_every_mode():
    z = _random_logits(np.random.default_rng(1), 1000, "real")
    for spec in ("free_energy", "free_energy:mode=budget,eps=0.2,t=0.9", "thermostat"):
        chain = SamplerChain.parse(spec, seed=1)
        cands = Candidates(1000)
        cands.reset(z)
        chain.apply(cands)
        info = chain.step_info()
        for key in ("free_energy", "temperature", "beta", "kept_entropy"):
            assert key in info and math.isfinite(info[key]), (spec, key)
        assert info["beta"] == pytest.approx(1.0 / info["temperature"])


def _tokens(spec, seed, steps=40, n=2000):
    rng = np.random.default_rng(42)
    chain = SamplerChain.parse(spec, seed=seed)
    cands = Candidates(n)
    out = []
    for _ in range(steps):
        cands.reset(_random_logits(rng, n, "normal") * np.float32(0.6))
        chain.apply(cands)
        tok = cands.selected_token
        chain.accept(tok)
        out.append(tok)
    return out


@pytest.mark.parametrize("spec", ["free_energy", "free_energy:mode=budget,eps=0.3", "thermostat"])
def test_reproducible_with_seed(spec):
    a, b = _tokens(spec, 5), _tokens(spec, 5)
    assert a == b
    assert _tokens(spec, 6) != a


def test_sampling_frequencies_window():
    # the final dist samples softmax(z/T) over the window
    z = np.array([2.0, 1.5, 0.0, -3.0, 1.9], dtype=np.float32)
    chain = SamplerChain.parse("free_energy:w=2.5,t=0.5", seed=3)
    cands = Candidates(5)
    counts = np.zeros(5)
    for _ in range(20_000):
        cands.reset(z)
        chain.apply(cands)
        counts[cands.selected_token] += 1
    keep = z >= z.max() - 2.5
    p = np.where(keep, np.exp(z / 0.5), 0.0)
    p /= p.sum()
    np.testing.assert_allclose(counts / counts.sum(), p, atol=0.015)


@pytest.mark.parametrize("spec", [
    "free_energy", "free_energy:w=2.0,t=0.8", "free_energy:mode=budget", "free_energy:mode=budget,eps=0.1",
    "free_energy:mode=thermostat", "free_energy:mode=thermostat,target=0.5,w=inf,iters=8",
    "thermostat", "thermostat=1.5", "thermostat:target=1.5,t_min=0.1,t_max=3.0",
    "penalties:repeat=1.1,free_energy:w=1.0", "thermostat=0.7,greedy",
])
def test_spec_round_trip(spec):
    c = SamplerChain.parse(spec)
    assert SamplerChain.parse(str(c)) == c
    assert str(SamplerChain.parse(str(c))) == str(c)


def test_canonical_forms():
    # the stage at its defaults keeps its dist: bare "free_energy" is the preset (t=0.8)
    assert str(SamplerChain.parse("free_energy:mode=window,w=3.0")) == "free_energy,dist"
    assert str(SamplerChain.parse("thermostat:target=1.5")) == "thermostat=1.5"
    assert str(SamplerChain.parse("free_energy:mode=budget,eps=0.05")) == "free_energy:mode=budget"
    assert SamplerChain.parse("free_energy:mode=thermostat,target=2")["free_energy"].mode == "thermostat"


@pytest.mark.parametrize("spec,message", [
    ("free_energy:mode=hot", "mode must be one of window, budget, thermostat"),
    ("free_energy:eps=0.1", "'eps' does not apply to mode=window"),
    ("free_energy:mode=budget,w=2", "'w' does not apply to mode=budget"),
    ("free_energy:mode=budget,target=2", "'target' does not apply to mode=budget"),
    ("free_energy:w=-1", "w=-1.0 is out of range [0, inf]"),
    ("free_energy:t=0", "t=0.0 is out of range (0, inf)"),
    ("thermostat=-1", "target=-1.0 is out of range"),
    ("thermostat:t_min=3", "t_min=3.0 is above t_max=2.0"),
    ("thermostat:iters=0", "iters=0 is out of range [1, 64]"),
    ("thermostat:mode=window", "unknown"),
    ("thermostat:eps=0.1", "unknown parameter 'eps'"),
    ("free_energy:w=abc", "w must be a number"),
])
def test_invalid_params(spec, message):
    with pytest.raises(InvalidSamplerSpec) as e:
        SamplerChain.parse(spec)
    assert message in str(e.value)


def test_python_api_validation():
    with pytest.raises(InvalidSamplerSpec, match="'eps' does not apply"):
        FreeEnergy(mode="window", eps=0.3)
    with pytest.raises(InvalidSamplerSpec, match="mode must be one of"):
        FreeEnergy(mode="hot")
    assert FreeEnergy(mode="budget", eps=0.3).spec() == "free_energy:mode=budget,eps=0.3"


def test_presets_parse():
    for name in ("free_energy", "thermostat"):
        spec = PRESETS[name]
        chain = SamplerChain.parse(spec)
        assert name in chain
        assert SamplerChain.parse(str(chain)) == chain
