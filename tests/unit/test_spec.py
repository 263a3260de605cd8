"""Spec strings: parsing, the canonical form, presets, ``with_params`` and every error."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from entropic_local.errors import InvalidSamplerSpec, UsageError
from entropic_local.samplers import (
    PRESETS, STAGES, Dist, DynTemp, Greedy, LogitBias, MinP, Penalties, SamplerChain, Stage,
    Temp, TopK, TopNSigma, TopP, TypicalP, format_spec, parse_sampler, register_stage,
)


P = SamplerChain.parse


@pytest.mark.parametrize(
    "spec, canonical",
    [
        ("greedy", "greedy"),
        ("llama", "top_k=40,top_p=0.95,min_p=0.05,temp=0.8"),
        ("top_k=40", "top_k=40"),
        ("dist", "dist"),
        ("top_k:k=40", "top_k=40"),
        ("top_p=0.9,min_keep=1", "top_p=0.9"),
        ("top_p=0.9,min_keep=2", "top_p:p=0.9,min_keep=2"),
        ("top_p:min_keep=2,p=0.9", "top_p:p=0.9,min_keep=2"),
        ("temp=1", "temp=1.0"),
        ("temp=-0.5,greedy", "temp=-0.5,greedy"),
        ("min_p=.05", "min_p=0.05"),
        ("min_p=5e-2", "min_p=0.05"),
        ("top_n_sigma=1", "top_n_sigma=1.0"),
        ("typical_p=0.9", "typical_p=0.9"),
        ("penalties", "penalties"),
        ("penalties:repeat=1.0,freq=0,last_n=64", "penalties"),
        ("penalties:repeat=1.1,freq=0.1,last_n=64,top_k=40",
         "penalties:repeat=1.1,freq=0.1,top_k=40"),
        ("penalties:last_n=-1,presence=0.5", "penalties:presence=0.5,last_n=-1"),
        ("dyn_temp:base=0.8,delta=0.5", "dyn_temp:base=0.8,delta=0.5"),
        ("dyn_temp:base=0.8,delta=0", "dyn_temp:base=0.8"),
        ("dyn_temp:exponent=2,base=1", "dyn_temp:base=1.0,exponent=2.0"),
        ("logit_bias:15043=-inf,1234=2.5", "logit_bias:1234=2.5,15043=-inf"),
        ("logit_bias:7=-INF,top_k=3", "logit_bias:7=-inf,top_k=3"),
        ("logit_bias", "logit_bias"),
        ("  top_k = 40 ,  temp = 0.7 ", "top_k=40,temp=0.7"),
        ("penalties: repeat = 1.2 , top_p=0.5", "penalties:repeat=1.2,top_p=0.5"),
        ("top_k=+7", "top_k=7"),
        ("temp=0.0001", "temp=0.0001"),
        ("temp=0.00001", "temp=1e-05"),
        ("temp=1e300", "temp=1e+300"),
        ("min_p=1,min_keep=3", "min_p:p=1.0,min_keep=3"),
    ],
)
def test_canonical_form(spec, canonical):
    chain = P(spec)
    assert str(chain) == canonical == chain.spec()
    assert P(canonical) == chain
    assert str(P(str(chain))) == canonical  # idempotent


def test_final_dist_is_implied():
    c = P("top_k=40")
    assert [s.name for s in c] == ["top_k", "dist"]
    assert str(c) == "top_k=40"
    assert P("top_k=40,dist") == c and str(P("top_k=40,dist")) == "top_k=40"
    assert str(P("dist")) == "dist" and len(P("dist")) == 1
    assert str(P("top_k=40,greedy")) == "top_k=40,greedy"
    assert str(SamplerChain([TopK(3), Dist(5)])) == "top_k=3"


def test_order_is_kept_not_normalised():
    assert str(P("temp=0.5,top_k=3")) == "temp=0.5,top_k=3"


def test_presets():
    assert PRESETS["greedy"] == "greedy"
    assert PRESETS["llama"] == "top_k=40,top_p=0.95,min_p=0.05,temp=0.8"
    assert {"free_energy", "thermostat", "aes"} <= set(PRESETS)
    for name, spec in PRESETS.items():  # every preset parses, and to its own expansion
        assert P(name) == P(spec)
    assert P("llama") == P("top_k=40,top_p=0.95,min_p=0.05,temp=0.8")
    assert P(" llama ") == P("llama")
    assert P("greedy") == SamplerChain([Greedy()])
    assert parse_sampler("llama") == P("llama")


def test_stage_objects_print_their_spec():
    assert TopK(40).spec() == "top_k=40"
    assert TopP(0.95, min_keep=3).spec() == "top_p:p=0.95,min_keep=3"
    assert Penalties(repeat=1.1, last_n=32).spec() == "penalties:repeat=1.1,last_n=32"
    assert LogitBias({2: 1, 1: -math.inf}).spec() == "logit_bias:1=-inf,2=1.0"
    assert DynTemp(0.8, 0.25, 1.5).spec() == "dyn_temp:base=0.8,delta=0.25,exponent=1.5"
    assert format_spec([TopK(3), Temp(0.5), Greedy()]) == "top_k=3,temp=0.5,greedy"
    assert repr(TopK(3)) == "<TopK top_k=3>"


def test_equality_is_by_spec_not_by_state():
    a, b = P("penalties:repeat=1.3,dist"), P("penalties:repeat=1.3")
    a.accept(5)
    assert a == b and hash(a) == hash(b)
    assert P("top_k=3") != P("top_k=4")
    assert P("top_k=3,greedy") != P("top_k=3")


def test_parse_with_seed_and_passthrough():
    c = P("llama", seed=77)
    assert c.seed == 77
    assert parse_sampler(c) is c
    assert parse_sampler(c, seed=3) is c and c.seed == 3


_finite = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False, allow_infinity=False)


_prob_open = st.floats(min_value=1e-9, max_value=1.0, exclude_min=False)


_keep = st.integers(min_value=1, max_value=50)


_stage_strategies = {
    "penalties": st.builds(Penalties, repeat=st.floats(min_value=1e-3, max_value=10),
                           freq=_finite, presence=_finite,
                           last_n=st.integers(min_value=-1, max_value=4096)),
    "logit_bias": st.builds(LogitBias, st.dictionaries(
        st.integers(min_value=0, max_value=300000),
        st.one_of(_finite, st.just(-math.inf)), max_size=5)),
    "top_n_sigma": st.builds(TopNSigma, st.floats(min_value=1e-6, max_value=100)),
    "top_k": st.builds(TopK, st.integers(min_value=1, max_value=300000)),
    "typical_p": st.builds(TypicalP, _prob_open, _keep),
    "top_p": st.builds(TopP, _prob_open, _keep),
    "min_p": st.builds(MinP, st.floats(min_value=0.0, max_value=1.0), _keep),
    "temp": st.builds(Temp, _finite),
    "dyn_temp": st.builds(DynTemp, _finite, st.floats(min_value=0, max_value=10),
                          st.floats(min_value=0, max_value=10)),
}


@st.composite
def chains(draw):
    names = draw(st.lists(st.sampled_from(sorted(_stage_strategies)), unique=True, max_size=6))
    if "temp" in names and "dyn_temp" in names:
        names.remove("dyn_temp")
    stages = [draw(_stage_strategies[n]) for n in names]
    end = draw(st.sampled_from([None, "greedy", "dist"]))
    if end == "greedy":
        stages.append(Greedy())
    elif end == "dist":
        stages.append(Dist(0))
    return SamplerChain(stages)


@settings(max_examples=300, deadline=None)
@given(chains())
def test_every_chain_round_trips(chain):
    text = str(chain)
    again = P(text)
    assert again == chain
    assert str(again) == text
    assert [type(s) for s in again] == [type(s) for s in chain]
    for a, b in zip(again, chain):
        assert a.param_values() == b.param_values()


@pytest.mark.parametrize(
    "spec, parts",
    [
        ("", ["empty sampler spec", "e.g. 'llama'"]),
        ("   ", ["empty sampler spec"]),
        ("topk=40", ["unknown sampler 'topk'", "position 0", "did you mean 'top_k'?",
                     "known samplers: ", "dist, dry, dyn_temp", "presets: greedy, llama"]),
        ("top_k=40,topk=3", ["unknown sampler 'topk' at position 9",
                             "nor is it a parameter of top_k: top_k takes k"]),
        ("foo", ["unknown sampler 'foo' at position 0 in 'foo'", "known samplers"]),
        ("top_k=40,bogus:x=1", ["unknown sampler 'bogus' at position 9"]),
        ("top_k=4.5", ["top_k: k must be an integer, got '4.5'", "position 6"]),
        ("top_k=1e3", ["top_k: k must be an integer, got '1e3'"]),
        ("top_k=", ["top_k: k must be an integer, got ''"]),
        ("top_k=-1", ["top_k: k=-1 is out of range [1, inf)"]),
        ("top_p=1.5", ["top_p: p=1.5 is out of range (0, 1]", "at position 6 in 'top_p=1.5'"]),
        ("top_p=0", ["top_p: p=0.0 is out of range (0, 1]"]),
        ("top_p=0.9,min_keep=0", ["top_p: min_keep=0 is out of range [1, inf)", "position 19"]),
        ("min_p=abc", ["min_p: p must be a number, got 'abc'"]),
        ("temp=nan", ["temp: t must be a number, got 'nan'"]),
        ("temp=inf", ["temp: t=inf is out of range (-inf, inf)"]),
        ("top_n_sigma=0", ["top_n_sigma: n=0.0 is out of range (0, inf)"]),
        ("penalties:repeat=0", ["penalties: repeat=0.0 is out of range (0, inf)"]),
        ("penalties:last_n=1.5", ["penalties: last_n must be an integer, got '1.5'"]),
        ("dyn_temp:base=1,delta=-1", ["dyn_temp: delta=-1.0 is out of range [0, inf)"]),
        ("top_k=40,,temp=1", ["empty stage at position 9", "two commas"]),
        ("top_k=40,", ["empty stage at position 9"]),
        (",top_k=40", ["empty stage at position 0"]),
        ("top_k=40, ,temp=1", ["empty stage at position 9"]),
        ("top_k=40,top_k=3", ["duplicate stage 'top_k' at position 9",
                              "it already appears at position 0"]),
        ("greedy,top_k=4", ["'greedy' at position 0", "must be the last stage",
                            "'top_k' follows it"]),
        ("dist,greedy", ["'dist' at position 0", "must be the last stage"]),
        ("temp=1,dyn_temp:base=1", ["'dyn_temp' at position 7", "alternatives"]),
        ("top_k", ["top_k: missing required parameter 'k' (write top_k=...)", "position 0"]),
        ("dyn_temp:delta=1", ["dyn_temp: missing required parameter 'base'"]),
        ("penalties=1.1", ["penalties has no main parameter: write 'penalties:param=value'",
                           "penalties takes repeat, freq, presence, last_n"]),
        ("logit_bias=3", ["logit_bias has no main parameter"]),
        ("greedy=1", ["greedy takes no parameters at position 0"]),
        ("dist:seed=3", ["dist: unknown parameter 'seed' at position 5", "dist takes no parameters"]),
        ("top_k:k", ["top_k: expected param=value after ':', got 'k' at position 6"]),
        ("top_p:q=3", ["top_p: unknown parameter 'q' at position 6", "top_p takes p, min_keep"]),
        ("top_p:p=0.5,p=0.6", ["top_p: parameter 'p' given twice at position 12"]),
        ("top_p=0.5,top_p:p=0.6", ["duplicate stage 'top_p'"]),
        ("llama,top_k=4", ["preset 'llama' at position 0", "can only be used as the whole spec",
                           "it stands for 'top_k=40,top_p=0.95,min_p=0.05,temp=0.8'"]),
        (":x=1", ["missing sampler name before ':' at position 0"]),
        ("=3", ["missing name before '=' at position 0"]),
        ("top_k:=3", ["top_k: missing parameter name before '=' at position 6"]),
        ("logit_bias:12=inf", ["logit_bias: the bias of token 12 must be finite or -inf"]),
        ("logit_bias:12=x", ["logit_bias: the bias of token 12 must be a number, got 'x'"]),
        ("logit_bias:x=1", ["logit_bias: unknown parameter 'x'", "token_id=bias"]),
        ("logit_bias:1=1,1=2", ["logit_bias: parameter '1' given twice"]),
        ("top_k=4:5", ["top_k: k must be an integer, got '4:5'"]),
    ],
)
def test_errors_name_the_bad_part(spec, parts):
    with pytest.raises(InvalidSamplerSpec) as e:
        P(spec)
    msg = str(e.value)
    for part in parts:
        assert part in msg, (part, msg)
    assert isinstance(e.value, UsageError) and e.value.exit_code == 3


def test_non_string_spec():
    with pytest.raises(InvalidSamplerSpec, match="must be a string, got int"):
        P(42)


def test_register_stage_rules():
    class Bad(Stage):
        name = "bad_stage"
        params = ()

    with pytest.raises(ValueError, match="already registered"):
        register_stage(type("X", (Stage,), {"name": "top_k"}))
    with pytest.raises(ValueError, match="bad stage name"):
        register_stage(type("Y", (Stage,), {"name": "9lives"}))
    from entropic_local.samplers import Param

    with pytest.raises(ValueError, match="clash"):
        register_stage(type("Z", (Stage,), {"name": "zz_stage", "params": (Param("temp", float),)}))
    assert "bad_stage" not in STAGES and "zz_stage" not in STAGES


def test_registered_stage_parses():
    from entropic_local.samplers import Param

    class Shift(Stage):
        """z ← z + by (test stage)."""

        name = "test_shift"
        params = (Param("by", float, 1.0),)
        main = "by"

        def __init__(self, by=1.0):
            self._set(by=by)

        def apply(self, cands):
            cands.logits[: cands.n] += self.by

    register_stage(Shift)
    try:
        c = P("test_shift=2.5,top_k=3")
        assert str(c) == "test_shift=2.5,top_k=3"
        assert str(P("test_shift:by=1")) == "test_shift"
    finally:
        del STAGES["test_shift"]


@pytest.mark.parametrize(
    "spec, kw, want",
    [
        ("llama", dict(temp=0.5), "top_k=40,top_p=0.95,min_p=0.05,temp=0.5"),
        ("llama", dict(top_k=10, top_p=0.9, min_p=0.1),
         "top_k=10,top_p=0.9,min_p=0.1,temp=0.8"),
        ("llama", dict(top_k=0), "top_p=0.95,min_p=0.05,temp=0.8"),
        ("llama", dict(top_k=-1, top_p=1.0, min_p=0.0), "temp=0.8"),
        ("llama", dict(repeat_penalty=1.1),
         "penalties:repeat=1.1,top_k=40,top_p=0.95,min_p=0.05,temp=0.8"),
        ("llama", dict(repeat_penalty=1.0), "top_k=40,top_p=0.95,min_p=0.05,temp=0.8"),
        ("llama", dict(typical_p=0.9, top_n_sigma=1.5),
         "top_n_sigma=1.5,top_k=40,typical_p=0.9,top_p=0.95,min_p=0.05,temp=0.8"),
        ("llama", dict(top_n_sigma=-1.0, typical_p=1.0),
         "top_k=40,top_p=0.95,min_p=0.05,temp=0.8"),
        ("llama", dict(dynatemp_range=0.5),
         "top_k=40,top_p=0.95,min_p=0.05,dyn_temp:base=0.8,delta=0.5"),
        ("dyn_temp:base=0.8,delta=0.5", dict(temp=1.2), "dyn_temp:base=1.2,delta=0.5"),
        ("dyn_temp:base=0.8,delta=0.5,top_k=3", dict(dynatemp_range=0.0), "temp=0.8,top_k=3"),
        ("greedy", dict(temp=0.7), "temp=0.7,greedy"),
        ("greedy", dict(top_k=5, repeat_penalty=1.2), "penalties:repeat=1.2,top_k=5,greedy"),
        ("top_k=3", dict(min_p=0.1, temp=0.9), "top_k=3,min_p=0.1,temp=0.9"),
        ("temp=0.5", dict(top_k=3, top_p=0.9), "top_k=3,top_p=0.9,temp=0.5"),
        ("dist", dict(temp=0.9, top_p=0.8, top_k=20, min_p=0.02, repeat_penalty=1.05),
         "penalties:repeat=1.05,top_k=20,top_p=0.8,min_p=0.02,temp=0.9"),
        ("logit_bias:3=-inf,temp=0.5", dict(repeat_penalty=1.1, top_k=5),
         "logit_bias:3=-inf,penalties:repeat=1.1,top_k=5,temp=0.5"),
        ("top_p:p=0.9,min_keep=3", dict(top_p=0.8), "top_p:p=0.8,min_keep=3"),
        ("penalties:repeat=1.3,freq=0.1", dict(repeat_penalty=1.0),
         "penalties:freq=0.1"),
        ("penalties:repeat=1.3", dict(repeat_penalty=1.0), "dist"),
        ("penalties:repeat=1.3", dict(frequency_penalty=0.5, presence_penalty=0.2,
                                      penalty_last_n=128),
         "penalties:repeat=1.3,freq=0.5,presence=0.2,last_n=128"),
        ("llama", dict(), "top_k=40,top_p=0.95,min_p=0.05,temp=0.8"),
    ],
)
def test_with_params(spec, kw, want):
    old = P(spec, seed=5)
    new = old.with_params(**kw)
    assert str(new) == want
    assert str(old) == str(P(spec))  # the original is unchanged
    assert new.seed == 5
    assert P(str(new)) == new


def test_with_params_validates_and_clones():
    with pytest.raises(InvalidSamplerSpec, match=r"top_p: p=1.5 is out of range \(0, 1\]"):
        P("llama").with_params(top_p=1.5)
    with pytest.raises(InvalidSamplerSpec, match="penalties: repeat=0.0"):
        P("llama").with_params(repeat_penalty=0.0)
    with pytest.raises(InvalidSamplerSpec, match="dyn_temp: delta=-1.0"):
        P("llama").with_params(dynatemp_range=-1.0)
    with pytest.raises(TypeError):
        P("llama").with_params(top_q=3)
    c = P("penalties:repeat=1.2,last_n=3")
    for t in (1, 2, 3, 4):
        c.accept(t)
    d = c.with_params(repeat_penalty=1.5)
    assert d["penalties"].window == (2, 3, 4) and d["penalties"] is not c["penalties"]
    e = c.with_params(penalty_last_n=2)
    assert e["penalties"].window == (3, 4)
    d.accept(9)
    assert c["penalties"].window == (2, 3, 4)


@pytest.mark.parametrize(
    "spec, kw, want",
    [
        ("aes", dict(temp=0.7), "aes:t=0.7"),
        ("aes:alpha_max=1.5", dict(temp=0.5, top_k=20), "top_k=20,aes:alpha_max=1.5,t=0.5"),
        ("entmax=1.2", dict(temp=0.5), "entmax:alpha=1.2,t=0.5"),
        ("entmax:alpha=1.5,t=0.9", dict(temp=1.3), "entmax:t=1.3"),
        ("entropix", dict(temp=0.9), "entropix:t=0.9"),
        ("free_energy", dict(temp=0.8), "free_energy:w=1.5,t=0.8"),
        ("free_energy:mode=budget,eps=0.1", dict(temp=0.8), "free_energy:mode=budget,eps=0.1,t=0.8"),
        ("penalties:repeat=1.1,aes", dict(temp=1.2), "penalties:repeat=1.1,aes:t=1.2"),
        # an explicit temperature stage still takes it
        ("temp=0.8,aes", dict(temp=0.6), "temp=0.6,aes"),
        ("dyn_temp:base=0.8,delta=0.5,entmax", dict(temp=0.6), "dyn_temp:base=0.6,delta=0.5,entmax"),
        # dynatemp values build a dyn_temp stage, as for any chain
        ("aes", dict(temp=0.7, dynatemp_range=0.3), "dyn_temp:base=0.7,delta=0.3,aes"),
        # temp <= 0 is greedy everywhere (a temp stage before the selector)
        ("aes", dict(temp=0.0), "temp=0,aes"),
        ("thermostat", dict(temp=0.0), "thermostat=0.75,temp=0"),
    ],
)
def test_with_params_temp_maps_onto_own_temperature(spec, kw, want):
    old = P(spec, seed=5)
    new = old.with_params(**kw)
    assert str(new) == str(P(want))
    assert str(old) == str(P(spec))
    assert new.seed == 5
    assert P(str(new)) == new


def test_with_params_temp_keeps_the_selectors_stream():
    a = P("aes", seed=11)
    a["aes"]._rng.random(3)  # advance the stream as three steps would
    b = a.with_params(temp=0.5)
    assert b["aes"].t == 0.5 and a["aes"].t == 1.0
    assert b["aes"]._rng.random() == a["aes"]._rng.random()


@pytest.mark.parametrize("spec", ["thermostat", "free_energy:mode=thermostat,target=1.5",
                                  "thermostat,entmax"])
def test_with_params_temp_refused_by_a_thermostat(spec):
    with pytest.raises(InvalidSamplerSpec, match=r"temp=0.7 does not apply.*target"):
        P(spec).with_params(temp=0.7)


def test_with_params_temp_ambiguous_between_two_stages():
    with pytest.raises(InvalidSamplerSpec, match="ambiguous.*free_energy and aes"):
        P("free_energy,aes").with_params(temp=0.7)
