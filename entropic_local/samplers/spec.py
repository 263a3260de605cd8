"""Sampler chain spec strings: parse and format.

Grammar (whitespace around items, names, ``:`` and ``=`` is ignored)::

    spec   := preset | stage ("," stage)*
    stage  := name                          greedy, dist, penalties (all defaults)
            | name "=" value ("," param)*   main parameter: top_k=40, top_p=0.95,min_keep=2
            | name ":" param ("," param)*   penalties:repeat=1.1,freq=0.1,last_n=64
    param  := key "=" value                 continues the current stage as long as key is
                                            not itself a stage name
    value  := int | float | inf | -inf      (float: 0.95, .5, 1e-3, 1.0E+2; text
                                            percent-encoded: samplers/params.py)

A whole spec may be a preset name (``samplers/presets.py``: ``greedy``, ``llama``...). Every
stage name may appear once. A selecting stage (``greedy``, ``dist``) must be the last one; a
chain that does not end in one gets ``dist`` appended (``SamplerChain``). Stages of one slot
are alternatives (``temp`` and ``dyn_temp``): one or the other.

Main parameters: ``top_k=k``, ``top_p=p``, ``min_p=p``, ``typical_p=p``, ``temp=t``,
``top_n_sigma=n``. The other stages have no main parameter: ``penalties:repeat=..,freq=..,
presence=..,last_n=..``, ``dyn_temp:base=..,delta=..,exponent=..``,
``logit_bias:TOKEN=BIAS,...``; ``greedy`` and ``dist`` take none.

Canonical form (``format_spec``, ``str(chain)``; ``parse(str(chain)) == chain`` and
``str(parse(s))`` is idempotent):

* stages joined by ``,`` with no spaces, in chain order; a final ``dist`` is implied and
  left out unless it is the whole chain (``top_k=40`` rather than ``top_k=40,dist``;
  ``greedy`` is printed);
* ``name=value`` for a stage with a main parameter whose other parameters are at their
  defaults (``top_p=0.95``);
* otherwise ``name:p=v,...`` listing the required parameters and the parameters that differ
  from their defaults, in declaration order (``top_p:p=0.95,min_keep=2``,
  ``penalties:repeat=1.1``, ``dyn_temp:base=0.8,delta=0.5``); a stage with nothing to list
  is its bare name (``penalties``, ``logit_bias``, ``dist``);
* ``logit_bias`` lists its token ids ascending;
* ints in decimal; floats by Python's ``repr`` (shortest round trip: ``0.8``, ``1.0``,
  ``1e-05``, ``inf``, ``-inf``), so ``temp=1`` prints as ``temp=1.0``.

Errors raise ``InvalidSamplerSpec`` naming the bad part and its 0-based character position
in the spec, e.g. ``unknown sampler 'topk' at position 9 in 'top_p=0.9,topk=40' (did you
mean 'top_k'? known samplers: ...)``.
"""

from __future__ import annotations

import difflib
from typing import Any, Callable, Iterable, Sequence

from ..errors import InvalidSamplerSpec
from .base import Sampler
from .presets import PRESETS
from .registry import stages as registered
from .stage import Stage

__all__ = ["parse_stages", "format_spec", "structure_error"]

EXAMPLE = "e.g. 'llama', 'greedy' or 'top_k=40,top_p=0.95,temp=0.8'"


def format_spec(stages: Iterable[Sampler]) -> str:
    """The canonical spec of a sequence of stages (each stage prints itself)."""
    return ",".join(s.spec() for s in stages)


def structure_error(stages: Sequence[Sampler],
                    where: Callable[[int], str] = lambda i: "") -> str | None:
    """The first structural problem of a stage list as a message, or None.

    Rules: each stage name at most once; a selecting stage only at the end; at most one
    stage of a slot (``temp`` or ``dyn_temp``). ``where(i)`` locates stage ``i`` in the
    message.
    """
    seen: set[str] = set()
    slots: dict[str, str] = {}
    for i, s in enumerate(stages):
        name = s.name
        if name in seen:
            return f"duplicate stage '{name}'{where(i)} (each stage may appear once)"
        seen.add(name)
        if s.selects and i != len(stages) - 1:
            return (f"'{name}'{where(i)} selects the token, so it must be the last stage, "
                    f"but '{stages[i + 1].name}' follows it")
        slot = slot_of(s)
        if slot in slots:
            other = slots[slot] if name == slot else name
            return f"'{name}'{where(i)}: '{slot}' and '{other}' are alternatives, use one of them"
        slots[slot] = name
    return None


def slot_of(stage: Sampler) -> str:
    """The slot a stage fills (its ``slot``, else its name)."""
    return stage.slot_name() if isinstance(stage, Stage) else stage.name


def _known() -> str:
    return f"known samplers: {', '.join(sorted(registered()))}; presets: {', '.join(PRESETS)}"


def _unknown(word: str, where: str, extra: str = "") -> InvalidSamplerSpec:
    close = difflib.get_close_matches(word, list(registered()), n=1)
    hint = (f"did you mean '{close[0]}'? " if close else "") + _known() + extra
    return InvalidSamplerSpec(f"unknown sampler '{word}'{where}", hint=hint)


def parse_stages(spec: str) -> list[Sampler]:
    """Parse a spec string (not a preset name) into fresh stage objects, in order."""
    if not isinstance(spec, str):
        raise InvalidSamplerSpec(f"a sampler spec must be a string, got {type(spec).__name__}")
    if not spec.strip():
        raise InvalidSamplerSpec("empty sampler spec", hint=EXAMPLE)

    def at(pos: int) -> str:
        return f" at position {pos} in {spec!r}"

    # groups: [cls, stage position, {key: (raw value, value position)}]
    groups: list[list[Any]] = []
    names: dict[str, int] = {}
    STAGES = registered()

    def open_stage(name: str, npos: int, bare: bool) -> type:
        cls = STAGES.get(name)
        if cls is None:
            if bare and name in PRESETS:
                raise InvalidSamplerSpec(
                    f"preset '{name}'{at(npos)} can only be used as the whole spec",
                    hint=f"it stands for {PRESETS[name]!r}")
            raise _unknown(name, at(npos))
        if name in names:
            raise InvalidSamplerSpec(f"duplicate stage '{name}'{at(npos)}",
                                     hint=f"it already appears at position {names[name]}")
        names[name] = npos
        groups.append([cls, npos, {}])
        return cls

    def add_param(key: str, raw: str, kpos: int, vpos: int) -> None:
        cls, _, values = groups[-1]
        if not key:
            raise InvalidSamplerSpec(f"{cls.name}: missing parameter name before '='{at(kpos)}",
                                     hint=cls.param_help())
        if not cls.accepts_param(key):
            raise InvalidSamplerSpec(f"{cls.name}: unknown parameter '{key}'{at(kpos)}",
                                     hint=cls.param_help())
        if key in values:
            raise InvalidSamplerSpec(f"{cls.name}: parameter '{key}' given twice{at(kpos)}")
        values[key] = (raw.strip(), vpos)

    def lead(text: str) -> int:
        return len(text) - len(text.lstrip())

    pos = 0
    for part in spec.split(","):
        start = pos
        pos += len(part) + 1
        item = part.strip()
        ipos = start + lead(part)
        if not item:
            raise InvalidSamplerSpec(
                f"empty stage{at(start)}", hint="two commas in a row, or a comma at an end")
        colon, eq = item.find(":"), item.find("=")
        if colon >= 0 and (eq < 0 or colon < eq):
            # name:key=value -- a new stage and its first parameter
            name = item[:colon].strip()
            if not name:
                raise InvalidSamplerSpec(f"missing sampler name before ':'{at(ipos)}")
            cls = open_stage(name, ipos, bare=False)
            rest, rpos = item[colon + 1:], ipos + colon + 1
            req = rest.find("=")
            if req < 0:
                raise InvalidSamplerSpec(
                    f"{name}: expected param=value after ':', got '{rest.strip()}'"
                    f"{at(rpos + lead(rest))}", hint=cls.param_help())
            raw = rest[req + 1:]
            add_param(rest[:req].strip(), raw, rpos + lead(rest), rpos + req + 1 + lead(raw))
        elif eq >= 0:
            key, raw = item[:eq].strip(), item[eq + 1:]
            vpos = ipos + eq + 1 + lead(raw)
            if not key:
                raise InvalidSamplerSpec(f"missing name before '='{at(ipos)}")
            if key in STAGES:
                # name=value -- a new stage and its main parameter
                cls = open_stage(key, ipos, bare=False)
                main = cls.main
                if main is None:
                    if cls.param_help().endswith("takes no parameters"):
                        raise InvalidSamplerSpec(f"{key} takes no parameters{at(ipos)}")
                    raise InvalidSamplerSpec(
                        f"{key} has no main parameter: write '{key}:param=value'{at(ipos)}",
                        hint=cls.param_help())
                add_param(main, raw, ipos, vpos)
            elif not groups:
                raise _unknown(key, at(ipos))
            elif not groups[-1][0].accepts_param(key):
                cls = groups[-1][0]
                raise _unknown(key, at(ipos),
                               extra=f"; nor is it a parameter of {cls.name}: {cls.param_help()}")
            else:
                # key=value continuing the current stage
                add_param(key, raw, ipos, vpos)
        else:
            open_stage(item, ipos, bare=True)

    stages: list[Sampler] = []
    for cls, gpos, values in groups:
        converted: dict[str, Any] = {}
        for key, (raw, vpos) in values.items():
            try:
                converted[key] = cls.convert(key, raw)
            except InvalidSamplerSpec as e:
                raise InvalidSamplerSpec(f"{e.args[0]}{at(vpos)}", hint=e.hint) from None
        try:
            stages.append(cls.from_params(converted))
        except InvalidSamplerSpec as e:
            raise InvalidSamplerSpec(f"{e.args[0]}{at(gpos)}", hint=e.hint) from None

    err = structure_error(stages, lambda i: at(groups[i][1]))
    if err is not None:
        raise InvalidSamplerSpec(err)
    return stages
