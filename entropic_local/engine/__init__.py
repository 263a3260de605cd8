"""The llama.cpp binding: model, context, batches, KV cache, tokenizer, logging, and the
attention hooks compiled into its graph evaluation. Names are loaded on first use (importing
``entropic_local.engine.attention`` alone, say, does not load llama.cpp)."""

from __future__ import annotations

from ..lazy import lazy_attributes

_WHERE = {
    "Engine": ".llama_engine",
    "default_threads": ".backend", "physical_cores": ".backend", "set_verbose": ".backend",
    "EngineConfig": ".config", "FLASH_ATTN_DEFAULT": ".config", "decide": ".config",
    "detect": ".hardware", "choose_config": ".choose",
    "llama_cpp_llama": ".llama_cpp_python",
}

__all__ = list(_WHERE)

__getattr__, __dir__ = lazy_attributes(__name__, _WHERE)
