"""``top_k_into`` / ``Candidates.reset_top_k``: top-k straight from the model's logits equals
loading the full vocabulary and running ``top_k``, ties, masks and all."""

from __future__ import annotations

import numpy as np
import pytest

from entropic_local import kernels
from entropic_local.samplers.candidates import Candidates
from entropic_local.samplers.chain import SamplerChain


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("k", [1, 3, 40, 900, 5000, 0])
def test_equals_reset_then_top_k(seed, k):
    rng = np.random.default_rng(seed)
    raw = rng.normal(0, 3, 4096).astype(np.float32)
    raw[rng.integers(0, 4096, 50)] = np.round(raw[:50])  # ties
    raw[rng.integers(0, 4096, 300)] = -np.inf  # masks
    stats = kernels.logit_stats(raw, 1.0)
    a, b = Candidates(4096), Candidates(4096)
    a.reset(raw, stats)
    a.n = kernels.top_k(a.ids, a.logits, a.n, k)
    b.reset_top_k(raw, stats, k)
    assert b.n == a.n and b.sorted and not b.identity
    np.testing.assert_array_equal(b.ids[: b.n], a.ids[: a.n])
    np.testing.assert_array_equal(b.logits[: b.n], a.logits[: a.n])
    assert (b.entropy, b.log_z) == (a.entropy, a.log_z)


def test_all_masked_is_refused():
    raw = np.full(64, -np.inf, dtype=np.float32)
    with pytest.raises(ValueError, match="masked"):
        kernels.top_k_into(raw, 5, np.empty(64, np.int32), np.empty(64, np.float32))


def test_leading_top_k():
    assert SamplerChain.parse("llama").leading_top_k == 40
    assert SamplerChain.parse("greedy").leading_top_k == 0
    assert SamplerChain.parse("penalties:repeat=1.1,top_k=5,temp=0.8").leading_top_k == 0


def _fused(raw, k):
    n = raw.shape[0]
    ids, logits, stats = np.empty(n, np.int32), np.empty(n, np.float32), np.empty(4)
    m = kernels.top_k_stats_into(raw, k, ids, logits, stats)
    return m, ids[:m].copy(), logits[:m].copy(), tuple(stats)


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("n,k", [(262144, 40), (49152, 40), (4096, 1), (4096, 900), (4096, 0), (300, 40),
                                 (64, 64), (1, 1)])
def test_fused_stats_equal_separate_calls(seed, n, k):
    """One pass for both: the same top-k and bit-for-bit the same statistics as
    ``logit_stats`` then ``top_k_into``, on the shared and the sorting paths."""
    rng = np.random.default_rng(seed)
    raw = rng.normal(0, 3 + seed, n).astype(np.float32)
    if n > 100:
        raw[rng.integers(0, n, n // 50)] = np.round(raw[: n // 50])  # ties
        raw[rng.integers(0, n, n // 10)] = -np.inf  # masks
    m, ids, logits, stats = _fused(raw, k)
    ref_ids, ref_logits = np.empty(n, np.int32), np.empty(n, np.float32)
    ref_m = kernels.top_k_into(raw, k, ref_ids, ref_logits)
    assert m == ref_m
    np.testing.assert_array_equal(ids, ref_ids[:m])
    np.testing.assert_array_equal(logits, ref_logits[:m])
    assert stats == kernels.logit_stats(raw, 1.0)


def test_fused_special_values():
    """NaN and all-masked are refused as ``logit_stats`` refuses them; +inf logits take all
    the mass (entropy ln #inf) and lead the top-k."""
    n = 8192
    raw = np.zeros(n, np.float32)
    raw[5000] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        _fused(raw, 40)
    with pytest.raises(ValueError, match="masked"):
        _fused(np.full(n, -np.inf, np.float32), 40)
    raw = np.random.default_rng(0).normal(0, 1, n).astype(np.float32)
    raw[[17, 4000, 8000]] = np.inf
    m, ids, _, stats = _fused(raw, 40)
    assert m == 40 and list(ids[:3]) == [17, 4000, 8000]
    assert stats[1] == np.inf and stats[2] == pytest.approx(np.log(3)) and stats[3] == 0.0


def test_reset_top_k_computes_the_stats_when_not_given():
    raw = np.random.default_rng(3).normal(0, 4, 49152).astype(np.float32)
    a, b = Candidates(49152), Candidates(49152)
    given = kernels.logit_stats(raw, 1.0)
    assert a.reset_top_k(raw, given, 40) == b.reset_top_k(raw, None, 40) == given
    np.testing.assert_array_equal(a.ids[: a.n], b.ids[: b.n])
