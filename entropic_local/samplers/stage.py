"""``Stage``: a sampler that declares itself as data: its parameters, its llama.cpp flags,
its place in llama.cpp's sampler order; and gets its spec-string form from them.

A new stage is one class (see ``samplers/stages/``)::

    class TopK(Stage):
        name = "top_k"                       # its name in a spec string
        params = (Param("k", int, REQUIRED, 1),)
        main = "k"                           # written top_k=40 (else top_k:k=40)
        order = 3                            # llama.cpp's sampler order (flags insert by it)
        flags = (Flag("top_k", "k", int, "--top-k", "...", off=0, off_below=True),)

        def __init__(self, k):
            self._set(k=k)

        def apply(self, cands): ...

plus its line in ``samplers/registry.py``. Its flags then work everywhere: ``--top-k`` on the
command line, ``/set top_k`` in chat, ``"top_k"`` in a batch line, ``with_params(top_k=)``.

Spec form (``spec()``): ``name=value`` when the stage has a main parameter and every other
parameter is at its default; else ``name`` followed by ``:p=v,...`` listing the required
parameters and those that differ from their defaults, in declaration order.
"""

from __future__ import annotations

from typing import Any, ClassVar

from ..errors import InvalidSamplerSpec
from .base import Sampler
from .flags import Flag
from .params import REQUIRED, Param

__all__ = ["Stage"]


class Stage(Sampler):
    """Base class of the declared stages.

    Subclasses set ``name``, ``params`` and (optionally) ``main``, ``order``, ``slot``,
    ``flags``; call ``self._set(...)`` from ``__init__`` with every parameter; implement
    ``apply``.
    """

    params: ClassVar[tuple[Param, ...]] = ()
    main: ClassVar[str | None] = None     # the parameter written as ``name=value``
    order: ClassVar[float | None] = None  # place in llama.cpp's sampler order (None: unplaced)
    slot: ClassVar[str | None] = None     # stages of one slot are alternatives (default: name)
    flags: ClassVar[tuple[Flag, ...]] = ()

    def _set(self, **values: Any) -> None:
        for p in self.params:
            v = values[p.name]
            if v is REQUIRED:
                raise InvalidSamplerSpec(f"{self.name}: missing required parameter '{p.name}'")
            # None is "not given" for a parameter that may stay unset (default None)
            setattr(self, p.name, None if v is None and p.default is None else p.check(self.name, v))

    # -- spec strings -----------------------------------------------------------------------
    @classmethod
    def slot_name(cls) -> str:
        return cls.slot or cls.name

    @classmethod
    def param(cls, name: str) -> Param | None:
        for p in cls.params:
            if p.name == name:
                return p
        return None

    @classmethod
    def accepts_param(cls, key: str) -> bool:
        """Whether ``key=value`` may continue this stage in a spec string."""
        return cls.param(key) is not None

    @classmethod
    def param_help(cls) -> str:
        if not cls.params:
            return f"{cls.name} takes no parameters"
        return f"{cls.name} takes " + ", ".join(p.name for p in cls.params)

    @classmethod
    def convert(cls, key: str, raw: str) -> Any:
        """Convert one spec-string value of parameter ``key`` (already known to be accepted)
        to a Python value and validate it. Raises ``InvalidSamplerSpec``."""
        p = cls.param(key)
        assert p is not None
        return p.parse(cls.name, raw)

    @classmethod
    def from_params(cls, values: dict[str, Any]) -> "Stage":
        """Build from converted spec values (``{param: value}``)."""
        for p in cls.params:
            if p.required and p.name not in values:
                example = f"{cls.name}=..." if cls.main == p.name else f"{cls.name}:{p.name}=..."
                raise InvalidSamplerSpec(
                    f"{cls.name}: missing required parameter '{p.name}' (write {example})")
        return cls(**values)

    def param_values(self) -> dict[str, Any]:
        """The values ``from_params`` rebuilds this stage from."""
        return {p.name: getattr(self, p.name) for p in self.params}

    def spec(self) -> str:
        shown = [(p, getattr(self, p.name)) for p in self.params
                 if p.required or getattr(self, p.name) != p.default]
        if self.main is not None and len(shown) == 1 and shown[0][0].name == self.main:
            return f"{self.name}={shown[0][0].format(shown[0][1])}"
        if not shown:
            return self.name
        return self.name + ":" + ",".join(f"{p.name}={p.format(v)}" for p, v in shown)

    # -- flags --------------------------------------------------------------------------------
    @classmethod
    def flags_off(cls, values: dict[str, Any]) -> bool:
        """Whether parameter values ``values`` switch the stage off (see ``Flag``)."""
        alone = [f for f in cls.flags if f.off is not None and f.alone]
        together = [f for f in cls.flags if f.off is not None and not f.alone]
        if any(f.is_off(values[f.param]) for f in alone):
            return True
        return bool(together) and all(f.is_off(values[f.param]) for f in together)

    @classmethod
    def from_flags(cls, current: "Stage | None", values: dict[str, Any]) -> "Stage | None":
        """This stage after flags ``values`` (``{flag key: value}``, flags of this slot) are
        given: ``current`` is the chain's stage in this slot (or None) whose other
        parameters and state are kept. None when the values switch the stage off."""
        if current is not None:
            params = current.param_values()
        else:
            params = {p.name: p.default for p in cls.params if not p.required}
        params.update({f.param: values[f.key] for f in cls.flags if f.key in values})
        if cls.flags_off(params):
            return None
        new = cls.from_params(params)
        if current is not None:
            new.take_state(current)
        return new

    def takes_flags(self, values: dict[str, Any]) -> bool:
        """Whether this stage sets a parameter of its own from the flags of another slot
        that the chain does not hold (``aes`` takes ``temp`` as its own ``t``)."""
        return False

    def take_flags(self, values: dict[str, Any]) -> "Stage":
        """A copy of this stage with ``values`` taken (when ``takes_flags``); may refuse
        with ``InvalidSamplerSpec``."""
        raise NotImplementedError  # pragma: no cover - only called when takes_flags

    def chain_from_flags(self, stages: list) -> list:
        """The chain after a flag brought in this selecting stage: ``stages`` (ending in the
        chain's selector) with the selector replaced by this one (mirostat also drops the
        stages llama.cpp leaves out under it)."""
        return list(stages[:-1]) + [self]

    def take_state(self, old: "Stage") -> None:
        """Carry ``old``'s history (penalty window, random stream) into this rebuilt stage."""
