"""The probe: does the CPU backend's fast path (its extra buffer types) survive on this
machine? Asked once, in a child process, because a crash in C kills whatever process it
happens in.

The child (``probe_child``) loads the model with a given configuration and decodes a
multi-token prompt, several single tokens and a four-sequence batch, then checks the logits
are finite; its exit status is the answer (a signal, a time-out or any other status: unsafe).
Configurations tried, until one passes:

1. extra buffer types on, several rows per product (llama.cpp's default),
2. extra buffer types on, one row per product (``n_ubatch = 1``),
3. extra buffer types off.

The ``Verdict`` is cached as JSON under ``<cache dir>/probe/``, keyed by the machine (CPU
model and flags), the llama.cpp build (``hardware.build_id``), the model file (size and
header) and the fault injected, if any. No probe runs when the build has no extra buffer
types.

Environment: ``ENTROPIC_LOCAL_PROBE=off`` skips it (the fast path is assumed safe),
``=fresh`` ignores the cache. ``ENTROPIC_LOCAL_PROBE_FAULT=segv`` simulates a fast path that
crashes on every product, ``=multirow`` one that crashes on products of several rows (as
ggml's AMX kernels do): the process that would take that path kills itself with SIGSEGV,
probe child and main process alike, so tests on any CPU can prove the path is found and
avoided.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from ..atomic_file import write_text_atomic
from ..registry.cache import cache_dir
from ..errors import UsageError
from .config import Verdict

__all__ = ["PROBE_ENV", "FAULT_ENV", "FAULTS", "fault", "fault_hits", "check_fault", "verdict",
           "run_child", "cache_path"]

PROBE_ENV = "ENTROPIC_LOCAL_PROBE"
FAULT_ENV = "ENTROPIC_LOCAL_PROBE_FAULT"
FAULTS = ("segv", "multirow")
TIMEOUT_S = 180
# the configurations tried, in order: (name, use_extra_bufts, n_ubatch or None for n_batch)
TRIALS = (("multirow", True, None), ("onerow", True, 1), ("plain", False, None))


def fault() -> str | None:
    """The fault injected through ``$ENTROPIC_LOCAL_PROBE_FAULT`` (None: none)."""
    v = os.environ.get(FAULT_ENV, "").strip().lower()
    if not v or v == "off":
        return None
    if v not in FAULTS:
        raise UsageError(f"{FAULT_ENV}={v!r}: expected one of {', '.join(FAULTS)}")
    return v


def fault_hits(kind: str | None, use_extra_bufts: bool, rows: int) -> bool:
    """Whether the simulated broken fast path ``kind`` is taken by a product of ``rows`` rows."""
    if kind is None or not use_extra_bufts:
        return False
    return kind == "segv" or (kind == "multirow" and rows > 1)


def check_fault(kind: str | None, use_extra_bufts: bool, rows: int) -> None:
    """Die as the broken fast path would (SIGSEGV) when the simulated fault is hit."""
    if fault_hits(kind, use_extra_bufts, rows):
        sys.stdout.flush()
        sys.stderr.flush()
        signal.signal(signal.SIGSEGV, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGSEGV)


def _model_key(path: Path) -> str:
    st = path.stat()
    h = hashlib.sha256(f"{st.st_size}".encode())
    with open(path, "rb") as f:
        h.update(f.read(1 << 18))  # the GGUF header: architecture, tensor types
    return h.hexdigest()[:16]


def cache_path(hw, model_path: Path, kind: str | None) -> Path:
    key = f"v2-{hw.machine_id}-{hw.build_id}-{_model_key(model_path)}-{kind or 'none'}"
    return cache_dir() / "probe" / f"{key}.json"


def run_child(model_path: str | os.PathLike, use_extra_bufts: bool, n_ubatch: int | None, n_threads: int,
              timeout: float = TIMEOUT_S) -> tuple[bool, str, bool]:
    """Run the probe child with one configuration: (passed, what happened, crashed). A
    failure that is not a crash (a Python error in the child: the model file cannot be
    read, the package cannot be imported) says nothing about the fast path."""
    cmd = [sys.executable, "-m", "entropic_local.engine.probe_child", str(model_path),
           "--repack" if use_extra_bufts else "--no-repack", "--threads", str(n_threads)]
    if n_ubatch is not None:
        cmd += ["--ubatch", str(n_ubatch)]
    env = {**os.environ, PROBE_ENV: "off"}
    here = str(Path(__file__).resolve().parents[2])  # the package's own checkout first
    env["PYTHONPATH"] = here + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env,
                           stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        return False, f"no answer in {timeout:.0f} s", True
    if r.returncode == 0:
        return True, "passed", False
    if r.returncode < 0:
        try:
            name = signal.Signals(-r.returncode).name
        except ValueError:
            name = f"signal {-r.returncode}"
        return False, f"killed by {name}", True
    last = (r.stderr.strip().splitlines() or [""])[-1][:200]
    what = f"exit status {r.returncode}" + (f": {last}" if last else "")
    # 3: non-finite logits, which the model itself may produce (broken metadata): evidence
    # only of a model the plain path will report on, not of a crash
    return False, what, r.returncode >= 128


def verdict(model_path: str | os.PathLike, hw, n_threads: int, *, log=None) -> Verdict:
    """The fast path's verdict for this model on this machine and build (cached)."""
    kind = fault()
    mode = os.environ.get(PROBE_ENV, "").strip().lower()
    if mode in ("off", "0", "no", "false"):
        return Verdict(source=f"probe skipped (${PROBE_ENV}=off)")
    if not hw.extra_bufts and kind is None:
        return Verdict(source="not needed: no extra buffer types")
    path = Path(model_path)
    cached = cache_path(hw, path, kind)
    if mode != "fresh":
        try:
            d = json.loads(cached.read_text())
            return Verdict(**{**d, "source": f"{d.get('source', 'probed')}, cached"})
        except (OSError, ValueError, TypeError):
            pass
    results: dict[str, bool] = {}
    notes = []
    t0 = time.perf_counter()
    for name, use, ub in TRIALS:
        ok, what, crashed = run_child(path, use, ub, n_threads)
        notes.append(f"{name}: {what}")
        if log is not None:
            log(f"probe {name}: {what}")
        if not ok and not crashed:
            # the child could not run at all: no evidence either way, so the plain path,
            # not cached (the load itself reports what is wrong)
            return Verdict(multirow=False, onerow=False, plain=True, source="probe could not run",
                           detail="; ".join(notes))
        results[name] = ok
        if ok:
            break
    multirow = results.get("multirow", False)
    onerow = multirow or results.get("onerow", False)
    plain = results.get("plain", True)  # not tried when a fast configuration passed
    stamp = time.strftime("%Y-%m-%d", time.gmtime())
    v = Verdict(multirow=multirow, onerow=onerow, plain=plain,
                source=f"probed {stamp} in {time.perf_counter() - t0:.1f} s",
                detail="; ".join(notes) + (f" (fault injected: {kind})" if kind else ""))
    try:
        cached.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(cached, json.dumps(v.to_dict(), indent=1) + "\n")
    except OSError:
        pass  # a read-only cache: probe again next time
    return v
