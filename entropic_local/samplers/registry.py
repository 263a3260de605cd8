"""The stages that spec strings, flags and presets know, by name.

Built-in stages are listed in ``BUILTIN_STAGES`` (one line each: name -> ``module:Class``);
other packages add theirs through the entry-point group ``entropic_local.stages`` (an entry
``name = package.module:Class`` in their ``pyproject.toml``); ``register_stage`` adds one at
run time. Everything is loaded on the first lookup. A stage class needs the ``Stage``
protocol (``params``, ``accepts_param``, ``convert``, ``from_params``, ``param_help``, and a
``spec()`` that parses back) and may declare ``flags``.
"""

from __future__ import annotations

import importlib
import threading
from typing import Any

from .flags import Flag
from .stage import Stage

__all__ = ["STAGES", "BUILTIN_STAGES", "ENTRY_POINT_GROUP", "stages", "register_stage",
           "flag_table", "find_flag"]

ENTRY_POINT_GROUP = "entropic_local.stages"

_PKG = "entropic_local.samplers.stages"
BUILTIN_STAGES: dict[str, str] = {
    "logit_bias": f"{_PKG}.logit_bias:LogitBias",
    "penalties": f"{_PKG}.penalties:Penalties",
    "dry": f"{_PKG}.dry:DRY",
    "top_n_sigma": f"{_PKG}.truncation:TopNSigma",
    "top_k": f"{_PKG}.truncation:TopK",
    "typical_p": f"{_PKG}.truncation:TypicalP",
    "top_p": f"{_PKG}.truncation:TopP",
    "min_p": f"{_PKG}.truncation:MinP",
    "xtc": f"{_PKG}.xtc:XTC",
    "temp": f"{_PKG}.temperature:Temp",
    "dyn_temp": f"{_PKG}.temperature:DynTemp",
    "greedy": f"{_PKG}.select:Greedy",
    "dist": f"{_PKG}.select:Dist",
    "mirostat": f"{_PKG}.mirostat:Mirostat",
    "mirostat_v2": f"{_PKG}.mirostat:MirostatV2",
    "adaptive_p": f"{_PKG}.adaptive_p:AdaptiveP",
    "free_energy": f"{_PKG}.free_energy:FreeEnergy",
    "thermostat": f"{_PKG}.free_energy:Thermostat",
    "entmax": f"{_PKG}.entmax:Entmax",
    "aes": f"{_PKG}.entmax:AES",
    "entropix": f"{_PKG}.entropix:Entropix",
}

STAGES: dict[str, type[Stage]] = {}
_loaded = False
_lock = threading.RLock()


def _load_class(target: str) -> Any:
    module, _, attr = target.partition(":")
    return getattr(importlib.import_module(module), attr)


def _entry_points() -> list[Any]:
    from importlib.metadata import entry_points

    return list(entry_points(group=ENTRY_POINT_GROUP))


def stages() -> dict[str, type[Stage]]:
    """Every known stage class by name: the built-in ones, then the entry points'."""
    global _loaded
    if not _loaded:
        with _lock:
            if not _loaded:
                _loaded = True
                for target in BUILTIN_STAGES.values():
                    register_stage(_load_class(target))
                for ep in _entry_points():
                    cls = ep.load()
                    if getattr(cls, "name", None) != ep.name:
                        raise ValueError(f"entry point {ep.name!r} ({ep.value}) of group "
                                         f"{ENTRY_POINT_GROUP} loads a stage named "
                                         f"{getattr(cls, 'name', None)!r}")
                    register_stage(cls)
    return STAGES


def register_stage(cls: type[Stage]) -> type[Stage]:
    """Make a stage class known to spec strings under ``cls.name`` (usable as a decorator).

    No parameter name may be a stage name (the spec grammar relies on it), and no flag may
    be declared twice."""
    if not _loaded:
        stages()
    name = getattr(cls, "name", "")
    if not name or not name.replace("_", "").isalnum() or not name[0].isalpha():
        raise ValueError(f"bad stage name {name!r}")
    if name in STAGES and STAGES[name] is not cls:
        raise ValueError(f"a stage named {name!r} is already registered")
    params = {p.name for p in cls.params}
    clash = params & (set(STAGES) | {name})
    for other in STAGES.values():
        if name in {p.name for p in other.params}:
            clash.add(name)
    if clash:
        raise ValueError(f"stage {name!r}: parameter names clash with stage names: {sorted(clash)}")
    taken = {n: f for f, _ in flag_table().values() for n in f.names}
    for f in cls.flags:
        for n in f.names:
            if n in taken and taken[n] not in cls.flags:
                raise ValueError(f"stage {name!r}: flag {f.key!r} is named {n!r} like flag "
                                 f"{taken[n].key!r}")
    STAGES[name] = cls
    return cls


def flag_table() -> dict[str, tuple[Flag, type[Stage]]]:
    """Every stage's flags, ``{key: (flag, stage class)}``, in llama.cpp's sampler order
    (the stages' ``order``, then the order each declares its flags in)."""
    classes = sorted(stages().values(), key=lambda c: (c.order is None, c.order or 0))
    out: dict[str, tuple[Flag, type[Stage]]] = {}
    for cls in classes:
        for f in cls.flags:
            out.setdefault(f.key, (f, cls))
    return out


def find_flag(name: str) -> Flag | None:
    """The flag called ``name``: its key, request field, command-line name (``-`` read as
    ``_``) or an alias."""
    name = name.strip().lower().replace("-", "_")
    for f, _ in flag_table().values():
        if name in f.names:
            return f
    return None
