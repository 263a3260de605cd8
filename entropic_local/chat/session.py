"""A chat session: the conversation, its settings, context trimming (files: ``saved.py``;
one reply: ``reply.py``).

The conversation is kept in OpenAI message shape (``{"role": ..., "content": ...}``); the
system prompt is held apart and always goes first. An interrupted reply stays in the
conversation with ``"interrupted": true`` (only ``role`` and ``content`` reach the
template, so the model sees the partial text, the user sees the mark).

Every turn re-renders the whole conversation and sends its tokens; the KV cache keeps the
longest common token prefix, so only the new tokens are decoded.

Context policy (``fit``): before a reply the prompt must leave room for the reply
(``reserve`` tokens: ``max_tokens``, 1024 by default, or 512 when it is none, at most half
the context). If it does
not, the oldest turns (a user message and its replies) are dropped, never the system prompt
and never the message being answered, down to three quarters of that budget (so that the
next turns fit too and the cache prefix stays stable for a while instead of shifting every
turn), with a notice. Dropped turns stay in the session (``/save`` keeps them, marked by
``context_start``) but are no longer sent. The kept system prompt's tokens are reused from the
KV cache; the shifted turns are decoded again once.
"""

from __future__ import annotations

import difflib
import os
import secrets
from collections import Counter
from pathlib import Path
from typing import Any

from ..errors import ContextOverflow, InvalidSamplerSpec, UsageError
from ..samplers.chain import SamplerChain
from ..samplers.params import parse_number
from ..samplers.registry import find_flag, flag_table, stages
from .reply import DEFAULT_REPLY_TOKENS, Reply, ReplyStats
from .saved import load_session, save_session, session_dict, write_trace
from .templates import ChatTemplate, int_meta, select_template

DEFAULT_RESERVE = 512

# /set NAME also takes every sampling flag the stages declare (``samplers.registry.find_flag``:
# its key, request field, command-line name or an alias)
PARAM_ALIASES = {"num_predict": "max_tokens", "n_predict": "max_tokens"}
SESSION_PARAMS = ("sampler", "system", "seed", "max_tokens", "template", "grammar", "grammar_file",
                  "json_schema")


def _norm(name: str) -> str:
    name = name.strip().lower().replace("-", "_")
    return PARAM_ALIASES.get(name, name)


def settable_names() -> list[str]:
    return list(SESSION_PARAMS) + list(flag_table())


class ChatSession:
    """The conversation with one loaded ``Model`` plus the settings that shape replies."""

    def __init__(
        self,
        model: Any,
        template: ChatTemplate,
        chain: SamplerChain,
        *,
        system: str | None = None,
        seed: int | None = None,
        max_tokens: int | None = DEFAULT_REPLY_TOKENS,
        color: str = "entropy",
        template_context: dict[str, Any] | None = None,
    ):
        self.model = model
        self.engine = model.engine
        self.chain = chain
        self.system = system or None
        self.seed = seed
        self.max_tokens = max_tokens
        self.color = color
        self.grammar: str | None = None    # GBNF text constraining the replies (/set grammar)
        self.json_schema: Any = None       # or a JSON schema (/set json_schema)
        self.turns: list[dict[str, Any]] = []
        self.context_start = 0
        self.last_steps: list[Any] = []
        self.last_stats: ReplyStats | None = None
        self.totals = Counter()
        # what select_template needs to switch templates later (/set template)
        self._template_context = dict(template_context or {})
        self._bos_id = int_meta(self.engine, "tokenizer.ggml.bos_token_id")
        self.set_template(template)

    # ------------------------------------------------------------------ template
    def set_template(self, template: ChatTemplate) -> None:
        self.template = template
        self.stop_ids, self.text_stops = template.resolve_stops(
            lambda s: self.engine.tokenize(s, add_special=False, parse_special=True),
            self.engine.piece)

    def switch_template(self, override: str) -> str | None:
        ctx = self._template_context
        tmpl, notice = select_template(
            override, gguf_template=ctx.get("gguf_template"), registry_template=ctx.get("registry_template"),
            model_label=ctx.get("model_label", self.model.name), bos_token=self.template.bos_token,
            eos_token=self.template.eos_token)
        self.set_template(tmpl)
        return notice

    # ------------------------------------------------------------------ messages
    def messages(self, *, all_turns: bool = True) -> list[dict[str, Any]]:
        """The conversation in OpenAI shape, system prompt first (``all_turns=False``: only
        what is sent to the model)."""
        out: list[dict[str, Any]] = []
        if self.system:
            out.append({"role": "system", "content": self.system})
        turns = self.turns if all_turns else self.turns[self.context_start:]
        out.extend(dict(m) for m in turns)
        return out

    def render_prompt(self, add_generation_prompt: bool = True) -> str:
        return self.template.render(self.messages(all_turns=False), add_generation_prompt=add_generation_prompt)

    def tokenize_prompt(self, text: str) -> list[int]:
        toks = self.engine.tokenize(text, add_special=False, parse_special=True)
        if getattr(self.engine, "add_bos", False) and self._bos_id is not None \
                and (not toks or toks[0] != self._bos_id):
            toks = [self._bos_id] + toks
        return toks

    def prompt_tokens(self) -> list[int]:
        return self.tokenize_prompt(self.render_prompt())

    def add_user(self, text: str) -> None:
        self.turns.append({"role": "user", "content": text})

    def _record_reply(self, text: str, interrupted: bool, steps: list[Any], stats: ReplyStats) -> None:
        msg: dict[str, Any] = {"role": "assistant", "content": text.strip()}
        if interrupted:
            msg["interrupted"] = True
        self.turns.append(msg)
        self.last_steps = list(steps)
        self.last_stats = stats
        self.totals["replies"] += 1
        self.totals["tokens"] += stats.n_tokens
        self.totals["prompt_eval_tokens"] += stats.prompt_eval_tokens
        if interrupted:
            self.totals["interrupted"] += 1

    # ------------------------------------------------------------------ context
    @property
    def reserve(self) -> int:
        n_ctx = self.model.n_ctx
        want = self.max_tokens if self.max_tokens is not None else DEFAULT_RESERVE
        return max(1, min(want, n_ctx // 2))

    def _user_starts(self) -> list[int]:
        return [i for i, m in enumerate(self.turns) if m["role"] == "user" and i >= self.context_start]

    def fit(self) -> tuple[list[int], str | None]:
        """The prompt tokens for the next reply, dropping the oldest turns if needed.

        Returns the tokens and a notice (or None). Raises ``ContextOverflow`` when even the
        system prompt plus the last message leave no room for a reply."""
        n_ctx = self.model.n_ctx
        budget = n_ctx - self.reserve
        tokens = self.prompt_tokens()
        if len(tokens) <= budget:
            return tokens, None
        before = len(tokens)
        target = budget - budget // 4
        dropped = 0
        starts = self._user_starts()
        # never drop the message being answered (the last user message)
        for nxt in starts[1:]:
            if len(tokens) <= target:
                break
            dropped += sum(1 for m in self.turns[self.context_start:nxt] if m["role"] == "user")
            self.context_start = nxt
            tokens = self.prompt_tokens()
        if len(tokens) >= n_ctx - 8:
            raise ContextOverflow(
                f"the conversation needs {len(tokens)} tokens even with only the "
                f"{'system prompt and the ' if self.system else ''}last message, but the context "
                f"holds {n_ctx}", hint="shorten the message or the system prompt, or use a larger --n-ctx")
        if not dropped:
            return tokens, (f"context nearly full ({len(tokens)}/{n_ctx} tokens): the reply may be "
                            "cut short")
        return tokens, (f"context nearly full ({before}/{n_ctx} tokens): dropped the {dropped} oldest "
                        f"turn{'s' if dropped != 1 else ''}, now {len(tokens)} tokens"
                        f"{'; the system prompt is kept' if self.system else ''}")

    def start_reply(self, seed: int | None = None) -> Reply:
        tokens, notice = self.fit()
        return Reply(self, tokens, self.seed if seed is None else seed, notice)

    # ------------------------------------------------------------------ editing
    def clear(self) -> None:
        self.turns = []
        self.context_start = 0
        self.last_steps = []
        self.last_stats = None

    def undo(self) -> int:
        """Remove the last exchange (the last user message and what followed); returns how
        many messages were removed (0: nothing to undo)."""
        for i in range(len(self.turns) - 1, -1, -1):
            if self.turns[i]["role"] == "user":
                n = len(self.turns) - i
                del self.turns[i:]
                self.context_start = min(self.context_start, len(self.turns))
                self.last_steps = []
                return n
        return 0

    def pop_reply_for_regen(self) -> bool:
        """Remove the last assistant reply so it can be generated again."""
        if self.turns and self.turns[-1]["role"] == "assistant":
            self.turns.pop()
            return True
        return bool(self.turns) and self.turns[-1]["role"] == "user"

    # ------------------------------------------------------------------ settings
    def params(self) -> dict[str, Any]:
        return {
            "sampler": str(self.chain),
            "seed": self.seed,
            "max_tokens": self.max_tokens,
            "system": self.system,
            "chat_template": self.template.name,
            "color": self.color,
        }

    def set_param(self, name: str, value: str) -> str:
        """``/set NAME VALUE``; returns a confirmation. Raises ``UsageError`` (or
        ``InvalidSamplerSpec``) with what is wrong; the session is unchanged then."""
        key = _norm(name)
        value = value.strip()
        if key == "sampler":
            if not value:
                raise UsageError("/set sampler needs a spec, e.g. /set sampler top_k=40,temp=0.7")
            self.chain = SamplerChain.parse(value)
            return f"sampler = {self.chain}"
        if key == "system":
            self.system = None if value.lower() in ("", "none", "off", '""') else _unquote(value)
            return f"system prompt {'cleared' if self.system is None else 'set'}"
        if key == "seed":
            if value.lower() in ("none", "random", "off", "-1"):
                self.seed = None
                return "seed = random (a fresh one each reply)"
            n = parse_number(value, integer=True)
            if n is None or n < 0 or n >= 2**64:
                raise UsageError(f"seed must be a non-negative integer or 'random', got {value!r}")
            self.seed = int(n)
            return f"seed = {self.seed}"
        if key == "max_tokens":
            if value.lower() in ("none", "auto", "off", "-1", "0"):
                self.max_tokens = None
                return "max_tokens = until the end of the turn or the context"
            n = parse_number(value, integer=True)
            if n is None or n < 1:
                raise UsageError(f"max_tokens must be a positive integer or 'none', got {value!r}")
            self.max_tokens = int(n)
            return f"max_tokens = {self.max_tokens}"
        if key == "template":
            if not value:
                raise UsageError("/set template needs a built-in name or a file")
            notice = self.switch_template(value)
            return f"chat template = {self.template.name}" + (f" ({notice})" if notice else "")
        if key in ("grammar", "grammar_file", "json_schema"):
            return self._set_constraint(key, value)
        flag = find_flag(key)
        if flag is not None:
            self.chain = self.chain.with_params(**{flag.key: flag.parse(value)})
            return f"{flag.key} = {value} → sampler {self.chain}"
        if "." in key:
            return self._set_stage_param(key, value)
        close = difflib.get_close_matches(key, settable_names(), n=1)
        raise UsageError(
            f"unknown parameter {name!r}" + (f" (did you mean '{close[0]}'?)" if close else ""),
            hint="settable: " + ", ".join(settable_names()) + ", or STAGE.PARAM (e.g. top_p.min_keep)")

    def _set_constraint(self, key: str, value: str) -> str:
        """``/set grammar GBNF|none``, ``/set grammar_file FILE``, ``/set json_schema
        JSON|FILE|json_object|none``: checked by parsing it now (the session is unchanged
        when it does not parse)."""
        from ..engine.grammar_input import parse_json_schema, read_constraint

        if value.lower() in ("", "none", "off"):
            self.grammar = self.json_schema = None
            return "replies are unconstrained"
        if key == "json_schema":
            grammar, schema = None, "json_object" if value == "json_object" else parse_json_schema(value)
        else:
            grammar, schema = read_constraint(_unquote(value) if key == "grammar" else None,
                                              value if key == "grammar_file" else None, None)
        self.model.constraint(grammar, schema)  # parses it (GrammarError when it does not)
        self.grammar, self.json_schema = grammar, schema
        return "replies follow " + ("the grammar" if grammar is not None else "the JSON schema")

    def _set_stage_param(self, key: str, value: str) -> str:
        stage_name, _, param = key.partition(".")
        cls = stages().get(stage_name)
        if cls is None:
            raise UsageError(f"unknown sampler stage {stage_name!r} in {key!r}",
                             hint="stages: " + ", ".join(sorted(stages())))
        if stage_name not in self.chain:
            raise UsageError(f"the sampler {self.chain} has no '{stage_name}' stage",
                             hint=f"add it with /set sampler, e.g. /set sampler {self.chain},{stage_name}=...")
        if not cls.accepts_param(param):
            raise InvalidSamplerSpec(f"{stage_name}: unknown parameter '{param}'", hint=cls.param_help())
        self.chain = self.chain.with_stage_params(stage_name, **{param: cls.convert(param, value)})
        return f"{key} = {value} → sampler {self.chain}"

    # ------------------------------------------------------------------ files
    def to_dict(self) -> dict[str, Any]:
        return session_dict(self)

    def save(self, path: str | os.PathLike) -> Path:
        return save_session(self, path)

    def load(self, path: str | os.PathLike) -> list[str]:
        """Replace the conversation and settings with a saved session; returns notices.
        Validates everything before changing anything."""
        return load_session(self, path)

    def write_trace(self, path: str | os.PathLike) -> tuple[Path, int]:
        """Per-token metrics of the last reply as JSON lines."""
        return write_trace(self, path)

def _unquote(s: str) -> str:
    if len(s) >= 2 and s[0] == s[-1] and s[0] in "\"'":
        return s[1:-1]
    return s


def random_seed() -> int:
    return secrets.randbits(32)
