"""What this machine and this llama.cpp build offer: CPU features, the build's system info
and CPU feature list, the CPU backend's extra buffer types (weight repacking: ``AMX``,
``CPU_REPACK``, ``KLEIDIAI``...) and the ggml backend devices (GPUs, when the build has a
GPU backend).

An *extra buffer type* is a fast path of llama.cpp's CPU backend: weights are stored
repacked for the CPU's matrix units and matrix products take that path's kernels. They are
what ``llama_model_params.use_extra_bufts`` (llama.cpp's ``--repack`` / ``--no-repack``)
switches on or off. A fast path that is broken on a CPU (ggml's AMX kernels crash for
products of more than one row on some Xeons) is found by ``engine.probe``; this module only
describes what is there.

``machine_id`` and ``build_id`` key the probe's cached verdict: the CPU (model name and
flags) and the llama.cpp libraries (package version, the libraries' sizes and dates, the
build's system info).
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["Hardware", "detect", "cpu_flags", "cpu_model", "AMX_FLAGS"]

AMX_FLAGS = ("amx_tile", "amx_int8", "amx_bf16")
_DEVICE_TYPES = {0: "CPU", 1: "GPU", 2: "IGPU", 3: "ACCEL"}


def _cpuinfo() -> str:
    try:
        return Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:
        return ""


def cpu_flags(text: str | None = None) -> frozenset[str]:
    """The CPU feature flags of ``/proc/cpuinfo`` (empty where there is none: macOS, Windows)."""
    text = _cpuinfo() if text is None else text
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):  # x86 / ARM
            return frozenset(value.split())
    return frozenset()


def cpu_model(text: str | None = None) -> str:
    """The CPU's model name (``/proc/cpuinfo``; the platform's processor string elsewhere)."""
    text = _cpuinfo() if text is None else text
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("model name", "Model", "Hardware"):
            return value.strip()
    import platform

    return platform.processor() or platform.machine()


@dataclass(frozen=True)
class Hardware:
    """The machine and the llama.cpp build, as found (``detect()``)."""

    cpu_model: str
    cpu_flags: frozenset[str]
    system_info: str                      # llama_print_system_info()
    features: dict[str, str]              # the CPU backend's ggml_backend_get_features
    extra_bufts: tuple[str, ...]          # the CPU backend's extra buffer types, by name
    devices: tuple[dict, ...]             # ggml backend devices: name, description, type, memory
    llama_cpp_python: str
    library_dir: str
    physical_cores: int
    logical_cpus: int
    lib_stamp: str = field(default="", repr=False)

    @property
    def amx(self) -> bool:
        """The CPU has AMX tiles (``amx_tile`` and ``amx_int8`` in its flags)."""
        return {"amx_tile", "amx_int8"} <= self.cpu_flags

    @property
    def build_amx(self) -> bool:
        """The build holds ggml's AMX buffer type (its AMX kernels are used for weights)."""
        return any(b.upper().startswith("AMX") for b in self.extra_bufts)

    @property
    def gpus(self) -> tuple[dict, ...]:
        return tuple(d for d in self.devices if d["type"] in ("GPU", "IGPU"))

    @property
    def machine_id(self) -> str:
        """A stable key for this CPU: its model name and flags."""
        h = hashlib.sha256((self.cpu_model + "\n" + " ".join(sorted(self.cpu_flags))).encode())
        return h.hexdigest()[:16]

    @property
    def build_id(self) -> str:
        """A stable key for this llama.cpp build: version, libraries, system info, buffer types."""
        h = hashlib.sha256("\n".join([self.llama_cpp_python, self.lib_stamp, self.system_info,
                                      ",".join(self.extra_bufts)]).encode())
        return h.hexdigest()[:16]

    def to_dict(self) -> dict:
        return {
            "cpu_model": self.cpu_model,
            "cpu_flags_of_note": sorted(f for f in self.cpu_flags if f.startswith(("avx", "amx", "f16c", "fma",
                                                                                  "sve", "neon", "asimd"))),
            "amx": self.amx,
            "physical_cores": self.physical_cores,
            "logical_cpus": self.logical_cpus,
            "llama_cpp_python": self.llama_cpp_python,
            "library_dir": self.library_dir,
            "system_info": self.system_info,
            "cpu_backend_features": self.features,
            "extra_buffer_types": list(self.extra_bufts),
            "devices": list(self.devices),
            "machine_id": self.machine_id,
            "build_id": self.build_id,
        }


def _lib_stamp(lib_dir: Path) -> str:
    parts = []
    try:
        for p in sorted(lib_dir.iterdir()):
            if ".so" in p.name or p.suffix in (".dylib", ".dll"):
                st = p.stat()
                parts.append(f"{p.name}:{st.st_size}:{st.st_mtime_ns}")
    except OSError:
        pass
    return ";".join(parts)


def _ggml_backend(lib) -> tuple[dict[str, str], tuple[str, ...], tuple[dict, ...]]:
    """The CPU backend's features and extra buffer types, and every backend device."""
    vp = ctypes.c_void_p
    lib.ggml_backend_dev_count.restype = ctypes.c_size_t
    lib.ggml_backend_dev_get.restype = vp
    lib.ggml_backend_dev_get.argtypes = [ctypes.c_size_t]
    for fn in ("ggml_backend_dev_name", "ggml_backend_dev_description"):
        getattr(lib, fn).restype = ctypes.c_char_p
        getattr(lib, fn).argtypes = [vp]
    lib.ggml_backend_dev_type.restype = ctypes.c_int
    lib.ggml_backend_dev_type.argtypes = [vp]
    lib.ggml_backend_dev_memory.restype = None
    lib.ggml_backend_dev_memory.argtypes = [vp, ctypes.POINTER(ctypes.c_size_t), ctypes.POINTER(ctypes.c_size_t)]
    lib.ggml_backend_dev_backend_reg.restype = vp
    lib.ggml_backend_dev_backend_reg.argtypes = [vp]
    lib.ggml_backend_reg_get_proc_address.restype = vp
    lib.ggml_backend_reg_get_proc_address.argtypes = [vp, ctypes.c_char_p]
    lib.ggml_backend_buft_name.restype = ctypes.c_char_p
    lib.ggml_backend_buft_name.argtypes = [vp]

    class _Feature(ctypes.Structure):
        _fields_ = [("name", ctypes.c_char_p), ("value", ctypes.c_char_p)]

    features: dict[str, str] = {}
    bufts: list[str] = []
    devices: list[dict] = []
    for i in range(int(lib.ggml_backend_dev_count())):
        dev = lib.ggml_backend_dev_get(i)
        kind = _DEVICE_TYPES.get(int(lib.ggml_backend_dev_type(dev)), "OTHER")
        free, total = ctypes.c_size_t(0), ctypes.c_size_t(0)
        lib.ggml_backend_dev_memory(dev, ctypes.byref(free), ctypes.byref(total))
        devices.append({
            "name": (lib.ggml_backend_dev_name(dev) or b"").decode(errors="replace"),
            "description": (lib.ggml_backend_dev_description(dev) or b"").decode(errors="replace"),
            "type": kind, "memory_total": int(total.value), "memory_free": int(free.value),
        })
        if kind != "CPU":
            continue
        reg = lib.ggml_backend_dev_backend_reg(dev)
        addr = lib.ggml_backend_reg_get_proc_address(reg, b"ggml_backend_get_features")
        if addr:
            get = ctypes.CFUNCTYPE(ctypes.POINTER(_Feature), vp)(addr)
            arr = get(reg)
            j = 0
            while arr and arr[j].name:
                features[arr[j].name.decode()] = (arr[j].value or b"").decode()
                j += 1
        addr = lib.ggml_backend_reg_get_proc_address(reg, b"ggml_backend_dev_get_extra_bufts")
        if addr:
            get = ctypes.CFUNCTYPE(ctypes.POINTER(vp), vp)(addr)
            arr = get(dev)
            j = 0
            while arr and arr[j]:
                bufts.append((lib.ggml_backend_buft_name(arr[j]) or b"?").decode(errors="replace"))
                j += 1
    return features, tuple(bufts), tuple(devices)


@functools.lru_cache(maxsize=1)
def detect() -> Hardware:
    """This machine and the llama.cpp build in use (found once per process)."""
    import llama_cpp

    from .backend import ensure_backend, physical_cores

    ensure_backend()
    text = _cpuinfo()
    info = llama_cpp.llama_print_system_info()
    info = info.decode(errors="replace") if isinstance(info, bytes) else str(info)
    lib_dir = Path(llama_cpp.__file__).parent / "lib"
    try:
        from llama_cpp._ggml import libggml

        features, bufts, devices = _ggml_backend(libggml)
    except (ImportError, AttributeError, OSError):  # an older binding: no device API
        features, bufts, devices = {}, (), ()
    return Hardware(
        cpu_model=cpu_model(text), cpu_flags=cpu_flags(text), system_info=info.strip(),
        features=features, extra_bufts=bufts, devices=devices,
        llama_cpp_python=getattr(llama_cpp, "__version__", "?"), library_dir=str(lib_dir),
        physical_cores=physical_cores(), logical_cpus=os.cpu_count() or 1, lib_stamp=_lib_stamp(lib_dir),
    )
