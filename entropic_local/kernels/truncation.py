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

Partial selection and sorting (``kernels/selection.py``): no sort of n for top-k.

Threshold kernels (min-p, top-nσ) count survivors with a vectorised pass and compact in
order, skipping whole blocks of 512 with no survivor.
"""

from __future__ import annotations

import math

import numba
import numpy as np

from .fastmath import ABS_INF_BITS, FASTMATH, KEY_NEG_INF, LOG2E, key_value
from .selection import (
    asc_key, block_max_keys, block_size, radix_argsort, select_from_blocks, top_sorted, write_front,
)
from .stats import check_n, checked_max, moment_stats, stats_n, weight, weight_sum

BLOCK = 512  # compaction blocks (skipped whole when nothing survives)


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
def keep_top_in_order(ids, logits, n, m):
    """Keep the m best unmasked entries (ties by position), in their original order."""
    hv, hp, found = top_sorted(logits, n, m)
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
    hv, hp, found = top_sorted(logits, n, k)
    if found == 0:
        raise ValueError("all logits are masked")
    write_front(ids, logits, hv, hp, found)
    return found


@numba.njit(cache=True)
def top_k_into(raw, k, ids, logits):
    """``top_k`` of the untouched vocabulary ``raw`` straight into ids[:m], logits[:m] (the
    token ids and logits of the m = min(k, #unmasked) best, sorted descending, ties by id),
    without copying the vocabulary first: equal to loading ids = arange, logits = raw and
    running ``top_k``. Returns m."""
    n = raw.shape[0]
    check_n(raw, n)
    if k <= 0 or k >= n:
        k = n
    hv, hp, found = top_sorted(raw, n, k)
    if found == 0:
        raise ValueError("all logits are masked")
    for j in range(found):
        ids[j] = hp[j]
        logits[j] = hv[j]
    return found


@numba.njit(cache=True)
def top_k_stats_into(raw, k, ids, logits, stats):
    """``top_k_into`` and ``logit_stats(raw, 1.0)`` in one call, sharing one pass: the block
    max keys that the partial selection needs give the vocabulary's max (and find NaN).
    ``stats[:4]`` = (max_logit, log_z, entropy, varentropy). Returns m."""
    n = raw.shape[0]
    check_n(raw, n)
    if k <= 0 or k >= n:
        k = n
    sub = block_size(n, k)
    nb = (n + sub - 1) // sub
    if k * 8 >= n or nb < 2 * k:  # the sorting paths: no shared pass to gain
        r = stats_n(raw, n, 1.0)
        found = top_k_into(raw, k, ids, logits)
    else:
        bm = np.empty(nb, dtype=np.int32)
        if block_max_keys(raw, n, sub, bm) > ABS_INF_BITS:
            raise ValueError("NaN in logits")
        mk = bm.max()
        if mk == KEY_NEG_INF:
            raise ValueError("all logits are masked")
        r = moment_stats(raw, n, np.float64(key_value(mk)), 1.0)
        hv = np.empty(k, dtype=np.float32)
        hp = np.empty(k, dtype=np.int64)
        found = select_from_blocks(raw, n, k, hv, hp, sub, bm)
        for j in range(found):
            ids[j] = hp[j]
            logits[j] = hv[j]
    stats[0], stats[1], stats[2], stats[3] = r
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
        hv, hp, found = top_sorted(logits, n, kb)
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
            write_front(ids, logits, hv, hp, cut)
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
    return keep_top_in_order(ids, logits, n, min_keep)


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
    write_front(ids, logits, tv, tp, last)
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
