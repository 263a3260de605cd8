"""Process-wide llama.cpp set-up: importing the binding, logging, thread choice.

llama.cpp logs to stderr through one process-wide callback. We install our own so that its
chatter is silent unless asked for (``set_verbose(True)`` / ``--verbose``); errors that
explain a failed load are kept in a small ring buffer so they can be put in the exception
message instead of being lost.
"""

from __future__ import annotations

import collections
import ctypes
import os
import sys
import threading

import llama_cpp as llama  # the low-level ctypes API of llama-cpp-python

from ..errors import UsageError

_verbose = False
_recent_errors: collections.deque[str] = collections.deque(maxlen=20)
_init_lock = threading.Lock()
_initialised = False


@llama.llama_log_callback
def _log_callback(level: int, text: bytes, user_data: ctypes.c_void_p) -> None:
    # ggml_log_level: 1 debug, 2 info, 3 warn, 4 error, 5 continuation
    try:
        msg = text.decode("utf-8", errors="replace")
    except Exception:  # never raise into C
        return
    if level in (3, 4):  # warnings and errors
        _recent_errors.append(msg.strip())
    if _verbose:
        sys.stderr.write(msg)
        sys.stderr.flush()


def set_verbose(verbose: bool) -> None:
    """Let llama.cpp's own log through to stderr (True) or keep it quiet (False)."""
    global _verbose
    _verbose = bool(verbose)


def ensure_backend() -> None:
    """Initialise llama.cpp once per process and install the quiet log callback."""
    global _initialised
    with _init_lock:
        if _initialised:
            return
        llama.llama_log_set(_log_callback, ctypes.c_void_p(0))
        llama.llama_backend_init()
        _initialised = True


def recent_errors() -> list[str]:
    """llama.cpp error lines logged since the last call (and clear them)."""
    out = [e for e in _recent_errors if e]
    _recent_errors.clear()
    return out


THREADS_ENV = "ENTROPIC_LOCAL_THREADS"


def default_threads() -> int:
    """The thread count used when none is given: ``$ENTROPIC_LOCAL_THREADS`` when it is set
    to a positive integer, else the physical cores (``physical_cores``)."""
    raw = os.environ.get(THREADS_ENV, "").strip()
    if raw:
        try:
            n = int(raw)
        except ValueError:
            n = 0
        if n < 1:
            raise UsageError(f"{THREADS_ENV}={raw!r} is not a positive integer",
                             hint=f"unset it or set it to a thread count, e.g. {THREADS_ENV}=2")
        return n
    return physical_cores()


def physical_cores() -> int:
    """Physical cores this process may run on (SMT siblings counted once).

    llama.cpp's default of 4 threads is 3x slower than 2 on a 2-core machine: decoding is
    memory-bound and oversubscribed threads spin against each other.
    """
    try:
        cpus = sorted(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return max(1, (os.cpu_count() or 2) // 2)
    cores = set()
    for cpu in cpus:
        base = f"/sys/devices/system/cpu/cpu{cpu}/topology/"
        try:
            with open(base + "physical_package_id") as f:
                pkg = f.read().strip()
            with open(base + "core_id") as f:
                core = f.read().strip()
            cores.add((pkg, core))
        except OSError:
            cores.add(("cpu", str(cpu)))
    return max(1, len(cores))
