"""entropic-local: run GGUF models locally with entropy-aware samplers.

Layers (imports flow one way): ``kernels`` (numba) ← ``samplers`` and ``engine``
(llama.cpp; siblings) ← ``decode`` (the loops) ← front ends (this API, the
``entropic-local`` command, chat, batch, evaluation, bench). See ``docs/architecture.md``.

The names below are loaded on first use: ``import entropic_local.kernels`` (or the
samplers) does not load llama.cpp.
"""

from __future__ import annotations

from .errors import (
    ContextOverflow,
    DecodeError,
    EntropicError,
    InvalidModelFile,
    InvalidSamplerSpec,
    LlamaError,
    ModelLoadError,
    ModelNotFound,
    UsageError,
)
from .lazy import lazy_attributes

__version__ = "0.1.0"

_WHERE = {
    "load": ".api", "Model": ".api", "Stream": ".api",
    "BatchRequest": ".decode.batched",
    "Generation": ".decode.sequence", "Step": ".decode.sequence", "Timings": ".decode.sequence",
    "SamplerChain": ".samplers.chain",
}

__all__ = [
    "load", "Model", "Stream", "Generation", "Step", "Timings", "SamplerChain", "BatchRequest",
    "EntropicError", "UsageError", "InvalidSamplerSpec", "ModelNotFound",
    "InvalidModelFile", "ContextOverflow", "LlamaError", "ModelLoadError", "DecodeError",
]


__getattr__, __dir__ = lazy_attributes(__name__, _WHERE)
