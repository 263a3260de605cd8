"""α-entmax, sparsemax and entmax15 over a logit vector: numba kernels.

Reference: B. Peters, V. Niculae, A. F. T. Martins, "Sparse Sequence-to-Sequence Models",
ACL 2019 (https://github.com/deep-spin/entmax); sampling from it: P. H. Martins, Z. Marinho,
A. F. T. Martins, "Sparse Text Generation", EMNLP 2020.

Definition. With logits ``z``, temperature ``T > 0`` and ``α ∈ [1, 2]``::

    entmax_α(z/T)_i = [(α-1) z_i/T - τ]_+ ^ (1/(α-1)),     τ such that Σ_i p_i = 1.

α = 1 is softmax (the limit, special-cased: exactly ``α == 1.0``), α = 2 is sparsemax and
α = 1.5 is entmax15; both have exact sort-based forms, used here for exactly 2.0 and 1.5.

Working variables. ``d_i = (z_i - max z)/T ≤ 0`` (logit units, float64), ``a = α-1``,
``e = 1/a``. Writing ``τ = a·(max z/T) - 1 + a·ν``, the solution is::

    p_i = w_i^e,   w_i = [1 + a (d_i - ν)]_+,   S(ν) = Σ_i w_i^e = 1.

``ν`` is in logit units and tends to softmax's log-partition ``ln Σ e^d`` as α → 1
(``w^e = exp(log1p(a(d - ν))/a) → e^{d - ν}``), so the solve behaves the same for α close to
1 as for α = 2. ``S`` is decreasing and convex in ``ν`` (``e ≥ 1``); ``S(0) ≥ 1`` (the max
has ``w = 1``) and ``S(ν_hi) ≤ 1`` at ``ν_hi = (1 - m^{-a})/a ≤ ln m`` for ``m`` candidates
(the notes' bracket ``τ_lo = max X - 1``, ``τ_hi = max X - (1/m)^{α-1}``, in these units).

Exact candidate filter (always first). ``ν ≥ 0`` gives ``p_i = 0`` whenever
``d_i ≤ -1/(α-1)``, i.e. ``z_i ≤ max z - T/(α-1)``: one logit for sparsemax, two for
entmax15, ten for α = 1.1. The max pass (vectorised over monotone int32 keys of the
float32 bits, NaN check included) also records per-block maxima, so counting and gathering
the survivors only visits blocks that hold one. On Gemma 3 logits (262,144 entries) 1 to
25 entries survive at α = 1.5, 10 to 1,500 at α = 1.1; at α ≤ 1.05 most of the vocabulary
does.

Two layouts. Few survivors (always for the sort-based α = 1.5 and 2): they are gathered
(indices + float64 d) and solved alone, then scattered into the zeroed output. More than
half surviving (α near 1; softmax always): the passes run over the float32 logits directly,
with d computed on the fly and the filtered entries giving w ≤ 0, and the last pass writes
the output in place (no gather, no scatter).

Root finding (general α). Safeguarded Newton on ``ν`` with a bracket ``[lo, hi]``,
``S(lo) ≥ 1 ≥ S(hi)``. Start: ``ν0 = L - (a/2) E_q[(d - L)²]``, ``L = ln Σ e^d``,
``q = softmax(d)`` (first order in a; one cheap exp pass). Step: Newton on ``log S``
(exact for a softmax-like S, hence few steps near α = 1), else Newton on ``S``, else
bisection, whichever first lands strictly inside the bracket; ``S' = -Σ w^{e-1}`` comes
from the same pass. Entries with ``w`` dead at ``lo`` can never re-enter the support and are
compacted away once an eighth of the working set is dead, as are entries whose
``p ≤ (1 + a d_i)^e`` is below ``1e-17/n`` (they cannot move S; they still get their exact
value in the output). Stop at ``|S - 1| ≤ 1e-6``, then take one more Newton step without
evaluating (quadratic convergence: ~1e-13) and write ``w^e`` normalised by the output pass's
own sum. Typically 1 to 4 passes (plus the start and the output pass).

Powers. ``w^e = 2^{e·log2 w}`` with a branch-free float64 ``log2`` (exponent bits +
atanh series, abs. error 3e-16) and ``exp2`` (rint + degree-10 polynomial + exponent bits,
rel. error 7e-16) so that LLVM vectorises every pass (numba has no vector libm without
SVML). ``w ≤ w_min = 2^{-1023/e}`` (every w ≤ 0 included) gives exactly 0: probabilities
below 2^-1022.5 (~1e-308) are flushed to 0 and are outside the reported support.

sparsemax (α = 2) and entmax15 (α = 1.5): exact sort-based solves (``entmax_sort``).

softmax (α = 1): ``p = e^{d} / Σ e^{d}`` over all finite entries.

Special values (same conventions as ``stats``): ``-inf`` is a mask (``p = 0`` exactly, the
rest is the entmax of the unmasked entries); NaN raises ``ValueError("NaN in logits")``; all
``-inf`` raises ``ValueError("all logits are masked")``. ``+inf`` logits take ALL the mass,
shared equally among them (the limit of a logit growing without bound; for several ``+inf``
the equal split is the symmetric choice), every finite entry gets 0. ``α`` outside [1, 2] or
NaN, and ``T`` not in (0, inf), raise ``ValueError``.

Support size. Every kernel returns ``k``, the number of entries with a strictly positive
output (in the output's dtype: a probability that underflows the output dtype counts as 0, so
the returned support always matches the exact zeros of the output).

Precision. All arithmetic on the survivors is float64; results agree with the float64
numpy references (``entmax_reference``) to ~1e-13 absolute, and the output sums to 1 up to
the rounding of its dtype.

Inputs. ``z``/``logits`` must be float32 (the max pass works on float32 bits); ``out`` /
``probs`` float32 or float64; α and T Python floats (ints compile a separate
specialisation). ``T`` must be positive, finite and have a finite reciprocal.

Cost (one core, 262,144 Gemma 3 logits, float32 out): ~0.06 to 0.2 ms for α ≥ 1.1 (the
floor is the max pass plus zeroing the output), ~0.55 ms for softmax, ~2.7 ms for
α ∈ [1.001, 1.05] where most of the vocabulary is in the support (``benchmarks/entmax_kernel.py``).
"""

from __future__ import annotations

import numba
import numpy as np

from .entmax_filter import BLOCK, scan, sparse_probs, use_dense
from .entmax_filter import entmax_support_window  # noqa: F401  (public, with the kernels below)
from .entmax_root import solve_dense
from .fastmath import FASTMATH

__all__ = [
    "entmax", "sparsemax", "entmax15", "softmax_dense", "entmax_candidates",
    "entmax_support_window",
]


@numba.njit(cache=True, error_model="numpy", fastmath=FASTMATH)
def _zero(out):
    for i in range(out.shape[0]):
        out[i] = 0.0


@numba.njit(cache=True, error_model="numpy")
def entmax(z, alpha, temperature, out):
    """α-entmax of ``z/T`` (dense): ``out[i] = [(α-1) z_i/T - τ]_+^{1/(α-1)}``, Σ out = 1.

    Args:
        z: float32[V] logits (``-inf`` = masked; NaN raises).
        alpha: in [1, 2]; 1.0 exactly is softmax, 2.0 sparsemax, 1.5 the exact entmax15,
            anything else Newton on the threshold.
        temperature: T > 0, divides z first.
        out: float32[V] or float64[V], receives the probabilities (exact zeros outside the
            support).

    Returns:
        k, the support size (number of entries with ``out > 0``).
    """
    n = z.shape[0]
    if out.shape[0] != n:
        raise ValueError("out must have the length of z")
    bmax = np.empty((n + BLOCK - 1) // BLOCK, np.int32)
    zmax, thr, kthr, c = scan(z, n, alpha, temperature, bmax)
    if use_dense(alpha, c, n, zmax):
        return solve_dense(z, n, zmax, 1.0 / temperature, alpha, out)
    idx, p = sparse_probs(z, n, zmax, alpha, temperature, thr, kthr, bmax, c)
    _zero(out)
    k = 0
    for j in range(idx.size):
        i = idx[j]
        out[i] = p[j]
        k += out[i] > 0
    return k


@numba.njit(cache=True, error_model="numpy")
def sparsemax(z, temperature, out):
    """sparsemax(z/T) = entmax with α = 2 (exact, sort-based on the survivors of
    ``z > max z - T``); returns the support size. See ``entmax``."""
    return entmax(z, 2.0, temperature, out)


@numba.njit(cache=True, error_model="numpy")
def entmax15(z, temperature, out):
    """1.5-entmax(z/T) (exact, sort-based on the survivors of ``z > max z - 2T``); returns
    the support size. See ``entmax``."""
    return entmax(z, 1.5, temperature, out)


@numba.njit(cache=True, error_model="numpy")
def softmax_dense(z, temperature, out):
    """softmax(z/T) = entmax with α = 1 (no sparsity: the support is every unmasked entry,
    unless its probability underflows the output dtype); returns the support size."""
    return entmax(z, 1.0, temperature, out)


@numba.njit(cache=True, error_model="numpy")
def entmax_candidates(ids, logits, n, alpha, temperature, probs):
    """α-entmax over a candidate set, truncated to its support, in place.

    The live candidates are ``ids[:n]`` (int32) and ``logits[:n]`` (float32, ``-inf`` =
    masked). On return the first ``n_support`` entries of ``ids`` and ``logits`` are the
    candidates with non-zero probability, in their original relative order (a sorted set
    stays sorted), their logits unchanged, and ``probs[:n_support]`` (float32 or float64)
    holds their probabilities under ``entmax_α(logits[:n]/T)`` (Σ = 1, all > 0). Entries
    of the three buffers past ``n_support`` are left in an unspecified state.

    ``probs`` needs room for the support only; with capacity ≥ n (the usual: a buffer of
    the vocabulary's size) the dense case (α near 1, most candidates surviving) is written
    straight into it, otherwise through a temporary.

    Returns:
        n_support (≥ 1). Raises ValueError on n < 1, n > len(logits) or len(ids), NaN, all
        masked, bad α or T, or ``probs`` smaller than the support.
    """
    if ids.shape[0] < n:
        raise ValueError("n is larger than the buffer")
    bmax = np.empty((max(n, 1) + BLOCK - 1) // BLOCK, np.int32)
    zmax, thr, kthr, c = scan(logits, n, alpha, temperature, bmax)
    k = 0
    if use_dense(alpha, c, n, zmax):
        if probs.shape[0] >= n:
            solve_dense(logits, n, zmax, 1.0 / temperature, alpha, probs)
            for i in range(n):
                v = probs[i]
                if v > 0:
                    probs[k] = v
                    ids[k] = ids[i]
                    logits[k] = logits[i]
                    k += 1
            return k
        tmp = np.empty(n)
        solve_dense(logits, n, zmax, 1.0 / temperature, alpha, tmp)
        for i in range(n):
            v = tmp[i]
            if v > 0:
                if k >= probs.shape[0]:
                    raise ValueError("probs is too small")
                probs[k] = v
                if probs[k] > 0:
                    ids[k] = ids[i]
                    logits[k] = logits[i]
                    k += 1
        return k
    idx, p = sparse_probs(logits, n, zmax, alpha, temperature, thr, kthr, bmax, c)
    for j in range(idx.size):
        i = idx[j]
        if p[j] > 0:
            if k >= probs.shape[0]:
                raise ValueError("probs is too small")
            probs[k] = p[j]
            if probs[k] > 0:
                ids[k] = ids[i]
                logits[k] = logits[i]
                k += 1
    return k
