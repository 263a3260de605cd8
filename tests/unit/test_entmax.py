"""α-entmax kernels (entropic_local.kernels.alpha_entmax) against published known answers, the
plain-numpy references, and their own invariants."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from entropic_local.kernels import alpha_entmax as em
from entropic_local.kernels import entmax_reference as ref


F32 = np.float32


ALPHAS = (1.0, 1.01, 1.1, 1.25, 1.33, 1.5, 1.75, 2.0)


def dense(z, alpha, temperature=1.0, dtype=np.float64):
    z = np.asarray(z, dtype=F32)
    out = np.full(z.size, -1.0, dtype=dtype)  # garbage in: every entry must be written
    k = em.entmax(z, alpha, temperature, out)
    assert k == int((out > 0).sum())
    return out, k


def spiky(rng, n, scale=3.0, n_spikes=8):
    """Logits shaped like an LM's: a normal bulk plus a few tokens above it."""
    z = rng.normal(0.0, scale, n).astype(F32)
    top = float(z.max())
    pos = rng.choice(n, n_spikes, replace=False)
    z[pos] = (top + rng.uniform(0.0, 2.0 * scale, n_spikes)).astype(F32)
    return z


KNOWN = [
    ([-2, 0, 0.5], 1.0, [0.0486, 0.3592, 0.5922]),
    ([-2, 0, 0.5], 2.0, [0, 0.25, 0.75]),
    ([-2, 0, 0.5], 1.5, [0, 0.326007, 0.673993]),
    ([1, 2, 3], 2.0, [0, 0, 1]),
    ([1, 2, 3], 1.5, [0, 0.169281, 0.830719]),
    ([0, .25, .5, .75, 1], 2.0, [0, 0, 0.083333, 0.333333, 0.583333]),
    ([0, .25, .5, .75, 1], 1.5, [0.025854, 0.081677, 0.16875, 0.287073, 0.436646]),
    ([-1, 0, 0.5], 1.33, [0.0460, 0.3276, 0.6264]),
    ([1, 2, 3.5], 1.33, [0.0026, 0.1012, 0.8963]),
]


@pytest.mark.parametrize("z, alpha, expected", KNOWN)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_known_answers(z, alpha, expected, dtype):
    expected = np.array(expected)
    # the table gives 4 or 6 decimals: agree to its last digit (and to 1e-5 where it has 6)
    tol = 1e-5 if any(len(f"{v:.6f}".rstrip("0").split(".")[-1]) > 4 for v in expected) \
        else 5e-5
    out, k = dense(z, alpha, dtype=dtype)
    np.testing.assert_allclose(out, expected, atol=tol, rtol=0)
    assert k == int((expected > 0).sum())
    assert (out[expected == 0] == 0).all()  # exact zeros off the support
    np.testing.assert_allclose(ref.entmax_ref(z, alpha), expected, atol=tol, rtol=0)
    if alpha not in (1.0,):
        np.testing.assert_allclose(ref.entmax_bisect_ref(z, alpha), expected, atol=tol, rtol=0)


@pytest.mark.parametrize("alpha, top", [(1.01, 0.641325), (1.1, 0.684909), (1.25, 0.749986),
                                         (1.5, 0.830719), (2.0, 1.0)])
def test_known_top_prob(alpha, top):
    z = [1, 2, 3, 4, 5]
    out, _ = dense(z, alpha)
    assert abs(out[4] - top) < 1e-5
    assert abs(ref.entmax_bisect_ref(z, alpha)[4] - top) < 1e-5


def test_named_kernels_match_entmax():
    z = np.array([0, .25, .5, .75, 1], F32)
    out = np.empty(5)
    assert em.sparsemax(z, 1.0, out) == 3
    np.testing.assert_allclose(out, [0, 0, 1 / 12, 1 / 3, 7 / 12], atol=1e-12)
    assert em.entmax15(z, 1.0, out) == 5
    np.testing.assert_allclose(out, [0.025854, 0.081677, 0.16875, 0.287073, 0.436646],
                               atol=1e-6)
    assert em.softmax_dense(z, 1.0, out) == 5
    e = np.exp(z.astype(np.float64))
    np.testing.assert_allclose(out, e / e.sum(), rtol=1e-12)


@pytest.mark.parametrize("n", [49_152, 262_144])
@pytest.mark.parametrize("alpha", [1.01, 1.1, 1.25, 1.5, 1.75, 2.0])
def test_matches_bisection_reference(n, alpha):
    rng = np.random.default_rng(int(n + 1000 * alpha))
    for z, t in ((spiky(rng, n), 1.0), (rng.normal(0, 1.0, n).astype(F32), 0.7)):
        out, k = dense(z, alpha, t)
        p = ref.entmax_bisect_ref(z, alpha, t)
        assert np.abs(out - p).max() < 1e-8
        assert abs(out.sum() - 1.0) < 1e-9
        # same support, up to entries the float64 reference itself cannot resolve
        assert not ((out > 0) & (p == 0) & (out > 1e-12)).any()
        assert not ((p > 0) & (out == 0) & (p > 1e-12)).any()
        if alpha in (1.5, 2.0):  # the exact sort-based forms agree on the support exactly
            np.testing.assert_allclose(out, ref.entmax_ref(z, alpha, t), atol=1e-12)
            assert k == int((ref.entmax_ref(z, alpha, t) > 0).sum())


def test_softmax_matches_reference():
    rng = np.random.default_rng(5)
    z = spiky(rng, 262_144)
    out, k = dense(z, 1.0, 0.8)
    np.testing.assert_allclose(out, ref.softmax_ref(z, 0.8), rtol=1e-12, atol=1e-300)
    assert k == z.size


@pytest.mark.parametrize("alpha", ALPHAS)
def test_masked_entries_are_exact_zeros_and_change_nothing(alpha):
    rng = np.random.default_rng(7)
    z = spiky(rng, 5000, scale=1.0)
    mask = rng.random(z.size) < 0.3
    mask[np.argmax(z)] = False
    zm = z.copy()
    zm[mask] = -np.inf
    out, k = dense(zm, alpha)
    assert (out[mask] == 0).all()
    kept, k2 = dense(z[~mask], alpha)
    np.testing.assert_allclose(out[~mask], kept, atol=1e-13)
    assert k == k2


@pytest.mark.parametrize("alpha", ALPHAS)
def test_ties(alpha):
    out, k = dense(np.full(7, 2.5), alpha)
    np.testing.assert_allclose(out, 1 / 7, atol=1e-14)
    assert k == 7
    out, k = dense([3.0, 1.0, 3.0, -5.0, 3.0], alpha)
    assert out[0] == out[2] == out[4]
    assert out[0] >= out[1] >= out[3]
    np.testing.assert_allclose(out, ref.entmax_ref([3.0, 1.0, 3.0, -5.0, 3.0], alpha),
                               atol=1e-12)


@pytest.mark.parametrize("alpha", ALPHAS)
def test_one_and_two_token_vocabularies(alpha):
    out, k = dense([-3.7], alpha)
    assert k == 1 and out[0] == 1.0
    for gap in (0.0, 0.3, 0.99, 1.0, 2.0, 5.0, 20.0):
        z = np.array([0.0, gap], F32)
        out, k = dense(z, alpha)
        np.testing.assert_allclose(out, ref.entmax_ref(z, alpha), atol=1e-12)
        if alpha == 2.0:  # closed form: p_2 = clip((1 + gap)/2, 0, 1)
            assert abs(out[1] - min(1.0, (1 + float(z[1])) / 2)) < 1e-12
        if alpha > 1.0 and gap >= 1.0 / (alpha - 1.0):  # outside the window: one-hot
            assert k == 1 and out[1] == 1.0 and out[0] == 0.0


@pytest.mark.parametrize("scale", [1e-5, 1e-3, 1e-1, 1.0, 10.0, 1e3, 1e4])
@pytest.mark.parametrize("alpha", [1.0, 1.05, 1.25, 1.5, 1.8, 2.0])
def test_scales(scale, alpha):
    rng = np.random.default_rng(11)
    z = (rng.normal(0, 1, 3000) * scale).astype(F32)
    out, k = dense(z, alpha)
    np.testing.assert_allclose(out, ref.entmax_ref(z, alpha, n_iter=60), atol=1e-9)
    assert abs(out.sum() - 1) < 1e-12 and (out >= 0).all()
    if scale <= 1e-5 and alpha > 1.0:  # spread (~7e-5) below 1/n: nothing is cut
        assert k == z.size
    if scale >= 1e3 and alpha > 1.0:  # spread far above it: only the top token survives
        assert k == 1


@pytest.mark.parametrize("alpha", ALPHAS)
@pytest.mark.parametrize("temperature", [0.05, 0.5, 1.7, 30.0])
def test_temperature_equivalence(alpha, temperature):
    rng = np.random.default_rng(13)
    z = spiky(rng, 20_000, scale=2.0)
    out, k = dense(z, alpha, temperature)
    scaled, _ = dense((z.astype(np.float64) / temperature).astype(F32), alpha, 1.0)
    np.testing.assert_allclose(out, scaled, atol=1e-5)
    np.testing.assert_allclose(out, ref.entmax_ref(z, alpha, temperature), atol=1e-9)


def test_alpha_to_one_continuity():
    rng = np.random.default_rng(17)
    for z in (spiky(rng, 262_144), rng.normal(0, 1, 500).astype(F32)):
        soft, _ = dense(z, 1.0)
        errs = [np.abs(dense(z, a)[0] - soft).max() for a in (1.01, 1.001, 1.0001, 1 + 1e-7)]
        assert errs[1] < 5e-3
        assert errs[3] < 1e-5
        assert errs == sorted(errs, reverse=True)


def test_support_monotone_in_alpha():
    rng = np.random.default_rng(19)
    grid = (1.0, 1.001, 1.01, 1.05, 1.1, 1.2, 1.33, 1.5, 1.6, 1.75, 1.9, 2.0)
    for n, scale in ((50, 0.5), (2000, 1.0), (262_144, 3.0)):
        z = spiky(rng, n, scale=scale)
        sizes = [dense(z, a)[1] for a in grid]
        assert sizes == sorted(sizes, reverse=True), sizes


@pytest.mark.parametrize("alpha", ALPHAS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_sums_to_one_and_nonnegative(alpha, dtype):
    rng = np.random.default_rng(23)
    for n in (3, 100, 10_000, 262_144):
        out, k = dense(spiky(rng, n, scale=2.0, n_spikes=min(8, n)), alpha, 0.9, dtype)
        assert (out >= 0).all()
        assert abs(float(out.astype(np.float64).sum()) - 1.0) < 1e-5
        assert 1 <= k <= n


def test_exact_filter_boundary():
    # z_i <= max - T/(α-1) has p = 0 exactly; just inside the window it is positive
    for alpha, t in ((2.0, 1.0), (1.5, 1.0), (1.25, 0.5), (1.1, 2.0)):
        w = em.entmax_support_window(alpha, t)
        assert w == pytest.approx(t / (alpha - 1))
        out, k = dense([0.0, w], alpha, t)
        assert out.tolist() == [0.0, 1.0] and k == 1
        out, k = dense([0.0, 0.999 * w], alpha, t)
        assert k == 2
    assert em.entmax_support_window(1.0, 1.0) == np.inf


def test_truncating_to_the_window_changes_nothing():
    rng = np.random.default_rng(29)
    z = spiky(rng, 50_000)
    for alpha in (1.1, 1.3, 1.5, 2.0):
        out, _ = dense(z, alpha)
        cut = z > z.max() - em.entmax_support_window(alpha, 1.0)
        assert (out[~cut] == 0).all()
        inside, _ = dense(z[cut], alpha)
        np.testing.assert_allclose(out[cut], inside, atol=1e-14)


def test_plus_inf_takes_all_mass_split_evenly():
    z = np.array([1.0, np.inf, -np.inf, 5.0, np.inf, np.inf], F32)
    for alpha in ALPHAS:
        out, k = dense(z, alpha)
        assert k == 3
        assert out.tolist() == [0.0, 1 / 3, 0.0, 0.0, 1 / 3, 1 / 3]
    np.testing.assert_allclose(ref.entmax_ref(z, 1.3), [0, 1 / 3, 0, 0, 1 / 3, 1 / 3])


def test_extreme_temperatures_and_logits():
    z = np.array([1.0, 3.0, 3.0, 2.0], F32)
    for alpha in ALPHAS:
        # a window far narrower than one float32 step: the tied maxima share the mass
        out, k = dense(z, alpha, 1e-30)
        assert k == 2 and out[0] == out[3] == 0.0
        np.testing.assert_allclose(out, [0.0, 0.5, 0.5, 0.0], atol=1e-14)
        out, k = dense(z, alpha, 1e30)  # flat
        np.testing.assert_allclose(out, 0.25, atol=1e-12)
        big = np.array([1e30, -3e38, 3e38, 3e38 * 0.999], F32)
        out, k = dense(big, alpha, 1e-3)
        assert k == 1 and out.tolist() == [0.0, 0.0, 1.0, 0.0]


def test_errors():
    out = np.empty(3)
    with pytest.raises(ValueError, match="NaN"):
        em.entmax(np.array([0.0, np.nan, 1.0], F32), 1.5, 1.0, out)
    with pytest.raises(ValueError, match="masked"):
        em.entmax(np.full(3, -np.inf, F32), 1.2, 1.0, out)
    for alpha in (0.9, 2.1, np.nan):
        with pytest.raises(ValueError, match="alpha"):
            em.entmax(np.zeros(3, F32), alpha, 1.0, out)
    for t in (0.0, -1.0, np.inf, np.nan, 1e-310):
        with pytest.raises(ValueError, match="temperature"):
            em.entmax(np.zeros(3, F32), 1.5, t, out)
    with pytest.raises(ValueError, match="length"):
        em.entmax(np.zeros(4, F32), 1.5, 1.0, out)
    with pytest.raises(ValueError):
        ref.entmax_ref([0.0, np.nan], 1.5)
    with pytest.raises(ValueError):
        ref.entmax_ref([-np.inf, -np.inf], 1.5)


def cand(z, alpha, temperature=1.0, n=None, probs_dtype=np.float64, cap=None, extra=5):
    """Run entmax_candidates on a shuffled copy of z (ids = a permutation) with ``extra``
    junk entries past n."""
    rng = np.random.default_rng(31)
    z = np.asarray(z, F32)
    n = z.size if n is None else n
    ids = np.concatenate([rng.permutation(z.size).astype(np.int32),
                          np.full(extra, -7, np.int32)])
    logits = np.concatenate([z[ids[:z.size]], np.full(extra, np.nan, F32)])
    probs = np.full(cap if cap is not None else ids.size, -1.0, probs_dtype)
    ids0, logits0 = ids.copy(), logits.copy()
    k = em.entmax_candidates(ids, logits, n, alpha, temperature, probs)
    return k, ids, logits, probs, ids0, logits0


@pytest.mark.parametrize("alpha", ALPHAS + (1.001, 1.05))
@pytest.mark.parametrize("probs_dtype", [np.float32, np.float64])
def test_candidates_agree_with_dense(alpha, probs_dtype):
    rng = np.random.default_rng(37)
    for z in (spiky(rng, 30_000), rng.normal(0, 0.2, 3000).astype(F32),
              np.array([1.0, 2.0, 3.0], F32)):
        out, kd = dense(z, alpha, 0.8, dtype=probs_dtype)
        k, ids, logits, probs, ids0, logits0 = cand(z, alpha, 0.8, probs_dtype=probs_dtype)
        assert k == kd
        assert sorted(ids[:k].tolist()) == np.flatnonzero(out > 0).tolist()
        np.testing.assert_allclose(probs[:k], out[ids[:k]], atol=1e-12 if
                                   probs_dtype is np.float64 else 1e-7)
        assert (probs[:k] > 0).all()
        np.testing.assert_array_equal(logits[:k], z[ids[:k]])  # logits unchanged
        # survivors keep their relative order
        pos = {int(t): i for i, t in enumerate(ids0[:z.size])}
        order = [pos[int(t)] for t in ids[:k]]
        assert order == sorted(order)


def test_candidates_only_first_n_and_sorted_stays_sorted():
    z = np.array([5.0, 4.6, 4.5, 3.0, 9.0, 9.0], F32)  # entries past n=4 must be ignored
    ids = np.arange(6, dtype=np.int32)
    logits = z.copy()
    probs = np.zeros(6)
    k = em.entmax_candidates(ids, logits, 4, 2.0, 1.0, probs)
    assert ids[:k].tolist() == [0, 1, 2]
    np.testing.assert_allclose(probs[:k], ref.sparsemax_ref(z[:4])[:3], atol=1e-12)
    assert logits[:k].tolist() == z[:3].tolist()


def test_candidates_masked_inf_and_errors():
    z = np.array([0.0, -np.inf, 1.0, np.inf, 0.5], F32)
    k, ids, logits, probs, ids0, _ = cand(z, 1.2)
    assert k == 1 and logits[0] == np.inf and probs[0] == 1.0
    zm = np.array([0.0, -np.inf, 1.0, -np.inf, 0.5], F32)
    k, ids, logits, probs, _, _ = cand(zm, 1.0)
    assert k == 3 and np.isfinite(logits[:k]).all()
    np.testing.assert_allclose(np.sort(probs[:k]), np.sort(ref.softmax_ref(zm)[[0, 2, 4]]))
    # probs needs room for the support only
    z = np.array([0.0, 0.1, 5.0, 4.9], F32)
    k, *_ = cand(z, 2.0, cap=2, extra=0)
    assert k == 2
    with pytest.raises(ValueError, match="too small"):
        cand(z, 1.0, cap=2, extra=0)
    with pytest.raises(ValueError):
        em.entmax_candidates(np.zeros(3, np.int32), np.zeros(3, F32), 0, 1.5, 1.0,
                             np.zeros(3))
    with pytest.raises(ValueError):
        em.entmax_candidates(np.zeros(3, np.int32), np.zeros(3, F32), 4, 1.5, 1.0,
                             np.zeros(4))
    with pytest.raises(ValueError, match="NaN"):
        em.entmax_candidates(np.zeros(3, np.int32), np.array([0, np.nan, 1], F32), 3, 1.5,
                             1.0, np.zeros(3))


@settings(max_examples=150, deadline=None)
@given(
    z=st.lists(st.floats(-50, 50, width=32), min_size=1, max_size=40),
    alpha=st.sampled_from([1.0, 1.0001, 1.02, 1.2, 1.37, 1.5, 1.66, 1.9, 1.999, 2.0]),
    temperature=st.sampled_from([0.1, 1.0, 3.0]),
    masked=st.integers(0, 5),
)
def test_property_matches_reference(z, alpha, temperature, masked):
    z = np.array(z, F32)
    z[: min(masked, z.size - 1)] = -np.inf
    out, k = dense(z, alpha, temperature)
    p = ref.entmax_ref(z, alpha, temperature, n_iter=70)
    assert np.abs(out - p).max() < 1e-9
    assert abs(out.sum() - 1) < 1e-12 and (out >= 0).all()
    kc, ids, logits, probs, _, _ = cand(z, alpha, temperature)
    assert kc == k
    np.testing.assert_allclose(probs[:kc], out[ids[:kc]], atol=1e-12)
