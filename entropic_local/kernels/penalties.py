"""Repetition penalties (llama.cpp ``penalties``): repeat, frequency, presence.

``counts[t]`` is the number of occurrences of token ``t`` in the penalty window (int32, at
least vocabulary-sized), ``seen[:n_seen]`` the distinct tokens with a positive count. For
every live candidate whose token has ``count > 0``::

    z <- z * repeat   if z <= 0   else   z / repeat
    z <- z - count * frequency - (count > 0) * presence

in float32 as llama.cpp (``repeat`` etc. rounded to float32). With ``identity`` (the live set
is the untouched vocabulary, ``ids[i] == i``, ``n == n_vocab``) only ``logits[seen[j]]`` are
touched (O(n_seen)); otherwise every live candidate looks up ``counts[ids[i]]`` (O(n)).
Masked (``-inf``) logits stay masked. ``repeat`` must be > 0; a token id outside ``counts``
(or, with identity, outside ``[0, n)``) raises ``ValueError``, as does NaN in a touched
logit (only the touched logits are checked); every check comes before any change, so an
error leaves the logits as they were.
"""

from __future__ import annotations

import numba
import numpy as np


@numba.njit(inline="always")
def _penalise(z, c, rep, freq, pres):
    if z <= np.float32(0.0):
        z = z * rep
    else:
        z = z / rep
    return z - (np.float32(c) * freq + pres)


@numba.njit(cache=True)
def apply_penalties(ids, logits, n, identity, counts, seen, n_seen, repeat, frequency, presence):
    """Apply llama.cpp's repeat / frequency / presence penalties to logits[:n] in place."""
    # checked as the float32 values used below (a repeat that rounds to 0 would divide by 0)
    if not (np.float32(repeat) > 0.0 and np.float32(repeat) < np.inf):
        raise ValueError("repeat penalty must be positive and finite (in float32)")
    if not (abs(np.float32(frequency)) < np.inf and abs(np.float32(presence)) < np.inf):
        raise ValueError("penalties must be finite (in float32)")
    if n < 0 or n > logits.shape[0]:
        raise ValueError("n out of range")
    if n_seen < 0 or n_seen > seen.shape[0]:
        raise ValueError("n_seen out of range")
    rep = np.float32(repeat)
    freq = np.float32(frequency)
    pres = np.float32(presence)
    nc = counts.shape[0]
    if identity:
        for j in range(n_seen):  # check everything first: an error leaves logits untouched
            t = seen[j]
            if t < 0 or t >= n or t >= nc:
                raise ValueError("token id out of range")
            if counts[t] > 0 and logits[t] != logits[t]:
                raise ValueError("NaN in logits")
        for j in range(n_seen):
            t = seen[j]
            c = counts[t]
            if c > 0:
                logits[t] = _penalise(logits[t], c, rep, freq, pres)
    else:
        for i in range(n):
            t = ids[i]
            if t < 0 or t >= nc:
                raise ValueError("token id out of range")
            if counts[t] > 0 and logits[i] != logits[i]:
                raise ValueError("NaN in logits")
        for i in range(n):
            c = counts[ids[i]]
            if c > 0:
                logits[i] = _penalise(logits[i], c, rep, freq, pres)
