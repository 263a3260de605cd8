"""The compiled eval callback that captures attention, and the control block it reads.

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
"""

from __future__ import annotations

import numpy as np
from numba import carray, cfunc, njit, types

from .ggml import (
    GGML_TYPE_F16, GGML_TYPE_F32, OFF_NAME, OFF_OP_PARAMS, OFF_SRC, address, call_tensor_io,
    call_tensor_io_2d, void_ptr,
)

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
def parse_node_name(name):
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
def copy_rows(ctrl, t, hdr, dst, nh, k_cap):
    """Copy the last token's row (n_kv floats) of nh heads of tensor t into dst[h*K + j]."""
    ne0, ne1, ne3 = hdr[2], hdr[3], hdr[5]
    nb1, nb2, nb3 = hdr[7], hdr[8], hdr[9]
    off = (ne1 - 1) * nb1 + (ne3 - 1) * nb3
    if ctrl[C_GET2D] != 0:
        call_tensor_io_2d(ctrl[C_GET2D], t, dst, off, ne0 * 4, nh, nb2, k_cap * 4)
    else:
        for h in range(nh):
            call_tensor_io(ctrl[C_GET], t, dst + h * k_cap * 4, off + h * nb2, ne0 * 4)


@njit(cache=True)
def capture_node(t_ptr, kind, slot, ctrl):
    t = address(t_ptr)
    hdr = carray(t_ptr, (42,), np.int64)
    i32 = carray(t_ptr, (40,), np.int32)
    n_slots = ctrl[C_S]
    h_cap = ctrl[C_H]
    k_cap = ctrl[C_K]
    info = carray(void_ptr(ctrl[C_INFO]), (n_slots, INFO_W), np.int64)
    ne0, ne1, ne2, ne3 = hdr[2], hdr[3], hdr[4], hdr[5]
    nh = ne2 if ne2 <= h_cap else h_cap
    if kind == 2:
        flags = info[slot, I_FLAGS] & ~(F_SCORES_NOT_F32 | F_SCORES_OVERFLOW)
        if i32[0] != GGML_TYPE_F32:
            flags |= F_SCORES_NOT_F32
        elif ne0 > k_cap:
            flags |= F_SCORES_OVERFLOW
        else:
            copy_rows(ctrl, t, hdr, ctrl[C_SCORES] + slot * h_cap * k_cap * 4, nh, k_cap)
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
    copy_rows(ctrl, t, hdr, ctrl[C_PROBS] + slot * h_cap * k_cap * 4, nh, k_cap)
    # the mask row of the same token: valid cells
    valid = carray(void_ptr(ctrl[C_VALID] + slot * k_cap), (k_cap,), np.uint8)
    src1 = hdr[OFF_SRC // 8 + 1]
    n_valid = 0
    mtype = -1
    if src1 == 0:
        flags |= F_NO_MASK
        for j in range(ne0):
            valid[j] = 1
        n_valid = ne0
    else:
        m = carray(void_ptr(src1), (42,), np.int64)
        m32 = carray(void_ptr(src1), (40,), np.int32)
        mtype = m32[0]
        mne0, mne1, mne3 = m[2], m[3], m[5]
        mnb1, mnb3 = m[7], m[9]
        ncopy = ne0 if ne0 <= mne0 else mne0
        moff = ((ne1 - 1) % mne1) * mnb1 + ((ne3 - 1) % mne3) * mnb3
        if mtype == GGML_TYPE_F32:
            call_tensor_io(ctrl[C_GET], src1, ctrl[C_SCRATCH], moff, ncopy * 4)
            row = carray(void_ptr(ctrl[C_SCRATCH]), (k_cap,), np.float32)
            for j in range(ncopy):
                ok = row[j] != -np.inf
                valid[j] = ok
                n_valid += ok
        elif mtype == GGML_TYPE_F16:
            call_tensor_io(ctrl[C_GET], src1, ctrl[C_SCRATCH], moff, ncopy * 2)
            row16 = carray(void_ptr(ctrl[C_SCRATCH]), (2 * k_cap,), np.uint16)
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
def wanted_node(t, ask, ctrl):
    """(kind, slot) of graph node ``t`` when this capture wants it (kind 1: probabilities,
    2: scores), else (0, -1); counts the asks. Shared by both callbacks (this module's and
    ``engine/entmax_callback.py``'s)."""
    if ask:
        ctrl[C_ASKS] += 1
    name = carray(t, (OFF_NAME + 64,), np.uint8)[OFF_NAME:]
    if name[0] != 107 or name[1] != 113:  # fast reject: not "kq..."
        return 0, -1
    kind, il = parse_node_name(name)
    if kind == 0 or il >= ctrl[C_NLAYER] or ctrl[C_K] == 0:
        return 0, -1
    slot = carray(void_ptr(ctrl[C_SLOTS]), (ctrl[C_NLAYER],), np.int32)[il]
    if slot < 0 or (kind == 2 and ctrl[C_WANT_SCORES] == 0):
        return 0, -1
    return kind, slot


@cfunc(types.boolean(types.voidptr, types.boolean, types.voidptr), cache=True)
def eval_callback(t, ask, ud):
    ctrl = carray(ud, (C_LEN,), np.int64)
    kind, slot = wanted_node(t, ask, ctrl)
    if kind == 0:
        return False
    if ask:
        return True
    capture_node(t, kind, slot, ctrl)
    return True  # false would abort the graph compute
