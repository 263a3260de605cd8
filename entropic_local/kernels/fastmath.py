"""The fast-math pieces every kernel shares: the fastmath flags, free bit casts, monotone
integer keys of float32 values, and branch-free ``exp2`` / ``log2`` that LLVM vectorises
(numba has no vector libm without Intel's SVML).

* ``exp2``: float32-grade (degree-6 polynomial, relative error 2e-9), for the statistics
  and sampling passes whose sums are float64 but whose inputs are float32 logits;
* ``exp2_precise`` / ``log2_precise``: float64-grade (7e-16 / 3e-16 absolute), for the
  α-entmax solver, where ``w^e = 2^{e log2 w}`` must hold to float64 precision.

Both ``exp2`` build ``2^k`` from the exponent bits (no multiply). The integer ``k`` comes
from the bits of ``k + 1.5·2^52`` (exact for |k| < 2^51: ``k`` sits in the low mantissa bits,
so shifting those bits left by 52 gives ``k << 52`` modulo 2^64) rather than a float-to-int
conversion, which AVX2 has no vector instruction for (LLVM would scalarise the loop's
hottest step); the keys map a float32 to
an int32 with the same order, so a max over keys vectorises and finds NaN in the same pass
(``|bits| > ABS_INF_BITS``).
"""

from __future__ import annotations

import numba
import numpy as np
from numba import types
from numba.extending import intrinsic

# fastmath without 'nnan'/'ninf': -inf is our mask and must keep IEEE semantics.
FASTMATH = {"reassoc", "contract", "arcp", "nsz"}

LOG2E = 1.4426950408889634
LN2 = 0.6931471805599453
W_MIN = -1000.0  # clamp for the base-2 exponent (2^-1000 ~ 9e-302, still a normal double)

# 2^f on [-1/2, 1/2], degree 6, c0 = 1 (exact at f = 0); max relative error 1.98e-9.
_P1 = 0.6931472028598255
_P2 = 0.24022647913020392
_P3 = 0.055503324627522804
_P4 = 0.009618437395565851
_P5 = 0.0013398877321975406
_P6 = 0.00015353358341325973

ABS_INF_BITS = np.int32(0x7F800000)  # |bits| above this is a NaN
KEY_NEG_INF = np.int32(-2139095041)  # _key(-inf) == bits ^ 0x7fffffff of 0xff800000
KEY_POS_INF = np.int32(0x7F800000)  # _key(+inf)
KEY_MIN = np.int32(-2147483648)
ROUND_MAGIC = 6755399441055744.0  # 1.5 * 2^52: x + ROUND_MAGIC holds integer x in its low bits


# ---------------------------------------------------------------------------------------------
# bit casts (LLVM bitcast: free, and vectorisable)


@intrinsic
def f32_bits(typingctx, x):
    """float32 -> int32 with the same bits."""
    if x != types.float32:
        return None
    sig = types.int32(types.float32)

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], context.get_value_type(types.int32))

    return sig, codegen


@intrinsic
def bits_f32(typingctx, i):
    """int32 -> float32 with the same bits."""
    if i != types.int32:
        return None
    sig = types.float32(types.int32)

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], context.get_value_type(types.float32))

    return sig, codegen


@intrinsic
def f64_bits(typingctx, x):
    """float64 -> int64 with the same bits."""
    if x != types.float64:
        return None
    sig = types.int64(types.float64)

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], context.get_value_type(types.int64))

    return sig, codegen


@intrinsic
def bits_f64(typingctx, i):
    """int64 -> float64 with the same bits."""
    if i != types.int64:
        return None
    sig = types.float64(types.int64)

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], context.get_value_type(types.float64))

    return sig, codegen


# ---------------------------------------------------------------------------------------------
# monotone integer keys of float32 values, and the exponential


@numba.njit(inline="always", fastmath=FASTMATH)
def key(x):
    """Monotone int32 key of a float32: ``a < b`` (floats) implies ``key(a) < key(b)``.

    -0.0 gets key -1 and +0.0 key 0 (the only pair of equal floats with different keys).
    """
    b = f32_bits(x)
    return np.int32(b ^ np.int32(np.int32(b >> np.int32(31)) & np.int32(0x7FFFFFFF)))


@numba.njit(inline="always", fastmath=FASTMATH)
def abs_bits(x):
    """Bits of |x| as int32 (NaN iff > ABS_INF_BITS)."""
    return np.int32(f32_bits(x) & np.int32(0x7FFFFFFF))


@numba.njit(inline="always")
def key_value(k):
    """Inverse of ``key``."""
    b = np.int32(k ^ np.int32(np.int32(k >> np.int32(31)) & np.int32(0x7FFFFFFF)))
    return bits_f32(b)


@numba.njit(inline="always", fastmath=FASTMATH)
def exp2(w):
    """2**w for w in [W_MIN, ~1]: rint range reduction, degree-6 polynomial, then 2^k applied
    by adding k to the exponent field of the polynomial's bits (exact while the result is a
    normal double, which the clamp W_MIN guarantees)."""
    kf = np.rint(w)
    f = w - kf
    p = _P6
    p = p * f + _P5
    p = p * f + _P4
    p = p * f + _P3
    p = p * f + _P2
    p = p * f + _P1
    p = p * f + 1.0
    return bits_f64(f64_bits(p) + (f64_bits(kf + ROUND_MAGIC) << np.int64(52)))


# ---------------------------------------------------------------------------------------------
# vectorisable float64 log2 / exp2 (numba has no vector libm without Intel's SVML)


_TWO_OVER_LN2 = 2.8853900817779268  # 2/ln 2
_SQRT2 = 1.4142135623730951
EXP2_MIN = -1023.0  # exp2_precise(-1023) == 0.0 exactly (zero exponent bits, f = 0)
F64_TINY = 2.2250738585072014e-308  # smallest normal float64 (log2_precise needs a normal number)
# 2^f on [-1/2, 1/2] = 1 + f (c1 + f (c2 + ...)): weighted least squares on Chebyshev
# nodes, max relative error 7e-16.
_E1 = 0.6931471805599501
_E2 = 0.24022650695909198
_E3 = 0.05550410866445987
_E4 = 0.009618129107938038
_E5 = 0.0013333558228377426
_E6 = 0.0001540353004244619
_E7 = 1.5252658223142696e-05
_E8 = 1.3215632569136566e-06
_E9 = 1.0208517561802208e-07
_E10 = 7.041399329453762e-09


@numba.njit(inline="always", error_model="numpy", fastmath=FASTMATH)
def exp2_precise(t):
    """2^t for t in [-1023, ~1]: rint range reduction, degree-10 polynomial, 2^k from bits
    (k = -1023 gives the bit pattern of 0.0: results below 2^-1022.5 are exactly 0)."""
    kf = np.rint(t)
    f = t - kf
    q = _E10
    q = q * f + _E9
    q = q * f + _E8
    q = q * f + _E7
    q = q * f + _E6
    q = q * f + _E5
    q = q * f + _E4
    q = q * f + _E3
    q = q * f + _E2
    q = q * f + _E1
    q = q * f + 1.0
    return q * bits_f64(f64_bits(kf + (ROUND_MAGIC + 1023.0)) << np.int64(52))


@numba.njit(inline="always", error_model="numpy", fastmath=FASTMATH)
def log2_precise(w):
    """log2(w) for a positive normal float64: w = 2^k m, m in [1/sqrt2, sqrt2),
    ln m = 2 atanh(u), u = (m-1)/(m+1) (|u| ≤ 0.1716; 10 terms: abs error 3e-16)."""
    b = f64_bits(w)
    k = (b >> np.int64(52)) - np.int64(1023)
    m = bits_f64((b & np.int64(0x000FFFFFFFFFFFFF)) | np.int64(0x3FF0000000000000))
    big = m > _SQRT2
    m = m * 0.5 if big else m
    kf = np.float64(k) + (1.0 if big else 0.0)
    u = (m - 1.0) / (m + 1.0)
    u2 = u * u
    q = 1.0 / 19.0
    q = q * u2 + 1.0 / 17.0
    q = q * u2 + 1.0 / 15.0
    q = q * u2 + 1.0 / 13.0
    q = q * u2 + 1.0 / 11.0
    q = q * u2 + 1.0 / 9.0
    q = q * u2 + 1.0 / 7.0
    q = q * u2 + 1.0 / 5.0
    q = q * u2 + 1.0 / 3.0
    q = q * u2 + 1.0
    return kf + _TWO_OVER_LN2 * u * q
