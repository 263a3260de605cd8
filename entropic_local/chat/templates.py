"""Chat templates: turn an OpenAI-shaped conversation into the prompt text a model expects.

Where the template comes from, in this order (``select_template``):

1. ``--chat-template NAME|FILE`` (or ``/set template``): a built-in name (``BUILTIN``), the
   word ``gguf`` (the model file's own template), or a file holding a Jinja template.
2. The ``template`` column of the model's models.txt entry when it names a built-in.
3. The GGUF metadata key ``tokenizer.chat_template`` (unless models.txt says ``none``).
4. Otherwise (a base model such as gemma3-270m, or a GGUF without a template) the documented
   fallback, the built-in ``plain`` transcript template (``User: ...`` / ``Assistant: ...``,
   stopping where the model starts a new ``User:`` or ``Assistant:`` line), announced by a
   notice; never a silent guess.

A template is code that comes with a model file, so it is only ever rendered in jinja2's
``ImmutableSandboxedEnvironment`` (the environment llama-cpp-python's
``Jinja2ChatFormatter`` and Hugging Face transformers use, with the same options:
``trim_blocks``, ``lstrip_blocks``, ``loopcontrols``, the ``{% generation %}`` tag, the
``tojson`` filter, ``raise_exception`` and ``strftime_now``; so the text is identical to
theirs). On top of the sandbox (defence in depth, see CVE-2024-34359):

* before anything runs, the parsed template is scanned: attribute access to names starting
  with ``_`` (``''.__class__``, ``cycler.__init__.__globals__``, ``|attr('__class__')``) and
  ``include`` / ``import`` / ``extends`` (file access) are refused with one clear error;
* while rendering, an unsafe attribute raises at once (jinja2's sandbox would otherwise
  render it as an empty string and carry on), ``*`` and ``**`` may not build huge
  strings/numbers, and the output is capped;
* a template is test-rendered on a small conversation when it is selected, so a broken or
  hostile template is reported before the model is even loaded.

BOS handling: the rendered text is tokenised with special tokens parsed and without adding
BOS (the template owns BOS, as in transformers and llama-cpp-python); if the model's
tokenizer asks for a BOS (``add_bos``) and the text did not produce one, it is prepended
(llama.cpp's rule), so a model never gets zero or two BOS tokens by accident.
"""

from __future__ import annotations

import json
import operator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Iterable

import jinja2
import jinja2.ext
from jinja2 import nodes
from jinja2.exceptions import SecurityError, TemplateSyntaxError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from ..errors import ChatTemplateError, UnsafeTemplateError  # defined with every other error
from ..registry import model_label, registry_template
from .builtin_templates import BUILTIN, FALLBACK, KNOWN_END_MARKERS, SAMPLE_CONVERSATION, builtin_names

__all__ = [
    "BUILTIN",
    "FALLBACK",
    "ChatTemplate",
    "ChatTemplateError",
    "UnsafeTemplateError",
    "select_template",
    "builtin_names",
    "SAMPLE_CONVERSATION",
]

MAX_OUTPUT_CHARS = 4_000_000  # a rendered prompt longer than this is refused
_MAX_REPEAT = 1_000_000       # longest string/list '*' may build
_MAX_POWER_BITS = 4096        # largest integer '**' may build


class _TemplateRaised(Exception):
    """``raise_exception(...)`` called by a template (a rule of the template, not a bug)."""


# --------------------------------------------------------------------------- the sandbox

class _IgnoreGenerationTags(jinja2.ext.Extension):
    """Pass-through for Hugging Face's ``{% generation %}`` tag (as llama-cpp-python does)."""

    tags = {"generation"}

    def parse(self, parser):  # pragma: no cover - exercised only by templates that use it
        parser.stream.skip(1)
        return parser.parse_statements(("name:endgeneration",), drop_needle=True)


def _repeat(a: Any, b: Any) -> Any:
    for seq, n in ((a, b), (b, a)):
        if isinstance(seq, (str, list, tuple)) and isinstance(n, int) and not isinstance(n, bool):
            if len(seq) * max(n, 0) > _MAX_REPEAT:
                raise SecurityError(f"the template tried to build a sequence of {len(seq) * n} items with '*'")
    return operator.mul(a, b)


def _power(a: Any, b: Any) -> Any:
    if isinstance(a, int) and isinstance(b, int) and b > 0 and abs(a) > 1:
        if b * max(abs(a).bit_length(), 1) > _MAX_POWER_BITS:
            raise SecurityError("the template tried to compute a huge number with '**'")
    return operator.pow(a, b)


class ChatSandbox(ImmutableSandboxedEnvironment):
    """jinja2's immutable sandbox, stricter: unsafe attributes raise at once, '*' and '**'
    are bounded. Configured like llama-cpp-python's ``Jinja2ChatFormatter``."""

    intercepted_binops = frozenset({"*", "**"})

    def __init__(self) -> None:
        super().__init__(
            loader=jinja2.BaseLoader(),
            trim_blocks=True,
            lstrip_blocks=True,
            extensions=[_IgnoreGenerationTags, jinja2.ext.loopcontrols],
        )
        self.filters["tojson"] = _tojson

    def unsafe_undefined(self, obj: Any, attribute: str) -> Any:
        raise SecurityError(
            f"access to attribute {attribute!r} of a {type(obj).__name__!r} object is unsafe")

    def call_binop(self, context, operator_: str, left: Any, right: Any) -> Any:
        if operator_ == "*":
            return _repeat(left, right)
        if operator_ == "**":
            return _power(left, right)
        return super().call_binop(context, operator_, left, right)  # pragma: no cover


def _tojson(x: Any, ensure_ascii: bool = False, indent: int | None = None,
            separators: tuple[str, str] | None = None, sort_keys: bool = False) -> str:
    return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators,
                      sort_keys=sort_keys)


def _strftime_now(fmt: str) -> str:
    return datetime.now().strftime(fmt)


def _raise_exception(message: str) -> None:
    raise _TemplateRaised(message)


def _static_problem(ast: nodes.Template) -> str | None:
    """The first construct in a parsed template that reaches outside the data it is given."""
    for node in ast.find_all((nodes.Getattr, nodes.Getitem, nodes.Filter, nodes.Include,
                              nodes.Import, nodes.FromImport, nodes.Extends)):
        line = getattr(node, "lineno", "?")
        if isinstance(node, nodes.Getattr) and node.attr.startswith("_"):
            return f"it reaches for Python internals ('.{node.attr}' at line {line})"
        if isinstance(node, nodes.Getitem) and isinstance(node.arg, nodes.Const) \
                and isinstance(node.arg.value, str) and node.arg.value.startswith("__"):
            return f"it reaches for Python internals ([{node.arg.value!r}] at line {line})"
        if isinstance(node, nodes.Filter) and node.name == "attr":
            for a in node.args:
                if isinstance(a, nodes.Const) and isinstance(a.value, str) and a.value.startswith("_"):
                    return f"it reaches for Python internals (\"attr('{a.value}')\" at line {line})"
        if isinstance(node, (nodes.Include, nodes.Import, nodes.FromImport, nodes.Extends)):
            kind = type(node).__name__.lower()
            return f"it tries to load other templates or files ('{kind}' at line {line})"
    return None


# --------------------------------------------------------------------------- ChatTemplate

@dataclass
class ChatTemplate:
    """A compiled, checked chat template.

    ``name`` is what selected it (``gguf``, a built-in name, or ``file:PATH``), ``source`` a
    phrase for messages, ``stop`` the end-of-turn strings (text; ``resolve_stops`` turns
    single control tokens into token ids). ``supports_system`` is False for a template that
    rejects a system message (the system prompt is then folded into the first user turn).
    """

    name: str
    text: str
    source: str
    stop: tuple[str, ...] = ()
    bos_token: str = ""
    eos_token: str = ""
    from_model: bool = False
    supports_system: bool = True
    _compiled: Any = field(default=None, repr=False)

    def __post_init__(self) -> None:
        env = ChatSandbox()
        try:
            ast = env.parse(self.text)
        except TemplateSyntaxError as e:
            raise ChatTemplateError(
                f"the chat template from {self.source} does not parse: line {e.lineno}: {e.message}",
                hint="use --chat-template NAME|FILE to chat with another template",
                from_model=self.from_model) from None
        problem = _static_problem(ast)
        if problem:
            raise UnsafeTemplateError(
                f"the chat template from {self.source} was blocked and not run: {problem}",
                hint="a template is code from the model file; use --chat-template NAME|FILE "
                     f"to chat with a built-in template ({', '.join(BUILTIN)}) instead",
                from_model=self.from_model)
        try:
            self._compiled = env.from_string(self.text)
        except TemplateSyntaxError as e:  # pragma: no cover - parse() caught it
            raise ChatTemplateError(f"the chat template from {self.source} does not parse: {e}",
                                    from_model=self.from_model) from None
        self._check()

    # -- rendering ------------------------------------------------------------------------
    def _render(self, messages: list[dict[str, Any]], add_generation_prompt: bool) -> str:
        out = self._compiled.render(
            messages=messages,
            eos_token=self.eos_token,
            bos_token=self.bos_token,
            raise_exception=_raise_exception,
            add_generation_prompt=add_generation_prompt,
            functions=None,
            function_call=None,
            tools=None,
            tool_choice=None,
            strftime_now=_strftime_now,
        )
        if len(out) > MAX_OUTPUT_CHARS:
            raise SecurityError(f"the template produced {len(out)} characters")
        return out

    def render(self, messages: Iterable[dict[str, Any]], add_generation_prompt: bool = True) -> str:
        """The prompt text for ``messages`` (OpenAI shape: ``role``, ``content``).

        Only ``role`` and ``content`` reach the template. Raises ``UnsafeTemplateError`` when
        the template touches something the sandbox forbids, ``ChatTemplateError`` when it
        fails otherwise (e.g. its own ``raise_exception``)."""
        msgs = [{"role": str(m["role"]), "content": str(m.get("content") or "")} for m in messages]
        if msgs and msgs[0]["role"] == "system" and not self.supports_system:
            system = msgs.pop(0)["content"]
            if msgs and msgs[0]["role"] == "user":
                msgs[0] = {"role": "user", "content": f"{system}\n\n{msgs[0]['content']}"}
        try:
            return self._render(msgs, add_generation_prompt)
        except SecurityError as e:
            raise UnsafeTemplateError(
                f"the chat template from {self.source} was blocked: {e}",
                hint=f"use --chat-template NAME|FILE ({', '.join(BUILTIN)})",
                from_model=self.from_model) from None
        except _TemplateRaised as e:
            raise ChatTemplateError(f"the chat template from {self.source} refused the conversation: {e}",
                                    from_model=self.from_model) from None
        except Exception as e:  # TypeError, UndefinedError... from a template's own logic
            raise ChatTemplateError(
                f"the chat template from {self.source} failed: {type(e).__name__}: {e}",
                from_model=self.from_model) from None

    def _check(self) -> None:
        """Render a sample conversation once: blocks hostile templates before use and finds
        out whether a system message is accepted."""
        try:
            self.render(SAMPLE_CONVERSATION)
            return
        except UnsafeTemplateError:
            raise
        except ChatTemplateError as first:
            try:
                self.render(SAMPLE_CONVERSATION[1:])
            except UnsafeTemplateError:
                raise
            except ChatTemplateError:
                raise first from None
            self.supports_system = False

    # -- stops ----------------------------------------------------------------------------
    def turn_markers(self) -> tuple[str, ...]:
        """What starts the next user turn and another assistant turn, as this template writes
        them (``<|im_start|>user``, ``<start_of_turn>user``, ``\nUser:``): a model that never
        emits its end-of-turn token, a base model above all, still ends its reply where it
        starts writing the next turn. Found by rendering a sample conversation with marker
        words and reading what the template puts between the turns; known end-of-turn markers
        and the eos token are removed, a leading line break is kept (a text marker counts at
        a line start only)."""
        u1, a1, u2 = "ENTROPICUSERONE", "ENTROPICASSISTANTONE", "ENTROPICUSERTWO"
        try:
            text = self.render([{"role": "user", "content": u1}, {"role": "assistant", "content": a1},
                                {"role": "user", "content": u2}], add_generation_prompt=False)
        except ChatTemplateError:
            return ()
        i1, i2, i3 = text.find(u1), text.find(a1), text.find(u2)
        if not 0 <= i1 < i2 < i3:
            return ()
        out: list[str] = []
        for between in (text[i2 + len(a1): i3], text[i1 + len(u1): i2]):
            for m in (*KNOWN_END_MARKERS, self.eos_token):
                if m:
                    between = between.replace(m, "")
            marker = between.strip(" \t\r\n")
            if not marker:
                continue
            if "\n" in between[: between.find(marker)]:
                marker = "\n" + marker
            if marker not in out:
                out.append(marker)
        return tuple(out)

    def resolve_stops(self, tokenize, piece) -> tuple[set[int], list[str]]:
        """The strings that end a reply, as control-token ids and text stop strings.

        ``stop`` (end of turn): a string that is one token rendering as no text is that
        token's id, else a text stop. ``turn_markers()`` (the start of a next turn): a marker
        whose first token is a control token (``<|im_start|>``, ``<start_of_turn>``) stops on
        that token, which never belongs to a reply's text; else on the marker's text.
        ``tokenize(text) -> ids`` parses special tokens; ``piece(id) -> bytes`` is the token's
        plain text."""
        ids: set[int] = set()
        texts: list[str] = []
        for s in self.stop:
            toks = tokenize(s)
            if len(toks) == 1 and piece(toks[0]) == b"":
                ids.add(toks[0])
            elif s not in texts:  # ordinary text, or a marker this vocabulary lacks
                texts.append(s)
        for s in self.turn_markers():
            toks = tokenize(s.lstrip("\n"))
            if toks and piece(toks[0]) == b"":
                ids.add(toks[0])
            elif s not in texts:
                texts.append(s)
        return ids, texts


def _gguf_stops(text: str, eos_token: str) -> tuple[str, ...]:
    out = [m for m in KNOWN_END_MARKERS if m in text]
    if eos_token and eos_token not in out:
        out.append(eos_token)
    return tuple(out)


def builtin_template(name: str, *, bos_token: str = "", eos_token: str = "") -> ChatTemplate:
    b = BUILTIN[name]
    return ChatTemplate(name=name, text=b.text, source=f"the built-in template '{name}'",
                        stop=b.stop, bos_token=bos_token, eos_token=eos_token)


def select_template(
    override: str | None,
    *,
    gguf_template: str | None,
    registry_template: str | None,
    model_label: str,
    bos_token: str = "",
    eos_token: str = "",
) -> tuple[ChatTemplate, str | None]:
    """Choose and check the chat template; returns it and a notice (or None).

    ``override`` is ``--chat-template`` (a built-in name, ``gguf`` or a file);
    ``registry_template`` the models.txt column (``gguf``, ``none``, a built-in, or None for
    a model given by path). Raises ``ChatTemplateError`` / ``UnsafeTemplateError``.
    """
    def from_gguf() -> ChatTemplate:
        return ChatTemplate(name="gguf", text=gguf_template or "",
                            source=f"the GGUF metadata (tokenizer.chat_template) of {model_label}",
                            stop=_gguf_stops(gguf_template or "", eos_token),
                            bos_token=bos_token, eos_token=eos_token, from_model=True)

    if override:
        if override in BUILTIN:
            return builtin_template(override, bos_token=bos_token, eos_token=eos_token), None
        if override == "gguf":
            if not gguf_template:
                raise ChatTemplateError(
                    f"{model_label} has no chat template in its GGUF metadata",
                    hint=f"choose a built-in one: {', '.join(BUILTIN)}")
            return from_gguf(), None
        p = Path(override).expanduser()
        if not p.exists():
            raise ChatTemplateError(
                f"unknown chat template {override!r}: not a built-in name ({', '.join(BUILTIN)}, "
                "gguf) nor an existing file")
        try:
            text = p.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            raise ChatTemplateError(f"cannot read the chat template file {p}: "
                                    f"{getattr(e, 'strerror', None) or e}") from None
        if not text.strip():
            raise ChatTemplateError(f"the chat template file {p} is empty")
        return ChatTemplate(name=f"file:{p}", text=text, source=f"the file {p}",
                            stop=_gguf_stops(text, eos_token), bos_token=bos_token,
                            eos_token=eos_token), None

    if registry_template and registry_template not in ("gguf", "none"):
        if registry_template not in BUILTIN:
            raise ChatTemplateError(
                f"models.txt names an unknown chat template {registry_template!r} for {model_label}",
                hint=f"built-in templates: {', '.join(BUILTIN)}; or pass --chat-template")
        return builtin_template(registry_template, bos_token=bos_token, eos_token=eos_token), None

    if registry_template != "none" and gguf_template:
        return from_gguf(), None

    why = ("models.txt marks it as a base model: template none" if registry_template == "none"
           else "its GGUF metadata has no tokenizer.chat_template")
    notice = (f"{model_label} has no chat template ({why}): using the built-in '{FALLBACK}' "
              "transcript template (User: ... / Assistant: ...). Choose another with "
              f"--chat-template NAME|FILE ({', '.join(BUILTIN)}).")
    return builtin_template(FALLBACK, bos_token=bos_token, eos_token=eos_token), notice


# --------------------------------------------------------------------------- a model's template

def int_meta(engine: Any, key: str) -> int | None:
    try:
        v = engine.meta(key)
    except Exception:  # pragma: no cover - an engine without metadata
        return None
    try:
        return int(v) if v is not None else None
    except ValueError:
        return None


def special_token_text(engine: Any, key: str) -> str:
    """The text of the special token whose id is in GGUF metadata ``key``
    (``tokenizer.ggml.bos_token_id``...), e.g. ``<|im_start|>``; "" when unknown."""
    tid = int_meta(engine, key)
    if tid is None or not 0 <= tid < engine.n_vocab:
        return ""
    return engine.token_text(tid)


def template_context(name: str | None, path: Path, header: Any) -> dict[str, Any]:
    """What ``select_template`` needs to know about a model (``name``: the model argument,
    ``header``: its checked GGUF header), bos/eos aside: they are known once the vocabulary
    is loaded."""
    return {"gguf_template": header.chat_template, "registry_template": registry_template(name),
            "model_label": model_label(name, path)}


def model_template(engine: Any, override: str | None, context: dict[str, Any]) -> tuple[ChatTemplate, str | None]:
    """``select_template`` for a loaded model, its bos/eos text filled in: (template, notice)."""
    return select_template(override, bos_token=special_token_text(engine, "tokenizer.ggml.bos_token_id"),
                           eos_token=special_token_text(engine, "tokenizer.ggml.eos_token_id"), **context)
