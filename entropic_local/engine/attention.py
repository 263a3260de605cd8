"""Attention capture: read the newest token's attention out of llama.cpp while it decodes.

How it works
------------
llama.cpp's graph scheduler accepts an eval callback (``llama_context_params.cb_eval``,
``bool cb(struct ggml_tensor *t, bool ask, void *user_data)``). With one installed it calls
``cb(t, true, ud)`` for **every** graph node ("do you want this one?") and, for the nodes that
answered yes, ``cb(t, false, ud)`` right after the node has been computed (the graph is then
computed in chunks that end at the wanted nodes). The attention nodes are named
``kq-<layer>`` (raw ``Q K^T``), ``kq_scaled_2-<layer>`` (after soft-capping, models that have
it), ``kq_soft_max-<layer>`` (probabilities after mask, scale and softmax), with
``ne = [n_kv, n_tokens, n_head, n_stream]``, float32. Flash attention fuses the softmax away,
so it is switched off whenever attention is requested.

The callback is ONE compiled function (a numba ``@cfunc``, ``_eval_callback``): no Python
runs for ``ask=true`` nor for ``ask=false``. It compares the tensor's name bytes in place
(``name`` at offset 256 of ``struct ggml_tensor``), parses the layer number, looks it up in a
small int32 table (layer -> capture slot, -1 = not wanted) held in ``user_data`` memory, and
on ``ask=false`` copies the newest token's row of every head with
``ggml_backend_tensor_get_2d`` (or ``ggml_backend_tensor_get`` per head where the 2-D form
does not exist), called through its address: correct for host and device buffers alike.
Only the LAST token of the micro-batch is copied (row ``n_tokens - 1``; the last stream).
The copies go into preallocated buffers ``probs[slot, head, cell]`` (and
``scores[slot, head, cell]``), plus the valid-cell mask and what was seen (``n_kv``,
``n_tokens``, ``n_head``, the softmax scale, a decode stamp).

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

Cost: see ``bench_attention_hook`` (``python -m entropic_local.engine.attention MODEL``).
"""

from __future__ import annotations

import ctypes
import math
import statistics
import time
from typing import NamedTuple, Sequence

import numpy as np
from llvmlite import ir
from numba import carray, cfunc, njit, types
from numba.extending import intrinsic

from ..errors import AttentionUnavailable, UsageError

# --------------------------------------------------------------------------- ggml layout
# struct ggml_tensor on 64-bit platforms (ggml.h): checked at run time by _check_layout().
OFF_TYPE = 0
OFF_NE = 16
OFF_NB = 48
OFF_OP = 80
OFF_OP_PARAMS = 84
OFF_SRC = 152
OFF_DATA = 248
OFF_NAME = 256
GGML_TYPE_F32 = 0
GGML_TYPE_F16 = 1

# ctrl block (int64), the callback's user_data
C_NLAYER = 0  # length of the layer -> slot table
C_SLOTS = 1  # address of int32[n_layer] table: slot or -1
C_WANT_SCORES = 2  # also capture pre-softmax scores
C_PROBS = 3  # address of float32[S, H, K]
C_SCORES = 4  # address of float32[S, H, K] (0 when not captured)
C_VALID = 5  # address of uint8[S, K]
C_INFO = 6  # address of int64[S, INFO_W]
C_S = 7
C_H = 8
C_K = 9  # capacity in cells; 0 = not allocated yet (capture nothing)
C_GET = 10  # address of ggml_backend_tensor_get
C_GET2D = 11  # address of ggml_backend_tensor_get_2d, or 0
C_SCRATCH = 12  # address of float32[K] (mask row)
C_STAMP = 13  # decode stamp, set by Python before each decode
C_ASKS = 14  # number of ask=true calls seen (diagnostics)
C_LEN = 16

# info columns (int64 per slot)
I_STAMP = 0  # stamp of the decode that wrote probs
I_NKV = 1
I_NTOK = 2
I_NHEAD = 3
I_NSTREAM = 4
I_SCALE = 5  # float32 bits of the softmax scale (op_params[0])
I_MAXBIAS = 6  # float32 bits of the ALiBi max bias (op_params[1])
I_SSTAMP = 7  # stamp of the decode that wrote scores
I_SNKV = 8
I_FLAGS = 9
I_MASKTYPE = 10
I_NVALID = 11
INFO_W = 12

F_NO_MASK = 1
F_HEADS_CLIPPED = 2
F_NKV_OVERFLOW = 4
F_MASK_TYPE = 8
F_NOT_F32 = 16
F_SCORES_NOT_F32 = 32
F_SCORES_OVERFLOW = 64


# --------------------------------------------------------------------------- intrinsics
_I8P = ir.IntType(8).as_pointer()
_I64 = ir.IntType(64)


@intrinsic
def _vp(typingctx, addr):
    """integer address -> void*"""

    def codegen(context, builder, signature, args):
        return builder.inttoptr(args[0], _I8P)

    return types.voidptr(addr), codegen


@intrinsic
def _addr(typingctx, ptr):
    """void* -> int64 address"""

    def codegen(context, builder, signature, args):
        return builder.ptrtoint(args[0], _I64)

    return types.int64(ptr), codegen


@intrinsic
def _call_get(typingctx, fn, t, dst, off, size):
    """void fn(const ggml_tensor *t, void *dst, size_t off, size_t size) at address fn."""
    sig = types.void(fn, t, dst, off, size)

    def codegen(context, builder, signature, args):
        fnty = ir.FunctionType(ir.VoidType(), [_I8P, _I8P, _I64, _I64])
        f = builder.inttoptr(args[0], fnty.as_pointer())
        builder.call(f, [builder.inttoptr(args[1], _I8P), builder.inttoptr(args[2], _I8P), args[3], args[4]])
        return context.get_dummy_value()

    return sig, codegen


@intrinsic
def _call_get2d(typingctx, fn, t, dst, off, size, n, stride_t, stride_d):
    """void fn(t, dst, off, size, n_copies, stride_tensor, stride_data) at address fn."""
    sig = types.void(fn, t, dst, off, size, n, stride_t, stride_d)

    def codegen(context, builder, signature, args):
        fnty = ir.FunctionType(ir.VoidType(), [_I8P, _I8P, _I64, _I64, _I64, _I64, _I64])
        f = builder.inttoptr(args[0], fnty.as_pointer())
        builder.call(
            f,
            [builder.inttoptr(args[1], _I8P), builder.inttoptr(args[2], _I8P), args[3], args[4], args[5], args[6], args[7]],
        )
        return context.get_dummy_value()

    return sig, codegen


# --------------------------------------------------------------------------- the callback
_P_SOFTMAX = np.frombuffer(b"kq_soft_max-", dtype=np.uint8).copy()
_P_KQ = np.frombuffer(b"kq-", dtype=np.uint8).copy()
_P_SCALED2 = np.frombuffer(b"kq_scaled_2-", dtype=np.uint8).copy()
_P_KQB = np.frombuffer(b"kq_plus_kq_b-", dtype=np.uint8).copy()


@njit(cache=True)
def _prefix(name, pat):
    for i in range(pat.shape[0]):
        if name[i] != pat[i]:
            return 0
    return pat.shape[0]


@njit(cache=True)
def _parse(name):
    """(kind, layer): kind 1 = kq_soft_max-<il>, 2 = pre-softmax scores, 0 = other node."""
    kind = 0
    i = 0
    if name[2] == 45:  # 'kq-'
        kind, i = 2, 3
    else:
        i = _prefix(name, _P_SOFTMAX)
        if i:
            kind = 1
        else:
            i = _prefix(name, _P_SCALED2)
            if i == 0:
                i = _prefix(name, _P_KQB)
            if i:
                kind = 2
    if kind == 0:
        return 0, -1
    il = 0
    nd = 0
    while i < 64 and 48 <= name[i] <= 57:
        il = il * 10 + (name[i] - 48)
        nd += 1
        i += 1
        if nd > 6:
            return 0, -1
    if nd == 0 or i >= 64 or name[i] != 0:
        return 0, -1
    return kind, il


@njit(cache=True)
def _copy_rows(ctrl, t, hdr, dst, nh, k_cap):
    """Copy the last token's row (n_kv floats) of nh heads of tensor t into dst[h*K + j]."""
    ne0, ne1, ne3 = hdr[2], hdr[3], hdr[5]
    nb1, nb2, nb3 = hdr[7], hdr[8], hdr[9]
    off = (ne1 - 1) * nb1 + (ne3 - 1) * nb3
    if ctrl[C_GET2D] != 0:
        _call_get2d(ctrl[C_GET2D], t, dst, off, ne0 * 4, nh, nb2, k_cap * 4)
    else:
        for h in range(nh):
            _call_get(ctrl[C_GET], t, dst + h * k_cap * 4, off + h * nb2, ne0 * 4)


@njit(cache=True)
def _capture(t_ptr, kind, slot, ctrl):
    t = _addr(t_ptr)
    hdr = carray(t_ptr, (42,), np.int64)
    i32 = carray(t_ptr, (40,), np.int32)
    n_slots = ctrl[C_S]
    h_cap = ctrl[C_H]
    k_cap = ctrl[C_K]
    info = carray(_vp(ctrl[C_INFO]), (n_slots, INFO_W), np.int64)
    ne0, ne1, ne2, ne3 = hdr[2], hdr[3], hdr[4], hdr[5]
    nh = ne2 if ne2 <= h_cap else h_cap
    if kind == 2:
        flags = info[slot, I_FLAGS] & ~(F_SCORES_NOT_F32 | F_SCORES_OVERFLOW)
        if i32[0] != GGML_TYPE_F32:
            flags |= F_SCORES_NOT_F32
        elif ne0 > k_cap:
            flags |= F_SCORES_OVERFLOW
        else:
            _copy_rows(ctrl, t, hdr, ctrl[C_SCORES] + slot * h_cap * k_cap * 4, nh, k_cap)
            info[slot, I_SSTAMP] = ctrl[C_STAMP]
            info[slot, I_SNKV] = ne0
        info[slot, I_FLAGS] = flags
        return
    # kind 1: probabilities
    flags = info[slot, I_FLAGS] & (F_SCORES_NOT_F32 | F_SCORES_OVERFLOW)
    info[slot, I_NKV] = ne0
    info[slot, I_NTOK] = ne1
    info[slot, I_NHEAD] = nh
    info[slot, I_NSTREAM] = ne3
    info[slot, I_SCALE] = i32[OFF_OP_PARAMS // 4]
    info[slot, I_MAXBIAS] = i32[OFF_OP_PARAMS // 4 + 1]
    if ne2 > h_cap:
        flags |= F_HEADS_CLIPPED
    if i32[0] != GGML_TYPE_F32:
        info[slot, I_FLAGS] = flags | F_NOT_F32
        info[slot, I_STAMP] = ctrl[C_STAMP]
        return
    if ne0 > k_cap:
        info[slot, I_FLAGS] = flags | F_NKV_OVERFLOW
        info[slot, I_STAMP] = ctrl[C_STAMP]
        return
    _copy_rows(ctrl, t, hdr, ctrl[C_PROBS] + slot * h_cap * k_cap * 4, nh, k_cap)
    # the mask row of the same token: valid cells
    valid = carray(_vp(ctrl[C_VALID] + slot * k_cap), (k_cap,), np.uint8)
    src1 = hdr[OFF_SRC // 8 + 1]
    n_valid = 0
    mtype = -1
    if src1 == 0:
        flags |= F_NO_MASK
        for j in range(ne0):
            valid[j] = 1
        n_valid = ne0
    else:
        m = carray(_vp(src1), (42,), np.int64)
        m32 = carray(_vp(src1), (40,), np.int32)
        mtype = m32[0]
        mne0, mne1, mne3 = m[2], m[3], m[5]
        mnb1, mnb3 = m[7], m[9]
        ncopy = ne0 if ne0 <= mne0 else mne0
        moff = ((ne1 - 1) % mne1) * mnb1 + ((ne3 - 1) % mne3) * mnb3
        if mtype == GGML_TYPE_F32:
            _call_get(ctrl[C_GET], src1, ctrl[C_SCRATCH], moff, ncopy * 4)
            row = carray(_vp(ctrl[C_SCRATCH]), (k_cap,), np.float32)
            for j in range(ncopy):
                ok = row[j] != -np.inf
                valid[j] = ok
                n_valid += ok
        elif mtype == GGML_TYPE_F16:
            _call_get(ctrl[C_GET], src1, ctrl[C_SCRATCH], moff, ncopy * 2)
            row16 = carray(_vp(ctrl[C_SCRATCH]), (2 * k_cap,), np.uint16)
            for j in range(ncopy):
                ok = row16[j] != 0xFC00
                valid[j] = ok
                n_valid += ok
        else:
            flags |= F_MASK_TYPE
            ncopy = 0
        for j in range(ncopy, ne0):
            valid[j] = 0
    info[slot, I_MASKTYPE] = mtype
    info[slot, I_NVALID] = n_valid
    info[slot, I_FLAGS] = flags
    info[slot, I_STAMP] = ctrl[C_STAMP]


@njit(cache=True)
def _wanted(t, ask, ctrl):
    """(kind, slot) of graph node ``t`` when this capture wants it (kind 1: probabilities,
    2: scores), else (0, -1); counts the asks. The part of the eval callback both callbacks
    (this one and engine/attention_entmax.py's) share."""
    if ask:
        ctrl[C_ASKS] += 1
    name = carray(t, (OFF_NAME + 64,), np.uint8)[OFF_NAME:]
    if name[0] != 107 or name[1] != 113:  # fast reject: not "kq..."
        return 0, -1
    kind, il = _parse(name)
    if kind == 0 or il >= ctrl[C_NLAYER] or ctrl[C_K] == 0:
        return 0, -1
    slot = carray(_vp(ctrl[C_SLOTS]), (ctrl[C_NLAYER],), np.int32)[il]
    if slot < 0 or (kind == 2 and ctrl[C_WANT_SCORES] == 0):
        return 0, -1
    return kind, slot


@cfunc(types.boolean(types.voidptr, types.boolean, types.voidptr), cache=True)
def _eval_callback(t, ask, ud):
    ctrl = carray(ud, (C_LEN,), np.int64)
    kind, slot = _wanted(t, ask, ctrl)
    if kind == 0:
        return False
    if ask:
        return True
    _capture(t, kind, slot, ctrl)
    return True  # false would abort the graph compute


# --------------------------------------------------------------------------- ggml access
_ggml_funcs: dict[str, int] | None = None


def _ggml_addresses() -> dict[str, int]:
    """Addresses of ggml_backend_tensor_get(_2d), after checking the ggml_tensor layout."""
    global _ggml_funcs
    if _ggml_funcs is None:
        from llama_cpp._ggml import libggml

        get = ctypes.cast(libggml.ggml_backend_tensor_get, ctypes.c_void_p).value
        try:
            get2d = ctypes.cast(libggml.ggml_backend_tensor_get_2d, ctypes.c_void_p).value or 0
        except AttributeError:  # older ggml
            get2d = 0
        _check_layout(libggml)
        _ggml_funcs = {"get": int(get), "get2d": int(get2d)}
    return _ggml_funcs


class _GgmlInitParams(ctypes.Structure):
    _fields_ = [("mem_size", ctypes.c_size_t), ("mem_buffer", ctypes.c_void_p), ("no_alloc", ctypes.c_bool)]


def _check_layout(lib) -> None:
    """Build a small ggml graph node and check the struct offsets the callback relies on."""
    lib.ggml_init.restype = ctypes.c_void_p
    lib.ggml_init.argtypes = [_GgmlInitParams]
    lib.ggml_free.argtypes = [ctypes.c_void_p]
    lib.ggml_new_tensor_4d.restype = ctypes.c_void_p
    lib.ggml_new_tensor_4d.argtypes = [ctypes.c_void_p, ctypes.c_int] + [ctypes.c_int64] * 4
    lib.ggml_soft_max_ext.restype = ctypes.c_void_p
    lib.ggml_soft_max_ext.argtypes = [ctypes.c_void_p] * 3 + [ctypes.c_float] * 2
    lib.ggml_set_name.restype = ctypes.c_void_p
    lib.ggml_set_name.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
    lib.ggml_get_name.restype = ctypes.c_void_p
    lib.ggml_get_name.argtypes = [ctypes.c_void_p]
    lib.ggml_get_data.restype = ctypes.c_void_p
    lib.ggml_get_data.argtypes = [ctypes.c_void_p]
    ctx = lib.ggml_init(_GgmlInitParams(1 << 20, None, False))
    if not ctx:
        raise AttentionUnavailable("ggml_init failed while checking the ggml_tensor layout")
    try:
        a = lib.ggml_new_tensor_4d(ctx, GGML_TYPE_F32, 7, 5, 3, 2)
        mask = lib.ggml_new_tensor_4d(ctx, GGML_TYPE_F32, 7, 5, 1, 2)
        sm = lib.ggml_soft_max_ext(ctx, a, mask, ctypes.c_float(0.125), ctypes.c_float(0.0))
        lib.ggml_set_name(sm, b"kq_soft_max-12")
        ne = np.frombuffer(ctypes.string_at(sm + OFF_NE, 32), dtype=np.int64).tolist()
        nb = np.frombuffer(ctypes.string_at(sm + OFF_NB, 32), dtype=np.uint64).tolist()
        scale = np.frombuffer(ctypes.string_at(sm + OFF_OP_PARAMS, 4), dtype=np.float32)[0]
        srcs = np.frombuffer(ctypes.string_at(sm + OFF_SRC, 16), dtype=np.uint64).tolist()
        data = ctypes.c_uint64.from_address(sm + OFF_DATA).value
        ok = (
            ctypes.c_int32.from_address(sm + OFF_TYPE).value == GGML_TYPE_F32
            and ne == [7, 5, 3, 2]
            and nb == [4, 28, 140, 420]
            and scale == np.float32(0.125)
            and srcs == [a, mask]
            and lib.ggml_get_name(sm) == sm + OFF_NAME
            and ctypes.string_at(sm + OFF_NAME) == b"kq_soft_max-12"
            and data == (lib.ggml_get_data(sm) or 0)
        )
    finally:
        lib.ggml_free(ctx)
    if not ok:
        raise AttentionUnavailable(
            "this llama.cpp build's struct ggml_tensor layout differs from the one the attention "
            "hook was written for",
            hint="use a llama-cpp-python version this package supports, or run without attention",
        )


# --------------------------------------------------------------------------- spec parsing
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
        funcs = _ggml_addresses()
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
        from llama_cpp import ggml_backend_sched_eval_callback

        self.callback = ggml_backend_sched_eval_callback(_eval_callback.address)
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

    def valid_cells(self, layer: int) -> np.ndarray:
        """KV-cell indices the newest token attended over (ascending)."""
        _, v = self.window(layer)
        return np.flatnonzero(v)

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
        from ..kernels.attention import attention_metrics_masked, interaction_strength_masked

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


# --------------------------------------------------------------------------- measurement
def bench_attention_hook(
    path,
    n_tokens: int = 64,
    *,
    rounds: int = 5,
    n_ctx: int = 512,
    n_threads: int | None = None,
    prompt: str = "The history of the printing press begins",
    verbose: bool = True,
) -> dict:
    """The hook's own cost, ms/token of ``eval_token``, configurations alternating in one run.

    Configurations (all flash attention off unless said): ``no_hook``; ``hook_nothing``
    (callback installed, no layer wanted: the cost of ``ask`` on every node); ``last``;
    ``last+scores``; ``all``; ``all+scores``; ``last+metrics`` (last layer plus the metric
    kernels every token); and ``no_hook_fa_auto`` (llama.cpp's default flash-attention
    setting, for reference). Every engine decodes the same greedy continuation (the logits
    are identical with and without the hook). Returns ``{config: median wall ms/token}``
    plus ``"_cpu"`` (median process CPU ms/token: less sensitive to other load on the
    machine when ``n_threads=1``) and ``"_meta"``.
    """
    from .llama_engine import Engine

    configs = {
        "no_hook": dict(flash_attn=False),
        "no_hook_fa_auto": dict(),
        "hook_nothing": dict(attention=[]),
        "last": dict(attention="last"),
        "last+scores": dict(attention="last", attention_scores=True),
        "last+metrics": dict(attention="last", attention_scores=True),
        "all": dict(attention="all"),
        "all+scores": dict(attention="all", attention_scores=True),
    }
    engines = {k: Engine(path, n_ctx=n_ctx, n_threads=n_threads, **kw) for k, kw in configs.items()}
    try:
        ref = engines["no_hook"]
        prompt_toks = ref.tokenize(prompt)
        # the greedy continuation, fixed once, fed to every engine
        ref.eval_prompt(prompt_toks)
        cont = []
        for _ in range(n_tokens):
            t = int(np.argmax(ref.logits()))
            cont.append(t)
            ref.eval_token(t)
        times: dict[str, list[float]] = {k: [] for k in configs}
        cpu: dict[str, list[float]] = {k: [] for k in configs}
        asks = {}
        for _ in range(rounds):
            for k, e in engines.items():
                e.clear()
                e.eval_prompt(prompt_toks)
                with_metrics = k == "last+metrics"
                a0 = e.attention.asks if e.attention is not None else 0
                c0 = time.process_time()
                t0 = time.perf_counter()
                for t in cont:
                    e.eval_token(t)
                    if with_metrics:
                        e.attention.metrics()
                dt = time.perf_counter() - t0
                dc = time.process_time() - c0
                times[k].append(1000.0 * dt / len(cont))
                cpu[k].append(1000.0 * dc / len(cont))
                if e.attention is not None:
                    asks[k] = (e.attention.asks - a0) / len(cont)
        out = {k: statistics.median(v) for k, v in times.items()}
        out["_cpu"] = {k: statistics.median(v) for k, v in cpu.items()}
        # paired per-round differences against no_hook: robust to slow drifts of machine load
        out["_delta"] = {k: statistics.median(x - y for x, y in zip(v, times["no_hook"])) for k, v in times.items()}
        out["_meta"] = {
            "model": ref.description,
            "n_tokens": n_tokens,
            "rounds": rounds,
            "n_threads": ref.n_threads,
            "graph_nodes_per_token": asks.get("hook_nothing"),
            "all_ms_per_round": {k: [round(x, 3) for x in v] for k, v in times.items()},
        }
        if verbose:
            base, cbase = out["no_hook"], out["_cpu"]["no_hook"]
            print(f"{ref.description}: {n_tokens} tokens x {rounds} rounds, {ref.n_threads} threads")
            print(f"  {'config':16s} {'wall ms/token':>22s} {'cpu ms/token':>22s}")
            for k in configs:
                c = out["_cpu"][k]
                d = out["_delta"][k]
                print(f"  {k:16s} {out[k]:9.3f} ({out[k] - base:+7.3f}) {c:9.3f} ({c - cbase:+7.3f})  paired {d:+7.3f}")
        return out
    finally:
        for e in engines.values():
            e.close()


if __name__ == "__main__":  # python -m entropic_local.engine.attention smollm2-135m [n_tokens]
    import sys

    from ..registry import resolve_model

    name = sys.argv[1] if len(sys.argv) > 1 else "smollm2-135m"
    bench_attention_hook(resolve_model(name), int(sys.argv[2]) if len(sys.argv) > 2 else 64)
