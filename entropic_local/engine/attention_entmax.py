"""Entmax attention at inference (experimental): replace chosen layers' softmax attention by
α-entmax of the same scores, inside llama.cpp's graph, through the attention hook.

What it does
------------
For every chosen layer ``l`` llama.cpp computes ``P = softmax(s)`` row by row, with the
scores ``s = scale · Q Kᵀ (+ soft-cap, ALiBi bias) + mask`` (``mask`` = 0 on the cells the
query may attend to, ``-inf`` elsewhere), and names the result ``kq_soft_max-<l>``
(``ne = [n_kv, n_tokens, n_head, n_stream]``, float32). The eval callback of this module
(a numba ``@cfunc``, ``_entmax_eval_callback``) asks for those nodes like the capture of
``engine/attention.py`` does and, in the ``ask=false`` call, right after the softmax node has
been computed and before anything reads it, overwrites **every** row (every query token of
the micro-batch, prompt prefill included, every head, every stream) by::

    P'[t, h] = entmax_α(log P[t, h])          (α-entmax, alpha_entmax.entmax, T = 1)

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
test models (first 300 tokens of the seed text, rows with at least 8 valid cells:
SmolLM2-135M η percentiles 10/25/50/75/90 = 0.12/0.25/0.41/0.58/0.72; Gemma-3-270M
0.23/0.34/0.48/0.62/0.73), so roughly a quarter of the rows get α_max, a quarter to a
third stay softmax and the rest move continuously.

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
Reproduce the measurement of the README with ``python -m entropic_local.engine.attention_entmax``.
"""

from __future__ import annotations

import ctypes
import math
import time
from dataclasses import dataclass
from typing import Sequence

import numpy as np
from numba import carray, cfunc, njit, types

from ..errors import UsageError
from ..kernels.alpha_entmax import entmax as _entmax
from ..kernels.stats import bits_f64 as _bits_f64
from .attention import (
    C_GET,
    C_GET2D,
    C_LEN,
    GGML_TYPE_F16,
    GGML_TYPE_F32,
    OFF_SRC,
    AttentionCapture,
    _addr,
    _call_get,
    _call_get2d,
    _capture,
    _ggml_addresses,
    _vp,
    _wanted,
)

__all__ = [
    "EntmaxAttentionCapture", "EntmaxConfig", "parse_attention_entmax", "adaptive_alpha",
    "ALPHA_SNAP", "ETA_LO", "ETA_HI", "ALPHA_MAX", "measure",
]

ALPHA_SNAP = 1.1   # adaptive α below this is used as exactly 1 (row untouched)
ETA_LO = 0.25      # normalised attention entropy at or below which α = α_max
ETA_HI = 0.6       # ... at or above which α = 1
ALPHA_MAX = 2.0

MODE_OFF, MODE_FIXED, MODE_ADAPTIVE = 0, 1, 2

# ectrl (int64): this callback's user_data
E_CTRL = 0     # address of the AttentionCapture control block (attention.py's ctrl)
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


# --------------------------------------------------------------------------- config
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


@njit(cache=True)
def adaptive_alpha(eta, alpha_max, eta_lo, eta_hi, snap):
    """The per-head map of the module doc: normalised entropy η -> α (snapped)."""
    x = (eta_hi - eta) / (eta_hi - eta_lo)
    x = 0.0 if x < 0.0 else (1.0 if x > 1.0 else x)
    a = 1.0 + (alpha_max - 1.0) * (x * x * (3.0 - 2.0 * x))
    return 1.0 if a < snap else a


# --------------------------------------------------------------------------- the kernels
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
    k = _entmax(z[:n], alpha, 1.0, out[:n])
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
            _call_get(fn, t, buf + i * stride_d, off + i * stride_t, row_bytes)
    else:
        _call_get2d(fn2d, t, buf, off, row_bytes, nrows, stride_t, stride_d)


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
            _call_get(ctrl[C_GET], src1, mbuf + i * k_cap * 4, base + ((t0 + i) % mne1) * mnb1, ncopy * esz)
    v = carray(_vp(vbuf), (r * k_cap,), np.uint8)
    if mtype == GGML_TYPE_F32:
        m = carray(_vp(mbuf), (r * k_cap,), np.float32)
        for i in range(r):
            for j in range(ncopy):
                v[i * k_cap + j] = m[i * k_cap + j] != -np.inf
            for j in range(ncopy, ne0):
                v[i * k_cap + j] = 0
    else:
        m16 = carray(_vp(mbuf), (2 * r * k_cap,), np.uint16)
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
    t = _addr(t_ptr)
    hdr = carray(t_ptr, (42,), np.int64)
    i32 = carray(t_ptr, (40,), np.int32)
    ne0, ne1, ne2, ne3 = hdr[2], hdr[3], hdr[4], hdr[5]
    nb0, nb1, nb2, nb3 = hdr[6], hdr[7], hdr[8], hdr[9]
    flags = carray(_vp(ectrl[E_FLAGS]), (slot + 1,), np.int64)
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
        mhdr = carray(_vp(src1), (42,), np.int64)
        mtype = carray(_vp(src1), (40,), np.int32)[0]
        if mtype != GGML_TYPE_F32 and mtype != GGML_TYPE_F16:
            flags[slot] |= EF_MASK_TYPE
            return
        ncopy = ne0 if ne0 <= mhdr[2] else mhdr[2]
    else:
        flags[slot] |= EF_NO_MASK
    R = ectrl[E_ROWS]
    nh_st = ectrl[E_NH]
    a_fix = _bits_f64(ectrl[E_ALPHA])
    eta_lo = _bits_f64(ectrl[E_ETA_LO])
    eta_hi = _bits_f64(ectrl[E_ETA_HI])
    snap = _bits_f64(ectrl[E_SNAP])
    buf = ectrl[E_BUF]
    rows = carray(_vp(buf), (R * k_cap,), np.float32)
    valid = carray(_vp(ectrl[E_VALID]), (R * k_cap,), np.uint8)
    z = carray(_vp(ectrl[E_Z]), (k_cap,), np.float32)
    out = carray(_vp(ectrl[E_OUT]), (k_cap,), np.float32)
    stats = carray(_vp(ectrl[E_STATS]), ((slot + 1) * nh_st * NST,), np.float64)
    dummy = carray(_vp(ectrl[E_DUMMY]), (NST,), np.float64)
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
def _entmax_eval_callback(t, ask, ud):
    """attention.py's callback, plus the entmax write-back before the capture reads the row."""
    ectrl = carray(ud, (E_LEN,), np.int64)
    ctrl = carray(_vp(ectrl[E_CTRL]), (C_LEN,), np.int64)
    kind, slot = _wanted(t, ask, ctrl)
    if kind == 0:
        return False
    if ask:
        return True
    if kind == 1:
        _entmax_rows(t, slot, ectrl, ctrl)
    _capture(t, kind, slot, ctrl)
    return True  # false would abort the graph compute


# --------------------------------------------------------------------------- the object
def _f64_bits(x: float) -> int:
    return int(np.array([x], dtype=np.float64).view(np.int64)[0])


_set_funcs: dict[str, int] | None = None


def _ggml_set_addresses() -> dict[str, int]:
    global _set_funcs
    if _set_funcs is None:
        from llama_cpp._ggml import libggml

        set1 = ctypes.cast(libggml.ggml_backend_tensor_set, ctypes.c_void_p).value
        try:
            set2d = ctypes.cast(libggml.ggml_backend_tensor_set_2d, ctypes.c_void_p).value or 0
        except AttributeError:  # older ggml
            set2d = 0
        _set_funcs = {"set": int(set1), "set2d": int(set2d)}
    return _set_funcs


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
        funcs = _ggml_addresses()
        sets = _ggml_set_addresses()
        e = self._ectrl
        e[E_CTRL] = self._ctrl.ctypes.data
        e[E_SET] = sets["set"]
        e[E_SET2D] = sets["set2d"] if funcs["get2d"] else 0
        e[E_ROWS] = self._rows_per_chunk
        e[E_STATS] = self._estats.ctypes.data
        e[E_FLAGS] = self._eflags.ctypes.data
        e[E_DUMMY] = self._edummy.ctypes.data
        e[E_NH] = self._estats.shape[1]
        self.configure(cfg)
        self._ealloc(0)
        from llama_cpp import ggml_backend_sched_eval_callback

        self.callback = ggml_backend_sched_eval_callback(_entmax_eval_callback.address)
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


# --------------------------------------------------------------------------- measurement
DEFAULT_CONFIGS = ("1", "1.1", "1.25", "1.5", "2", "adaptive")


def measure(text: str, models: Sequence[str] = ("smollm2-135m", "gemma3-270m"),
            configs: Sequence[str] = DEFAULT_CONFIGS, *, max_tokens: int = 300,
            n_ctx: int = 1024, n_threads: int | None = None, verbose: bool = True) -> list[dict]:
    """Teacher-forced perplexity of each model's own distribution (the ``temp=1.0`` softmax
    sampler, ε = 0: plain perplexity) with entmax attention on all layers, per config, one
    run each (``entropic_local.evaluate.evaluate_text``), plus the sparsity achieved.
    One engine per model; the KV cache is cleared and the statistics reset between configs."""
    import entropic_local as el
    from entropic_local.evaluation.scoring import evaluate_text

    rows = []
    for name in models:
        m = el.load(name, n_ctx=n_ctx, n_threads=n_threads, attention_entmax="off")
        try:
            cap = m.engine.attention
            for c in configs:
                cap.configure(c)
                m.reset()
                cap.reset_entmax_stats()
                t0 = time.perf_counter()
                r = evaluate_text(m, text, {"softmax": "temp=1.0"}, max_tokens=max_tokens, epsilon=0.0)
                dt = time.perf_counter() - t0
                s = r["samplers"]["softmax"]
                st = cap.entmax_stats()
                row = {
                    "model": name, "config": c, "tokens": r["tokens"], "perplexity": s["eps_perplexity"],
                    "sparsemax_score": s["sparsemax_score"], "js": s["js"],
                    "zero_fraction": st["zero_fraction"], "mean_support": st["mean_support"],
                    "mean_valid": st["mean_valid"], "mean_alpha": st["mean_alpha"],
                    "rows_skipped": st["rows_skipped"], "flags": st["flags"], "seconds": dt,
                }
                rows.append(row)
                if verbose:
                    print(f"{name:14s} {c:9s} ppl {row['perplexity']:8.3f}  zero {100 * row['zero_fraction']:5.1f}%  "
                          f"support {row['mean_support']:6.2f} / {row['mean_valid']:6.2f}  "
                          f"mean α {row['mean_alpha']:.3f}  {dt:5.1f} s", flush=True)
        finally:
            m.close()
    return rows


def format_table(rows: Sequence[dict]) -> str:
    """Markdown table of ``measure``'s rows (perplexity relative to α = 1 of the same model)."""
    base = {r["model"]: r["perplexity"] for r in rows if r["config"] in ("1", "off")}
    lines = [
        "| model | attention | perplexity | vs softmax | zero weights | mean support / valid cells per head | mean α |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        c = r["config"]
        label = "softmax (α = 1)" if c in ("1", "off") else ("adaptive" if c.startswith("adaptive") else f"α = {c}")
        b = base.get(r["model"])
        rel = f"{r['perplexity'] / b:.3f}×" if b else ""
        lines.append(
            f"| {r['model']} | {label} | {r['perplexity']:.2f} | {rel} | {100 * r['zero_fraction']:.1f}% | "
            f"{r['mean_support']:.1f} / {r['mean_valid']:.1f} | {r['mean_alpha']:.3f} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":  # python -m entropic_local.engine.attention_entmax [TEXT] [-n 300]
    import argparse

    ap = argparse.ArgumentParser(description="Perplexity and attention sparsity with entmax attention on all layers.")
    ap.add_argument("text", nargs="?", default="README.md", help="text file (default: README.md)")
    ap.add_argument("-n", "--max-tokens", type=int, default=300)
    ap.add_argument("--models", default="smollm2-135m,gemma3-270m")
    ap.add_argument("--configs", default=";".join(DEFAULT_CONFIGS),
                    help="';'-separated attention_entmax specs (default: 1;1.1;1.25;1.5;2;adaptive)")
    ap.add_argument("-t", "--threads", type=int, default=None)
    a = ap.parse_args()
    with open(a.text, encoding="utf-8", errors="replace") as f:
        txt = f.read()
    cfgs = [c.strip() for c in a.configs.split(";") if c.strip()]
    res = measure(txt, [x for x in a.models.split(",") if x], cfgs, max_tokens=a.max_tokens, n_threads=a.threads)
    print()
    print(format_table(res))
