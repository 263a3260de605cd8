"""Entmax attention's spec and its per-head α map (no model)."""

from __future__ import annotations

import numpy as np
import pytest

from entropic_local.engine.attention_entmax import (
    ALPHA_SNAP, ETA_HI, ETA_LO, EntmaxConfig, adaptive_alpha, parse_attention_entmax,
)
from entropic_local.errors import UsageError

# --------------------------------------------------------------------------- pure parts


def test_parse_attention_entmax():
    assert parse_attention_entmax(1.5) == EntmaxConfig("fixed", 1.5)
    assert parse_attention_entmax("2") == EntmaxConfig("fixed", 2.0)
    assert parse_attention_entmax("off").mode == "off"
    c = parse_attention_entmax("adaptive")
    assert (c.mode, c.alpha, c.eta_lo, c.eta_hi, c.snap) == ("adaptive", 2.0, ETA_LO, ETA_HI, ALPHA_SNAP)
    c = parse_attention_entmax("adaptive:alpha_max=1.5,eta_lo=0.1,eta_hi=0.9,snap=1")
    assert (c.alpha, c.eta_lo, c.eta_hi, c.snap) == (1.5, 0.1, 0.9, 1.0)
    assert parse_attention_entmax(c.spec()) == c
    for bad in (0.5, 2.5, "x", "adaptive:foo=1", "adaptive:eta_lo=0.7,eta_hi=0.6", True, None, [1.5]):
        with pytest.raises(UsageError):
            parse_attention_entmax(bad)


def test_adaptive_map():
    assert adaptive_alpha(0.0, 2.0, 0.25, 0.6, 1.1) == 2.0
    assert adaptive_alpha(0.25, 2.0, 0.25, 0.6, 1.1) == 2.0
    assert adaptive_alpha(0.6, 2.0, 0.25, 0.6, 1.1) == 1.0
    assert adaptive_alpha(1.0, 2.0, 0.25, 0.6, 1.1) == 1.0
    assert adaptive_alpha(0.425, 2.0, 0.25, 0.6, 1.1) == pytest.approx(1.5)  # smoothstep midpoint
    xs = np.linspace(0, 1, 101)
    a = [adaptive_alpha(x, 2.0, 0.25, 0.6, 1.0) for x in xs]
    assert all(b <= c + 1e-15 for b, c in zip(a[1:], a[:-1]))  # non-increasing in η
    # snapping: values below the snap become exactly 1
    assert adaptive_alpha(0.59, 2.0, 0.25, 0.6, 1.1) == 1.0
