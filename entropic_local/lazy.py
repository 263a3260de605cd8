"""Package attributes loaded on first use (PEP 562), so importing a package costs nothing
until one of its names is used: ``__getattr__, __dir__ = lazy_attributes(__name__, WHERE)``
with ``WHERE = {name: ".module"}`` in the package's ``__init__.py``."""

from __future__ import annotations

import importlib
import sys
from typing import Any, Callable

__all__ = ["lazy_attributes"]


def lazy_attributes(package: str, where: dict[str, str],
                    loaded: Callable[[str, Any], None] | None = None
                    ) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """The module ``__getattr__`` and ``__dir__`` of ``package``: ``where[name]`` is the
    submodule (relative) defining ``name``, imported on first access; the value is then
    kept in the package's namespace. ``loaded(name, module)``, when given, runs once per name
    before its value is read."""

    def __getattr__(name: str) -> Any:
        target = where.get(name)
        if target is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        module = importlib.import_module(target, package)
        if loaded is not None:
            loaded(name, module)
        value = getattr(module, name)
        setattr(sys.modules[package], name, value)
        return value

    def __dir__() -> list[str]:
        return sorted(set(vars(sys.modules[package])) | set(where))

    return __getattr__, __dir__
