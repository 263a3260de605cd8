"""entropic-local: run GGUF models locally with entropy-aware samplers.

Layers (imports flow one way): ``kernels`` (numba) ← ``samplers`` ← ``engine`` (llama.cpp)
← front ends (this API, the ``entropic-local`` command).
"""

from .api import Model, Stream, load
from .batching import BatchRequest
from .errors import (
    ContextOverflow,
    EntropicError,
    InvalidModelFile,
    InvalidSamplerSpec,
    ModelLoadError,
    ModelNotFound,
    UsageError,
)
from .generation import Generation, Step, Timings
from .samplers import SamplerChain

__version__ = "0.1.0"

__all__ = [
    "load", "Model", "Stream", "Generation", "Step", "Timings", "SamplerChain", "BatchRequest",
    "EntropicError", "UsageError", "InvalidSamplerSpec", "ModelNotFound",
    "InvalidModelFile", "ContextOverflow", "ModelLoadError",
]
