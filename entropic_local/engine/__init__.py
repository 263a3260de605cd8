"""The llama.cpp binding: model, context, batches, KV cache, tokenizer, logging."""

from .backend import default_threads, physical_cores, set_verbose
from .llama_engine import Engine
from .text import StopMatcher, Utf8Stream

__all__ = ["Engine", "StopMatcher", "Utf8Stream", "default_threads", "physical_cores", "set_verbose"]
