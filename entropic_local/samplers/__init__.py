"""Samplers: small objects over the numba kernels, composed into chains.

``SamplerChain.parse("top_k=40,top_p=0.95,min_p=0.05,temp=0.8")`` (or ``parse_sampler``)
builds a chain from a spec string (grammar and canonical form: ``samplers/spec.py``);
``str(chain)`` prints it back. ``PRESETS`` names whole specs (``greedy``, ``llama``,
``free_energy``, ``thermostat``, ``aes``, ``entropix``).
"""

from .base import Candidates, Fork, Sampler
from .chain import CANONICAL_ORDER, PRESETS, SamplerChain
from .processor import ChainLogitsProcessor
from .spec import format_spec, parse_sampler, parse_stages
from .stages import (
    STAGES,
    Dist,
    DynTemp,
    Greedy,
    LogitBias,
    MinP,
    Param,
    Penalties,
    Stage,
    Temp,
    TopK,
    TopNSigma,
    TopP,
    TypicalP,
    register_stage,
)
from . import aes, entropix, thermo  # noqa: E402  (register the adaptive stages)
from .aes import AES, Entmax
from .entropix import Entropix
from .thermo import FreeEnergy, Thermostat

PRESETS.update(thermo.PRESETS_EXTRA)
PRESETS.update(aes.PRESETS_EXTRA)
PRESETS.update(entropix.PRESETS_EXTRA)

__all__ = [
    "Candidates", "Fork", "Sampler", "SamplerChain", "parse_sampler", "parse_stages", "format_spec",
    "PRESETS", "CANONICAL_ORDER", "ChainLogitsProcessor", "STAGES", "register_stage",
    "Param", "Stage",
    "Penalties", "LogitBias", "TopNSigma", "TopK", "TypicalP", "TopP", "MinP", "Temp",
    "DynTemp", "Greedy", "Dist", "FreeEnergy", "Thermostat", "Entmax", "AES",
    "Entropix",
]
