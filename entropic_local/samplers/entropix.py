"""Entropix: an adaptive sampler that decides per token from logit and attention uncertainty.

After xjdr-alt/entropix (notes §5), rewritten in nats, with its known defects fixed and its
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

  then ``best_of`` (5) tokens are drawn from that distribution and the one with the highest
  log-probability is kept. Scored by the logprob of the distribution the stage received at
  T = 1 (the model's own when ``entropix`` is alone in the chain): ``log p(x) = z_x − log Z``,
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
explore's T grows with D instead of with interaction strength (the issue asks for
disagreement); resample tightens top-p by 0.1 even without attention (upstream tightens only
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

Attention metrics
-----------------
The decode loop may set ``cands.attention`` before ``chain.apply``: None (no attention
captured: every attention term above is 0 and the record says ``attention: False``) or an
object with float attributes in nats ``entropy`` (mean over heads of the per-head attention
entropy), ``varentropy`` (mean over heads of the per-head Σ p (log p + H)²), ``agreement``
(mean over heads and valid cells of |p_h − mean_h p|) and ``interaction_strength`` (mean
|pre-softmax score|, NaN when not captured: then that term is 0), and optionally ``n_valid``
(the number of valid KV cells). ``attn_entropy`` / ``attn_varentropy`` are accepted as
names too (``engine.attention.AttentionMetrics``). A missing or NaN metric counts as absent.

Head disagreement ``D``: "agreement" as defined is a mean absolute deviation, i.e. a
*disagreement*, and it scales like 1/n_valid (every row sums to 1); upstream used it as
``1 − agreement`` ≈ 1, so its top-k widening was a constant. Here
``D = agreement · n_valid / 2`` = the mean total-variation distance of the heads from their
mean distribution, in [0, 1]: 0 when all heads attend alike, → 1 when they attend to disjoint
cells. Without ``n_valid`` it cannot be normalised and ``D = min(1, agreement)`` (≈ 0:
nearly neutral). ``H_attn / ln n_valid`` likewise is the attention entropy relative to its
maximum (0 without ``n_valid``).

Measured on the last layer of the test models (short prompts): attention entropy 0.6-1.3
nats, attention varentropy 0.8-1.5 nats², raw agreement 0.06-0.12, interaction strength
≈ 3-4 (SmolLM2) and ≈ 9-11 (Gemma 3, whose Q is pre-scaled). With upstream's coefficients
that means: in adaptive steps top-p saturates at 1.0 (left to top-k, min-p and best-of-n)
and on Gemma top-k reaches its cap of 100; clarify and resample move by a few tenths of T.

Thresholds: data, per model family
----------------------------------
``Thresholds(low_ent, med_ent, high_ent, low_vent, high_vent)`` in nats / nats². Upstream's
defaults are in bits (low 0.1, medium 3.0, high 5.0 bits; low 0.1, high 5.0 bits²):
``Thresholds.from_bits`` converts (× ln 2 for entropy, × (ln 2)² for varentropy), giving
``UPSTREAM`` = 0.0693, 2.0794, 3.4657 nats; 0.0480, 2.4023 nats². Those fit neither test
model: on real text they send ~0-1% of steps to argmax, ~50% to explore and 15-25% to the
T ≥ 2 resample. So the defaults are per model family (GGUF ``general.architecture``), chosen
by ``bind`` (``FAMILY_THRESHOLDS``), each derived by ``calibrate`` on ``CALIBRATION_TEXT``
(about 330 tokens: prose, dialogue, a recipe, a Python function) with the default
percentiles ``DEFAULT_PERCENTILES``: low_ent = 20th percentile of H, med_ent = 60th,
high_ent = 90th, low_vent = 20th percentile of V, high_vent = 80th (rounded to 0.01)::

    family   measured on (teacher-forced)        low_ent  med_ent  high_ent  low_vent  high_vent
    llama    SmolLM2-135M-Instruct Q4_1, 333 pos    0.87     2.51      4.41      2.14       6.91
    gemma3   Gemma-3-270M Q4_K_M, 331 pos           1.26     2.79      4.41      2.29       6.50
    other    GENERIC: mean of the two               1.06     2.65      4.41      2.21       6.71
    (upstream, converted, for comparison)           0.07     2.08      3.47      0.05       2.40

Why these percentiles: they give each action a sensible share. Teacher-forced on that text
(and, out of sample, over 5 prompts × 48 tokens generated with the ``llama`` preset) the
actions split argmax / clarify / explore / resample / adaptive about
14 / 1 / 14 / 6 / 66 % (generated: 21 / 1 / 5 / 2 / 70 %) on SmolLM2 and
12 / 1 / 16 / 4 / 68 % (27 / 0 / 7 / 2 / 64 %) on Gemma 3: greedy where the model is sure
(H below ~0.9-1.3 nats: the top token holds most of the mass), the hot resample only on the
rare steps that are both flat and long-tailed, the adaptive sampler for the bulk. H and V are
strongly correlated on LM logits (r ≈ 0.65-0.72), so "high-low" (clarify: a flat plateau of
many near-equal tokens with no tail) is rare; it inserts at most once anyway. Generating
with the bound ``entropix`` preset itself (4 prompts × 48 tokens): SmolLM2 58 % adaptive,
34 % argmax, 6 % explore, 1 % clarify, 1 % resample; Gemma 3 64 / 28 / 7 / 0 / 2 %.

Other families (qwen2, qwen3, phi3, ...) were not measured here: they get ``GENERIC`` (the
two models' entropy ranges are close although their vocabularies are 49k and 262k tokens)
and should be calibrated. The table is keyed by architecture but measured on its smallest
member: larger models of a family are sharper. ``calibrate(model, text)`` derives thresholds
for any model (regenerate the table: ``python -m entropic_local.samplers.entropix
smollm2-135m gemma3-270m``); ``Thresholds.save(path)`` / ``Thresholds.load(path)`` keep them
in a small JSON file, and ``entropix:thresholds=PATH`` loads one. Precedence: thresholds
given as stage parameters > the file > the family (at ``bind``) > ``GENERIC``. A partial
override must stay ordered against the defaults it is combined with; against a file that is
checked when the stage is built, against the family defaults when they are known (an
``InvalidSamplerSpec`` from ``bind``, or from the first step when unbound).

Binding to a model
------------------
``stage.bind(model_or_engine)`` (an ``entropic_local.Model`` or an ``Engine``; returns the
stage) reads ``general.architecture`` to pick the family thresholds and resolves the clarify
text to token ids through the model's tokenizer (no special tokens added or parsed). The
default text is chosen per tokenizer: ``" ..."`` when it is a single token, else ``"..."``
when that is, else the tokens of ``" ..."`` (SmolLM2: ``" ..."`` = 4563; Gemma 3: 3729).
``clarify=TEXT`` sets the text, ``clarify=`` (empty) disables the insertion (the clarify
action then only samples hot), ``clarify_id=N`` gives a token id directly. The API calls
``bind`` before every generation (``for stage in chain: getattr(stage, "bind", None)``);
binding again to the same model is cheap. Only plain data is kept (no reference to the
model), so ``clone`` stays cheap. Unbound, the stage uses ``GENERIC`` thresholds and inserts
nothing unless ``clarify_id`` is given.

Randomness
----------
Built on ``Dist``'s seeding: a numpy ``Generator(PCG64(seed))``, ``reset(seed)`` restarts
it, ``clone`` copies it. Every step draws one block of ``best_of`` uniforms (one uniform per
draw: single-draw actions use the first, best-of-n uses all n, argmax and an inserted
clarify token use none) so the stream stays aligned with the step index whatever the
actions were: a run is reproducible from its seed.

Per step (``info()``, into ``Step.info``): ``action`` (argmax / clarify / explore / resample /
adaptive), ``quadrant``, ``temperature``, ``top_k``, ``top_p``, ``min_p``, ``best_of`` (draws
used), ``uncertainty`` (u, adaptive steps only), ``attention`` (whether attention metrics
were present) and, when present, those used:
``attn_entropy``, ``attn_varentropy``, ``agreement``, ``disagreement`` (D),
``interaction_strength`` (only when finite). An inserted clarify step adds
``clarify_token`` and ``inserted: True`` (and records temperature 0, top_k 1, top_p 1,
min_p 0, as argmax does). ``distribution(cands)`` gives the probabilities the stage would
choose with, without drawing (``entropic_local.evaluate`` uses it).

Spec: ``entropix`` (all defaults), ``entropix:t=0.7,k=40,best_of=3``,
``entropix:high_ent=4.0,thresholds=my.json,clarify=%20Hmm``. String values are written
percent-encoded where needed (``%`` ``,`` and white space: ``" ..."`` prints as
``%20...``), so ``parse(str(chain)) == chain``. Preset ``entropix`` (``PRESETS_EXTRA``).
"""

from __future__ import annotations

import json
import math
import os
import urllib.parse
from dataclasses import asdict, dataclass
from typing import Any, Mapping

import numpy as np

from .. import kernels as _k
from ..errors import InvalidSamplerSpec, UsageError
from .base import Candidates, Fork
from .stages import (
    INF, TINY_TEMPERATURE, Dist, Param, _keep_argmax, _require_candidates, format_value,
    register_stage,
)

__all__ = [
    "Entropix", "Thresholds", "calibrate", "thresholds_for", "UPSTREAM_BITS", "UPSTREAM",
    "FAMILY_THRESHOLDS", "GENERIC", "DEFAULT_PERCENTILES", "CALIBRATION_TEXT",
    "PRESETS_EXTRA", "ACTIONS", "QUADRANTS", "LN2",
]

LN2 = math.log(2.0)
THRESHOLD_NAMES = ("low_ent", "med_ent", "high_ent", "low_vent", "high_vent")
ACTIONS = ("argmax", "clarify", "explore", "resample", "adaptive")
QUADRANTS = {"argmax": "low-low", "clarify": "high-low", "explore": "low-high",
             "resample": "high-high", "adaptive": "middle"}

# Upstream's quadrant bounds, in bits (entropy) and bits² (varentropy).
UPSTREAM_BITS: dict[str, float] = {
    "low_ent": 0.1, "med_ent": 3.0, "high_ent": 5.0, "low_vent": 0.1, "high_vent": 5.0,
}

# Base sampler (upstream's defaults).
BASE_T = 0.666
BASE_K = 27
BASE_P = 0.90
BASE_MINP = 0.03
BEST_OF = 5
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

DEFAULT_CLARIFY_TEXTS = (" ...", "...")

# The percentiles of the per-position entropy / varentropy that ``calibrate`` uses.
DEFAULT_PERCENTILES: dict[str, float] = {
    "low_ent": 20.0, "med_ent": 60.0, "high_ent": 90.0, "low_vent": 20.0, "high_vent": 80.0,
}
MIN_CALIBRATION_POSITIONS = 8

CALIBRATION_TEXT = """\
The river rises in the hills to the north of the town and flows south through a wide valley \
of farms and small villages. In spring, melting snow fills it to the edge of its banks, and \
the old stone bridge near the market is sometimes closed for a few days.

"Will it flood again this year?" asked Anna, looking at the grey water from the window of \
the bakery.
"Probably not," her father said. "The snow was light, and the new wall should hold."

The town council met on Tuesday to discuss the budget. Three items were on the agenda: \
repairs to the school roof, a new bus route to the hospital, and the cost of clearing the \
riverbank. After two hours of debate, the members agreed to fund the roof and the bus route, \
but postponed the riverbank work until autumn.

To make a simple bread, mix 500 grams of flour, 10 grams of salt, 7 grams of dried yeast and \
350 millilitres of warm water. Knead the dough for ten minutes, leave it to rise for an hour, \
shape it into a loaf and bake it at 220 degrees for about thirty-five minutes.

def mean(values):
    \"\"\"Return the arithmetic mean of a list of numbers.\"\"\"
    if not values:
        raise ValueError("empty list")
    return sum(values) / len(values)

Photosynthesis is the process by which green plants use sunlight to turn water and carbon \
dioxide into sugar and oxygen. It takes place mainly in the leaves, inside small structures \
called chloroplasts.
"""

_FORMAT = "entropic-local/entropix-thresholds"
_VERSION = 1


# ---------------------------------------------------------------------------------------
# Thresholds


@dataclass(frozen=True)
class Thresholds:
    """The five quadrant bounds, entropy in nats and varentropy in nats², plus where they
    came from. Requires ``0 ≤ low_ent ≤ med_ent ≤ high_ent`` and
    ``0 ≤ low_vent ≤ high_vent`` (finite)."""

    low_ent: float
    med_ent: float
    high_ent: float
    low_vent: float
    high_vent: float
    source: str = ""
    model: str | None = None
    architecture: str | None = None
    percentiles: dict[str, float] | None = None
    n_positions: int | None = None

    def __post_init__(self) -> None:
        for name in THRESHOLD_NAMES:
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float, np.floating, np.integer)):
                raise ValueError(f"threshold {name} must be a number, got {v!r}")
            v = float(v)
            if not (math.isfinite(v) and v >= 0.0):
                raise ValueError(f"threshold {name}={v!r} must be finite and non-negative")
            object.__setattr__(self, name, v)
        err = order_error({n: getattr(self, n) for n in THRESHOLD_NAMES})
        if err:
            raise ValueError(err)
        if self.percentiles is not None:
            object.__setattr__(self, "percentiles",
                               {str(k): float(v) for k, v in self.percentiles.items()})

    # -- conversions -----------------------------------------------------------------------
    @classmethod
    def from_bits(cls, low_ent: float, med_ent: float, high_ent: float, low_vent: float,
                  high_vent: float, **meta: Any) -> "Thresholds":
        """From bounds in bits / bits²: entropy × ln 2, varentropy × (ln 2)²."""
        return cls(low_ent * LN2, med_ent * LN2, high_ent * LN2,
                   low_vent * LN2 ** 2, high_vent * LN2 ** 2, **meta)

    def to_bits(self) -> dict[str, float]:
        """The bounds in bits / bits² (display only)."""
        return {"low_ent": self.low_ent / LN2, "med_ent": self.med_ent / LN2,
                "high_ent": self.high_ent / LN2, "low_vent": self.low_vent / LN2 ** 2,
                "high_vent": self.high_vent / LN2 ** 2}

    def values(self) -> dict[str, float]:
        return {n: getattr(self, n) for n in THRESHOLD_NAMES}

    def replace(self, **changes: Any) -> "Thresholds":
        d = asdict(self)
        d.update(changes)
        return Thresholds(**d)

    # -- files -----------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"format": _FORMAT, "version": _VERSION,
                             "units": {"entropy": "nats", "varentropy": "nats^2"}}
        d.update(self.values())
        for key in ("source", "model", "architecture", "percentiles", "n_positions"):
            v = getattr(self, key)
            if v is not None and v != "":
                d[key] = v
        return d

    def save(self, path: str | os.PathLike) -> None:
        """Write the thresholds as a small JSON file (nats)."""
        with open(path, "w", encoding="utf-8") as f:
            json.dump(self.to_dict(), f, indent=2)
            f.write("\n")

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Thresholds":
        """Read a file written by ``save``. Raises ``UsageError`` naming what is wrong."""
        try:
            with open(path, encoding="utf-8") as f:
                d = json.load(f)
        except OSError as e:
            raise UsageError(f"cannot read entropix thresholds {os.fspath(path)!r}: "
                             f"{e.strerror or e}") from None
        except json.JSONDecodeError as e:
            raise UsageError(f"entropix thresholds {os.fspath(path)!r} are not JSON: {e}") from None
        return cls.from_dict(d, where=os.fspath(path))

    @classmethod
    def from_dict(cls, d: Any, where: str = "thresholds") -> "Thresholds":
        if not isinstance(d, dict) or d.get("format") != _FORMAT:
            raise UsageError(f"{where} is not an entropix thresholds file "
                             f"(expected \"format\": \"{_FORMAT}\")")
        if d.get("version") != _VERSION:
            raise UsageError(f"{where}: unsupported version {d.get('version')!r} "
                             f"(this build reads version {_VERSION})")
        units = d.get("units", {})
        if units and (units.get("entropy") != "nats" or units.get("varentropy") != "nats^2"):
            raise UsageError(f"{where}: thresholds must be in nats / nats^2, got {units!r}")
        missing = [n for n in THRESHOLD_NAMES if n not in d]
        if missing:
            raise UsageError(f"{where}: missing {', '.join(missing)}")
        meta = {k: d[k] for k in ("source", "model", "architecture", "percentiles",
                                  "n_positions") if k in d}
        try:
            return cls(**{n: d[n] for n in THRESHOLD_NAMES}, **meta)
        except (TypeError, ValueError) as e:
            raise UsageError(f"{where}: {e}") from None


def order_error(v: Mapping[str, float | None]) -> str | None:
    """The first violated ordering among the given (non-None) bounds, or None."""
    pairs = (("low_ent", "med_ent"), ("med_ent", "high_ent"), ("low_ent", "high_ent"),
             ("low_vent", "high_vent"))
    for a, b in pairs:
        x, y = v.get(a), v.get(b)
        if x is not None and y is not None and x > y:
            return (f"entropix thresholds: {a}={format_value(float(x))} is above "
                    f"{b}={format_value(float(y))} (need low_ent ≤ med_ent ≤ high_ent and "
                    f"low_vent ≤ high_vent)")
    return None


UPSTREAM = Thresholds.from_bits(**UPSTREAM_BITS, source="upstream entropix defaults (bits)")

# Derived by ``calibrate(model, CALIBRATION_TEXT)`` with DEFAULT_PERCENTILES, rounded to 0.01
# (regenerate: ``python -m entropic_local.samplers.entropix smollm2-135m gemma3-270m``).
FAMILY_THRESHOLDS: dict[str, Thresholds] = {
    "llama": Thresholds(0.87, 2.51, 4.41, 2.14, 6.91, architecture="llama",
                        source="family llama: SmolLM2-135M-Instruct Q4_1, CALIBRATION_TEXT",
                        percentiles=DEFAULT_PERCENTILES, n_positions=333),
    "gemma3": Thresholds(1.26, 2.79, 4.41, 2.29, 6.50, architecture="gemma3",
                         source="family gemma3: Gemma-3-270M Q4_K_M, CALIBRATION_TEXT",
                         percentiles=DEFAULT_PERCENTILES, n_positions=331),
}


def _generic() -> Thresholds:
    fams = list(FAMILY_THRESHOLDS.values())
    mean = {n: round(sum(getattr(t, n) for t in fams) / len(fams), 2) for n in THRESHOLD_NAMES}
    return Thresholds(**mean, source="generic: mean of the measured families "
                      + ", ".join(FAMILY_THRESHOLDS), percentiles=DEFAULT_PERCENTILES)


GENERIC = _generic()


def thresholds_for(architecture: str | None) -> Thresholds:
    """The default thresholds of a GGUF ``general.architecture`` (``GENERIC`` if unknown)."""
    if architecture is not None and architecture in FAMILY_THRESHOLDS:
        return FAMILY_THRESHOLDS[architecture]
    return GENERIC


# ---------------------------------------------------------------------------------------
# calibration


def calibrate(model: Any, text: str = CALIBRATION_TEXT,
              percentiles: Mapping[str, float] | None = None, *,
              max_tokens: int | None = None) -> Thresholds:
    """Thresholds from the percentiles of the model's own entropy / varentropy over a text.

    ``model`` is an ``entropic_local.Model`` or an ``Engine``. The text is tokenised with the
    model's special tokens (BOS) and fed one token at a time (teacher forcing: the model
    sees the text, not its own choices, so no sampler is involved); at each position the
    full-vocabulary distribution at T = 1 gives H (nats) and V (nats²) through
    ``kernels.logit_stats``. Position t predicts token t+1, so a text of N tokens gives
    N − 1 positions (at most ``max_tokens`` and the context allows; at least 8 needed).
    ``percentiles`` maps threshold names to percentiles in [0, 100] (missing names take
    ``DEFAULT_PERCENTILES``); they must be ordered as the thresholds are, which makes the
    result monotone (``low_ent ≤ med_ent ≤ high_ent``, ``low_vent ≤ high_vent``). The KV
    cache is left holding the text.
    """
    pct = dict(DEFAULT_PERCENTILES)
    if percentiles is not None:
        unknown = set(percentiles) - set(THRESHOLD_NAMES)
        if unknown:
            raise UsageError(f"calibrate: unknown percentile names {sorted(unknown)} "
                             f"(known: {', '.join(THRESHOLD_NAMES)})")
        pct.update({k: float(v) for k, v in percentiles.items()})
    for k, v in pct.items():
        if not 0.0 <= v <= 100.0:
            raise UsageError(f"calibrate: percentile {k}={v} is outside [0, 100]")
    err = order_error(pct)
    if err:
        raise UsageError("calibrate: percentiles out of order: " + err.split(": ", 1)[1])
    if not isinstance(text, str) or not text.strip():
        raise UsageError("calibrate: empty text")
    engine = getattr(model, "engine", model)
    lock = getattr(model, "_lock", None)
    if lock is not None:
        lock.acquire()
    try:
        tokens = list(engine.tokenize(text, add_special=True, parse_special=False))
        n = len(tokens) - 1
        if max_tokens is not None:
            n = min(n, int(max_tokens))
        n = min(n, engine.n_ctx - 1)
        if n < MIN_CALIBRATION_POSITIONS:
            raise UsageError(f"calibrate: the text gives {max(n, 0)} positions, at least "
                             f"{MIN_CALIBRATION_POSITIONS} are needed", hint="give a longer text")
        ent = np.empty(n, dtype=np.float64)
        vent = np.empty(n, dtype=np.float64)
        for i in range(n):
            if i == 0:
                engine.eval_prompt(tokens[:1])
            else:
                engine.eval_token(tokens[i])
            _, _, h, v = _k.logit_stats(engine.logits(), 1.0)
            ent[i], vent[i] = h, v
    finally:
        if lock is not None:
            lock.release()
    vals = {}
    for name in THRESHOLD_NAMES:
        x = ent if name.endswith("_ent") else vent
        vals[name] = max(0.0, float(np.percentile(x, pct[name])))
    arch = engine.meta("general.architecture") if hasattr(engine, "meta") else None
    name = getattr(model, "name", None) or getattr(getattr(engine, "path", None), "stem", None)
    return Thresholds(**vals, source="calibrated", model=name, architecture=arch,
                      percentiles=pct, n_positions=n)


# ---------------------------------------------------------------------------------------
# spec strings with text values

_SAFE = "".join(chr(c) for c in range(0x21, 0x7F) if chr(c) not in "%,")


def quote_text(s: str) -> str:
    """A text parameter as written in a spec: ``%``, ``,``, white space, control and
    non-ASCII characters percent-encoded (UTF-8)."""
    return urllib.parse.quote(s, safe=_SAFE)


def unquote_text(s: str) -> str:
    return urllib.parse.unquote(s, errors="strict")


class _TextParam(Param):
    """A string parameter (``default`` None = not given)."""

    def __init__(self, name: str, allow_empty: bool = True):
        super().__init__(name, str, None)
        self.allow_empty = allow_empty

    @property
    def range_text(self) -> str:  # pragma: no cover - not a number
        return "text"

    def check(self, stage: str, value: Any) -> Any:
        if not isinstance(value, str):
            raise InvalidSamplerSpec(f"{stage}: {self.name} must be a string, got {value!r}")
        if not value and not self.allow_empty:
            raise InvalidSamplerSpec(f"{stage}: {self.name} must not be empty")
        return value


def _opt(name: str, kind: type = float, lo: float = 0.0) -> Param:
    """A numeric parameter that may be left unset (``default`` None)."""
    return Param(name, kind, None, lo, INF)


# ---------------------------------------------------------------------------------------
# attention metrics as the decode loop hands them over


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


class _Attn:
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


# ---------------------------------------------------------------------------------------
# the stage


class Entropix(Dist):
    """The Entropix sampler (module doc): classify the step into a quadrant from the model's
    entropy / varentropy and act (argmax, clarify, explore, resample, adaptive best-of-n).

    ``Entropix(low_ent=None, med_ent=None, high_ent=None, low_vent=None, high_vent=None,
    t=0.666, k=27, p=0.9, minp=0.03, best_of=5, clarify=None, clarify_id=None,
    thresholds=None, seed=None)``. Thresholds left None come from the ``thresholds`` file,
    else the model family at ``bind``, else ``GENERIC``.
    """

    name = "entropix"
    selects = True
    stochastic = True
    main = None
    params = (
        _opt("low_ent"), _opt("med_ent"), _opt("high_ent"), _opt("low_vent"), _opt("high_vent"),
        Param("t", float, BASE_T, 0.0, INF, lo_open=True),
        Param("k", int, BASE_K, 1),
        Param("p", float, BASE_P, 0.0, 1.0, lo_open=True),
        Param("minp", float, BASE_MINP, 0.0, 1.0, hi_open=True),
        Param("best_of", int, BEST_OF, 1, 64),
        _TextParam("clarify"),
        _opt("clarify_id", int),
        _TextParam("thresholds", allow_empty=False),
        Param("fork", int, 0, 0, 16),
        Param("fork_depth", int, FORK_DEPTH, 1, 64),
        Param("fork_entropy", float, FORK_ENTROPY, 0.0, INF),
    )

    def __init__(self, low_ent: float | None = None, med_ent: float | None = None,
                 high_ent: float | None = None, low_vent: float | None = None,
                 high_vent: float | None = None, t: float = BASE_T, k: int = BASE_K,
                 p: float = BASE_P, minp: float = BASE_MINP, best_of: int = BEST_OF,
                 clarify: str | None = None, clarify_id: int | None = None,
                 thresholds: str | os.PathLike | None = None, fork: int = 0,
                 fork_depth: int = FORK_DEPTH, fork_entropy: float = FORK_ENTROPY,
                 seed: int | None = None):
        if thresholds is not None:
            thresholds = os.fspath(thresholds)
        self._set(low_ent=low_ent, med_ent=med_ent, high_ent=high_ent, low_vent=low_vent,
                  high_vent=high_vent, t=t, k=k, p=p, minp=minp, best_of=best_of,
                  clarify=clarify, clarify_id=clarify_id, thresholds=thresholds, fork=fork,
                  fork_depth=fork_depth, fork_entropy=fork_entropy)
        if clarify is not None and clarify_id is not None:
            raise InvalidSamplerSpec("entropix: give clarify (a text) or clarify_id (a token "
                                     "id), not both")
        self._file: Thresholds | None = None
        if self.thresholds is not None:
            try:
                self._file = Thresholds.load(self.thresholds)
            except UsageError as e:
                raise InvalidSamplerSpec(f"entropix: {e.args[0]}", hint=e.hint) from None
        explicit = {n: getattr(self, n) for n in THRESHOLD_NAMES}
        err = order_error(explicit)
        if err:
            raise InvalidSamplerSpec(err)
        Dist.__init__(self, seed)
        self.architecture: str | None = None
        self._family: Thresholds | None = None
        self._clarify_tokens: tuple[int, ...] = (
            (int(clarify_id),) if clarify_id is not None else ())
        self._bound_to: tuple[str, int] | None = None
        self._resolve()
        self._clarify_pos = 0
        self._last: dict[str, Any] = {}

    def _set(self, **values: Any) -> None:
        for prm in self.params:
            v = values[prm.name]
            # None means "not given" only for the optional ones (default None)
            unset = v is None and prm.default is None
            setattr(self, prm.name, None if unset else prm.check(self.name, v))

    # -- spec ------------------------------------------------------------------------------
    @classmethod
    def convert(cls, key: str, raw: str) -> Any:
        prm = cls.param(key)
        if isinstance(prm, _TextParam):
            try:
                text = unquote_text(raw)
            except UnicodeDecodeError:
                raise InvalidSamplerSpec(
                    f"entropix: {key}: bad percent-encoding in '{raw}'") from None
            return prm.check(cls.name, text)
        return super().convert(key, raw)

    def spec(self) -> str:
        shown = []
        for prm in self.params:
            v = getattr(self, prm.name)
            if v is None or v == prm.default:
                continue
            shown.append(f"{prm.name}={quote_text(v) if isinstance(v, str) else format_value(v)}")
        return self.name + (":" + ",".join(shown) if shown else "")

    # -- thresholds ------------------------------------------------------------------------
    def _resolve(self) -> None:
        if self._file is not None:
            base, src = self._file, f"file {self.thresholds}"
        elif self._family is not None:
            base, src = self._family, f"family {self.architecture}"
        else:
            base, src = GENERIC, "generic"
        given = {n: getattr(self, n) for n in THRESHOLD_NAMES if getattr(self, n) is not None}
        self._th_error: str | None = None
        if given:
            src = "params + " + src
            try:
                base = base.replace(**given, source=src)
            except ValueError as e:
                # a partial override that does not fit these defaults: an error when used
                # (the family known at bind may fit it), at once for a file
                self._th_error = f"entropix: {e} (thresholds from {src})"
                if self._file is not None:
                    raise InvalidSamplerSpec(self._th_error) from None
        self._th = base
        self.thresholds_source = src

    @property
    def resolved_thresholds(self) -> Thresholds:
        """The thresholds in use (after ``bind``: with the model family's defaults)."""
        if self._th_error is not None:
            raise InvalidSamplerSpec(self._th_error)
        return self._th

    @property
    def clarify_tokens(self) -> tuple[int, ...]:
        """The token ids inserted by the clarify action (empty: none, or not bound yet)."""
        return self._clarify_tokens

    # -- binding ---------------------------------------------------------------------------
    def bind(self, model: Any) -> "Entropix":
        """Adapt to a model (``Model`` or ``Engine``): family thresholds from
        ``general.architecture`` and the clarify text resolved through its tokenizer."""
        engine = getattr(model, "engine", model)
        key = (str(getattr(engine, "path", "")), id(engine))
        if self._bound_to == key:
            return self
        arch = engine.meta("general.architecture") if hasattr(engine, "meta") else None
        self.architecture = arch
        self._family = thresholds_for(arch)
        self._resolve()
        if self._th_error is not None:
            raise InvalidSamplerSpec(self._th_error)
        n_vocab = int(engine.n_vocab)
        if self.clarify_id is not None:
            if self.clarify_id >= n_vocab:
                raise InvalidSamplerSpec(f"entropix: clarify_id={self.clarify_id} is outside the "
                                         f"vocabulary (n_vocab={n_vocab})")
            toks: tuple[int, ...] = (self.clarify_id,)
        elif self.clarify == "":
            toks = ()
        else:
            toks = self._tokenize_clarify(engine)
        self._clarify_tokens = toks
        self._bound_to = key
        return self

    def _tokenize_clarify(self, engine: Any) -> tuple[int, ...]:
        def tok(text: str) -> tuple[int, ...]:
            return tuple(int(x) for x in engine.tokenize(text, add_special=False,
                                                          parse_special=False))

        if self.clarify is not None:
            toks = tok(self.clarify)
            if not toks:
                raise InvalidSamplerSpec(f"entropix: clarify={self.clarify!r} gives no tokens "
                                         "with this model's tokenizer")
            return toks
        for text in DEFAULT_CLARIFY_TEXTS:
            toks = tok(text)
            if len(toks) == 1:
                return toks
        return tok(DEFAULT_CLARIFY_TEXTS[0])

    # -- state -----------------------------------------------------------------------------
    def reset(self, seed: int | None = None) -> None:
        """Start a new generation: reseed (as ``Dist``) and allow one clarify insertion."""
        Dist.reset(self, seed)
        self._clarify_pos = 0
        self._last = {}

    @property
    def clarified(self) -> bool:
        """Whether this generation's clarify insertion has been made."""
        return self._clarify_pos > 0

    # -- decisions -------------------------------------------------------------------------
    def classify(self, entropy: float, varentropy: float) -> str:
        """The action for a step with this entropy (nats) and varentropy (nats²)."""
        th = self.resolved_thresholds
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

    def _decide(self, cands: Candidates) -> tuple[str, dict[str, Any], tuple]:
        """(action, record, sampling parameters). Parameters: ``("force", token)``,
        ``("argmax",)`` or ``("sample", T, k, p, min_p, draws)``."""
        h, v = float(cands.entropy), float(cands.varentropy)
        action = self.classify(h, v)
        att = _Attn(getattr(cands, "attention", None))
        rec: dict[str, Any] = {"action": action, "quadrant": QUADRANTS[action]}
        toks = self._clarify_tokens
        pending = 0 < self._clarify_pos < len(toks)
        if pending or (action == "clarify" and self._clarify_pos == 0 and toks):
            tok = toks[self._clarify_pos]
            rec.update(action="clarify", temperature=0.0, top_k=1, top_p=1.0, min_p=0.0,
                       best_of=0, clarify_token=tok, inserted=True)
            att.record(rec)
            return "clarify", rec, ("force", tok)
        t, k, p, mp, draws = self.t, self.k, self.p, self.minp, 1
        if action == "argmax":
            rec.update(temperature=0.0, top_k=1, top_p=1.0, min_p=0.0, best_of=0)
            att.record(rec)
            return action, rec, ("argmax",)
        if action == "clarify":
            t = min(CLARIFY_T_MAX, t * (CLARIFY_T_GAIN + CLARIFY_ATTN_H * att.h))
        elif action == "explore":
            d = att.d
            t = min(EXPLORE_T_MAX, t * (EXPLORE_T_GAIN + EXPLORE_T_D * d))
            k = max(EXPLORE_K_MIN, int(round(k * (1.0 + EXPLORE_K_D * d))))
        elif action == "resample":
            t = min(RESAMPLE_T_MAX, max(RESAMPLE_T_MIN,
                                        t * (RESAMPLE_T_GAIN + RESAMPLE_ATTN_V * att.v)))
            p = max(RESAMPLE_P_MIN, p - RESAMPLE_P_CUT - RESAMPLE_ATTN_H * att.h)
        else:  # adaptive
            th = self._th
            u = 0.5 * (h / max(th.high_ent, 1e-9) + v / max(th.high_vent, 1e-9))
            d = att.d
            t = min(ADAPTIVE_T_MAX, t * (1.0 + ADAPTIVE_T_U * u + ADAPTIVE_T_ATTN_H * att.h_rel
                                         + ADAPTIVE_T_D * d))
            p = min(ADAPTIVE_P_MAX, max(ADAPTIVE_P_MIN, p * (1.0 + ADAPTIVE_P_ATTN_V * att.v)))
            k = int(min(max(ADAPTIVE_K_MAX, self.k),
                        max(1, round(k * (1.0 + ADAPTIVE_K_I * att.i + ADAPTIVE_K_D * d)))))
            mp = min(ADAPTIVE_MINP_MAX, max(ADAPTIVE_MINP_MIN, mp * (1.0 - ADAPTIVE_MINP_U * u)))
            draws = self.best_of
            rec["uncertainty"] = u
        rec.update(temperature=t, top_k=k, top_p=p, min_p=mp, best_of=draws)
        att.record(rec)
        return action, rec, ("sample", t, k, p, mp, draws)

    @staticmethod
    def _truncate(cands: Candidates, t: float, k: int, p: float, mp: float) -> None:
        """top-k, then T on the survivors, then top-p (descending order) and min-p at T."""
        cands.n = _k.top_k(cands.ids, cands.logits, cands.n, k)
        cands.sorted = True
        cands.touch()
        if t < TINY_TEMPERATURE:  # pragma: no cover - T is always ≥ 0.8 t > 0 here
            _keep_argmax(cands)
            return
        if t != 1.0:
            _k.scale_temperature(cands.logits, cands.n, t)
        if p < 1.0:
            cands.n = _k.top_p(cands.ids, cands.logits, cands.n, p, 1, True)
        if mp > 0.0:
            cands.n = _k.min_p(cands.ids, cands.logits, cands.n, mp, 1)

    def _check_clarify(self, cands: Candidates, tok: int) -> None:
        if not 0 <= tok < cands.n_vocab:
            raise InvalidSamplerSpec(f"entropix: clarify token {tok} is outside the vocabulary "
                                     f"(n_vocab={cands.n_vocab})")

    @staticmethod
    def _force(cands: Candidates, tok: int) -> None:
        cands.ids[0] = tok
        cands.logits[0] = 0.0
        cands.n = 1
        cands.sorted = True
        cands.touch()
        cands.selected = 0

    # -- the Sampler interface -------------------------------------------------------------
    def apply(self, cands: Candidates) -> None:
        us = self._rng.random(self.best_of)
        _require_candidates(self.name, cands)
        action, rec, how = self._decide(cands)
        self._last = rec
        if how[0] == "force":
            self._check_clarify(cands, how[1])
            self._force(cands, how[1])
            self._clarify_pos += 1
            return
        if how[0] == "argmax":
            _keep_argmax(cands, self.name)
            cands.selected = 0
            return
        _, t, k, p, mp, draws = how
        self._truncate(cands, t, k, p, mp)
        n = cands.n
        best = int(_k.sample_categorical(cands.logits, n, float(us[0])))
        for j in range(1, draws):
            # the set is sorted by logit, descending: the smallest index has the highest
            # logprob (log Z is common to all samples)
            i = int(_k.sample_categorical(cands.logits, n, float(us[j])))
            if i < best:
                best = i
        cands.selected = best
        if action == "explore" and self.fork > 1 and n > 1:
            # Forking paths: propose the sampled token and the most probable others; the
            # decode loop rolls each out on its own KV sequence and picks (branching.py).
            others = [int(cands.ids[j]) for j in range(min(n, self.fork + 1)) if j != best]
            cands.fork = Fork(tokens=(int(cands.ids[best]), *others[: self.fork - 1]),
                              depth=self.fork_depth, entropy_weight=self.fork_entropy)

    @property
    def sequences_needed(self) -> int:
        """KV sequences the context must hold: 1, or 1 + ``fork`` when branching is on."""
        return 1 + self.fork if self.fork > 1 else 1

    def distribution(self, cands: Candidates) -> np.ndarray:
        """The probabilities with which ``apply`` would choose among the candidates it keeps
        (``cands`` is truncated to them; float64, Σ = 1, aligned with ``cands.ids[:n]``).
        Draws nothing; an inserted clarify token counts as made (one-hot on it)."""
        _require_candidates(self.name, cands)
        action, rec, how = self._decide(cands)
        self._last = rec
        if how[0] == "force":
            self._check_clarify(cands, how[1])
            self._force(cands, how[1])
            cands.selected = -1
            self._clarify_pos += 1
            return np.ones(1)
        if how[0] == "argmax":
            _keep_argmax(cands, self.name)
            return np.ones(1)
        _, t, k, p, mp, draws = how
        self._truncate(cands, t, k, p, mp)
        z = cands.logits[: cands.n].astype(np.float64)
        q = np.exp(z - z.max())
        q /= q.sum()
        if draws == 1:
            return q
        # P(the smallest of `draws` iid indices is i) = S_{i-1}^n − S_i^n, S = survival
        surv = np.clip(1.0 - np.cumsum(q), 0.0, 1.0)
        prev = np.concatenate(([1.0], surv[:-1]))
        out = prev ** draws - surv ** draws
        out[-1] = prev[-1] ** draws
        return out / out.sum()

    def info(self) -> dict[str, Any]:
        return dict(self._last)


register_stage(Entropix)

PRESETS_EXTRA: dict[str, str] = {
    "entropix": "entropix",
}


def _main(argv: list[str] | None = None) -> int:  # pragma: no cover - a maintenance tool
    """Print calibrated thresholds for the given models (default: the two test models)."""
    import sys

    import entropic_local as el

    names = (argv if argv is not None else sys.argv[1:]) or ["smollm2-135m", "gemma3-270m"]
    for name in names:
        m = el.load(name, n_ctx=2048)
        th = calibrate(m, CALIBRATION_TEXT)
        vals = ", ".join(f"{n}={getattr(th, n):.2f}" for n in THRESHOLD_NAMES)
        print(f"{name} ({th.architecture}, {th.n_positions} positions): {vals}")
        m.close()
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(_main())
