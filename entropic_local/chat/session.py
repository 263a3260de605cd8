"""A chat session: the conversation, its settings, context trimming, /save and /load.

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
import json
import math
import os
import secrets
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from ..errors import ContextOverflow, EntropicError, InvalidSamplerSpec, UsageError
from ..generation import write_text_atomic
from ..samplers.chain import SamplerChain
from ..samplers.params import parse_number
from ..samplers.registry import find_flag, flag_table, stages
from .templates import ChatTemplate, select_template

SAVE_FORMAT = "entropic-local-chat"
SAVE_VERSION = 1
DEFAULT_RESERVE = 512
# A reply stops here unless the model ends its turn first: a base model may never do so.
DEFAULT_REPLY_TOKENS = 1024
COLOR_MODES = ("entropy", "logprob", "off")

# /set NAME also takes every sampling flag the stages declare (``samplers.registry.find_flag``:
# its key, request field, command-line name or an alias)
PARAM_ALIASES = {"num_predict": "max_tokens", "n_predict": "max_tokens"}
SESSION_PARAMS = ("sampler", "system", "seed", "max_tokens", "template")
QUIET_ACTIONS = frozenset({"", "none", "argmax", "greedy", "sample", "default", "flow", "flowing"})


def _norm(name: str) -> str:
    name = name.strip().lower().replace("-", "_")
    return PARAM_ALIASES.get(name, name)


def settable_names() -> list[str]:
    return list(SESSION_PARAMS) + list(flag_table())


@dataclass
class ReplyStats:
    """What one reply cost and how sure the model was."""

    n_tokens: int = 0
    prompt_tokens: int = 0
    prompt_eval_tokens: int = 0
    prompt_tps: float = 0.0
    gen_tps: float | None = None   # from the first token to the last; None for short replies
    mean_entropy: float = 0.0
    mean_logprob: float = 0.0
    finish: str = ""
    seed: int | None = None
    actions: dict[str, int] = field(default_factory=dict)

    def line(self) -> str:
        parts = [f"{self.n_tokens} tokens"]
        if self.prompt_eval_tokens:
            parts.append(f"prompt {self.prompt_eval_tokens} tok at {self.prompt_tps:.0f} tok/s")
        else:
            parts.append("prompt cached")
        if self.gen_tps is not None:
            parts.append(f"generation {self.gen_tps:.1f} tok/s")
        parts.append(f"mean entropy {self.mean_entropy:.2f} nats" if self.n_tokens else "mean entropy -")
        if self.actions:
            parts.append("actions " + ", ".join(f"{k}×{v}" for k, v in sorted(self.actions.items())))
        if self.finish in ("length", "context", "interrupted"):
            parts.append({"length": "cut at max_tokens", "context": "context full",
                          "interrupted": "interrupted"}[self.finish])
        return " · ".join(parts)


MIN_RATE_TOKENS = 8  # fewer tokens give no meaningful tokens/s


def _rate(times: list[float]) -> float | None:
    """Tokens/s between the first token and the last (the prompt, the first token's wait and
    the end-of-turn step left out), or None for a reply too short to tell."""
    if len(times) < MIN_RATE_TOKENS or times[-1] <= times[0]:
        return None
    return (len(times) - 1) / (times[-1] - times[0])


class Reply:
    """One streamed assistant reply. Iterate for ``Step``s, then call ``finish()``.

    End-of-turn control tokens that llama.cpp does not flag as end-of-generation stop the
    reply too (they are never shown). ``interrupt()`` (Ctrl-C) stops it; ``finish()``
    records the reply in the conversation (marked when interrupted) and returns its stats.
    """

    def __init__(self, session: "ChatSession", tokens: list[int], seed: int | None, notice: str | None):
        self.session = session
        self.notice = notice
        self.prompt_tokens = tokens
        room = session.model.n_ctx - len(tokens)
        max_tokens = room if session.max_tokens is None else min(session.max_tokens, room)
        self._room_bound = max_tokens == room  # a reply cut there ran out of context
        self.stream = session.model.stream(tokens, max_tokens=max(1, max_tokens), sampler=session.chain,
                                           seed=seed, stop=session.text_stops or None)
        self.steps: list[Any] = []
        self._times: list[float] = []  # when each step arrived
        self.interrupted = False
        self.stopped_by_token = False
        self._it: Iterator[Any] | None = None
        self._done = False
        self.stats: ReplyStats | None = None

    def __iter__(self) -> Iterator[Any]:
        stop_ids = self.session.stop_ids
        self._it = iter(self.stream)
        for step in self._it:
            if step.token_id in stop_ids:
                self.stopped_by_token = True
                self._it.close()
                return
            self.steps.append(step)
            self._times.append(time.perf_counter())
            yield step

    @property
    def tail(self) -> str:
        """Text released after the last step (held back while it could start a stop string)."""
        return self.stream.tail if not (self.interrupted or self.stopped_by_token) else ""

    def interrupt(self) -> None:
        self.interrupted = True
        if self._it is not None:
            self._it.close()

    def finish(self) -> ReplyStats:
        if self._done:
            assert self.stats is not None
            return self.stats
        self._done = True
        if self._it is not None:
            self._it.close()
        gen = self.stream.generation
        text = gen.text if gen is not None else "".join(s.text for s in self.steps)
        finish = "interrupted" if self.interrupted else (
            "stop" if self.stopped_by_token else (gen.finish_reason if gen is not None else "stop"))
        if finish == "length" and self._room_bound:
            finish = "context"
        t = self.stream.loop.timings
        steps = self.steps
        actions = Counter(str(s.info.get("action")) for s in steps
                          if s.info.get("action") is not None
                          and str(s.info.get("action")).lower() not in QUIET_ACTIONS)
        st = ReplyStats(
            n_tokens=len(steps),
            prompt_tokens=len(self.prompt_tokens),
            prompt_eval_tokens=t.prompt_eval_tokens,
            prompt_tps=t.prompt_tps,
            gen_tps=_rate(self._times),
            mean_entropy=(sum(s.entropy for s in steps) / len(steps)) if steps else 0.0,
            mean_logprob=(sum(s.logprob for s in steps) / len(steps)) if steps else 0.0,
            finish=finish,
            seed=self.stream.seed,
            actions=dict(actions),
        )
        self.stats = st
        self.session._record_reply(text, self.interrupted, steps, st)
        return st


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
        self.turns: list[dict[str, Any]] = []
        self.context_start = 0
        self.last_steps: list[Any] = []
        self.last_stats: ReplyStats | None = None
        self.totals = Counter()
        # what select_template needs to switch templates later (/set template)
        self._template_context = dict(template_context or {})
        self._bos_id = _int_meta(self.engine, "tokenizer.ggml.bos_token_id")
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

    # ------------------------------------------------------------------ save / load
    def to_dict(self) -> dict[str, Any]:
        return {
            "format": SAVE_FORMAT,
            "version": SAVE_VERSION,
            "model": self.model.name,
            "settings": self.params(),
            "context_start": self.context_start,
            "messages": self.messages(),
        }

    def save(self, path: str | os.PathLike) -> Path:
        p = Path(path).expanduser()
        data = json.dumps(self.to_dict(), ensure_ascii=False, indent=2) + "\n"
        try:
            if p.parent and not p.parent.exists():
                p.parent.mkdir(parents=True, exist_ok=True)
            write_text_atomic(p, data)  # all or nothing: an older file stays whole
        except OSError as e:
            raise UsageError(f"cannot save to {p}: {e.strerror or e}",
                             hint="free some space or choose another path") from None
        return p

    def load(self, path: str | os.PathLike) -> list[str]:
        """Replace the conversation and settings with a saved session; returns notices.
        Validates everything before changing anything."""
        p = Path(path).expanduser()
        try:
            raw = p.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise UsageError(f"cannot load {p}: no such file") from None
        except IsADirectoryError:
            raise UsageError(f"cannot load {p}: it is a directory") from None
        except UnicodeDecodeError:
            raise UsageError(f"cannot load {p}: not a UTF-8 text file") from None
        except OSError as e:
            raise UsageError(f"cannot load {p}: {e.strerror or e}") from None
        try:
            data = json.loads(raw)
        except ValueError as e:
            raise UsageError(f"cannot load {p}: not valid JSON ({e})") from None
        if isinstance(data, list):
            data = {"messages": data}
        if not isinstance(data, dict) or not isinstance(data.get("messages"), list):
            raise UsageError(f"cannot load {p}: expected a saved chat (an object with a 'messages' "
                             "list, or a list of messages)")
        messages = data["messages"]
        system = None
        turns: list[dict[str, Any]] = []
        for i, m in enumerate(messages):
            if not isinstance(m, dict) or m.get("role") not in ("system", "user", "assistant") \
                    or not isinstance(m.get("content"), str):
                raise UsageError(f"cannot load {p}: message {i} is not a {{role: system|user|assistant, "
                                 "content: text}} object")
            if m["role"] == "system":
                if i != 0:
                    raise UsageError(f"cannot load {p}: a system message may only come first (message {i})")
                system = m["content"]
                continue
            msg = {"role": m["role"], "content": m["content"]}
            if m.get("interrupted"):
                msg["interrupted"] = True
            turns.append(msg)
        settings = data.get("settings") or {}
        if not isinstance(settings, dict):
            raise UsageError(f"cannot load {p}: 'settings' must be an object")
        chain = self.chain
        if settings.get("sampler"):
            try:
                chain = SamplerChain.parse(str(settings["sampler"]))
            except EntropicError as e:
                raise UsageError(f"cannot load {p}: bad sampler in settings: {e}") from None
        seed = settings.get("seed", self.seed)
        if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool) or seed < 0):
            raise UsageError(f"cannot load {p}: bad seed {seed!r} in settings")
        max_tokens = settings.get("max_tokens", self.max_tokens)
        if max_tokens is not None and (not isinstance(max_tokens, int) or isinstance(max_tokens, bool)
                                       or max_tokens < 1):
            raise UsageError(f"cannot load {p}: bad max_tokens {max_tokens!r} in settings")
        start = data.get("context_start", 0)
        if not isinstance(start, int) or isinstance(start, bool) or not 0 <= start <= len(turns):
            start = 0
        while start < len(turns) and turns[start]["role"] != "user":
            start += 1
        notices: list[str] = []
        saved_model = data.get("model")
        if saved_model and saved_model != self.model.name:
            notices.append(f"this chat was saved with model {saved_model}; continuing with {self.model.name}")
        saved_tmpl = settings.get("chat_template")
        if saved_tmpl and saved_tmpl != self.template.name:
            notices.append(f"it was saved with chat template {saved_tmpl}; this session uses "
                           f"{self.template.name} (/set template to change)")
        # all checked: apply
        self.system = system
        self.turns = turns
        self.context_start = start
        self.chain = chain
        self.seed = seed
        self.max_tokens = max_tokens
        color = settings.get("color")
        if color in COLOR_MODES:
            self.color = color
        self.last_steps = []
        self.last_stats = None
        return notices

    def write_trace(self, path: str | os.PathLike) -> tuple[Path, int]:
        """Per-token metrics of the last reply as JSON lines."""
        if not self.last_steps:
            raise UsageError("no reply to trace yet")
        p = Path(path).expanduser()
        lines = []
        for s in self.last_steps:
            d = s.to_dict()
            for k, v in list(d.items()):
                if isinstance(v, float) and not math.isfinite(v):
                    d[k] = None
            lines.append(json.dumps(d, ensure_ascii=False) + "\n")
        try:
            write_text_atomic(p, "".join(lines))  # all or nothing: never a cut line
        except OSError as e:
            raise UsageError(f"cannot write {p}: {e.strerror or e}",
                             hint="free some space or choose another path") from None
        return p, len(self.last_steps)


def _unquote(s: str) -> str:
    if len(s) >= 2 and s[0] == s[-1] and s[0] in "\"'":
        return s[1:-1]
    return s


def _int_meta(engine: Any, key: str) -> int | None:
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
    tid = _int_meta(engine, key)
    if tid is None or not 0 <= tid < engine.n_vocab:
        return ""
    return engine.token_text(tid)


def random_seed() -> int:
    return secrets.randbits(32)
