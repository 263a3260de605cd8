"""A model argument (a path, a registry name or None) to a verified GGUF file on disk; the
registry listed for ``entropic-local models``; how a model is named in outputs.
"""

from __future__ import annotations

import difflib
import os
from pathlib import Path
from typing import Any

from ..errors import ModelNotFound, UsageError
from .cache import verify
from .entries import DEFAULT_MODEL, ModelEntry, load_registry, user_registry_path
from .hub import download_file, hf_local_path, not_downloaded
from .packages import assemble, builder_local_path, distribution_file, import_builder, pip_hint

__all__ = [
    "resolve_model", "resolve_entry", "list_models", "local_path", "model_label",
    "registry_template", "looks_like_path",
]


def local_path(entry: ModelEntry) -> Path | None:
    """Where the entry's file is or would be on disk (None when its package is missing).

    Cheap: no hashing, no download, no assembly.
    """
    if entry.kind == "file":
        return Path(entry.file)
    if entry.kind == "hf":
        return hf_local_path(entry)
    if entry.builder:
        try:
            module, _ = import_builder(entry)
        except ModelNotFound:
            return None
        return builder_local_path(entry, module)
    try:
        return distribution_file(entry)
    except ModelNotFound:
        return None





def looks_like_path(s: str) -> bool:
    return (
        "/" in s
        or (os.sep != "/" and os.sep in s)
        or bool(os.altsep and os.altsep in s)
        or s.lower().endswith(".gguf")
        or s.startswith(("~", "."))
    )


def model_label(name: str | os.PathLike | None, path: Path | None = None) -> str:
    """How a model is named in messages and outputs: its registry name (the default model's
    when ``name`` is None), or the file name of a path (of ``path``, the resolved file, when
    given)."""
    if name is None:
        return DEFAULT_MODEL
    name = os.fspath(name)
    return (path or Path(name)).name if looks_like_path(name) else name


def registry_template(name: str | None) -> str | None:
    """The models.txt ``template`` column of a registry name (None for a path or an unknown
    name)."""
    if name is None:
        name = DEFAULT_MODEL
    if looks_like_path(name):
        return None
    entry = load_registry().get(name)
    return entry.template if entry is not None else None


def check_path(p: Path, given: str) -> Path:
    if p.is_dir():
        ggufs = sorted(x.name for x in p.glob("*.gguf"))[:5]
        hint = (
            f"files there: {', '.join(ggufs)}" if ggufs else "give the path of a .gguf file"
        )
        raise ModelNotFound(f"{given} is a directory, expected a .gguf file", hint=hint)
    fix = "check the path, or give a model name: entropic-local models lists them"
    if not p.exists():
        raise ModelNotFound(f"no such file: {given}", hint=fix)
    if not p.is_file():
        raise ModelNotFound(f"{given} is not a regular file, expected a .gguf file", hint=fix)
    return p.absolute()


def unknown(name: str, entries: dict[str, ModelEntry]) -> ModelNotFound:
    names = sorted(entries)
    lower = {n.lower(): n for n in names}
    close = difflib.get_close_matches(name.lower(), list(lower), n=3, cutoff=0.5)
    close += [n.lower() for n in names if name.lower() in n.lower() and n.lower() not in close]
    suggestions = [lower[c] for c in close][:3]
    msg = f"unknown model {name!r} (known: {', '.join(names)})"
    if suggestions:
        msg += "; did you mean " + " or ".join(repr(s) for s in suggestions) + "?"
    return ModelNotFound(
        msg,
        hint=f"give a path to a .gguf file, or add a line for it to {user_registry_path()}",
    )


def resolve_entry(entry: ModelEntry, *, download: bool = True) -> Path:
    """The verified local file of a registry entry (downloading or assembling it if needed)."""
    if entry.kind == "file":
        p = Path(entry.file)
        if not p.is_file():
            raise ModelNotFound(
                f"model {entry.name!r}: no such file: {p} (from {entry.where})"
            )
        verify(entry, p, owned=False)
        return p
    if entry.kind == "pypi":
        if entry.builder:
            return assemble(entry)
        p = distribution_file(entry)
        verify(entry, p, owned=False)
        return p
    # hf
    target = hf_local_path(entry)
    if target.is_file():
        verify(entry, target, owned=True)
        return target
    if not download:
        raise not_downloaded(entry, target, "downloads are turned off")
    path = download_file(entry, target)
    verify(entry, path, owned=True, fresh=True)
    return path


def resolve_model(model: str | os.PathLike | None, *, download: bool = True) -> Path:
    """A model argument → the path of a GGUF file on disk.

    ``None`` → the default model; a path (``os.PathLike``, or a string with a path separator,
    a ``.gguf`` suffix, or a leading ``~``/``.``) → that file, which must exist and be a
    regular file; a registry name → its file, located in an installed package, assembled
    into the cache, or downloaded (``download=False`` forbids that) and checked against its
    sha256. Raises ``ModelNotFound`` or ``InvalidModelFile`` with what to do.
    """
    if model is None:
        model = DEFAULT_MODEL
    if isinstance(model, os.PathLike):
        given = os.fspath(model)
        return check_path(Path(given).expanduser(), str(given))
    if not isinstance(model, str):
        raise UsageError(f"model must be a name, a path or None, not {type(model).__name__}")
    if not model.strip():
        raise UsageError("model name is empty")
    if looks_like_path(model):
        return check_path(Path(model).expanduser(), model)
    entries = load_registry()
    if model in entries:
        return resolve_entry(entries[model], download=download)
    p = Path(model)
    if p.exists():  # a bare file name in the current directory
        return check_path(p, model)
    raise unknown(model, entries)


# --------------------------------------------------------------------------- list


def list_models() -> list[dict[str, Any]]:
    """Rows for ``entropic-local models``: one per registry entry, default first.

    Keys: name, source, default, available, path (str or None), size (bytes or None),
    sha256 (or None), template, origin (file:line), hint (how to get it, when missing).
    Nothing is hashed, downloaded or assembled.
    """
    rows = []
    for entry in load_registry().values():
        p = local_path(entry)
        available = bool(p is not None and p.is_file())
        if available:
            hint = None
        elif entry.kind == "pypi" and p is None:
            hint = pip_hint(entry.package)
        elif entry.kind == "pypi" and entry.builder:
            hint = "assembled from its package on first use"
        elif entry.kind == "hf":
            hint = "downloaded on first use"
        else:
            hint = "file missing"
        rows.append(
            {
                "name": entry.name,
                "source": entry.source,
                "default": entry.name == DEFAULT_MODEL,
                "available": available,
                "path": str(p) if available else None,
                "size": p.stat().st_size if available and p is not None else None,
                "sha256": entry.sha256,
                "template": entry.template,
                "origin": entry.where,
                "hint": hint,
            }
        )
    rows.sort(key=lambda r: not r["default"])
    return rows
