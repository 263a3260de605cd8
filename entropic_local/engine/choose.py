"""The configuration a model is loaded with on this machine: the hardware found
(``hardware.detect``), the probe's verdict on the fast path (``probe.verdict``) and the rule
(``config.decide``) applied to the settings the user gave. Shared by ``Engine`` and
``llama_cpp_llama`` (llama-cpp-python's ``Llama``, configured the same safe way)."""

from __future__ import annotations

import os

from ..errors import ModelLoadError
from .config import EngineConfig, Verdict, decide
from .hardware import detect
from .probe import verdict as probe_verdict

__all__ = ["choose_config"]


def choose_config(path: str | os.PathLike, workload: str = "single", *, n_threads: int,
                  n_threads_batch: int | None = None, probe: bool = True, repack: bool | None = None,
                  **given) -> tuple[EngineConfig, Verdict]:
    """``(config, verdict)`` for the model at ``path``; ``given``: ``n_batch``, ``n_ubatch``,
    ``flash_attn``, ``n_gpu_layers`` as the user gave them (None: choose)."""
    hw = detect()
    if repack is False:
        verdict = Verdict(source="not needed: extra buffer types off")
    elif not probe:
        verdict = Verdict(source="probe not asked for")
    else:
        verdict = probe_verdict(path, hw, n_threads)
    if not (verdict.multirow or verdict.onerow or verdict.plain):
        raise ModelLoadError(
            f"llama.cpp crashes on {path} on this machine, with and without its fast paths "
            f"(a test in a child process: {verdict.detail})",
            hint="report it with the output of 'entropic-local info --json'")
    return decide(workload, hw.extra_bufts, verdict, repack=repack, n_threads=n_threads,
                  n_threads_batch=n_threads_batch, **given), verdict
