"""``SamplerChain``: stages run in order; itself a ``Sampler``.

A chain always ends in a *selecting* stage (``greedy``, ``dist``): one that does not gets a
``dist`` appended when it is built (``len(SamplerChain.parse("top_k=40")) == 2``). That
final ``dist`` is implied, so the canonical spec leaves it out: the chain prints as
``top_k=40`` (and ``top_k=40,dist`` parses to the same chain). ``apply`` runs the stages in order and stops as soon as one has selected
a token; should none have (a custom selecting stage that declined), the chain selects by
``dist`` itself, from a stream seeded like the chain's.

The generation loop, per token::

    cands.reset(raw_logits, stats)     # full vocabulary, stats of the raw distribution
    chain.apply(cands)
    token = cands.selected_token       # cands.n = size of the kept set at selection time
    chain.accept(token)

``reset(seed)`` starts a new sequence: penalty history cleared, random stages reseeded
(``seed`` reports the seed in use). ``clone()`` gives an independent copy with the same
state (per-sequence chains in batched decoding). ``str(chain)`` / ``chain.spec()`` is the
canonical spec (see ``samplers/spec.py``); ``SamplerChain.parse(str(chain)) == chain``.

Presets (``PRESETS``):

* ``greedy``: ``greedy``.
* ``llama``: ``top_k=40,top_p=0.95,min_p=0.05,temp=0.8`` (+ ``dist``): llama.cpp's default
  chain (``common_params_sampling``) and llama-cpp-python's ``create_completion`` defaults.
  Left out because they are off by default there: penalties (repeat 1.0, freq 0, presence 0,
  last_n 64), DRY (multiplier 0), top-nσ (-1), typical-p (1.0), XTC (probability 0), dynamic
  temperature (range 0), mirostat (0), logit bias (none).

A chain is also a llama-cpp-python logits processor: ``LogitsProcessorList([chain])`` (see
``samplers/processor.py``).
"""

from __future__ import annotations

from typing import Any, Iterable, Iterator

import numpy as np

from ..errors import InvalidSamplerSpec
from .base import Candidates, Sampler
from .spec import format_spec, parse_sampler, structure_error
from .stages import (
    Dist, DynTemp, MinP, Penalties, Stage, TopK, TopNSigma, TopP, TypicalP, Temp,
)

__all__ = ["SamplerChain", "PRESETS", "CANONICAL_ORDER"]

PRESETS: dict[str, str] = {
    "greedy": "greedy",
    "llama": "top_k=40,top_p=0.95,min_p=0.05,temp=0.8",
}

# llama.cpp's sampler order (common/common.h), with logit_bias first and the selector last;
# ``with_params`` inserts stages by it.
CANONICAL_ORDER: dict[str, int] = {
    "logit_bias": 0, "penalties": 1, "top_n_sigma": 2, "top_k": 3, "typical_p": 4,
    "top_p": 5, "min_p": 6, "temp": 7, "dyn_temp": 7, "free_energy": 7, "thermostat": 7,
}
_SELECTOR_RANK = 100


def _reports_info(stage: Sampler) -> bool:
    fn = getattr(type(stage), "info", None)
    return callable(fn) and fn is not Stage.info


def _rank(stage: Sampler) -> int | None:
    if getattr(stage, "selects", False):
        return _SELECTOR_RANK
    return CANONICAL_ORDER.get(stage.name)


class SamplerChain(Sampler):
    """An ordered list of stages that ends in a selecting stage.

    ``SamplerChain(stages, seed=None)``: the stages are used as given (not copied).
    Structural rules, checked here and by ``parse``: each stage name at most once, a
    selecting stage only last, not both ``temp`` and ``dyn_temp``. ``seed``, when given,
    resets the chain with it.
    """

    name = "chain"

    def __init__(self, stages: Iterable[Sampler] = (), seed: int | None = None):
        stages = list(stages)
        for s in stages:
            if not isinstance(s, Sampler) or isinstance(s, SamplerChain):
                raise InvalidSamplerSpec(
                    f"a chain's stages must be single samplers, got {type(s).__name__}")
        err = structure_error(stages, lambda i: f" (stage {i + 1} of {format_spec(stages)!r})")
        if err is not None:
            raise InvalidSamplerSpec(err)
        if not stages or not getattr(stages[-1], "selects", False):
            stages.append(Dist())
        self._stages: tuple[Sampler, ...] = tuple(stages)
        seeds = [s.seed for s in stages if getattr(s, "stochastic", False) and hasattr(s, "seed")]
        self._seed: int | None = seeds[-1] if seeds else None
        self._fallback = Dist(self._seed)
        self._info_stages = tuple(s for s in stages if _reports_info(s))
        self._processor: Any = None
        if seed is not None:
            self.reset(seed)

    # -- construction ---------------------------------------------------------------------
    @classmethod
    def parse(cls, spec: "str | SamplerChain", seed: int | None = None) -> "SamplerChain":
        """Parse a spec string or preset name (see ``samplers/spec.py``)."""
        return parse_sampler(spec, seed=seed)

    @property
    def stages(self) -> tuple[Sampler, ...]:
        return self._stages

    def __iter__(self) -> Iterator[Sampler]:
        return iter(self._stages)

    def __len__(self) -> int:
        return len(self._stages)

    def __getitem__(self, name: str) -> Sampler:
        """The stage named ``name`` (KeyError if absent)."""
        for s in self._stages:
            if s.name == name:
                return s
        raise KeyError(name)

    def __contains__(self, name: object) -> bool:
        return any(s.name == name for s in self._stages)

    # -- the Sampler interface ------------------------------------------------------------
    def apply(self, cands: Candidates) -> None:
        try:
            for s in self._stages:
                s.apply(cands)
                if cands.selected >= 0:
                    return
            self._fallback.apply(cands)
        except ValueError as e:
            if "all logits are masked" not in str(e):
                raise
            # the model's logits had a live token (Candidates.reset checks): a stage masked
            # every remaining candidate: logit_bias banned what the truncation kept, or a
            # temperature far below 1 overflowed huge negative logits to -inf in float32
            raise InvalidSamplerSpec(
                f"the sampler chain '{self}' left no token to choose: every remaining candidate "
                "is masked (-inf)", hint="ban tokens with logit_bias before truncating stages; "
                "a temperature far below 1 can overflow huge logits") from None

    def accept(self, token: int) -> None:
        for s in self._stages:
            s.accept(token)

    def reset(self, seed: int | None = None) -> None:
        """Clear every stage's history and reseed the random ones: with ``seed`` when given,
        else each from the seed it already has (the same stream again)."""
        for s in self._stages:
            s.reset(seed)
        self._fallback.reset(seed)
        if seed is not None:
            self._seed = int(seed)
        if self._processor is not None:
            self._processor.forget()

    @property
    def seed(self) -> int | None:
        """The seed the random stages use now: the one given to the last ``reset(seed)`` or
        the chain's construction, else the one the ``dist`` stage picked; None when no
        stage draws random numbers and no seed was ever given."""
        return self._seed

    def clone(self) -> "SamplerChain":
        new = object.__new__(SamplerChain)
        new._stages = tuple(s.clone() for s in self._stages)
        new._seed = self._seed
        new._fallback = self._fallback.clone()
        new._info_stages = tuple(s for s in new._stages if _reports_info(s))
        new._processor = None
        if self._processor is not None:
            new._processor = self._processor.clone_for(new)
        return new

    def spec(self) -> str:
        """The canonical spec; a final ``dist`` is implied, so it is left out unless it is
        the whole chain (``top_k=40``, ``greedy``, ``dist``) or the rest would read as a
        preset of another meaning (``free_energy,dist``: the stage at its defaults)."""
        stages = self._stages
        if len(stages) > 1 and type(stages[-1]) is Dist:
            stages = stages[:-1]
        text = format_spec(stages)
        if stages is not self._stages and PRESETS.get(text, text) != text:
            # the bare name would read back as a preset of another meaning (the stage
            # free_energy at its defaults is not the preset free_energy): keep the dist
            text += ",dist"
        return text

    def __str__(self) -> str:
        return self.spec()

    def step_info(self) -> dict[str, Any]:
        """What the stages decided on the last ``apply`` (e.g. ``temperature`` of
        ``dyn_temp``), merged into one dict; empty for plain chains."""
        out: dict[str, Any] = {}
        for s in self._info_stages:
            d = s.info()
            if d:
                out.update(d)
        return out

    # -- llama-cpp-python logits processor ------------------------------------------------
    def __call__(self, input_ids: np.ndarray, scores: np.ndarray) -> np.ndarray:
        """Act as a llama-cpp-python ``logits_processor`` (see ``samplers/processor.py``)."""
        if self._processor is None:
            from .processor import ChainLogitsProcessor

            self._processor = ChainLogitsProcessor(self)
        return self._processor(input_ids, scores)

    # -- overrides (CLI flags) ------------------------------------------------------------
    def with_params(
        self,
        temp: float | None = None,
        top_k: int | None = None,
        top_p: float | None = None,
        min_p: float | None = None,
        repeat_penalty: float | None = None,
        *,
        typical_p: float | None = None,
        top_n_sigma: float | None = None,
        frequency_penalty: float | None = None,
        presence_penalty: float | None = None,
        penalty_last_n: int | None = None,
        dynatemp_range: float | None = None,
        dynatemp_exponent: float | None = None,
    ) -> "SamplerChain":
        """A new chain with the given llama.cpp-style parameters overridden (None: keep).

        Each value replaces that parameter in the stage that has it; a missing stage is
        inserted in llama.cpp's order (logit_bias, penalties, top_n_sigma, top_k, typical_p,
        top_p, min_p, temp/dyn_temp, then the selector): before the first stage that comes
        later in that order. Values that llama.cpp documents as "off" remove the stage (or
        do not insert it): ``top_k <= 0``, ``top_p >= 1`` (``== 1``), ``typical_p == 1``,
        ``min_p == 0``, ``top_n_sigma <= 0``, penalties with ``repeat_penalty == 1``,
        ``frequency_penalty == 0`` and ``presence_penalty == 0`` or ``penalty_last_n == 0``.
        ``temp`` sets ``temp``'s t, or ``dyn_temp``'s base when the chain has that;
        ``dynatemp_range``/``dynatemp_exponent`` set ``dyn_temp``'s delta/exponent, turning
        ``temp`` into ``dyn_temp`` in place (base from ``temp``, else 1.0); the temperature
        stage ends up ``temp`` whenever its range (delta) is 0. The selecting stage is never changed: ``greedy`` stays greedy
        whatever the temperature. Out-of-range values raise ``InvalidSamplerSpec`` from the
        stage. The other stages are cloned, history included; the seed is kept.

        Adaptive stages with a temperature of their own. When the chain has no ``temp`` or
        ``dyn_temp`` stage, a ``temp > 0`` (and no dynatemp value) sets that stage's ``t``
        instead of inserting a ``temp`` stage that would compound with it:
        ``aes:t`` and ``entmax:t`` (they sample ``entmax_α(z/T)``: the same T a ``temp``
        stage would apply, so ``--sampler aes --temp 0.7`` is ``aes:t=0.7``),
        ``entropix:t`` (the base temperature, 0.666 by default, that each action scales;
        argmax steps stay greedy) and ``free_energy:t`` in modes ``window`` and ``budget``
        (the sampling temperature; the budget's kept set is taken at that T). A thermostat
        (``thermostat``, ``free_energy:mode=thermostat``) chooses T per step to hold the
        kept entropy at ``target``: its ``t`` is only Newton's starting point, and a fixed
        temperature after it would undo the target, so ``temp > 0`` there raises
        ``InvalidSamplerSpec`` (change ``target``, ``t_min`` or ``t_max`` instead). Two such
        stages in one chain (``free_energy,aes``) are ambiguous and raise too. ``temp <= 0``
        keeps llama.cpp's meaning, greedy, everywhere: a ``temp`` stage is inserted before
        the selector as for any chain.
        """
        stages = [s.clone() for s in self._stages]

        def find(name: str) -> int | None:
            for i, s in enumerate(stages):
                if s.name == name:
                    return i
            return None

        def put(stage: Sampler | None, name: str, also: str | None = None) -> None:
            i = find(name)
            if i is None and also is not None:
                i = find(also)
            if i is not None:
                if stage is None:
                    del stages[i]
                else:
                    stages[i] = stage
                return
            if stage is None:
                return
            r = _rank(stage)
            for j, s in enumerate(stages):
                rs = _rank(s)
                if rs is not None and r is not None and rs > r:
                    stages.insert(j, stage)
                    return
            stages.insert(len(stages) - 1, stage)  # pragma: no cover - a selector is last

        def current(name: str, param: str, default: Any) -> Any:
            i = find(name)
            return getattr(stages[i], param) if i is not None else default

        def carry(old: Sampler | None, new: Penalties) -> Penalties:
            # keep the penalty history (its last last_n tokens) when parameters change
            if isinstance(old, Penalties):
                for t in old.window:
                    new.accept(t)
            return new

        if top_n_sigma is not None:
            put(TopNSigma(top_n_sigma) if top_n_sigma > 0 else None, "top_n_sigma")
        if top_k is not None:
            put(TopK(top_k) if top_k > 0 else None, "top_k")
        if typical_p is not None:
            mk = current("typical_p", "min_keep", 1)
            put(None if typical_p == 1.0 else TypicalP(typical_p, mk), "typical_p")
        if top_p is not None:
            mk = current("top_p", "min_keep", 1)
            put(None if top_p == 1.0 else TopP(top_p, mk), "top_p")
        if min_p is not None:
            mk = current("min_p", "min_keep", 1)
            put(None if min_p == 0.0 else MinP(min_p, mk), "min_p")

        pen = (repeat_penalty, frequency_penalty, presence_penalty, penalty_last_n)
        if any(v is not None for v in pen):
            i = find("penalties")
            old = stages[i] if i is not None else None
            vals = {
                "repeat": current("penalties", "repeat", 1.0),
                "freq": current("penalties", "freq", 0.0),
                "presence": current("penalties", "presence", 0.0),
                "last_n": current("penalties", "last_n", 64),
            }
            for key, v in zip(("repeat", "freq", "presence", "last_n"), pen):
                if v is not None:
                    vals[key] = v
            new = Penalties(**vals)
            put(carry(old, new) if new.active else None, "penalties")

        if (temp is not None and temp > 0 and dynatemp_range is None
                and dynatemp_exponent is None and find("temp") is None
                and find("dyn_temp") is None):
            from .stages import format_value

            own = [s for s in stages
                   if s.name in ("free_energy", "thermostat", "entmax", "aes", "entropix")]
            for s in own:
                if getattr(s, "mode", None) == "thermostat":
                    raise InvalidSamplerSpec(
                        f"{s.name}: temp={format_value(temp)} does not apply: the stage "
                        f"chooses the temperature per step to hold the kept entropy at "
                        f"target={format_value(s.target)} nats",  # type: ignore[attr-defined]
                        hint=f"change {s.name}'s target, t_min or t_max instead, "
                             "or use temp 0 for greedy")
            if len(own) > 1:
                raise InvalidSamplerSpec(
                    f"temp={format_value(temp)} is ambiguous in '{self}': "
                    + " and ".join(s.name for s in own) + " each have a temperature t",
                    hint=f"set one in the spec, e.g. {own[-1].name}:t={format_value(temp)}")
            if own:
                s = own[0]  # a clone: setting t keeps its seed, random stream and state
                s.t = type(s).param("t").check(s.name, temp)  # type: ignore[attr-defined]
                temp = None
        if temp is not None or dynatemp_range is not None or dynatemp_exponent is not None:
            ti, di = find("temp"), find("dyn_temp")
            if di is not None:
                d = stages[di]
                base, delta, exponent = d.base, d.delta, d.exponent  # type: ignore[attr-defined]
            else:
                base = stages[ti].t if ti is not None else 1.0  # type: ignore[attr-defined]
                delta, exponent = 0.0, 1.0
            if temp is not None:
                base = temp
            if dynatemp_range is not None:
                delta = dynatemp_range
            if dynatemp_exponent is not None:
                exponent = dynatemp_exponent
            if delta != 0.0:
                put(DynTemp(base, delta, exponent), "dyn_temp", also="temp")
            else:
                put(Temp(base), "temp", also="dyn_temp")

        chain = SamplerChain(stages)
        chain._seed = self._seed
        return chain
