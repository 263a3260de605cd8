"""The llama.cpp binding: model, context, batches, KV cache, tokenizer, logging, and the
attention hooks compiled into its graph evaluation."""

from .backend import default_threads, physical_cores, set_verbose
from .llama_engine import Engine

__all__ = ["Engine", "default_threads", "physical_cores", "set_verbose"]
