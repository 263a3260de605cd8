"""Entmax attention at inference (engine/attention_entmax.py) on the real models: identity at α = 1,
the write-back against numpy entmax of log p, prefill rows, the statistics."""

from __future__ import annotations

import math

import numpy as np
import pytest

import entropic_local as el
from entropic_local.engine import Engine
from entropic_local.engine.attention_entmax import (
    ALPHA_SNAP, ETA_HI, ETA_LO, ST_ALPHA, ST_ROWS, ST_SUPPORT, ST_VALID, ST_WRITTEN,
)
from entropic_local.errors import UsageError
from entropic_local.kernels.entmax_reference import entmax_ref, sparsemax_ref


PROMPT = "The cat sat on the mat and looked out of the window at the rain, thinking about fish"


N_CTX = 512


MODELS = ["smollm2-135m", "gemma3-270m"]


def _load(name, **kw):
    return el.load(name, n_ctx=N_CTX, n_threads=1, **kw)


def _run(m, toks, steps):
    """Prompt in one batch, then the given tokens one at a time; logits after each decode."""
    e = m.engine
    e.clear()
    e.eval_prompt(toks)
    out = [e.logits().copy()]
    for t in steps:
        e.eval_token(t)
        out.append(e.logits().copy())
    return out


def _log(p):
    with np.errstate(divide="ignore"):
        return np.log(np.asarray(p, dtype=np.float64))


def _np_alpha(p_row):
    """The adaptive map in numpy: normalised entropy of a softmax row -> α."""
    p = np.asarray(p_row, dtype=np.float64)
    n = p.size
    nz = p[p > 0]
    h = float(-(nz * np.log(nz)).sum())
    eta = h / math.log(n) if n > 1 else 0.0
    x = min(max((ETA_HI - eta) / (ETA_HI - ETA_LO), 0.0), 1.0)
    a = 1.0 + (2.0 - 1.0) * x * x * (3.0 - 2.0 * x)
    return 1.0 if a < ALPHA_SNAP else a


# --------------------------------------------------------------------------- (a) identity
@pytest.mark.parametrize("name", MODELS)
def test_alpha_one_and_off_are_bit_identical(name):
    base = el.load(name, n_ctx=N_CTX, n_threads=1, flash_attn=False)
    one = _load(name, attention_entmax=1.0)
    off = _load(name, attention_entmax="off")
    try:
        toks = base.tokenize(PROMPT)
        steps = toks[1:5]
        ref = _run(base, toks, steps)
        for m in (one, off):
            got = _run(m, toks, steps)
            for a, b in zip(ref, got):
                assert np.array_equal(a, b)
        st = one.engine.attention.entmax_stats()
        n_head = st["per_head_support"].shape[1]
        n_layer = len(st["layers"])
        # α = 1: every row seen (prompt rows included), none written
        assert st["rows"] == n_layer * n_head * (len(toks) + len(steps))
        assert st["rows_written"] == 0 and st["rows_skipped"] == 0 and st["mean_alpha"] == 1.0
        assert st["zero_fraction"] < 1e-3
        assert off.engine.attention.entmax_stats()["rows"] == 0
    finally:
        for m in (base, one, off):
            m.close()


# --------------------------------------------------------------------------- (b) values
@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize("spec", [2.0, 1.5, 1.25, "adaptive"])
def test_last_layer_rows_equal_numpy_entmax_of_log_p(name, spec):
    """Entmax on the last layer only: everything before its softmax is untouched, so a plain
    capture of the same positions gives the softmax rows the callback started from."""
    plain = _load(name, attention="last")
    ent = _load(name, attention="last", attention_entmax=spec)
    try:
        toks = plain.tokenize(PROMPT)
        steps = toks[2:6]
        lp = _run(plain, toks, [])
        le = _run(ent, toks, [])
        cap_p, cap_e = plain.engine.attention, ent.engine.attention
        for k in range(len(steps) + 1):
            if k:
                cap_e.reset_entmax_stats()
                plain.engine.eval_token(steps[k - 1])
                ent.engine.eval_token(steps[k - 1])
                lp.append(plain.engine.logits().copy())
                le.append(ent.engine.logits().copy())
            P = cap_p.rows(-1)  # softmax, [n_head, n_valid]
            E = cap_e.rows(-1)  # after the write-back
            raw = cap_e.raw_entmax_stats()[0]
            for h in range(P.shape[0]):
                z = _log(P[h])
                if spec == "adaptive":
                    a = _np_alpha(P[h])
                    ref = P[h].astype(np.float64) if a == 1.0 else entmax_ref(z, a)
                    if k:  # single-token decode: the stats hold this one row per head
                        assert raw[h, ST_ALPHA] == pytest.approx(a, abs=1e-9)
                elif spec == 2.0:
                    ref = sparsemax_ref(z)
                else:
                    ref = entmax_ref(z, spec)
                np.testing.assert_allclose(E[h], ref, atol=2e-6, rtol=0)
                # exact zeros where the reference is zero
                assert np.all(E[h][ref == 0] == 0)
                # (c) sums to 1 over the valid cells
                assert abs(float(E[h].astype(np.float64).sum()) - 1.0) < 1e-5
            _, v = cap_e.window(-1)
            Pw, _ = cap_e.window(-1)
            assert np.all(Pw[:, ~v.astype(bool)] == 0.0)
        # the write-back reached the logits
        assert max(float(np.abs(a - b).max()) for a, b in zip(lp, le)) > 1e-3
    finally:
        plain.close()
        ent.close()


# --------------------------------------------------------------------------- (c) all rows
@pytest.mark.parametrize("name", MODELS)
def test_all_layers_rows_are_distributions(name):
    m = _load(name, attention="all", attention_entmax=1.5)
    try:
        toks = m.tokenize(PROMPT)
        _run(m, toks, toks[1:3])
        cap = m.engine.attention
        for il in m.engine.attention_layers:
            P, v = cap.window(il)
            valid = v.astype(bool)
            s = P[:, valid].astype(np.float64).sum(axis=1)
            np.testing.assert_allclose(s, 1.0, atol=1e-5)
            assert np.all(P[:, ~valid] == 0.0)
            assert np.all(P >= 0.0)
        st = cap.entmax_stats()
        assert st["rows_skipped"] == 0 and not st["flags"]
        assert st["rows_written"] == st["rows"]
        assert 0.0 < st["zero_fraction"] < 1.0
    finally:
        m.close()


@pytest.mark.parametrize("name", MODELS)
def test_prefill_rows_are_all_rewritten(name):
    """Every query row of a prompt batch gets entmax, each over its own valid cells: in a
    fresh causal cache row t of the batch attends to cells 0..t, so each head of each layer
    must have seen n rows and n(n+1)/2 valid cells (had only the newest row been processed,
    n cells; had every row used the newest row's mask, n² cells). The values of a row are
    checked against numpy in test_last_layer_rows_equal_numpy_entmax_of_log_p. (Comparing
    the batch's logits with a token-by-token decode does not work as a check: the two
    differ already under softmax, and sparse attention amplifies that.)"""
    m = _load(name, attention_entmax=2.0)
    base = el.load(name, n_ctx=N_CTX, n_threads=1, flash_attn=False)
    try:
        toks = m.tokenize(PROMPT)
        n = len(toks)
        e = m.engine
        cap = e.attention
        e.eval_prompt(toks)
        raw = cap.raw_entmax_stats()
        assert np.all(raw[..., ST_ROWS] == n)
        assert np.all(raw[..., ST_WRITTEN] == n)
        assert np.all(raw[..., ST_VALID] == n * (n + 1) // 2)
        assert np.all(raw[..., ST_SUPPORT] >= n)  # at least one cell per row
        assert np.all(raw[..., ST_SUPPORT] < n * (n + 1) // 2)  # sparsemax cut something
        base.engine.eval_prompt(toks)
        assert float(np.abs(e.logits() - base.engine.logits()).max()) > 1.0
    finally:
        m.close()
        base.close()


# --------------------------------------------------------------------------- (d) statistics
@pytest.mark.parametrize("name", MODELS)
def test_stats_match_numpy_recount(name):
    m = _load(name, attention="all", attention_entmax="adaptive")
    try:
        toks = m.tokenize(PROMPT)
        e = m.engine
        cap = e.attention
        e.clear()
        e.eval_prompt(toks)
        cap.reset_entmax_stats()
        tot_valid = tot_support = tot_rows = 0
        per_head_support = 0
        for t in toks[1:7]:
            before = cap.raw_entmax_stats()
            e.eval_token(t)
            d = cap.raw_entmax_stats() - before
            for i, il in enumerate(e.attention_layers):
                R = cap.rows(il)  # [n_head, n_valid] after the write-back
                nz = np.count_nonzero(R, axis=1)
                assert np.array_equal(d[i, :, ST_ROWS], np.ones(R.shape[0]))
                assert np.array_equal(d[i, :, ST_VALID], np.full(R.shape[0], R.shape[1]))
                assert np.array_equal(d[i, :, ST_SUPPORT], nz)
                assert np.all(d[i, :, ST_WRITTEN] == (d[i, :, ST_ALPHA] > 1.0 + 1e-9))
                tot_valid += R.size
                tot_support += int(nz.sum())
                tot_rows += R.shape[0]
                per_head_support = per_head_support + nz if i == 0 else per_head_support
        st = cap.entmax_stats()
        assert st["rows"] == tot_rows and st["valid_cells"] == tot_valid and st["support_cells"] == tot_support
        assert st["zero_fraction"] == pytest.approx(1.0 - tot_support / tot_valid, abs=1e-12)
        assert st["mean_support"] == pytest.approx(tot_support / tot_rows, abs=1e-12)
        np.testing.assert_allclose(st["per_head_support"][0], per_head_support / 6)
        assert 1.0 <= st["mean_alpha"] <= 2.0
    finally:
        m.close()


# --------------------------------------------------------------------------- wiring
def test_wiring_and_errors(smollm2_path):
    with pytest.raises(UsageError):
        Engine(smollm2_path, n_ctx=N_CTX, flash_attn=True, attention_entmax=1.5)
    with pytest.raises(UsageError):
        Engine(smollm2_path, n_ctx=N_CTX, attention_entmax="sparse")
    e = Engine(smollm2_path, n_ctx=N_CTX, n_threads=1, attention_entmax=1.5)
    try:
        assert len(e.attention_layers) == 30  # alone: all layers
        assert e.attention.entmax_config.alpha == 1.5
        e.attention.configure("adaptive:alpha_max=1.5")
        assert e.attention.entmax_config.mode == "adaptive"
        e.eval_prompt(e.tokenize("Hello there"))
        assert e.attention.entmax_stats()["mean_alpha"] <= 1.5
    finally:
        e.close()
    e = Engine(smollm2_path, n_ctx=N_CTX, n_threads=1, attention=[3, 7], attention_entmax=2.0)
    try:
        assert e.attention_layers == (3, 7)
        e.eval_prompt(e.tokenize("Hello there"))
        assert list(e.attention.entmax_stats()["per_layer"]) == [3, 7]
    finally:
        e.close()


def test_generate_with_entmax_attention():
    m = _load("gemma3-270m", attention="last", attention_entmax="adaptive", seed=1)
    try:
        g = m.generate("Once upon a time", max_tokens=6, sampler="greedy")
        assert len(g.steps) == 6
        assert all(math.isfinite(s.info["attn_entropy"]) for s in g.steps)
    finally:
        m.close()
