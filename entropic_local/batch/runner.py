"""Running batch jobs on a loaded model: jobs -> prepared requests -> output rows.

``rows_for`` is the one path from jobs to rows, used in-process (``run_local``) and by each
Ray actor (``ray_runner.py``): it yields an error row at once for a job that cannot run (a
bad sampler spec, a prompt longer than the context...) and a success row for each other job
as its generation finishes (continuous batching through ``Model.iter_batch``).
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from typing import Any, Iterator

from ..decode.batched import BatchRequest, Prepared
from ..errors import ContextOverflow, EntropicError, InvalidSamplerSpec
from ..samplers.chain import SamplerChain
from .jobs import Job, derive_seed, sampling_flags
from .output import error_row, success_row

ERROR_CODES = {InvalidSamplerSpec: "invalid_sampler", ContextOverflow: "context_length_exceeded"}


@dataclass
class Defaults:
    """The command's settings; a line's own settings win."""

    sampler: str = "llama"
    max_tokens: int = 256
    seed: int | None = None       # the run's --seed: per-line seeds are derived from it
    steps: bool = False           # per-step metrics in each row


def _code(e: Exception) -> str:
    for cls, code in ERROR_CODES.items():
        if isinstance(e, cls):
            return code
    return "invalid_request"


class ChatRenderer:
    """Renders OpenAI chat messages to prompt tokens with the model's chat template (the same
    sandboxed selection as ``entropic-local chat``), made once per model."""

    def __init__(self, model, registry_name: str | None):
        from ..chat.session import ChatSession
        from ..chat.templates import model_template, template_context
        from ..registry import check_gguf_header

        tmpl_ctx = template_context(registry_name, model.path, check_gguf_header(model.path))
        template, _ = model_template(model.engine, None, tmpl_ctx)
        self.session = ChatSession(model, template, SamplerChain.parse("greedy"))

    def tokens(self, messages: list[dict[str, Any]]) -> tuple[list[int], list[str]]:
        s = self.session
        s.turns = [dict(m) for m in messages]
        s.context_start = 0
        return s.prompt_tokens(), list(s.text_stops)


def prepare_job(model, job: Job, defaults: Defaults, renderer_factory) -> Prepared:
    st = job.settings
    chain = SamplerChain.from_options(st.get("sampler", defaults.sampler), **sampling_flags(st))
    seed = st.get("seed")
    if seed is None and defaults.seed is not None:
        seed = derive_seed(defaults.seed, job.custom_id)
    stop = list(st.get("stop") or [])
    if job.kind == "chat":
        prompt, template_stops = renderer_factory().tokens(job.messages)
        stop += [s for s in template_stops if s not in stop]
    else:
        prompt = job.prompt
    req = BatchRequest(prompt, max_tokens=st.get("max_tokens", defaults.max_tokens), sampler=chain,
                       seed=seed, stop=stop or None, grammar=st.get("grammar"),
                       json_schema=st.get("json_schema"))
    return model.prepare(req)


def rows_for(model, jobs: list[Job], defaults: Defaults, *, parallel: int, model_label: str,
             registry_name: str | None = None) -> Iterator[tuple[dict[str, Any], int]]:
    """``(row, completion tokens)`` for every job: error rows first, then success rows as the
    generations finish."""
    renderer: list[ChatRenderer] = []

    def get_renderer() -> ChatRenderer:
        if not renderer:
            renderer.append(ChatRenderer(model, registry_name))
        return renderer[0]

    ready: list[tuple[Job, Prepared]] = []
    for job in jobs:
        try:
            p = prepare_job(model, job, defaults, get_renderer)
        except EntropicError as e:
            yield error_row(job.custom_id, _code(e), f"line {job.line}: {e}"), 0
            continue
        p.index = len(ready)
        ready.append((job, p))
    if not ready:
        return
    for i, g in model.run_prepared([p for _, p in ready], parallel):
        job = ready[i][0]
        yield success_row(job.custom_id, job.kind, g, model=model_label, steps=defaults.steps), \
            len(g.token_ids)


@dataclass
class Progress:
    """Counts and the progress bar (tqdm on a terminal; silent otherwise)."""

    total: int
    done_before: int
    out_path: str
    show: bool = field(default_factory=lambda: sys.stderr.isatty())
    ok: int = 0
    errors: int = 0
    tokens: int = 0
    t0: float = field(default_factory=time.perf_counter)

    def __post_init__(self) -> None:
        self.bar = None
        if self.show:
            from tqdm import tqdm

            self.bar = tqdm(total=self.total, initial=self.done_before, unit="req", file=sys.stderr,
                            dynamic_ncols=True, desc="batch")

    def add(self, row: dict[str, Any], tokens: int) -> None:
        if row.get("error"):
            self.errors += 1
        else:
            self.ok += 1
        self.tokens += tokens
        if self.bar is not None:
            self.bar.update(1)
            self.bar.set_postfix_str(f"{self.tps:.1f} tok/s", refresh=False)

    @property
    def seconds(self) -> float:
        return time.perf_counter() - self.t0

    @property
    def tps(self) -> float:
        s = self.seconds
        return self.tokens / s if s > 0 else 0.0

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def line(self) -> str:
        return (f"batch: {self.ok + self.errors} rows written ({self.ok} ok, {self.errors} errors), "
                f"{self.done_before} already done, {self.tokens} tokens in {self.seconds:.1f} s "
                f"({self.tps:.1f} tokens/s) -> {self.out_path}")


def run_local(model, jobs: list[Job], write, defaults: Defaults, *, parallel: int, model_label: str,
              registry_name: str | None) -> None:
    """Run ``jobs`` on ``model``; ``write(row, completion_tokens)`` appends each row."""
    for row, n in rows_for(model, jobs, defaults, parallel=parallel, model_label=model_label,
                           registry_name=registry_name):
        write(row, n)
