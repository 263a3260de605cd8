"""Behaviour of the sampler stages, the chain and the logits-processor adapter.

Each stage runs on a crafted distribution and is compared with a plain numpy computation
of the same rule (kept set, order, values).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from entropic_local.errors import InvalidSamplerSpec
from entropic_local.samplers import (
    Candidates, Dist, DynTemp, Greedy, LogitBias, MinP, Penalties, Sampler, SamplerChain,
    Stage, Temp, TopK, TopNSigma, TopP, TypicalP,
)


V = 64


def load(z) -> Candidates:
    z = np.asarray(z, dtype=np.float32)
    c = Candidates(z.shape[0])
    c.reset(z)
    return c


def live(c: Candidates) -> tuple[np.ndarray, np.ndarray]:
    return c.ids[: c.n].copy(), c.logits[: c.n].copy()


def probs(z) -> np.ndarray:
    z = np.asarray(z, dtype=np.float64)
    e = np.exp(z - z.max())
    return e / e.sum()


@pytest.fixture
def z() -> np.ndarray:
    """Distinct logits in a random order, spread so that probabilities vary a lot."""
    rng = np.random.default_rng(7)
    return rng.permutation(np.linspace(-6.0, 6.0, V)).astype(np.float32) + \
        rng.normal(0, 0.01, V).astype(np.float32)


def desc(z) -> np.ndarray:
    return np.argsort(-np.asarray(z), kind="stable")


def test_reset_loads_identity_and_stats(z):
    c = load(z)
    assert c.n == V and c.identity and not c.sorted and c.selected == -1
    assert np.array_equal(c.ids, np.arange(V))
    p = probs(z)
    assert c.entropy == pytest.approx(-(p * np.log(p)).sum(), rel=1e-6)


@pytest.mark.parametrize("k", [1, 5, 17, V, V + 10])
def test_top_k_keeps_k_largest_sorted(z, k):
    c = load(z)
    TopK(k).apply(c)
    ids, vals = live(c)
    want = desc(z)[: min(k, V)]
    assert np.array_equal(ids, want)
    assert np.array_equal(vals, z[want])
    assert c.sorted and not c.identity


def _top_p_ref(z, p, min_keep=1):
    order = desc(z)
    cum = np.cumsum(probs(z)[order])
    k = int(np.argmax(cum >= p)) + 1
    return order[: max(k, min_keep)]


@pytest.mark.parametrize("p", [0.3, 0.6, 0.9, 0.99])
def test_top_p_keeps_smallest_nucleus_sorted(z, p):
    want = _top_p_ref(z, p)
    c = load(z)
    TopP(p).apply(c)
    ids, vals = live(c)
    assert np.array_equal(ids, want)
    assert np.array_equal(vals, z[want])
    assert c.sorted and not c.identity
    # the kept mass reaches p and dropping the last kept token would not
    pr = probs(z)
    assert pr[ids].sum() >= p > pr[ids[:-1]].sum()


def test_top_p_min_keep_and_presorted_input(z):
    c = load(z)
    TopP(1e-6, min_keep=4).apply(c)
    assert np.array_equal(live(c)[0], desc(z)[:4])
    # after top_k the set is sorted: top_p takes the sorted path and agrees
    c = load(z)
    TopK(30).apply(c)
    TopP(0.9).apply(c)
    top30 = desc(z)[:30]
    assert np.array_equal(live(c)[0], top30[_top_p_ref(z[top30], 0.9)])


def test_top_p_one_is_a_no_op(z):
    c = load(z)
    TopP(1.0).apply(c)
    assert c.n == V and c.identity and np.array_equal(live(c)[1], z)


@pytest.mark.parametrize("p", [0.01, 0.05, 0.2, 0.8])
def test_min_p_keeps_energy_window_in_order(z, p):
    c = load(z)
    MinP(p).apply(c)
    ids, vals = live(c)
    pr = probs(z)
    want = np.nonzero(pr >= p * pr.max())[0]  # original (id) order kept
    assert np.array_equal(ids, want)
    assert np.array_equal(vals, z[want])
    # equivalently an energy window of width ln(1/p) below the max logit
    assert np.all(vals >= z.max() + math.log(p) - 1e-5)
    assert not c.sorted


def test_min_p_min_keep_and_no_op(z):
    c = load(z)
    MinP(1.0, min_keep=3).apply(c)
    assert sorted(live(c)[0].tolist()) == sorted(desc(z)[:3].tolist())
    c = load(z)
    MinP(0.0).apply(c)
    assert c.n == V and c.identity


def test_min_p_keeps_sorted_flag():
    c = load([5.0, 4.0, 1.0, 0.0])
    TopK(4).apply(c)
    MinP(0.1).apply(c)
    assert c.sorted and live(c)[0].tolist() == [0, 1]


def _typical_ref(z, p, min_keep=1):
    # llama.cpp: rank by |-log p - H|, keep the shortest prefix whose mass is > p
    pr = probs(z)
    logp = np.log(pr)
    h = -(pr * logp).sum()
    order = np.argsort(np.abs(-logp - h), kind="stable")
    cum = np.cumsum(pr[order])
    k = int(np.argmax(cum > p)) + 1
    return order[: max(k, min_keep)]


@pytest.mark.parametrize("p", [0.2, 0.5, 0.9])
def test_typical_p_keeps_most_typical_mass(z, p):
    c = load(z)
    TypicalP(p).apply(c)
    ids, vals = live(c)
    want = _typical_ref(z, p)
    assert sorted(ids.tolist()) == sorted(want.tolist())
    assert np.array_equal(vals, z[ids])
    assert not c.sorted and not c.identity


def test_typical_p_min_keep(z):
    c = load(z)
    TypicalP(1e-6, min_keep=5).apply(c)
    assert c.n == 5


def test_top_n_sigma_known_answer():
    c = load([3.0, 2.0, 1.0, 0.0])  # sigma = 1.118034: keeps z >= 1.88
    TopNSigma(1.0).apply(c)
    assert live(c)[0].tolist() == [0, 1]


@pytest.mark.parametrize("n", [0.5, 1.0, 2.0])
def test_top_n_sigma_matches_numpy_and_keeps_order(z, n):
    zz = z.copy()
    zz[[3, 9]] = -np.inf  # masked entries are not part of sigma
    c = load(zz)
    TopNSigma(n).apply(c)
    finite = zz[np.isfinite(zz)].astype(np.float64)
    want = np.nonzero(zz >= finite.max() - n * finite.std())[0]
    assert np.array_equal(live(c)[0], want)


def test_top_n_sigma_is_temperature_invariant(z):
    a, b = load(z), load(z * 3.0)
    TopNSigma(1.0).apply(a)
    TopNSigma(1.0).apply(b)
    assert np.array_equal(live(a)[0], live(b)[0])


@pytest.mark.parametrize("t", [0.25, 0.8, 1.0, 3.0])
def test_temp_scales_and_keeps_order(z, t):
    c = load(z)
    TopK(10).apply(c)
    Temp(t).apply(c)
    ids, vals = live(c)
    np.testing.assert_allclose(vals, z[ids] / t, rtol=1e-6)
    assert c.sorted and c.n == 10


@pytest.mark.parametrize("t", [0.0, -1.0])
def test_temp_non_positive_keeps_only_argmax(z, t):
    c = load(z)
    Temp(t).apply(c)
    assert c.n == 1 and c.ids[0] == int(np.argmax(z)) and c.logits[0] == z.max()
    assert not c.identity


def test_dyn_temp_known_answer():
    c = load([1.0, 2.0, 3.0])
    st = DynTemp(1.0, delta=0.5, exponent=1.0)
    st.apply(c)
    assert st.info()["temperature"] == pytest.approx(1.257679, abs=1e-6)
    np.testing.assert_allclose(live(c)[1], np.array([1, 2, 3]) / 1.257679, rtol=1e-6)


def test_dyn_temp_matches_formula(z):
    c = load(z)
    TopK(20).apply(c)
    zk = live(c)[1].astype(np.float64)
    pr = probs(zk)
    h = -(pr * np.log(pr)).sum()
    base, delta, ex = 0.9, 0.4, 2.0
    t = max(0.0, base - delta) + 2 * delta * (h / math.log(20)) ** ex
    st = DynTemp(base, delta, ex)
    st.apply(c)
    assert st.last_temperature == pytest.approx(t, rel=1e-6)
    np.testing.assert_allclose(live(c)[1], zk / t, rtol=1e-5)


def test_dyn_temp_without_delta_is_plain_temp(z):
    a, b = load(z), load(z)
    DynTemp(0.7).apply(a)
    Temp(0.7).apply(b)
    assert np.array_equal(live(a)[1], live(b)[1])
    a = load(z)
    DynTemp(0.0).apply(a)
    assert a.n == 1 and a.ids[0] == int(np.argmax(z))


def test_extreme_temperatures():
    z = np.array([300.0, 299.0, 50.0, -np.inf], dtype=np.float32)
    c = load(z)
    Temp(1e-40).apply(c)  # would overflow float32: treated as greedy
    assert c.n == 1 and c.ids[0] == 0
    c = load(z)
    Temp(1e300).apply(c)  # clamped to float32's max: the uniform limit
    assert c.n == 4 and np.all(live(c)[1][:3] < 1e-35) and live(c)[1][3] == -np.inf


def test_dyn_temp_near_one_hot_goes_greedy():
    # H ~ 1e-85: T = 2 * delta * H / ln 3 underflows float32
    z = np.array([5.0, 205.0, 4.0], dtype=np.float32)
    st = DynTemp(0.5, delta=0.5)
    c = load(z)
    st.apply(c)
    assert c.n == 1 and c.ids[0] == 1 and st.last_temperature < 1e-30
    # a moderate one with T_min = 0 scales by the formula (computed in the stage)
    z = np.array([1.0, 2.0, 3.0, -np.inf], dtype=np.float32)
    c = load(z)
    st = DynTemp(0.5, delta=0.5, exponent=1.0)
    st.apply(c)
    pr = probs(z[:3])
    t = 1.0 * (-(pr * np.log(pr)).sum() / math.log(3))  # N counts unmasked entries only
    assert st.last_temperature == pytest.approx(t, rel=1e-7)
    np.testing.assert_allclose(live(c)[1][:3], z[:3] / t, rtol=1e-6)
    # a single unmasked candidate: nothing to scale
    c = load(np.array([1.0, -np.inf], dtype=np.float32))
    st.apply(c)
    assert st.last_temperature == 1.0 and live(c)[1][0] == 1.0


def _penalised(z, counts, repeat, freq, presence):
    out = np.asarray(z, dtype=np.float32).copy()
    for t, c in counts.items():
        if c > 0:
            v = out[t]
            v = v * np.float32(repeat) if v <= 0 else v / np.float32(repeat)
            out[t] = v - np.float32(c * freq + presence)
    return out


def test_penalties_match_llama_cpp_formula(z):
    pen = Penalties(repeat=1.3, freq=0.2, presence=0.5, last_n=64)
    a, b = (int(t) for t in np.nonzero(z > 0.5)[0][:2])  # positive logits: divided
    m = int(np.nonzero(z < -0.5)[0][0])                  # negative logit: multiplied
    for t in [a, a, m, b, a, m]:
        pen.accept(t)
    c = load(z)
    pen.apply(c)
    want = _penalised(z, {a: 3, m: 2, b: 1}, 1.3, 0.2, 0.5)
    assert want[a] < z[a] / 1.3 and want[m] < z[m] * 1.3 < z[m]
    np.testing.assert_allclose(live(c)[1], want, rtol=1e-6)
    assert c.identity and not c.sorted and c.n == V


def test_penalties_on_a_truncated_set(z):
    pen = Penalties(repeat=2.0, freq=0.1)
    top = desc(z)[:8]
    for t in (int(top[0]), int(top[5]), int(desc(z)[20])):
        pen.accept(t)
    c = load(z)
    TopK(8).apply(c)
    pen.apply(c)
    full = _penalised(z, {int(top[0]): 1, int(top[5]): 1, int(desc(z)[20]): 1}, 2.0, 0.1, 0.0)
    ids, vals = live(c)
    np.testing.assert_allclose(vals, full[ids], rtol=1e-6)
    assert not c.sorted


def test_penalties_window_slides():
    pen = Penalties(repeat=2.0, last_n=3)
    for t in [1, 2, 3, 1]:
        pen.accept(t)
    assert pen.window == (2, 3, 1)
    assert [pen.count(t) for t in (1, 2, 3, 4)] == [1, 1, 1, 0]
    pen.accept(5)
    assert pen.window == (3, 1, 5)
    assert pen.count(2) == 0 and sorted(pen.seen.tolist()) == [1, 3, 5]
    c = load(np.full(8, 2.0))
    pen.apply(c)
    assert live(c)[1].tolist() == [2.0, 1.0, 2.0, 1.0, 2.0, 1.0, 2.0, 2.0]
    pen.reset()
    assert pen.window == () and pen.count(1) == 0
    c = load(np.full(8, 2.0))
    pen.apply(c)
    assert np.all(live(c)[1] == 2.0)


def test_penalties_disabled_and_unbounded_windows():
    off = Penalties(repeat=2.0, last_n=0)
    off.accept(1)
    assert off.window == ()
    c = load(np.full(4, 2.0))
    off.apply(c)
    assert np.all(live(c)[1] == 2.0)
    unbounded = Penalties(repeat=2.0, freq=1.0, last_n=-1)
    for _ in range(500):
        unbounded.accept(2)
    assert unbounded.count(2) == 500 and len(unbounded.window) == 500
    c = load(np.full(4, 2.0))
    unbounded.apply(c)
    assert live(c)[1][2] == pytest.approx(1.0 - 500.0)


def test_penalties_reject_tokens_outside_vocab():
    pen = Penalties(repeat=1.5)
    pen.accept(10)
    with pytest.raises(ValueError, match="outside the vocabulary"):
        pen.apply(load(np.zeros(4)))
    with pytest.raises(ValueError, match="non-negative"):
        pen.accept(-1)


def test_logit_bias_adds_and_bans(z):
    lb = LogitBias({5: -math.inf, 2: 2.5, 40: -1.0})
    c = load(z)
    lb.apply(c)
    want = z.copy()
    want[5] = -np.inf
    want[2] += np.float32(2.5)
    want[40] -= 1
    assert np.array_equal(live(c)[1], want)
    # on a truncated, reordered set the bias follows the token ids
    c = load(z)
    TopK(V).apply(c)
    lb.apply(c)
    ids, vals = live(c)
    assert np.array_equal(vals, want[ids])


def test_logit_bias_ban_then_greedy_never_picks_banned(z):
    top = int(np.argmax(z))
    chain = SamplerChain([LogitBias({top: -math.inf}), Greedy()])
    c = load(z)
    chain.apply(c)
    assert c.selected_token == int(desc(z)[1])


def test_logit_bias_token_outside_vocab():
    with pytest.raises(InvalidSamplerSpec, match=r"token 99 is outside the vocabulary \(n_vocab=8\)"):
        LogitBias({99: 1.0}).apply(load(np.zeros(8)))


def test_greedy_selects_first_argmax_and_keeps_only_it():
    c = load([0.5, 3.0, -1.0, 3.0])
    Greedy().apply(c)
    assert c.selected_token == 1 and c.n == 1 and c.selected == 0 and not c.identity
    c = load(np.arange(10, dtype=np.float32))
    TopK(5).apply(c)
    MinP(0.01).apply(c)
    Greedy().apply(c)
    assert c.selected_token == 9 and c.n == 1


def _inverse_cdf(z, u):
    cum = np.cumsum(probs(z))
    return int(min(np.searchsorted(cum, u * cum[-1], side="right"), len(z) - 1))


def test_dist_draws_one_uniform_per_step_inverse_cdf():
    z = np.array([0.0, 1.0, 2.0, -1.0, 0.5], dtype=np.float32)
    d = Dist(seed=1234)
    ref = np.random.Generator(np.random.PCG64(1234))
    for step in range(200):
        c = load(z)
        if step % 3 == 0:  # a single candidate still consumes one draw
            TopK(1).apply(c)
        d.apply(c)
        u = ref.random()
        want = 0 if step % 3 == 0 else _inverse_cdf(z, u)
        assert c.selected == want


def test_dist_reproducible_and_seed_dependent(z):
    def run(seed, steps=100):
        d = Dist(seed)
        out = []
        for _ in range(steps):
            c = load(z)
            d.apply(c)
            out.append(c.selected_token)
        return out

    assert run(42) == run(42)
    assert run(42) != run(43)
    d = Dist(7)
    assert d.seed == 7
    first = []
    for _ in range(20):
        c = load(z)
        d.apply(c)
        first.append(c.selected)
    d.reset()  # same seed again: same stream
    again = []
    for _ in range(20):
        c = load(z)
        d.apply(c)
        again.append(c.selected)
    assert first == again
    d.reset(8)
    assert d.seed == 8
    assert 0 <= Dist().seed < 2**32  # a random 32-bit seed when none is given


def test_dist_frequencies_match_softmax():
    z = np.array([2.0, 1.0, 0.0, -1.0, 0.5, -np.inf], dtype=np.float32)
    p = probs(z)
    d = Dist(seed=99)
    n = 20000
    counts = np.zeros(6)
    c = Candidates(6)
    for _ in range(n):
        c.reset(z)
        d.apply(c)
        counts[c.selected_token] += 1
    freq = counts / n
    assert counts[5] == 0
    assert np.all(np.abs(freq - p) < 4.5 * np.sqrt(p * (1 - p) / n) + 1e-12)


def test_selectors_need_candidates():
    c = load(np.zeros(3))
    c.n = 0
    with pytest.raises(ValueError, match="no candidates"):
        Greedy().apply(c)


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: TopK(0), "top_k: k=0 is out of range [1, inf)"),
        (lambda: TopK(4.5), "top_k: k must be an integer, got 4.5"),
        (lambda: TopK(True), "top_k: k must be an integer, got True"),
        (lambda: TopP(1.5), "top_p: p=1.5 is out of range (0, 1]"),
        (lambda: TopP(0.0), "top_p: p=0.0 is out of range (0, 1]"),
        (lambda: TopP(0.5, min_keep=0), "top_p: min_keep=0 is out of range [1, inf)"),
        (lambda: MinP(-0.1), "min_p: p=-0.1 is out of range [0, 1]"),
        (lambda: TypicalP(2.0), "typical_p: p=2.0 is out of range (0, 1]"),
        (lambda: TopNSigma(0.0), "top_n_sigma: n=0.0 is out of range (0, inf)"),
        (lambda: TopNSigma(math.inf), "top_n_sigma: n=inf is out of range (0, inf)"),
        (lambda: Temp(math.nan), "temp: t=nan is out of range (-inf, inf)"),
        (lambda: Temp("hot"), "temp: t must be a number, got 'hot'"),
        (lambda: DynTemp(1.0, delta=-0.5), "dyn_temp: delta=-0.5 is out of range [0, inf)"),
        (lambda: DynTemp(1.0, exponent=-1), "dyn_temp: exponent=-1.0 is out of range [0, inf)"),
        (lambda: Penalties(repeat=0.0), "penalties: repeat=0.0 is out of range (0, inf)"),
        (lambda: Penalties(freq=math.inf), "penalties: freq=inf is out of range (-inf, inf)"),
        (lambda: Penalties(last_n=-2), "penalties: last_n=-2 is out of range [-1, inf)"),
        (lambda: LogitBias({1: math.inf}), "logit_bias: the bias of token 1 must be finite or -inf"),
        (lambda: LogitBias({"a": 1.0}), "logit_bias: token ids must be integers, got 'a'"),
        (lambda: LogitBias({-3: 1.0}), "logit_bias: token id -3 is out of range"),
        (lambda: Dist(seed=-1), "dist: seed must be a non-negative integer, got -1"),
    ],
)
def test_parameter_validation_messages(make, message):
    with pytest.raises(InvalidSamplerSpec) as e:
        make()
    assert message in str(e.value)


def test_numpy_scalars_are_accepted():
    assert TopK(np.int64(5)).k == 5 and isinstance(TopK(np.int64(5)).k, int)
    assert TopP(np.float32(0.5)).p == 0.5


def test_chain_appends_dist_and_selects():
    chain = SamplerChain([TopK(3)])
    assert [s.name for s in chain] == ["top_k", "dist"]
    assert str(chain) == "top_k=3"
    z = np.arange(10, dtype=np.float32)
    c = load(z)
    chain.apply(c)
    assert c.n == 3 and c.selected_token in (7, 8, 9)
    assert str(SamplerChain()) == "dist"


def test_chain_llama_preset_kept_set_matches_numpy(z):
    chain = SamplerChain.parse("llama", seed=3)
    c = load(z)
    chain.apply(c)
    order = desc(z)[:40]
    zk = z[order]
    keep = order[: len(_top_p_ref(zk, 0.95))]
    pk = probs(z[keep])
    keep = keep[pk >= 0.05 * pk.max()]
    assert np.array_equal(live(c)[0], keep)
    np.testing.assert_allclose(live(c)[1], z[keep] / 0.8, rtol=1e-6)
    assert c.selected_token in keep.tolist()


def test_chain_greedy_and_zero_temperature_pick_argmax(z):
    for spec in ("greedy", "temp=0", "temp=-1,dist", "top_k=40,temp=0.0"):
        for seed in range(5):
            chain = SamplerChain.parse(spec, seed=seed)
            c = load(z)
            chain.apply(c)
            assert c.selected_token == int(np.argmax(z)), spec


def test_chain_is_reproducible_per_seed(z):
    def run(seed):
        chain = SamplerChain.parse("penalties:repeat=1.2,top_k=20,temp=1.5", seed=seed)
        out = []
        for _ in range(50):
            c = load(z)
            chain.apply(c)
            out.append(c.selected_token)
            chain.accept(c.selected_token)
        return out

    assert run(5) == run(5)
    assert run(5) != run(6)
    chain = SamplerChain.parse("llama")
    chain.reset(11)
    assert chain.seed == 11 and chain["dist"].seed == 11
    assert SamplerChain.parse("greedy").seed is None
    assert SamplerChain.parse("greedy", seed=4).seed == 4


def test_chain_reset_restarts_stream_and_history(z):
    chain = SamplerChain.parse("penalties:repeat=3.0,temp=2.0", seed=21)

    def steps(n=30):
        out = []
        for _ in range(n):
            c = load(z)
            chain.apply(c)
            out.append(c.selected_token)
            chain.accept(c.selected_token)
        return out

    a = steps()
    chain.reset()
    assert chain["penalties"].window == ()
    assert steps() == a
    chain.reset(21)
    assert steps() == a


def test_chain_stops_after_a_selection_and_falls_back_to_dist(z):
    class Maybe(Stage):
        name = "maybe_pick"
        selects = True

        def __init__(self, pick):
            self.pick = pick

        def apply(self, cands):
            if self.pick:
                cands.selected = 0

        def spec(self):
            return self.name

    c = load(z)
    SamplerChain([Maybe(True)]).apply(c)
    assert c.selected == 0
    c = load(z)
    SamplerChain([TopK(2), Maybe(False)], seed=1).apply(c)
    assert c.selected in (0, 1) and c.n == 2


def test_chain_structure_errors():
    with pytest.raises(InvalidSamplerSpec, match=r"'greedy' \(stage 1 of 'greedy,top_k=4'\) selects"):
        SamplerChain([Greedy(), TopK(4)])
    with pytest.raises(InvalidSamplerSpec, match=r"duplicate stage 'top_k' \(stage 2"):
        SamplerChain([TopK(4), TopK(5)])
    with pytest.raises(InvalidSamplerSpec, match="alternatives"):
        SamplerChain([Temp(1.0), DynTemp(1.0)])
    with pytest.raises(InvalidSamplerSpec, match="single samplers, got str"):
        SamplerChain(["top_k=4"])
    with pytest.raises(InvalidSamplerSpec, match="single samplers, got SamplerChain"):
        SamplerChain([SamplerChain()])


def test_clone_is_independent(z):
    chain = SamplerChain.parse("penalties:repeat=2.0,last_n=4,top_k=10", seed=9)
    for t in (1, 2, 3):
        chain.accept(t)
    twin = chain.clone()
    assert twin == chain and twin is not chain
    assert twin["penalties"] is not chain["penalties"]
    twin.accept(50)
    twin.accept(51)
    assert chain["penalties"].window == (1, 2, 3)
    assert twin["penalties"].window == (2, 3, 50, 51)
    chain.reset()
    assert twin["penalties"].window == (2, 3, 50, 51)
    # the random stream is copied: a fresh clone draws what the original would
    a = SamplerChain.parse("temp=2.0", seed=13)
    for _ in range(3):
        a.apply(load(z))
    b = a.clone()
    for _ in range(20):
        ca, cb = load(z), load(z)
        a.apply(ca)
        b.apply(cb)
        assert ca.selected_token == cb.selected_token


def test_step_info_reports_dynamic_temperature():
    chain = SamplerChain.parse("dyn_temp:base=1.0,delta=0.5", seed=0)
    chain.apply(load([1.0, 2.0, 3.0]))
    assert chain.step_info() == {"temperature": pytest.approx(1.257679, abs=1e-6)}
    assert SamplerChain.parse("llama").step_info() == {}


def test_chain_indexing_and_membership():
    chain = SamplerChain.parse("llama")
    assert "top_p" in chain and "typical_p" not in chain
    assert chain["top_p"] == TopP(0.95)
    with pytest.raises(KeyError):
        chain["typical_p"]
    assert len(chain) == 5 and isinstance(chain, Sampler)


def test_processor_masks_dropped_and_transforms_kept(z):
    chain = SamplerChain.parse("top_k=5,temp=0.5", seed=0)
    scores = z.copy()
    out = chain(np.array([1, 2], dtype=np.intc), scores)
    assert out.dtype == np.float32 and out.shape == (V,)
    assert np.array_equal(scores, z)  # input untouched
    top = desc(z)[:5]
    finite = np.nonzero(np.isfinite(out))[0]
    assert sorted(finite.tolist()) == sorted(top.tolist())
    np.testing.assert_allclose(out[top], z[top] / 0.5, rtol=1e-6)


def test_processor_greedy_keeps_only_argmax(z):
    out = SamplerChain.parse("greedy")(np.array([], dtype=np.intc), z)
    assert np.isfinite(out).sum() == 1 and out[np.argmax(z)] == z.max()


def test_processor_keeps_penalty_history_in_sync():
    chain = SamplerChain.parse("penalties:repeat=2.0,freq=1.0")
    scores = np.full(10, 4.0, dtype=np.float32)
    out = chain(np.array([1, 2, 2], dtype=np.intc), scores)
    assert out.tolist() == [4, 1, 0, 4, 4, 4, 4, 4, 4, 4]
    out = chain(np.array([1, 2, 2, 3], dtype=np.intc), scores)  # extends: only 3 is new
    assert out.tolist() == [4, 1, 0, 1, 4, 4, 4, 4, 4, 4]
    assert chain["penalties"].window == (1, 2, 2, 3)
    out = chain(np.array([7], dtype=np.intc), scores)  # not an extension: start over
    assert out.tolist() == [4, 4, 4, 4, 4, 4, 4, 1, 4, 4]
    chain.reset()
    out = chain(np.array([7, 8], dtype=np.intc), scores)
    assert out.tolist() == [4, 4, 4, 4, 4, 4, 4, 1, 1, 4]


def test_processor_accepts_strided_scores(z):
    rec = np.zeros(V, dtype=[("id", np.intc), ("logit", np.float32), ("p", np.float32)])
    rec["id"] = np.arange(V)
    rec["logit"] = z
    out = SamplerChain.parse("min_p=0.2")(np.array([0], dtype=np.intc), rec["logit"])
    pr = probs(z)
    assert np.array_equal(np.isfinite(out), pr >= 0.2 * pr.max())


def test_processor_with_llama_cpp_logits_processor_list(z):
    llama_cpp = pytest.importorskip("llama_cpp")
    procs = llama_cpp.LogitsProcessorList([SamplerChain.parse("top_k=3")])
    out = procs(np.array([0, 1], dtype=np.intc), z.copy())
    assert np.isfinite(out).sum() == 3


@pytest.mark.parametrize("spec,alpha", [("entmax:alpha=2", 2.0), ("entmax:alpha=1.5,t=0.8", 1.5)])
def test_processor_gives_the_selectors_own_distribution(z, spec, alpha):
    """A final entmax stage is not skipped: the processor returns log of its probabilities,
    so llama-cpp-python's draw at temperature 1 is from exactly α-entmax."""
    from entropic_local.kernels.entmax_reference import entmax_ref

    out = SamplerChain.parse(spec)(np.array([0], dtype=np.intc), z.copy())
    t = 0.8 if "t=0.8" in spec else 1.0
    ref = entmax_ref(z.astype(np.float64), alpha, temperature=t)
    kept = np.isfinite(out)
    assert np.array_equal(kept, ref > 0)
    np.testing.assert_allclose(np.exp(out[kept].astype(np.float64)), ref[kept], rtol=1e-4, atol=1e-6)


def test_processor_entropix_argmax_and_sampling_steps():
    spec = "entropix:low_ent=100,med_ent=100,high_ent=100,low_vent=100,high_vent=100"  # always argmax
    z = np.array([0.1, 3.0, 1.0, 2.9], dtype=np.float32)
    out = SamplerChain.parse(spec)(np.array([0], dtype=np.intc), z)
    assert np.isfinite(out).sum() == 1 and np.isfinite(out[1])
    adaptive = "entropix:low_ent=0,med_ent=0,high_ent=100,low_vent=0,high_vent=100,best_of=1,k=2,minp=0.01"
    out = SamplerChain.parse(adaptive)(np.array([0], dtype=np.intc), z)
    kept = np.nonzero(np.isfinite(out))[0]
    assert set(kept.tolist()) <= {1, 3} and np.exp(out[kept].astype(np.float64)).sum() == pytest.approx(1.0)
