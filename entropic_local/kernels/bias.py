"""Logit bias: ``z_t <- z_t + b_t`` for the tokens of a sparse bias table.

``bias_ids`` (int32) sorted strictly ascending, ``bias_values`` the matching biases. With
``identity`` (the untouched vocabulary, ``ids[i] == i``) each bias indexes ``logits`` by token
id directly (O(#bias)); otherwise every live candidate binary-searches ``bias_ids``
(O(n log #bias)).

A mask is absorbing: a bias of ``-inf`` bans the token (``z <- -inf`` even if ``z = +inf``),
and an already masked token stays ``-inf`` whatever its bias. A ``+inf`` bias on an unmasked
token makes it ``+inf`` (it then takes all the mass). NaN biases, unsorted or duplicate ids,
and (with identity) ids outside ``[0, n)`` raise ``ValueError``; the sampler layer validates
first.
"""

from __future__ import annotations

import numba
import numpy as np


@numba.njit(inline="always")
def _biased(z, b):
    if b == -np.inf or z == -np.inf:
        return np.float32(-np.inf)
    return np.float32(z + b)


@numba.njit(cache=True)
def apply_logit_bias(ids, logits, n, identity, bias_ids, bias_values):
    """Add bias_values to the logits of the tokens bias_ids (in place)."""
    m = bias_ids.shape[0]
    if bias_values.shape[0] != m:
        raise ValueError("bias_ids and bias_values differ in length")
    if n < 0 or n > logits.shape[0]:
        raise ValueError("n out of range")
    for j in range(m):
        if bias_values[j] != bias_values[j]:
            raise ValueError("NaN in logit bias")
        if j > 0 and bias_ids[j] <= bias_ids[j - 1]:
            raise ValueError("bias_ids must be sorted strictly ascending")
        if identity and (bias_ids[j] < 0 or bias_ids[j] >= n):  # before any change
            raise ValueError("token id out of range")
    if m == 0:
        return
    if identity:
        for j in range(m):
            t = bias_ids[j]
            logits[t] = _biased(logits[t], bias_values[j])
    else:
        lo_id = bias_ids[0]
        hi_id = bias_ids[m - 1]
        for i in range(n):
            t = ids[i]
            if t < lo_id or t > hi_id:
                continue
            lo = 0
            hi = m
            while lo < hi:
                mid = (lo + hi) >> 1
                if bias_ids[mid] < t:
                    lo = mid + 1
                else:
                    hi = mid
            if lo < m and bias_ids[lo] == t:
                logits[i] = _biased(logits[i], bias_values[lo])
