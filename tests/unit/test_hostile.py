"""Hostile model files against the GGUF header walk (fuzzed, lying sizes), a download onto a full
disk, and the error surface: exit codes documented and distinct, every exception in errors.py."""

from __future__ import annotations

import ast
import hashlib
import math
import re
import struct
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from entropic_local import errors
from entropic_local.registry import hub as registry_hub
from entropic_local.cli import EXIT_CODES
from entropic_local.errors import InvalidModelFile, ModelNotFound
from entropic_local.registry import check_gguf_header, resolve_model


ROOT = Path(__file__).resolve().parents[2]


PKG = ROOT / "entropic_local"


README = ROOT / "README.md"


_SCALAR = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d"}


def _s(text: str | bytes) -> bytes:
    b = text.encode() if isinstance(text, str) else text
    return struct.pack("<Q", len(b)) + b


def kv(key: str, vtype: int, value) -> bytes:
    """One metadata entry (``value``: a number for scalar types, text for 8, raw bytes for 9)."""
    if vtype in _SCALAR:
        body = struct.pack("<" + _SCALAR[vtype], value)
    elif vtype == 8:
        body = _s(value)
    else:
        body = value
    return _s(key) + struct.pack("<I", vtype) + body


def tensor(name: str, dims: tuple[int, ...], ttype: int = 0, offset: int = 0) -> bytes:
    return _s(name) + struct.pack("<I", len(dims)) + struct.pack(f"<{len(dims)}Q", *dims) + \
        struct.pack("<IQ", ttype, offset)


def gguf(kvs: list[bytes], tensors: list[bytes] = (), data: bytes = b"", n_kv=None, n_t=None,
         pad: bool = True) -> bytes:
    """A GGUF v3 file; ``n_kv``/``n_t`` override the declared counts (to make them lie)."""
    head = struct.pack("<4sIQQ", b"GGUF", 3, len(tensors) if n_t is None else n_t,
                       len(kvs) if n_kv is None else n_kv) + b"".join(kvs) + b"".join(tensors)
    return head + b"\0" * ((-len(head)) % 32 if pad else 0) + data


ARCH = kv("general.architecture", 8, "llama")


VALID_SMALL = gguf([ARCH, kv("general.name", 8, "tiny"), kv("llama.block_count", 4, 1)],
                   [tensor("blk.0.w", (4, 2), 0, 0)], data=b"\0" * 32)


@st.composite
def hostile_headers(draw) -> bytes:
    how = draw(st.sampled_from(["random", "counts", "mutate", "truncate", "splice"]))
    if how == "random":  # a GGUF magic and version, then anything
        return b"GGUF" + struct.pack("<I", draw(st.sampled_from([2, 3]))) + draw(st.binary(max_size=300))
    if how == "counts":  # plausible counts, random body
        return (b"GGUF" + struct.pack("<IQQ", 3, draw(st.integers(0, 2**64 - 1)), draw(st.integers(0, 40)))
                + draw(st.binary(max_size=400)))
    buf = bytearray(VALID_SMALL)
    if how == "truncate":
        return bytes(buf[: draw(st.integers(0, len(buf)))])
    if how == "splice":  # a valid prefix, a random middle, a valid suffix
        i = draw(st.integers(4, len(buf)))
        return bytes(buf[:i]) + draw(st.binary(max_size=40)) + bytes(buf[i:])
    for _ in range(draw(st.integers(1, 6))):
        i = draw(st.integers(4, len(buf) - 1))
        buf[i] = draw(st.sampled_from([0, 1, 0x7F, 0x80, 0xFF, draw(st.integers(0, 255))]))
    return bytes(buf)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(hostile_headers())
def test_fuzzed_gguf_files_are_refused_never_crash(tmp_path_factory, data):
    """Random bytes behind a GGUF magic, mutated, truncated and spliced files: the header
    check returns or raises InvalidModelFile naming the file, in one line, never anything
    else (no struct.error, MemoryError, IndexError, endless loop)."""
    f = tmp_path_factory.getbasetemp() / "fuzz.gguf"
    f.write_bytes(data)
    try:
        hdr = check_gguf_header(f)
    except InvalidModelFile as e:
        assert str(f) in str(e) and "\n" not in str(e)
    else:
        assert hdr.file_size == len(data) and hdr.data_end <= len(data)


LIES = {
    "key length 2**63": (gguf([struct.pack("<Q", 2**63) + b"abc"]), "truncated"),
    "string value length 2**62": (gguf([ARCH, _s("general.name") + struct.pack("<IQ", 8, 2**62)]), "truncated"),
    "scalar array of 2**60": (gguf([ARCH, _s("a") + struct.pack("<IIQ", 9, 4, 2**60)]), "truncated"),
    "string array of 2**60": (gguf([ARCH, _s("a") + struct.pack("<IIQ", 9, 8, 2**60) + _s("x")]), "truncated"),
    "array of arrays": (gguf([ARCH, _s("a") + struct.pack("<IIQ", 9, 9, 1)]), "unknown type 9"),
    "unknown value type": (gguf([ARCH, _s("a") + struct.pack("<I", 77) + b"\0" * 8]), "unknown value type 77"),
    "more entries than present": (gguf([ARCH], n_kv=3, pad=False), "truncated"),
    "more tensors than present": (gguf([ARCH], [tensor("t", (4,))], n_t=2, pad=False), "truncated"),
    "tensor of 9 dimensions": (gguf([ARCH], [tensor("t", (1,) * 9)]), "9 dimensions"),
    "tensor of 2**62 elements": (gguf([ARCH], [tensor("t", (2**31, 2**31))], data=b"\0" * 64), "truncated"),
    "tensor data past the end": (gguf([ARCH], [tensor("t", (8,), 0, 10**9)], data=b"\0" * 32), "truncated"),
    "alignment 0": (gguf([ARCH, kv("general.alignment", 4, 0)]), "general.alignment = 0"),
    "alignment 3": (gguf([ARCH, kv("general.alignment", 4, 3)]), "general.alignment = 3"),
    "alignment a float": (gguf([ARCH, kv("general.alignment", 6, 32.0)]), "general.alignment = 32.0"),
    # values llama.cpp asserts on (aborting the process) instead of refusing the file
    "0 layers": (gguf([ARCH, kv("llama.block_count", 4, 0)]), "llama.block_count = 0"),
    "1000 layers": (gguf([ARCH, kv("llama.block_count", 4, 1000)]), "llama.block_count = 1000"),
    "NaN norm epsilon": (gguf([ARCH, kv("llama.attention.layer_norm_rms_epsilon", 6, math.nan)]),
                         "layer_norm_rms_epsilon = nan"),
    "negative norm epsilon": (gguf([ARCH, kv("llama.attention.layer_norm_epsilon", 6, -1.0)]),
                              "layer_norm_epsilon = -1.0"),
}


@pytest.mark.parametrize("case", sorted(LIES))
def test_gguf_metadata_that_lies_about_sizes_is_refused(case, tmp_path):
    data, words = LIES[case]
    f = tmp_path / "lies.gguf"
    f.write_bytes(data)
    with pytest.raises(InvalidModelFile) as info:
        check_gguf_header(f)
    assert words in str(info.value) and str(f) in str(info.value)


@pytest.fixture
def hub(tmp_path, monkeypatch):
    """A private cache, a user models.txt with one pinned Hugging Face entry, a network that
    answers, and a fake ``hf_hub_download`` that writes ``hub.payload``."""
    hf = pytest.importorskip("huggingface_hub")
    monkeypatch.setenv("ENTROPIC_LOCAL_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    good = b"GGUF" + b"\3" * 64
    models = tmp_path / "models.txt"
    models.write_text(f"pinned  hf:o/P-GGUF/p.gguf  {hashlib.sha256(good).hexdigest()}  gguf\n")
    monkeypatch.setenv("ENTROPIC_LOCAL_MODELS", str(models))
    monkeypatch.setattr(registry_hub, "hub_unreachable", lambda endpoint, timeout: None)

    class Hub:
        payload: bytes | Exception = good
        target = tmp_path / "home" / "models" / "o" / "P-GGUF" / "p.gguf"
        good_sha = hashlib.sha256(good).hexdigest()

    def fake_download(repo_id, filename, local_dir):
        if isinstance(Hub.payload, Exception):
            raise Hub.payload
        p = Path(local_dir) / filename
        p.write_bytes(Hub.payload)
        return str(p)

    monkeypatch.setattr(hf, "hf_hub_download", fake_download)
    return Hub


def test_download_on_a_full_disk(hub):
    hub.payload = OSError(28, "No space left on device")
    with pytest.raises(ModelNotFound) as info:
        resolve_model("pinned")
    assert "No space left on device" in str(info.value) and str(hub.target) in str(info.value)
    assert not hub.target.exists()


def _readme_exit_codes() -> dict[int, str]:
    section = README.read_text(encoding="utf-8").split("## Exit codes", 1)[1].split("\n## ", 1)[0]
    return {int(m.group(1)): m.group(2) for m in re.finditer(r"^\| (\d+) \| (.+?) \|$", section, re.M)}


def _error_classes() -> list[type]:
    return [c for c in vars(errors).values()
            if isinstance(c, type) and issubclass(c, BaseException) and not issubclass(c, Warning)
            and c.__module__ == errors.__name__]


def test_exit_codes_are_documented_and_distinct():
    table = _readme_exit_codes()
    assert set(table) == set(EXIT_CODES), (sorted(table), sorted(EXIT_CODES))
    codes = {}
    for cls in _error_classes():
        code = getattr(cls, "exit_code", None)
        assert code in table, f"{cls.__name__}.exit_code {code} is not in the README's table"
        codes.setdefault(code, []).append(cls.__name__)
    # one code per kind of failure (a subclass may share its parent's)
    for code, names in codes.items():
        classes = [getattr(errors, n) for n in names]
        roots = [c for c in classes if not any(issubclass(c, o) and c is not o for o in classes)]
        assert len(roots) == 1 or code in (1, 2, 5), (code, names)


def test_every_exception_is_defined_in_errors_py():
    """The package's public exception classes live in one module, entropic_local/errors.py
    (private control-flow exceptions, named with a leading underscore, excepted)."""
    known = {c.__name__ for c in _error_classes()} | {
        "Exception", "BaseException", "ValueError", "KeyboardInterrupt", "RuntimeError", "OSError",
        "FileNotFoundError", "UserWarning", "Warning"}
    stray = []
    for path in sorted(PKG.rglob("*.py")):
        if path.name == "errors.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.ClassDef) or node.name.startswith("_"):
                continue
            bases = {b.id if isinstance(b, ast.Name) else getattr(b, "attr", "") for b in node.bases}
            if bases & known and not any("Warning" in b for b in bases):
                stray.append(f"{path.relative_to(ROOT)}: {node.name}")
    assert not stray, sorted(stray)
    assert {"ModelNotFound", "InvalidModelFile", "InvalidSamplerSpec", "ContextOverflow", "UsageError",
            "ModelLoadError", "ChatTemplateError", "UnsafeTemplateError", "AttentionUnavailable",
            "Terminated"} <= {c.__name__ for c in _error_classes()}
