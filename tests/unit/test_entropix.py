"""The Entropix sampler (samplers/stages/entropix.py, entropix_policy.py, entropix_thresholds.py) on
crafted distributions: quadrants and actions, attention terms, thresholds and their files."""

from __future__ import annotations

import math

import numpy as np
import pytest

from entropic_local.errors import InvalidSamplerSpec, UsageError
from entropic_local.samplers import PRESETS, Candidates, SamplerChain
from entropic_local.samplers import entropix_thresholds as ex
from entropic_local.samplers.entropix_thresholds import FAMILY_THRESHOLDS, GENERIC, LN2, UPSTREAM, Thresholds
from entropic_local.samplers.params import quote_text
from entropic_local.samplers.entropix_policy import ACTIONS, BEST_OF, QUADRANTS
from entropic_local.samplers.stages.entropix import Entropix

# thresholds for the crafted distributions below


TH = dict(low_ent=0.5, med_ent=2.0, high_ent=4.0, low_vent=0.5, high_vent=3.0)


# thresholds that send every step (H > 0, V > 0) to one action
ONLY = {
    "adaptive": dict(low_ent=0.0, med_ent=0.0, high_ent=100.0, low_vent=0.0, high_vent=100.0),
    "explore": dict(low_ent=0.0, med_ent=0.0, high_ent=100.0, low_vent=0.0, high_vent=0.0),
    "resample": dict(low_ent=0.0, med_ent=0.0, high_ent=0.0, low_vent=0.0, high_vent=0.0),
    "clarify": dict(low_ent=0.0, med_ent=0.0, high_ent=100.0, low_vent=100.0, high_vent=100.0),
}


class Cands(Candidates):
    """Candidates that can carry ``attention`` before the lead adds the slot."""


class Attn:
    def __init__(self, **kw):
        self.__dict__.update(kw)


def two_level(n1: int, m1: float, n2: int) -> np.ndarray:
    """Logits: n1 tokens sharing mass m1, n2 tokens sharing 1 - m1."""
    return np.log(np.r_[np.full(n1, m1 / n1), np.full(n2, (1 - m1) / n2)]).astype(np.float32)


CRAFTED = {
    "argmax": two_level(1, 0.999, 999),       # H ≈ 0.015, V ≈ 0.19
    "clarify": np.zeros(1000, np.float32),    # uniform: H = ln 1000, V = 0
    "explore": two_level(1, 0.9, 10000),      # H ≈ 1.25, V ≈ 11.7
    "resample": two_level(10, 0.5, 20000),    # H ≈ 6.8, V ≈ 14.4
    "adaptive": two_level(1, 0.6, 5),         # H ≈ 1.32, V ≈ 0.98
}


def load(z: np.ndarray, attention=None) -> Cands:
    c = Cands(z.shape[0])
    c.reset(z)
    c.attention = attention
    return c


def expected_kept(z: np.ndarray, rec: dict) -> np.ndarray:
    """Token ids the base truncation keeps: top-k, then at temperature T the shortest
    descending-probability prefix with mass ≥ top_p, then p ≥ min_p · p_max."""
    order = np.argsort(-z.astype(np.float64), kind="stable")[: rec["top_k"]]
    zt = z[order].astype(np.float64) / rec["temperature"]
    q = np.exp(zt - zt.max())
    q /= q.sum()
    n = len(q) if rec["top_p"] >= 1.0 else int(np.searchsorted(np.cumsum(q), rec["top_p"])) + 1
    keep, q = order[:n], q[:n]
    return keep[q >= rec["min_p"] * q.max()]


def test_upstream_bits_to_nats():
    assert UPSTREAM.low_ent == pytest.approx(0.1 * LN2)
    assert UPSTREAM.med_ent == pytest.approx(2.0794415, abs=1e-6)
    assert UPSTREAM.high_ent == pytest.approx(3.4657359, abs=1e-6)
    assert UPSTREAM.low_vent == pytest.approx(0.1 * LN2 ** 2)
    assert UPSTREAM.high_vent == pytest.approx(2.4022651, abs=1e-6)
    assert UPSTREAM.to_bits() == pytest.approx(ex.UPSTREAM_BITS)
    t = Thresholds.from_bits(1.0, 2.0, 3.0, 1.0, 4.0)
    assert (t.high_ent, t.high_vent) == pytest.approx((3 * LN2, 4 * LN2 ** 2))


def test_family_tables():
    for arch, th in FAMILY_THRESHOLDS.items():
        assert ex.thresholds_for(arch) is th and th.architecture == arch
    assert set(FAMILY_THRESHOLDS) >= {"llama", "gemma3"}
    for n in ex.THRESHOLD_NAMES:
        mean = np.mean([getattr(t, n) for t in FAMILY_THRESHOLDS.values()])
        assert getattr(GENERIC, n) == pytest.approx(mean, abs=0.006)
    assert ex.thresholds_for("qwen2") is GENERIC and ex.thresholds_for(None) is GENERIC


def test_thresholds_validation_and_files(tmp_path):
    with pytest.raises(ValueError, match="above"):
        Thresholds(1.0, 0.5, 2.0, 0.1, 1.0)
    with pytest.raises(ValueError, match="above"):
        Thresholds(0.1, 0.5, 2.0, 2.0, 1.0)
    with pytest.raises(ValueError, match="non-negative"):
        Thresholds(-0.1, 0.5, 2.0, 0.1, 1.0)
    t = Thresholds(0.1, 0.2, 0.3, 0.4, 0.5, source="test", percentiles={"low_ent": 10})
    path = tmp_path / "th.json"
    t.save(path)
    assert Thresholds.load(path) == t
    path.write_text('{"format": "something else"}')
    with pytest.raises(UsageError, match="not an entropix thresholds file"):
        Thresholds.load(path)
    with pytest.raises(UsageError, match="cannot read"):
        Thresholds.load(tmp_path / "missing.json")


class FakeEngine:
    """Enough of an Engine for bind(): metadata, vocabulary size, a toy tokenizer."""

    def __init__(self, arch="llama", vocab=None, n_vocab=100):
        self.arch, self.n_vocab = arch, n_vocab
        self.vocab = vocab or {" ...": [7], "...": [8], " Hmm": [3, 4]}

    def meta(self, key):
        return self.arch if key == "general.architecture" else None

    def tokenize(self, text, add_special=True, parse_special=False):
        assert not add_special and not parse_special
        return list(self.vocab.get(text, [1, 2, 3]))


def test_bind_family_file_params_precedence(tmp_path):
    s = Entropix()
    assert s.resolved_thresholds is GENERIC and s.clarify_tokens == ()
    assert s.bind(FakeEngine("gemma3")) is s
    assert s.resolved_thresholds is FAMILY_THRESHOLDS["gemma3"] and s.clarify_tokens == (7,)
    assert Entropix().bind(FakeEngine("qwen2")).resolved_thresholds is GENERIC
    # the file beats the family, parameters beat the file
    path = tmp_path / "t.json"
    Thresholds(0.1, 0.2, 0.3, 0.4, 0.5).save(path)
    s = Entropix(thresholds=str(path)).bind(FakeEngine("llama"))
    assert s.resolved_thresholds.values() == pytest.approx(
        dict(low_ent=0.1, med_ent=0.2, high_ent=0.3, low_vent=0.4, high_vent=0.5))
    s = Entropix(thresholds=str(path), low_ent=0.05).bind(FakeEngine("llama"))
    assert s.resolved_thresholds.low_ent == 0.05 and s.resolved_thresholds.med_ent == 0.2
    # a partial override is checked against the defaults it ends up with
    s = Entropix(med_ent=0.9)                       # generic low_ent 1.06 > 0.9
    with pytest.raises(InvalidSamplerSpec, match="above"):
        s.resolved_thresholds
    s.bind(FakeEngine("llama"))                     # llama low_ent 0.87 ≤ 0.9
    assert s.resolved_thresholds.med_ent == 0.9
    # clarify text chosen per tokenizer: " ..." when one token, else "..."
    eng = FakeEngine(vocab={" ...": [5, 6], "...": [9]})
    assert Entropix().bind(eng).clarify_tokens == (9,)
    assert Entropix(clarify=" Hmm").bind(FakeEngine()).clarify_tokens == (3, 4)
    assert Entropix(clarify="").bind(FakeEngine()).clarify_tokens == ()
    assert Entropix(clarify_id=42).bind(FakeEngine()).clarify_tokens == (42,)
    with pytest.raises(InvalidSamplerSpec, match="outside the vocabulary"):
        Entropix(clarify_id=100).bind(FakeEngine())


@pytest.mark.parametrize("action", ACTIONS)
def test_each_action_fires(action):
    z = CRAFTED[action]
    s = Entropix(**TH, clarify_id=3, seed=1)
    c = load(z)
    assert s.classify(c.entropy, c.varentropy) == action
    s.apply(c)
    rec = s.info()
    assert rec["action"] == action and rec["quadrant"] == QUADRANTS[action]
    assert rec["attention"] is False and "attn_entropy" not in rec
    assert 0 <= c.selected < c.n
    if action == "argmax":
        assert c.n == 1 and c.selected_token == int(np.argmax(z))
        assert rec["temperature"] == 0.0 and rec["top_k"] == 1
    elif action == "clarify":
        assert c.selected_token == 3 and rec["inserted"] is True and c.n == 1
    else:
        assert set(c.ids[: c.n]) == set(expected_kept(z, rec))
    base = {"explore": (0.666 * 1.2, 27, 0.9), "resample": (2.0, 27, 0.8)}
    if action in base:   # logits only: the attention terms are neutral
        assert (rec["temperature"], rec["top_k"], rec["top_p"]) == pytest.approx(base[action])
    if action == "adaptive":
        assert rec["best_of"] == BEST_OF == 1 and rec["top_p"] == 0.9 and rec["top_k"] == 27
        u = 0.5 * (c.entropy / 4.0 + c.varentropy / 3.0)
        assert rec["temperature"] == pytest.approx(0.666 * (1 + 0.6 * u))
        assert rec["min_p"] == pytest.approx(max(0.01, 0.03 * (1 - 0.5 * u)))


def test_classification_uses_the_models_own_distribution():
    # an earlier stage reshapes the candidates; the quadrant still comes from reset's stats
    chain = SamplerChain.parse("temp=0.05,entropix:clarify=", seed=0)
    chain["entropix"].bind(FakeEngine())
    c = load(CRAFTED["resample"])
    chain.apply(c)
    assert chain.step_info()["action"] == "resample"


def test_clarify_inserted_once_then_hotter():
    s = Entropix(**TH, clarify_id=7, seed=0)
    z = CRAFTED["clarify"]
    c = load(z)
    s.apply(c)
    assert c.selected_token == 7 and s.info()["inserted"] and s.clarified
    for _ in range(3):
        c = load(z, Attn(entropy=1.0, varentropy=0.5, agreement=0.0))
        s.apply(c)
        rec = s.info()
        assert rec["action"] == "clarify" and "inserted" not in rec and c.n > 1
        assert rec["temperature"] == pytest.approx(0.666 * (1.3 + 0.2 / LN2 * 1.0))
    s.reset()                                   # a new generation may insert again
    c = load(z)
    s.apply(c)
    assert c.selected_token == 7
    # a text of several tokens is forced over that many steps, whatever the quadrant
    s = Entropix(**TH, clarify=" Hmm", seed=0).bind(FakeEngine())
    toks = []
    for z in (CRAFTED["clarify"], CRAFTED["argmax"], CRAFTED["clarify"]):
        c = load(z)
        s.apply(c)
        toks.append((c.selected_token, s.info().get("inserted", False)))
    assert toks[:2] == [(3, True), (4, True)] and toks[2][1] is False
    # no clarify token (unbound, or clarify=""): only the hotter sampling
    s = Entropix(**TH, seed=0)
    c = load(CRAFTED["clarify"])
    s.apply(c)
    assert "inserted" not in s.info() and c.n > 1
    with pytest.raises(InvalidSamplerSpec, match="outside the vocabulary"):
        Entropix(**TH, clarify_id=5000).apply(load(CRAFTED["clarify"]))


def test_attention_terms():
    att = Attn(entropy=2.0, varentropy=1.5, agreement=0.004, interaction_strength=math.nan,
               n_valid=200)
    d = 0.004 * 200 / 2
    s = Entropix(**TH, seed=0)
    c = load(CRAFTED["explore"], att)
    s.apply(c)
    rec = s.info()
    assert rec["attention"] is True and rec["disagreement"] == pytest.approx(d)
    assert rec["attn_entropy"] == 2.0 and rec["attn_varentropy"] == 1.5
    assert rec["agreement"] == 0.004 and "interaction_strength" not in rec   # NaN: unused
    assert rec["temperature"] == pytest.approx(0.666 * (1.2 + 0.6 * d))
    assert rec["top_k"] == round(27 * (1 + d)) > 27                        # widened
    assert set(c.ids[: c.n]) == set(expected_kept(CRAFTED["explore"], rec))
    # more disagreement, wider
    s.apply(load(CRAFTED["explore"], Attn(entropy=2.0, varentropy=1.5, agreement=0.008,
                                         n_valid=200)))
    assert s.info()["top_k"] > rec["top_k"] and s.info()["temperature"] > rec["temperature"]
    # resample: hotter with attention varentropy, tighter top-p with attention entropy
    s.apply(load(CRAFTED["resample"], att))
    rec = s.info()
    assert rec["temperature"] == pytest.approx(min(3.0, 0.666 * (2 + 0.5 / LN2 ** 2 * 1.5)))
    assert rec["top_p"] == pytest.approx(max(0.5, 0.8 - 0.2 / LN2 * 2.0))
    # adaptive: every parameter moves with the metrics
    att2 = Attn(attn_entropy=3.0, attn_varentropy=0.5, agreement=0.002,
                interaction_strength=1.5, n_valid=100)     # AttentionMetrics' names
    s.apply(load(CRAFTED["adaptive"]))
    plain = s.info()
    s.apply(load(CRAFTED["adaptive"], att2))
    rec = s.info()
    assert rec["interaction_strength"] == 1.5 and rec["disagreement"] == pytest.approx(0.1)
    assert rec["temperature"] == pytest.approx(
        plain["temperature"] + 0.666 * (0.2 * 3.0 / math.log(100) + 0.2 * 0.1))
    assert rec["top_p"] == pytest.approx(min(1.0, 0.9 * (1 + 0.1 / LN2 ** 2 * 0.5)))
    assert rec["top_k"] == round(27 * (1 + 0.3 * 1.5 + 0.2 * 0.1))
    assert rec["min_p"] == plain["min_p"]
    # without n_valid the agreement cannot be normalised: used as is (≈ neutral)
    s.apply(load(CRAFTED["explore"], Attn(entropy=2.0, varentropy=1.5, agreement=0.004)))
    assert s.info()["disagreement"] == 0.004


def test_attention_varentropy_is_the_true_per_head_varentropy():
    ka = pytest.importorskip("entropic_local.kernels.attention")
    rows = np.array([[0.7, 0.1, 0.1, 0.1], [0.25, 0.25, 0.25, 0.25], [0.4, 0.4, 0.1, 0.1]])
    hh, hv = np.zeros(3), np.zeros(3)
    h, v, agree = ka.attention_metrics(rows, hh, hv)
    ent = -(rows * np.log(rows)).sum(1)
    true_v = (rows * (np.log(rows) + ent[:, None]) ** 2).sum(1).mean()
    assert v == pytest.approx(true_v) and abs(v - np.var(ent)) > 0.05   # not across heads
    s = Entropix(**TH, seed=0)
    s.apply(load(CRAFTED["resample"], Attn(entropy=h, varentropy=v, agreement=agree,
                                          n_valid=4)))
    rec = s.info()
    assert rec["attn_varentropy"] == pytest.approx(true_v)
    assert rec["temperature"] == pytest.approx(max(2.0, 0.666 * (2 + 0.5 / LN2 ** 2 * true_v)))


@pytest.mark.parametrize("action", ["adaptive", "explore", "resample", "clarify"])
def test_min_p_applied_and_top_p_in_descending_order(action):
    rng = np.random.default_rng(3)
    z = np.sort(rng.normal(0, 2.0, 300)).astype(np.float32)[::-1].copy()
    rng.shuffle(z)
    s = Entropix(**ONLY[action], k=60, p=0.97, minp=0.3, clarify="", seed=0)
    c = load(z)
    s.apply(c)
    rec = s.info()
    assert rec["action"] == action
    kept = np.sort(c.ids[: c.n])
    want = np.sort(expected_kept(z, rec))
    np.testing.assert_array_equal(kept, want)
    # min-p cut some of what top-k and top-p kept ...
    no_minp = expected_kept(z, {**rec, "min_p": 0.0})
    assert len(want) < len(no_minp)
    # ... and top-p kept the most probable tokens (a prefix of the descending order)
    top = np.argsort(-z, kind="stable")[: len(no_minp)]
    assert set(no_minp) == set(top)
    assert c.ids[c.selected] in set(want)


def test_top_p_keeps_the_head_not_the_tail():
    # mass 0.5, 0.2, 0.1, 0.1, 0.05, 0.05: top-p 0.6 keeps the two largest; a cumulative
    # sum in ascending order would keep the four smallest
    z = np.log(np.array([0.05, 0.5, 0.1, 0.05, 0.2, 0.1])).astype(np.float32)
    s = Entropix(**ONLY["explore"], p=0.6, minp=0.0, seed=0)
    s.t = 1.0 / 1.2     # explore runs at t · 1.2 = 1: the probabilities above
    c = load(z)
    s.apply(c)
    assert s.info()["temperature"] == pytest.approx(1.0)
    assert sorted(c.ids[: c.n]) == [1, 4]


def test_best_of_n_picks_highest_logprob_and_matches_distribution():
    z = np.array([2.0, 1.5, 1.0, 0.5, 0.0, -0.5], np.float32)
    s = Entropix(**ONLY["adaptive"], best_of=3, k=6, p=1.0, minp=0.0, seed=4)
    probs = s.distribution(load(z))
    rec = s.info()
    zt = np.sort(z)[::-1].astype(np.float64) / rec["temperature"]
    q = np.exp(zt - zt.max()) / np.exp(zt - zt.max()).sum()
    surv = 1 - np.cumsum(q)
    prev = np.r_[1.0, surv[:-1]]
    np.testing.assert_allclose(probs, prev ** 3 - np.clip(surv, 0, 1) ** 3, rtol=1e-5, atol=1e-9)
    assert probs.sum() == pytest.approx(1.0) and probs[0] > q[0]
    counts = np.zeros(6)
    for _ in range(3000):
        c = load(z)
        s.apply(c)
        counts[c.selected] += 1          # index in the sorted set
    np.testing.assert_allclose(counts / 3000, probs, atol=0.03)


def test_seeded_reproducibility_and_clone():
    rng = np.random.default_rng(0)
    logits = [(rng.standard_normal(500) * sc).astype(np.float32)
              for sc in rng.choice([0.05, 1.0, 2.5, 6.0, 40.0], 60)]

    def run(chain, seq):
        out = []
        for z in seq:
            c = load(z)
            chain.apply(c)
            tok = c.selected_token
            chain.accept(tok)
            out.append((tok, chain.step_info()["action"]))
        return out

    a = run(SamplerChain.parse("entropix:clarify_id=1", seed=11), logits)
    b = run(SamplerChain.parse("entropix:clarify_id=1", seed=11), logits)
    assert a == b and len({act for _, act in a}) >= 3
    assert run(SamplerChain.parse("entropix:clarify_id=1", seed=12), logits) != a
    chain = SamplerChain.parse("entropix:clarify_id=1", seed=11)
    head = run(chain, logits[:30])
    twin = chain.clone()
    assert run(chain, logits[30:]) == run(twin, logits[30:]) == a[30:]
    assert head == a[:30]
    chain.reset(11)
    assert run(chain, logits) == a


def test_spec_round_trip(tmp_path):
    path = tmp_path / "my th.json"
    Thresholds(0.1, 0.2, 0.3, 0.4, 0.5).save(path)
    specs = [
        "entropix",
        "entropix:t=0.7,k=40,p=0.95,minp=0.05,best_of=3",
        "entropix:low_ent=0.5,med_ent=2.0,high_ent=4.0,low_vent=0.5,high_vent=7.0",
        "entropix:clarify=%20...",
        "entropix:clarify=",
        "entropix:clarify_id=42",
        "penalties:repeat=1.1,entropix:clarify=a%2Cb%25c%20d",
        f"entropix:thresholds={quote_text(str(path))}",
    ]
    for spec in specs:
        c = SamplerChain.parse(spec)
        assert SamplerChain.parse(str(c)) == c
        assert str(SamplerChain.parse(str(c))) == str(c)
        assert c.stages[-1].name == "entropix"
    assert SamplerChain.parse(specs[6])["entropix"].clarify == "a,b%c d"
    assert SamplerChain.parse(specs[-1])["entropix"].thresholds == str(path)
    assert str(SamplerChain.parse("entropix")) == "entropix"
    assert Entropix(clarify=" ...").spec() == "entropix:clarify=%20..."
    assert str(SamplerChain([Entropix(t=0.5, clarify="¿qué?")])) == \
        "entropix:t=0.5,clarify=%C2%BFqu%C3%A9?"
    c = SamplerChain.parse("entropix:t=0.5,clarify=%C2%BFqu%C3%A9?")
    assert c["entropix"].clarify == "¿qué?"
    assert SamplerChain.parse(PRESETS["entropix"]) == SamplerChain.parse("entropix")


@pytest.mark.parametrize("bad, match", [
    ("entropix:t=0", "out of range"),
    ("entropix:k=0", "out of range"),
    ("entropix:minp=1", "out of range"),
    ("entropix:p=1.5", "out of range"),
    ("entropix:best_of=0", "out of range"),
    ("entropix:low_ent=-1", "out of range"),
    ("entropix:clarify=x,clarify_id=3", "not both"),
    ("entropix:low_ent=3,med_ent=2", "above"),
    ("entropix:thresholds=/nonexistent/th.json", "cannot read"),
    ("entropix,dist", "must be the last stage"),
    ("entropix:temp=1", "temp"),
])
def test_bad_specs(bad, match):
    with pytest.raises(InvalidSamplerSpec, match=match):
        SamplerChain.parse(bad)
