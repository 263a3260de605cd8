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

Thresholds
----------
The five quadrant bounds are data per model family (``samplers/entropix_thresholds.py``):
chosen by ``bind`` from ``general.architecture``, ``GENERIC`` when unbound or unknown.
Precedence: thresholds given as stage parameters > the ``thresholds=PATH`` file > the
family (at ``bind``) > ``GENERIC``. A partial override must stay ordered against the
defaults it is combined with; against a file that is checked when the stage is built,
against the family defaults when they are known (an ``InvalidSamplerSpec`` from ``bind``,
or from the first step when unbound).

Binding to a model
------------------
``stage.bind(model_or_engine)`` (an ``entropic_local.Model`` or an ``Engine``; returns the
stage) reads ``general.architecture`` to pick the family thresholds and resolves the clarify
text to token ids through the model's tokenizer (no special tokens added or parsed). The
default text is chosen per tokenizer: ``" ..."`` when it is a single token, else ``"..."``
when that is, else the tokens of ``" ..."`` (SmolLM2: ``" ..."`` = 4563; Gemma 3: 3729).
``clarify=TEXT`` sets the text, ``clarify=`` (empty) disables the insertion (the clarify
action then only samples hot), ``clarify_id=N`` gives a token id directly. The API calls
``bind`` before every generation; binding again to the same model is cheap. Only plain data is kept (no reference to the
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
``%20...``), so ``parse(str(chain)) == chain``. Preset ``entropix``.
"""

from __future__ import annotations

import math
import os
from typing import Any

import numpy as np

from ... import kernels as _k
from ...errors import InvalidSamplerSpec, UsageError
from ..candidates import Candidates, Fork, require_candidates
from ..entropix_thresholds import GENERIC, LN2, THRESHOLD_NAMES, Thresholds, order_error, thresholds_for
from ..params import INF, Param, TextParam
from .select import Dist
from .temperature import TINY_TEMPERATURE, OwnTemperature, keep_argmax

__all__ = ["Entropix", "ACTIONS", "QUADRANTS"]

ACTIONS = ("argmax", "clarify", "explore", "resample", "adaptive")
QUADRANTS = {"argmax": "low-low", "clarify": "high-low", "explore": "low-high",
             "resample": "high-high", "adaptive": "middle"}

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


def _optional(name: str, kind: type = float, lo: float = 0.0) -> Param:
    """A numeric parameter that may be left unset (``default`` None)."""
    return Param(name, kind, None, lo, INF)


class Entropix(OwnTemperature, Dist):
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
        _optional("low_ent"), _optional("med_ent"), _optional("high_ent"), _optional("low_vent"), _optional("high_vent"),
        Param("t", float, BASE_T, 0.0, INF, lo_open=True),
        Param("k", int, BASE_K, 1),
        Param("p", float, BASE_P, 0.0, 1.0, lo_open=True),
        Param("minp", float, BASE_MINP, 0.0, 1.0, hi_open=True),
        Param("best_of", int, BEST_OF, 1, 64),
        TextParam("clarify"),
        _optional("clarify_id", int),
        TextParam("thresholds", allow_empty=False),
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
            keep_argmax(cands)
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
        require_candidates(self.name, cands)
        action, rec, how = self._decide(cands)
        self._last = rec
        if how[0] == "force":
            self._check_clarify(cands, how[1])
            self._force(cands, how[1])
            self._clarify_pos += 1
            return
        if how[0] == "argmax":
            keep_argmax(cands, self.name)
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
            # decode loop rolls each out on its own KV sequence and picks.
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
        require_candidates(self.name, cands)
        action, rec, how = self._decide(cands)
        self._last = rec
        if how[0] == "force":
            self._check_clarify(cands, how[1])
            self._force(cands, how[1])
            cands.selected = -1
            self._clarify_pos += 1
            return np.ones(1)
        if how[0] == "argmax":
            keep_argmax(cands, self.name)
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
