"""Attention capture (engine/attention.py) on both real models through real llama.cpp: rows over
the valid cells, metrics against numpy, logits unchanged by the hook, GQA and sliding windows."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest

from entropic_local.engine import Engine
from entropic_local.engine.attention import AttentionUnavailable
from entropic_local.engine.backend import llama
from entropic_local.errors import UsageError
from entropic_local.kernels.attention import (
    attention_metrics,
    attention_metrics_masked,
    interaction_strength,
    interaction_strength_masked,
)


PROMPT = "The cat sat on the mat and looked out of the window at the rain"


N_CTX = 1024


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


# --------------------------------------------------------------------------- engines
def _engines(path):
    es = {
        "plain": Engine(path, n_ctx=N_CTX, n_threads=1, flash_attn=False),
        "all": Engine(path, n_ctx=N_CTX, n_threads=1, attention="all", attention_scores=True),
        "last": Engine(path, n_ctx=N_CTX, n_threads=1, attention="last"),
        "list": Engine(path, n_ctx=N_CTX, n_threads=1, attention=[1, 3, -2]),
        "nothing": Engine(path, n_ctx=N_CTX, n_threads=1, attention=[]),
    }
    return es


@pytest.fixture(scope="module")
def smollm2_engines(smollm2_path):
    es = _engines(smollm2_path)
    yield es
    for e in es.values():
        e.close()


@pytest.fixture(scope="module")
def gemma_engines(gemma_path):
    es = _engines(gemma_path)
    yield es
    for e in es.values():
        e.close()


@pytest.fixture(params=["smollm2", "gemma"])
def engines(request):
    return request.getfixturevalue(f"{request.param}_engines")


def _run(e: Engine, toks, steps):
    """Prompt then the given tokens one at a time; returns the logits after each decode."""
    e.clear()
    e.eval_prompt(toks)
    out = [e.logits().copy()]
    for t in steps:
        e.eval_token(t)
        out.append(e.logits().copy())
    return out


# --------------------------------------------------------------------------- capture
def _check_rows(e: Engine, n_tokens: int):
    a = e.attention
    n_head = int(llama.llama_model_n_head(e._model))
    for il in e.attention_layers:
        info = a.info(il)
        assert info["current"] and info["n_stream"] == 1 and info["flags"] == 0
        assert info["n_head"] == n_head
        P, v = a.window(il)
        valid = v.astype(bool)
        # a fresh single-sequence cache: the token's own cells are 0..n-1, the rest of the
        # (padded) window is masked
        assert np.array_equal(np.flatnonzero(valid), np.arange(n_tokens))
        assert P.shape[1] == info["n_kv"] >= n_tokens
        np.testing.assert_allclose(P[:, valid].sum(axis=1), 1.0, atol=2e-6)
        assert np.all(P[:, ~valid] == 0.0)
        assert np.all(P >= 0.0)
    rows = e.attention_rows()
    assert rows.shape == (len(e.attention_layers), n_head, n_tokens)


def test_rows_sum_to_one_over_valid_cells(engines):
    e = engines["all"]
    toks = e.tokenize(PROMPT)
    e.clear()
    e.eval_prompt(toks)  # a prompt batch: row n_tokens-1 of the micro-batch
    _check_rows(e, len(toks))
    assert e.attention.info(e.attention_layers[-1])["n_tokens"] == len(toks)
    for k in range(3):  # single-token decodes
        e.eval_token(toks[k])
        _check_rows(e, len(toks) + k + 1)
        assert e.attention.info(0)["n_tokens"] == 1


def test_metrics_equal_numpy(engines):
    e = engines["all"]
    toks = e.tokenize(PROMPT)
    e.clear()
    e.eval_prompt(toks)
    e.eval_token(toks[2])
    a = e.attention
    for il in (0, e.attention_layers[-1]):
        A = a.rows(il)
        h, v, hm, vm, agree = np_metrics(A)
        hh, hv = np.zeros(A.shape[0]), np.zeros(A.shape[0])
        got = attention_metrics(A, hh, hv)
        np.testing.assert_allclose(got, (hm, vm, agree), rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(hh, h, rtol=1e-12)
        np.testing.assert_allclose(hv, v, rtol=1e-12, atol=1e-14)
        # the masked form over the raw window gives the same numbers
        P, valid = a.window(il)
        hh2, hv2 = np.zeros(A.shape[0]), np.zeros(A.shape[0])
        got2 = attention_metrics_masked(P, valid, P.shape[1], hh2, hv2)
        np.testing.assert_allclose(got2, got, rtol=1e-12, atol=1e-14)
        # interaction strength from the captured pre-softmax scores
        S = a.scores_rows(il).astype(np.float64)
        ref_is = np.abs(S).mean()
        sw, sv, scale = a.scores_window(il)
        assert interaction_strength_masked(sw, sv, sw.shape[1], scale) == pytest.approx(ref_is, rel=1e-6)
        assert interaction_strength(sw[:, sv.astype(bool)], scale) == pytest.approx(ref_is, rel=1e-6)
        # the scores really are the softmax input: softmax(scale*S) over valid cells == A
        z = S - S.max(axis=1, keepdims=True)
        sm = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
        np.testing.assert_allclose(sm, A, atol=2e-5)
        m = a.metrics(il)
        assert (m.attn_entropy, m.attn_varentropy, m.agreement) == pytest.approx((hm, vm, agree), rel=1e-12)
        assert m.interaction_strength == pytest.approx(ref_is, rel=1e-6)
        assert m.n_valid == len(toks) + 1
        assert 0.0 <= m.attn_entropy <= math.log(m.n_valid) + 1e-9


def test_hook_does_not_change_logits(engines):
    """Bit-for-bit equal logits with and without the hook (same batching, flash attn off)."""
    toks = engines["plain"].tokenize(PROMPT)
    steps = [toks[3], toks[1], toks[4], toks[5]]
    ref = _run(engines["plain"], toks, steps)
    for k in ("all", "last", "nothing"):
        got = _run(engines[k], toks, steps)
        for r, g in zip(ref, got):
            assert np.array_equal(r, g), k


def test_layer_selection(engines):
    e_all, e_last, e_list, e_none = engines["all"], engines["last"], engines["list"], engines["nothing"]
    n_layer = int(llama.llama_model_n_layer(e_all._model))
    assert e_all.attention_layers == tuple(range(n_layer))
    assert e_last.attention_layers == (n_layer - 1,)
    assert e_list.attention_layers == (1, 3, n_layer - 2)
    assert e_none.attention_layers == ()
    assert engines["plain"].attention is None and engines["plain"].attention_layers == ()
    toks = e_all.tokenize(PROMPT)
    for e in (e_all, e_last, e_list, e_none):
        e.clear()
        e.eval_prompt(toks)
        e.eval_token(toks[1])
    # each engine captured the layer it claims: identical to the same layer of the "all" engine
    for e in (e_last, e_list):
        for il in e.attention_layers:
            assert np.array_equal(e.attention_rows(il), e_all.attention_rows(il))
        assert e.attention_rows().shape[0] == len(e.attention_layers)
    # and the layers really differ from one another (so the check above means something)
    assert not np.array_equal(e_all.attention_rows(1), e_all.attention_rows(3))
    with pytest.raises(UsageError):
        e_last.attention_rows(0)
    with pytest.raises(AttentionUnavailable):
        e_none.attention_rows()
    assert e_none.attention.asks > 100  # the callback did see every node
    with pytest.raises(UsageError):
        engines["plain"].attention_rows()


def test_flash_attention_conflict(smollm2_path):
    with pytest.raises(UsageError, match="flash attention"):
        Engine(smollm2_path, n_ctx=N_CTX, attention="last", flash_attn=True)
    with pytest.raises(UsageError, match="layer 99"):
        Engine(smollm2_path, n_ctx=N_CTX, attention=[99])


def test_gqa_gemma(gemma_engines):
    """Gemma 3 has 1 KV head for 4 query heads: the softmax node still has one row per query head."""
    e = gemma_engines["all"]
    n_head = int(llama.llama_model_n_head(e._model))
    n_head_kv = int(llama.llama_model_n_head_kv(e._model))
    assert n_head_kv < n_head
    toks = e.tokenize(PROMPT)
    e.clear()
    e.eval_prompt(toks)
    assert e.attention_rows().shape == (len(e.attention_layers), n_head, len(toks))
    assert e.attention.info(0)["scale"] == 1.0  # Gemma pre-scales Q; the softmax scale is 1
    # heads sharing one KV head still attend differently
    r = e.attention_rows(e.attention_layers[-1])
    assert not np.allclose(r[0], r[1])


def test_kv_reuse_rows_over_the_right_cells(engines):
    e, fresh = engines["all"], engines["last"]
    a_toks = e.tokenize(PROMPT)
    b_toks = a_toks[:8] + e.tokenize(" dog ran across the yard", add_special=False)
    e.clear()
    e.eval_prompt(a_toks)
    e.eval_token(a_toks[2])
    n = e.eval_prompt(b_toks)  # drops the tail, reuses the first 8 cells
    assert n == len(b_toks) - 8
    _check_rows(e, len(b_toks))
    last = e.attention_layers[-1]
    # against a fresh cache holding only B (batching differs, so only close, not equal)
    fresh.clear()
    fresh.eval_prompt(b_toks)
    np.testing.assert_allclose(e.attention_rows(last), fresh.attention_rows(last), atol=0.1)
    # the same prompt again: logits AND attention of that prompt come back, bit for bit
    before = e.attention_rows().copy()
    e.eval_token(b_toks[1])
    assert e.eval_prompt(b_toks) == 0
    assert np.array_equal(e.attention_rows(), before)


def test_not_captured_is_an_error_not_stale_data(smollm2_engines):
    e = smollm2_engines["last"]
    e.clear()
    e.attention.begin()  # a decode that never reached the hook (e.g. failed)
    with pytest.raises(AttentionUnavailable):
        e.attention_rows()
    with pytest.raises(AttentionUnavailable):
        e.attention.metrics()
    with pytest.raises(AttentionUnavailable, match="scores"):
        e.attention.scores_window(e.attention_layers[-1])


def test_sliding_window_layers_gemma(gemma_engines):
    """Past its 512-token window, a sliding-window layer attends over exactly 512 cells (its
    own cache and mask); the global layers attend over every token."""
    e = gemma_engines["all"]
    n_swa = int(llama.llama_model_n_swa(e._model))
    assert n_swa == 512
    rng = random.Random(0)
    words = ["apple", "river", "stone", "cloud", "music", "table", "green", "quickly"]
    toks = e.tokenize(" ".join(rng.choice(words) for _ in range(560)))[:530]
    assert len(toks) == 530
    e.clear()
    e.eval_prompt(toks)
    kinds = {}
    for il in e.attention_layers:
        P, v = e.attention.window(il)
        valid = v.astype(bool)
        kinds[il] = int(valid.sum())
        assert np.flatnonzero(valid)[-1] == len(toks) - 1
        np.testing.assert_allclose(P[:, valid].sum(axis=1), 1.0, atol=2e-6)
        assert np.all(P[:, ~valid] == 0.0)
        assert e.attention_rows(il).shape == (P.shape[0], kinds[il])
    assert sorted(il for il, n in kinds.items() if n == len(toks)) == [5, 11, 17]  # global layers
    assert all(n == n_swa for il, n in kinds.items() if il not in (5, 11, 17))
    with pytest.raises(AttentionUnavailable, match="different numbers of cells"):
        e.attention_rows()
    m = e.attention.metrics(0)
    assert m.n_valid == n_swa


def test_callback_ask_answers_on_fake_tensors():
    """The compiled ask path: which node names it wants (no llama.cpp involved)."""
    import ctypes

    from entropic_local.engine.attention import AttentionCapture
    from entropic_local.engine.attention_callback import eval_callback

    fn = ctypes.CFUNCTYPE(ctypes.c_bool, ctypes.c_void_p, ctypes.c_bool, ctypes.c_void_p)(eval_callback.address)

    def asks(cap, name: bytes) -> bool:
        t = np.zeros(336, np.uint8)
        t[256 : 256 + len(name)] = np.frombuffer(name, np.uint8)
        return bool(fn(t.ctypes.data, True, cap._ctrl.ctypes.data))

    cap = AttentionCapture([3, 12], 30, 9, scores=True)
    assert not asks(cap, b"kq_soft_max-3")  # buffers not allocated yet: nothing wanted
    cap.allocate(256)
    wanted = [b"kq_soft_max-3", b"kq_soft_max-12", b"kq-3", b"kq_scaled_2-12", b"kq_plus_kq_b-3"]
    not_wanted = [b"kq_soft_max-4", b"kq_soft_max-1", b"kq_soft_max-123", b"kq-30", b"kq-", b"kq_soft_max-",
                  b"kq_soft_max-3 (view)", b"kqv-3", b"kqv_out-3", b"kq_scaled_1-3", b"kq_tanh-3",
                  b"attn_norm-3", b"kq_soft_max-03x", b"", b"kq_soft_max-99999999"]
    assert all(asks(cap, n) for n in wanted)
    assert not any(asks(cap, n) for n in not_wanted)
    n0 = cap.asks
    asks(cap, b"ffn_up-1")
    assert cap.asks == n0 + 1
    probs_only = AttentionCapture([3], 30, 9, scores=False)
    probs_only.allocate(256)
    assert asks(probs_only, b"kq_soft_max-3") and not asks(probs_only, b"kq-3")
