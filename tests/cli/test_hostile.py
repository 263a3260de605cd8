"""Hostile inputs and injected faults through the command: lying model files, huge prompts, bytes
that are not text, unwritable outputs and full disks, signals; one error line, nothing lost."""

from __future__ import annotations

import hashlib
import json
import math
import os
import resource
import signal
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest

import entropic_local as el
from entropic_local.registry import hub as registry_hub
from entropic_local.errors import InvalidModelFile


ROOT = Path(__file__).resolve().parents[2]


CLI = [sys.executable, "-m", "entropic_local"]


# the EOG tokens of SmolLM2-135M banned: replies and completions run until a limit
NO_EOG = "logit_bias:0=-inf,2=-inf,4=-inf"


def _env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("NO_COLOR", None)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env.update(extra)
    return env


def run(*args: str, stdin: bytes | str | None = None, env: dict | None = None, timeout: float = 300,
        **kw) -> subprocess.CompletedProcess:
    """The command line in a subprocess; stdout/stderr as bytes (UTF-8 is checked)."""
    data = stdin.encode() if isinstance(stdin, str) else stdin
    return subprocess.run([*CLI, *args], input=data, capture_output=True, timeout=timeout,
                          env=_env(**(env or {})), cwd=kw.pop("cwd", ROOT), **kw)


def err_lines(r: subprocess.CompletedProcess) -> list[str]:
    return [ln for ln in r.stderr.decode("utf-8", "replace").splitlines() if ln.strip()]


def assert_one_line_error(r, code: int, *needles: str) -> str:
    """Exit ``code`` (never a signal), one line on stderr naming the problem, no traceback."""
    lines = err_lines(r)
    assert r.returncode == code, (r.returncode, lines[-5:])
    assert len(lines) == 1, lines
    assert "Traceback" not in lines[0]
    assert lines[0].startswith("entropic-local: error: "), lines[0]
    for n in needles:
        assert n.lower() in lines[0].lower(), lines[0]
    return lines[0]


@pytest.fixture(scope="module")
def smol_bytes(smollm2_path) -> bytes:
    return Path(smollm2_path).read_bytes()


_SCALAR = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d"}


def walk(buf: bytes):
    """(metadata {key: (type, value offset)}, tensors {name: (dims offset, type offset)})."""
    _, n_t, n_kv = struct.unpack_from("<IQQ", buf, 4)
    off, meta, tens = 24, {}, {}
    for _ in range(n_kv):
        (n,) = struct.unpack_from("<Q", buf, off)
        key = buf[off + 8: off + 8 + n].decode()
        off += 8 + n
        (vt,) = struct.unpack_from("<I", buf, off)
        off += 4
        meta[key] = (vt, off)
        if vt in _SCALAR:
            off += struct.calcsize(_SCALAR[vt])
        elif vt == 8:
            off += 8 + struct.unpack_from("<Q", buf, off)[0]
        else:
            et, count = struct.unpack_from("<IQ", buf, off)
            off += 12
            if et in _SCALAR:
                off += struct.calcsize(_SCALAR[et]) * count
            else:
                for _ in range(count):
                    off += 8 + struct.unpack_from("<Q", buf, off)[0]
    for _ in range(n_t):
        (n,) = struct.unpack_from("<Q", buf, off)
        name = buf[off + 8: off + 8 + n].decode()
        off += 8 + n
        (nd,) = struct.unpack_from("<I", buf, off)
        tens[name] = (off + 4, off + 4 + 8 * nd)
        off += 4 + 8 * nd + 12
    return meta, tens


def patch_meta(buf: bytes, key: str, value) -> bytearray:
    meta, _ = walk(buf)
    vt, off = meta[key]
    out = bytearray(buf)
    struct.pack_into("<" + _SCALAR[vt], out, off, value)
    return out


def patch_tensor(buf: bytes, name: str, *, dim0=None, ttype=None, offset=None) -> bytearray:
    _, tens = walk(buf)
    dims_off, type_off = tens[name]
    out = bytearray(buf)
    if dim0 is not None:
        struct.pack_into("<Q", out, dims_off, dim0)
    if ttype is not None:
        struct.pack_into("<I", out, type_off, ttype)
    if offset is not None:
        struct.pack_into("<Q", out, type_off + 4, offset)
    return out


# the real SmolLM2 file with one lie each; (expected exit code, words in the one line)
REAL_LIES = {
    # llama.cpp aborted the whole process (GGML_ASSERT, exit -6) on these two before the
    # header check learnt them
    "block_count 1000": (lambda b: patch_meta(b, "llama.block_count", 1000), 5, "block_count = 1000"),
    "rms epsilon NaN": (lambda b: patch_meta(b, "llama.attention.layer_norm_rms_epsilon", math.nan), 5,
                        "layer_norm_rms_epsilon = nan"),
    "embedding length 577": (lambda b: patch_meta(b, "llama.embedding_length", 577), 5, "cannot load model"),
    "layers 31 of 30": (lambda b: patch_meta(b, "llama.block_count", 31), 5, "cannot load model"),
    "tensor shape": (lambda b: patch_tensor(b, "token_embd.weight", dim0=1), 5, "cannot load model"),
    "tensor type 200": (lambda b: patch_tensor(b, "token_embd.weight", ttype=200), 5, "cannot load model"),
    "tensor offset past the end": (lambda b: patch_tensor(b, "output_norm.weight", offset=2**40), 5, "truncated"),
    # loads, but decodes NaN: was an internal error (exit 70), now a typed one
    "rope base 0": (lambda b: patch_meta(b, "llama.rope.freq_base", 0.0), 7, "unusable logits"),
}


@pytest.mark.parametrize("case", sorted(REAL_LIES))
def test_real_model_whose_metadata_lies_is_refused_by_the_cli(case, smol_bytes, tmp_path):
    make, code, words = REAL_LIES[case]
    if case == "tensor offset past the end" and "output_norm.weight" not in walk(smol_bytes)[1]:
        pytest.skip("no output_norm tensor")
    f = tmp_path / "lying.gguf"
    f.write_bytes(make(smol_bytes))
    r = run("generate", "-m", str(f), "Hello", "-n", "2", "-t", "1", "--seed", "1")
    assert r.returncode > 0, f"killed by signal {-r.returncode}: {err_lines(r)[-3:]}"
    assert_one_line_error(r, code, words)


def test_huge_prompt_cli():
    r = run("generate", "-", "-n", "4", "--n-ctx", "512", stdin=b"word " * 400_000)
    assert_one_line_error(r, 6, "context", "--n-ctx")


NOT_TEXT = {
    "invalid UTF-8": (b"Hello \xff\xfe\xc3( world", "Hello \ufffd\ufffd\ufffd( world"),
    "NUL bytes": (b"Hello\x00 wor\x00ld", "Hello\x00 wor\x00ld"),
    "control characters": (b"Hi\x1b[2J\x1b]0;pwned\x07\r\x08\x7f there", "Hi\x1b[2J\x1b]0;pwned\x07\r\x08\x7f there"),
    "BOM and bidi override": (b"\xef\xbb\xbfHi \xe2\x80\xaeevil", "\ufeffHi \u202eevil"),
    "overlong and surrogate encodings": (b"a\xc0\xaf b\xed\xa0\x80c", None),
}


@pytest.mark.parametrize("locale_strict", [False, True], ids=["C.UTF-8", "strict-utf8"])
@pytest.mark.parametrize("case", sorted(NOT_TEXT))
def test_prompt_bytes_that_are_not_text(case, locale_strict):
    """stdin bytes that are not clean UTF-8 text: generated as U+FFFD (or as they are), the
    --json output stays strict UTF-8 JSON. With a strict UTF-8 locale this was an internal
    error (exit 70, UnicodeDecodeError)."""
    raw, want = NOT_TEXT[case]
    env = {"PYTHONIOENCODING": "utf-8:strict"} if locale_strict else {"LC_ALL": "C.UTF-8"}
    r = run("generate", "-", "-n", "3", "--seed", "1", "-t", "1", "--json", stdin=raw, env=env)
    assert r.returncode == 0, err_lines(r)
    d = json.loads(r.stdout.decode("utf-8"))  # strict: raises on invalid UTF-8
    assert d["prompt"] == (want if want is not None else raw.decode("utf-8", "replace"))
    assert d["steps"] and d["finish_reason"] in ("length", "stop")


def test_prompt_argument_that_is_not_utf8():
    r = run("generate", os.fsdecode(b"Hi \xff\xfe there"), "-n", "2", "--seed", "1", "--json",
            env={"PYTHONIOENCODING": "utf-8:strict"})
    assert r.returncode == 0, err_lines(r)
    assert json.loads(r.stdout.decode("utf-8"))["prompt"] == "Hi \ufffd\ufffd there"


def test_chat_piped_bytes_that_are_not_text(tmp_path):
    msgs = b"Hi \xff\xfe\x00 \x1b[31mthere\n/save saved.json\n"
    r = run("chat", "-t", "1", "--sampler", "greedy", "-n", "6", "--n-ctx", "512", stdin=msgs,
            env={"PYTHONIOENCODING": "utf-8:strict"}, cwd=tmp_path)
    assert r.returncode == 0, err_lines(r)
    r.stdout.decode("utf-8")
    saved = json.loads((tmp_path / "saved.json").read_text(encoding="utf-8"))
    assert saved["messages"][0]["content"] == "Hi \ufffd\ufffd\x00 \x1b[31mthere"


def test_output_in_a_directory_nobody_can_write_fails_before_any_work(tmp_path):
    """/proc takes no new files, not even root's (chmod would not stop root); a directory
    without write permission is tried too when not root."""
    targets = ["/proc/entropic-local-trace.jsonl"]
    if os.geteuid() != 0:
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(0o500)
        targets.append(str(ro / "t.jsonl"))
    for target in targets:
        r = run("generate", "Hello", "-n", "400", "--trace", target)
        assert_one_line_error(r, 2, f"cannot write {target}", "choose another path")
        assert r.stdout == b""  # refused before the model was even loaded


@pytest.mark.parametrize("as_json", [False, True])
def test_stdout_on_a_full_disk(as_json):
    with open("/dev/full", "wb") as full:
        r = subprocess.run([*CLI, "generate", "Hello", "-n", "4", "--seed", "1", "-t", "1",
                            *(["--json"] if as_json else [])],
                           stdout=full, stderr=subprocess.PIPE, timeout=300, env=_env(), cwd=ROOT)
    assert_one_line_error(r, 1, "no space left on device", "free some space")


@pytest.fixture(scope="module")
def warm_numba_cache(tmp_path_factory):
    """Run the commands once without a file size limit: numba writes its compiled-kernel cache
    on first use, and under the limit that write would be what fails."""
    d = tmp_path_factory.mktemp("warm")
    r = run("generate", "Hi", "-n", "2", "-t", "1", "--json", "--sampler", NO_EOG + ",top_k=40,temp=0.8",
            "--trace", str(d / "t.jsonl"))
    assert r.returncode == 0, err_lines(r)
    r = run("chat", "-t", "1", "--sampler", "greedy", "-n", "2", "--n-ctx", "512", stdin="Hi\n/trace t.jsonl\n",
            cwd=d)
    assert r.returncode == 0, err_lines(r)


def _fsize_limit(n_bytes: int):
    def limit():  # in the child: files it writes stop growing at n_bytes (EFBIG, "File too large")
        resource.setrlimit(resource.RLIMIT_FSIZE, (n_bytes, resource.RLIM_INFINITY))
    return limit


def test_trace_on_a_full_disk_keeps_the_older_file_whole(tmp_path, warm_numba_cache):
    trace = tmp_path / "trace.jsonl"
    trace.write_text('{"older": "trace"}\n')
    r = run("generate", "Once upon a time", "-n", "300", "--seed", "1", "-t", "1", "--json",
            "--sampler", NO_EOG + ",top_k=40,temp=0.8", "--trace", str(trace),
            preexec_fn=_fsize_limit(16_384))
    assert_one_line_error(r, 2, "cannot write the trace", "file too large")
    d = json.loads(r.stdout.decode("utf-8"))  # the generation itself was written, whole
    assert len(d["steps"]) == 300
    assert trace.read_text() == '{"older": "trace"}\n'  # not truncated, not half-replaced
    assert sorted(p.name for p in tmp_path.iterdir()) == ["trace.jsonl"]  # no temporary left


def test_chat_save_on_a_full_disk_keeps_the_older_file_whole(tmp_path, warm_numba_cache):
    (tmp_path / "chat.json").write_text("older\n")
    r = run("chat", "-t", "1", "--sampler", "greedy", "-n", "4", "--n-ctx", "512",
            stdin="Hi\n/save chat.json\n/trace steps.jsonl\n", cwd=tmp_path, preexec_fn=_fsize_limit(300))
    assert r.returncode == 2, err_lines(r)
    lines = err_lines(r)
    assert len(lines) == 2 and all(ln.startswith("entropic-local chat: error: cannot ") for ln in lines)
    assert all("File too large" in ln and "choose another path" in ln for ln in lines)
    assert r.stdout.decode("utf-8").strip()  # the reply itself was written
    assert (tmp_path / "chat.json").read_text() == "older\n"  # not cut, not half-replaced
    assert sorted(p.name for p in tmp_path.iterdir()) == ["chat.json"]  # nothing half-written


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


def test_download_with_the_wrong_sha256_is_removed_and_never_loaded(hub, monkeypatch):
    hub.payload = b"GGUF" + b"\4" * 64  # what a tampered mirror would serve
    bad_sha = hashlib.sha256(hub.payload).hexdigest()
    loaded = []
    monkeypatch.setattr("entropic_local.api.Engine", lambda *a, **k: loaded.append(a))
    with pytest.raises(InvalidModelFile) as info:
        el.load("pinned")
    msg = str(info.value)
    assert hub.good_sha in msg and bad_sha in msg and "removed" in msg
    assert not hub.target.exists() and loaded == []
    r = subprocess.run([*CLI, "generate", "-m", "pinned", "hi"], capture_output=True, timeout=120,
                       env=_env(HF_HUB_OFFLINE="1"), cwd=ROOT)  # nothing was left to load
    assert r.returncode == 4


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _wait_generating(p: subprocess.Popen, cpu: float = 3.0, timeout: float = 240) -> None:
    """Until the child has spent ``cpu`` seconds of CPU: loaded, and well into decoding."""
    end = time.monotonic() + timeout
    while _cpu_seconds(p.pid) < cpu:
        assert p.poll() is None, "finished before it could be interrupted"
        assert time.monotonic() < end
        time.sleep(0.1)


@pytest.mark.parametrize("as_json", [False, True], ids=["text", "json"])
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_signal_during_generate(sig, as_json, tmp_path):
    """Interrupted mid-generation: exit 130 (SIGINT) or 143 (SIGTERM), the text so far on
    stdout ending in a newline (or one whole JSON line, finish_reason "interrupted"), and a
    trace file of whole lines, one per generated token."""
    trace = tmp_path / "t.jsonl"
    p = subprocess.Popen([*CLI, "generate", "Once upon a time", "-n", "4000", "-t", "1", "--seed", "3",
                          "--sampler", NO_EOG + ",top_k=40,temp=0.8", "--trace", str(trace),
                          *(["--json"] if as_json else [])],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=_env(), cwd=ROOT)
    try:
        _wait_generating(p)
        p.send_signal(sig)
        out, err = p.communicate(timeout=120)
    finally:
        if p.poll() is None:
            p.kill()
    assert p.returncode == (130 if sig == signal.SIGINT else 143), err.decode()[-2000:]
    assert b"Traceback" not in err and len(err.decode().splitlines()) <= 1
    rows = [json.loads(ln) for ln in trace.read_text(encoding="utf-8").splitlines()]
    if rows:
        rows[0].pop("engine")  # the engine settings, on the first line
    assert 0 < len(rows) < 4000
    text = out.decode("utf-8")
    if as_json:
        assert text.endswith("\n") and text.count("\n") == 1
        d = json.loads(text)
        assert d["finish_reason"] == "interrupted"
        assert len(d["steps"]) == len(d["token_ids"]) == len(rows) and d["steps"] == rows
        assert "".join(s["text"] for s in d["steps"]) == d["text"]
    else:
        assert text.endswith("\n") and len(text) > 10
        assert text == "".join(r["text"] for r in rows) + "\n"


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_signal_during_piped_chat(sig, tmp_path):
    p = subprocess.Popen([*CLI, "chat", "-t", "1", "--sampler", NO_EOG + ",top_k=40,temp=0.8", "-n", "3000"],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         env=_env(XDG_STATE_HOME=str(tmp_path)), cwd=tmp_path)
    try:
        p.stdin.write(b"Tell me a very long story.\n")
        p.stdin.flush()
        _wait_generating(p)
        p.send_signal(sig)
        out, err = p.communicate(timeout=120)
    finally:
        if p.poll() is None:
            p.kill()
    assert p.returncode == (130 if sig == signal.SIGINT else 143), err.decode()[-2000:]
    assert b"Traceback" not in err
    text = out.decode("utf-8")
    assert len(text) > 10 and text.endswith("\n")


def test_signals_in_an_interactive_chat(tmp_path):
    """In a terminal: SIGINT stops a reply and the chat goes on; SIGTERM stops a reply,
    keeps it on screen, marked, and ends the chat with 143; SIGTERM at the prompt too."""
    pexpect = pytest.importorskip("pexpect")
    env = _env(PROMPT_TOOLKIT_NO_CPR="1", TERM="xterm-256color", XDG_STATE_HOME=str(tmp_path / "state"))
    env.pop("ENTROPIC_LOCAL_HOME", None)

    def spawn():
        return pexpect.spawn(sys.executable, ["-m", "entropic_local", "chat", "-t", "1", "--no-color",
                                              "--sampler", NO_EOG + ",top_k=40,temp=0.8", "-n", "3000"],
                             env=env, cwd=str(tmp_path), dimensions=(50, 200), timeout=240)

    def reply_under_way(child, message):
        child.expect_exact(">>>")
        cpu = _cpu_seconds(child.pid)
        child.send(message + "\r")
        child.expect_exact(message)
        while _cpu_seconds(child.pid) < cpu + 2.0:  # decoding the reply
            try:
                child.read_nonblocking(65536, timeout=0.1)
            except pexpect.TIMEOUT:
                pass

    child = spawn()
    try:
        reply_under_way(child, "Tell me a very long story.")
        child.kill(signal.SIGINT)
        child.expect_exact("[interrupted]")
        reply_under_way(child, "Another long story, please.")
        child.kill(signal.SIGTERM)
        child.expect_exact("[interrupted]")
        child.expect(pexpect.EOF)
    finally:
        child.close(force=True)
    assert child.exitstatus == 143, (child.exitstatus, child.signalstatus)
    history = (tmp_path / "state" / "entropic-local" / "chat_history").read_text()
    assert "Another long story, please." in history

    child = spawn()
    try:
        child.expect_exact(">>>")
        time.sleep(0.5)
        child.kill(signal.SIGTERM)
        child.expect(pexpect.EOF)
    finally:
        child.close(force=True)
    assert child.exitstatus == 143, (child.exitstatus, child.signalstatus)


@pytest.mark.parametrize("as_json", [False, True], ids=["text", "json"])
def test_context_runs_out_mid_generation_cli(as_json):
    r = run("generate", "Count: 1, 2, 3,", "--n-ctx", "256", "-n", "500", "-t", "1", "--seed", "1",
            "--sampler", NO_EOG + ",greedy", *(["--json"] if as_json else []))
    assert r.returncode == 0, err_lines(r)
    assert r.stderr == b""
    if as_json:
        d = json.loads(r.stdout.decode("utf-8"))
        assert d["finish_reason"] == "context"
        assert d["timings"]["prompt_tokens"] + len(d["token_ids"]) == 256 + 1  # the last one unfed
    else:
        assert r.stdout.decode("utf-8").endswith("\n") and len(r.stdout) > 20


CLOSE_SCRIPT = r"""
import threading, time
import entropic_local as el
m = el.load("smollm2-135m", n_ctx=512, n_threads=1)
started = threading.Event()
steps = []
def gen():
    for s in m.stream("Once upon a time", max_tokens=60, sampler="NO_EOG,greedy"):
        steps.append(s)
        started.set()
t = threading.Thread(target=gen); t.start()
started.wait(60)
m.close()                      # waits for the running stream, then frees the model
assert len(steps) == 60, len(steps)
for call in (lambda: m.generate("Hi", max_tokens=2), lambda: m.tokenize("Hi"),
             lambda: list(m.stream("Hi", max_tokens=2)), m.reset):
    try:
        call()
    except el.UsageError as e:
        assert "closed" in str(e), e
    else:
        raise AssertionError("a call on a closed model went through")
m.close()                      # twice: harmless
print("ok")
""".replace("NO_EOG", NO_EOG)


def test_close_waits_for_a_running_stream_and_later_calls_are_refused():
    """In a subprocess: a call on a freed llama.cpp model used to abort the process."""
    r = subprocess.run([sys.executable, "-c", CLOSE_SCRIPT], capture_output=True, timeout=300,
                       env=_env(), cwd=ROOT)
    assert r.returncode == 0, (r.returncode, r.stderr.decode()[-3000:])
    assert r.stdout.decode().strip() == "ok"


CLI_FAILURES = [
    # (arguments, stdin, exit code, the problem, the fix)
    (["generate", "-m", "/nonexistent/model.gguf", "hi"], None, 4, "no such file", "entropic-local models"),
    (["generate", "-m", "smollm2-135", "hi"], None, 4, "unknown model", "did you mean"),
    (["generate", ""], None, 2, "empty prompt", "give some text"),
    (["generate", "--sampler", "top_p=1.5", "hi"], None, 3, "out of range", "(0, 1]"),
    (["generate", "--trace", "/nonexistent/dir/t.jsonl", "hi"], None, 2, "no such directory",
     "create the directory"),
    (["generate", "-", "--n-ctx", "256"], "word " * 400, 6, "context holds", "--n-ctx"),
    (["generate", "--attention", "999", "hi"], None, 2, "layer 999", "layers 0.."),
    (["chat", "--chat-template", "nope"], "", 2, "unknown chat template", "built-in name"),
    (["eval", "/nonexistent/text.txt"], None, 2, "cannot read", "check the path"),
]


@pytest.mark.parametrize("args, stdin, code, problem, fix", CLI_FAILURES,
                         ids=[" ".join(c[0])[:40] for c in CLI_FAILURES])
def test_every_cli_failure_is_one_line_naming_the_problem_and_a_fix(args, stdin, code, problem, fix):
    r = run(*args, stdin=stdin)
    assert_one_line_error(r, code, problem, fix)
    r = run(*args, "--verbose", stdin=stdin)
    assert r.returncode == code and b"Traceback" in r.stderr
