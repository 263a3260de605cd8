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
