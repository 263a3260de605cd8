"""The built-in chat templates (Jinja source, stop strings, a description), for models whose
GGUF has none or when ``--chat-template NAME`` picks one."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["BUILTIN", "FALLBACK", "BuiltinTemplate", "KNOWN_END_MARKERS", "SAMPLE_CONVERSATION", "builtin_names"]

FALLBACK = "plain"


@dataclass(frozen=True)
class BuiltinTemplate:
    text: str
    stop: tuple[str, ...]
    about: str


_CHATML = (
    "{% for message in messages %}"
    "{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

# Google's Gemma 3 template (string contents): the system prompt is folded into the first
# user turn, the assistant role is called "model".
_GEMMA = (
    "{{ bos_token }}"
    "{%- if messages[0]['role'] == 'system' -%}"
    "{%- set first_user_prefix = messages[0]['content'] + '\n\n' -%}"
    "{%- set loop_messages = messages[1:] -%}"
    "{%- else -%}"
    "{%- set first_user_prefix = '' -%}"
    "{%- set loop_messages = messages -%}"
    "{%- endif -%}"
    "{%- for message in loop_messages -%}"
    "{%- if (message['role'] == 'user') != (loop.index0 % 2 == 0) -%}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}"
    "{%- endif -%}"
    "{%- if message['role'] == 'assistant' -%}{%- set role = 'model' -%}"
    "{%- else -%}{%- set role = message['role'] -%}{%- endif -%}"
    "{{ '<start_of_turn>' + role + '\n' + (first_user_prefix if loop.first else '') }}"
    "{{ message['content'] | trim }}"
    "{{ '<end_of_turn>\n' }}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '<start_of_turn>model\n' }}{%- endif -%}"
)

_LLAMA3 = (
    "{% set loop_messages = messages %}"
    "{% for message in loop_messages %}"
    "{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'"
    "+ message['content'] | trim + '<|eot_id|>' %}"
    "{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}"
    "{{ content }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}"
)

_PHI3 = (
    "{% for message in messages %}"
    "{{ '<|' + message['role'] + '|>\n' + message['content'] + '<|end|>\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>\n' }}{% endif %}"
)

# Mistral instruct: no system role; a system prompt is folded into the first user turn.
_MISTRAL = (
    "{{ bos_token }}"
    "{%- if messages[0]['role'] == 'system' -%}"
    "{%- set prefix = messages[0]['content'] + '\n\n' -%}{%- set loop_messages = messages[1:] -%}"
    "{%- else -%}{%- set prefix = '' -%}{%- set loop_messages = messages -%}{%- endif -%}"
    "{%- for message in loop_messages -%}"
    "{%- if message['role'] == 'user' -%}"
    "{{ '[INST] ' + (prefix if loop.first else '') + message['content'] + ' [/INST]' }}"
    "{%- else -%}{{ message['content'] + eos_token }}{%- endif -%}"
    "{%- endfor -%}"
)

# The fallback for models without a chat template (base models): a plain transcript,
# which any language model can continue. The reply ends where the model starts a new
# "User:", "Assistant:" or "System:" line (a system prompt without a label was echoed as
# the start of a new transcript).
_PLAIN = (
    "{%- for message in messages -%}"
    "{%- if message['role'] == 'system' -%}{{ 'System: ' + (message['content'] | trim) + '\n\n' }}"
    "{%- elif message['role'] == 'user' -%}{{ 'User: ' + (message['content'] | trim) + '\n' }}"
    "{%- else -%}{{ 'Assistant: ' + (message['content'] | trim) + '\n\n' }}"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ 'Assistant:' }}{%- endif -%}"
)

BUILTIN: dict[str, BuiltinTemplate] = {
    "chatml": BuiltinTemplate(_CHATML, ("<|im_end|>",), "ChatML (<|im_start|>role ... <|im_end|>): SmolLM, Qwen, many fine-tunes"),
    "gemma": BuiltinTemplate(_GEMMA, ("<end_of_turn>",), "Gemma (<start_of_turn>user ... <end_of_turn>), system prompt folded into the first turn"),
    "llama3": BuiltinTemplate(_LLAMA3, ("<|eot_id|>",), "Llama 3 (<|start_header_id|>role<|end_header_id|> ... <|eot_id|>)"),
    "phi3": BuiltinTemplate(_PHI3, ("<|end|>",), "Phi-3 (<|user|> ... <|end|>)"),
    "mistral": BuiltinTemplate(_MISTRAL, ("</s>",), "Mistral instruct ([INST] ... [/INST]), system prompt folded into the first turn"),
    "plain": BuiltinTemplate(_PLAIN, ("\nUser:", "\nAssistant:", "\nSystem:"), "plain transcript (System: ... / User: ... / Assistant: ...): the fallback for base models"),
}

# End-of-turn markers worth stopping on when a GGUF template uses them (most are also
# end-of-generation tokens in llama.cpp's vocabulary, which stop generation anyway).
KNOWN_END_MARKERS = ("<|im_end|>", "<end_of_turn>", "<|eot_id|>", "<|end|>", "<|endoftext|>",
                      "<|end_of_text|>", "</s>")

SAMPLE_CONVERSATION: list[dict[str, str]] = [
    {"role": "system", "content": "You are a helpful assistant."},
    {"role": "user", "content": "Hello!"},
    {"role": "assistant", "content": "Hi! How can I help?"},
    {"role": "user", "content": "Tell me a joke."},
]


def builtin_names() -> list[str]:
    return list(BUILTIN)
