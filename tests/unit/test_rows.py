"""``rows_stats``: every row's statistics in one call equal ``logit_stats`` per row and a
numpy reference; NaN in any row raises."""

from __future__ import annotations

import numpy as np
import pytest

from entropic_local.kernels import logit_stats
from entropic_local.kernels.rows import rows_stats, rows_stats_array


def reference(z):
    z = z.astype(np.float64)
    m = z.max()
    p = np.exp(z - m)
    p /= p.sum()
    log_z = m + np.log(np.exp(z - m).sum())
    lp = z - log_z
    h = -(p * lp).sum()
    return m, log_z, h, (p * lp * lp).sum() - h * h


def test_rows_equal_per_row_stats_and_reference():
    rng = np.random.default_rng(3)
    mat = (rng.standard_normal((7, 1000)) * rng.uniform(0.1, 8, (7, 1))).astype(np.float32)
    mat[2, :500] = -np.inf  # a masked half
    out = rows_stats_array(mat)
    for r in range(7):
        assert tuple(out[r]) == pytest.approx(logit_stats(mat[r], 1.0), rel=1e-12, abs=1e-12)
        assert tuple(out[r]) == pytest.approx(reference(mat[r][np.isfinite(mat[r])]), rel=1e-7, abs=1e-9)


def test_known_answer_and_errors():
    out = rows_stats_array(np.array([[1, 2, 3], [0, 0, 0]], dtype=np.float32))
    assert out[0, 1:] == pytest.approx([3.407606, 0.832396, 0.424405], abs=1e-6)
    assert out[1, 2] == pytest.approx(np.log(3)) and out[1, 3] == pytest.approx(0.0, abs=1e-12)
    bad = np.zeros((2, 4), dtype=np.float32)
    bad[1, 2] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        rows_stats_array(bad)
    with pytest.raises(ValueError):
        rows_stats(np.zeros((3, 4), dtype=np.float32), np.empty((2, 4)))
