"""Samplers: small objects over the numba kernels, composed into chains.

``SamplerChain.parse("top_k=40,top_p=0.95,min_p=0.05,temp=0.8")`` (or ``parse_sampler``)
builds a chain from a spec string (grammar and canonical form: ``samplers/spec.py``);
``str(chain)`` prints it back. ``PRESETS`` names whole specs (``samplers/presets.py``).

Where things are:

* ``base.Sampler`` (the interface), ``candidates.Candidates`` (the buffers it works on);
* ``stage.Stage`` (a declared stage), ``params`` (its parameters), ``flags`` (its llama.cpp
  flags), ``registry`` (the stages by name, entry points included);
* ``stages/`` (one module per stage family), ``entropix_thresholds`` (Entropix's data);
* ``spec`` (parse/print), ``chain.SamplerChain``, ``presets``;
* ``distribution`` (what a chain would sample from), ``processor`` (a chain as a
  llama-cpp-python logits processor).

Names are loaded on first use (this package imports nothing until asked).
"""

from __future__ import annotations

import importlib
from typing import Any

_WHERE = {
    "Candidates": ".candidates", "Fork": ".candidates",
    "Sampler": ".base",
    "Stage": ".stage",
    "Param": ".params", "TextParam": ".params",
    "Flag": ".flags",
    "STAGES": ".registry", "register_stage": ".registry", "flag_table": ".registry",
    "find_flag": ".registry",
    "PRESETS": ".presets",
    "SamplerChain": ".chain", "parse_sampler": ".chain",
    "parse_stages": ".spec", "format_spec": ".spec",
    "ChainLogitsProcessor": ".processor",
    "chain_distribution": ".distribution",
    "Penalties": ".stages.penalties", "LogitBias": ".stages.logit_bias",
    "TopNSigma": ".stages.truncation", "TopK": ".stages.truncation",
    "TypicalP": ".stages.truncation", "TopP": ".stages.truncation", "MinP": ".stages.truncation",
    "Temp": ".stages.temperature", "DynTemp": ".stages.temperature",
    "Greedy": ".stages.select", "Dist": ".stages.select",
    "FreeEnergy": ".stages.free_energy", "Thermostat": ".stages.free_energy",
    "Entmax": ".stages.entmax", "AES": ".stages.entmax",
    "Entropix": ".stages.entropix",
}

__all__ = sorted(_WHERE)

def __getattr__(name: str) -> Any:
    where = _WHERE.get(name)
    if where is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    module = importlib.import_module(where, __name__)
    if name == "STAGES":
        module.stages()  # the registry, loaded
    value = getattr(module, name)
    globals()[name] = value
    return value

def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_WHERE))
