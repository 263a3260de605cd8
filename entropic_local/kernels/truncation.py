"""Truncation samplers: top-k, top-p, min-p, typical-p, top-nσ (llama.cpp semantics).

Every kernel works on the candidate set ``ids[:n]``, ``logits[:n]`` (int32 / float32), moves
the survivors to the front **in place** and returns the new ``n``. Shared rules:

* ``-inf`` is a mask: masked entries are dropped by every truncating kernel, and are never
  kept to satisfy ``min_keep``; all-masked raises ``ValueError("all logits are masked")``.
* NaN among the live logits raises ``ValueError("NaN in logits")``.
* ``min_keep`` (< 1 counts as 1): at least ``min(min_keep, #unmasked)`` survivors.
* ``+inf`` logits take all the probability mass (shared equally); finite logits then have
  probability 0 (mass-based kernels may still keep them for ``min_keep``), and threshold
  kernels (min-p, top-nσ) keep only the ``+inf`` entries.
* Ties are broken deterministically by position (lower index in the live order first).

Output order:

* ``top_k``, ``top_p``: sorted by logit, descending (ties by position).
* ``min_p``, ``top_n_sigma``: the input order is preserved (a sorted input stays sorted).
* ``typical_p``: typicality order (``|-log p_i - H|`` ascending), not logit order.

Partial selection (``select_top``), no sort of n: one vectorised pass takes the maximum
(as a monotone int32 key) of every block of up to 256 logits; a size-k min-heap over those
block maxima (one compare per block) gives ``tau``, the k-th largest block max, a lower bound
of the k-th largest logit; only the ~k blocks reaching ``tau`` are scanned, and only their
entries >= tau are sorted. When k is a large fraction of n (k >= n/8, or too few blocks)
every unmasked entry is sorted instead. Sorting is a stable LSD radix sort on uint32 keys
(``radix_argsort``), so ties keep their position order.

Threshold kernels (min-p, top-nσ) count survivors with a vectorised pass and compact in
order, skipping whole blocks of 512 with no survivor.
"""

from __future__ import annotations

import math

import numba
import numpy as np

from .stats import (
    ABS_INF_BITS,
    FASTMATH,
    KEY_MIN,
    LOG2E,
    abs_bits,
    check_n,
    checked_max,
    key,
    key_value,
    weight,
    weight_sum,
)

BLOCK = 512  # compaction blocks (skipped whole when nothing survives)


# ---------------------------------------------------------------------------------------------
# selection helpers


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
def _block_max_keys(logits, n, sub, bm):
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
    sub = 256
    while sub > 16 and n // sub < 4 * k:
        sub //= 2
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
    if _block_max_keys(logits, n, sub, bm) > ABS_INF_BITS:
        raise ValueError("NaN in logits")
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
def _top_sorted(logits, n, k):
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
def _write_front(ids, logits, hv, hp, m):
    """ids[:m], logits[:m] = ids[hp[:m]], hv[:m] (gathers first: hp may point anywhere)."""
    tid = np.empty(m, dtype=ids.dtype)
    for j in range(m):
        tid[j] = ids[hp[j]]
    for j in range(m):
        ids[j] = tid[j]
        logits[j] = hv[j]


@numba.njit(cache=True, fastmath=FASTMATH)
def _count_ge(logits, n, thr):
    c = 0
    for i in range(n):
        c += np.float64(logits[i]) >= thr
    return c


@numba.njit(cache=True, fastmath=FASTMATH)
def _block_count_ge(x, thr):
    c = 0
    for i in range(x.shape[0]):
        c += np.float64(x[i]) >= thr
    return c


@numba.njit(cache=True)
def _compact_ge(ids, logits, n, thr):
    """Keep logits >= thr (float64 compare) in order; whole blocks without survivors are
    skipped after a vectorised count. Returns the new n."""
    w = 0
    lo = 0
    while lo < n:
        hi = min(lo + BLOCK, n)
        if _block_count_ge(logits[lo:hi], thr) > 0:
            for i in range(lo, hi):
                v = logits[i]
                if np.float64(v) >= thr:
                    ids[w] = ids[i]
                    logits[w] = v
                    w += 1
        lo = hi
    return w


@numba.njit(cache=True)
def _keep_top_in_order(ids, logits, n, m):
    """Keep the m best unmasked entries (ties by position), in their original order."""
    hv, hp, found = _top_sorted(logits, n, m)
    keep = np.sort(hp[:found])
    for j in range(found):
        i = keep[j]
        ids[j] = ids[i]
        logits[j] = logits[i]
    return found


# ---------------------------------------------------------------------------------------------
# kernels


@numba.njit(cache=True)
def top_k(ids, logits, n, k):
    """Keep the k largest logits, sorted descending, ties by position; k <= 0 or k >= n keeps
    every unmasked entry (still sorted). Returns the new n."""
    check_n(logits, n)
    if k <= 0 or k >= n:
        k = n
    hv, hp, found = _top_sorted(logits, n, k)
    if found == 0:
        raise ValueError("all logits are masked")
    _write_front(ids, logits, hv, hp, found)
    return found


@numba.njit(cache=True)
def _prob_cut(hv, found, zmax, s0, p, min_keep, inclusive):
    """Length of the shortest prefix of the sorted block hv[:found] whose mass reaches p
    (``>= p`` when inclusive, ``> p`` otherwise) with at least min_keep entries; -1 if none."""
    cum = 0.0
    inv = 1.0 / s0
    for i in range(found):
        cum += weight(hv[i], zmax, LOG2E) * inv
        hit = cum >= p if inclusive else cum > p
        if hit and i + 1 >= min_keep:
            return i + 1
    return -1


@numba.njit(cache=True)
def top_p(ids, logits, n, p, min_keep, is_sorted):
    """Nucleus: keep the shortest prefix of the descending order whose probability mass
    (softmax of the live logits) is >= p, at least min_keep; result sorted descending.
    p >= 1: no change. If is_sorted the input is trusted to be sorted descending and nothing
    moves; otherwise a top block of growing size (64, 256, 1024, ...) is selected and only
    that block is sorted. Returns the new n."""
    if p >= 1.0:
        return n
    if p != p:
        raise ValueError("p is NaN")
    zmax = checked_max(logits, n)
    if min_keep < 1:
        min_keep = 1
    if zmax == np.inf:
        # all mass on the +inf entries: weight 1 each, 0 for the rest
        s0 = 0.0
        for i in range(n):
            s0 += logits[i] == np.inf
    else:
        s0 = weight_sum(logits, n, zmax, LOG2E)
    if is_sorted:
        cum = 0.0
        inv = 1.0 / s0
        i = 0
        while i < n:
            v = logits[i]
            if v == -np.inf:
                break
            if zmax == np.inf:
                cum += (1.0 if v == np.inf else 0.0) * inv
            else:
                cum += weight(v, zmax, LOG2E) * inv
            i += 1
            if cum >= p and i >= min_keep:
                break
        return i
    kb = 64
    while True:
        if kb * 8 >= n:
            kb = n
        hv, hp, found = _top_sorted(logits, n, kb)
        if zmax == np.inf:
            cut = -1
            cum = 0.0
            for i in range(found):
                cum += (1.0 if hv[i] == np.inf else 0.0) / s0
                if cum >= p and i + 1 >= min_keep:
                    cut = i + 1
                    break
        else:
            cut = _prob_cut(hv, found, zmax, s0, p, min_keep, True)
        if cut < 0 and (found < kb or kb == n):
            cut = found  # the block holds every unmasked entry: keep them all
        if cut >= 0:
            _write_front(ids, logits, hv, hp, cut)
            return cut
        kb *= 4


@numba.njit(cache=True)
def min_p(ids, logits, n, p, min_keep):
    """Keep logit >= max + ln p (p_i >= p * p_max; no softmax needed), order preserved.
    p <= 0: no change. If fewer than min_keep pass, the min_keep largest are kept (still in
    their original order). Returns the new n."""
    if p <= 0.0:
        return n
    if not (p < np.inf):
        raise ValueError("p must be finite")
    zmax = checked_max(logits, n)
    if min_keep < 1:
        min_keep = 1
    thr = zmax + math.log(p)
    if _count_ge(logits, n, thr) >= min_keep:
        return _compact_ge(ids, logits, n, thr)
    return _keep_top_in_order(ids, logits, n, min_keep)


@numba.njit(cache=True)
def typical_p(ids, logits, n, p, min_keep):
    """Locally typical sampling (Meister et al. 2022; llama.cpp ``typical``): with p_i the
    softmax of the live logits and H its entropy, order tokens by |-log p_i - H| ascending
    (the score rounded to float32 as in llama.cpp; ties by position; one stable radix sort)
    and keep the shortest prefix whose mass is > p, at least min_keep. Result in that
    typicality order. p >= 1: no change."""
    if p >= 1.0:
        return n
    if p != p:
        raise ValueError("p is NaN")
    zmax = checked_max(logits, n)
    if min_keep < 1:
        min_keep = 1
    hv = np.empty(n, dtype=np.float32)
    hp = np.empty(n, dtype=np.int64)
    c = 0
    for i in range(n):
        v = logits[i]
        if v != -np.inf:
            hv[c] = v
            hp[c] = i
            c += 1
    prob = np.empty(c, dtype=np.float64)
    nlp = np.empty(c, dtype=np.float64)  # -log p_i
    if zmax == np.inf:
        ninf = 0
        for j in range(c):
            ninf += hv[j] == np.inf
        for j in range(c):
            if hv[j] == np.inf:
                prob[j] = 1.0 / ninf
                nlp[j] = math.log(ninf)
            else:
                prob[j] = 0.0
                nlp[j] = np.inf
    else:
        s0 = 0.0
        for j in range(c):
            e = weight(hv[j], zmax, LOG2E)
            prob[j] = e
            s0 += e
        log_z = zmax + math.log(s0)
        for j in range(c):
            prob[j] = prob[j] / s0
            nlp[j] = log_z - np.float64(hv[j])
    ent = 0.0
    for j in range(c):
        if prob[j] > 0.0:
            ent += prob[j] * nlp[j]
    score = np.empty(c, dtype=np.uint32)
    for j in range(c):
        score[j] = asc_key(np.float32(abs(nlp[j] - ent)))
    order = radix_argsort(score)
    cum = 0.0
    last = c
    for i in range(c):
        cum += prob[order[i]]
        if cum > p and i + 1 >= min_keep:
            last = i + 1
            break
    tv = np.empty(last, dtype=np.float32)
    tp = np.empty(last, dtype=np.int64)
    for i in range(last):
        tv[i] = hv[order[i]]
        tp[i] = hp[order[i]]
    _write_front(ids, logits, tv, tp, last)
    return last


@numba.njit(cache=True, fastmath=FASTMATH)
def _finite_mean(logits, n):
    s = 0.0
    c = 0
    for i in range(n):
        v = np.float64(logits[i])
        ok = v != -np.inf
        s += v if ok else 0.0
        c += ok
    return s, c


@numba.njit(cache=True, fastmath=FASTMATH)
def _finite_sq_dev(logits, n, mean):
    acc = 0.0
    for i in range(n):
        v = np.float64(logits[i])
        d = v - mean if v != -np.inf else 0.0
        acc += d * d
    return acc


@numba.njit(cache=True)
def top_n_sigma(ids, logits, n, nsigma):
    """Top-nσ (Tang et al. 2024): keep logit >= max - nsigma * σ, σ the population standard
    deviation of the finite (unmasked) live logits; order preserved. nsigma <= 0: no change.
    Example: [3, 2, 1, 0], nsigma 1 -> σ = 1.118034, keeps 2. Returns the new n."""
    if nsigma <= 0.0:
        return n
    if not (nsigma < np.inf):
        raise ValueError("nsigma must be finite")
    zmax = checked_max(logits, n)
    if zmax == np.inf:
        return _compact_ge(ids, logits, n, np.inf)
    s, c = _finite_mean(logits, n)
    mean = s / c
    sigma = math.sqrt(_finite_sq_dev(logits, n, mean) / c)
    return _compact_ge(ids, logits, n, zmax - nsigma * sigma)
