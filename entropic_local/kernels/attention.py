"""Attention metrics of one decoding step (Entropix-style), in nats.

Input: the attention probabilities of the newest token for one layer, ``P[h, j]`` (head
``h``, KV cell ``j``), as captured from llama.cpp's ``kq_soft_max-<layer>`` node (see
``entropic_local/engine/attention.py``). Every metric is taken over the *valid* cells only
(the cells the token may attend to: its own sequence, causal, inside the sliding window);
masked cells of the padded cache window never enter a sum or a count.

Two input forms, same numbers:

* ``attention_metrics(A, ...)``: ``A[h, j]`` already compacted to the valid cells (``[H, n]``);
* ``attention_metrics_masked(P, valid, n_kv, ...)``: ``P[h, j]`` over the cache window
  (``[H, >= n_kv]``) and ``valid[j] != 0`` marking the valid cells among ``j < n_kv``; no
  copy, this is the form used on the capture buffers every step.

Definitions (``n`` valid cells, ``H`` heads, natural logs, ``0 log 0 = 0``):

* entropy per head ``H_h = -sum_j p_hj log p_hj``; reported: the per-head values and their
  mean over heads;
* varentropy per head ``V_h = sum_j p_hj (log p_hj + H_h)^2`` (the variance of the surprise
  ``-log p`` under ``p_h``, the true varentropy; upstream Entropix used the variance of the
  entropy across heads instead); reported: per head and the mean over heads. A cell with
  ``p = 0`` (masked, or underflowed to 0) contributes 0 to both;
* agreement ``(1 / (H n)) sum_h sum_j |p_hj - m_j|``, ``m_j = (1/H) sum_h p_hj``: the mean
  absolute deviation of the heads from their mean distribution, averaged over heads and
  valid cells (it scales like ``1/n`` as the context grows: every row sums to 1). Despite
  the name, which is upstream Entropix's and is kept in every output, it measures
  *disagreement*: 0 when all heads attend alike. Entropix normalises it into the head
  disagreement ``D`` (``samplers/entropix_policy.py``);
* interaction strength ``(1 / (H n)) sum_h sum_j |s_hj|`` where ``s_hj`` is the pre-softmax
  score the softmax actually sees: ``scale * x_hj`` with ``x`` the softmax input (the
  ``kq-<layer>`` node, or the soft-capped ``kq_scaled_2-<layer>``) and ``scale`` the
  softmax's own scale (``1/sqrt(d_head)`` for most models; 1 for models that pre-scale Q such
  as Gemma 3). The mask adds 0 on valid cells, so it is not part of ``s``.

  There is no equivalent without capturing the scores: ``log p_hj = s_hj - logsumexp_j s_hj``
  recovers the scores only up to a per-row constant, and ``mean |log p|`` is a different
  number (it is dominated by the log-partition, grows with ``log n`` and is never small). When
  the scores were not captured the capture layer reports interaction strength as NaN.

All kernels accumulate in float64, take float32 or float64 input, and are plain
``@njit(cache=True)`` (no fastmath: the order of the sums is fixed, so a numpy reference
computed the same way agrees to float64 rounding).
"""

from __future__ import annotations

import math

import numba
import numpy as np


@numba.njit(cache=True)
def _head_entropy_varentropy(row, valid, n_kv, masked):
    """(entropy, varentropy) of one head's row, over valid cells (all cells when not masked)."""
    h = 0.0
    for j in range(n_kv):
        if masked and valid[j] == 0:
            continue
        p = np.float64(row[j])
        if p > 0.0:
            h -= p * math.log(p)
    v = 0.0
    for j in range(n_kv):
        if masked and valid[j] == 0:
            continue
        p = np.float64(row[j])
        if p > 0.0:
            d = math.log(p) + h
            v += p * d * d
    return h, v


@numba.njit(cache=True)
def _metrics(P, valid, n_kv, masked, head_entropy, head_varentropy):
    n_head = P.shape[0]
    if n_head == 0:
        raise ValueError("no heads")
    if P.shape[1] < n_kv:
        raise ValueError("rows are shorter than n_kv")
    if head_entropy.shape[0] < n_head or head_varentropy.shape[0] < n_head:
        raise ValueError("output arrays are shorter than the number of heads")
    h_sum = 0.0
    v_sum = 0.0
    for hd in range(n_head):
        h, v = _head_entropy_varentropy(P[hd], valid, n_kv, masked)
        head_entropy[hd] = h
        head_varentropy[hd] = v
        h_sum += h
        v_sum += v
    # agreement: mean over heads and valid cells of |p_hj - mean_h p_hj|
    dev = 0.0
    n_valid = 0
    inv_h = 1.0 / n_head
    for j in range(n_kv):
        if masked and valid[j] == 0:
            continue
        n_valid += 1
        m = 0.0
        for hd in range(n_head):
            m += np.float64(P[hd, j])
        m *= inv_h
        for hd in range(n_head):
            dev += abs(np.float64(P[hd, j]) - m)
    if n_valid == 0:
        raise ValueError("no valid cells")
    return h_sum * inv_h, v_sum * inv_h, dev / (n_head * n_valid)


@numba.njit(cache=True)
def attention_metrics(A, head_entropy, head_varentropy):
    """Metrics of attention rows over valid cells.

    ``A``: float32/float64 ``[H, n]``, head ``h``'s probabilities over the ``n`` valid cells.
    Writes ``head_entropy[:H]`` and ``head_varentropy[:H]`` (float64) and returns
    ``(mean entropy, mean varentropy, agreement)`` in nats (varentropy in nats^2).
    """
    dummy = np.empty(0, np.uint8)
    return _metrics(A, dummy, A.shape[1], False, head_entropy, head_varentropy)


@numba.njit(cache=True)
def attention_metrics_masked(P, valid, n_kv, head_entropy, head_varentropy):
    """Same as ``attention_metrics`` on cache-window rows: ``P[H, >= n_kv]`` with the valid
    cells marked by ``valid[j] != 0`` (``j < n_kv``); no compaction, no copy."""
    if valid.shape[0] < n_kv:
        raise ValueError("valid is shorter than n_kv")
    return _metrics(P, valid, n_kv, True, head_entropy, head_varentropy)


@numba.njit(cache=True)
def _interaction(S, valid, n_kv, masked, scale):
    n_head = S.shape[0]
    if S.shape[1] < n_kv:
        raise ValueError("rows are shorter than n_kv")
    acc = 0.0
    n_valid = 0
    for j in range(n_kv):
        if masked and valid[j] == 0:
            continue
        n_valid += 1
        for hd in range(n_head):
            acc += abs(np.float64(S[hd, j]))
    if n_valid == 0 or n_head == 0:
        raise ValueError("no valid cells")
    return abs(scale) * acc / (n_head * n_valid)


@numba.njit(cache=True)
def interaction_strength(S, scale):
    """Mean ``|scale * S[h, j]|`` over heads and cells; ``S[H, n]`` holds the softmax's
    input (pre-softmax scores before its scale) over the valid cells."""
    dummy = np.empty(0, np.uint8)
    return _interaction(S, dummy, S.shape[1], False, np.float64(scale))


@numba.njit(cache=True)
def interaction_strength_masked(S, valid, n_kv, scale):
    """``interaction_strength`` on cache-window rows ``S[H, >= n_kv]`` with a valid mask."""
    if valid.shape[0] < n_kv:
        raise ValueError("valid is shorter than n_kv")
    return _interaction(S, valid, n_kv, True, np.float64(scale))


__all__ = [
    "attention_metrics",
    "attention_metrics_masked",
    "interaction_strength",
    "interaction_strength_masked",
]
