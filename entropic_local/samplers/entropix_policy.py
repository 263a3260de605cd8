"""Entropix's decisions, as data and pure functions: which action a step's entropy and
varentropy call for (``classify``) and the sampling parameters of that action
(``sampling_parameters``), from the attention terms of the step (``AttentionTerms``). The
stage that acts on them is ``samplers/stages/entropix.py``.

Entropix: an adaptive sampler that decides per token from logit and attention uncertainty.

After xjdr-alt/entropix, rewritten in nats, with its known defects fixed and its
thresholds turned into data. One selecting stage, ``entropix``: it must end a chain.

Classification (per step)
-------------------------
From the model's own distribution for this step (full vocabulary, temperature 1:
``cands.entropy`` H in nats and ``cands.varentropy`` V in nats², computed by the decode loop),
whatever earlier stages did to the candidates, against five thresholds (``Thresholds``)::

    H < low_ent  and V < low_vent    quadrant "low-low"    action argmax
    H > med_ent  and V < low_vent    quadrant "high-low"   action clarify
    H < high_ent and V > high_vent   quadrant "low-high"   action explore
    H > high_ent and V > high_vent   quadrant "high-high"  action resample
    otherwise                        quadrant "middle"     action adaptive

(upstream's order and inequalities; the regions are disjoint because thresholds are
required to satisfy ``low_ent ≤ med_ent ≤ high_ent`` and ``low_vent ≤ high_vent``).

Actions
-------
With the base sampler ``t`` (0.666), ``k`` (27), ``p`` (0.90), ``minp`` (0.03) and the
attention metrics of the step when there are any (below; each term is 0 when absent):

* **argmax**: the live candidate with the largest logit.
* **clarify**: the first time in a generation, *insert* the clarify text's token(s) (forced,
  whatever the logits say; a text of several tokens is forced over that many steps). At most
  once per generation (``reset`` starts a new one). Afterwards (or when no clarify token is
  available) sample hotter: ``T = min(1.5, t · (1.3 + 0.2885 · H_attn))``.
* **explore**: temperature and top-k widened by head disagreement D (below):
  ``T = min(1.5, t · (1.2 + 0.6 · D))``, ``k' = max(5, round(k · (1 + D)))``.
* **resample**: hot, with a tighter nucleus:
  ``T = clip(t · (2 + 1.0407 · V_attn), 2.0, 3.0)``,
  ``p' = max(0.5, p − 0.1 − 0.2885 · H_attn)``.
* **adaptive**: every parameter from the metrics, then best-of-n. With
  ``u = ½ (H / high_ent + V / high_vent)`` (the logit uncertainty relative to this model
  family's "high" bounds, ≈ 0.5 on a median step)::

      T  = min(1.5, t · (1 + 0.6 u + 0.2 · H_attn / ln n_valid + 0.2 · D))
      p' = clip(p · (1 + 0.2081 · V_attn), 0.1, 1.0)
      k' = clip(round(k · (1 + 0.3 · I + 0.2 · D)), 1, max(100, k))
      m' = clip(minp · (1 − 0.5 u), 0.01, 0.5)

  then ``best_of`` tokens are drawn from that distribution and the one with the highest
  log-probability is kept. Upstream draws 5; the default here is 1 (a plain draw), chosen on
  the generation-quality frontier of a development text, where best-of-5's pull towards the
  likeliest draws cost diversity without buying coherence the others lacked
  (``best_of=5`` restores upstream). Scored by the logprob of the distribution the stage
  received at T = 1 (the model's own when ``entropix`` is alone in the chain): ``log p(x) = z_x − log Z``,
  and log Z is common to the samples, so the winner is the drawn token with the largest logit
  (the sorted candidate set makes that the smallest drawn index). Upstream adds a
  "confidence" made of the step's metrics to every sample's score: the same number for all
  samples, so it never changes the choice and is left out.

Every sampling action uses the same truncation, on the temperature-scaled distribution, with
the package's kernels: ``top_k`` (k'), ``scale_temperature`` (T, on the k' survivors only),
``top_p`` (p': cumulative mass taken over the survivors sorted by *descending* probability),
``min_p`` (m': ``p_i ≥ m' · p_max`` at temperature T, really applied), then one inverse-CDF
draw per sample.

Coefficients. The attention coefficients are upstream's bit coefficients converted so that
the same attention distribution gives the same adjustment: 0.2 per bit of attention entropy is
0.2 / ln 2 = 0.2885 per nat, 0.5 and 0.1 per bit² of attention varentropy are
0.5 / (ln 2)² = 1.0407 and 0.1 / (ln 2)² = 0.2081 per nat². Deviations, each deliberate:
head disagreement ``D`` replaces upstream's "agreement" in explore and adaptive (see below);
explore's T grows with D instead of with interaction strength (disagreement is what
explore is about); resample tightens top-p by 0.1 even without attention (upstream tightens only
through attention entropy, so logits-only it would not tighten at all) and is capped at
T = 3; the adaptive logit term uses ``u`` (relative to the family's thresholds) with slope 0.6
and T is capped at 1.5, because upstream's ``1 + 0.3 (H_bits + V_bits²)`` runs a median
step of the test models (H ≈ 2 nats, V ≈ 4 nats²) at T ≈ 3 t; min-p falls from ``minp`` to
``minp / 2`` as u goes 0 → 1 (upstream's formula is below its floor 0.01 on every step).
Upstream's known defects are not reproduced: min-p is applied, top-p sums in descending
order, the clarify token is resolved through the tokenizer (never a hard-coded id), the
thresholds are per model family (and calibrated) rather than fixed, and attention metrics
are used as the capture layer defines them (the true per-head varentropy, masked to the
valid cells; see ``kernels/attention.py``), never recomputed here.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .entropix_thresholds import LN2, Thresholds

__all__ = ["classify", "sampling_parameters", "AttentionTerms", "ACTIONS", "QUADRANTS"]

ACTIONS = ("argmax", "clarify", "explore", "resample", "adaptive")
QUADRANTS = {"argmax": "low-low", "clarify": "high-low", "explore": "low-high",
             "resample": "high-high", "adaptive": "middle"}

# Base sampler (upstream's defaults).
BASE_T = 0.666
BASE_K = 27
BASE_P = 0.90
BASE_MINP = 0.03
BEST_OF = 1            # upstream: 5 (see the module doc)
FORK_DEPTH = 4         # tokens each branch is rolled out (the candidate token included)
FORK_ENTROPY = 0.5     # branch score = Σ logprob − FORK_ENTROPY · Σ entropy along the branch

# Action coefficients (module doc). Attention ones are upstream's per-bit values per nat.
CLARIFY_T_GAIN = 1.3
CLARIFY_ATTN_H = 0.2 / LN2            # 0.2885 per nat of attention entropy
CLARIFY_T_MAX = 1.5
EXPLORE_T_GAIN = 1.2
EXPLORE_T_D = 0.6
EXPLORE_T_MAX = 1.5
EXPLORE_K_D = 1.0
EXPLORE_K_MIN = 5
RESAMPLE_T_GAIN = 2.0
RESAMPLE_ATTN_V = 0.5 / LN2 ** 2      # 1.0407 per nat² of attention varentropy
RESAMPLE_T_MIN = 2.0
RESAMPLE_T_MAX = 3.0
RESAMPLE_P_CUT = 0.1
RESAMPLE_ATTN_H = 0.2 / LN2           # 0.2885 per nat of attention entropy
RESAMPLE_P_MIN = 0.5
ADAPTIVE_T_U = 0.6
ADAPTIVE_T_ATTN_H = 0.2               # × attention entropy / ln n_valid
ADAPTIVE_T_D = 0.2
ADAPTIVE_T_MAX = 1.5
ADAPTIVE_P_ATTN_V = 0.1 / LN2 ** 2    # 0.2081 per nat² of attention varentropy
ADAPTIVE_P_MIN, ADAPTIVE_P_MAX = 0.1, 1.0
ADAPTIVE_K_I = 0.3
ADAPTIVE_K_D = 0.2
ADAPTIVE_K_MAX = 100
ADAPTIVE_MINP_U = 0.5
ADAPTIVE_MINP_MIN, ADAPTIVE_MINP_MAX = 0.01, 0.5


def _metric(obj: Any, *names: str) -> float | None:
    for n in names:
        v = getattr(obj, n, None)
        if v is None:
            continue
        try:
            f = float(v)
        except (TypeError, ValueError):
            return None
        return f if math.isfinite(f) else None
    return None


class AttentionTerms:
    """The attention terms of one step (each None when absent)."""

    __slots__ = ("present", "entropy", "varentropy", "agreement", "interaction", "n_valid",
                 "disagreement", "entropy_rel")

    def __init__(self, att: Any):
        self.present = att is not None
        if att is None:
            self.entropy = self.varentropy = self.agreement = self.interaction = None
            self.n_valid = None
        else:
            self.entropy = _metric(att, "entropy", "attn_entropy")
            self.varentropy = _metric(att, "varentropy", "attn_varentropy")
            self.agreement = _metric(att, "agreement")
            self.interaction = _metric(att, "interaction_strength")
            nv = getattr(att, "n_valid", None)
            self.n_valid = int(nv) if isinstance(nv, (int, np.integer)) and nv > 0 else None
        d = None
        if self.agreement is not None:
            if self.n_valid is not None:
                d = self.agreement * self.n_valid / 2.0
            else:
                d = self.agreement
            d = min(1.0, max(0.0, d))
        self.disagreement = d
        rel = None
        if self.entropy is not None and self.n_valid is not None and self.n_valid > 1:
            rel = min(1.0, max(0.0, self.entropy / math.log(self.n_valid)))
        self.entropy_rel = rel

    # values with absent terms as 0 (neutral)
    @property
    def h(self) -> float:
        return self.entropy or 0.0

    @property
    def v(self) -> float:
        return self.varentropy or 0.0

    @property
    def d(self) -> float:
        return self.disagreement or 0.0

    @property
    def i(self) -> float:
        return self.interaction or 0.0

    @property
    def h_rel(self) -> float:
        return self.entropy_rel or 0.0

    def record(self, out: dict[str, Any]) -> None:
        out["attention"] = self.present
        if not self.present:
            return
        for key, v in (("attn_entropy", self.entropy), ("attn_varentropy", self.varentropy),
                       ("agreement", self.agreement), ("disagreement", self.disagreement),
                       ("interaction_strength", self.interaction)):
            if v is not None:
                out[key] = v


def classify(entropy: float, varentropy: float, th: Thresholds) -> str:
    """The action for a step with this entropy (nats) and varentropy (nats²)."""
    if entropy != entropy or varentropy != varentropy:
        raise ValueError("entropix: the step's entropy/varentropy is NaN "
                         "(Candidates.reset sets them)")
    if entropy < th.low_ent and varentropy < th.low_vent:
        return "argmax"
    if entropy > th.med_ent and varentropy < th.low_vent:
        return "clarify"
    if entropy < th.high_ent and varentropy > th.high_vent:
        return "explore"
    if entropy > th.high_ent and varentropy > th.high_vent:
        return "resample"
    return "adaptive"


def sampling_parameters(action: str, entropy: float, varentropy: float, att: "AttentionTerms",
                        th: Thresholds, t: float, k: int, p: float, minp: float,
                        best_of: int) -> dict[str, Any]:
    """The sampling parameters of a sampling action (clarify, explore, resample, adaptive)
    from the base sampler ``t, k, p, minp, best_of`` (module doc), as recorded per step:
    ``temperature``, ``top_k``, ``top_p``, ``min_p``, ``best_of`` (draws), and
    ``uncertainty`` (u) for adaptive."""
    out: dict[str, Any] = {}
    draws = 1
    base_k = k
    if action == "clarify":
        t = min(CLARIFY_T_MAX, t * (CLARIFY_T_GAIN + CLARIFY_ATTN_H * att.h))
    elif action == "explore":
        d = att.d
        t = min(EXPLORE_T_MAX, t * (EXPLORE_T_GAIN + EXPLORE_T_D * d))
        k = max(EXPLORE_K_MIN, int(round(k * (1.0 + EXPLORE_K_D * d))))
    elif action == "resample":
        t = min(RESAMPLE_T_MAX, max(RESAMPLE_T_MIN, t * (RESAMPLE_T_GAIN + RESAMPLE_ATTN_V * att.v)))
        p = max(RESAMPLE_P_MIN, p - RESAMPLE_P_CUT - RESAMPLE_ATTN_H * att.h)
    else:  # adaptive
        u = 0.5 * (entropy / max(th.high_ent, 1e-9) + varentropy / max(th.high_vent, 1e-9))
        d = att.d
        t = min(ADAPTIVE_T_MAX, t * (1.0 + ADAPTIVE_T_U * u + ADAPTIVE_T_ATTN_H * att.h_rel
                                     + ADAPTIVE_T_D * d))
        p = min(ADAPTIVE_P_MAX, max(ADAPTIVE_P_MIN, p * (1.0 + ADAPTIVE_P_ATTN_V * att.v)))
        k = int(min(max(ADAPTIVE_K_MAX, base_k),
                    max(1, round(k * (1.0 + ADAPTIVE_K_I * att.i + ADAPTIVE_K_D * d)))))
        minp = min(ADAPTIVE_MINP_MAX, max(ADAPTIVE_MINP_MIN, minp * (1.0 - ADAPTIVE_MINP_U * u)))
        draws = best_of
        out["uncertainty"] = u
    out.update(temperature=t, top_k=k, top_p=p, min_p=minp, best_of=draws)
    return out
