"""DRY ("Don't Repeat Yourself", pi6am's sampler as llama.cpp has it): penalise the tokens
that would extend a repetition of the recent history.

``hist[:m]`` holds the last ``m`` accepted tokens, oldest first (``rat(i) = hist[m-1-i]``,
the i-th most recent). Sequence breakers arrive resolved to token sequences, in CSR form
over token ids: the entries of head token ``t`` are ``head_ptr[t]..head_ptr[t+1]`` (an
entry is a "head" token followed by a tail ``tails[tail_ptr[e]:tail_ptr[e+1]]``, empty for
a single-token breaker). With ``allowed`` the allowed length, ``mult`` the multiplier and
``base`` the base:

1. ``rep_limit``: scanning back from the newest token, the first one that begins a breaker
   (its tail matching the tokens after it) caps the repetition length at its distance from
   the end; a repetition never crosses a breaker. ``rep_limit < allowed``: nothing to do.
2. ``count[j]`` (reverse Z-algorithm): the length of the longest suffix of the history that
   also ends at position ``j`` (capped at ``rep_limit``).
3. For every ``j`` with ``count[j] >= allowed``, the token after position ``j`` would extend
   that repetition: ``best[token] = max(count[j])``.
4. A live candidate ``t`` with ``best[t] = L`` (and not a single-token breaker) gets
   ``z_t ← z_t − mult · base^(L − allowed)``, the exponent capped at ``⌊88.7228391 / ln base⌋``
   (float32 overflow) when ``base > 1.000001``.

Arithmetic as llama.cpp's: ``mult`` and ``base`` rounded to float32, the power in double
(``std::pow(float, int)``), the penalty rounded to float32 and subtracted in float32. ``best`` is a scratch array of at
least vocabulary size holding -1, restored on return. Returns the number of live
candidates penalised.
"""

from __future__ import annotations

import math

import numba
import numpy as np

FLOAT_MAX_LOG = np.float32(88.7228391)


@numba.njit(cache=True)
def _rep_limit(hist, m, head_ptr, tail_ptr, tails):
    nv = head_ptr.shape[0] - 1
    for i in range(m):
        tok = hist[m - 1 - i]
        if tok < 0 or tok >= nv:
            continue
        e0, e1 = head_ptr[tok], head_ptr[tok + 1]
        if e0 == e1:
            continue
        longest = -1
        for e in range(e0, e1):
            a, b = tail_ptr[e], tail_ptr[e + 1]
            seq_len = b - a
            if seq_len > longest and seq_len <= i:
                match = True
                for off in range(seq_len):
                    if tails[a + off] != hist[m - 1 - (i - off - 1)]:
                        match = False
                        break
                if match:
                    longest = seq_len
        if longest >= 0:
            return i - longest
    return m


@numba.njit(cache=True)
def dry_penalties(ids, logits, n, identity, hist, m, mult, base, allowed,
                  head_ptr, tail_ptr, tails, single, best):
    """Apply DRY to ``logits[:n]`` in place (see the module doc); returns the count of
    penalised candidates."""
    if m <= allowed:
        return 0
    rep_limit = _rep_limit(hist, m, head_ptr, tail_ptr, tails)
    if rep_limit < allowed:
        return 0
    last = m - 1
    count = np.zeros(m, dtype=np.int32)
    # rat(i) == hist[last - i]
    rt = 0
    lt = 0
    for k in range(1, m):
        if k > rt:
            c = 0
            while c + k < m and hist[last - c] == hist[last - c - k]:
                c += 1
            count[last - k] = min(c, rep_limit)
            if c > 0:
                lt = k
                rt = k + c - 1
        else:
            p = k - lt
            right_len = rt - k + 1
            if count[last - p] < right_len:
                count[last - k] = min(count[last - p], rep_limit)
            else:
                i = rt + 1
                while i < m and hist[last - i] == hist[last - (i - k)]:
                    i += 1
                count[last - k] = min(i - k, rep_limit)
                lt = k
                rt = i - 1
    nb = best.shape[0]
    touched = np.empty(m, dtype=np.int32)
    nt = 0
    for i in range(m - 1):
        rl = count[i]
        if rl >= allowed:
            tok = hist[last - (m - 2 - i)]
            if tok < 0 or tok >= nb:
                continue
            if best[tok] < 0:
                touched[nt] = tok
                nt += 1
            if best[tok] < rl:
                best[tok] = rl
    f_base = np.float32(base)
    f_mult = np.float32(mult)
    max_exp = 0
    if f_base > np.float32(1.000001):
        max_exp = int(FLOAT_MAX_LOG / np.float32(math.log(f_base)))
    n_pen = 0
    if identity:
        for j in range(nt):
            tok = touched[j]
            if tok < n and not single[tok]:
                e = best[tok] - allowed
                if max_exp > 0 and e > max_exp:
                    e = max_exp
                pen = np.float32(np.float64(f_mult) * math.pow(np.float64(f_base), e))
                logits[tok] = logits[tok] - pen
                n_pen += 1
    else:
        for i in range(n):
            tok = ids[i]
            if tok < 0 or tok >= nb or best[tok] < 0 or single[tok]:
                continue
            e = best[tok] - allowed
            if max_exp > 0 and e > max_exp:
                e = max_exp
            pen = np.float32(np.float64(f_mult) * math.pow(np.float64(f_base), e))
            logits[i] = logits[i] - pen
            n_pen += 1
    for j in range(nt):
        best[touched[j]] = -1
    return n_pen
