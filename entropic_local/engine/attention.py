"""Attention capture: read the newest token's attention out of llama.cpp while it decodes.

``AttentionCapture`` owns the capture buffers and the control block of the compiled eval
callback (``engine/attention_callback.py``, which says how the capture works) for one
llama.cpp context, and reads them: the newest token's post-softmax attention per captured
layer and head, its valid cells, the pre-softmax scores, and Entropix's attention metrics
(``kernels/attention.py``).

Attention capture: read the newest token's attention out of llama.cpp while it decodes.

Valid cells
-----------
The softmax's second source (``src[1]`` of ``kq_soft_max-<layer>``) is the KQ mask llama.cpp
built for this micro-batch: 0 where the query token may attend to a cell (same sequence,
causal, inside the sliding window for SWA layers) and ``-inf`` everywhere else (empty cells,
other sequences, future positions, cells outside the window, the padding of the window up to
``n_kv``). The callback copies the newest token's mask row next to the probabilities and marks
``valid[j] = (mask[j] != -inf)``. So the valid set is exactly the set of cells the softmax was
taken over, whatever order the cache put the tokens in (reused cells after a truncation, the
ring buffer of a sliding-window cache): no assumption about "cells 0..len-1" is needed, and a
real cell whose probability underflowed to 0 stays valid. Each layer has its own mask (Gemma 3
keeps a separate sliding-window cache with its own cells and ``n_kv``), so ``valid`` is per
layer. Returned rows are in KV-cell order: for the full-attention cache of a single sequence
that was only ever truncated at the tail this is token-position order (cell i = position i);
for a sliding-window cache past its window, or after other cache edits, it is not, and
positions are not recoverable from the public API. The metrics do not depend on the order.

Limits: one sequence per micro-batch is the supported case (with several streams the row of
the last token of the last stream is taken, and it is recorded in ``info``); models without a
KQ mask (none of the causal LMs) are marked ``no_mask`` and all ``n_kv`` cells count as valid;
an ALiBi mask (finite negative values) counts every finite cell as valid, which is right.

Cost: ``docs/measurements.md`` (``python benchmarks/attention_hook.py MODEL``).
"""

from __future__ import annotations

import ctypes
import math
from typing import NamedTuple, Sequence

import numpy as np

from ..errors import AttentionUnavailable, UsageError
from ..kernels.attention import attention_metrics_masked, interaction_strength_masked
from .attention_callback import (
    C_ASKS, C_GET, C_GET2D, C_H, C_INFO, C_K, C_LEN, C_NLAYER, C_PROBS, C_S, C_SCORES, C_SCRATCH,
    C_SLOTS, C_STAMP, C_VALID, C_WANT_SCORES, F_HEADS_CLIPPED, F_MASK_TYPE, F_NKV_OVERFLOW, F_NOT_F32,
    F_SCORES_NOT_F32, F_SCORES_OVERFLOW, I_FLAGS, I_MASKTYPE, I_MAXBIAS, I_NHEAD, I_NKV, I_NSTREAM,
    I_NTOK, I_NVALID, I_SCALE, I_SNKV, I_SSTAMP, I_STAMP, INFO_W, eval_callback,
)
from .ggml import tensor_io_functions

__all__ = ["AttentionCapture", "AttentionMetrics", "parse_attention_layers"]


def parse_attention_layers(spec, n_layer: int) -> tuple[int, ...]:
    """``"last"``, ``"all"``, ``"3,7,11"``, a list of ints (negative counts from the end) or
    ``[]`` (hook installed, nothing captured: for measuring the hook's own cost) -> layer ids."""
    if isinstance(spec, str):
        s = spec.strip().lower()
        if s == "last":
            return (n_layer - 1,)
        if s == "all":
            return tuple(range(n_layer))
        if s in ("", "none"):
            return ()
        try:
            items = [int(x) for x in s.replace(" ", "").split(",") if x]
        except ValueError:
            raise UsageError(f"attention must be 'last', 'all' or a list of layer numbers, got {spec!r}") from None
    elif isinstance(spec, int) and not isinstance(spec, bool):
        items = [spec]
    else:
        try:
            items = [int(x) for x in spec]
        except (TypeError, ValueError):
            raise UsageError(f"attention must be 'last', 'all' or a list of layer numbers, got {spec!r}") from None
    out = set()
    for il in items:
        j = il + n_layer if il < 0 else il
        if not 0 <= j < n_layer:
            raise UsageError(f"attention layer {il} does not exist: the model has layers 0..{n_layer - 1}")
        out.add(j)
    return tuple(sorted(out))


class AttentionMetrics(NamedTuple):
    """One layer's attention metrics for the newest token (nats; varentropy in nats^2)."""

    attn_entropy: float  # mean over heads
    attn_varentropy: float  # mean over heads of the per-head varentropy
    agreement: float
    interaction_strength: float  # NaN unless scores were captured
    head_entropy: np.ndarray
    head_varentropy: np.ndarray
    n_valid: int


# --------------------------------------------------------------------------- the object
class AttentionCapture:
    """The callback, its control block and the capture buffers of one llama.cpp context.

    Install ``callback`` / ``user_data`` on ``llama_context_params.cb_eval`` /
    ``cb_eval_user_data`` before the context is created, call ``allocate(n_ctx)`` once the
    context exists, ``begin()`` before every ``llama_decode``; then read with ``rows``,
    ``window``, ``scores_rows``, ``metrics``. This object must outlive the context (the
    Engine holds it).
    """

    def __init__(self, layers: Sequence[int], n_layer: int, n_head: int, scores: bool = False):
        funcs = tensor_io_functions()
        self.layers: tuple[int, ...] = tuple(int(x) for x in layers)
        self.n_layer = int(n_layer)
        self.n_head = int(n_head)
        self.scores_enabled = bool(scores)
        self._slot_of = {il: s for s, il in enumerate(self.layers)}
        self._slots = np.full(max(1, self.n_layer), -1, dtype=np.int32)
        for s, il in enumerate(self.layers):
            self._slots[il] = s
        self._ctrl = np.zeros(C_LEN, dtype=np.int64)
        c = self._ctrl
        c[C_NLAYER] = self.n_layer
        c[C_SLOTS] = self._slots.ctypes.data
        c[C_WANT_SCORES] = int(self.scores_enabled)
        c[C_S] = len(self.layers)
        c[C_H] = self.n_head
        c[C_K] = 0
        c[C_GET] = funcs["get"]
        c[C_GET2D] = funcs["get2d"]
        self.capacity = 0
        self._stamp = 0
        # the C function pointer handed to llama.cpp (kept alive by this object and the module)
        from llama_cpp import ggml_backend_sched_eval_callback  # the C callback type

        self.callback = ggml_backend_sched_eval_callback(eval_callback.address)
        self.user_data = ctypes.c_void_p(self._ctrl.ctypes.data)
        self._alloc(0)

    def _alloc(self, k: int) -> None:
        s, h = max(1, len(self.layers)), self.n_head
        self._probs = np.zeros((s, h, max(1, k)), dtype=np.float32)
        self._scores = np.zeros((s, h, max(1, k)), dtype=np.float32) if self.scores_enabled else None
        self._valid = np.zeros((s, max(1, k)), dtype=np.uint8)
        self._info = np.zeros((s, INFO_W), dtype=np.int64)
        self._scratch = np.zeros(max(1, k), dtype=np.float32)
        self._head_h = np.zeros(h, dtype=np.float64)
        self._head_v = np.zeros(h, dtype=np.float64)
        c = self._ctrl
        c[C_PROBS] = self._probs.ctypes.data
        c[C_SCORES] = self._scores.ctypes.data if self._scores is not None else 0
        c[C_VALID] = self._valid.ctypes.data
        c[C_INFO] = self._info.ctypes.data
        c[C_SCRATCH] = self._scratch.ctypes.data
        self.capacity = k
        c[C_K] = k if self.layers else 0

    def allocate(self, n_ctx: int) -> None:
        """Size the buffers for a context of n_ctx cells (rounded up to 256). Not during a decode."""
        k = -(-max(int(n_ctx), 1) // 256) * 256
        if k != self.capacity:
            self._alloc(k)

    # ------------------------------------------------------------ per decode
    def begin(self) -> None:
        """Mark the start of a decode: only what it captures counts as current."""
        self._stamp += 1
        self._ctrl[C_STAMP] = self._stamp

    @property
    def asks(self) -> int:
        """How many ``ask=true`` calls the callback has answered (all graph nodes seen)."""
        return int(self._ctrl[C_ASKS])

    def info(self, layer: int) -> dict:
        """What the callback saw for this layer in the last decode that reached it."""
        r = self._info[self._slot(layer)]
        return {
            "current": bool(r[I_STAMP] == self._stamp and self._stamp > 0),
            "n_kv": int(r[I_NKV]),
            "n_tokens": int(r[I_NTOK]),
            "n_head": int(r[I_NHEAD]),
            "n_stream": int(r[I_NSTREAM]),
            "n_valid": int(r[I_NVALID]),
            "scale": float(np.array([r[I_SCALE]], dtype=np.int64).astype(np.int32).view(np.float32)[0]),
            "max_bias": float(np.array([r[I_MAXBIAS]], dtype=np.int64).astype(np.int32).view(np.float32)[0]),
            "mask_type": int(r[I_MASKTYPE]),
            "flags": int(r[I_FLAGS]),
            "scores_current": bool(r[I_SSTAMP] == self._stamp and self._stamp > 0),
        }

    def _slot(self, layer: int) -> int:
        if not self.layers:
            raise AttentionUnavailable("no attention layers are being captured")
        il = layer + self.n_layer if layer < 0 else layer
        s = self._slot_of.get(il)
        if s is None:
            raise UsageError(f"layer {layer} is not captured (captured: {list(self.layers)})")
        return s

    def _checked(self, layer: int) -> int:
        s = self._slot(layer)
        r = self._info[s]
        if self._stamp == 0 or r[I_STAMP] != self._stamp:
            raise AttentionUnavailable(
                f"the attention of layer {self.layers[s]} was not captured in the last decode",
                hint="flash attention must be off, and the backend must expose kq_soft_max nodes",
            )
        f = int(r[I_FLAGS])
        if f & F_NOT_F32:
            raise AttentionUnavailable(f"layer {self.layers[s]}: the softmax output is not float32")
        if f & F_NKV_OVERFLOW:
            raise AttentionUnavailable(f"layer {self.layers[s]}: n_kv exceeds the capture capacity")
        if f & F_HEADS_CLIPPED:
            raise AttentionUnavailable(f"layer {self.layers[s]}: more heads than the model reported")
        if f & F_MASK_TYPE:
            raise AttentionUnavailable(f"layer {self.layers[s]}: unsupported KQ mask type")
        return s

    # ------------------------------------------------------------ reading
    def window(self, layer: int) -> tuple[np.ndarray, np.ndarray]:
        """``(P[n_head, n_kv], valid[n_kv])``: views of the capture buffers (no copy; valid
        until the next decode) of the newest token's attention over the cache window."""
        s = self._checked(layer)
        r = self._info[s]
        nkv, nh = int(r[I_NKV]), int(r[I_NHEAD])
        return self._probs[s, :nh, :nkv], self._valid[s, :nkv]

    def rows(self, layer: int | None = None) -> np.ndarray:
        """Newest token's attention over valid cells (a copy), cell order.

        ``layer`` given: ``[n_head, n_valid]``. ``None``: all captured layers stacked,
        ``[n_layers, n_head, n_valid]``; raises ``AttentionUnavailable`` if the layers have
        different valid counts (sliding-window layers past their window): ask per layer then.
        """
        if layer is not None:
            p, v = self.window(layer)
            return p[:, v.astype(bool)]
        out = [self.rows(il) for il in self.layers]
        if not out:
            raise AttentionUnavailable("no attention layers are being captured")
        if len({a.shape for a in out}) != 1:
            raise AttentionUnavailable(
                "the captured layers attend over different numbers of cells (sliding-window "
                "layers): read them one at a time with rows(layer)"
            )
        return np.stack(out)

    def scores_window(self, layer: int) -> tuple[np.ndarray, np.ndarray, float]:
        """``(S[n_head, n_kv], valid[n_kv], scale)``: the softmax input (before its scale) of
        the newest token; pre-softmax score = scale * S. Needs ``scores=True``."""
        if not self.scores_enabled:
            raise AttentionUnavailable("pre-softmax scores are not captured", hint="pass attention_scores=True")
        s = self._checked(layer)
        r = self._info[s]
        if r[I_SSTAMP] != self._stamp or r[I_SNKV] != r[I_NKV]:
            raise AttentionUnavailable(f"the scores of layer {self.layers[s]} were not captured in the last decode")
        if r[I_FLAGS] & (F_SCORES_NOT_F32 | F_SCORES_OVERFLOW):
            raise AttentionUnavailable(f"layer {self.layers[s]}: the scores could not be captured")
        nkv, nh = int(r[I_NKV]), int(r[I_NHEAD])
        scale = float(np.array([r[I_SCALE]], dtype=np.int64).astype(np.int32).view(np.float32)[0])
        return self._scores[s, :nh, :nkv], self._valid[s, :nkv], scale

    def scores_rows(self, layer: int) -> np.ndarray:
        """Pre-softmax scores (``scale * S``) over the valid cells, ``[n_head, n_valid]`` (float32)."""
        sc, v, scale = self.scores_window(layer)
        return (sc[:, v.astype(bool)] * np.float32(scale)).astype(np.float32)

    def metrics(self, layer: int | None = None) -> AttentionMetrics:
        """Entropix attention metrics of one layer (default: the last captured one)."""
        if layer is None:
            if not self.layers:
                raise AttentionUnavailable("no attention layers are being captured")
            layer = self.layers[-1]
        p, v = self.window(layer)
        nh = p.shape[0]
        hh, hv = self._head_h[:nh], self._head_v[:nh]
        h, var, agree = attention_metrics_masked(p, v, p.shape[1], hh, hv)
        inter = math.nan
        if self.scores_enabled:
            sc, v2, scale = self.scores_window(layer)
            inter = interaction_strength_masked(sc, v2, sc.shape[1], scale)
        return AttentionMetrics(h, var, agree, inter, hh.copy(), hv.copy(), int(np.count_nonzero(v)))

    # ------------------------------------------------------------ snapshots (prompt reuse)
    def snapshot(self):
        """A copy of what the last decode captured (for a prompt whose logits are reused)."""
        if not self.layers or self._stamp == 0:
            return None
        cur = self._info[:, I_STAMP] == self._stamp
        sc = self._scores.copy() if self._scores is not None else None
        return (self._probs.copy(), sc, self._valid.copy(), self._info.copy(), cur, self._stamp)

    def restore(self, snap) -> None:
        """Make a snapshot current again, as if its decode had just run."""
        self.begin()
        if snap is None:
            return
        probs, sc, valid, info, cur, old = snap
        if probs.shape != self._probs.shape:
            return
        self._probs[...] = probs
        if sc is not None and self._scores is not None:
            self._scores[...] = sc
        self._valid[...] = valid
        self._info[...] = info
        self._info[cur, I_STAMP] = self._stamp
        self._info[info[:, I_SSTAMP] == old, I_SSTAMP] = self._stamp
