"""``GET /metrics``: Prometheus text through ``prometheus_client``, one registry per app (two
apps in one process do not collide). What llama-server exports, under ``entropic_local_``:
requests and tokens (counters), busy slots, queue depth, reserved KV cells and the recent
generation rate (gauges read from the runtime when scraped), time to first token
(histogram), plus the process collector's memory and CPU figures."""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector, generate_latest
from prometheus_client import CONTENT_TYPE_LATEST

__all__ = ["Metrics", "CONTENT_TYPE_LATEST"]


class Metrics:
    def __init__(self, runtime: Any = None):
        self.registry = CollectorRegistry()
        r = self.registry
        ProcessCollector(registry=r)
        self.requests = Counter("entropic_local_requests", "Requests answered, by endpoint and HTTP status.",
                                ["endpoint", "status"], registry=r)
        self.prompt_tokens = Counter("entropic_local_prompt_tokens", "Prompt tokens processed.", registry=r)
        self.cached_tokens = Counter("entropic_local_prompt_cached_tokens",
                                     "Prompt tokens reused from the KV cache.", registry=r)
        self.completion_tokens = Counter("entropic_local_completion_tokens", "Tokens generated.", registry=r)
        self.cancelled = Counter("entropic_local_cancelled", "Requests cancelled (client gone).", registry=r)
        self.ttft = Histogram("entropic_local_time_to_first_token_seconds",
                              "From admission to the first token.", registry=r,
                              buckets=(.01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30))
        self.busy = Gauge("entropic_local_busy_slots", "Sequences being decoded.", registry=r)
        self.queue = Gauge("entropic_local_queue_depth", "Requests waiting for a slot.", registry=r)
        self.slots = Gauge("entropic_local_slots", "Sequences decoded together at most (--parallel).",
                           registry=r)
        self.reserved = Gauge("entropic_local_kv_cells_reserved", "KV cells reserved by live sequences.",
                              registry=r)
        self.tps = Gauge("entropic_local_tokens_per_second",
                         "Tokens generated per second over the last few seconds.", registry=r)
        self.runtime = runtime

    def render(self) -> bytes:
        rt = self.runtime
        if rt is not None:
            s = rt.snapshot()
            self.busy.set(s["busy"])
            self.queue.set(s["queued"])
            self.slots.set(s["slots"])
            self.reserved.set(s["reserved"])
            self.tps.set(s["tokens_per_second"])
        return generate_latest(self.registry)
