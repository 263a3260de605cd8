"""Chat templates on the real models: the rendered prompt equals the model's own template and
llama-cpp-python's, the documented fallback for a model without one."""

from __future__ import annotations

from pathlib import Path

from entropic_local.chat.session import ChatSession
from entropic_local.chat.templates import special_token_text
from entropic_local.chat.templates import ChatTemplate, select_template
from entropic_local.registry import check_gguf_header
from entropic_local.samplers import SamplerChain


CONVERSATION = [
    {"role": "system", "content": "You are a terse assistant."},
    {"role": "user", "content": "Hello!"},
    {"role": "assistant", "content": "Hi. What do you need?"},
    {"role": "user", "content": "Name a colour.\nJust one."},
]


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


def test_chatml_builtin_equals_llama_cpp_python():
    from llama_cpp.llama_chat_format import CHATML_CHAT_TEMPLATE, Jinja2ChatFormatter

    t, _ = select_template("chatml", gguf_template=None, registry_template=None, model_label="m")
    ref = Jinja2ChatFormatter(CHATML_CHAT_TEMPLATE, eos_token="<|im_end|>", bos_token="<s>")
    assert t.render(CONVERSATION) == ref(messages=CONVERSATION).prompt


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
