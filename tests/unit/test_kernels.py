"""Tests of the numba kernel layer (entropic_local.kernels).

Known answers from docs / shared notes (sampling-math.md section 1-2), every kernel against a
plain numpy reference on random inputs (sizes 1, 2, 49,152, 262,144; scales 1e-5 .. 1e4 and
1e-30 / 1e30), adversarial inputs (masks, +inf, NaN, ties, one and two tokens), and
hypothesis properties.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from entropic_local import kernels as K
from entropic_local.bench import kernels as kbench
from entropic_local.kernels import fastmath as kfast
from entropic_local.kernels import stats as kstats
from entropic_local.kernels import selection as ksel


INF = np.inf


SIZES = [1, 2, 49_152, 262_144]


SCALES = [1e-5, 1.0, 30.0, 1e4]


LN2 = math.log(2.0)


PROP = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def f32(a) -> np.ndarray:
    return np.asarray(a, dtype=np.float32)


def ids_for(n: int) -> np.ndarray:
    return np.arange(n, dtype=np.int32)


def rand_logits(n: int, scale: float = 1.0, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.standard_normal(n) * scale).astype(np.float32)


def ref_stats(z: np.ndarray, t: float = 1.0):
    z = z.astype(np.float64)
    if np.isnan(z).any():
        raise ValueError
    if (z == INF).any():
        return INF, INF, math.log((z == INF).sum()), 0.0
    y = z / t
    m = y.max()
    e = np.exp(y - m)
    s = e.sum()
    p = e / s
    lp = np.where(p > 0, (y - m) - np.log(s), 0.0)
    h = -np.dot(p, lp)
    v = np.dot(p, (lp + h) ** 2)
    return float(z.max()), float(m + np.log(s)), float(h), float(v)


def ref_softmax(z: np.ndarray) -> np.ndarray:
    z = z.astype(np.float64)
    if (z == INF).any():
        return (z == INF) / (z == INF).sum()
    e = np.exp(z - z.max())
    return e / e.sum()


def ref_desc_order(z: np.ndarray) -> np.ndarray:
    """Positions of the unmasked entries, logit descending, ties by position."""
    live = np.flatnonzero(z != -INF)
    return live[np.argsort(-z[live].astype(np.float64), kind="stable")]


def ref_top_p_len(zs: np.ndarray, p: float, min_keep: int):
    """Kept length for logits sorted descending (masked excluded); also the min distance of
    the cumulative sums to p (ambiguity margin)."""
    prob = ref_softmax(zs)
    cum = np.cumsum(prob)
    keep = len(zs)
    for i in range(len(zs)):
        if cum[i] >= p and i + 1 >= min_keep:
            keep = i + 1
            break
    return keep, float(np.min(np.abs(cum - p)))


def check_consistent(ids_out, logits_out, n, z0, ids0=None):
    """Survivors are a subset of the input and ids still match their logits."""
    ids0 = np.arange(len(z0), dtype=np.int32) if ids0 is None else ids0
    pos = {int(t): i for i, t in enumerate(ids0)}
    got = ids_out[:n]
    assert len(set(got.tolist())) == n, "duplicate survivors"
    for t, v in zip(got.tolist(), logits_out[:n].tolist()):
        assert t in pos
        assert v == z0[pos[t]] or (np.isnan(v) and np.isnan(z0[pos[t]]))


def test_known_stats_123_t1():
    mx, log_z, h, v = K.logit_stats(f32([1, 2, 3]), 1.0)
    assert mx == 3.0
    assert log_z == pytest.approx(3.407606, abs=1e-6)
    assert h == pytest.approx(0.832396, abs=1e-6)
    assert h / LN2 == pytest.approx(1.200893, abs=1e-6)
    assert v == pytest.approx(0.424405, abs=1e-6)
    assert v / LN2**2 == pytest.approx(0.883342, abs=1e-6)
    f = K.free_energy(log_z, 1.0)
    assert f == pytest.approx(-3.407606, abs=1e-6)
    u = f + 1.0 * h  # F = U - T H
    assert u == pytest.approx(-2.575210, abs=1e-6)


def test_known_stats_123_t05():
    _, log_z, h, v = K.logit_stats(f32([1, 2, 3]), 0.5)
    assert h == pytest.approx(0.441057, abs=1e-6)
    assert v == pytest.approx(0.634383, abs=1e-6)
    assert K.free_energy(log_z, 0.5) == pytest.approx(-3.071466, abs=1e-6)


def test_known_stats_uniform4():
    mx, log_z, h, v = K.logit_stats(f32([0.7, 0.7, 0.7, 0.7]), 1.0)
    assert h == pytest.approx(math.log(4), abs=1e-12)
    assert v == pytest.approx(0.0, abs=1e-12)
    assert log_z == pytest.approx(0.7 + math.log(4), abs=1e-6)


def test_known_softmax():
    out = np.empty(3, dtype=np.float64)
    log_z = K.softmax(f32([-2, 0, 0.5]), 3, out)
    np.testing.assert_allclose(out, [0.0486, 0.3592, 0.5922], atol=1e-4)
    assert out.sum() == pytest.approx(1.0, abs=1e-12)
    assert log_z == pytest.approx(math.log(math.exp(-2) + 1 + math.exp(0.5)), abs=1e-9)


def test_known_top_n_sigma():
    z = f32([3, 2, 1, 0])
    ids = ids_for(4)
    n = K.top_n_sigma(ids, z, 4, 1.0)
    assert n == 2
    assert ids[:2].tolist() == [0, 1]
    assert np.std([3, 2, 1, 0]) == pytest.approx(1.118034, abs=1e-6)
    z = f32([3, 2, 1, 0, 3, 2, 1, 0])  # same sigma, every copy of 3 and 2 kept
    assert K.top_n_sigma(ids_for(8), z, 8, 1.0) == 4


def test_known_dynamic_temperature():
    z = f32([1, 2, 3])
    t = K.dynamic_temperature(z, 3, 1.0, 0.5, 1.0)
    assert t == pytest.approx(1.257679, abs=1e-5)
    np.testing.assert_array_equal(z, f32([1, 2, 3]) / np.float32(t))


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("scale", SCALES)
@pytest.mark.parametrize("t", [1.0, 0.7, 2.0])
def test_stats_vs_numpy(n, scale, t):
    z = rand_logits(n, scale, seed=n)
    got = K.logit_stats(z, t)
    want = ref_stats(z, t)
    assert got[0] == want[0]
    assert got[1] == pytest.approx(want[1], rel=1e-9, abs=1e-8)
    assert got[2] == pytest.approx(want[2], rel=1e-6, abs=1e-12)
    assert got[3] == pytest.approx(want[3], rel=1e-6, abs=1e-12)


@pytest.mark.parametrize("scale", [1e-30, 1e30])
def test_stats_extreme_scales(scale):
    z = rand_logits(10_000, 1.0, seed=3) * np.float32(scale)
    got = K.logit_stats(z, 1.0)
    want = ref_stats(z)
    assert all(np.isfinite(got))
    assert got[2] == pytest.approx(want[2], rel=1e-6, abs=1e-12)
    assert got[3] == pytest.approx(want[3], rel=1e-6, abs=1e-12)
    if scale < 1:
        assert got[2] == pytest.approx(math.log(10_000), rel=1e-12)


def test_stats_peaked_relative_accuracy():
    """Tiny entropy (one dominant token): the relative error must stay small."""
    z = rand_logits(262_144, 1.0, seed=5)
    z[1234] = 40.0
    z[99] = 25.0
    got = K.logit_stats(z, 1.0)
    want = ref_stats(z)
    assert want[2] < 1e-4
    assert got[2] == pytest.approx(want[2], rel=1e-6)
    assert got[3] == pytest.approx(want[3], rel=1e-6)


def test_stats_bimodal_varentropy_cancellation():
    """Mass concentrated far below the max: V small relative to E[y^2]."""
    z = np.full(200_000, -5.0, dtype=np.float32)
    z[:100] += rand_logits(100, 0.01, seed=1)
    z[7] = 0.0
    got = K.logit_stats(z, 1.0)
    want = ref_stats(z)
    assert got[3] == pytest.approx(want[3], rel=1e-6)
    assert got[2] == pytest.approx(want[2], rel=1e-6)


def test_stats_masks():
    z = rand_logits(1000, 2.0, seed=2)
    z[::3] = -INF
    got = K.logit_stats(z, 1.0)
    want = ref_stats(z[z > -INF])
    np.testing.assert_allclose(got, want, rtol=1e-8, atol=1e-12)
    one = np.full(50, -INF, dtype=np.float32)
    one[17] = 3.5
    mx, log_z, h, v = K.logit_stats(one, 1.0)
    assert mx == 3.5 and log_z == pytest.approx(3.5, abs=1e-12)
    assert h == pytest.approx(0.0, abs=1e-12) and v == pytest.approx(0.0, abs=1e-12)
    with pytest.raises(ValueError, match="masked"):
        K.logit_stats(np.full(10, -INF, dtype=np.float32), 1.0)


def test_stats_pos_inf_takes_all_mass():
    z = f32([1.0, INF, 2.0, INF, -INF])
    mx, log_z, h, v = K.logit_stats(z, 1.0)
    assert mx == INF and log_z == INF
    assert h == pytest.approx(math.log(2)) and v == 0.0
    assert not any(math.isnan(x) for x in (mx, log_z, h, v))


def test_stats_nan_and_bad_args():
    z = rand_logits(5000)
    z[4321] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        K.logit_stats(z, 1.0)
    z = rand_logits(10)
    z[0] = -np.nan  # negative NaN bit pattern
    with pytest.raises(ValueError, match="NaN"):
        K.logit_stats(z, 1.0)
    for t in (0.0, -1.0, INF, np.nan):
        with pytest.raises(ValueError):
            K.logit_stats(rand_logits(10), t)
    with pytest.raises(ValueError):
        K.logit_stats(np.empty(0, dtype=np.float32), 1.0)


def test_stats_one_and_two_tokens():
    assert K.logit_stats(f32([5.0]), 1.0) == (5.0, 5.0, 0.0, 0.0)
    got = K.logit_stats(f32([0.0, 1.0]), 1.0)
    np.testing.assert_allclose(got, ref_stats(f32([0.0, 1.0])), rtol=1e-7)


def test_stats_signed_zero_max():
    got = K.logit_stats(f32([-0.0, 0.0, -1.0]), 1.0)
    np.testing.assert_allclose(got, ref_stats(f32([0.0, 0.0, -1.0])), rtol=1e-7)


def test_exp2_accuracy():
    """The vectorised exponential over its whole range (relative error 2e-9)."""
    w = np.linspace(-1000.0, 0.0, 400_001)

    @kstats.numba.njit
    def ev(a):
        out = np.empty_like(a)
        for i in range(a.shape[0]):
            out[i] = kfast.exp2(a[i])
        return out

    rel = np.abs(ev(w) / np.exp2(w) - 1.0)
    assert rel.max() < 3e-9
    assert ev(np.zeros(1))[0] == 1.0


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("scale", [1e-30, 1e-5, 1.0, 1e4, 1e30])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_softmax_vs_numpy(n, scale, dtype):
    z = rand_logits(n, 1.0, seed=n + 1) * np.float32(scale)
    out = np.empty(n, dtype=dtype)
    log_z = K.softmax(z, n, out)
    want = ref_softmax(z)
    tol = 1e-6 if dtype == np.float32 else 1e-8
    np.testing.assert_allclose(out, want, rtol=tol, atol=1e-12 if n > 1 else 0)
    assert out.sum() == pytest.approx(1.0, abs=1e-5 if dtype == np.float32 else 1e-12)
    assert log_z == pytest.approx(ref_stats(z)[1], rel=1e-9, abs=1e-9)


def test_softmax_adversarial():
    out = np.empty(6)
    z = f32([1.0, -INF, 2.0, -INF, 0.5, -INF])
    K.softmax(z, 6, out)
    assert out[1] == out[3] == out[5] == 0.0
    np.testing.assert_allclose(out[[0, 2, 4]], ref_softmax(z[[0, 2, 4]]), rtol=1e-8)
    z = f32([1.0, INF, INF, 5.0])
    assert K.softmax(z, 4, out) == INF
    np.testing.assert_array_equal(out[:4], [0, 0.5, 0.5, 0])
    # only the first n entries are used
    z = f32([1.0, 2.0, np.nan, np.nan])
    K.softmax(z, 2, out)
    np.testing.assert_allclose(out[:2], ref_softmax(z[:2]), rtol=1e-8)
    with pytest.raises(ValueError, match="NaN"):
        K.softmax(f32([1.0, np.nan]), 2, out)
    with pytest.raises(ValueError, match="masked"):
        K.softmax(f32([-INF, -INF]), 2, out)
    with pytest.raises(ValueError):
        K.softmax(f32([1.0, 2.0]), 3, out)
    with pytest.raises(ValueError):
        K.softmax(f32([1.0, 2.0]), 2, np.empty(1))


@pytest.mark.parametrize("n", SIZES)
def test_argmax_vs_numpy(n):
    z = rand_logits(n, seed=n)
    assert K.argmax(z, n) == int(np.argmax(z))
    z = np.round(z)  # many ties: first index wins
    assert K.argmax(z, n) == int(np.argmax(z))


def test_argmax_adversarial():
    assert K.argmax(f32([-INF, 2.0, 7.0, 7.0]), 4) == 2
    assert K.argmax(f32([-INF, -INF, -5.0]), 3) == 2
    assert K.argmax(f32([1.0, INF, INF]), 3) == 1
    assert K.argmax(f32([-0.0, 0.0]), 2) == 0  # equal floats: first one
    assert K.argmax(f32([3.0, 9.0, 1.0]), 1) == 0  # only the first n count
    with pytest.raises(ValueError, match="masked"):
        K.argmax(f32([-INF, -INF]), 2)
    with pytest.raises(ValueError, match="NaN"):
        K.argmax(f32([1.0, np.nan]), 2)


def ref_sample(z: np.ndarray, u: float) -> int:
    p = ref_softmax(z)
    cdf = np.cumsum(p)
    i = int(np.searchsorted(cdf, u * cdf[-1], side="right"))
    return min(i, int(np.flatnonzero(p > 0)[-1]))


@pytest.mark.parametrize("n", [1, 2, 3000, 49_152])
def test_sample_vs_inverse_cdf(n):
    z = rand_logits(n, 2.0, seed=n)
    rng = np.random.default_rng(n)
    cdf = np.cumsum(ref_softmax(z))
    for u in rng.random(300):
        if np.min(np.abs(cdf - u)) < 1e-8:
            continue  # too close to a boundary to compare
        assert K.sample_categorical(z, n, float(u)) == ref_sample(z, u)


def test_sample_grid_frequencies():
    """A stratified grid of u reproduces the probabilities to 1/N (inverse CDF)."""
    z = f32([0.0, 1.0, -1.0, 2.0, -INF, 0.5, 3.0, -2.0])
    p = ref_softmax(z)
    n_u = 20_000
    counts = np.zeros(len(z))
    for j in range(n_u):
        counts[K.sample_categorical(z, len(z), (j + 0.5) / n_u)] += 1
    np.testing.assert_allclose(counts / n_u, p, atol=1.5 / n_u)
    assert counts[4] == 0


def test_sample_random_frequencies_chi_square():
    rng = np.random.default_rng(123)
    z = rand_logits(3000, 1.5, seed=9)  # spans 3 chunks
    z[rng.choice(3000, 1000, replace=False)] = -INF
    p = ref_softmax(z)
    n_draws = 40_000
    draws = np.array([K.sample_categorical(z, 3000, float(u)) for u in rng.random(n_draws)])
    assert np.all(z[draws] > -INF)
    # chi-square over 10 index ranges of about equal mass
    cdf = np.cumsum(p)
    edges = np.concatenate([[0], np.searchsorted(cdf, np.linspace(0, 1, 11)[1:-1]), [3000]])
    expect = np.array([p[edges[b]:edges[b + 1]].sum() for b in range(10)]) * n_draws
    obs = np.bincount(np.searchsorted(edges, draws, side="right") - 1, minlength=10)
    chi2 = float(((obs - expect) ** 2 / expect).sum())
    assert chi2 < 40.0  # df = 9: P(chi2 > 40) ~ 1e-5


def test_sample_extremes_never_masked():
    z = np.full(5000, -INF, dtype=np.float32)
    z[[10, 2050, 4090]] = [1.0, 1.0, 1.0]
    for u in (0.0, 1e-300, 0.3333, 0.6667, 1.0 - 1e-16, np.nextafter(1.0, 0.0)):
        i = K.sample_categorical(z, 5000, float(u))
        assert i in (10, 2050, 4090)
    assert K.sample_categorical(z, 5000, 0.0) == 10
    assert K.sample_categorical(z, 5000, 1.0 - 1e-16) == 4090
    # trailing masked entries: u near 1 must not run past the last live one
    z = f32([0.0, 0.0, -INF, -INF])
    assert K.sample_categorical(z, 4, float(np.nextafter(1.0, 0.0))) == 1
    assert K.sample_categorical(f32([7.0]), 1, 0.999) == 0


def test_sample_adversarial():
    z = f32([1.0, INF, 3.0, INF])
    assert K.sample_categorical(z, 4, 0.2) == 1
    assert K.sample_categorical(z, 4, 0.7) == 3
    with pytest.raises(ValueError, match="NaN"):
        K.sample_categorical(f32([1.0, np.nan]), 2, 0.5)
    with pytest.raises(ValueError, match="masked"):
        K.sample_categorical(f32([-INF]), 1, 0.5)
    for u in (-0.1, 1.0, np.nan):
        with pytest.raises(ValueError):
            K.sample_categorical(f32([1.0, 2.0]), 2, u)
    # a huge gap: the low token is (numerically) never chosen
    z = f32([0.0, -1e30])
    assert K.sample_categorical(z, 2, 1.0 - 1e-16) == 0


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("k", [1, 40, 1000, 0])
@pytest.mark.parametrize("scale", [1e-30, 1.0, 1e30])
def test_top_k_vs_numpy(n, k, scale):
    z0 = rand_logits(n, 1.0, seed=n + k) * np.float32(scale)
    if k == 0 and n > 50_000 and scale != 1.0:
        return  # full sorts of the big vector: once per size is enough
    z = z0.copy()
    ids = ids_for(n)
    m = K.top_k(ids, z, n, k)
    order = ref_desc_order(z0)
    kk = n if k <= 0 or k >= n else k
    assert m == kk
    np.testing.assert_array_equal(ids[:m], order[:kk])
    np.testing.assert_array_equal(z[:m], z0[order[:kk]])


def test_top_k_ties_masks_and_edges():
    z0 = f32([1, 3, 3, -INF, 3, 2, 2, INF])
    z = z0.copy()
    ids = ids_for(8)
    assert K.top_k(ids, z, 8, 3) == 3
    assert ids[:3].tolist() == [7, 1, 2]
    z = z0.copy()
    ids = ids_for(8)
    assert K.top_k(ids, z, 8, 100) == 7  # masked dropped, all sorted
    assert ids[:7].tolist() == [7, 1, 2, 4, 5, 6, 0]
    # ties over block boundaries: all equal, big
    z = np.zeros(100_000, dtype=np.float32)
    ids = ids_for(100_000)
    assert K.top_k(ids, z, 100_000, 50) == 50
    assert ids[:50].tolist() == list(range(50))
    # signed zeros are equal: ties by position
    z = f32([-0.0, 0.0, -0.0, -1.0])
    ids = ids_for(4)
    assert K.top_k(ids, z, 4, 2) == 2
    assert ids[:2].tolist() == [0, 1]
    z = np.full(50_000, -1.0, dtype=np.float32)
    z[[40_000, 123]] = [-0.0, 0.0]
    ids = ids_for(50_000)
    assert K.top_k(ids, z, 50_000, 2) == 2 and ids[:2].tolist() == [123, 40_000]
    # fewer unmasked than k
    z = np.full(10_000, -INF, dtype=np.float32)
    z[[5, 9000]] = [1.0, 2.0]
    ids = ids_for(10_000)
    assert K.top_k(ids, z, 10_000, 40) == 2 and ids[:2].tolist() == [9000, 5]
    # a permuted id buffer travels with its logits
    ids = np.array([9, 8, 7, 6], dtype=np.int32)
    z = f32([0.5, 2.0, 1.0, -1.0])
    assert K.top_k(ids, z, 4, 2) == 2 and ids[:2].tolist() == [8, 7]
    with pytest.raises(ValueError, match="masked"):
        K.top_k(ids_for(3), f32([-INF] * 3), 3, 2)
    for n in (50, 300_000):
        z = rand_logits(n)
        z[n // 2] = np.nan
        with pytest.raises(ValueError, match="NaN"):
            K.top_k(ids_for(n), z, n, 5)
    assert K.top_k(ids_for(1), f32([4.0]), 1, 5) == 1


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("p", [0.1, 0.5, 0.9, 0.99])
@pytest.mark.parametrize("is_sorted", [False, True])
def test_top_p_vs_numpy(n, p, is_sorted):
    z0 = rand_logits(n, 3.0, seed=n)
    order = ref_desc_order(z0)
    want, margin = ref_top_p_len(z0[order], p, 1)
    ids0 = order.astype(np.int32) if is_sorted else ids_for(n)
    z = z0[order].copy() if is_sorted else z0.copy()
    ids = ids0.copy()
    m = K.top_p(ids, z, n, p, 1, is_sorted)
    if margin > 1e-8:
        assert m == want
    else:  # a cumulative sum within rounding of p: either side of it is right
        lo = ref_top_p_len(z0[order], p - 1e-8, 1)[0]
        hi = ref_top_p_len(z0[order], p + 1e-8, 1)[0]
        assert lo <= m <= hi
    np.testing.assert_array_equal(ids[:m], order[:m])
    np.testing.assert_array_equal(z[:m], z0[order[:m]])


def test_top_p_flat_needs_big_block():
    """Flat distribution: the top block must grow past 64, 256, ... tokens."""
    z0 = rand_logits(49_152, 0.05, seed=4)
    order = ref_desc_order(z0)
    want, _ = ref_top_p_len(z0[order], 0.7, 1)
    assert want > 10_000
    z = z0.copy()
    ids = ids_for(49_152)
    assert K.top_p(ids, z, 49_152, 0.7, 1, False) == want
    np.testing.assert_array_equal(ids[:want], order[:want])


def test_top_p_edges():
    z0 = f32([2.0, -INF, 1.0, 3.0, 0.0])
    # p >= 1: no change at all
    z = z0.copy()
    ids = ids_for(5)
    assert K.top_p(ids, z, 5, 1.0, 1, False) == 5
    np.testing.assert_array_equal(z, z0)
    # min_keep
    z = z0.copy()
    ids = ids_for(5)
    assert K.top_p(ids, z, 5, 0.01, 3, False) == 3
    assert ids[:3].tolist() == [3, 0, 2]
    # min_keep larger than the unmasked set: masked never kept
    z = z0.copy()
    ids = ids_for(5)
    assert K.top_p(ids, z, 5, 0.5, 10, False) == 4
    assert ids[:4].tolist() == [3, 0, 2, 4]
    # sorted input with a masked tail
    z = f32([3.0, 2.0, -INF, -INF])
    assert K.top_p(ids_for(4), z, 4, 0.9999999, 1, True) == 2
    # +inf takes all the mass
    z = f32([5.0, INF, 1.0, INF])
    ids = ids_for(4)
    assert K.top_p(ids, z, 4, 0.9, 1, False) == 2
    assert ids[:2].tolist() == [1, 3]
    # single token, ties
    assert K.top_p(ids_for(1), f32([1.0]), 1, 0.5, 1, False) == 1
    z = f32([1.0, 1.0, 1.0, 1.0])
    ids = ids_for(4)
    assert K.top_p(ids, z, 4, 0.5, 1, False) == 2 and ids[:2].tolist() == [0, 1]
    with pytest.raises(ValueError, match="NaN"):
        K.top_p(ids_for(3), f32([1.0, np.nan, 2.0]), 3, 0.5, 1, False)
    with pytest.raises(ValueError, match="masked"):
        K.top_p(ids_for(2), f32([-INF, -INF]), 2, 0.5, 1, False)


def ref_min_p(z: np.ndarray, p: float, min_keep: int) -> np.ndarray:
    thr = float(z.max()) + math.log(p)
    keep = np.flatnonzero(z.astype(np.float64) >= thr)
    if len(keep) >= min_keep:
        return keep
    return np.sort(ref_desc_order(z)[:min_keep])


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("scale", [1e-30, 1e-5, 1.0, 1e4, 1e30])
@pytest.mark.parametrize("p", [0.05, 0.5])
def test_min_p_vs_numpy(n, scale, p):
    z0 = rand_logits(n, 1.0, seed=n + 7) * np.float32(scale)
    want = ref_min_p(z0, p, 1)
    z = z0.copy()
    ids = ids_for(n)
    m = K.min_p(ids, z, n, p, 1)
    np.testing.assert_array_equal(ids[:m], want)
    np.testing.assert_array_equal(z[:m], z0[want])


def test_min_p_edges():
    z0 = f32([1.0, 3.0, -INF, 2.9, 0.0, 3.0])
    z = z0.copy()
    ids = ids_for(6)
    assert K.min_p(ids, z, 6, 0.0, 1) == 6  # p <= 0: no change
    np.testing.assert_array_equal(z, z0)
    z = z0.copy()
    ids = ids_for(6)
    assert K.min_p(ids, z, 6, 0.5, 1) == 3 and ids[:3].tolist() == [1, 3, 5]  # order kept
    z = z0.copy()
    ids = ids_for(6)
    # fewer than min_keep pass: the min_keep best, still in their original order
    assert K.min_p(ids, z, 6, 0.99, 4) == 4 and ids[:4].tolist() == [0, 1, 3, 5]
    z = z0.copy()
    ids = ids_for(6)
    assert K.min_p(ids, z, 6, 0.99, 50) == 5  # masked never kept
    z = f32([1.0, INF, 2.0])
    ids = ids_for(3)
    assert K.min_p(ids, z, 3, 0.05, 1) == 1 and ids[0] == 1
    assert K.min_p(ids_for(1), f32([0.0]), 1, 0.9, 1) == 1
    with pytest.raises(ValueError, match="NaN"):
        K.min_p(ids_for(2), f32([np.nan, 1.0]), 2, 0.1, 1)
    with pytest.raises(ValueError, match="masked"):
        K.min_p(ids_for(2), f32([-INF, -INF]), 2, 0.1, 1)


def ref_typical(z: np.ndarray, p: float, min_keep: int) -> np.ndarray:
    live = np.flatnonzero(z != -INF)
    zz = z[live].astype(np.float64)
    prob = ref_softmax(zz)
    log_z = zz.max() + np.log(np.exp(zz - zz.max()).sum())
    nlp = log_z - zz
    h = float(np.dot(prob, nlp))
    score = np.abs(nlp - h).astype(np.float32)
    order = np.argsort(score, kind="stable")
    cum = np.cumsum(prob[order])
    last = len(order)
    for i in range(len(order)):
        if cum[i] > p and i + 1 >= min_keep:
            last = i + 1
            break
    return live[order[:last]]


@pytest.mark.parametrize("n", [1, 2, 3, 50, 1000])
@pytest.mark.parametrize("p", [0.2, 0.5, 0.95])
@pytest.mark.parametrize("min_keep", [1, 5])
def test_typical_vs_numpy(n, p, min_keep):
    z0 = rand_logits(n, 2.0, seed=n)
    want = ref_typical(z0, p, min_keep)
    z = z0.copy()
    ids = ids_for(n)
    m = K.typical_p(ids, z, n, p, min_keep)
    np.testing.assert_array_equal(ids[:m], want)
    np.testing.assert_array_equal(z[:m], z0[want])


@pytest.mark.parametrize("n", [49_152, 262_144])
def test_typical_big_properties(n):
    z0 = rand_logits(n, 2.0, seed=n)
    z = z0.copy()
    ids = ids_for(n)
    p = 0.9
    m = K.typical_p(ids, z, n, p, 1)
    check_consistent(ids, z, m, z0)
    prob = ref_softmax(z0)
    log_z = ref_stats(z0)[1]
    nlp = log_z - z0.astype(np.float64)
    h = float(np.dot(prob, nlp))
    score = np.abs(nlp - h)[ids[:m]]
    assert np.all(np.diff(score) >= -1e-5)  # typicality order (scores rounded to float32)
    kept = prob[ids[:m]]
    assert kept.sum() > p - 1e-9 and kept[:-1].sum() <= p + 1e-9


def test_typical_edges():
    z0 = f32([1.0, 2.0, 3.0])
    z = z0.copy()
    assert K.typical_p(ids_for(3), z, 3, 1.0, 1) == 3  # p >= 1: no change
    np.testing.assert_array_equal(z, z0)
    z = f32([1.0, -INF, 2.0, -INF])
    ids = ids_for(4)
    m = K.typical_p(ids, z, 4, 0.99, 10)
    assert m == 2 and set(ids[:2].tolist()) == {0, 2}
    z = f32([1.0, INF, 2.0])
    ids = ids_for(3)
    assert K.typical_p(ids, z, 3, 0.5, 1) == 1 and ids[0] == 1
    z = f32([2.0, 2.0, 2.0, 2.0])  # all equal: every score 0, ties by position
    ids = ids_for(4)
    assert K.typical_p(ids, z, 4, 0.6, 1) == 3 and ids[:3].tolist() == [0, 1, 2]
    with pytest.raises(ValueError, match="NaN"):
        K.typical_p(ids_for(2), f32([np.nan, 1.0]), 2, 0.5, 1)
    with pytest.raises(ValueError, match="masked"):
        K.typical_p(ids_for(1), f32([-INF]), 1, 0.5, 1)


def ref_top_n_sigma(z: np.ndarray, nsigma: float) -> np.ndarray:
    fin = z[z != -INF].astype(np.float64)
    if (fin == INF).any():
        return np.flatnonzero(z == INF)
    thr = fin.max() - nsigma * fin.std()
    return np.flatnonzero(z.astype(np.float64) >= thr)


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("scale", [1e-30, 1e-5, 1.0, 1e4, 1e30])
@pytest.mark.parametrize("nsigma", [0.5, 2.0])
def test_top_n_sigma_vs_numpy(n, scale, nsigma):
    z0 = rand_logits(n, 1.0, seed=n + 11) * np.float32(scale)
    z0[:: max(1, n // 7)][1:] = -INF if n > 2 else z0[:: max(1, n // 7)][1:]
    want = ref_top_n_sigma(z0, nsigma)
    z = z0.copy()
    ids = ids_for(n)
    m = K.top_n_sigma(ids, z, n, nsigma)
    np.testing.assert_array_equal(ids[:m], want)
    np.testing.assert_array_equal(z[:m], z0[want])


def test_top_n_sigma_edges():
    z0 = f32([3, 2, 1, 0])
    z = z0.copy()
    assert K.top_n_sigma(ids_for(4), z, 4, 0.0) == 4  # nsigma <= 0: no change
    np.testing.assert_array_equal(z, z0)
    z = f32([3, -INF, 2, 1, 0, -INF])  # masks excluded from sigma and dropped
    ids = ids_for(6)
    assert K.top_n_sigma(ids, z, 6, 1.0) == 2 and ids[:2].tolist() == [0, 2]
    z = f32([1.0, INF, 5.0, INF])
    ids = ids_for(4)
    assert K.top_n_sigma(ids, z, 4, 1.0) == 2 and ids[:2].tolist() == [1, 3]
    assert K.top_n_sigma(ids_for(1), f32([1.5]), 1, 1.0) == 1
    z = f32([1.0, 1.0, 1.0])  # sigma 0: the ties all stay
    assert K.top_n_sigma(ids_for(3), z, 3, 1.0) == 3
    with pytest.raises(ValueError, match="NaN"):
        K.top_n_sigma(ids_for(2), f32([np.nan, 1.0]), 2, 1.0)
    with pytest.raises(ValueError, match="masked"):
        K.top_n_sigma(ids_for(2), f32([-INF, -INF]), 2, 1.0)


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("t", [0.1, 0.7, 1.5, 1e-20])
def test_scale_temperature(n, t):
    z0 = rand_logits(n, 3.0, seed=n)
    z0[:: max(2, n // 3)] = -INF if n > 1 else z0[0]
    z = z0.copy()
    K.scale_temperature(z, n, t)
    np.testing.assert_array_equal(z, z0 / np.float32(t))


def test_scale_temperature_edges():
    z = f32([1.0, 2.0, 3.0])
    K.scale_temperature(z, 2, 0.5)
    np.testing.assert_array_equal(z, [2.0, 4.0, 3.0])  # only the first n
    for t in (0.0, -1.0, INF, np.nan):
        with pytest.raises(ValueError):
            K.scale_temperature(f32([1.0]), 1, t)
    with pytest.raises(ValueError, match="NaN"):
        K.scale_temperature(f32([1.0, np.nan]), 2, 0.5)


def ref_dyn_temp(z: np.ndarray, temp: float, delta: float, exponent: float) -> float:
    live = z[z != -INF]
    h = ref_stats(live)[2]
    t_min, t_max = max(0.0, temp - delta), temp + delta
    return t_min + (t_max - t_min) * (h / math.log(len(live))) ** exponent


@pytest.mark.parametrize("n", [2, 3, 1000, 49_152])
@pytest.mark.parametrize("params", [(1.0, 0.5, 1.0), (0.8, 0.3, 2.0), (0.3, 0.5, 0.5), (1.2, 1.0, 0.0)])
def test_dynamic_temperature_vs_numpy(n, params):
    z0 = rand_logits(n, 2.0, seed=n)
    z0[1] = -INF if n > 2 else z0[1]
    want = ref_dyn_temp(z0, *params)
    z = z0.copy()
    t = K.dynamic_temperature(z, n, *params)
    assert t == pytest.approx(want, rel=1e-6)
    np.testing.assert_array_equal(z, z0 / np.float32(t))


def test_dynamic_temperature_edges():
    # delta <= 0: plain temperature (and greedy for temp <= 0)
    z = f32([1.0, 2.0])
    assert K.dynamic_temperature(z, 2, 0.5, 0.0, 1.0) == 0.5
    np.testing.assert_array_equal(z, [2.0, 4.0])
    z = f32([1.0, 3.0, 3.0])
    assert K.dynamic_temperature(z, 3, 0.0, 0.0, 1.0) == 0.0
    np.testing.assert_array_equal(z, [-INF, 3.0, -INF])
    # one live candidate: unchanged, returns 1.0
    z = f32([-INF, 4.0, -INF])
    assert K.dynamic_temperature(z, 3, 1.0, 0.5, 1.0) == 1.0
    np.testing.assert_array_equal(z, [-INF, 4.0, -INF])
    # one-hot (T_min = 0): T = 0 -> greedy
    z = f32([0.0, 1e30, 0.0])
    assert K.dynamic_temperature(z, 3, 0.3, 0.5, 1.0) == 0.0
    np.testing.assert_array_equal(z, f32([-INF, 1e30, -INF]))
    # uniform: H = ln N, T = T_max
    z = f32([2.0, 2.0, 2.0, 2.0])
    assert K.dynamic_temperature(z, 4, 1.0, 0.5, 1.0) == pytest.approx(1.5, rel=1e-12)
    # +inf: the +inf tokens carry the entropy, no NaN
    z = f32([INF, 1.0, INF, 0.0])
    t = K.dynamic_temperature(z, 4, 1.0, 0.5, 1.0)
    assert t == pytest.approx(0.5 + math.log(2) / math.log(4), rel=1e-9)
    assert not np.isnan(z).any()
    with pytest.raises(ValueError):
        K.dynamic_temperature(f32([1.0, 2.0]), 2, 1.0, 0.5, -1.0)
    with pytest.raises(ValueError):
        K.dynamic_temperature(f32([1.0, 2.0]), 2, np.nan, 0.5, 1.0)
    with pytest.raises(ValueError, match="NaN"):
        K.dynamic_temperature(f32([1.0, np.nan]), 2, 1.0, 0.5, 1.0)


def ref_penalties(ids, z, n, counts, repeat, freq, pres):
    z = z.copy()
    rep, fr, pr = np.float32(repeat), np.float32(freq), np.float32(pres)
    for i in range(n):
        c = counts[ids[i]]
        if c > 0:
            v = z[i] * rep if z[i] <= 0 else z[i] / rep
            z[i] = np.float32(v - (np.float32(c) * fr + pr))
    return z


@pytest.mark.parametrize("n", [1, 2, 49_152, 262_144])
@pytest.mark.parametrize("params", [(1.1, 0.0, 0.0), (1.3, 0.2, 0.5), (1.0, 0.0, 1.0), (0.8, -0.1, 0.0)])
def test_penalties_vs_numpy(n, params):
    rng = np.random.default_rng(n)
    z0 = rand_logits(n, 3.0, seed=n)
    z0[rng.choice(n, max(1, n // 10), replace=False)[: n // 20]] = -INF
    counts = np.zeros(n + 10, dtype=np.int32)
    seen = np.unique(rng.integers(0, n, size=min(n, 64))).astype(np.int32)
    counts[seen] = rng.integers(1, 5, size=len(seen))
    # identity: index by token id
    z = z0.copy()
    K.apply_penalties(ids_for(n), z, n, True, counts, seen, len(seen), *params)
    want = ref_penalties(ids_for(n), z0, n, counts, *params)
    np.testing.assert_array_equal(z, want)
    # non-identity (a permuted, truncated set) gives the same per-token result
    perm = rng.permutation(n).astype(np.int32)
    m = max(1, n // 2)
    zp = z0[perm].copy()
    K.apply_penalties(perm, zp, m, False, counts, seen, len(seen), *params)
    np.testing.assert_array_equal(zp[:m], want[perm[:m]])
    np.testing.assert_array_equal(zp[m:], z0[perm[m:]])


def test_penalties_llama_rule():
    z = f32([2.0, -2.0, 0.0, -INF, 1.0])
    counts = np.array([3, 1, 2, 4, 0], dtype=np.int32)
    seen = np.array([0, 1, 2, 3], dtype=np.int32)
    K.apply_penalties(ids_for(5), z, 5, True, counts, seen, 4, 2.0, 0.25, 0.5)
    np.testing.assert_allclose(z, [2.0 / 2 - 0.75 - 0.5, -4.0 - 0.25 - 0.5, 0.0 - 0.5 - 0.5, -INF, 1.0])
    with pytest.raises(ValueError):
        K.apply_penalties(ids_for(5), z, 5, True, counts, seen, 4, 0.0, 0.0, 0.0)
    with pytest.raises(ValueError):
        K.apply_penalties(ids_for(2), f32([1, 2]), 2, True, counts, np.array([3], np.int32), 1, 1.1, 0, 0)
    with pytest.raises(ValueError, match="NaN"):
        K.apply_penalties(ids_for(2), f32([np.nan, 2]), 2, True, counts, seen, 1, 1.1, 0, 0)


@pytest.mark.parametrize("n", [1, 2, 49_152, 262_144])
def test_logit_bias_vs_numpy(n):
    rng = np.random.default_rng(n)
    z0 = rand_logits(n, 2.0, seed=n)
    bias_ids = np.unique(rng.integers(0, n, size=min(n, 100))).astype(np.int32)
    vals = rng.normal(0, 3, len(bias_ids)).astype(np.float32)
    vals[::5] = -INF
    want = z0.copy()
    want[bias_ids] = np.where(vals == -INF, -INF, z0[bias_ids] + vals)
    z = z0.copy()
    K.apply_logit_bias(ids_for(n), z, n, True, bias_ids, vals)
    np.testing.assert_array_equal(z, want)
    perm = rng.permutation(n).astype(np.int32)
    m = max(1, n // 2)
    zp = z0[perm].copy()
    K.apply_logit_bias(perm, zp, m, False, bias_ids, vals)
    np.testing.assert_array_equal(zp[:m], want[perm[:m]])
    np.testing.assert_array_equal(zp[m:], z0[perm[m:]])


def test_logit_bias_special_values():
    z = f32([1.0, INF, -INF, 2.0, 0.0])
    bias_ids = np.array([0, 1, 2, 3], dtype=np.int32)
    vals = f32([-INF, -INF, 5.0, INF])
    K.apply_logit_bias(ids_for(5), z, 5, True, bias_ids, vals)
    np.testing.assert_array_equal(z, [-INF, -INF, -INF, INF, 0.0])  # masks absorb, no NaN
    z = f32([1.0, 2.0])
    K.apply_logit_bias(ids_for(2), z, 2, True, np.empty(0, np.int32), np.empty(0, np.float32))
    np.testing.assert_array_equal(z, [1.0, 2.0])
    with pytest.raises(ValueError):
        K.apply_logit_bias(ids_for(2), z, 2, True, np.array([1, 0], np.int32), f32([1, 1]))
    with pytest.raises(ValueError):
        K.apply_logit_bias(ids_for(2), z, 2, True, np.array([5], np.int32), f32([1]))
    with pytest.raises(ValueError):
        K.apply_logit_bias(ids_for(2), z, 2, True, np.array([0], np.int32), f32([np.nan]))


def logit_arrays(max_size=300):
    elems = st.one_of(
        st.floats(-1e4, 1e4, width=32, allow_nan=False),
        st.sampled_from([-INF, 0.0, -0.0, 1.0]),
    )
    return hnp.arrays(np.float32, st.integers(1, max_size), elements=elems)


def has_live(z):
    return bool((z > -INF).any())


@PROP
@given(logit_arrays(), st.floats(0.05, 20.0))
def test_prop_stats(z, t):
    if not has_live(z):
        with pytest.raises(ValueError):
            K.logit_stats(z, t)
        return
    mx, log_z, h, v = K.logit_stats(z, t)
    n_live = int((z > -INF).sum())
    assert 0.0 <= h <= math.log(n_live) + 1e-9
    assert v >= 0.0
    want = ref_stats(z[z > -INF], t)
    assert h == pytest.approx(want[2], rel=1e-6, abs=1e-9)
    assert v == pytest.approx(want[3], rel=1e-6, abs=1e-8)
    assert log_z == pytest.approx(want[1], rel=1e-9, abs=1e-8)


@PROP
@given(logit_arrays())
def test_prop_softmax(z):
    if not has_live(z):
        return
    out = np.empty(len(z))
    K.softmax(z, len(z), out)
    assert out.sum() == pytest.approx(1.0, abs=1e-12)
    assert np.all(out[z == -INF] == 0.0) and np.all(out >= 0)
    np.testing.assert_allclose(out, ref_softmax(z), rtol=1e-8, atol=1e-15)


def truncation_calls(k, p, min_keep):
    return {
        "top_k": lambda ids, z, n: K.top_k(ids, z, n, k),
        "top_p": lambda ids, z, n: K.top_p(ids, z, n, p, min_keep, False),
        "min_p": lambda ids, z, n: K.min_p(ids, z, n, p, min_keep),
        "typical_p": lambda ids, z, n: K.typical_p(ids, z, n, p, min_keep),
        "top_n_sigma": lambda ids, z, n: K.top_n_sigma(ids, z, n, 3.0 * p),
    }


@PROP
@given(logit_arrays(), st.integers(1, 50), st.floats(0.01, 0.99), st.integers(1, 8))
def test_prop_truncation(z0, k, p, min_keep):
    n = len(z0)
    n_live = int((z0 > -INF).sum())
    for name, call in truncation_calls(k, p, min_keep).items():
        z = z0.copy()
        ids = ids_for(n)
        if n_live == 0:
            with pytest.raises(ValueError):
                call(ids, z, n)
            continue
        m = call(ids, z, n)
        assert 1 <= m <= n_live, name
        check_consistent(ids, z, m, z0)
        assert np.all(z[:m] > -INF), name
        if name != "typical_p":  # the most likely token can be atypical
            assert float(z[:m].max()) == float(z0.max()), name  # the max is always kept
        if name != "top_k":
            assert m >= min(min_keep, n_live) or name == "top_n_sigma", name
        else:
            assert m == min(k, n_live)
        if name in ("top_k", "top_p"):
            assert np.all(np.diff(z[:m].astype(np.float64)) <= 0), name
        if name in ("min_p", "top_n_sigma"):
            assert np.all(np.diff(ids[:m]) > 0), name  # order preserved


@PROP
@given(logit_arrays(), st.floats(0.0, 1.0, exclude_max=True))
def test_prop_sample(z, u):
    if not has_live(z):
        return
    i = K.sample_categorical(z, len(z), u)
    assert 0 <= i < len(z)
    assert z[i] > -INF
    assert ref_softmax(z)[i] > 0


@pytest.mark.parametrize("n", [5, 1000, 100_000])
def test_radix_argsort_stable(n):
    rng = np.random.default_rng(n)
    keys = rng.integers(0, 50, n).astype(np.uint32) * np.uint32(2**20)
    np.testing.assert_array_equal(ksel.radix_argsort(keys), np.argsort(keys, kind="stable"))
    keys = rng.integers(0, 2**32, n, dtype=np.uint64).astype(np.uint32)
    np.testing.assert_array_equal(ksel.radix_argsort(keys), np.argsort(keys, kind="stable"))


def test_kernel_bench_measures_the_kernels_it_names():
    """The bench's references agree with the fused statistics and it reports what each
    truncating kernel kept, as the kernels themselves keep it."""
    z = rand_logits(4096, 3.0)
    r = kbench.run_kernel_bench(z, repeats=2)
    assert r["n_vocab"] == 4096 and max(r["rel_err"].values()) < 1e-6
    np.testing.assert_allclose(kbench.naive_stats(z), kbench.numpy_stats(z), rtol=1e-9)
    ids = np.arange(4096, dtype=np.int32)
    assert r["kept"]["top_k"] == K.top_k(ids.copy(), z.copy(), 4096, 40) == 40
    assert r["kept"]["top_p"] == K.top_p(ids.copy(), z.copy(), 4096, 0.9, 1, False)
    assert r["kept"]["min_p"] == K.min_p(ids.copy(), z.copy(), 4096, 0.05, 1)
    text = kbench.format_kernel_bench(r)
    assert f"kept {r['kept']['top_k']}" in text and "naive" in text and "numpy" in text


def test_boundary_conventions():
    # inverse CDF: i with sum_{j<i} p_j <= u < sum_{j<=i} p_j
    assert K.sample_categorical(f32([0.0, 0.0]), 2, 0.5) == 1
    assert K.sample_categorical(f32([0.0, 0.0, 0.0, 0.0]), 4, 0.25) == 1
    # top-p: mass >= p is enough (inclusive)
    ids = ids_for(4)
    assert K.top_p(ids, f32([1, 1, 1, 1]), 4, 0.75, 1, False) == 3
    assert K.top_p(ids_for(4), f32([1, 1, 1, 1]), 4, 0.5, 1, True) == 2
    # typical: mass must exceed p (strict, as llama.cpp)
    assert K.typical_p(ids_for(4), f32([2, 2, 2, 2]), 4, 0.5, 1) == 3
    # min-p: logit >= max + ln p (inclusive): p = 1 keeps every copy of the max
    ids = ids_for(3)
    assert K.min_p(ids, f32([3, 1, 3]), 3, 1.0, 1) == 2 and ids[:2].tolist() == [0, 2]
    # top-n-sigma: logit >= max - n sigma (inclusive); [0, 2]: sigma 1, n = 2 keeps both
    assert K.top_n_sigma(ids_for(2), f32([0, 2]), 2, 2.0) == 2
    assert K.top_n_sigma(ids_for(2), f32([0, 2]), 2, 1.999) == 1


def test_only_first_n_are_read():
    """Stale entries past n (here NaN) are never looked at."""
    base = f32([1.0, 3.0, 2.0, np.nan, np.nan])
    calls = [
        lambda ids, z: K.top_k(ids, z, 3, 2),
        lambda ids, z: K.top_p(ids, z, 3, 0.5, 1, False),
        lambda ids, z: K.min_p(ids, z, 3, 0.1, 1),
        lambda ids, z: K.typical_p(ids, z, 3, 0.5, 1),
        lambda ids, z: K.top_n_sigma(ids, z, 3, 1.0),
        lambda ids, z: K.argmax(z, 3),
        lambda ids, z: K.sample_categorical(z, 3, 0.5),
        lambda ids, z: K.scale_temperature(z, 3, 0.5),
        lambda ids, z: K.dynamic_temperature(z, 3, 1.0, 0.5, 1.0),
    ]
    for call in calls:
        call(ids_for(5), base.copy())
    with pytest.raises(ValueError):
        K.top_k(ids_for(5), base.copy(), 6, 2)


def test_top_k_signed_zero_threshold_block():
    """The k-th largest block max is +0.0 and a -0.0 (equal) sits earlier in a block whose
    max is -0.0: ties go by position, so that -0.0 must be found."""
    z = np.full(50_000, -1.0, dtype=np.float32)
    z[[123, 30_000]] = 0.0
    z[1000] = -0.0
    ids = ids_for(50_000)
    assert K.top_k(ids, z, 50_000, 2) == 2
    assert ids[:2].tolist() == [123, 1000]


def test_logit_bias_mask_absorbs_plus_inf_bias():
    z = f32([-INF, 1.0])
    K.apply_logit_bias(ids_for(2), z, 2, True, np.array([0, 1], np.int32), f32([INF, INF]))
    np.testing.assert_array_equal(z, [-INF, INF])
    z = f32([-INF, 1.0])
    K.apply_logit_bias(np.array([0, 1], np.int32), z, 2, False, np.array([0, 1], np.int32), f32([INF, INF]))
    np.testing.assert_array_equal(z, [-INF, INF])
