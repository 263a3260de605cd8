"""Entropix on the real models: calibration, the clarify token through the tokenizer, generation
with and without attention."""

from __future__ import annotations

import pytest

import entropic_local as el
from entropic_local.errors import UsageError
from entropic_local.samplers import SamplerChain
from entropic_local.evaluation.calibrate import calibrate
from entropic_local.samplers import entropix_thresholds as ex
from entropic_local.samplers.entropix_thresholds import FAMILY_THRESHOLDS, Thresholds
from entropic_local.samplers.entropix_policy import ACTIONS
from entropic_local.samplers.stages.entropix import Entropix

# thresholds that send every step (H > 0, V > 0) to one action


ONLY = {
    "adaptive": dict(low_ent=0.0, med_ent=0.0, high_ent=100.0, low_vent=0.0, high_vent=100.0),
    "explore": dict(low_ent=0.0, med_ent=0.0, high_ent=100.0, low_vent=0.0, high_vent=0.0),
    "resample": dict(low_ent=0.0, med_ent=0.0, high_ent=0.0, low_vent=0.0, high_vent=0.0),
    "clarify": dict(low_ent=0.0, med_ent=0.0, high_ent=100.0, low_vent=100.0, high_vent=100.0),
}


# Own single-threaded instances: with a busy machine llama.cpp's spinning worker threads can
# make a 2-thread decode ~100x slower; one thread keeps these tests at a few seconds.
@pytest.fixture(scope="module")
def smollm2():
    m = el.load("smollm2-135m", n_ctx=512, n_threads=1, seed=0)
    yield m
    m.close()


@pytest.fixture(scope="module")
def gemma():
    m = el.load("gemma3-270m", n_ctx=512, n_threads=1, seed=0)
    yield m
    m.close()


SHORT_TEXT = ("The old lighthouse stands on a rock at the end of the harbour. Every evening the "
              "keeper climbs the stairs, lights the lamp and writes the weather in a book.")


def test_calibrate_smollm2(smollm2, tmp_path):
    th = calibrate(smollm2, SHORT_TEXT, max_tokens=28)
    assert th.n_positions == 28 and th.architecture == "llama" and th.source == "calibrated"
    assert 0.0 <= th.low_ent <= th.med_ent <= th.high_ent
    assert 0.0 <= th.low_vent <= th.high_vent
    assert th.low_ent < th.high_ent and th.low_vent < th.high_vent
    assert th.percentiles == ex.DEFAULT_PERCENTILES
    path = tmp_path / "smollm2.json"
    th.save(path)
    assert Thresholds.load(path) == th
    s = SamplerChain.parse(f"entropix:thresholds={path}")["entropix"].bind(smollm2)
    assert s.resolved_thresholds.values() == th.values()
    with pytest.raises(UsageError, match="out of order"):
        calibrate(smollm2, SHORT_TEXT, percentiles={"low_ent": 90, "med_ent": 50})
    with pytest.raises(UsageError, match="at least 8"):
        calibrate(smollm2, "Hi there")


@pytest.mark.parametrize("model_name, arch", [("smollm2", "llama"), ("gemma", "gemma3")])
def test_clarify_token_through_the_tokenizer(request, model_name, arch):
    model = request.getfixturevalue(model_name)
    s = Entropix().bind(model)
    assert s.architecture == arch and s.resolved_thresholds is FAMILY_THRESHOLDS[arch]
    (tok,) = s.clarify_tokens
    assert model.tokenize(" ...", add_special=False) == [tok]
    assert model.engine.piece(tok) == b" ..."
    # every step is "clarify": the token is inserted once, then sampling runs hotter
    chain = SamplerChain([Entropix(**ONLY["clarify"])])
    chain["entropix"].bind(model)
    g = model.generate("The weather today is", max_tokens=6, sampler=chain, seed=2)
    inserted = [st for st in g.steps if st.info.get("inserted")]
    assert len(inserted) == 1 and g.steps[0].token_id == tok
    assert all(st.info["action"] == "clarify" for st in g.steps)
    assert all(st.info["temperature"] > 0.666 for st in g.steps[1:])


def test_real_generation(smollm2):
    g = smollm2.generate("The capital of France is", max_tokens=16, sampler="entropix", seed=1)
    assert g.steps and g.sampler == "entropix"
    for st in g.steps:
        assert st.info["action"] in ACTIONS and st.info["attention"] is False
        assert {"quadrant", "temperature", "top_k", "top_p", "min_p"} <= set(st.info)
    # bound to the model (as the API will do): family thresholds, reproducible by seed
    runs = []
    for _ in range(2):
        chain = SamplerChain.parse("entropix")
        chain["entropix"].bind(smollm2)
        runs.append(smollm2.generate("The capital of France is", max_tokens=24, sampler=chain,
                                     seed=5))
    assert runs[0].token_ids == runs[1].token_ids
    actions = {st.info["action"] for st in runs[0].steps}
    assert {"argmax", "adaptive"} <= actions, actions


def test_real_generation_with_attention():
    """With attention captured (load(..., attention="last")) the attention terms are used."""
    m = el.load("smollm2-135m", n_ctx=512, n_threads=1, seed=0, attention="last")
    try:
        chain = SamplerChain.parse("entropix")
        chain["entropix"].bind(m)
        g = m.generate("The capital of France is", max_tokens=12, sampler=chain, seed=5)
    finally:
        m.close()
    assert g.steps
    for st in g.steps:
        info = st.info
        assert info["attention"] is True and info["action"] in ACTIONS
        assert info["attn_entropy"] > 0.0 and info["attn_varentropy"] >= 0.0
        assert 0.0 <= info["disagreement"] <= 1.0
        if info["action"] == "explore":
            d = info["disagreement"]
            assert info["temperature"] == pytest.approx(min(1.5, 0.666 * (1.2 + 0.6 * d)))
