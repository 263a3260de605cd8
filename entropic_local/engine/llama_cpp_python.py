"""llama-cpp-python's own ``Llama``, configured the safe way ``Engine`` is (the benchmark's
other side, tests that compare with it): the same choice of extra buffer types, ``n_ubatch``
and flash attention for this machine (``choose.choose_config``).

``Llama`` takes no ``use_extra_bufts`` argument; it reads its model parameters from
``llama_model_default_params()``, so that function is wrapped, under a lock, while the
model loads.
"""

from __future__ import annotations

import contextlib
import os
import threading

from .backend import default_threads
from .choose import choose_config
from .config import EngineConfig

__all__ = ["llama_cpp_llama", "llama_kwargs"]

_lock = threading.Lock()


@contextlib.contextmanager
def _extra_bufts(use: bool):
    import llama_cpp.llama_cpp as low

    with _lock:
        orig = low.llama_model_default_params

        def params():
            p = orig()
            p.use_extra_bufts = bool(use)
            return p

        low.llama_model_default_params = params
        try:
            yield
        finally:
            low.llama_model_default_params = orig


def llama_kwargs(config: EngineConfig) -> dict:
    """``Llama(...)`` keyword arguments for ``config`` (besides ``use_extra_bufts``)."""
    n_gpu = -1 if config.n_gpu_layers >= 0x7FFFFFFF else config.n_gpu_layers
    return dict(n_batch=config.n_batch, n_ubatch=config.n_ubatch, n_threads=config.n_threads,
                n_threads_batch=config.n_threads_batch, n_gpu_layers=n_gpu,
                flash_attn=config.flash_attn == "on")


def llama_cpp_llama(model_path: str | os.PathLike, *, workload: str = "single", n_threads: int | None = None,
                    config: EngineConfig | None = None, repack: bool | None = None, n_batch: int | None = None,
                    n_ubatch: int | None = None, flash_attn=None, n_gpu_layers=0, **kwargs):
    """A ``llama_cpp.Llama`` for ``model_path`` with this machine's safe configuration
    (``config``, or the one chosen from the settings given); other ``kwargs`` go to ``Llama``.
    ``flash_attn="auto"`` is not expressible there and becomes off."""
    import llama_cpp

    if config is None:
        nt = int(n_threads) if n_threads else default_threads()
        config, _ = choose_config(model_path, workload, n_threads=nt, repack=repack, n_batch=n_batch,
                                  n_ubatch=n_ubatch, flash_attn=flash_attn, n_gpu_layers=n_gpu_layers)
    with _extra_bufts(config.use_extra_bufts):
        return llama_cpp.Llama(model_path=str(model_path), **{**llama_kwargs(config), **kwargs})
