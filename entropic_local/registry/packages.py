"""Models shipped in Python packages (``pypi:`` sources): a file inside an installed
distribution, or one a package's builder function writes into the cache once.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import os
from pathlib import Path
from typing import Any

from ..errors import InvalidModelFile, ModelNotFound
from .cache import load_stamps, models_dir, remove_file, save_stamps, verify
from .entries import NAME_RE, ModelEntry

__all__ = ["builder_local_path", "pip_hint", "distribution_file", "import_builder", "assemble"]


def builder_local_path(entry: ModelEntry, module: Any | None = None) -> Path:
    name = getattr(module, "MODEL_NAME", None) if module is not None else None
    if not (isinstance(name, str) and NAME_RE.match(name) and name.endswith(".gguf")):
        name = f"{entry.name}.gguf"
    return models_dir() / "pypi" / entry.package / name


def pip_hint(dist: str) -> str:
    return f"pip install {dist}"


def distribution_file(entry: ModelEntry) -> Path:
    """The file of a pypi entry inside its installed distribution; never imports it."""
    try:
        dist = importlib.metadata.distribution(entry.package)
    except importlib.metadata.PackageNotFoundError:
        raise ModelNotFound(
            f"model {entry.name!r} comes from the Python package {entry.package!r}, "
            "which is not installed",
            hint=pip_hint(entry.package),
        ) from None
    candidates = [Path(str(dist.locate_file(entry.file)))]
    # an editable or otherwise unusual install: look where the top-level package is found
    top, _, rest = entry.file.partition("/")
    if rest:
        try:
            spec = importlib.util.find_spec(top)  # top-level: finds without importing
        except (ImportError, ValueError):
            spec = None
        for loc in (spec.submodule_search_locations or []) if spec else []:
            candidates.append(Path(loc) / rest)
    for cand in candidates:
        if cand.is_file():
            return cand
    raise ModelNotFound(
        f"model {entry.name!r}: the package {entry.package!r} is installed but has no file "
        f"{entry.file!r} (looked at {', '.join(str(c) for c in candidates)})",
        hint=f"pip install --force-reinstall {entry.package}",
    )


def import_builder(entry: ModelEntry) -> tuple[Any, Any]:
    module_name, func_name = entry.builder  # type: ignore[misc]
    try:
        importlib.metadata.distribution(entry.package)
    except importlib.metadata.PackageNotFoundError:
        raise ModelNotFound(
            f"model {entry.name!r} comes from the Python package {entry.package!r}, "
            "which is not installed",
            hint=pip_hint(entry.package),
        ) from None
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ModelNotFound(
            f"model {entry.name!r}: cannot import {module_name!r} from {entry.package!r} ({exc})",
            hint=f"pip install --force-reinstall {entry.package}",
        ) from None
    func = getattr(module, func_name, None)
    if not callable(func):
        raise ModelNotFound(
            f"model {entry.name!r}: {module_name!r} has no function {func_name!r} "
            f"(source at {entry.where})",
            hint=f"pip install --upgrade {entry.package}",
        )
    return module, func


def assemble(entry: ModelEntry) -> Path:
    module, func = import_builder(entry)
    target = builder_local_path(entry, module)
    if target.is_file():
        try:
            verify(entry, target, owned=True)
            return target
        except InvalidModelFile:
            pass  # removed: build it again below
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f"{target.name}.{os.getpid()}.partial")
    if tmp.exists():  # left by a crashed run
        remove_file(tmp)
    try:
        try:
            func(tmp)
        except Exception as exc:  # the package's own failure (missing chunk, its hash check)
            raise InvalidModelFile(
                f"model {entry.name!r}: {entry.builder[0]}.{entry.builder[1]}() failed to build "  # type: ignore[index]
                f"the file: {exc}",
                hint=f"pip install --force-reinstall {entry.package}",
            ) from exc
        if not tmp.is_file():
            raise InvalidModelFile(
                f"model {entry.name!r}: {entry.source} did not write {tmp}",
                hint=f"pip install --upgrade {entry.package}",
            )
        verify(entry, tmp, owned=True, fresh=True)
        os.replace(tmp, target)
        stamps = load_stamps()  # the stamp follows the rename (same size and mtime)
        rec = stamps.pop(str(tmp.resolve()), None)
        if rec is not None:
            stamps[str(target.resolve())] = rec
            save_stamps(stamps)
    finally:
        if tmp.exists():
            remove_file(tmp)
    return target
