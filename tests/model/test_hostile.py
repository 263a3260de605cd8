"""Hostile inputs through the Python API: huge prompts, control characters, threads sharing a
model, a second call inside an open stream."""

from __future__ import annotations

import threading

import pytest

import entropic_local as el
from entropic_local.errors import ContextOverflow, UsageError


def test_huge_prompt_is_refused_quickly_and_the_model_survives(smollm2):
    ref = smollm2.generate("The capital of France is", max_tokens=4, sampler="greedy").token_ids
    with pytest.raises(ContextOverflow) as info:
        smollm2.generate("word " * 400_000, max_tokens=4)  # 2 MB of text
    assert "context holds" in str(info.value) and info.value.hint
    with pytest.raises(ContextOverflow):
        smollm2.generate([42] * 1_000_000, max_tokens=4)  # a million token ids
    assert smollm2.generate("The capital of France is", max_tokens=4, sampler="greedy").token_ids == ref


def test_api_prompt_with_nul_and_control_characters(smollm2):
    g = smollm2.generate("A\x00B\x1b[2J\r\n\u202eC \udcff", max_tokens=3, sampler="greedy")
    assert len(g.token_ids) >= 1 and g.finish_reason in ("length", "stop")
    g.to_json()


@pytest.fixture(scope="module")
def shared_model():
    m = el.load("smollm2-135m", n_ctx=512, n_threads=1, seed=0)
    yield m
    m.close()


def test_two_threads_on_one_model_are_serialised(shared_model):
    """Calls from two threads take turns (a lock): each gets exactly what it gets alone."""
    prompts = ["The capital of France is", "Water boils at"]
    want = {p: shared_model.generate(p, max_tokens=12, sampler="greedy").token_ids for p in prompts}
    got: dict[str, list] = {p: [] for p in prompts}
    failures: list[BaseException] = []

    def worker(prompt):
        try:
            for _ in range(3):
                got[prompt].append(shared_model.generate(prompt, max_tokens=12, sampler="greedy").token_ids)
                got[prompt].append([s.token_id for s in shared_model.stream(prompt, max_tokens=12,
                                                                             sampler="greedy")])
        except BaseException as e:  # noqa: BLE001
            failures.append(e)

    threads = [threading.Thread(target=worker, args=(p,)) for p in prompts]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert not any(t.is_alive() for t in threads) and failures == []
    for p in prompts:
        assert got[p] == [want[p]] * 6


def test_a_second_call_inside_an_open_stream_is_refused_not_a_deadlock():
    m = el.load("smollm2-135m", n_ctx=256, n_threads=1)  # its own: a deadlock would keep it
    outcome: list = []

    def nested():
        it = iter(m.stream("Once upon a time", max_tokens=50, sampler="greedy"))
        next(it)
        try:
            m.generate("Hello", max_tokens=2)
        except UsageError as e:
            outcome.append(str(e))
        try:
            m.close()
        except UsageError as e:
            outcome.append(str(e))
        it.close()  # the stream ends: the model is free again
        outcome.append(m.generate("Hello", max_tokens=2, sampler="greedy").text)

    t = threading.Thread(target=nested, daemon=True)
    t.start()
    t.join(timeout=120)
    assert not t.is_alive(), "deadlocked"
    m.close()
    assert len(outcome) == 3, outcome
    assert "still iterating another stream" in outcome[0] and "while this thread iterates" in outcome[1]


def test_detokenize_beside_a_generation_never_mixes_up_pieces(shared_model):
    """Two threads turning every token into text at once (the piece cache cold): each
    token's text is its own. A shared buffer used to hand one thread the other's bytes."""
    eng = shared_model.engine
    want = {t: eng.piece(t) for t in range(shared_model.n_vocab)}
    for _ in range(2):
        eng._pieces.clear()
        order = list(range(shared_model.n_vocab))
        threads = [threading.Thread(target=lambda o=o: [shared_model.detokenize([t]) for t in o])
                   for o in (order, order[::-1])]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wrong = [t for t, p in eng._pieces.items() if p != want[t]]
        assert wrong == [], [(t, want[t], eng._pieces[t]) for t in wrong[:5]]
