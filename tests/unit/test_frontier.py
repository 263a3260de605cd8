"""The frontier's measures against hand-computed values, its Pareto front, prompts and
temperature rule (no model)."""

from __future__ import annotations

import math

import pytest

from entropic_local.errors import UsageError
from entropic_local.evaluation.frontier import at_temperature, prompts_from_text, sweep_samplers, SWEEP_SIZE
from entropic_local.evaluation.frontier_table import format_frontier_table, pareto_front, summarise
from entropic_local.evaluation.quality_metrics import (distinct_n, ends_in_loop, ngrams, self_bleu,
                                                       seq_rep_n, words)


def test_words_split_word_runs_and_punctuation():
    assert words("The cat, the cat.") == ["The", "cat", ",", "the", "cat", "."]
    assert words("  ") == []
    assert ngrams(["a", "b", "c"], 2) == [("a", "b"), ("b", "c")]
    assert ngrams(["a"], 2) == []
    with pytest.raises(ValueError):
        ngrams(["a"], 0)


def test_distinct_n_hand_values():
    # bigrams ab bc ca ab: 3 distinct of 4
    assert distinct_n(["a b c a b"], 2) == pytest.approx(0.75)
    # pooled over samples: ab bc | ab bd -> 3 of 4
    assert distinct_n(["a b c", "a b d"], 2) == pytest.approx(0.75)
    # unigrams a b c a b d: 4 of 6
    assert distinct_n(["a b c", "a b d"], 1) == pytest.approx(4 / 6)
    assert distinct_n(["x y z"], 3) == 1.0
    assert math.isnan(distinct_n(["a b"], 3))


def test_seq_rep_4_hand_values():
    # 4-grams abcd bcda cdab dabc abcd: 4 unique of 5 -> 0.2
    assert seq_rep_n("a b c d a b c d".split(), 4) == pytest.approx(0.2)
    assert seq_rep_n("a b c d e f".split(), 4) == 0.0
    # one word repeated: 7 identical 4-grams -> 1 - 1/7
    assert seq_rep_n(["w"] * 10, 4) == pytest.approx(6 / 7)
    assert math.isnan(seq_rep_n(["a", "b", "c"], 4))


def test_ends_in_loop_hand_cases():
    head = "x1 x2 x3 x4 x5 x6 x7 x8 x9 x10".split()
    assert ends_in_loop(head + words("the cat sat . the cat sat . the cat sat ."))   # p = 4, 12 words
    assert not ends_in_loop(head + words("the cat sat . the cat sat ."))             # twice only
    assert not ends_in_loop(["a", "b"] * 4)        # p = 2 needs 10 words
    assert ends_in_loop(["a", "b"] * 5)
    assert ends_in_loop(head + ["w"] * 10)         # p = 1, 10 words
    assert not ends_in_loop(head)
    assert not ends_in_loop(["w"] * 9)


def test_self_bleu_hand_value():
    # "the cat sat on the mat" against "the cat sat on a mat" and back: clipped n-gram
    # precisions 5/6, 3/5, 2/4, 1/3 both ways, equal lengths (no brevity penalty):
    # BLEU = 100 · (1/12)^(1/4)
    want = 100 * (1 / 12) ** 0.25
    assert want == pytest.approx(53.7284, abs=1e-4)
    assert self_bleu(["the cat sat on the mat", "the cat sat on a mat"]) == pytest.approx(want, abs=1e-3)
    assert self_bleu(["same words here again", "same words here again"]) == pytest.approx(100.0)
    assert math.isnan(self_bleu(["only one"]))
    assert math.isnan(self_bleu(["one", "  "]))


def test_pareto_front_hand_case():
    pts = [(1.0, 0.5), (2.0, 0.9), (3.0, 0.4), (1.0, 0.5), (float("nan"), 0.9)]
    dom = pareto_front(pts)
    assert dom[0] == [] and dom[1] == [] and dom[3] == []   # equal points do not dominate each other
    assert sorted(dom[2]) == [0, 1, 3]
    assert dom[4] == []


def _sample(name, t, p, text, lp, n, tokens=None, info=None, actions=None, loop=False):
    return {"sampler": name, "spec": name, "temperature": t, "seed": 0, "prompt_index": p,
            "text": text, "judge_logprob": lp, "judge_tokens": n, "tokens": tokens if tokens is not None else n,
            "seq_rep_4": 0.0, "loop": loop, "gen_entropy": 1.0, "gen_logprob": -1.0,
            "info": info or {}, "actions": actions or {}}


def test_summarise_pools_tokens_and_marks_the_front():
    samples = [
        _sample("a", 1.0, 0, "a b c", -2.0, 2, info={"alpha": 1.0}),
        _sample("a", 1.0, 1, "a b d", -6.0, 2, info={"alpha": 2.0}, loop=True),
        _sample("b", 1.0, 0, "a a a", -1.0, 2, actions={"argmax": 1}),
        _sample("b", 1.0, 1, "a a a", -1.0, 2, actions={"explore": 1}),
        _sample("a", 2.0, 0, "x y z", -8.0, 2),
        _sample("b", 2.0, 0, "a a a", -4.0, 2),
    ]
    rows = summarise(samples, ["a", "b"], [1.0, 2.0])
    a1, b1, a2, b2 = rows
    assert a1["judge_ppl"] == pytest.approx(math.e ** 2)      # exp(8 / 4)
    assert b1["judge_ppl"] == pytest.approx(math.e ** 0.5)
    assert a1["distinct_2"] == 1.0 and b1["distinct_2"] == 0.5
    assert a1["loops"] == 0.5 and b1["loops"] == 0.0
    assert a1["info"]["alpha"] == pytest.approx(1.5)
    assert b1["actions"] == {"argmax": 0.25, "explore": 0.25}
    assert a1["front"] and b1["front"]                          # a more diverse, b more coherent
    assert a2["ppl_vs_t1"] == pytest.approx(math.e ** 4 / math.e ** 2)
    assert b2["ppl_vs_t1"] == pytest.approx(math.e ** 2 / math.e ** 0.5)
    table = format_frontier_table({"model": "g", "judge": "j", "prompts": 2, "seeds": [0],
                                   "max_tokens": 2, "rows": rows})
    assert table.count("\n| ") == 1 + 4 and "**front**" in table


def test_prompts_from_text():
    text = "one two three four\n\nshort\n\n  a  b\nc d e f  \n\n\nlast para with words"
    assert prompts_from_text(text, 10, 3) == ["one two three", "a  b\nc", "last para with"]
    assert prompts_from_text(text, 1, 3) == ["one two three"]
    with pytest.raises(UsageError):
        prompts_from_text("too short", 4, 20)


def test_at_temperature_is_each_samplers_own():
    assert str(at_temperature("min_p=0.1", 1.5)) == "min_p=0.1,temp=1.5"
    assert str(at_temperature("aes", 2.0)) == "aes:t=2.0"
    assert str(at_temperature("entropix", 0.7)) == "entropix:t=0.7"
    th = at_temperature("thermostat", 2.0)["thermostat"]
    assert (th.t, th.t_min, th.t_max) == (2.0, 0.5, 4.0)


class _FakeEngine:
    def meta(self, key):
        return "llama"


class _FakeModel:
    engine = _FakeEngine()


def test_sweep_gives_every_family_the_same_number_of_settings():
    s = sweep_samplers(_FakeModel())
    fams = {}
    for name in s:
        fams.setdefault(name.rsplit(" ", 1)[0], []).append(name)
    assert len(fams) == 10 and all(len(v) == SWEEP_SIZE for v in fams.values())
    for spec in s.values():
        at_temperature(spec, 1.0)   # every setting parses
    with pytest.raises(UsageError):
        sweep_samplers(_FakeModel(), ["nope"])


def test_aes_alpha_min_hand_values():
    from entropic_local.errors import InvalidSamplerSpec
    from entropic_local.samplers.chain import SamplerChain
    from entropic_local.samplers.stages.entmax import AES, aes_alpha

    kw = dict(s_lo=1.0, s_hi=4.0, v_split=1.0, alpha_max=2.0, alpha_min=1.25)
    assert aes_alpha(5.0, 3.0, **kw) == 1.25            # S ≥ s_hi: the floor, not softmax
    assert aes_alpha(0.5, 3.0, **kw) == 2.0             # S ≤ s_lo
    assert aes_alpha(2.5, 3.0, **kw) == pytest.approx(1.25 + 0.75 * 0.5)   # x = 1/2, g = 1/2
    assert aes_alpha(3.0, 0.5, **kw) == 1.25            # low V, x = 1/3: the lower bound
    assert aes_alpha(2.0, 0.5, **kw) == 2.0             # low V, x = 2/3
    # alpha_min = 1 is the map as before
    assert aes_alpha(2.5, 3.0, 1.0, 4.0, 1.0, 2.0, 1.0) == pytest.approx(1.5)
    assert str(SamplerChain([AES()])) == "aes"          # the defaults print as the bare name
    assert (AES().s_lo, AES().s_hi, AES().alpha_min) == (1.0, 4.0, 1.5)
    a = AES(s_lo=1.0, s_hi=4.0, alpha_min=1.25)
    assert str(SamplerChain.parse(str(SamplerChain([a])))) == str(SamplerChain([a]))
    assert "alpha_min=1.25" in str(SamplerChain([a]))
    with pytest.raises(InvalidSamplerSpec):
        SamplerChain.parse("aes:alpha_min=1.8,alpha_max=1.5")
