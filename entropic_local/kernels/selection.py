"""Selecting the largest logits without sorting them all, and sorting what is selected.

Partial selection (``select_top``), no sort of n: one vectorised pass takes the maximum
(as a monotone int32 key) of every block of up to 256 logits; a size-k min-heap over those
block maxima (one compare per block) gives ``tau``, the k-th largest block max, a lower bound
of the k-th largest logit; only the ~k blocks reaching ``tau`` are scanned, and only their
entries >= tau are sorted. When k is a large fraction of n (k >= n/8, or too few blocks)
every unmasked entry is sorted instead. Sorting is a stable LSD radix sort on uint32 keys
(``radix_argsort``), so ties keep their position order.
"""

from __future__ import annotations

import numba
import numpy as np

from .fastmath import ABS_INF_BITS, FASTMATH, KEY_MIN, abs_bits, key, key_value

__all__ = ["radix_argsort", "desc_key", "asc_key", "block_keys", "select_top", "sort_all",
           "top_sorted", "write_front"]


@numba.njit(cache=True)
def radix_argsort(keys):
    """Stable ascending argsort (int64) of uint32 keys: LSD radix sort, 3 passes of 11 bits
    (a pass is skipped when every key has the same digit); insertion sort below 48 keys."""
    c = keys.shape[0]
    idx = np.arange(c)
    if c < 48:
        for i in range(1, c):
            kk = keys[idx[i]]
            ii = idx[i]
            j = i - 1
            while j >= 0 and keys[idx[j]] > kk:
                idx[j + 1] = idx[j]
                j -= 1
            idx[j + 1] = ii
        return idx
    hist = np.zeros((3, 2048), dtype=np.int64)
    for i in range(c):
        kk = keys[i]
        hist[0, kk & np.uint32(2047)] += 1
        hist[1, (kk >> np.uint32(11)) & np.uint32(2047)] += 1
        hist[2, kk >> np.uint32(22)] += 1
    ka = keys.copy()
    kb = np.empty(c, dtype=np.uint32)
    ib = np.empty(c, dtype=np.int64)
    off = np.empty(2048, dtype=np.int64)
    for ps in range(3):
        sh = np.uint32(11 * ps)
        skip = False
        for d in range(2048):
            if hist[ps, d] == c:
                skip = True
        if skip:
            continue
        acc = 0
        for d in range(2048):
            off[d] = acc
            acc += hist[ps, d]
        for i in range(c):
            kk = ka[i]
            d = (kk >> sh) & np.uint32(2047)
            dst = off[d]
            off[d] = dst + 1
            kb[dst] = kk
            ib[dst] = idx[i]
        ka, kb = kb, ka
        idx, ib = ib, idx
    return idx


@numba.njit(inline="always")
def desc_key(v):
    """uint32 sort key of a float32: ascending key = descending value, -0.0 ties +0.0."""
    k = key(v)
    if k == np.int32(-1):
        k = np.int32(0)
    return np.uint32(np.int64(0x7FFFFFFF) - np.int64(k))


@numba.njit(inline="always")
def asc_key(v):
    """uint32 sort key of a float32: ascending key = ascending value, -0.0 ties +0.0."""
    k = key(v)
    if k == np.int32(-1):
        k = np.int32(0)
    return np.uint32(np.int64(k) + np.int64(0x80000000))


@numba.njit(cache=True, fastmath=FASTMATH)
def block_keys(xs):
    """(max key, max |bits|) of a slice of logits: vectorised int32 reductions."""
    mk = KEY_MIN
    ma = np.int32(0)
    for j in range(xs.shape[0]):
        x = xs[j]
        mk = max(mk, key(x))
        ma = max(ma, abs_bits(x))
    return mk, ma


@numba.njit(cache=True)
def block_max_keys(logits, n, sub, bm):
    """bm[b] = max key of logits[b*sub : (b+1)*sub]; returns the max |bits| of all."""
    ma = np.int32(0)
    for b in range(bm.shape[0]):
        lo = b * sub
        mk, a = block_keys(logits[lo : min(lo + sub, n)])
        bm[b] = mk
        ma = max(ma, a)
    return ma


@numba.njit(cache=True)
def _sift_down_int(h, i, size):
    while True:
        l = 2 * i + 1
        if l >= size:
            return
        c = l
        if l + 1 < size and h[l + 1] < h[l]:
            c = l + 1
        if h[c] < h[i]:
            t = h[i]
            h[i] = h[c]
            h[c] = t
            i = c
        else:
            return


@numba.njit(cache=True)
def _kth_largest(a, k):
    """k-th largest of the int32 array a (len(a) >= k >= 1): a size-k min-heap, one compare
    per element against its root."""
    th = np.full(k, KEY_MIN, dtype=np.int32)
    for i in range(a.shape[0]):
        v = a[i]
        if v > th[0]:
            th[0] = v
            _sift_down_int(th, 0, k)
    return th[0]


@numba.njit(cache=True)
def select_top(logits, n, k, hv, hp):
    """The k best unmasked entries of logits[:n] into hv[:k] (values) / hp[:k] (positions),
    sorted descending (ties by position). Returns how many were found (<= k). Raises on NaN.

    Partial selection, no sort of n: a vectorised pass takes the max (int32 key) of every block
    of ``sub`` logits; the k-th largest block max ``tau`` is a lower bound of the k-th largest
    logit (k blocks reach it), so only blocks whose max reaches ``tau`` (about k of them) are
    scanned, collecting the entries >= tau; only those candidates are sorted (stable)."""
    sub = block_size(n, k)
    nb = (n + sub - 1) // sub
    if nb < 2 * k:
        tv = np.empty(n, dtype=np.float32)
        tp = np.empty(n, dtype=np.int64)
        c = sort_all(logits, n, tv, tp)
        c = min(c, k)
        hv[:c] = tv[:c]
        hp[:c] = tp[:c]
        return c
    bm = np.empty(nb, dtype=np.int32)
    if block_max_keys(logits, n, sub, bm) > ABS_INF_BITS:
        raise ValueError("NaN in logits")
    return select_from_blocks(logits, n, k, hv, hp, sub, bm)


@numba.njit(cache=True)
def block_size(n, k):
    """The block length ``select_top`` scans with for the k best of n (at least 4k blocks)."""
    sub = 256
    while sub > 16 and n // sub < 4 * k:
        sub //= 2
    return sub


@numba.njit(cache=True)
def select_from_blocks(logits, n, k, hv, hp, sub, bm):
    """``select_top``'s selection given its block max keys ``bm`` (blocks of ``sub``, at
    least 2k of them; no NaN): the k best unmasked entries, sorted descending."""
    nb = bm.shape[0]
    tau = _kth_largest(bm, k)
    if tau == np.int32(0):
        tau = np.int32(-1)  # -0.0 (key -1) ties with +0.0 (key 0)
    tval = key_value(tau)
    nsel = 0
    for b in range(nb):
        nsel += bm[b] >= tau
    cv = np.empty(nsel * sub, dtype=np.float32)
    cp = np.empty(nsel * sub, dtype=np.int64)
    c = 0
    for b in range(nb):
        if bm[b] >= tau:
            for j in range(b * sub, min(b * sub + sub, n)):
                v = logits[j]
                if v >= tval and v != -np.inf:
                    cv[c] = v
                    cp[c] = j
                    c += 1
    ck = np.empty(c, dtype=np.uint32)
    for j in range(c):
        ck[j] = desc_key(cv[j])
    order = radix_argsort(ck)
    m = min(c, k)
    for j in range(m):
        o = order[j]
        hv[j] = cv[o]
        hp[j] = cp[o]
    return m


@numba.njit(cache=True)
def sort_all(logits, n, hv, hp):
    """All unmasked entries of logits[:n], sorted descending (stable: ties by position),
    into hv/hp (length >= n). Returns their count. Raises on NaN."""
    keys = np.empty(n, dtype=np.uint32)
    pos = np.empty(n, dtype=np.int64)
    c = 0
    for i in range(n):
        v = logits[i]
        if v != v:
            raise ValueError("NaN in logits")
        if v != -np.inf:
            keys[c] = desc_key(v)
            pos[c] = i
            c += 1
    order = radix_argsort(keys[:c])
    for j in range(c):
        o = pos[order[j]]
        hv[j] = logits[o]
        hp[j] = o
    return c


@numba.njit(cache=True)
def top_sorted(logits, n, k):
    """(values, positions, count) of the min(k, #unmasked) best entries, sorted descending:
    select_top or sort_all, whichever is cheaper for this k."""
    if k * 8 >= n:
        hv = np.empty(n, dtype=np.float32)
        hp = np.empty(n, dtype=np.int64)
        found = sort_all(logits, n, hv, hp)
        return hv, hp, min(found, k)
    hv = np.empty(k, dtype=np.float32)
    hp = np.empty(k, dtype=np.int64)
    found = select_top(logits, n, k, hv, hp)
    return hv, hp, found


@numba.njit(cache=True)
def write_front(ids, logits, hv, hp, m):
    """ids[:m], logits[:m] = ids[hp[:m]], hv[:m] (gathers first: hp may point anywhere)."""
    tid = np.empty(m, dtype=ids.dtype)
    for j in range(m):
        tid[j] = ids[hp[j]]
    for j in range(m):
        ids[j] = tid[j]
        logits[j] = hv[j]
