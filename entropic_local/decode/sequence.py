"""One generation, token by token: ``SequenceState`` and what it produces, per-token ``Step``
records, ``Timings`` and a ``Generation``. Every decode loop (``single``, ``batched``) drives
``SequenceState.step`` with one position's logits, so all make the same Steps.

One step: compute the model's own log Z, entropy and varentropy of the logits (a zero-copy
view) in one fused kernel pass, load the candidate set, run the sampler chain, record the
step. The statistics come from the same pass the chain needs anyway, so recording them
costs almost nothing.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass, field
from types import SimpleNamespace
from typing import Any

from ..atomic_file import write_text_atomic
from .text import StopMatcher, Utf8Stream
from ..errors import DecodeError
from ..kernels import logit_stats
from ..samplers.candidates import Candidates
from ..samplers.chain import SamplerChain


@dataclass(slots=True)
class Step:
    """One generated token.

    ``piece`` is the token's own text; ``text`` is what this step added to the output (it can
    be empty while a multi-byte character or a possible stop string is incomplete, and holds
    earlier text once released), so ``"".join(s.text for s in steps) == generation.text``.
    ``logprob``, ``entropy`` (nats) and ``varentropy`` (nats²) describe the model's own
    distribution at temperature 1 over the full vocabulary; ``n_candidates`` is the size of
    the candidate set the chain kept when it chose. ``info`` holds what adaptive samplers
    decided (action, effective temperature...).
    """

    index: int
    token_id: int
    piece: str
    text: str
    logprob: float
    entropy: float
    varentropy: float
    n_candidates: int
    info: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        info = d.pop("info")
        d.update(info)
        # JSON has no NaN: an unavailable metric is null
        return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in d.items()}


@dataclass(slots=True)
class Timings:
    prompt_tokens: int = 0        # tokens in the prompt
    prompt_eval_tokens: int = 0   # of those, decoded now (the rest came from the KV cache)
    prompt_ms: float = 0.0
    gen_tokens: int = 0
    gen_ms: float = 0.0
    branch_tokens: int = 0        # tokens decoded for branch roll-outs (part of gen_ms)
    branch_ms: float = 0.0

    @property
    def prompt_tps(self) -> float:
        return self.prompt_eval_tokens / (self.prompt_ms / 1000) if self.prompt_ms > 0 else 0.0

    @property
    def gen_tps(self) -> float:
        return self.gen_tokens / (self.gen_ms / 1000) if self.gen_ms > 0 else 0.0

    def to_dict(self) -> dict[str, float]:
        d = asdict(self)
        d["prompt_tps"] = round(self.prompt_tps, 2)
        d["gen_tps"] = round(self.gen_tps, 2)
        d["prompt_ms"] = round(self.prompt_ms, 3)
        d["gen_ms"] = round(self.gen_ms, 3)
        d["branch_ms"] = round(self.branch_ms, 3)
        return d


@dataclass
class Generation:
    """The result of one ``Model.generate`` call."""

    prompt: str
    text: str
    token_ids: list[int]
    steps: list[Step]
    timings: Timings
    seed: int
    sampler: str
    finish_reason: str  # "stop" (end of generation or a stop string), "length", "context"
    model: str = ""
    engine: dict[str, Any] | None = None  # the engine's settings (Engine.settings): repack, n_ubatch, flash_attn...
    constraint: dict[str, Any] | None = None  # a grammar's summary (decode/constrained.py)

    @property
    def mean_entropy(self) -> float:
        return sum(s.entropy for s in self.steps) / len(self.steps) if self.steps else 0.0

    def to_dict(self, steps: bool = True) -> dict[str, Any]:
        d: dict[str, Any] = {
            "model": self.model,
            "prompt": self.prompt,
            "text": self.text,
            "finish_reason": self.finish_reason,
            "seed": self.seed,
            "sampler": self.sampler,
            "token_ids": self.token_ids,
            "timings": self.timings.to_dict(),
        }
        if self.engine is not None:
            d["engine"] = self.engine
        if self.constraint is not None:
            d["constraint"] = self.constraint
        if steps:
            d["steps"] = [s.to_dict() for s in self.steps]
        return d

    def to_json(self, steps: bool = True) -> str:
        return json.dumps(self.to_dict(steps=steps), ensure_ascii=False)

    def trace(self, path: str | os.PathLike | None = None) -> str:
        """The per-step trace as JSON Lines: one object per token with every metric the
        step recorded (entropy, varentropy, logprob, attention metrics, the sampler's
        action and effective parameters; the first line also the engine's settings, ``engine``).
        Written to ``path`` when given; returned."""
        rows = [s.to_dict() for s in self.steps]
        if rows and self.engine is not None:  # the settings that made these numbers, once
            rows[0]["engine"] = self.engine
        text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
        if path is not None:
            write_text_atomic(path, text)
        return text


class SequenceState:
    """What one generation accumulates, token by token: the sampler chain's decisions, the
    text (UTF-8 completed, stop strings held back), the Steps, the finish reason. Shared by
    the single-sequence ``DecodeLoop`` and the batched loop (``decode/batched.py``), so both
    make the same Steps from the same logits.

    ``step(raw)`` turns one position's logits into a token; ``done`` is set when the
    sequence must stop (end of generation, a stop string, ``max_tokens``).
    """

    def __init__(self, engine: Any, chain: SamplerChain, prompt_tokens: list[int], *,
                 max_tokens: int, stop: list[str] | None = None, constraint: Any = None):
        self.engine = engine
        self.chain = chain
        self.constraint = constraint  # a grammar (decode/constrained.py), or None
        self.prompt_tokens = prompt_tokens
        self.max_tokens = max_tokens
        self.stop = StopMatcher(stop)
        self.utf8 = Utf8Stream()
        self.timings = Timings(prompt_tokens=len(prompt_tokens))
        self.token_ids: list[int] = []
        self.text_parts: list[str] = []
        self.finish_reason = "length"
        self.last_step: Step | None = None
        self.tail = ""  # text released after the last step was yielded (streamers print it)
        self.done = False
        self.matched = False  # a stop string ended it (its text is never released)
        self._info = chain.step_info

    @property
    def text(self) -> str:
        return "".join(self.text_parts)

    def step(self, cands: Candidates, raw, attention=None, branch=None, stats=None) -> Step | None:
        """Choose the next token from ``raw`` (this position's logits). Returns its Step, or
        None when the token ends the generation. ``attention`` is the engine's metrics of
        this position (or None); ``branch(fork, logprobs)`` runs a ``Fork`` the chain asked
        for (``branching.roll_out``); without it the stage's own choice stands. ``stats``:
        ``logit_stats(raw, 1.0)`` when the caller computed it already (a batched loop does,
        for all rows in one call)."""
        engine, chain = self.engine, self.chain
        k = chain.leading_top_k
        try:
            if k:  # top_k first: straight from llama.cpp's logits, no copy of the vocabulary
                stats = cands.reset_top_k(raw, stats, k)
            elif stats is None:
                stats = logit_stats(raw, 1.0)
        except ValueError as e:  # NaN (or all -inf) straight from llama.cpp: not a sampler bug
            raise DecodeError(f"llama.cpp decoded unusable logits ({e})",
                                 hint="the model file or its metadata is broken; try another file") from None
        if not k:
            cands.reset(raw, stats)
        m = attention
        if m is not None:
            cands.attention = SimpleNamespace(
                entropy=m.attn_entropy, varentropy=m.attn_varentropy,
                agreement=m.agreement, interaction_strength=m.interaction_strength,
                n_valid=m.n_valid,
            )
        chain.apply(cands, 1 if k else 0)
        tok = cands.selected_token
        constraint = self.constraint
        if constraint is not None:
            tok = constraint.choose(cands, raw, stats, chain)
            if tok is None:  # the grammar is complete: nothing but end of generation is left
                self.finish_reason = "stop"
                self.done = True
                return None
        n_kept = cands.n
        logprob = float(raw[tok]) - stats[1]
        fork = cands.fork if branch is not None and constraint is None else None
        if fork is not None:
            # read the candidates' logprobs now: the roll-out reuses the logits buffer
            lps = [float(raw[t]) - stats[1] for t in fork.tokens]
            res = branch(fork, lps)
            tok, logprob = res.token, lps[res.index]
            self.timings.branch_tokens += res.n_tokens
            self.timings.branch_ms += res.ms
        chain.accept(tok)
        if constraint is not None:
            constraint.accept(tok)
        if engine.is_eog(tok):
            self.finish_reason = "stop"
            self.done = True
            return None
        index = len(self.token_ids)
        self.token_ids.append(tok)
        piece = engine.piece(tok)
        released, matched = self.stop.push(self.utf8.push(piece))
        if released:
            self.text_parts.append(released)
        step = Step(
            index=index,
            token_id=tok,
            piece=piece.decode("utf-8", errors="replace"),
            text=released,
            logprob=logprob,
            entropy=stats[2],
            varentropy=stats[3],
            n_candidates=n_kept,
            info=self._info(),
        )
        if fork is not None:
            step.info.update(res.info())
        if constraint is not None:
            step.info.update(constraint.info())
        if m is not None:
            step.info.update(
                attn_entropy=m.attn_entropy, attn_varentropy=m.attn_varentropy,
                agreement=m.agreement, interaction_strength=m.interaction_strength,
            )
        self.timings.gen_tokens += 1
        self.last_step = step
        if matched:
            self.finish_reason = "stop"
            self.done = self.matched = True
        elif len(self.token_ids) >= self.max_tokens:
            self.done = True
        return step

    def generation(self, prompt: str, steps: list[Step], seed: int, model: str) -> Generation:
        """The ``Generation`` of what this sequence made (``steps``: the Steps it returned)."""
        return Generation(
            prompt=prompt, text=self.text, token_ids=list(self.token_ids), steps=steps,
            timings=self.timings, seed=seed, sampler=str(self.chain), finish_reason=self.finish_reason,
            model=model,
            constraint=self.constraint.summary() if self.constraint is not None else None,
        )

    def finish(self) -> None:
        """End without a stop string: release the text held back (a possible stop-string
        prefix, an incomplete UTF-8 character) into the last step, so join(step.text) ==
        text."""
        if self.matched:
            return
        tail, matched = self.stop.push(self.utf8.flush())
        if not matched:
            tail += self.stop.flush()
        if tail:
            self.text_parts.append(tail)
            self.tail = tail
            if self.last_step is not None:
                self.last_step.text += tail
