"""Numba kernels on candidate sets (``ids: int32[:]``, ``logits: float32[:]``, first ``n`` live).

All are ``@numba.njit(cache=True)`` pure functions, no Python objects; float32 inputs, float64
accumulation; ``-inf`` is a mask; NaN among the live logits raises ``ValueError``; ``+inf``
logits take all the probability mass. Truncating kernels compact survivors to the front in
place and return the new ``n``. Semantics follow llama.cpp's ``src/llama-sampler.cpp``.

Statistics (``stats``)
    logit_stats(logits, temperature) -> (max_logit, log_z, entropy, varentropy)
    free_energy(log_z, temperature) -> -T log Z
    rows_stats(mat, out) -> n_rows                         logit_stats of every row, one call (``rows``)
Softmax (``probabilities``)
    softmax(logits, n, out) -> log_z
Selection (``sampling``)
    argmax(logits, n) -> int
    sample_categorical(logits, n, u) -> int
Truncation (``truncation``)
    top_k(ids, logits, n, k) -> n                          sorted descending
    top_k_into(raw, k, ids, logits) -> n                   top_k of the raw vocabulary, no copy
    top_k_stats_into(raw, k, ids, logits, stats) -> n      the same and logit_stats(raw, 1) in one pass
    top_p(ids, logits, n, p, min_keep, is_sorted) -> n     sorted descending
    min_p(ids, logits, n, p, min_keep) -> n                order preserved
    typical_p(ids, logits, n, p, min_keep) -> n            typicality order
    top_n_sigma(ids, logits, n, nsigma) -> n               order preserved
Temperature (``temperature``)
    scale_temperature(logits, n, t) -> None
    dynamic_temperature(logits, n, temp, delta, exponent) -> T
Penalties and bias (``penalties``, ``bias``)
    apply_penalties(ids, logits, n, identity, counts, seen, n_seen, repeat, frequency, presence)
    apply_logit_bias(ids, logits, n, identity, bias_ids, bias_values)
DRY, XTC, mirostat, adaptive-p (``dry``, ``xtc``, ``mirostat``, ``adaptive_p``)
    dry_penalties(ids, logits, n, identity, hist, m, mult, base, allowed, head_ptr, tail_ptr,
                  tails, single, best) -> penalised count
    xtc(ids, logits, n, threshold, min_keep) -> (n, removed)
    mirostat_v1_k(logits, n, mu, m, n_vocab) -> (k, s);  mirostat_v2_cut(ids, logits, n, mu) -> n
    adaptive_p_transform(logits, n, target, orig) -> None
α-entmax (``alpha_entmax``; Peters, Niculae, Martins 2019)
    entmax(z, alpha, temperature, out) -> support size     α=1 softmax, 1.5 exact, 2 sparsemax
    sparsemax(z, temperature, out) -> k;  entmax15(z, temperature, out) -> k
    entmax_candidates(ids, logits, n, alpha, temperature, probs) -> n_support
    entmax_support_window(alpha, temperature) -> T/(α-1)
Attention (``attention``; from captured post-softmax rows, nats)
    attention_metrics(A, head_entropy_out, head_varentropy_out) -> (mean H, mean V, agreement)
    attention_metrics_masked(P, valid, n_kv, head_entropy_out, head_varentropy_out) -> same
    interaction_strength(S, scale);  interaction_strength_masked(S, valid, n_kv, scale)
The kernels are loaded on first use (``kernels.top_k`` imports ``kernels.truncation``):
importing this package does not import numba.
"""

from __future__ import annotations

from ..lazy import lazy_attributes

_WHERE = {
    "logit_stats": ".stats", "free_energy": ".stats", "rows_stats": ".rows",
    "softmax": ".probabilities",
    "argmax": ".sampling", "sample_categorical": ".sampling",
    "top_k": ".truncation", "top_k_into": ".truncation", "top_k_stats_into": ".truncation",
    "top_p": ".truncation", "min_p": ".truncation", "typical_p": ".truncation", "top_n_sigma": ".truncation",
    "scale_temperature": ".temperature", "dynamic_temperature": ".temperature",
    "apply_penalties": ".penalties",
    "apply_logit_bias": ".bias",
    "dry_penalties": ".dry", "xtc": ".xtc", "mirostat_v1_k": ".mirostat",
    "mirostat_v2_cut": ".mirostat", "adaptive_p_transform": ".adaptive_p",
    "entmax": ".alpha_entmax", "entmax15": ".alpha_entmax", "sparsemax": ".alpha_entmax",
    "entmax_candidates": ".alpha_entmax", "entmax_support_window": ".alpha_entmax",
    "attention_metrics": ".attention", "attention_metrics_masked": ".attention",
    "interaction_strength": ".attention", "interaction_strength_masked": ".attention",
}

__all__ = list(_WHERE)


__getattr__, __dir__ = lazy_attributes(__name__, _WHERE)
