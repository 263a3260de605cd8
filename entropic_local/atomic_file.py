"""Writing a file all or nothing (traces, saved chats)."""

from __future__ import annotations

import os

__all__ = ["write_text_atomic"]


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` all or nothing: into a temporary file beside it,
    then renamed over it. A full disk or any other error leaves ``path`` as it was (an older
    file intact, never a cut line) and no temporary file behind. A path that exists and is
    not a regular file (``/dev/stdout``, a pipe) is written directly."""
    target = os.path.realpath(path)
    if os.path.exists(target) and not os.path.isfile(target):
        with open(target, "w", encoding="utf-8") as f:
            f.write(text)
        return
    tmp = os.path.join(os.path.dirname(target), f".{os.path.basename(target)}.{os.getpid()}.tmp")
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, target)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
