"""Generation through real llama.cpp on both real models: steps, streaming, stops, UTF-8, seeds,
KV reuse, each sampler's effect on the real distribution."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

import entropic_local as el
from entropic_local.errors import EntropicWarning
from entropic_local.decode.text import Utf8Stream


PROMPT = "The three most important inventions in history are"


def np_stats(logits: np.ndarray):
    z = logits.astype(np.float64)
    m = z.max()
    e = np.exp(z - m)
    s0 = e.sum()
    p = e / s0
    log_z = m + math.log(s0)
    logp = z - log_z
    h = -(p * logp).sum()
    v = (p * (logp + h) ** 2).sum()
    return log_z, h, v


def test_generate_record(any_model):
    g = any_model.generate(PROMPT, max_tokens=24, seed=7)
    assert 1 <= len(g.steps) <= 24
    assert len(g.steps) == len(g.token_ids)
    assert "".join(s.text for s in g.steps) == g.text
    assert g.text.strip()
    assert g.seed == 7 and g.sampler
    log_v = math.log(any_model.n_vocab)
    for i, s in enumerate(g.steps):
        assert s.index == i and s.token_id == g.token_ids[i]
        assert s.logprob <= 1e-6
        assert 0.0 <= s.entropy <= log_v + 1e-6
        assert s.varentropy >= 0.0
        assert 1 <= s.n_candidates <= 40  # llama preset: top-k 40
    t = g.timings
    assert t.prompt_tokens == len(any_model.tokenize(PROMPT))
    assert t.gen_tokens == len(g.steps)
    assert t.gen_tps > 0 and t.prompt_ms >= 0
    assert g.finish_reason in ("stop", "length")


def test_step_stats_match_numpy(any_model):
    """The fused kernel's entropy/varentropy/logprob equal a float64 numpy computation."""
    eng = any_model.engine
    toks = any_model.tokenize(PROMPT)
    eng.clear()
    eng.eval_prompt(toks)
    logits = eng.logits().copy()
    log_z, h, v = np_stats(logits)
    g = any_model.generate(PROMPT, max_tokens=1, sampler="greedy")
    s = g.steps[0]
    assert g.timings.prompt_eval_tokens == 0  # same prompt: KV and logits reused
    assert s.token_id == int(np.argmax(logits))
    assert s.entropy == pytest.approx(h, rel=1e-5, abs=1e-6)
    assert s.varentropy == pytest.approx(v, rel=1e-4, abs=1e-6)
    assert s.logprob == pytest.approx(float(logits[s.token_id]) - log_z, abs=1e-4)
    assert s.n_candidates == 1


def test_stream_equals_generate(any_model):
    stream = any_model.stream(PROMPT, max_tokens=12, seed=3)
    seen = []
    for step in stream:
        seen.append(step.token_id)
        # the record exists before the generation ends
        assert stream.generation is None
    g = any_model.generate(PROMPT, max_tokens=12, seed=3)
    assert seen == g.token_ids == stream.generation.token_ids
    assert stream.generation.text == g.text


def test_seed_reproducible_and_reported(any_model, request):
    a = any_model.generate(PROMPT, max_tokens=16, sampler="temp=1.5", seed=11)
    b = any_model.generate(PROMPT, max_tokens=16, sampler="temp=1.5", seed=11)
    assert a.token_ids == b.token_ids
    others = [any_model.generate(PROMPT, max_tokens=16, sampler="temp=1.5", seed=s).token_ids for s in (12, 13, 14)]
    assert any(o != a.token_ids for o in others)
    c = any_model.generate(PROMPT, max_tokens=4, sampler="temp=1.5")
    assert isinstance(c.seed, int)
    # the reported seed reproduces the run
    d = any_model.generate(PROMPT, max_tokens=4, sampler="temp=1.5", seed=c.seed)
    assert d.token_ids == c.token_ids


def test_seed_reproducible_across_loads(smollm2_path):
    runs = []
    for _ in range(2):
        with el.load(smollm2_path, n_ctx=512) as m:
            runs.append(m.generate(PROMPT, max_tokens=16, sampler="llama", seed=5).token_ids)
    assert runs[0] == runs[1]


def test_stop_strings(any_model):
    free = any_model.generate(PROMPT, max_tokens=32, sampler="greedy")
    text = free.text
    assert len(text) > 12
    # a stop string taken from the middle of the output, spanning a token boundary
    stop = text[5:11]
    g = any_model.generate(PROMPT, max_tokens=32, sampler="greedy", stop=[stop, "zzzz-never"])
    assert g.text == text[: text.find(stop)]
    assert g.finish_reason == "stop"
    assert stop not in g.text
    assert "".join(s.text for s in g.steps) == g.text


def test_utf8_pieces_split_across_tokens(any_model):
    text = "naïve café 日本語 🙂🚀"
    toks = any_model.tokenize(text, add_special=False)
    pieces = [any_model.engine.piece(t) for t in toks]
    # at least one token is an incomplete UTF-8 sequence on its own
    def valid(b):
        try:
            b.decode("utf-8")
            return True
        except UnicodeDecodeError:
            return False
    if all(valid(p) for p in pieces):
        pytest.skip("this vocabulary has whole characters for all of these")
    s = Utf8Stream()
    out = "".join(s.push(p) for p in pieces) + s.flush()
    assert out == text
    assert "\ufffd" not in out


def test_generated_multibyte_text_is_clean(smollm2):
    g = smollm2.generate("Emoji list: 🙂🙂🙂🙂🙂🙂", max_tokens=16, sampler="greedy")
    assert "\ufffd" not in g.text
    assert "".join(s.text for s in g.steps) == g.text
    assert g.text == smollm2.detokenize(g.token_ids)[: len(g.text)]


def test_kv_reuse_decodes_only_new_tokens(any_model):
    any_model.reset()
    g1 = any_model.generate(PROMPT, max_tokens=8, sampler="greedy")
    assert g1.timings.prompt_eval_tokens == g1.timings.prompt_tokens
    cont = PROMPT + g1.text + " Also"
    g2 = any_model.generate(cont, max_tokens=4, sampler="greedy")
    n_cont = len(any_model.tokenize(cont))
    assert g2.timings.prompt_tokens == n_cont
    # only the tokens after the cached prefix were decoded
    assert 1 <= g2.timings.prompt_eval_tokens <= n_cont - g1.timings.prompt_tokens


def test_kv_reuse_same_result_as_fresh(smollm2):
    """SmolLM2 gives identical logits batched or token by token (see the notes), so a
    continuation on the reused cache must equal one computed from scratch."""
    smollm2.reset()
    g1 = smollm2.generate(PROMPT, max_tokens=8, sampler="greedy")
    cont = PROMPT + g1.text
    reused = smollm2.generate(cont, max_tokens=8, sampler="greedy")
    smollm2.reset()
    fresh = smollm2.generate(cont, max_tokens=8, sampler="greedy")
    assert reused.timings.prompt_eval_tokens < fresh.timings.prompt_eval_tokens
    assert reused.token_ids == fresh.token_ids


@pytest.mark.parametrize(
    "spec,check",
    [
        ("greedy", lambda s: s.n_candidates == 1),
        ("temp=0", lambda s: s.n_candidates == 1),
        ("top_k=3", lambda s: 1 <= s.n_candidates <= 3),
        ("min_p=0.5,temp=1", lambda s: s.n_candidates >= 1),
        ("top_p=0.5,temp=1", lambda s: s.n_candidates >= 1),
    ],
)
def test_sampler_effect_on_real_distribution(any_model, spec, check):
    g = any_model.generate(PROMPT, max_tokens=8, sampler=spec, seed=1)
    assert all(check(s) for s in g.steps)


def test_truncation_samplers_shrink_candidate_sets(any_model):
    """On the same first step, stricter settings keep fewer tokens, as the math says."""
    def first_n(spec):
        return any_model.generate(PROMPT, max_tokens=1, sampler=spec, seed=1).steps[0].n_candidates

    assert first_n("top_k=50") == 50
    assert first_n("top_k=5") == 5
    assert first_n("min_p=0.01,temp=1") >= first_n("min_p=0.2,temp=1")
    assert first_n("top_p=0.99,temp=1") >= first_n("top_p=0.5,temp=1")
    assert first_n("top_n_sigma=3,temp=1") >= first_n("top_n_sigma=0.5,temp=1")


def test_greedy_chooses_argmax_and_temp0_equals_greedy(any_model):
    g = any_model.generate(PROMPT, max_tokens=10, sampler="greedy")
    t0 = any_model.generate(PROMPT, max_tokens=10, sampler="temp=0", seed=99)
    assert g.token_ids == t0.token_ids
    # greedy's token is the most likely one, so its surprisal is the min-entropy, which never
    # exceeds the Shannon entropy: -log p_max <= H
    for s in g.steps:
        assert -s.logprob <= s.entropy + 1e-5


def test_repeat_penalty_changes_repetitive_output(smollm2):
    base = smollm2.generate("one, two, one, two, one, two,", max_tokens=24, sampler="greedy")
    pen = smollm2.generate("one, two, one, two, one, two,", max_tokens=24,
                           sampler="penalties:repeat=1.8,last_n=64,greedy")
    assert base.token_ids != pen.token_ids


def test_context_runs_out_mid_generation(smollm2_path):
    with el.load(smollm2_path, n_ctx=256) as m:
        assert m.n_ctx == 256
        g = m.generate("Count: 1, 2, 3,", max_tokens=400, sampler="greedy")
        assert g.finish_reason == "context"
        assert len(m.engine.tokens) == 256
        assert len(g.token_ids) == 256 - g.timings.prompt_tokens + 1
        with pytest.raises(el.ContextOverflow):
            m.generate("word " * 300, max_tokens=4)


def test_bad_arguments(smollm2):
    with pytest.raises(el.UsageError):
        smollm2.generate("", max_tokens=4)
    with pytest.raises(el.UsageError):
        smollm2.generate("x", max_tokens=0)
    with pytest.raises(el.InvalidSamplerSpec):
        smollm2.generate("x", sampler="top_k=banana")


def test_tokenize_roundtrip(any_model):
    text = "Hello, world! Entropy is 0.83 nats."
    toks = any_model.tokenize(text, add_special=False)
    assert any_model.detokenize(toks) == text


def test_chain_as_llama_cpp_logits_processor(smollm2_path, smollm2):
    """A SamplerChain works inside llama-cpp-python's own create_completion."""
    import llama_cpp

    from entropic_local.engine import llama_cpp_llama

    llm = llama_cpp_llama(smollm2_path, n_ctx=512, verbose=False, seed=0)
    chain = el.SamplerChain.parse("top_k=1")
    out = llm.create_completion(PROMPT, max_tokens=8, temperature=0.8,
                                logits_processor=llama_cpp.LogitsProcessorList([chain]))
    ours = smollm2.generate(PROMPT, max_tokens=8, sampler="greedy")
    assert out["choices"][0]["text"] == ours.text


def test_prompt_as_token_ids(any_model):
    ids = any_model.tokenize(PROMPT)
    a = any_model.generate(ids, max_tokens=6, sampler="greedy")
    b = any_model.generate(PROMPT, max_tokens=6, sampler="greedy")
    assert a.token_ids == b.token_ids
    with pytest.raises(el.UsageError):
        any_model.generate([any_model.n_vocab + 5], max_tokens=2)
    with pytest.raises(el.UsageError):
        any_model.generate([], max_tokens=2)


def test_interrupt_keeps_cache_consistent(smollm2):
    """A KeyboardInterrupt in the middle of a stream leaves tokens == KV cache contents:
    the next generation still matches a clean run."""
    smollm2.reset()
    clean = smollm2.generate(PROMPT, max_tokens=12, sampler="greedy").token_ids
    s = smollm2.stream(PROMPT, max_tokens=50, sampler="greedy")
    with pytest.raises(KeyboardInterrupt):
        for i, _ in enumerate(s):
            if i == 5:
                raise KeyboardInterrupt
    assert s.generation is not None and len(s.generation.token_ids) == 6
    again = smollm2.generate(PROMPT, max_tokens=12, sampler="greedy").token_ids
    assert again == clean


def test_attention_metrics_in_steps(smollm2_path):
    """--attention adds the attention metrics to every step; the tokens are those of a run
    without capture (flash attention off on both: the hook must not change the logits)."""
    with el.load(smollm2_path, n_ctx=512, attention="last") as m, \
            el.load(smollm2_path, n_ctx=512, flash_attn=False) as plain:
        g = m.generate(PROMPT, max_tokens=8, sampler="greedy")
        ref = plain.generate(PROMPT, max_tokens=8, sampler="greedy")
        assert g.token_ids == ref.token_ids
        for s in g.steps:
            d = s.to_dict()
            assert d["attn_entropy"] >= 0 and d["attn_varentropy"] >= 0
            assert 0 <= d["agreement"] <= 2
            assert d["interaction_strength"] > 0
        # entropy of the attention over n valid cells is at most log n
        n_valid = len(m.tokenize(PROMPT)) + len(g.token_ids)
        assert all(s.info["attn_entropy"] <= math.log(n_valid) + 1e-6 for s in g.steps)


def test_n_ctx_zero_is_the_training_context(smollm2_path):
    with warnings.catch_warnings():
        warnings.simplefilter("error", EntropicWarning)  # the training context warns of nothing
        m = el.load(smollm2_path, n_ctx=0, n_threads=1)
    try:
        assert m.n_ctx == m.engine.n_ctx_train == 8192
    finally:
        m.close()
    with pytest.warns(EntropicWarning, match="rounded up from 100 to 256"):
        el.load(smollm2_path, n_ctx=100, n_threads=1).close()
