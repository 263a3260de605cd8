"""The compiled eval callback of entmax attention: α-entmax of chosen layers' attention
written back into llama.cpp's graph (the object that installs it: ``engine/attention_entmax.py``).

Entmax attention at inference (experimental): replace chosen layers' softmax attention by
α-entmax of the same scores, inside llama.cpp's graph, through the attention hook.

What it does
------------
For every chosen layer ``l`` llama.cpp computes ``P = softmax(s)`` row by row, with the
scores ``s = scale · Q Kᵀ (+ soft-cap, ALiBi bias) + mask`` (``mask`` = 0 on the cells the
query may attend to, ``-inf`` elsewhere), and names the result ``kq_soft_max-<l>``
(``ne = [n_kv, n_tokens, n_head, n_stream]``, float32). The eval callback of this module
(a numba ``@cfunc``, ``_entmax_eval_callback``) asks for those nodes like the capture of
``engine/attention_callback.py`` does and, in the ``ask=false`` call, right after the softmax node has
been computed and before anything reads it, overwrites **every** row (every query token of
the micro-batch, prompt prefill included, every head, every stream) by::

    P'[t, h] = entmax_α(log P[t, h])          (α-entmax, kernels/alpha_entmax, T = 1)

and writes it back with ``ggml_backend_tensor_set(_2d)``. The next node, ``kqv = V P'``,
and so the rest of the layer and the model, use the entmax weights. Layers not chosen keep
their softmax. Nothing in the ``ask=false`` path runs Python: the cfunc calls njit code,
which calls ggml's get/set through their addresses (valid for host and device buffers).

The scores from the probabilities
---------------------------------
``P = softmax(s)`` gives ``log P_j = s_j - log Σ_i e^{s_i}``: the scores up to one constant
per row. α-entmax is shift invariant (``entmax_α(s + c) = entmax_α(s)``: τ absorbs
``(α-1)c``), so ``entmax_α(log P) = entmax_α(s)`` exactly, with no need to capture the raw
``kq`` node or to know the scale, the soft-cap or an ALiBi slope. Masked cells have
``P = 0``, ``log 0 = -inf``, a masked entry of the entmax kernel: they get exactly 0. The
row actually passed is ``z_j = log P_j - log max P`` (float64, rounded to float32 for the
kernel): the cells near the top, the only ones that can be in an entmax support, then have
small magnitudes and keep ~1e-7 relative precision. A valid cell whose softmax probability
underflowed to 0 (a score more than ~100 below the row's max) is treated as ``-inf``: for
any α > 1 it is far outside the support (the support of ``entmax_α`` lies within
``1/(α-1)`` of the max score), so nothing is lost.

Temperature convention ("the same scores")
------------------------------------------
``alpha_entmax.entmax(z, α, T)`` is Peters, Niculae, Martins (2019)'s
``entmax_α(z/T)_i = [(α-1) z_i/T - τ]_+^{1/(α-1)}``: the factor ``(α-1)`` multiplies the
scores *inside* the kernel. Here ``T = 1`` and ``z = s`` (up to the shift), so "the same
scores" means: the very input of the model's softmax, in its own units, and
``α → 1`` recovers that softmax exactly (α = 1 leaves the row untouched, see below). This is
the parameterisation of Correia, Niculae, Martins (2019), "Adaptively Sparse Transformers"
(``entmax_bisect(s, α)``). With it the support of a row is contained in the cells whose
score is within ``1/(α-1)`` of the row's max: 1 for sparsemax (α = 2), 2 for α = 1.5,
10 for α = 1.1. Nothing is rescaled: the model was trained with softmax at this scale, and
entmax at it is the plain drop-in.
"""

from __future__ import annotations

import math

import numpy as np
from numba import carray, cfunc, njit, types

from ..kernels.alpha_entmax import entmax
from ..kernels.fastmath import bits_f64
from .attention_callback import C_GET, C_GET2D, C_LEN, capture_node, wanted_node
from .ggml import GGML_TYPE_F16, GGML_TYPE_F32, OFF_SRC, address, call_tensor_io, call_tensor_io_2d, void_ptr

ALPHA_SNAP = 1.1   # adaptive α below this is used as exactly 1 (row untouched)

MODE_OFF, MODE_FIXED, MODE_ADAPTIVE = 0, 1, 2

# ectrl (int64): this callback's user_data
E_CTRL = 0     # address of the capture's control block (attention_callback.C_*)
E_MODE = 1     # MODE_*
E_ALPHA = 2    # float64 bits: the fixed α, or α_max (adaptive)
E_ETA_LO = 3   # float64 bits
E_ETA_HI = 4   # float64 bits
E_SNAP = 5     # float64 bits (adaptive only)
E_SET = 6      # address of ggml_backend_tensor_set
E_SET2D = 7    # address of ggml_backend_tensor_set_2d, or 0
E_K = 8        # capacity in cells of the row buffers; 0 = not allocated (do nothing)
E_ROWS = 9     # rows per chunk
E_BUF = 10     # float32[R, K]: probability rows of one head
E_MBUF = 11    # float32[R, K]: mask rows (an f16 mask uses the first half of each row)
E_VALID = 12   # uint8[R, K]
E_Z = 13       # float32[K]
E_OUT = 14     # float32[K]
E_STATS = 15   # float64[S, H, NST]
E_FLAGS = 16   # int64[S]
E_NH = 17      # heads in the stats buffer
E_DUMMY = 18   # float64[NST]: stats of heads beyond E_NH (not reported)
E_LEN = 20

# stats columns (float64 per slot and head)
ST_ROWS = 0     # rows seen (skipped ones excluded)
ST_VALID = 1    # valid cells of those rows
ST_SUPPORT = 2  # cells with a non-zero weight afterwards
ST_ALPHA = 3    # Σ α used
ST_ETA = 4      # Σ normalised softmax entropy
ST_WRITTEN = 5  # rows written back (α > 1)
ST_SKIPPED = 6  # rows left alone: NaN / negative probability / no valid cell
NST = 8

# flags per slot
EF_NOT_F32 = 1
EF_NKV_OVERFLOW = 2
EF_NOT_CONTIG = 4
EF_MASK_TYPE = 8
EF_SINKS = 16
EF_NO_MASK = 32


@njit(cache=True)
def adaptive_alpha(eta, alpha_max, eta_lo, eta_hi, snap):
    """The per-head map of the module doc: normalised entropy η -> α (snapped)."""
    x = (eta_hi - eta) / (eta_hi - eta_lo)
    x = 0.0 if x < 0.0 else (1.0 if x > 1.0 else x)
    a = 1.0 + (alpha_max - 1.0) * (x * x * (3.0 - 2.0 * x))
    return 1.0 if a < snap else a


@njit(cache=True)
def _solve_row(row, valid, n, mode, a_fix, eta_lo, eta_hi, snap, z, out, st):
    """One attention row in place: row[:n] (float32 softmax probabilities) -> entmax_α of
    their logs, α fixed or from the row's normalised entropy. Accumulates into st[NST].
    Returns True when the row was rewritten."""
    nv = 0
    pmax = 0.0
    bad = False
    for j in range(n):
        if valid[j]:
            x = np.float64(row[j])
            nv += 1
            if not (x >= 0.0 and x < np.inf):
                bad = True
            elif x > pmax:
                pmax = x
    if bad or nv == 0 or pmax <= 0.0:
        st[ST_SKIPPED] += 1.0
        return False
    lmax = math.log(pmax)
    h = 0.0
    nz = 0
    for j in range(n):
        x = np.float64(row[j])
        if valid[j] and x > 0.0:
            lp = math.log(x)
            h -= x * lp
            z[j] = np.float32(lp - lmax)
            nz += 1
        else:
            z[j] = -np.inf
    eta = h / math.log(nv) if nv > 1 else 0.0
    if mode == MODE_ADAPTIVE:
        alpha = adaptive_alpha(eta, a_fix, eta_lo, eta_hi, snap)
    else:
        alpha = a_fix
    st[ST_ROWS] += 1.0
    st[ST_VALID] += nv
    st[ST_ALPHA] += alpha
    st[ST_ETA] += eta
    if alpha == 1.0:
        st[ST_SUPPORT] += nz
        return False
    k = entmax(z[:n], alpha, 1.0, out[:n])
    for j in range(n):
        row[j] = out[j]
    st[ST_SUPPORT] += k
    st[ST_WRITTEN] += 1.0
    return True


@njit(cache=True)
def _io_rows(fn, fn2d, t, buf, off, row_bytes, nrows, stride_t, stride_d):
    """ggml_backend_tensor_get(_2d) or set(_2d) (same argument layout) of nrows rows."""
    if nrows == 1 or fn2d == 0:
        for i in range(nrows):
            call_tensor_io(fn, t, buf + i * stride_d, off + i * stride_t, row_bytes)
    else:
        call_tensor_io_2d(fn2d, t, buf, off, row_bytes, nrows, stride_t, stride_d)


@njit(cache=True)
def _load_valid(ctrl, src1, mtype, mhdr, t0, r, h, s, ncopy, ne0, mbuf, vbuf, k_cap):
    """Valid-cell flags of query rows t0..t0+r-1 (head h, stream s) from the KQ mask."""
    mne1, mne2, mne3 = mhdr[3], mhdr[4], mhdr[5]
    mnb1, mnb2, mnb3 = mhdr[7], mhdr[8], mhdr[9]
    esz = 4 if mtype == GGML_TYPE_F32 else 2
    base = (h % mne2) * mnb2 + (s % mne3) * mnb3
    if t0 + r <= mne1:
        _io_rows(ctrl[C_GET], ctrl[C_GET2D], src1, mbuf, base + t0 * mnb1, ncopy * esz, r, mnb1, k_cap * 4)
    else:  # a mask broadcast over query rows (not llama.cpp's layout, kept for safety)
        for i in range(r):
            call_tensor_io(ctrl[C_GET], src1, mbuf + i * k_cap * 4, base + ((t0 + i) % mne1) * mnb1, ncopy * esz)
    v = carray(void_ptr(vbuf), (r * k_cap,), np.uint8)
    if mtype == GGML_TYPE_F32:
        m = carray(void_ptr(mbuf), (r * k_cap,), np.float32)
        for i in range(r):
            for j in range(ncopy):
                v[i * k_cap + j] = m[i * k_cap + j] != -np.inf
            for j in range(ncopy, ne0):
                v[i * k_cap + j] = 0
    else:
        m16 = carray(void_ptr(mbuf), (2 * r * k_cap,), np.uint16)
        for i in range(r):
            for j in range(ncopy):
                v[i * k_cap + j] = m16[2 * i * k_cap + j] != 0xFC00
            for j in range(ncopy, ne0):
                v[i * k_cap + j] = 0


@njit(cache=True)
def _entmax_rows(t_ptr, slot, ectrl, ctrl):
    """Rewrite every row of the kq_soft_max tensor t (all tokens, heads, streams)."""
    k_cap = ectrl[E_K]
    mode = ectrl[E_MODE]
    if k_cap == 0 or mode == MODE_OFF:
        return
    t = address(t_ptr)
    hdr = carray(t_ptr, (42,), np.int64)
    i32 = carray(t_ptr, (40,), np.int32)
    ne0, ne1, ne2, ne3 = hdr[2], hdr[3], hdr[4], hdr[5]
    nb0, nb1, nb2, nb3 = hdr[6], hdr[7], hdr[8], hdr[9]
    flags = carray(void_ptr(ectrl[E_FLAGS]), (slot + 1,), np.int64)
    if i32[0] != GGML_TYPE_F32:
        flags[slot] |= EF_NOT_F32
        return
    if ne0 > k_cap:
        flags[slot] |= EF_NKV_OVERFLOW
        return
    if nb0 != 4 or nb1 < ne0 * 4:
        flags[slot] |= EF_NOT_CONTIG
        return
    if hdr[OFF_SRC // 8 + 2] != 0:
        flags[slot] |= EF_SINKS
        return
    src1 = hdr[OFF_SRC // 8 + 1]
    mhdr = hdr  # placeholder type; replaced below when a mask exists
    mtype = -1
    ncopy = ne0
    if src1 != 0:
        mhdr = carray(void_ptr(src1), (42,), np.int64)
        mtype = carray(void_ptr(src1), (40,), np.int32)[0]
        if mtype != GGML_TYPE_F32 and mtype != GGML_TYPE_F16:
            flags[slot] |= EF_MASK_TYPE
            return
        ncopy = ne0 if ne0 <= mhdr[2] else mhdr[2]
    else:
        flags[slot] |= EF_NO_MASK
    R = ectrl[E_ROWS]
    nh_st = ectrl[E_NH]
    a_fix = bits_f64(ectrl[E_ALPHA])
    eta_lo = bits_f64(ectrl[E_ETA_LO])
    eta_hi = bits_f64(ectrl[E_ETA_HI])
    snap = bits_f64(ectrl[E_SNAP])
    buf = ectrl[E_BUF]
    rows = carray(void_ptr(buf), (R * k_cap,), np.float32)
    valid = carray(void_ptr(ectrl[E_VALID]), (R * k_cap,), np.uint8)
    z = carray(void_ptr(ectrl[E_Z]), (k_cap,), np.float32)
    out = carray(void_ptr(ectrl[E_OUT]), (k_cap,), np.float32)
    stats = carray(void_ptr(ectrl[E_STATS]), ((slot + 1) * nh_st * NST,), np.float64)
    dummy = carray(void_ptr(ectrl[E_DUMMY]), (NST,), np.float64)
    per_head_mask = src1 != 0 and mhdr[4] > 1
    for s in range(ne3):
        for t0 in range(0, ne1, R):
            r = R if t0 + R <= ne1 else ne1 - t0
            if src1 == 0:
                for i in range(r * k_cap):
                    valid[i] = 1
            for h in range(ne2):
                if src1 != 0 and (h == 0 or per_head_mask):
                    _load_valid(ctrl, src1, mtype, mhdr, t0, r, h, s, ncopy, ne0, ectrl[E_MBUF],
                                ectrl[E_VALID], k_cap)
                off = s * nb3 + h * nb2 + t0 * nb1
                _io_rows(ctrl[C_GET], ctrl[C_GET2D], t, buf, off, ne0 * 4, r, nb1, k_cap * 4)
                if h < nh_st:
                    st = stats[(slot * nh_st + h) * NST:(slot * nh_st + h + 1) * NST]
                else:
                    st = dummy
                wrote = False
                for i in range(r):
                    w = _solve_row(rows[i * k_cap:i * k_cap + ne0], valid[i * k_cap:i * k_cap + ne0], ne0,
                                   mode, a_fix, eta_lo, eta_hi, snap, z, out, st)
                    wrote = wrote or w
                if wrote:
                    _io_rows(ectrl[E_SET], ectrl[E_SET2D], t, buf, off, ne0 * 4, r, nb1, k_cap * 4)
    return


@cfunc(types.boolean(types.voidptr, types.boolean, types.voidptr), cache=True)
def entmax_eval_callback(t, ask, ud):
    """The capture's callback (``attention_callback.eval_callback``), plus the entmax
    write-back before the capture reads the row."""
    ectrl = carray(ud, (E_LEN,), np.int64)
    ctrl = carray(void_ptr(ectrl[E_CTRL]), (C_LEN,), np.int64)
    kind, slot = wanted_node(t, ask, ctrl)
    if kind == 0:
        return False
    if ask:
        return True
    if kind == 1:
        _entmax_rows(t, slot, ectrl, ctrl)
    capture_node(t, kind, slot, ctrl)
    return True  # false would abort the graph compute
