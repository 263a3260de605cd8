"""The batch on a Ray cluster (``entropic-local batch --ray``; the optional extra ``ray``).

``ray.init()`` connects to the cluster named by ``RAY_ADDRESS`` when it is set and starts a
local one otherwise (``--ray-actors`` CPUs). Each actor (``BatchActor``) loads the model
once and runs shards of jobs through the same ``rows_for`` path as a local run
(continuous batching inside the actor); the driver keeps every actor busy with up to two
shards and appends each returned row through the same ``OutputFile``, so resuming, error
rows and the summary are identical to a local run. A shard lost with a dead actor or driver
is simply not in the output yet: the rerun does it.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from ..errors import EntropicError, UsageError
from .jobs import Job
from .runner import Defaults


def _ray():
    try:
        import ray
    except ImportError:
        raise UsageError("ray is not installed", hint="pip install 'entropic-local[ray]'") from None
    return ray


class _Actor:
    """One loaded model in one Ray worker process."""

    def __init__(self, model_name: str | None, load_kwargs: dict[str, Any], label: str):
        from .. import load

        self.model = load(model_name, **load_kwargs)
        self.label = label
        self.registry_name = model_name

    def run(self, jobs: list[dict[str, Any]], defaults: dict[str, Any], parallel: int) -> list:
        from .runner import rows_for

        d = Defaults(**defaults)
        return list(rows_for(self.model, [Job.from_dict(j) for j in jobs], d, parallel=parallel,
                             model_label=self.label, registry_name=self.registry_name))


def run_ray(model_name: str | None, load_kwargs: dict[str, Any], jobs: list[Job], write,
            defaults: Defaults, *, parallel: int, actors: int, label: str,
            shard_size: int | None = None) -> None:
    """Run ``jobs`` on Ray actors; ``write(row, completion_tokens)`` appends each row."""
    ray = _ray()
    if not ray.is_initialized():
        kwargs: dict[str, Any] = {"logging_level": logging.ERROR, "log_to_driver": False,
                                  "include_dashboard": False}
        if not os.environ.get("RAY_ADDRESS"):
            kwargs["num_cpus"] = actors * int(load_kwargs.get("n_threads") or 1)
        ray.init(**kwargs)
    threads = int(load_kwargs.get("n_threads") or 1)
    remote = ray.remote(num_cpus=threads)(_Actor)
    pool = [remote.remote(model_name, {**load_kwargs, "n_threads": threads}, label) for _ in range(actors)]
    size = shard_size or max(1, parallel * 2)
    shards = [jobs[i:i + size] for i in range(0, len(jobs), size)]
    d = {"sampler": defaults.sampler, "max_tokens": defaults.max_tokens, "seed": defaults.seed,
         "steps": defaults.steps}
    pending: dict[Any, int] = {}
    nxt = 0

    def submit(actor_index: int) -> None:
        nonlocal nxt
        if nxt < len(shards):
            ref = pool[actor_index].run.remote([j.to_dict() for j in shards[nxt]], d, parallel)
            pending[ref] = actor_index
            nxt += 1

    try:
        for a in range(len(pool)):
            submit(a)
            submit(a)
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            ref = ready[0]
            actor_index = pending.pop(ref)
            try:
                rows = ray.get(ref)
            except ray.exceptions.RayError as e:
                cause = getattr(e, "cause", None)
                if isinstance(cause, EntropicError):
                    raise cause from None
                raise EntropicError(f"a Ray worker failed: {str(e).splitlines()[0]}",
                                    hint="rerun the same command to resume") from None
            for row, n in rows:
                write(row, n)
            submit(actor_index)
    finally:
        for a in pool:
            try:
                ray.kill(a)
            except Exception:
                pass
