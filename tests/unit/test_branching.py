"""The fork request Entropix makes on explore steps (no model)."""

from __future__ import annotations

import numpy as np
import pytest

import entropic_local as el
from entropic_local.samplers import Candidates, Fork, SamplerChain
from entropic_local.samplers.stages.entropix import Entropix


EXPLORE_ONLY = dict(low_ent=0.0, med_ent=0.0, high_ent=100.0, low_vent=0.0, high_vent=0.0)


def crafted(n_top: int = 8) -> Candidates:
    z = np.log(np.r_[np.full(n_top, 0.9 / n_top), np.full(200, 0.1 / 200)]).astype(np.float32)
    c = Candidates(z.shape[0])
    c.reset(z)
    return c


def test_fork_request_on_explore_steps():
    s = Entropix(**EXPLORE_ONLY, fork=4, fork_depth=3, fork_entropy=0.25, seed=1)
    c = crafted()
    s.apply(c)
    assert s.info()["action"] == "explore"
    f = c.fork
    assert isinstance(f, Fork) and f.depth == 3 and f.entropy_weight == 0.25
    assert len(f.tokens) == 4 and len(set(f.tokens)) == 4
    assert f.tokens[0] == c.selected_token              # the stage's own draw comes first
    assert set(f.tokens) <= set(c.ids[: c.n].tolist())   # only kept candidates
    assert s.sequences_needed == 5


@pytest.mark.parametrize("fork", [0, 1])
def test_no_fork_when_off(fork):
    s = Entropix(**EXPLORE_ONLY, fork=fork, seed=1)
    c = crafted()
    s.apply(c)
    assert c.fork is None and s.sequences_needed == 1


def test_no_fork_on_other_actions():
    adaptive = dict(low_ent=0.0, med_ent=0.0, high_ent=100.0, low_vent=0.0, high_vent=100.0)
    s = Entropix(**adaptive, fork=4, seed=1)
    c = crafted()
    s.apply(c)
    assert s.info()["action"] == "adaptive" and c.fork is None


def test_fork_spec_round_trip():
    chain = SamplerChain.parse("entropix:fork=4,fork_depth=6")
    assert str(chain) == "entropix:fork=4,fork_depth=6"
    assert SamplerChain.parse(str(chain)) == chain
    with pytest.raises(el.InvalidSamplerSpec):
        SamplerChain.parse("entropix:fork=-1")
