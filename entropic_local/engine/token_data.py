"""llama.cpp's ``llama_token_data_array`` over a reusable numpy buffer: load a candidate set
(``ids``, ``logits``), run one of llama.cpp's own samplers on it (``llama_sampler_apply``),
read the result back. What the grammar constraint and the checks against llama.cpp's
native samplers use."""

from __future__ import annotations

import ctypes

import numpy as np

from .backend import llama

__all__ = ["TokenDataArray", "TOKEN_DATA"]

# struct llama_token_data { llama_token id; float logit; float p; }
TOKEN_DATA = np.dtype([("id", "<i4"), ("logit", "<f4"), ("p", "<f4")])
assert TOKEN_DATA.itemsize == ctypes.sizeof(llama.llama_token_data)


class TokenDataArray:
    """A ``llama_token_data_array`` of capacity ``n_vocab`` whose entries live in ``buf``
    (a structured numpy array). ``load`` fills it, ``apply(sampler)`` runs a native sampler,
    ``result()`` gives the entries after it (llama.cpp samplers may move the start, e.g. XTC,
    and shrink the size)."""

    def __init__(self, n_vocab: int):
        self.buf = np.zeros(int(n_vocab), dtype=TOKEN_DATA)
        self._base = self.buf.ctypes.data
        self.arr = llama.llama_token_data_array(
            data=ctypes.cast(self._base, llama.llama_token_data_p), size=0, selected=-1, sorted=False)

    def load(self, ids: np.ndarray, logits: np.ndarray, n: int, is_sorted: bool = False) -> None:
        b = self.buf
        b["id"][:n] = ids[:n]
        b["logit"][:n] = logits[:n]
        b["p"][:n] = 0.0
        self.arr.data = ctypes.cast(self._base, llama.llama_token_data_p)
        self.arr.size = int(n)
        self.arr.selected = -1
        self.arr.sorted = bool(is_sorted)

    def load_prepared(self, n: int) -> None:
        """Use ``buf[:n]`` as filled by the caller (ids and logits written in place)."""
        self.arr.data = ctypes.cast(self._base, llama.llama_token_data_p)
        self.arr.size = int(n)
        self.arr.selected = -1
        self.arr.sorted = False

    def apply(self, sampler) -> None:
        llama.llama_sampler_apply(sampler, ctypes.byref(self.arr))

    @property
    def offset(self) -> int:
        addr = ctypes.cast(self.arr.data, ctypes.c_void_p).value or 0
        return (addr - self._base) // TOKEN_DATA.itemsize

    def result(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
        """(ids, logits, p, selected) of the entries after the last ``apply`` (copies;
        ``selected`` is an index into them, or -1)."""
        o = self.offset
        view = self.buf[o:o + int(self.arr.size)]
        return (view["id"].copy(), view["logit"].copy(), view["p"].copy(), int(self.arr.selected))
