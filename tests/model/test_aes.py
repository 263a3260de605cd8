"""The ``aes``, ``thermostat`` and ``free_energy`` presets on the real models."""

from __future__ import annotations

import math

import pytest

from entropic_local.samplers import PRESETS
from entropic_local.samplers.stages.entmax import aes_alpha, effective_alpha


def preset(name: str) -> str:
    return PRESETS[name]


@pytest.mark.parametrize("name", ["aes", "thermostat", "free_energy"])
def test_presets_on_smollm2(smollm2, name):
    spec = preset(name)
    g = smollm2.generate("The capital of France is", max_tokens=12, sampler=spec, seed=3)
    assert g.steps
    for st in g.steps:
        info = st.info
        if name == "aes":
            assert 1.0 <= info["alpha"] <= 2.0
            assert info["support"] >= 1
            if info["alpha"] > 1.0:
                assert info["support"] == st.n_candidates
            assert info["alpha"] == effective_alpha(aes_alpha(st.entropy, st.varentropy))
        else:
            assert {"free_energy", "temperature", "beta", "kept_entropy"} <= set(info)
            assert info["beta"] == pytest.approx(1.0 / info["temperature"])
            assert math.isfinite(info["free_energy"])
        d = st.to_dict()
        assert ("alpha" in d) if name == "aes" else ("temperature" in d)
    g2 = smollm2.generate("The capital of France is", max_tokens=12, sampler=spec, seed=3)
    assert g2.token_ids == g.token_ids


def test_aes_on_gemma(gemma):
    g = gemma.generate("The capital of France is", max_tokens=8, sampler=preset("aes"), seed=1)
    assert all(1.0 <= s.info["alpha"] <= 2.0 for s in g.steps)
    assert all(s.info["support"] >= 1 for s in g.steps)
