"""Chat templates in the sandbox: built-ins, files, folding the system role, hostile templates."""

from __future__ import annotations

import pytest

from entropic_local.chat.templates import (
    BUILTIN, ChatTemplateError, UnsafeTemplateError, select_template,
)


CONVERSATION = [
    {"role": "system", "content": "You are a terse assistant."},
    {"role": "user", "content": "Hello!"},
    {"role": "assistant", "content": "Hi. What do you need?"},
    {"role": "user", "content": "Name a colour.\nJust one."},
]


@pytest.mark.parametrize("name", sorted(BUILTIN))
def test_builtins_render_in_the_sandbox(name):
    t, _ = select_template(name, gguf_template=None, registry_template=None, model_label="m",
                           bos_token="<s>", eos_token="</s>")
    out = t.render(CONVERSATION)
    assert "Name a colour." in out and "Hello!" in out
    assert "You are a terse assistant." in out  # the system prompt is never lost


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
