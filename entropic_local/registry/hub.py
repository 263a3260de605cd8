"""Models downloaded from Hugging Face (``hf:`` sources; the optional extra ``hub``).

Downloads: before calling ``hf_hub_download`` the resolver checks that the hub endpoint
(or the HTTPS proxy) accepts a TCP connection within ``$ENTROPIC_LOCAL_HUB_TIMEOUT`` seconds
(default 5). Offline, ``hf_hub_download`` itself retries for about 20 s before giving up; the
check makes an offline machine fail at once, with the URL to fetch and the exact local path
to put the file at. ``HF_HUB_OFFLINE=1`` skips the attempt altogether.
"""

from __future__ import annotations

import os
import socket
import threading
import urllib.parse
import urllib.request
from pathlib import Path

from ..errors import ModelNotFound
from .cache import models_dir
from .entries import HUB_EXTRA_HINT, ModelEntry

__all__ = ["hf_local_path", "not_downloaded", "download_file"]


def hf_local_path(entry: ModelEntry) -> Path:
    return models_dir() / entry.package / entry.file





def hub_endpoint() -> str:
    try:
        from huggingface_hub import constants

        return str(constants.ENDPOINT)
    except Exception:  # pragma: no cover - very old or broken huggingface_hub
        return os.environ.get("HF_ENDPOINT", "https://huggingface.co")


def hub_unreachable(endpoint: str, timeout: float) -> str | None:
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


def hub_url(entry: ModelEntry) -> str:
    return f"https://huggingface.co/{entry.package}/resolve/main/{entry.file}"


def not_downloaded(entry: ModelEntry, target: Path, reason: str) -> ModelNotFound:
    return ModelNotFound(
        f"model {entry.name!r} is not on disk and could not be downloaded: {reason}. "
        f"Fetch {entry.file!r} from the Hugging Face repo {entry.package!r} "
        f"({hub_url(entry)}) and put it at {target}",
        hint=f"or give the path of a .gguf file instead of {entry.name!r}",
    )


def _env_true(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


def download_file(entry: ModelEntry, target: Path) -> Path:
    try:
        import huggingface_hub
    except ImportError:
        raise ModelNotFound(
            f"model {entry.name!r} is not on disk and huggingface_hub (needed to download it) "
            f"is not installed. Fetch {entry.file!r} from the Hugging Face repo "
            f"{entry.package!r} ({hub_url(entry)}) and put it at {target}",
            hint=HUB_EXTRA_HINT,
        ) from None
    if _env_true("HF_HUB_OFFLINE"):
        raise not_downloaded(entry, target, "HF_HUB_OFFLINE is set")
    try:
        timeout = float(os.environ.get("ENTROPIC_LOCAL_HUB_TIMEOUT", "5"))
    except ValueError:
        timeout = 5.0
    why = hub_unreachable(hub_endpoint(), timeout)
    if why:
        raise not_downloaded(entry, target, f"no network ({why})")
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
        raise not_downloaded(entry, target, f"{type(exc).__name__}: {msg[:300]}") from exc
    if got.resolve() != target.resolve() and got.is_file():
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(got, target)
    return target
