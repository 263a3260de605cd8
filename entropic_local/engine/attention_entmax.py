"""Entmax attention at inference (experimental): replace chosen layers' softmax attention by
α-entmax of the same scores, inside llama.cpp's graph (the compiled write-back and its math:
``engine/entmax_callback.py``).

α: fixed or adaptive per head
-----------------------------
``attention_entmax=1.5`` (or ``"1.5"``): one α ∈ [1, 2] for every row. **α = 1 exactly
writes nothing** (the rows keep llama.cpp's softmax bit for bit; only the statistics below
are gathered), so it is the "off" reference of a measurement.

``attention_entmax="adaptive"`` (``"adaptive:alpha_max=2,eta_lo=0.25,eta_hi=0.6"``): α
per head and per query row, from that head's own softmax attention entropy on that row,
normalised by its maximum::

    H = -Σ_j P_j ln P_j  (nats, over the valid cells),   η = H / ln(n_valid) ∈ [0, 1]
    x = clip((η_hi - η) / (η_hi - η_lo), 0, 1)             0 at η ≥ η_hi, 1 at η ≤ η_lo
    α = 1 + (α_max - 1) · x² (3 - 2x)                      smoothstep, as samplers/aes.py
    α < ALPHA_SNAP (1.1) is used as exactly 1: the row is left as it is.

(``n_valid = 1``: the row is one-hot whatever α; η = 0 is used.) The same kind of map as
the ``aes`` sampler's ``D(S, V)``, with two differences: the entropy is normalised by
``ln n_valid`` (a head's attention row grows with the context, from 1 cell to thousands,
whereas a token distribution always covers the vocabulary: ``η`` says how diffuse a head is
independently of how far into the text it is), and there is no varentropy branch (the
snapped/continuous split of aes is about plateaus of near-equal tokens; an attention row
has no vocabulary tail, and one number per row keeps the rule readable). A focused head
(low η: a few cells carry the mass, e.g. the previous token or the BOS "sink") is cut
hard towards sparsemax; a diffuse, averaging head (high η) stays softmax. Defaults
``η_lo = 0.25``, ``η_hi = 0.6``: about the quartiles of η over every layer and head of both
test models (``docs/measurements.md``), so roughly a quarter of the rows get α_max, a
quarter to a third stay softmax and the rest move continuously.

Statistics (the sparsity achieved)
----------------------------------
Per chosen layer and head, accumulated by the callback in float64 buffers (exact counts up
to 2^53): rows seen, valid cells (from the KQ mask row of the query, as in the capture:
``mask != -inf``; all ``n_kv`` cells when a model has no mask), cells with a non-zero weight
after the write-back (for α = 1 rows: non-zero softmax weights), the sum of the α used, the
sum of η, rows written, rows skipped. ``EntmaxAttentionCapture.entmax_stats()`` reads them:
``zero_fraction = 1 - Σ support / Σ valid`` (the fraction of zero weights among valid
cells) and ``mean_support = Σ support / Σ rows`` (the mean number of cells one head attends
to, per query row), also per layer and per head; ``reset_entmax_stats()`` zeroes them.

Integration
-----------
``EntmaxAttentionCapture`` extends ``AttentionCapture``: the entmax layers are the captured
layers (``attention=`` spec; ``Engine(attention_entmax=...)`` alone means all layers), and
its callback runs the entmax write-back first and the capture second, so ``rows()`` /
``window()`` / the attention metrics report the weights the layer actually used. The
callback's ``user_data`` is this module's control block (``ectrl``), which holds the
capture's control block's address: ``engine/attention.py`` is unchanged.
``configure(spec)`` changes α between decodes (clear the KV cache afterwards: the cached
keys and values of later layers were computed under the old attention).

Limits: rows must be contiguous float32 (they are on llama.cpp's CPU and GPU backends;
otherwise the layer is left alone and flagged); a softmax with attention sinks (a third
source of ``kq_soft_max``, e.g. gpt-oss) is left alone and flagged (its rows do not sum to
1 over the cells); with flash attention there is no softmax node, so it is switched off, as
for the capture. Every row costs one entmax solve (sort-based for α = 1.5 and 2, Newton
otherwise) plus a log per cell: cheap next to the matrix products on a CPU; on a GPU each
chosen layer forces a synchronisation and a device-host round trip of its attention.
The README's measurement: ``python benchmarks/entmax_attention.py``.
"""

from __future__ import annotations

import ctypes
import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from ..errors import UsageError
from .attention import AttentionCapture
from .entmax_callback import (
    ALPHA_SNAP, E_ALPHA, E_BUF, E_CTRL, E_DUMMY, E_ETA_HI, E_ETA_LO, E_FLAGS, E_K, E_LEN, E_MBUF,
    E_MODE, E_NH, E_OUT, E_ROWS, E_SET, E_SET2D, E_SNAP, E_STATS, E_VALID, E_Z, MODE_ADAPTIVE,
    MODE_FIXED, MODE_OFF, NST, ST_ALPHA, ST_ETA, ST_ROWS, ST_SKIPPED, ST_SUPPORT, ST_VALID, ST_WRITTEN,
    adaptive_alpha, entmax_eval_callback,
)
from .ggml import tensor_io_functions

__all__ = [
    "EntmaxAttentionCapture", "EntmaxConfig", "parse_attention_entmax", "adaptive_alpha",
    "ALPHA_SNAP", "ETA_LO", "ETA_HI", "ALPHA_MAX", "ST_ROWS", "ST_VALID", "ST_SUPPORT", "ST_ALPHA",
    "ST_WRITTEN",
]

ETA_LO = 0.25      # normalised attention entropy at or below which α = α_max
ETA_HI = 0.6       # ... at or above which α = 1
ALPHA_MAX = 2.0


@dataclass(frozen=True)
class EntmaxConfig:
    """What the callback does: ``mode`` ``"off"`` (nothing, not even statistics),
    ``"fixed"`` (``alpha`` for every row; α = 1 gathers statistics and writes nothing) or
    ``"adaptive"`` (α per head and row from the normalised entropy; see the module doc)."""

    mode: str = "fixed"
    alpha: float = 1.5          # the fixed α, or α_max when adaptive
    eta_lo: float = ETA_LO
    eta_hi: float = ETA_HI
    snap: float = ALPHA_SNAP

    def spec(self) -> str:
        if self.mode == "off":
            return "off"
        if self.mode == "fixed":
            return f"{self.alpha:g}"
        return (f"adaptive:alpha_max={self.alpha:g},eta_lo={self.eta_lo:g},"
                f"eta_hi={self.eta_hi:g},snap={self.snap:g}")


def parse_attention_entmax(spec) -> EntmaxConfig:
    """``1.5`` / ``"1.5"`` (fixed α in [1, 2]), ``"off"``, ``"adaptive"`` or
    ``"adaptive:alpha_max=2,eta_lo=0.25,eta_hi=0.6,snap=1.1"``, or an ``EntmaxConfig``."""
    if isinstance(spec, EntmaxConfig):
        cfg = spec
    elif isinstance(spec, bool):
        raise UsageError(f"attention_entmax must be an α in [1, 2], 'adaptive' or 'off', got {spec!r}")
    elif isinstance(spec, (int, float)):
        cfg = EntmaxConfig("fixed", float(spec))
    elif isinstance(spec, str):
        s = spec.strip().lower()
        head, _, rest = s.partition(":")
        if s == "off":
            cfg = EntmaxConfig("off", 1.0)
        elif head == "adaptive":
            kw = {}
            names = {"alpha_max": "alpha", "eta_lo": "eta_lo", "eta_hi": "eta_hi", "snap": "snap"}
            for item in filter(None, (x.strip() for x in rest.split(","))):
                k, sep, v = item.partition("=")
                if not sep or k.strip() not in names:
                    raise UsageError(f"attention_entmax: unknown parameter {item!r} (known: {', '.join(names)})")
                try:
                    kw[names[k.strip()]] = float(v)
                except ValueError:
                    raise UsageError(f"attention_entmax: {k.strip()}={v!r} is not a number") from None
            cfg = EntmaxConfig("adaptive", kw.pop("alpha", ALPHA_MAX), **kw)
        else:
            try:
                cfg = EntmaxConfig("fixed", float(s))
            except ValueError:
                raise UsageError(
                    f"attention_entmax must be an α in [1, 2], 'adaptive[:...]' or 'off', got {spec!r}") from None
    else:
        raise UsageError(f"attention_entmax must be an α in [1, 2], 'adaptive' or 'off', got {spec!r}")
    a = cfg.alpha
    if not (1.0 <= a <= 2.0):
        raise UsageError(f"attention_entmax: α must be in [1, 2], got {a:g}")
    if cfg.mode == "adaptive" and not (0.0 <= cfg.eta_lo < cfg.eta_hi <= 1.0):
        raise UsageError(f"attention_entmax: need 0 <= eta_lo < eta_hi <= 1, got {cfg.eta_lo:g}, {cfg.eta_hi:g}")
    if not (1.0 <= cfg.snap <= 2.0):
        raise UsageError(f"attention_entmax: snap must be in [1, 2], got {cfg.snap:g}")
    return cfg


def _f64_bits(x: float) -> int:
    return int(np.array([x], dtype=np.float64).view(np.int64)[0])


class EntmaxAttentionCapture(AttentionCapture):
    """``AttentionCapture`` whose layers also get entmax attention (module doc).

    ``EntmaxAttentionCapture(layers, n_layer, n_head, scores=False, entmax=1.5)``; the
    Engine builds it for ``Engine(attention_entmax=...)``. ``entmax_stats()`` reports the
    sparsity achieved; ``configure(spec)`` changes α between decodes.
    """

    def __init__(self, layers: Sequence[int], n_layer: int, n_head: int, scores: bool = False,
                 entmax=1.5, rows_per_chunk: int = 32):
        cfg = parse_attention_entmax(entmax)
        n_slots = max(1, len(tuple(layers)))
        self._ectrl = np.zeros(E_LEN, dtype=np.int64)
        self._estats = np.zeros((n_slots, max(1, int(n_head)), NST), dtype=np.float64)
        self._eflags = np.zeros(n_slots, dtype=np.int64)
        self._edummy = np.zeros(NST, dtype=np.float64)
        self._rows_per_chunk = max(1, int(rows_per_chunk))
        super().__init__(layers, n_layer, n_head, scores=scores)
        funcs = tensor_io_functions()
        e = self._ectrl
        e[E_CTRL] = self._ctrl.ctypes.data
        e[E_SET] = funcs["set"]
        e[E_SET2D] = funcs["set2d"] if funcs["get2d"] else 0
        e[E_ROWS] = self._rows_per_chunk
        e[E_STATS] = self._estats.ctypes.data
        e[E_FLAGS] = self._eflags.ctypes.data
        e[E_DUMMY] = self._edummy.ctypes.data
        e[E_NH] = self._estats.shape[1]
        self.configure(cfg)
        self._ealloc(0)
        from llama_cpp import ggml_backend_sched_eval_callback  # the C callback type

        self.callback = ggml_backend_sched_eval_callback(entmax_eval_callback.address)
        self.user_data = ctypes.c_void_p(self._ectrl.ctypes.data)

    # ------------------------------------------------------------ buffers
    def _ealloc(self, k: int) -> None:
        r, kk = self._rows_per_chunk, max(1, k)
        self._ebuf = np.zeros(r * kk, dtype=np.float32)
        self._embuf = np.zeros(r * kk, dtype=np.float32)
        self._evalid = np.zeros(r * kk, dtype=np.uint8)
        self._ez = np.zeros(kk, dtype=np.float32)
        self._eout = np.zeros(kk, dtype=np.float32)
        e = self._ectrl
        e[E_BUF] = self._ebuf.ctypes.data
        e[E_MBUF] = self._embuf.ctypes.data
        e[E_VALID] = self._evalid.ctypes.data
        e[E_Z] = self._ez.ctypes.data
        e[E_OUT] = self._eout.ctypes.data
        e[E_K] = k if self.layers else 0

    def allocate(self, n_ctx: int) -> None:
        super().allocate(n_ctx)
        if int(self._ectrl[E_K]) != self.capacity:
            self._ealloc(self.capacity)

    # ------------------------------------------------------------ settings
    def configure(self, spec) -> EntmaxConfig:
        """Set α (fixed, adaptive or off) for the next decodes; not during a decode. Clear the
        KV cache afterwards (its later layers were computed under the previous attention)."""
        cfg = parse_attention_entmax(spec)
        e = self._ectrl
        e[E_MODE] = {"off": MODE_OFF, "fixed": MODE_FIXED, "adaptive": MODE_ADAPTIVE}[cfg.mode]
        e[E_ALPHA] = _f64_bits(cfg.alpha)
        e[E_ETA_LO] = _f64_bits(cfg.eta_lo)
        e[E_ETA_HI] = _f64_bits(cfg.eta_hi)
        e[E_SNAP] = _f64_bits(cfg.snap)
        self.entmax_config = cfg
        return cfg

    # ------------------------------------------------------------ statistics
    def reset_entmax_stats(self) -> None:
        self._estats[...] = 0.0
        self._eflags[...] = 0

    def entmax_stats(self) -> dict:
        """The sparsity achieved since the last reset, over the chosen layers::

            {"config", "layers", "rows" (query rows × heads), "valid_cells", "support_cells",
             "zero_fraction" (zero weights among valid cells), "mean_support" (non-zero cells
             per head and row), "mean_valid", "mean_alpha", "mean_eta", "rows_written",
             "rows_skipped", "flags" {layer: int},
             "per_layer": {layer: {"zero_fraction", "mean_support", "mean_valid", "mean_alpha"}},
             "per_head_support": float64[n_layers, n_head] (mean support per head),
             "per_head_alpha": float64[n_layers, n_head]}
        """
        st = self._estats[: len(self.layers)]
        tot = st.sum(axis=(0, 1)) if len(self.layers) else np.zeros(NST)

        def ratio(a, b):
            return float(a / b) if b > 0 else math.nan

        per_layer = {}
        for i, il in enumerate(self.layers):
            s = st[i].sum(axis=0)
            per_layer[il] = {
                "zero_fraction": 1.0 - ratio(s[ST_SUPPORT], s[ST_VALID]) if s[ST_VALID] > 0 else math.nan,
                "mean_support": ratio(s[ST_SUPPORT], s[ST_ROWS]),
                "mean_valid": ratio(s[ST_VALID], s[ST_ROWS]),
                "mean_alpha": ratio(s[ST_ALPHA], s[ST_ROWS]),
            }
        with np.errstate(divide="ignore", invalid="ignore"):
            ph_support = np.where(st[..., ST_ROWS] > 0, st[..., ST_SUPPORT] / st[..., ST_ROWS], np.nan)
            ph_alpha = np.where(st[..., ST_ROWS] > 0, st[..., ST_ALPHA] / st[..., ST_ROWS], np.nan)
        return {
            "config": self.entmax_config.spec(),
            "layers": list(self.layers),
            "rows": int(tot[ST_ROWS]),
            "valid_cells": int(tot[ST_VALID]),
            "support_cells": int(tot[ST_SUPPORT]),
            "zero_fraction": 1.0 - ratio(tot[ST_SUPPORT], tot[ST_VALID]) if tot[ST_VALID] > 0 else math.nan,
            "mean_support": ratio(tot[ST_SUPPORT], tot[ST_ROWS]),
            "mean_valid": ratio(tot[ST_VALID], tot[ST_ROWS]),
            "mean_alpha": ratio(tot[ST_ALPHA], tot[ST_ROWS]),
            "mean_eta": ratio(tot[ST_ETA], tot[ST_ROWS]),
            "rows_written": int(tot[ST_WRITTEN]),
            "rows_skipped": int(tot[ST_SKIPPED]),
            "flags": {il: int(self._eflags[i]) for i, il in enumerate(self.layers) if self._eflags[i]},
            "per_layer": per_layer,
            "per_head_support": ph_support,
            "per_head_alpha": ph_alpha,
        }

    def raw_entmax_stats(self) -> np.ndarray:
        """A copy of the accumulators, ``float64[n_layers, n_head, NST]`` (columns ``ST_*``)."""
        return self._estats[: len(self.layers)].copy()
