"""DRY, XTC, mirostat, adaptive-p without a model: llama.cpp's own known answers
(``tests/test-sampling.cpp`` of the llama.cpp that llama-cpp-python 0.3.36 vendors), the math
against numpy references, and how their llama.cpp flags change a chain."""

from __future__ import annotations

import math

import numpy as np
import pytest

from entropic_local import kernels as K
from entropic_local.errors import InvalidSamplerSpec, UsageError
from entropic_local.samplers import Candidates, SamplerChain
from entropic_local.samplers.registry import find_flag
from entropic_local.samplers.stages.adaptive_p import AdaptiveP
from entropic_local.samplers.stages.dry import DRY, resolve_breakers
from entropic_local.samplers.stages.mirostat import Mirostat, MirostatV2
from entropic_local.samplers.stages.xtc import XTC


def _cands(probs):
    z = np.log(np.asarray(probs, dtype=np.float32))
    c = Candidates(len(z))
    c.reset(z)
    return c


def _probs(c):
    z = c.logits[: c.n].astype(np.float64)
    p = np.exp(z - z.max())
    return dict(zip(c.ids[: c.n].tolist(), (p / p.sum()).tolist()))


# test-sampling.cpp: test_xtc(probs, expected survivors' probabilities, p, t)
XTC_KNOWN = [
    ([0.4, 0.3, 0.2, 0.1], [0.1], 0.99, 0.09),
    ([0.4, 0.3, 0.2, 0.1], [0.2, 0.1], 0.99, 0.19),
    ([0.4, 0.3, 0.2, 0.1], [0.3, 0.2, 0.1], 0.99, 0.29),
    ([0.4, 0.3, 0.2, 0.1], [0.4, 0.3, 0.2, 0.1], 0.99, 0.39),   # "should not"
]


@pytest.mark.parametrize("probs,expected,p,t", XTC_KNOWN)
def test_xtc_known_answers(probs, expected, p, t):
    c = _cands(probs)
    XTC(1.0, t, seed=0).apply(c)   # probability 1: it fires (llama.cpp's 0.99 does with its seed 0)
    kept = sorted(np.exp(c.logits[: c.n].astype(np.float64)).tolist(), reverse=True)
    np.testing.assert_allclose(kept, expected, atol=1e-6)


def test_xtc_min_keep_and_probability_zero():
    c = _cands([0.4, 0.3, 0.2, 0.1])
    XTC(1.0, 0.09, min_keep=2, seed=0).apply(c)     # would leave 1 < min_keep: no change
    assert c.n == 4
    x = XTC(0.0, 0.09, seed=0)
    c = _cands([0.4, 0.3, 0.2, 0.1])
    x.apply(c)
    assert c.n == 4 and x.info() == {"xtc_removed": 0}


def test_xtc_fires_with_its_probability():
    x = XTC(0.3, 0.05, seed=11)
    fired = 0
    for _ in range(2000):
        c = _cands([0.4, 0.3, 0.2, 0.1])
        x.apply(c)
        fired += x.last_removed > 0
    assert 0.26 < fired / 2000 < 0.34


# test-sampling.cpp: test_dry(probs, history, expected probs after DRY and softmax,
#                             multiplier, base, allowed length, last n, token breakers)
DRY_KNOWN = [
    ([0.25] * 4, [0, 1], [0.25] * 4, 1.0, 1.1, 2, 4, []),
    ([0.25] * 4, [0, 1, 2, 0, 1], [0.296923, 0.296923, 0.109232, 0.296923], 1.0, 1.1, 2, 5, []),
    ([0.2] * 5, [0, 1, 3, 4, 0, 1], [0.2] * 5, 1.0, 1.1, 2, 6, [[3]]),
    ([0.2] * 5, [0, 1, 2, 0, 1], [0.241818, 0.241818, 0.032727, 0.241818, 0.241818], 2.0, 1.1, 2, 5, []),
    ([0.2] * 5, [0, 1, 2, 3, 4, 0, 1], [0.2] * 5, 1.0, 1.1, 4, 7, []),
]


@pytest.mark.parametrize("probs,history,expected,mult,base,allowed,last_n,breakers", DRY_KNOWN)
def test_dry_known_answers(probs, history, expected, mult, base, allowed, last_n, breakers):
    d = DRY(mult, base, allowed, last_n, ()).bind_tokens(breakers, len(probs))
    for t in history:
        d.accept(t)
    c = _cands(probs)
    d.apply(c)
    got = _probs(c)
    np.testing.assert_allclose([got[i] for i in range(len(probs))], expected, atol=1e-5)


def _dry_reference(hist, n_vocab, mult, base, allowed):
    """Brute force: for each token, the longest suffix of hist that reappears earlier
    followed by that token."""
    pen = np.zeros(n_vocab)
    m = len(hist)
    for t in range(n_vocab):
        best = -1
        for j in range(m - 1):          # hist[j + 1] == t follows a repeat ending at j
            if hist[j + 1] != t:
                continue
            L = 0
            while L <= j and hist[j - L] == hist[m - 1 - L]:
                L += 1
            best = max(best, L)
        if best >= allowed and best > 0:
            pen[t] = np.float32(np.float32(mult) * np.float32(base) ** (best - allowed))
    return pen


@pytest.mark.parametrize("seed", range(8))
def test_dry_matches_a_brute_force_reference(seed):
    rng = np.random.default_rng(seed)
    v = 6
    hist = rng.integers(0, v, size=int(rng.integers(5, 40))).tolist()
    d = DRY(1.5, 1.3, 1, -1, ()).bind_tokens([], v)
    for t in hist:
        d.accept(t)
    z = rng.normal(size=v).astype(np.float32)
    c = Candidates(v)
    c.reset(z)
    d.apply(c)
    ref = _dry_reference(hist, v, 1.5, 1.3, 1)
    np.testing.assert_allclose(z - c.logits[:v], ref, rtol=1e-5, atol=1e-5)
    assert d.last_penalised == int((ref > 0).sum())


def test_dry_window_and_reset_and_clone():
    d = DRY(1.0, 1.75, 2, 4, ())
    for t in range(10):
        d.accept(t)
    assert d.window == (6, 7, 8, 9)
    e = d.clone()
    d.reset()
    assert d.window == () and e.window == (6, 7, 8, 9)


class _Vocab:
    """A toy tokenizer: one token per text below."""
    texts = [b"a", b"b", b":", b"x:y", b"ab", b"\n", b"c"]

    def tokenize(self, s: bytes):
        out, i = [], 0
        while i < len(s):
            for j in (2, 1):
                if s[i:i + j] in self.texts:
                    out.append(self.texts.index(s[i:i + j]))
                    i += j
                    break
            else:
                i += 1
        return out


def test_breakers_resolve_as_llama_cpp_does():
    v = _Vocab()
    # ':' is inside 'x:y' and ':' itself: single-token breakers; 'abc' overlaps 'ab' (tail
    # 'c') and 'b'? no ('b' is not a prefix of 'abc'); 'a' begins it (tail 'bc' -> b, c)
    pairs = resolve_breakers(v.texts, v.tokenize, (":", "abc"))
    assert (2, ()) in pairs and (3, ()) in pairs
    assert (4, (6,)) in pairs and (0, (1, 6)) in pairs
    assert not any(h == 1 for h, _ in pairs)


def test_mirostat_v2_cut_is_the_surprise_window():
    rng = np.random.default_rng(0)
    z = rng.normal(size=200).astype(np.float32) * 3
    p = np.exp(z - np.logaddexp.reduce(z.astype(np.float64)))
    for mu in (0.5, 2.0, 6.0, 12.0):
        st = MirostatV2(tau=mu / 2, eta=0.1, seed=1)
        c = Candidates(len(z))
        c.reset(z)
        st.apply(c)
        want = set(np.flatnonzero(-np.log2(p) <= mu).tolist()) or {int(np.argmax(z))}
        assert set(c.ids[: c.n].tolist()) == want
        assert st.info()["mirostat_mu"] == mu


def test_mirostat_v1_k_follows_the_formula():
    rng = np.random.default_rng(1)
    z = np.sort(rng.normal(size=1000).astype(np.float32) * 2)[::-1].copy()
    p = np.exp(z - np.logaddexp.reduce(z.astype(np.float64)))
    m, n_vocab = 100, 1000
    t = np.log(np.arange(2, m + 1) / np.arange(1, m))
    b = np.log(p[: m - 1] / p[1:m])
    s = (t * b).sum() / (t * t).sum()
    for mu in (3.0, 6.0, 10.0):
        eps = s - 1
        k = ((eps * 2 ** mu) / (1 - n_vocab ** -eps)) ** (1 / s)
        got, s_got = K.mirostat_v1_k(z, len(z), mu, m, n_vocab)
        assert s_got == pytest.approx(s, rel=1e-9)
        assert got == max(1, min(int(k), len(z)))


def test_mirostat_mu_update_reset_and_clone():
    st = Mirostat(tau=3.0, eta=0.5, seed=2)
    assert st.mu == 6.0
    c = _cands([0.5, 0.25, 0.125, 0.125])
    st.apply(c)
    tok = c.selected_token
    p = _probs(c)[tok]
    twin = st.clone()
    st.accept(tok)
    assert st.mu == pytest.approx(6.0 - 0.5 * (-math.log2(p) - 3.0))
    twin.accept(tok)
    assert twin.mu == st.mu
    st.reset()
    assert st.mu == 6.0


def test_adaptive_p_transform_and_state():
    st = AdaptiveP(0.3, 0.5, seed=0)
    probs = np.array([0.5, 0.3, 0.15, 0.05])
    c = _cands(probs)
    st.apply(c)
    d = np.abs(probs - 0.3) / 0.3       # first step: the adapted target is the target
    want = 5.0 - 10.0 * d * d / (1 + d)
    np.testing.assert_allclose(c.logits[:4], want, rtol=1e-6)
    tok = c.selected_token
    st.accept(tok)
    assert st.weighted_sum == pytest.approx(probs[tok] + 0.5 * 0.3 / 0.5)
    assert st.total_weight == pytest.approx(1 + 0.5 * 2.0)
    a = 2 * 0.3 - st.weighted_sum / st.total_weight
    assert st.adapted_target() == pytest.approx(min(max(a, 0), 1))
    st.reset()
    assert st.weighted_sum == pytest.approx(0.6) and st.total_weight == pytest.approx(2.0)


def test_adaptive_p_negative_target_is_dist_and_masked_stay_masked():
    c = _cands([0.5, 0.5])
    c.logits[1] = -np.inf
    AdaptiveP(0.5, seed=0).apply(c)
    assert c.logits[1] == -np.inf and c.selected == 0
    c = _cands([0.5, 0.3, 0.2])
    before = c.logits[:3].copy()
    AdaptiveP(-1.0, seed=0).apply(c)
    np.testing.assert_array_equal(c.logits[:3], before)


# -- llama.cpp's flags ------------------------------------------------------------------------

def test_flags_insert_dry_and_xtc_in_llama_cpp_order():
    c = SamplerChain.from_options("llama", dry_multiplier=0.8, xtc_probability=0.5, xtc_threshold=0.2)
    assert [s.name for s in c] == ["dry", "top_k", "top_p", "min_p", "xtc", "temp", "dist"]
    assert SamplerChain.parse(str(c)) == c
    assert "dry" not in SamplerChain.from_options("llama", dry_base=2.0)        # multiplier 0: off
    assert "xtc" not in SamplerChain.from_options("llama", xtc_probability=0.5, xtc_threshold=0.6)
    assert "dry" not in SamplerChain.from_options(c, dry_multiplier=0.0)


def test_mirostat_flag_builds_llama_cpp_mirostat_chain():
    c = SamplerChain.from_options("logit_bias:5=-inf,penalties:repeat=1.1,top_k=40,temp=0.7",
                                  mirostat=2, mirostat_tau=4.0, mirostat_eta=0.2)
    assert [s.name for s in c] == ["logit_bias", "temp", "mirostat_v2"]
    assert (c["mirostat_v2"].tau, c["mirostat_v2"].eta) == (4.0, 0.2)
    v1 = c.with_params(mirostat=1)
    assert [s.name for s in v1] == ["logit_bias", "temp", "mirostat"] and v1["mirostat"].tau == 4.0
    off = v1.with_params(mirostat=0)
    assert [s.name for s in off] == ["logit_bias", "temp", "dist"]
    assert "mirostat" not in SamplerChain.from_options("llama", mirostat_eta=0.3)
    with pytest.raises(InvalidSamplerSpec):
        SamplerChain.from_options("llama", mirostat=3)


def test_adaptive_target_flag_replaces_the_selector():
    c = SamplerChain.from_options("llama", adaptive_target=0.4, adaptive_decay=0.8)
    assert c.stages[-1].name == "adaptive_p" and c["adaptive_p"].decay == 0.8
    assert c.with_params(adaptive_target=-1.0).stages[-1].name == "dist"
    with pytest.raises(InvalidSamplerSpec, match="last stage"):
        SamplerChain.parse("adaptive_p=0.3,top_k=4")


def test_breaker_flag_values():
    f = find_flag("dry-sequence-breaker")
    assert f.key == "dry_sequence_breakers" and f.multiple
    assert f.parse('["\\n", ":"]') == ("\n", ":")
    assert f.parse("none") == ()
    assert f.parse('"\\n"') == ("\n",)
    with pytest.raises(UsageError):
        f.parse("[1, 2]")
    c = SamplerChain.from_options("llama", dry_multiplier=1.0, dry_sequence_breakers=("a|b", "\n", "%"))
    assert c["dry"].breakers == ("a|b", "\n", "%")
    assert SamplerChain.parse(str(c)) == c
    assert SamplerChain.parse("dry:multiplier=1.0,breakers=")["dry"].breakers == ()


def test_history_survives_a_flag_change():
    c = SamplerChain.from_options("llama", dry_multiplier=1.0)
    for t in (1, 2, 3):
        c.accept(t)
    c2 = c.with_params(dry_base=2.0)
    assert c2["dry"].window == (1, 2, 3) and c2["dry"].base == 2.0


# -- batch lines: the new flags and structured output -----------------------------------------

def test_batch_lines_take_the_new_flags_and_constraints():
    import json

    from entropic_local.batch.jobs import BadLine, parse_line, sampling_flags

    j = parse_line(json.dumps({"custom_id": "a", "prompt": "x", "dry_multiplier": 0.8,
                               "dry_sequence_breakers": ["\n", "."], "xtc_probability": 0.5,
                               "mirostat": 2, "mirostat_tau": 4.0, "adaptive_target": 0.3}), 1)
    flags = sampling_flags(j.settings)
    assert flags["dry_sequence_breakers"] == ("\n", ".") and flags["mirostat"] == 2
    assert SamplerChain.from_options("llama", **flags).stages[-1].name == "mirostat_v2"
    schema = {"type": "object", "properties": {"a": {"type": "string"}}}
    cases = [
        ({"grammar": 'root ::= "a"'}, {"grammar": 'root ::= "a"'}),
        ({"json_schema": schema}, {"json_schema": schema}),
        ({"response_format": {"type": "json_object"}}, {"json_schema": "json_object"}),
        ({"response_format": {"type": "json_schema", "json_schema": {"name": "n", "schema": schema}}},
         {"json_schema": schema}),
        ({"response_format": {"type": "text"}}, {}),
    ]
    for extra, want in cases:
        body = {"messages": [{"role": "user", "content": "hi"}], **extra}
        j = parse_line(json.dumps({"custom_id": "c", "url": "/v1/chat/completions", "body": body}), 2)
        got = {k: j.settings[k] for k in ("grammar", "json_schema") if k in j.settings}
        assert got == want, extra
    for bad in [{"grammar": 3}, {"json_schema": "x"}, {"response_format": {"type": "xml"}},
                {"response_format": {"type": "json_schema", "json_schema": {}}},
                {"grammar": 'root ::= "a"', "response_format": {"type": "json_object"}},
                {"dry_sequence_breakers": [1]}]:
        r = parse_line(json.dumps({"custom_id": "b", "prompt": "x", **bad}), 3)
        assert isinstance(r, BadLine) and r.code == "invalid_request", bad


@pytest.mark.parametrize("spec", [
    "dry:multiplier=1.0,allowed_length=0,top_k=5,xtc:probability=1.0,threshold=0.0,mirostat",
    "penalties:repeat=1.3,dry=0.5,min_p=0.1,xtc=0.7,temp=1.5,mirostat_v2:tau=1.0,eta=1.0",
    "dry:multiplier=2.0,base=3.0,last_n=-1,top_p=0.9,adaptive_p:target=0.9,decay=0.0",
    "logit_bias:0=-inf,1=-inf,xtc:probability=1.0,threshold=0.01,adaptive_p=0.0",
    "top_n_sigma=1.0,mirostat:tau=0.0,eta=2.0,m=2",
])
def test_new_stages_pick_live_tokens_on_hostile_logits(spec):
    """Random, tied, masked and huge logits: the chosen token is a live, unmasked candidate,
    every step, and the spec parses back."""
    chain = SamplerChain.parse(spec, seed=4)
    assert SamplerChain.parse(str(chain)) == chain
    rng = np.random.default_rng(0)
    v = int(rng.integers(2, 300))
    for step in range(60):
        kind = step % 5
        z = (rng.normal(size=v) * 10 ** rng.uniform(-3, 3)).astype(np.float32)
        if kind == 1:
            z[:] = 1.0
        elif kind == 2:
            z[rng.random(v) < 0.7] = -np.inf
            z[0] = 0.0
        elif kind == 3:
            z = rng.integers(0, 3, size=v).astype(np.float32)
        c = Candidates(v)
        c.reset(z)
        try:
            chain.apply(c)
        except InvalidSamplerSpec as e:   # logit_bias banned what was left: refused clearly
            assert "left no token" in str(e) or "outside the vocabulary" in str(e)
            continue
        tok = c.selected_token
        assert 0 <= c.selected < c.n and z[tok] > -np.inf and c.logits[c.selected] > -np.inf
        chain.accept(tok)
        chain.step_info()
