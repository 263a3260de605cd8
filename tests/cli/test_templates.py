"""A hostile chat template inside a crafted GGUF, through the command: refused before anything runs."""

from __future__ import annotations

import os
import struct
import subprocess
import sys
from pathlib import Path

from entropic_local.registry import check_gguf_header


ROOT = Path(__file__).resolve().parents[2]


_SCALAR = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}


def _gguf_str(s: str) -> bytes:
    b = s.encode("utf-8")
    return struct.pack("<Q", len(b)) + b


def _skip_value(buf: bytes, off: int, vtype: int) -> int:
    if vtype in _SCALAR:
        return off + _SCALAR[vtype]
    if vtype == 8:
        (n,) = struct.unpack_from("<Q", buf, off)
        return off + 8 + n
    assert vtype == 9, vtype
    etype, count = struct.unpack_from("<IQ", buf, off)
    off += 12
    if etype in _SCALAR:
        return off + _SCALAR[etype] * count
    assert etype == 8, etype
    for _ in range(count):
        (n,) = struct.unpack_from("<Q", buf, off)
        off += 8 + n
    return off


def gguf_with_template(src: Path, dst: Path, template: str) -> Path:
    """Copy a real GGUF file, with ``tokenizer.chat_template`` set to ``template``: the
    metadata is rewritten, the tensor table copied, the data re-aligned (tensor offsets are
    relative to the data section, so they stay valid)."""
    buf = src.read_bytes()
    assert buf[:4] == b"GGUF"
    version, n_tensors, n_kv = struct.unpack_from("<IQQ", buf, 4)
    off = 24
    kvs: list[bytes] = []
    alignment = 32
    replaced = False
    for _ in range(n_kv):
        start = off
        (klen,) = struct.unpack_from("<Q", buf, off)
        key = buf[off + 8: off + 8 + klen].decode()
        off += 8 + klen
        (vtype,) = struct.unpack_from("<I", buf, off)
        off += 4
        if key == "general.alignment":
            (alignment,) = struct.unpack_from("<I", buf, off)
        off = _skip_value(buf, off, vtype)
        if key == "tokenizer.chat_template":
            kvs.append(_gguf_str(key) + struct.pack("<I", 8) + _gguf_str(template))
            replaced = True
        else:
            kvs.append(buf[start:off])
    if not replaced:
        kvs.append(_gguf_str("tokenizer.chat_template") + struct.pack("<I", 8) + _gguf_str(template))
    infos_start = off
    for _ in range(n_tensors):
        (nlen,) = struct.unpack_from("<Q", buf, off)
        off += 8 + nlen
        (n_dims,) = struct.unpack_from("<I", buf, off)
        off += 4 + 8 * n_dims + 12
    infos = buf[infos_start:off]
    old_data = (off + alignment - 1) // alignment * alignment
    head = struct.pack("<4sIQQ", b"GGUF", version, n_tensors, len(kvs)) + b"".join(kvs) + infos
    pad = (-len(head)) % alignment
    with open(dst, "wb") as f:
        f.write(head + b"\0" * pad)
        f.write(memoryview(buf)[old_data:])
    return dst


def minimal_gguf(dst: Path, template: str) -> Path:
    """A tiny valid GGUF v3 file (no tensors) whose only content is metadata."""
    kvs = [
        _gguf_str("general.architecture") + struct.pack("<I", 8) + _gguf_str("llama"),
        _gguf_str("general.name") + struct.pack("<I", 8) + _gguf_str("evil"),
        _gguf_str("tokenizer.chat_template") + struct.pack("<I", 8) + _gguf_str(template),
    ]
    dst.write_bytes(struct.pack("<4sIQQ", b"GGUF", 3, 0, len(kvs)) + b"".join(kvs))
    return dst


def run_chat(args: list[str], stdin: str = "", env: dict | None = None, timeout: float = 300):
    e = dict(os.environ)
    e.pop("NO_COLOR", None)
    e.update(env or {})
    return subprocess.run([sys.executable, "-m", "entropic_local", "chat", "-t", "1", *args], input=stdin,
                          capture_output=True, text=True, timeout=timeout, cwd=ROOT, env=e)


def test_crafted_gguf_hostile_template_cli(tmp_path, smollm2_path):
    """A real model file (SmolLM2, its template swapped for a payload) and a minimal GGUF:
    `chat` refuses with one line and exit 5; the payload never runs; with --chat-template
    the model still chats."""
    marker = tmp_path / "pwned"
    payload = ("{% for m in messages %}{{ m.content }}{% endfor %}"
               f"{{{{ cycler.__init__.__globals__.os.popen('touch {marker}').read() }}}}")
    evil = gguf_with_template(Path(smollm2_path), tmp_path / "evil-smollm2.gguf", payload)
    hdr = check_gguf_header(evil)
    assert hdr.chat_template == payload and hdr.tensor_count > 0

    r = run_chat([str(evil), "--sampler", "greedy", "-n", "4"], stdin="Hello\n")
    assert r.returncode == 5, r.stderr
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith("entropic-local: error: the chat template from the GGUF metadata "
                             "(tokenizer.chat_template) of evil-smollm2.gguf")
    assert "blocked and not run" in lines[0] and "__globals__" in lines[0]
    assert r.stdout == ""
    assert not marker.exists()

    tiny = minimal_gguf(tmp_path / "tiny.gguf", "{{ ''.__class__.__mro__ }}")
    r = run_chat([str(tiny)], stdin="Hello\n")
    assert r.returncode == 5 and "blocked and not run" in r.stderr and "__mro__" in r.stderr

    # the user's choice of a built-in template bypasses the model's: it chats normally
    r = run_chat([str(evil), "--chat-template", "chatml", "--sampler", "greedy", "-n", "4"],
                 stdin="Hello\n")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip()
    assert not marker.exists()


def test_chat_reply_cap_by_default_and_settable(tmp_path):
    """Replies stop at the default cap (1024) or -n, with a notice; -1 lifts the cap; 0 is refused."""
    from entropic_local.chat.reply import DEFAULT_REPLY_TOKENS

    assert DEFAULT_REPLY_TOKENS == 1024
    assert f"[default: {DEFAULT_REPLY_TOKENS}]" in " ".join(run_chat(["--help"]).stdout.split())
    r = run_chat(["gemma3-270m", "--sampler", "logit_bias:107=-inf,108=-inf,greedy",
                  "-n", "5", "--n-ctx", "512", "-v"], "Count from one to a hundred\n")
    assert r.returncode == 0, r.stderr
    assert "note: the reply reached max_tokens (5) and was cut" in r.stderr  # -v or a terminal
    quiet = run_chat(["gemma3-270m", "--sampler", "greedy", "-n", "5", "--n-ctx", "512"], "Count to ten\n")
    assert quiet.returncode == 0 and "max_tokens" not in quiet.stderr  # piped: the output only
    bad = run_chat(["-n", "0"], "Hi\n")
    assert bad.returncode == 2 and "0 is not a reply length" in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1
