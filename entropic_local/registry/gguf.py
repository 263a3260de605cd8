"""GGUF header validation: a bounds-checked walk of a file's header before llama.cpp sees it.
"""

from __future__ import annotations

import mmap
import os
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import InvalidModelFile, ModelNotFound

__all__ = ["GGUFHeader", "check_gguf_header"]


# ggml type id → (block size in elements, bytes per block); from ggml / gguf-py.
_GGML_TYPE_SIZES: dict[int, tuple[int, int]] = {
    0: (1, 4), 1: (1, 2), 2: (32, 18), 3: (32, 20), 6: (32, 22), 7: (32, 24), 8: (32, 34),
    9: (32, 36), 10: (256, 84), 11: (256, 110), 12: (256, 144), 13: (256, 176),
    14: (256, 210), 15: (256, 292), 16: (256, 66), 17: (256, 74), 18: (256, 98),
    19: (256, 50), 20: (32, 18), 21: (256, 110), 22: (256, 82), 23: (256, 136), 24: (1, 1),
    25: (1, 2), 26: (1, 4), 27: (1, 8), 28: (1, 8), 29: (256, 56), 30: (1, 2),
    34: (256, 54), 35: (256, 66), 39: (32, 17),
}
# GGUF value type → fixed size in bytes (8 = string, 9 = array are variable)
_GGUF_SCALAR = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d"}
_MIN_KV_BYTES = 8 + 4 + 1        # key length, value type, smallest value
_MIN_TENSOR_BYTES = 8 + 4 + 4 + 8  # name length, n_dims, type, offset


@dataclass
class GGUFHeader:
    """What ``check_gguf_header`` read: counts, layout and the scalar metadata."""

    path: Path
    version: int
    tensor_count: int
    kv_count: int
    file_size: int
    alignment: int
    data_offset: int
    data_end: int
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def architecture(self) -> str | None:
        v = self.metadata.get("general.architecture")
        return v if isinstance(v, str) else None

    @property
    def chat_template(self) -> str | None:
        v = self.metadata.get("tokenizer.chat_template")
        return v if isinstance(v, str) else None


def _not_gguf_reason(head: bytes) -> str:
    if head[:4] in (b"lmgg", b"fmgg", b"tjgg", b"algg", b"GGML", b"GGJT", b"ggml", b"ggjt", b"ggla"):
        return f"a legacy GGML file (magic {head[:4]!r}), not GGUF: convert it with llama.cpp's tools"
    low = head[:64].lstrip().lower()
    if low.startswith((b"<!doctype", b"<html", b"<?xml")):
        return "an HTML/XML page, not a GGUF file (a failed download?)"
    if low.startswith(b"version https://git-lfs"):
        return "a Git LFS pointer file, not the model itself (fetch the LFS object)"
    if low.startswith((b"{", b"[")):
        return "a JSON text file, not a GGUF file"
    if len(head) >= 9 and head[8:9] == b"{":
        return "looks like a safetensors file, not GGUF: convert it with llama.cpp's convert_hf_to_gguf.py"
    return f"not a GGUF file (magic {head[:4]!r}, expected b'GGUF')"


def check_gguf_header(path: str | os.PathLike) -> GGUFHeader:
    """Validate a GGUF file cheaply before llama.cpp sees it; raise ``InvalidModelFile``.

    Checks the magic, the version (2 or 3: llama.cpp no longer reads version 1), that the
    tensor and key/value counts fit in the file, then walks the metadata and tensor table
    (no tensor data is read) and checks that every tensor's data lies inside the file, which
    catches truncated downloads. Returns what it read.
    """
    p = Path(path)
    if p.is_dir():
        raise ModelNotFound(f"{p} is a directory, expected a .gguf file")
    try:
        f = open(p, "rb")
    except FileNotFoundError:
        raise ModelNotFound(f"no such file: {p}") from None
    except OSError as exc:
        raise InvalidModelFile(f"{p}: cannot read it ({exc.strerror or exc})") from None
    with f:
        size = os.fstat(f.fileno()).st_size
        head = f.read(64)
        if size == 0:
            raise InvalidModelFile(f"{p} is empty (0 bytes), not a GGUF file")
        if head[:4] != b"GGUF":
            raise InvalidModelFile(f"{p}: {_not_gguf_reason(head)}")
        if size < 8:
            raise InvalidModelFile(f"{p}: truncated: {size} bytes, shorter than a GGUF header")
        (version,) = struct.unpack_from("<I", head, 4)
        if version & 0xFFFF == 0 and version:
            raise InvalidModelFile(
                f"{p}: a big-endian GGUF file (version field {version:#x}); this machine needs "
                "a little-endian one"
            )
        if version == 1:
            raise InvalidModelFile(
                f"{p}: GGUF version 1, which llama.cpp no longer reads; re-convert the model "
                "or download a newer GGUF"
            )
        if version not in (2, 3):
            raise InvalidModelFile(
                f"{p}: unsupported GGUF version {version} (supported: 2 and 3)"
            )
        if size < 24:
            raise InvalidModelFile(f"{p}: truncated: {size} bytes, shorter than a GGUF header")
        n_tensors, n_kv = struct.unpack_from("<QQ", head, 8)
        need = 24 + n_kv * _MIN_KV_BYTES + n_tensors * _MIN_TENSOR_BYTES
        if n_tensors > 1 << 32 or n_kv > 1 << 32 or need > size:
            raise InvalidModelFile(
                f"{p}: truncated or corrupt: the header declares {n_tensors} tensors and "
                f"{n_kv} metadata entries, which need at least {need} bytes, but the file "
                f"has {size} bytes"
            )
        with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mm:
            return _walk_gguf(p, mm, size, version, n_tensors, n_kv)


class _Truncated(Exception):
    pass


_MAX_LAYERS = 512  # llama.cpp's LLAMA_MAX_LAYERS


def _check_hparams(p: Path, metadata: dict[str, Any]) -> None:
    """Metadata values on which llama.cpp asserts, aborting the whole process, instead of
    refusing the file: refused here first (found by tests/test_hostile.py)."""
    arch = metadata.get("general.architecture")
    if not isinstance(arch, str):
        return
    key = f"{arch}.block_count"
    n = metadata.get(key)
    if isinstance(n, int) and not 1 <= n <= _MAX_LAYERS:
        raise InvalidModelFile(f"{p}: corrupt metadata: {key} = {n} (llama.cpp takes 1 to "
                               f"{_MAX_LAYERS} layers)")
    for key in (f"{arch}.attention.layer_norm_rms_epsilon", f"{arch}.attention.layer_norm_epsilon"):
        eps = metadata.get(key)
        if isinstance(eps, float) and not eps >= 0.0:
            raise InvalidModelFile(f"{p}: corrupt metadata: {key} = {eps!r} (must be >= 0)")


def _walk_gguf(p: Path, mm: mmap.mmap, size: int, version: int, n_tensors: int, n_kv: int) -> GGUFHeader:
    off = 24
    unpack_from = struct.unpack_from
    metadata: dict[str, Any] = {}

    def need(n: int) -> None:
        if off + n > size:
            raise _Truncated()

    def read_str() -> str:
        nonlocal off
        need(8)
        (n,) = unpack_from("<Q", mm, off)
        off += 8
        need(n)
        s = mm[off:off + n].decode("utf-8", errors="replace")
        off += n
        return s

    section = "metadata"
    try:
        for _ in range(n_kv):
            key = read_str()
            need(4)
            (vtype,) = unpack_from("<I", mm, off)
            off += 4
            if vtype in _GGUF_SCALAR:
                fmt = "<" + _GGUF_SCALAR[vtype]
                need(struct.calcsize(fmt))
                (metadata[key],) = unpack_from(fmt, mm, off)
                off += struct.calcsize(fmt)
            elif vtype == 8:
                metadata[key] = read_str()
            elif vtype == 9:
                need(12)
                etype, count = unpack_from("<IQ", mm, off)
                off += 12
                if etype in _GGUF_SCALAR:
                    n = struct.calcsize("<" + _GGUF_SCALAR[etype]) * count
                    need(n)
                    off += n
                elif etype == 8:
                    for _ in range(count):  # skip the strings (e.g. a 262k-token vocabulary)
                        if off + 8 > size:
                            raise _Truncated()
                        (n,) = unpack_from("<Q", mm, off)
                        off += 8 + n
                    if off > size:
                        raise _Truncated()
                else:
                    raise InvalidModelFile(
                        f"{p}: corrupt metadata: key {key!r} is an array of unknown type {etype}"
                    )
            else:
                raise InvalidModelFile(
                    f"{p}: corrupt metadata: key {key!r} has unknown value type {vtype}"
                )
        section = "tensor table"
        tensors = []
        for _ in range(n_tensors):
            name = read_str()
            need(4)
            (n_dims,) = unpack_from("<I", mm, off)
            off += 4
            if n_dims > 8:
                raise InvalidModelFile(f"{p}: corrupt tensor table: tensor {name!r} has {n_dims} dimensions")
            need(8 * n_dims + 12)
            dims = unpack_from(f"<{n_dims}Q", mm, off)
            off += 8 * n_dims
            ttype, toff = unpack_from("<IQ", mm, off)
            off += 12
            tensors.append((name, dims, ttype, toff))
    except _Truncated:
        raise InvalidModelFile(
            f"{p}: truncated: the file ends ({size} bytes) inside its {section}"
        ) from None

    alignment = metadata.get("general.alignment", 32)
    if not isinstance(alignment, int) or alignment <= 0 or alignment & (alignment - 1):
        raise InvalidModelFile(f"{p}: corrupt metadata: general.alignment = {alignment!r}")
    _check_hparams(p, metadata)
    data_offset = (off + alignment - 1) // alignment * alignment
    data_end = data_offset if tensors else off  # no tensors: no padded data section
    last = None
    for name, dims, ttype, toff in tensors:
        n_el = 1
        for d in dims:
            n_el *= d
        bs = _GGML_TYPE_SIZES.get(ttype)
        nbytes = (n_el // bs[0]) * bs[1] if bs else 0  # unknown (newer) type: bound by offset
        end = data_offset + toff + nbytes
        if end > data_end:
            data_end, last = end, name
    if data_end > size:
        raise InvalidModelFile(
            f"{p}: truncated: tensor {last!r} ends at byte {data_end} but the file has only "
            f"{size} bytes ({data_end - size} missing; an interrupted download?)"
        )
    return GGUFHeader(p, version, n_tensors, n_kv, size, alignment, data_offset, data_end, metadata)
