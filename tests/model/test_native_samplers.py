"""DRY, XTC, mirostat (v1, v2) and adaptive-p against llama.cpp's own samplers
(``llama_sampler_init_dry`` / ``_xtc`` / ``_mirostat`` / ``_mirostat_v2`` / ``_adaptive_p``
through ``llama_sampler_apply``) on real logits of both models, with a token history.

Deterministic parts only where a stage draws: XTC at probability 1 (it always fires),
mirostat's cut for the running mu and mu's update from the token llama.cpp drew, adaptive-p's
transformed logits for its moving-average state. llama.cpp computes probabilities in float32
with a sequential float32 sum; the stages use exact (float64) probabilities, so transformed
logits are compared to 1e-5 and a cut may differ only where a boundary probability is within
float32 rounding of the threshold (not the case on these inputs).
"""

from __future__ import annotations

import ctypes

import numpy as np
import pytest

from entropic_local.engine.backend import llama
from entropic_local.engine.token_data import TokenDataArray
from entropic_local.samplers import Candidates
from entropic_local.samplers.stages.adaptive_p import AdaptiveP
from entropic_local.samplers.stages.dry import DRY
from entropic_local.samplers.stages.mirostat import Mirostat, MirostatV2
from entropic_local.samplers.stages.xtc import XTC

PROMPT = "Here is a list of fruit: apples, pears, plums. More fruit: apples, pears,"
HISTORY_TEXT = ("one two three four. one two five: one two three six \"one two three\" "
                "one two three four* one two")


@pytest.fixture(params=["smollm2", "gemma"])
def setup(request):
    """(model, raw logits after PROMPT, a history with repetitions)."""
    m = request.getfixturevalue(request.param)
    eng = m.engine
    with m.hold():
        toks = eng.tokenize(PROMPT, add_special=True, parse_special=False)
        eng.eval_prompt(toks)
        raw = eng.logits().copy()
        raw2 = None
        eng.eval_token(int(np.argmax(raw)))
        raw2 = eng.logits().copy()
    hist = eng.tokenize(HISTORY_TEXT, add_special=False, parse_special=False)
    return m, raw, raw2, hist


def _native(smpl, raw, ids=None):
    v = len(raw)
    td = TokenDataArray(v)
    if ids is None:
        ids = np.arange(v, dtype=np.int32)
        td.load(ids, raw, v)
    else:
        td.load(ids, raw[ids], len(ids))
    td.apply(smpl)
    return td.result()


def _ours(stage, raw, ids=None):
    c = Candidates(len(raw))
    c.reset(raw)
    if ids is not None:  # a truncated set, as after top-k
        c.n = len(ids)
        c.ids[: c.n] = ids
        c.logits[: c.n] = raw[ids]
        c.touch()
    stage.apply(c)
    return c


def _as_dict(ids, logits):
    return dict(zip(np.asarray(ids).tolist(), np.asarray(logits).tolist()))


@pytest.mark.parametrize("mult,base,allowed,last_n,breakers", [
    (0.8, 1.75, 2, 64, ("\n", ":", '"', "*")),     # llama.cpp's defaults
    (1.0, 2.0, 1, -1, ()),                        # no breakers, the whole history
    (0.5, 1.1, 3, 16, ("\n", ":", '"', "*")),
    (2.0, 1.75, 1, 64, ("one two three",)),       # a multi-token breaker (head + tail)
    (1.5, 3.0, 0, 64, (" two",)),
])
@pytest.mark.parametrize("identity", [True, False])
def test_dry_equals_llama_cpp(setup, mult, base, allowed, last_n, breakers, identity):
    m, raw, _, hist = setup
    eng = m.engine
    d = DRY(mult, base, allowed, last_n, breakers).bind(m)
    arr = (ctypes.c_char_p * max(1, len(breakers)))(*[b.encode() for b in breakers])
    nat = llama.llama_sampler_init_dry(eng._vocab, mult, base, allowed,
                                       last_n if last_n >= 0 else len(hist), arr, len(breakers))
    try:
        for t in hist:
            d.accept(t)
            llama.llama_sampler_accept(nat, t)
        ids = None
        if not identity:  # a truncated, unsorted set that holds the history's tokens
            keep = set(np.argsort(-raw, kind="stable")[:400].tolist()) | set(hist)
            ids = np.random.default_rng(0).permutation(sorted(keep)).astype(np.int32)
        c = _ours(d, raw, ids)
        nid, nlog, _, _ = _native(nat, raw, ids)
    finally:
        llama.llama_sampler_free(nat)
    ours = _as_dict(c.ids[: c.n], c.logits[: c.n])
    theirs = _as_dict(nid, nlog)
    assert ours == theirs
    base_ids = nid
    changed = int((nlog != raw[base_ids]).sum())
    assert d.last_penalised == changed
    if allowed <= 2 and not breakers:
        assert changed >= 1   # the history repeats: something is penalised


def test_dry_breakers_resolve_like_llama_cpp(setup):
    """A breaker cuts repetitions: with ' two' as one, nothing that follows 'one two' is
    penalised at allowed length 2 in either implementation; without it, it is."""
    m, raw, _, hist = setup
    with_b = DRY(1.0, 1.75, 2, 64, (" two",)).bind(m)
    without = DRY(1.0, 1.75, 2, 64, ()).bind(m)
    for t in hist:
        with_b.accept(t)
        without.accept(t)
    _ours(with_b, raw)
    _ours(without, raw)
    assert without.last_penalised >= 1
    assert with_b.last_penalised < without.last_penalised


@pytest.mark.parametrize("threshold,k", [(0.1, None), (0.05, None), (0.02, 40), (0.3, 10), (0.0, 20)])
def test_xtc_at_probability_one_equals_llama_cpp(setup, threshold, k):
    m, raw, raw2, _ = setup
    for logits in (raw, raw2):
        ids = None if k is None else np.argsort(-logits, kind="stable")[:k].astype(np.int32)
        x = XTC(1.0, threshold, 1, seed=3)
        c = _ours(x, logits, ids)
        nat = llama.llama_sampler_init_xtc(1.0, threshold, 1, 3)
        try:
            nid, nlog, _, _ = _native(nat, logits, ids)
        finally:
            llama.llama_sampler_free(nat)
        assert sorted(c.ids[: c.n].tolist()) == sorted(nid.tolist())
        assert _as_dict(c.ids[: c.n], c.logits[: c.n]) == _as_dict(nid, nlog)
        n0 = len(logits) if ids is None else len(ids)
        assert x.last_removed == n0 - len(nid)


@pytest.mark.parametrize("version,tau,eta", [(1, 5.0, 0.1), (1, 3.0, 0.3), (2, 5.0, 0.1),
                                             (2, 2.0, 0.5), (2, 8.0, 0.1)])
def test_mirostat_cut_and_mu_update_equal_llama_cpp(setup, version, tau, eta):
    """Three steps: each step's kept set equals llama.cpp's for the running mu, and mu moves
    by the token llama.cpp drew (fed to our stage as the accepted token)."""
    m, raw, raw2, _ = setup
    v = len(raw)
    if version == 1:
        ours = Mirostat(tau, eta, 100, seed=1)
        nat = llama.llama_sampler_init_mirostat(v, 7, tau, eta, 100)
    else:
        ours = MirostatV2(tau, eta, seed=1)
        nat = llama.llama_sampler_init_mirostat_v2(7, tau, eta)
    mus = []
    try:
        for logits in (raw, raw2, raw):
            nid, nlog, np_, sel = _native(nat, logits)
            c = _ours(ours, logits)
            assert sorted(c.ids[: c.n].tolist()) == sorted(nid.tolist())
            assert ours.info()["mirostat_k"] == len(nid)
            mus.append(ours.mu)
            ours.accept(int(nid[sel]))          # the token llama.cpp drew
            # mu moved by that token's surprise in the truncated distribution
            p = float(np_[sel])
            assert ours.mu == pytest.approx(mus[-1] - eta * (-np.log2(p) - tau), rel=1e-5, abs=1e-5)
    finally:
        llama.llama_sampler_free(nat)
    assert mus[0] == 2 * tau


@pytest.mark.parametrize("target,decay", [(0.3, 0.9), (0.1, 0.5), (0.7, 0.0), (0.5, 0.99)])
def test_adaptive_p_transform_and_ema_equal_llama_cpp(setup, target, decay):
    m, raw, raw2, _ = setup
    ids = np.argsort(-raw, kind="stable")[:64].astype(np.int32)   # after a top-k, as usual
    ours = AdaptiveP(target, decay, seed=1)
    nat = llama.llama_sampler_init_adaptive_p(target, decay, 5)
    try:
        for logits in (raw, raw2, raw):
            nid, nlog, _, sel = _native(nat, logits, ids)
            c = _ours(ours, logits, ids)
            got = _as_dict(c.ids[: c.n], c.logits[: c.n])
            want = _as_dict(nid, nlog)
            assert sorted(got) == sorted(want)
            np.testing.assert_allclose([got[t] for t in sorted(want)], [want[t] for t in sorted(want)],
                                       rtol=1e-5, atol=1e-5)
            tok = int(nid[sel])
            # our own draw may differ; take llama.cpp's token so both states move the same
            ours.observe(float(np.exp(logits[tok] - np.logaddexp.reduce(logits[ids].astype(np.float64)))))
            llama.llama_sampler_accept(nat, tok)
    finally:
        llama.llama_sampler_free(nat)
