"""Attention layer specs and the attention metric kernels (kernels/attention.py) on crafted rows."""

from __future__ import annotations

import math

import numpy as np
import pytest

from entropic_local.engine.attention import parse_attention_layers
from entropic_local.errors import UsageError
from entropic_local.kernels.attention import (
    attention_metrics,
    attention_metrics_masked,
    interaction_strength,
    interaction_strength_masked,
)

# --------------------------------------------------------------------------- numpy reference


def np_metrics(A: np.ndarray):
    """Entropy / varentropy per head, their means, agreement, from rows over valid cells."""
    A = A.astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        logp = np.where(A > 0, np.log(np.where(A > 0, A, 1.0)), 0.0)
    h = -(A * logp).sum(axis=1)
    v = (np.where(A > 0, A * (logp + h[:, None]) ** 2, 0.0)).sum(axis=1)
    agree = np.abs(A - A.mean(axis=0, keepdims=True)).mean()
    return h, v, h.mean(), v.mean(), agree


def test_parse_attention_layers():
    assert parse_attention_layers("last", 30) == (29,)
    assert parse_attention_layers("all", 3) == (0, 1, 2)
    assert parse_attention_layers("3,7, 11", 30) == (3, 7, 11)
    assert parse_attention_layers([11, 3, 3, -1], 30) == (3, 11, 29)
    assert parse_attention_layers([], 30) == ()
    for bad in ("first", [30], [-31], "1,x", [1.5j]):
        with pytest.raises(UsageError):
            parse_attention_layers(bad, 30)


# --------------------------------------------------------------------------- kernels alone
def test_kernels_on_crafted_rows():
    hh, hv = np.zeros(3), np.zeros(3)
    one_hot = np.array([[0, 1, 0, 0], [0, 1, 0, 0], [0, 1, 0, 0]], dtype=np.float32)
    assert attention_metrics(one_hot, hh, hv) == (0.0, 0.0, 0.0)
    uni = np.full((3, 4), 0.25, dtype=np.float32)
    h, v, ag = attention_metrics(uni, hh, hv)
    assert h == pytest.approx(math.log(4)) and v == pytest.approx(0.0, abs=1e-15) and ag == 0.0
    two = np.array([[0.5, 0.5, 0, 0], [0, 0, 0.5, 0.5], [0.25, 0.25, 0.25, 0.25]])
    h, v, ag = attention_metrics(two, hh, hv)
    assert hh.tolist() == pytest.approx([math.log(2), math.log(2), math.log(4)])
    ref = np_metrics(two)
    assert (h, v, ag) == pytest.approx(ref[2:], rel=1e-12)
    # a masked window: extra masked cells change nothing; a valid cell with p = 0 counts in n
    P = np.zeros((3, 8), dtype=np.float32)
    valid = np.zeros(8, dtype=np.uint8)
    cells = [5, 1, 6, 2]
    P[:, cells] = two
    valid[cells] = 1
    got = attention_metrics_masked(P, valid, 8, np.zeros(3), np.zeros(3))
    assert got == pytest.approx((h, v, ag), rel=1e-12)
    assert attention_metrics_masked(P, valid, 6, np.zeros(3), np.zeros(3))[0] != pytest.approx(got[0])  # cell 6 cut
    S = np.arange(24, dtype=np.float32).reshape(3, 8) - 10
    S_valid = S[:, valid.astype(bool)]
    assert interaction_strength_masked(S, valid, 8, 0.5) == pytest.approx(0.5 * np.abs(S_valid).mean())
    assert interaction_strength(S_valid, 0.5) == pytest.approx(0.5 * np.abs(S_valid).mean())
    with pytest.raises(ValueError):
        attention_metrics_masked(P, np.zeros(8, np.uint8), 8, np.zeros(3), np.zeros(3))
