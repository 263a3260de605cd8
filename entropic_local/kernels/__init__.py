"""Numba kernels on candidate sets (``ids: int32[:]``, ``logits: float32[:]``, first ``n`` live).

All are ``@numba.njit(cache=True)`` pure functions, no Python objects; float32 inputs, float64
accumulation; ``-inf`` is a mask; NaN among the live logits raises ``ValueError``; ``+inf``
logits take all the probability mass. Truncating kernels compact survivors to the front in
place and return the new ``n``. Semantics follow llama.cpp's ``src/llama-sampler.cpp``.

Statistics (``stats``)
    logit_stats(logits, temperature) -> (max_logit, log_z, entropy, varentropy)
    free_energy(log_z, temperature) -> -T log Z
Softmax (``softmax``)
    softmax(logits, n, out) -> log_z
Selection (``sampling``)
    argmax(logits, n) -> int
    sample_categorical(logits, n, u) -> int
Truncation (``truncation``)
    top_k(ids, logits, n, k) -> n                          sorted descending
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
α-entmax (``alpha_entmax``; Peters, Niculae, Martins 2019)
    entmax(z, alpha, temperature, out) -> support size     α=1 softmax, 1.5 exact, 2 sparsemax
    sparsemax(z, temperature, out) -> k;  entmax15(z, temperature, out) -> k
    entmax_candidates(ids, logits, n, alpha, temperature, probs) -> n_support
    entmax_support_window(alpha, temperature) -> T/(α-1)
Attention (``attention``; from captured post-softmax rows, nats)
    attention_metrics(A, head_entropy_out, head_varentropy_out) -> (mean H, mean V, agreement)
    attention_metrics_masked(P, valid, n_kv, head_entropy_out, head_varentropy_out) -> same
    interaction_strength(S, scale);  interaction_strength_masked(S, valid, n_kv, scale)
Benchmarks (``bench``, ``entmax_bench``, imported on demand)
    run_kernel_bench(logits=None, repeats=200) -> dict;  format_kernel_bench(result) -> str
"""

from .attention import (
    attention_metrics,
    attention_metrics_masked,
    interaction_strength,
    interaction_strength_masked,
)
from .bias import apply_logit_bias
from .alpha_entmax import entmax, entmax15, entmax_candidates, entmax_support_window, sparsemax
from .penalties import apply_penalties
from .sampling import argmax, sample_categorical
from .softmax import softmax
from .stats import free_energy, logit_stats
from .temperature import dynamic_temperature, scale_temperature
from .truncation import min_p, top_k, top_n_sigma, top_p, typical_p

__all__ = [
    "logit_stats",
    "free_energy",
    "softmax",
    "argmax",
    "sample_categorical",
    "top_k",
    "top_p",
    "min_p",
    "typical_p",
    "top_n_sigma",
    "scale_temperature",
    "dynamic_temperature",
    "apply_penalties",
    "apply_logit_bias",
    "entmax",
    "entmax15",
    "sparsemax",
    "entmax_candidates",
    "entmax_support_window",
    "attention_metrics",
    "attention_metrics_masked",
    "interaction_strength",
    "interaction_strength_masked",
]
