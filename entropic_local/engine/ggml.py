"""ggml seen from compiled code: the ``struct ggml_tensor`` layout, numba intrinsics for raw
pointers and calls through an address, and the addresses of ggml's tensor get/set.

The attention callbacks run inside llama.cpp's graph evaluation as numba ``@cfunc``s; they
read a tensor's header in place (``ne`` at ``OFF_NE``, ``nb`` at ``OFF_NB``, ``src`` at
``OFF_SRC``, ``name`` at ``OFF_NAME``...: ggml.h on 64-bit platforms) and copy its rows with
``ggml_backend_tensor_get(_2d)`` / write them back with ``_set(_2d)``, called through their
addresses: correct for host and device buffers alike. ``check_layout`` builds a small
tensor with ggml itself and checks every offset relied on before any callback is used.
"""

from __future__ import annotations

import ctypes

import numpy as np
from llvmlite import ir
from numba import types
from numba.extending import intrinsic

from ..errors import AttentionUnavailable

__all__ = [
    "OFF_TYPE", "OFF_NE", "OFF_NB", "OFF_OP", "OFF_OP_PARAMS", "OFF_SRC", "OFF_DATA", "OFF_NAME",
    "GGML_TYPE_F32", "GGML_TYPE_F16", "void_ptr", "address", "call_tensor_io", "call_tensor_io_2d",
    "tensor_io_functions", "check_layout",
]

# struct ggml_tensor on 64-bit platforms (ggml.h): checked at run time by _check_layout().
OFF_TYPE = 0
OFF_NE = 16
OFF_NB = 48
OFF_OP = 80
OFF_OP_PARAMS = 84
OFF_SRC = 152
OFF_DATA = 248
OFF_NAME = 256
GGML_TYPE_F32 = 0
GGML_TYPE_F16 = 1

_I8P = ir.IntType(8).as_pointer()
_I64 = ir.IntType(64)


@intrinsic
def void_ptr(typingctx, addr):
    """integer address -> void*"""

    def codegen(context, builder, signature, args):
        return builder.inttoptr(args[0], _I8P)

    return types.voidptr(addr), codegen


@intrinsic
def address(typingctx, ptr):
    """void* -> int64 address"""

    def codegen(context, builder, signature, args):
        return builder.ptrtoint(args[0], _I64)

    return types.int64(ptr), codegen


@intrinsic
def call_tensor_io(typingctx, fn, t, dst, off, size):
    """``void fn(ggml_tensor *t, void *data, size_t off, size_t size)`` at address ``fn``:
    ``ggml_backend_tensor_get`` or ``_set`` (the same signature)."""
    sig = types.void(fn, t, dst, off, size)

    def codegen(context, builder, signature, args):
        fnty = ir.FunctionType(ir.VoidType(), [_I8P, _I8P, _I64, _I64])
        f = builder.inttoptr(args[0], fnty.as_pointer())
        builder.call(f, [builder.inttoptr(args[1], _I8P), builder.inttoptr(args[2], _I8P), args[3], args[4]])
        return context.get_dummy_value()

    return sig, codegen


@intrinsic
def call_tensor_io_2d(typingctx, fn, t, dst, off, size, n, stride_t, stride_d):
    """``void fn(t, data, off, size, n_copies, stride_tensor, stride_data)`` at address ``fn``:
    ``ggml_backend_tensor_get_2d`` or ``_set_2d``."""
    sig = types.void(fn, t, dst, off, size, n, stride_t, stride_d)

    def codegen(context, builder, signature, args):
        fnty = ir.FunctionType(ir.VoidType(), [_I8P, _I8P, _I64, _I64, _I64, _I64, _I64])
        f = builder.inttoptr(args[0], fnty.as_pointer())
        builder.call(
            f,
            [builder.inttoptr(args[1], _I8P), builder.inttoptr(args[2], _I8P), args[3], args[4], args[5], args[6], args[7]],
        )
        return context.get_dummy_value()

    return sig, codegen


_functions: dict[str, int] | None = None


def tensor_io_functions() -> dict[str, int]:
    """Addresses of ``ggml_backend_tensor_get``, ``_get_2d``, ``_set`` and ``_set_2d`` (0 for a
    2-D form this ggml lacks), after checking the ``ggml_tensor`` layout."""
    global _functions
    if _functions is None:
        from llama_cpp._ggml import libggml  # the library, loaded only when a hook is made

        def addr(name: str) -> int:
            try:
                return int(ctypes.cast(getattr(libggml, name), ctypes.c_void_p).value or 0)
            except AttributeError:  # older ggml: no 2-D form
                return 0

        check_layout(libggml)
        _functions = {"get": addr("ggml_backend_tensor_get"), "get2d": addr("ggml_backend_tensor_get_2d"),
                      "set": addr("ggml_backend_tensor_set"), "set2d": addr("ggml_backend_tensor_set_2d")}
    return _functions


class _GgmlInitParams(ctypes.Structure):
    _fields_ = [("mem_size", ctypes.c_size_t), ("mem_buffer", ctypes.c_void_p), ("no_alloc", ctypes.c_bool)]


def check_layout(lib) -> None:
    """Build a small ggml graph node and check the struct offsets the callback relies on."""
    lib.ggml_init.restype = ctypes.c_void_p
    lib.ggml_init.argtypes = [_GgmlInitParams]
    lib.ggml_free.argtypes = [ctypes.c_void_p]
    lib.ggml_new_tensor_4d.restype = ctypes.c_void_p
    lib.ggml_new_tensor_4d.argtypes = [ctypes.c_void_p, ctypes.c_int] + [ctypes.c_int64] * 4
    lib.ggml_soft_max_ext.restype = ctypes.c_void_p
    lib.ggml_soft_max_ext.argtypes = [ctypes.c_void_p] * 3 + [ctypes.c_float] * 2
    lib.ggml_set_name.restype = ctypes.c_void_p
    lib.ggml_set_name.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
    lib.ggml_get_name.restype = ctypes.c_void_p
    lib.ggml_get_name.argtypes = [ctypes.c_void_p]
    lib.ggml_get_data.restype = ctypes.c_void_p
    lib.ggml_get_data.argtypes = [ctypes.c_void_p]
    ctx = lib.ggml_init(_GgmlInitParams(1 << 20, None, False))
    if not ctx:
        raise AttentionUnavailable("ggml_init failed while checking the ggml_tensor layout")
    try:
        a = lib.ggml_new_tensor_4d(ctx, GGML_TYPE_F32, 7, 5, 3, 2)
        mask = lib.ggml_new_tensor_4d(ctx, GGML_TYPE_F32, 7, 5, 1, 2)
        sm = lib.ggml_soft_max_ext(ctx, a, mask, ctypes.c_float(0.125), ctypes.c_float(0.0))
        lib.ggml_set_name(sm, b"kq_soft_max-12")
        ne = np.frombuffer(ctypes.string_at(sm + OFF_NE, 32), dtype=np.int64).tolist()
        nb = np.frombuffer(ctypes.string_at(sm + OFF_NB, 32), dtype=np.uint64).tolist()
        scale = np.frombuffer(ctypes.string_at(sm + OFF_OP_PARAMS, 4), dtype=np.float32)[0]
        srcs = np.frombuffer(ctypes.string_at(sm + OFF_SRC, 16), dtype=np.uint64).tolist()
        data = ctypes.c_uint64.from_address(sm + OFF_DATA).value
        ok = (
            ctypes.c_int32.from_address(sm + OFF_TYPE).value == GGML_TYPE_F32
            and ne == [7, 5, 3, 2]
            and nb == [4, 28, 140, 420]
            and scale == np.float32(0.125)
            and srcs == [a, mask]
            and lib.ggml_get_name(sm) == sm + OFF_NAME
            and ctypes.string_at(sm + OFF_NAME) == b"kq_soft_max-12"
            and data == (lib.ggml_get_data(sm) or 0)
        )
    finally:
        lib.ggml_free(ctx)
    if not ok:
        raise AttentionUnavailable(
            "this llama.cpp build's struct ggml_tensor layout differs from the one the attention "
            "hook was written for",
            hint="use a llama-cpp-python version this package supports, or run without attention",
        )
