"""Chat templates: the rendered prompt equals the model's own template output, the documented
fallback for a model without one, and hostile templates (in crafted GGUF files) blocked, not run.
"""

from __future__ import annotations

import os
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from entropic_local.chat.session import ChatSession, special_token_text
from entropic_local.chat.templates import (
    BUILTIN, ChatTemplate, ChatTemplateError, UnsafeTemplateError, select_template,
)
from entropic_local.registry import check_gguf_header
from entropic_local.samplers import SamplerChain

ROOT = Path(__file__).resolve().parent.parent

CONVERSATION = [
    {"role": "system", "content": "You are a terse assistant."},
    {"role": "user", "content": "Hello!"},
    {"role": "assistant", "content": "Hi. What do you need?"},
    {"role": "user", "content": "Name a colour.\nJust one."},
]

# --------------------------------------------------------------------------- GGUF crafting

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


# --------------------------------------------------------------------------- helpers

def _session(model, template: ChatTemplate, **kw) -> ChatSession:
    return ChatSession(model, template, SamplerChain.parse("greedy"), **kw)


def _model_template(model, path: Path, registry_template: str | None, override: str | None = None):
    bos = special_token_text(model.engine, "tokenizer.ggml.bos_token_id")
    eos = special_token_text(model.engine, "tokenizer.ggml.eos_token_id")
    return select_template(override, gguf_template=check_gguf_header(path).chat_template,
                           registry_template=registry_template, model_label=path.name,
                           bos_token=bos, eos_token=eos)


def _load_conversation(session: ChatSession, messages) -> None:
    session.system = messages[0]["content"] if messages[0]["role"] == "system" else None
    session.turns = [dict(m) for m in messages if m["role"] != "system"]


# --------------------------------------------------------------------------- the real models

def test_smollm2_prompt_equals_its_own_template(smollm2, smollm2_path):
    """The prompt equals llama-cpp-python's Jinja2ChatFormatter on the GGUF template (with the
    bos/eos strings llama-cpp-python itself uses), text and tokens."""
    from llama_cpp import llama_cpp as llama
    from llama_cpp.llama_chat_format import Jinja2ChatFormatter

    tmpl, notice = _model_template(smollm2, smollm2_path, "gguf")
    assert notice is None and tmpl.name == "gguf"
    s = _session(smollm2, tmpl)
    _load_conversation(s, CONVERSATION)
    vocab = smollm2.engine._vocab
    bos = llama.llama_vocab_get_text(vocab, llama.llama_vocab_bos(vocab)).decode()
    eos = llama.llama_vocab_get_text(vocab, llama.llama_vocab_eos(vocab)).decode()
    ref = Jinja2ChatFormatter(check_gguf_header(smollm2_path).chat_template, eos_token=eos, bos_token=bos)
    theirs = ref(messages=CONVERSATION)
    assert s.render_prompt() == theirs.prompt
    assert s.render_prompt().endswith("<|im_start|>assistant\n")
    # llama-cpp-python tokenises a formatter's prompt without adding BOS (added_special=True)
    # and with special tokens parsed; SmolLM2 does not add a BOS either.
    assert theirs.added_special
    assert s.prompt_tokens() == smollm2.tokenize(theirs.prompt, add_special=False, parse_special=True)
    # also without a system prompt: the template's default system prompt appears
    s.system = None
    assert s.render_prompt() == ref(messages=CONVERSATION[1:]).prompt
    assert "You are a helpful AI assistant named SmolLM" in s.render_prompt()
    # the end-of-turn marker is a control token llama.cpp stops on
    assert "<|im_end|>" in tmpl.stop


def test_gemma_uses_documented_fallback(gemma, gemma_path):
    """gemma3-270m is a base model (no template in its GGUF, models.txt says none): the
    built-in 'plain' transcript template, with a notice; one BOS token."""
    assert check_gguf_header(gemma_path).chat_template is None
    tmpl, notice = _model_template(gemma, gemma_path, "none")
    assert tmpl.name == "plain"
    assert "no chat template" in notice and "plain" in notice and "--chat-template" in notice
    s = _session(gemma, tmpl)
    _load_conversation(s, CONVERSATION)
    expected = ("System: You are a terse assistant.\n\n"
                "User: Hello!\n"
                "Assistant: Hi. What do you need?\n\n"
                "User: Name a colour.\nJust one.\n"
                "Assistant:")
    assert s.render_prompt() == expected
    toks = s.prompt_tokens()
    bos = int(gemma.engine.meta("tokenizer.ggml.bos_token_id"))
    assert toks[0] == bos and toks.count(bos) == 1
    assert toks[1:] == gemma.tokenize(expected, add_special=False, parse_special=True)
    # the reply ends where the model starts a new "User:", "Assistant:" or "System:" line
    assert s.text_stops == ["\nUser:", "\nAssistant:", "\nSystem:"]
    # the same without models.txt (a path): the GGUF has no template, same fallback
    tmpl2, notice2 = _model_template(gemma, gemma_path, None)
    assert tmpl2.name == "plain" and "GGUF metadata has no tokenizer.chat_template" in notice2


def test_gemma_builtin_gemma_template(gemma, gemma_path):
    """--chat-template gemma: Google's Gemma format, BOS from the template only."""
    tmpl, notice = _model_template(gemma, gemma_path, "none", override="gemma")
    assert notice is None
    s = _session(gemma, tmpl)
    _load_conversation(s, CONVERSATION)
    assert s.render_prompt() == (
        "<bos><start_of_turn>user\nYou are a terse assistant.\n\nHello!<end_of_turn>\n"
        "<start_of_turn>model\nHi. What do you need?<end_of_turn>\n"
        "<start_of_turn>user\nName a colour.\nJust one.<end_of_turn>\n"
        "<start_of_turn>model\n")
    toks = s.prompt_tokens()
    bos = int(gemma.engine.meta("tokenizer.ggml.bos_token_id"))
    assert toks.count(bos) == 1 and toks[0] == bos
    # <end_of_turn> is one control token here: the reply stops on its id
    eot = gemma.tokenize("<end_of_turn>", add_special=False, parse_special=True)
    assert len(eot) == 1 and (eot[0] in s.stop_ids or gemma.engine.is_eog(eot[0]))


@pytest.mark.parametrize("name", sorted(BUILTIN))
def test_builtins_render_in_the_sandbox(name):
    t, _ = select_template(name, gguf_template=None, registry_template=None, model_label="m",
                           bos_token="<s>", eos_token="</s>")
    out = t.render(CONVERSATION)
    assert "Name a colour." in out and "Hello!" in out
    assert "You are a terse assistant." in out  # the system prompt is never lost


def test_chatml_builtin_equals_llama_cpp_python():
    from llama_cpp.llama_chat_format import CHATML_CHAT_TEMPLATE, Jinja2ChatFormatter

    t, _ = select_template("chatml", gguf_template=None, registry_template=None, model_label="m")
    ref = Jinja2ChatFormatter(CHATML_CHAT_TEMPLATE, eos_token="<|im_end|>", bos_token="<s>")
    assert t.render(CONVERSATION) == ref(messages=CONVERSATION).prompt


def test_template_from_file_and_unknown_name(tmp_path):
    f = tmp_path / "t.jinja"
    f.write_text("{% for m in messages %}[{{ m.role }}] {{ m.content }}\n{% endfor %}"
                 "{% if add_generation_prompt %}[assistant] {% endif %}")
    t, _ = select_template(str(f), gguf_template=None, registry_template="gguf", model_label="m")
    assert t.render(CONVERSATION[1:2]) == "[user] Hello!\n[assistant] "
    with pytest.raises(ChatTemplateError, match="unknown chat template 'nope'"):
        select_template("nope", gguf_template=None, registry_template=None, model_label="m")
    with pytest.raises(ChatTemplateError, match="does not parse"):
        select_template(None, gguf_template="{% for %}", registry_template="gguf", model_label="m")


def test_template_without_system_role_folds_it():
    # like Mistral's original template: only user/assistant allowed
    text = ("{% for m in messages %}{% if m.role not in ['user', 'assistant'] %}"
            "{{ raise_exception('only user and assistant') }}{% endif %}"
            "<{{ m.role }}>{{ m.content }}{% endfor %}")
    t, _ = select_template(None, gguf_template=text, registry_template="gguf", model_label="m")
    assert not t.supports_system
    assert t.render(CONVERSATION).startswith("<user>You are a terse assistant.\n\nHello!")


# --------------------------------------------------------------------------- hostile templates

HOSTILE = [
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{{ cycler.__init__.__globals__.os.popen('touch MARKER').read() }}",
    "{{ joiner.__init__.__globals__['__builtins__']['open']('/etc/passwd').read() }}",
    "{{ self._TemplateReference__context }}",
    "{{ lipsum['__globals__'] }}",
    "{% include '/etc/passwd' %}",
    "{% import 'os' as os %}",
    "{{ 'x' * 1000000000 }}",
    # hidden from the static scan: caught by the sandbox while rendering
    "{{ (''|attr('__cla' ~ 'ss__')) }}",
    "{% set n = namespace(a='__glo' ~ 'bals__') %}{{ cycler|attr('__in' ~ 'it__')|attr(n.a) }}",
]


@pytest.mark.parametrize("text", HOSTILE)
def test_hostile_template_is_blocked(text, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    text = text.replace("MARKER", str(tmp_path / "pwned"))
    with pytest.raises(UnsafeTemplateError) as info:
        select_template(None, gguf_template=text, registry_template="gguf", model_label="evil.gguf")
    assert info.value.exit_code == 5
    msg = str(info.value)
    assert "blocked" in msg and "\n" not in msg
    assert not (tmp_path / "pwned").exists()


def test_hostile_branch_blocked_at_render_time():
    """A payload only reached by some conversations passes the test render but is still
    blocked when reached."""
    text = ("{% for m in messages %}{{ m.content }}{% endfor %}"
            "{% if messages|length > 6 %}{{ ''|attr('__cla' ~ 'ss__') }}{% endif %}")
    t, _ = select_template(None, gguf_template=text, registry_template="gguf", model_label="evil.gguf")
    assert t.render(CONVERSATION) == "".join(m["content"] for m in CONVERSATION)
    with pytest.raises(UnsafeTemplateError, match="unsafe"):
        t.render(CONVERSATION * 2)


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


# --------------------------------------------------------------------------- turn markers

@pytest.mark.parametrize("name, markers", [
    ("chatml", ("\n<|im_start|>user", "\n<|im_start|>assistant")),
    ("gemma", ("\n<start_of_turn>user", "\n<start_of_turn>model")),
    ("llama3", ("<|start_header_id|>user<|end_header_id|>", "<|start_header_id|>assistant<|end_header_id|>")),
    ("phi3", ("\n<|user|>", "\n<|assistant|>")),
    ("mistral", ("[INST]", "[/INST]")),
    ("plain", ("\nUser:", "\nAssistant:")),
])
def test_turn_markers_read_from_the_rendering(name, markers):
    t, _ = select_template(name, gguf_template=None, registry_template=None, model_label="m",
                           bos_token="<s>", eos_token="</s>")
    assert t.turn_markers() == markers


def test_next_turn_marker_ends_a_reply_without_end_of_turn(gemma, gemma_path):
    """A base model under the gemma template that starts the next turn (<start_of_turn>, a
    control token that renders as no text) instead of ending its own: the reply stops there.
    A stage of this test forces <start_of_turn> as the third token of a greedy reply."""
    import numpy as np

    from entropic_local.samplers import Greedy, Sampler

    class ForceAfter(Sampler):
        name = "force_after"

        def __init__(self, token: int, after: int):
            self.token, self.after, self.calls = token, after, 0

        def apply(self, cands):
            self.calls += 1
            if self.calls > self.after:
                cands.logits[: cands.n] = -np.inf
                cands.logits[self.token] = 0.0  # the untouched vocabulary: index = token id

        def reset(self, seed=None):
            self.calls = 0

        def spec(self):
            return self.name

    tmpl, _ = _model_template(gemma, gemma_path, "none", override="gemma")
    sot = gemma.tokenize("<start_of_turn>", add_special=False, parse_special=True)
    assert len(sot) == 1 and not gemma.engine.is_eog(sot[0])
    s = ChatSession(gemma, tmpl, SamplerChain([ForceAfter(sot[0], 2), Greedy()]), max_tokens=64)
    assert sot[0] in s.stop_ids
    s.add_user("Name a colour.")
    reply = s.start_reply(seed=0)
    steps = [st.token_id for st in reply]
    stats = reply.finish()
    assert len(steps) == 2 and sot[0] not in steps
    assert reply.stopped_by_token and stats.finish == "stop"
    assert s.turns[-1]["role"] == "assistant" and s.turns[-1]["content"]


def test_chat_reply_cap_by_default_and_settable(tmp_path):
    """Replies stop at the default cap (1024) or -n, with a notice; -1 lifts the cap; 0 is refused."""
    from entropic_local.chat.session import DEFAULT_REPLY_TOKENS

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
