"""Several sequences in one context, for an ``Engine``: one ``llama_decode`` of entries from
many sequences, their logits, the KV cache's sequence operations, growing the context's
sequence count, and sibling contexts on the same weights. Sequence 0 is the one
``eval_prompt`` / ``eval_token`` and ``tokens`` describe; these serve batch generation, the
server's scheduler and branching, on a context made with ``n_seq_max`` above the highest
sequence id used."""

from __future__ import annotations

import dataclasses

import numpy as np

from ..errors import ModelLoadError, UsageError
from .backend import llama, recent_errors

__all__ = ["SequenceMethods"]


class SequenceMethods:
    def decode_entries(self, entries: list[tuple[int, int, int, bool]]) -> int:
        """One ``llama_decode`` of ``(token, pos, seq_id, want_logits)`` entries (at most
        ``n_batch``). Returns llama.cpp's code: 0 ok, 1 no room in the KV cache (nothing of
        the batch was kept), other values are errors. Read the logits of entry ``i`` (one
        with ``want_logits``) with ``logits_at(i)``."""
        n = len(entries)
        if not 0 < n <= self.n_batch:
            raise UsageError(f"a batch holds 1..{self.n_batch} tokens, got {n}")
        self._logits_override = None
        if self._attn is not None:  # a new decode: only what it captures is current
            self._attn.begin()
        return self._submit(entries)

    def logits_at(self, i: int) -> np.ndarray:
        """Logits of entry ``i`` of the last ``decode_entries`` (zero-copy view)."""
        return self._logits_view(i, f"no logits for batch entry {i}")

    def logits_rows(self, n: int) -> np.ndarray:
        """The logits of all ``n`` outputs of the last ``decode_entries``, in entry order: an
        ``[n, n_vocab]`` zero-copy view (one call instead of ``n`` ``logits_at``)."""
        ptr = llama.llama_get_logits(self._ctx)
        if not ptr:
            raise RuntimeError("no logits available: nothing has been decoded")
        return np.ctypeslib.as_array(ptr, shape=(int(n), self.n_vocab))

    def seq_copy(self, src: int, dst: int, p0: int = -1, p1: int = -1) -> None:
        """Make sequence ``dst`` share ``src``'s cells in [p0, p1) (all when -1): with the
        unified cache this tags cells, it copies no tensor data."""
        llama.llama_memory_seq_cp(self._mem, int(src), int(dst), int(p0), int(p1))

    def seq_remove(self, seq: int, p0: int = -1, p1: int = -1) -> bool:
        """Drop sequence ``seq``'s cells in [p0, p1) (all when -1)."""
        return bool(llama.llama_memory_seq_rm(self._mem, int(seq), int(p0), int(p1)))

    def seq_pos_max(self, seq: int) -> int:
        """The highest position sequence ``seq`` holds, -1 when it is empty."""
        return int(llama.llama_memory_seq_pos_max(self._mem, int(seq)))

    def ensure_sequences(self, n: int) -> None:
        """Make the context hold at least ``n`` sequences. A context made with fewer is
        re-created (same settings, one unified cache): the KV cache starts empty."""
        if n <= self.n_seq_max:
            return
        if n > 256:
            raise UsageError(f"at most 256 sequences per context, asked for {n}")
        cp = self._cparams
        cp.n_seq_max = int(n)
        cp.kv_unified = True
        ctx = llama.llama_init_from_model(self._model, cp)
        if not ctx:
            why = "; ".join(recent_errors()[-3:]) or "unknown reason"
            raise ModelLoadError(f"cannot create a context with {n} sequences: {why}")
        llama.llama_batch_free(self._batch)
        llama.llama_free(self._ctx)
        self._ctx = ctx
        self._views = {}
        self._mem = llama.llama_get_memory(ctx)
        self._batch = llama.llama_batch_init(self.n_batch, 0, int(n))
        self.n_seq_max = int(n)
        self.tokens = []
        self._saved_prompt = None
        self._logits_override = None
        if self._attn is not None:
            self._attn.begin()

    def sibling(self, *, n_ctx: int, n_seq_max: int) -> "SequenceMethods":
        """A second context on this engine's model (weights shared), with ``n_seq_max``
        sequences in one unified cache of ``n_ctx`` cells. No attention capture."""
        return type(self)(
            self.path, n_ctx=n_ctx, n_threads=self.n_threads, n_threads_batch=self.n_threads_batch,
            n_seq_max=n_seq_max, share_model=self,
            config=dataclasses.replace(self.config, n_batch=self.n_batch,
                                       n_ubatch=min(self.config.n_ubatch, self.n_batch)),
        )
