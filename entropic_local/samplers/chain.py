"""``SamplerChain``: stages run in order; itself a ``Sampler``.

A chain always ends in a *selecting* stage (``greedy``, ``dist``): one that does not gets a
``dist`` appended when it is built (``len(SamplerChain.parse("top_k=40")) == 2``). That
final ``dist`` is implied, so the canonical spec leaves it out: the chain prints as
``top_k=40`` (and ``top_k=40,dist`` parses to the same chain). ``apply`` runs the stages in
order and stops as soon as one has selected a token; should none have (a custom selecting stage that declined), the chain selects by
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

A whole spec may be a preset name (``samplers/presets.py``). ``with_params`` changes a chain
the way llama.cpp's flags do (``--temp 0.7 --top-k 0``); ``SamplerChain.from_options(spec,
**flags)`` is both at once, as the command line, chat, batch lines and requests use it.

A chain is also a llama-cpp-python logits processor: ``LogitsProcessorList([chain])`` (see
``samplers/processor.py``).
"""

from __future__ import annotations

from typing import Any, Iterable, Iterator

import numpy as np

from ..errors import InvalidSamplerSpec
from .base import Sampler, reports_info
from .candidates import Candidates
from .params import format_value
from .presets import PRESETS
from .processor import ChainLogitsProcessor
from .registry import flag_table, stages as registered
from .spec import format_spec, parse_stages, slot_of, structure_error
from .stage import Stage
from .stages.select import Dist

__all__ = ["SamplerChain", "parse_sampler"]

SELECTOR_RANK = 100   # where a selecting stage stands in llama.cpp's order: last


def _rank(stage: Sampler) -> float | None:
    if stage.selects:
        return SELECTOR_RANK
    return stage.order if isinstance(stage, Stage) else None


def parse_sampler(spec: "str | SamplerChain", seed: int | None = None) -> "SamplerChain":
    """A ``SamplerChain`` from a spec string or preset name (grammar: ``samplers/spec.py``).

    A chain that does not end in a selecting stage gets ``dist`` appended. ``seed``, when
    given, resets the chain with it. A ``SamplerChain`` passed in is returned as it is
    (reset with ``seed`` when given).
    """
    if isinstance(spec, SamplerChain):
        if seed is not None:
            spec.reset(seed)
        return spec
    if isinstance(spec, str) and spec.strip() in PRESETS:
        spec = PRESETS[spec.strip()]
    return SamplerChain(parse_stages(spec), seed=seed)


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
        if not stages or not stages[-1].selects:
            stages.append(Dist())
        self._stages: tuple[Sampler, ...] = tuple(stages)
        seeds = [s.seed for s in stages if s.stochastic and s.seed is not None]
        self._seed: int | None = seeds[-1] if seeds else None
        self._fallback = Dist(self._seed)
        self._info_stages = tuple(s for s in stages if reports_info(s))
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

    @classmethod
    def from_options(cls, sampler: "str | SamplerChain" = "llama", seed: int | None = None,
                     **flags: Any) -> "SamplerChain":
        """``parse(sampler)`` with llama.cpp's flags applied (``with_params``); flags that are
        None are not given."""
        chain = cls.parse(sampler, seed=seed)
        given = {k: v for k, v in flags.items() if v is not None}
        return chain.with_params(**given) if given else chain

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
    @property
    def leading_top_k(self) -> int:
        """k when the chain starts with ``top_k=k`` (k > 0), else 0: the decode loop then
        loads the candidates with ``Candidates.reset_top_k`` and applies the rest
        (``apply(cands, start=1)``)."""
        st = self._stages
        if st and st[0].name == "top_k" and type(st[0]).__name__ == "TopK":
            k = int(getattr(st[0], "k", 0))
            return k if k > 0 else 0
        return 0

    def apply(self, cands: Candidates, start: int = 0) -> None:
        try:
            for s in self._stages[start:] if start else self._stages:
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
        new._info_stages = tuple(s for s in new._stages if reports_info(s))
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
            self._processor = ChainLogitsProcessor(self)
        return self._processor(input_ids, scores)

    # -- llama.cpp's flags -------------------------------------------------------------------
    def with_params(self, **flags: Any) -> "SamplerChain":
        """A new chain with llama.cpp's sampling flags applied (None: not given).

        The flags are those the stages declare (``samplers/registry.flag_table()``): ``temp``,
        ``top_k``, ``top_p``, ``min_p``, ``typical_p``, ``top_n_sigma``, ``repeat_penalty``,
        ``frequency_penalty``, ``presence_penalty``, ``penalty_last_n``, ``dynatemp_range``,
        ``dynatemp_exponent`` for the built-in ones. Each sets its parameter in the chain's
        stage of that slot, whose other parameters and history are kept; a missing stage is
        inserted in llama.cpp's order (``Stage.order``: logit_bias, penalties, top_n_sigma,
        top_k, typical_p, top_p, min_p, temp/dyn_temp, then the selector), before the first
        stage that comes later in that order. Values llama.cpp documents as "off" remove
        the stage or do not insert it (``Flag.off``): ``top_k <= 0``, ``top_p == 1``,
        ``typical_p == 1``, ``min_p == 0``, ``top_n_sigma <= 0``; the penalties when
        ``repeat_penalty == 1``, ``frequency_penalty == 0`` and ``presence_penalty == 0``, or
        ``penalty_last_n == 0``. ``temp`` sets ``temp``'s t, or ``dyn_temp``'s base;
        ``dynatemp_range``/``dynatemp_exponent`` turn ``temp`` into ``dyn_temp`` in place
        (base from ``temp``, else 1.0); the temperature stage is ``temp`` whenever its range
        is 0. The selecting stage is never changed: ``greedy`` stays greedy whatever the
        temperature, unless a flag of another selecting stage is given: ``--mirostat 1|2`` makes
        the chain llama.cpp's mirostat chain (logit bias, temperature, mirostat), and
        ``--adaptive-target`` (>= 0) puts ``adaptive_p`` in the selector's place; DRY and XTC
        insert at their places (after the penalties; after min-p). Out-of-range values raise ``InvalidSamplerSpec`` from the stage. The
        other stages are cloned, history included; the seed is kept.

        Stages with a temperature of their own. When the chain has no ``temp`` or
        ``dyn_temp`` stage, a ``temp > 0`` (and no dynatemp value) sets that stage's ``t``
        instead of inserting a ``temp`` stage that would compound with it: ``aes:t`` and
        ``entmax:t`` (they sample ``entmax_α(z/T)``: the same T a ``temp`` stage would
        apply, so ``--sampler aes --temp 0.7`` is ``aes:t=0.7``), ``entropix:t`` (the base
        temperature each action scales; argmax steps stay greedy) and ``free_energy:t`` in
        modes ``window`` and ``budget``. A thermostat (``thermostat``,
        ``free_energy:mode=thermostat``) chooses T per step to hold the kept entropy at
        ``target``, so ``temp > 0`` there raises ``InvalidSamplerSpec`` (change ``target``,
        ``t_min`` or ``t_max`` instead); two such stages in one chain (``free_energy,aes``)
        are ambiguous and raise too. ``temp <= 0`` keeps llama.cpp's meaning, greedy,
        everywhere: a ``temp`` stage is inserted before the selector as for any chain.
        """
        table = flag_table()
        unknown = [k for k in flags if k not in table]
        if unknown:
            raise TypeError(f"with_params() got an unexpected keyword argument {unknown[0]!r} "
                            f"(flags: {', '.join(table)})")
        by_slot: dict[str, dict[str, Any]] = {}
        for key, (flag, cls) in table.items():  # in llama.cpp's order
            if flags.get(key) is not None:
                by_slot.setdefault(cls.slot_name(), {})[key] = flags[key]
        stages = [s.clone() for s in self._stages]
        for slot, values in by_slot.items():
            self._apply_flags(stages, slot, values)
        chain = SamplerChain(stages)
        chain._seed = self._seed
        return chain

    def with_stage_params(self, name: str, **values: Any) -> "SamplerChain":
        """A new chain whose stage ``name`` is rebuilt with parameters ``values`` changed
        (validated as in a spec; its history kept); the other stages cloned; the seed kept."""
        stages: list[Sampler] = []
        for s in self._stages:
            if s.name == name and isinstance(s, Stage):
                new = type(s).from_params({**s.param_values(), **values})
                new.take_state(s)
                stages.append(new)
            else:
                stages.append(s.clone())
        chain = SamplerChain(stages)
        chain._seed = self._seed
        return chain

    def _apply_flags(self, stages: list[Sampler], slot: str, values: dict[str, Any]) -> None:
        """Set one slot's flags in ``stages`` (in place): in the stage of that slot, else in
        a stage that takes them as its own (``Stage.takes_flags``), else a new stage."""
        i = next((j for j, s in enumerate(stages) if slot_of(s) == slot), None)
        if i is None:
            takers = [j for j, s in enumerate(stages)
                      if isinstance(s, Stage) and s.takes_flags(values)]
            if takers:
                taken = [stages[j].take_flags(values) for j in takers]  # type: ignore[union-attr]
                if len(takers) > 1:
                    given = ",".join(f"{k}={format_value(v)}" for k, v in values.items())
                    raise InvalidSamplerSpec(
                        f"{given} is ambiguous in '{self}': "
                        + " and ".join(stages[j].name for j in takers)
                        + f" each have {taken[0].takes_what}",  # type: ignore[attr-defined]
                        hint=f"set one in the spec, e.g. {taken[-1].spec()}")
                stages[takers[0]] = taken[0]
                return
        head = registered()[slot]
        new = head.from_flags(stages[i] if i is not None else None, values)  # type: ignore[attr-defined]
        if i is not None:
            if new is None:
                del stages[i]
            else:
                stages[i] = new
            return
        if new is None:
            return
        if new.selects:  # a selecting stage's flag (--mirostat, --adaptive-target) replaces the selector
            stages[:] = new.chain_from_flags(stages)
            return
        r = _rank(new)
        for j, s in enumerate(stages):
            rs = _rank(s)
            if rs is not None and r is not None and rs > r:
                stages.insert(j, new)
                return
        stages.insert(len(stages) - 1, new)  # pragma: no cover - a selector is last
