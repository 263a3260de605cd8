"""The engine's configuration and the rule that chooses it: the fastest path that is safe on
this machine for the workload, from what the hardware offers and what the probe found.

Settings, in llama.cpp's words:

* ``use_extra_bufts`` (``--repack`` / ``--no-repack``): weights in the CPU backend's extra
  buffer types (``AMX``, ``CPU_REPACK``...), repacked for its fast matrix kernels;
* ``n_batch`` (``-b``): most tokens per ``llama_decode``; ``n_ubatch`` (``-ub``): most rows
  per matrix product inside it (1: every product is a matrix-vector product);
* ``flash_attn`` (``-fa on|off|auto``); ``n_gpu_layers`` (``-ngl``); threads (``-t``).

The rule (``decide``), for settings the user did not give:

1. Extra buffer types the probe found safe for products of several rows: kept, with
   ``n_ubatch = n_batch`` (llama.cpp's defaults).
2. Safe for one-row products only (ggml's AMX kernels on some Xeons): for one sequence
   (``workload="single"``: generate, chat, eval) they are kept with ``n_ubatch = 1``, the
   fast single-token path; for many (``"batch"``) they are switched off and the batch
   keeps its multi-row products.
3. Not safe at all: switched off.

Settings given by the user are kept as given, except that with the extra buffer types on
and unsafe for several rows an unspecified ``n_ubatch`` is 1. Flash attention defaults to
``FLASH_ATTN_DEFAULT`` (off: with it on, per-step entropy moves by up to tens of percent on
CPU; README, "Hardware").
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from ..errors import UsageError

__all__ = ["EngineConfig", "Verdict", "decide", "FLASH_ATTN_DEFAULT", "FLASH_ATTN_VALUES",
           "DEFAULT_N_BATCH", "WORKLOADS", "flash_attn_value", "gpu_layers_value"]

FLASH_ATTN_DEFAULT = "off"
FLASH_ATTN_VALUES = ("on", "off", "auto")
DEFAULT_N_BATCH = 512
WORKLOADS = ("single", "batch")
ALL_GPU_LAYERS = 0x7FFFFFFF  # llama-cpp-python's meaning of -1: every layer


@dataclass(frozen=True)
class Verdict:
    """What the probe found about the CPU backend's extra buffer types on this machine and
    build: safe for products of several rows (``multirow``), for one-row products
    (``onerow``), and whether the model runs at all without them (``plain``)."""

    multirow: bool = True
    onerow: bool = True
    plain: bool = True
    source: str = "not needed"
    detail: str = ""

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class EngineConfig:
    """The settings a model and its contexts are made with, and why."""

    use_extra_bufts: bool
    n_batch: int
    n_ubatch: int
    flash_attn: str
    n_gpu_layers: int
    n_threads: int
    n_threads_batch: int
    workload: str
    reason: str
    one_row_only: bool = False  # these weights allow one-row products only: every context keeps n_ubatch = 1

    def to_dict(self) -> dict:
        d = asdict(self)
        d["repack"] = d.pop("use_extra_bufts")
        return d


def flash_attn_value(value) -> str | None:
    """``on``/``off``/``auto`` from a string or a bool; None stays None (the default)."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "on" if value else "off"
    v = str(value).strip().lower()
    v = {"true": "on", "1": "on", "enabled": "on", "false": "off", "0": "off", "disabled": "off"}.get(v, v)
    if v not in FLASH_ATTN_VALUES:
        raise UsageError(f"flash_attn must be one of on, off, auto (or a bool), got {value!r}")
    return v


def gpu_layers_value(value) -> int:
    """``-ngl``: a layer count, ``all`` or a negative number for every layer."""
    if value is None:
        return 0
    if isinstance(value, str):
        v = value.strip().lower()
        if v in ("all", "max"):
            return ALL_GPU_LAYERS
        try:
            value = int(v)
        except ValueError:
            raise UsageError(f"n_gpu_layers must be a number of layers or 'all', got {value!r}") from None
    n = int(value)
    return ALL_GPU_LAYERS if n < 0 else n


def decide(workload: str, extra_bufts: tuple[str, ...], verdict: Verdict, *, repack: bool | None = None,
           n_batch: int | None = None, n_ubatch: int | None = None, flash_attn=None, n_gpu_layers=0,
           n_threads: int = 1, n_threads_batch: int | None = None) -> EngineConfig:
    """The configuration for ``workload`` (``"single"`` or ``"batch"``), given the build's
    extra buffer types, the probe's ``verdict`` and the settings the user gave (None: choose)."""
    if workload not in WORKLOADS:
        raise UsageError(f"workload must be one of {', '.join(WORKLOADS)}, got {workload!r}")
    nb = DEFAULT_N_BATCH if n_batch is None else int(n_batch)
    if nb < 1:
        raise UsageError(f"n_batch must be at least 1, got {n_batch}")
    if n_ubatch is not None and int(n_ubatch) < 1:
        raise UsageError(f"n_ubatch must be at least 1, got {n_ubatch}")
    ub_given = None if n_ubatch is None else min(int(n_ubatch), nb)
    fa = flash_attn_value(flash_attn) or FLASH_ATTN_DEFAULT
    names = ", ".join(extra_bufts)
    one_row_only = False

    if not extra_bufts:
        use, ub = (True if repack is None else bool(repack)), ub_given or nb
        reason = "this llama.cpp build has no extra buffer types (nothing to repack)"
    elif repack is False:
        use, ub = False, ub_given or nb
        reason = f"extra buffer types ({names}) off, as asked (--no-repack)"
    elif repack is True:
        use = True
        if verdict.multirow:
            ub = ub_given or nb
            reason = f"extra buffer types ({names}) on, as asked (--repack)"
        elif ub_given is None or ub_given == 1:
            ub, one_row_only = 1, True
            reason = (f"extra buffer types ({names}) on, as asked (--repack); products of several rows "
                      f"crash on this machine ({verdict.source}), so one row per product (n_ubatch 1)")
        else:
            ub = ub_given
            reason = (f"extra buffer types ({names}) on with n_ubatch {ub}, as asked; the probe found "
                      f"products of several rows unsafe here ({verdict.detail or verdict.source})")
    elif verdict.multirow:
        use, ub = True, ub_given or nb
        reason = f"extra buffer types ({names}) safe here ({verdict.source})"
    elif verdict.onerow and workload == "single" and (ub_given is None or ub_given == 1):
        use, ub, one_row_only = True, 1, True
        reason = (f"extra buffer types ({names}) crash on products of several rows here "
                  f"({verdict.source}); one sequence: kept with one row per product (n_ubatch 1), "
                  "the fast single-token path")
    else:
        use, ub = False, ub_given or nb
        why = ("crash on products of several rows" if verdict.onerow else "crash") + f" here ({verdict.source})"
        what = "many sequences: off, so the batch keeps its multi-row products" if verdict.onerow else "off"
        reason = f"extra buffer types ({names}) {why}; {what}"
    nt = max(1, int(n_threads))
    return EngineConfig(
        use_extra_bufts=use, n_batch=nb, n_ubatch=ub, flash_attn=fa, n_gpu_layers=gpu_layers_value(n_gpu_layers),
        n_threads=nt, n_threads_batch=int(n_threads_batch) if n_threads_batch else nt, workload=workload,
        reason=reason, one_row_only=one_row_only,
    )
