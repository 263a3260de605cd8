"""The step-wise scheduler on the real model: a request joins at the next step, a cancelled
one frees its slot and cells at once, a prompt sharing a kept prefix decodes only the rest
and gives the same greedy output, prompt logprobs match the generation's own."""

from __future__ import annotations

import pytest

from entropic_local.decode.scheduler import Scheduler, Ticket


@pytest.fixture()
def engine(smollm2):
    return smollm2.batch_engine(4, 1024)


def ticket(model, prompt, n=8, sampler="greedy", **kw):
    return Ticket(model.prepare(prompt, max_tokens=n, sampler=sampler, seed=1), **kw)


def run(sched):
    while not sched.idle:
        sched.step()


def test_join_at_next_step_and_cancel_frees_the_slot(smollm2, engine):
    s = Scheduler(engine, parallel=4, n_ctx_seq=256)
    a = s.submit(ticket(smollm2, "Once upon a time", 40))
    for _ in range(3):
        s.step()
    assert s.busy == 1 and len(a.steps) == 3
    b = s.submit(ticket(smollm2, "The capital of France is", 40))
    s.step()
    assert s.busy == 2 and len(a.steps) == 4 and len(b.steps) == 1  # b joined; a kept its pace
    s.cancel(a)
    slot = a.slot
    events = s.step()
    assert a.done and (a, None) in events and s.busy == 1
    assert engine.seq_pos_max(slot) == -1  # its cells are gone
    assert s.reserved == b.need
    assert a.state.finish_reason == "cancelled"
    run(s)
    assert s.reserved == 0 and s.busy == 0
    s.close()


def test_prefix_reuse_decodes_only_the_rest_with_the_same_output(smollm2, engine):
    first = "Here is a list of fruits: apple, banana,"
    s = Scheduler(engine, parallel=4, n_ctx_seq=256, keep_prefix=True)
    t1 = s.submit(ticket(smollm2, first, 6))
    run(s)
    assert s.kept_cells > 0
    follow = first + t1.generation.text + " and"
    t2 = s.submit(ticket(smollm2, follow, 8))
    run(s)
    g2 = t2.generation
    assert g2.timings.prompt_eval_tokens < g2.timings.prompt_tokens
    s.close()
    fresh = Scheduler(engine, parallel=4, n_ctx_seq=256, keep_prefix=False)
    t3 = fresh.submit(ticket(smollm2, follow, 8))
    run(fresh)
    assert t3.generation.timings.prompt_eval_tokens == t3.generation.timings.prompt_tokens
    assert t3.generation.token_ids == g2.token_ids
    fresh.close()


def test_kept_cells_make_room_for_new_requests(smollm2):
    eng = smollm2.batch_engine(4, 1024)
    s = Scheduler(eng, parallel=2, n_ctx_seq=eng.n_ctx // 2, keep_prefix=True)
    done = []
    for i in range(6):  # every reservation is half the cache: kept cells must be dropped for the next
        s.submit(Ticket(smollm2.prepare(f"Number {i} is", max_tokens=100_000, sampler="greedy",
                                        stop=[" ", "\n", ".", ","])))
    while not s.idle:
        done += [t for t, step in s.step() if step is None]
        assert s.reserved + s.kept_cells <= s.capacity
    assert len(done) == 6 and all(t.error is None and t.generation.finish_reason == "stop" for t in done)
    assert s.reserved == 0
    s.close()


def test_kept_cells_stay_cheap(smollm2, engine):
    """A sequence decoded beside others keeps only its prompt's cells (its generated ones are
    interleaved with theirs); one decoded alone keeps everything; an admission trims the kept
    cells down to max_kept, least recently used first, never the prefix being reused."""
    s = Scheduler(engine, parallel=4, n_ctx_seq=256, keep_prefix=True, max_kept=6)
    pair = [s.submit(ticket(smollm2, p, 6)) for p in ("Once upon a time", "The capital of France is")]
    run(s)
    for t in pair:
        assert t.crowded and s.kept[t.slot] == t.req.tokens
        assert engine.seq_pos_max(t.slot) == len(t.req.tokens) - 1
    assert sum(len(t.req.tokens) for t in pair) > 6
    older, newer = sorted(pair, key=lambda t: s.kept_used[t.slot])
    text = "Here is a list of fruits: apple, banana,"
    alone = s.submit(ticket(smollm2, text, 6))
    s.step()  # admitted: the kept cells trimmed to 6, the older of the pair dropped
    assert older.slot not in s.kept and engine.seq_pos_max(older.slot) == -1
    assert s.kept[newer.slot] == newer.req.tokens
    run(s)
    assert not alone.crowded
    kept = s.kept[alone.slot]
    assert kept == (alone.req.tokens + alone.generation.token_ids)[:engine.seq_pos_max(alone.slot) + 1]
    assert len(kept) > len(alone.req.tokens) > 6  # everything, beyond max_kept: it was not trimmed
    follow = s.submit(ticket(smollm2, text + alone.generation.text, 4))
    s.step()  # reuses the lone sequence's cells; the other kept ones fit in max_kept
    assert follow.slot == alone.slot
    assert follow.state.timings.prompt_eval_tokens < len(follow.req.tokens)
    assert s.kept == {newer.slot: newer.req.tokens}
    run(s)
    s.close()


def test_prompt_logprobs_and_top(smollm2, engine):
    prompt = "The capital of France is"
    s = Scheduler(engine, parallel=4, n_ctx_seq=256)
    g = s.submit(ticket(smollm2, prompt, 3, top_logprobs=5))
    run(s)
    assert len(g.tops) == 3 and all(len(t) == 5 for t in g.tops)
    for step, top in zip(g.steps, g.tops):  # greedy: the chosen token is the top one
        assert top[0][0] == step.token_id and top[0][1] == pytest.approx(step.logprob)
        assert [lp for _, lp in top] == sorted((lp for _, lp in top), reverse=True)
    toks = g.req.tokens + g.generation.token_ids[:2]
    p = s.submit(Ticket(smollm2.prepare(toks, max_tokens=1, sampler="greedy"), prompt_logprobs=True))
    run(s)
    assert [x.token_id for x in p.prompt_scores] == toks[1:]
    # the scored continuation is the generation's own tokens: same logprobs and entropies
    for sc, step in zip(p.prompt_scores[len(g.req.tokens) - 1:], g.steps):
        assert sc.logprob == pytest.approx(step.logprob, abs=1e-3)
        assert sc.entropy == pytest.approx(step.entropy, abs=1e-3)
    s.close()
