"""A lean binding of one llama.cpp model and context: load, tokenise, decode, read logits.

Everything goes through llama-cpp-python's low-level ctypes API (``llama_cpp``), not its
high-level ``Llama`` class: the decode loop is ours, logits are read as a zero-copy numpy
view, and the KV cache is kept across calls so a continued prompt decodes only its new
tokens.
"""

from __future__ import annotations

import ctypes
import dataclasses
import os
import warnings
from pathlib import Path

import numpy as np

from ..errors import (
    ContextOverflow, DecodeError, EntropicWarning, InvalidModelFile, ModelLoadError, UsageError,
)
from .backend import default_threads, ensure_backend, llama, recent_errors
from .choose import choose_config
from .config import EngineConfig, Verdict, flash_attn_value
from .probe import check_fault, fault
from .sequences import SequenceMethods
from .tokens import TokenMethods

# llama_get_logits_ith returning the address as an int (a prototype of our own: the
# binding's returns a float pointer object, costlier to turn into an array every token)
_LOGITS_ADDR = llama.llama_cpp._lib["llama_get_logits_ith"]
_LOGITS_ADDR.argtypes = [ctypes.c_void_p, ctypes.c_int32]
_LOGITS_ADDR.restype = ctypes.c_void_p

DEFAULT_N_CTX = 4096
MIN_N_CTX = 16
CTX_PAD = 256  # llama.cpp rounds the context up to a multiple of this


class Engine(TokenMethods, SequenceMethods):
    """One model with one context (sequence 0). Its token methods (tokenize, pieces,
    end-of-generation) are in ``tokens.py``, those for several sequences in one context
    (batches, KV-cache sequences, sibling contexts) in ``sequences.py``.

    ``tokens`` mirrors what the KV cache holds, position by position, so the next prompt can
    reuse the longest common prefix.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        *,
        n_ctx: int | None = None,
        n_batch: int | None = None,
        n_ubatch: int | None = None,
        n_threads: int | None = None,
        n_threads_batch: int | None = None,
        n_gpu_layers: int | str = 0,
        flash_attn: bool | str | None = None,
        repack: bool | None = None,
        workload: str = "single",
        probe: bool = True,
        n_seq_max: int = 1,
        attention=None,
        attention_scores: bool = False,
        share_model: "Engine | None" = None,
        attention_entmax=None,
        config: EngineConfig | None = None,
    ):
        ensure_backend()
        self.path = Path(path)
        flash_attn = flash_attn_value(flash_attn)
        self._model = None
        # A second context on an already loaded model (batch generation): the weights are
        # shared, not loaded twice (which would double the VRAM with --n-gpu-layers).
        self._parent = share_model
        self._ctx = None
        self._batch = None
        self._attn = None  # attention capture (engine/attention.py), when requested
        self._saved_attn = None
        if (attention is not None or attention_entmax is not None) and flash_attn == "on":
            raise UsageError(
                "attention capture needs flash attention off (flash attention fuses the softmax away)",
                hint="use -fa off (flash_attn=\"off\"), the default, or do not request attention",
            )
        for name, value, lo in (("n_batch", n_batch, 1), ("n_ubatch", n_ubatch, 1), ("n_seq_max", n_seq_max, 1)):
            if value is not None and int(value) < lo:
                raise UsageError(f"{name} must be at least {lo}, got {value}")
        if n_ctx is not None and (int(n_ctx) < 0 or 0 < int(n_ctx) < MIN_N_CTX):
            raise UsageError(f"n_ctx must be 0 (the model's training context) or at least {MIN_N_CTX}, "
                             f"got {n_ctx}")
        if n_threads is not None and int(n_threads) < 1:
            raise UsageError(f"n_threads must be at least 1, got {n_threads}")

        self.n_threads = int(n_threads) if n_threads else default_threads()
        self.n_threads_batch = int(n_threads_batch) if n_threads_batch else self.n_threads
        if config is None:
            config, self.verdict = self._choose(workload, probe, repack=repack, n_batch=n_batch,
                                                n_ubatch=n_ubatch, flash_attn=flash_attn,
                                                n_gpu_layers=n_gpu_layers)
        else:  # a sibling context: the loaded weights' configuration
            self.verdict = share_model.verdict if share_model is not None else Verdict(source="given")
        if (attention is not None or attention_entmax is not None) and config.flash_attn != "off":
            config = dataclasses.replace(config, flash_attn="off")
        self.config = config
        self._fault = fault()

        recent_errors()
        if share_model is not None:
            self._model = share_model._model
        else:
            mparams = llama.llama_model_default_params()
            mparams.n_gpu_layers = int(config.n_gpu_layers)
            mparams.use_extra_bufts = bool(config.use_extra_bufts)
            self._model = llama.llama_model_load_from_file(str(self.path).encode(), mparams)
        if not self._model:
            why = "; ".join(recent_errors()[-3:]) or "llama.cpp could not read it"
            raise InvalidModelFile(f"cannot load model {self.path}: {why}")

        self._vocab = llama.llama_model_get_vocab(self._model)
        self.n_vocab = int(llama.llama_vocab_n_tokens(self._vocab))
        self.n_ctx_train = int(llama.llama_model_n_ctx_train(self._model))
        asked_ctx = None if n_ctx is None else int(n_ctx)
        if n_ctx is None:
            n_ctx = min(DEFAULT_N_CTX, self.n_ctx_train) if self.n_ctx_train > 0 else DEFAULT_N_CTX
        elif int(n_ctx) == 0:  # llama.cpp's -c 0: the context the model was trained with
            n_ctx = self.n_ctx_train if self.n_ctx_train > 0 else DEFAULT_N_CTX

        cparams = llama.llama_context_default_params()
        cparams.n_ctx = int(n_ctx)
        cparams.n_batch = int(config.n_batch)
        cparams.n_ubatch = int(config.n_ubatch)
        cparams.n_seq_max = int(n_seq_max)
        # One cache shared by all sequences: a sequence may use any free cell, and copying a
        # sequence (branching) only tags cells instead of copying tensors.
        cparams.kv_unified = int(n_seq_max) > 1
        cparams.n_threads = self.n_threads
        cparams.n_threads_batch = self.n_threads_batch
        cparams.no_perf = True
        cparams.flash_attn_type = {"on": llama.LLAMA_FLASH_ATTN_TYPE_ENABLED,
                                   "off": llama.LLAMA_FLASH_ATTN_TYPE_DISABLED,
                                   "auto": llama.LLAMA_FLASH_ATTN_TYPE_AUTO}[config.flash_attn]
        # attention capture: the eval callback is installed on the context it creates
        if attention is not None or attention_entmax is not None:
            from .attention import AttentionCapture, parse_attention_layers

            n_layer = int(llama.llama_model_n_layer(self._model))
            layers = parse_attention_layers("all" if attention is None else attention, n_layer)
            cparams.flash_attn_type = llama.LLAMA_FLASH_ATTN_TYPE_DISABLED
            n_head = int(llama.llama_model_n_head(self._model))
            if attention_entmax is not None:  # entmax attention: engine/attention_entmax.py
                from .attention_entmax import EntmaxAttentionCapture

                self._attn = EntmaxAttentionCapture(layers, n_layer, n_head, scores=attention_scores,
                                                    entmax=attention_entmax)
            else:
                self._attn = AttentionCapture(layers, n_layer, n_head, scores=attention_scores)
            cparams.cb_eval = self._attn.callback
            cparams.cb_eval_user_data = self._attn.user_data
        self._cparams = cparams  # keep alive: callbacks set on it later must outlive the context
        self._ctx = llama.llama_init_from_model(self._model, cparams)
        if not self._ctx:
            why = "; ".join(recent_errors()[-3:]) or "unknown reason"
            self.close()
            raise ModelLoadError(f"cannot create a context of {n_ctx} tokens for {self.path}: {why}")
        self.n_ctx = int(llama.llama_n_ctx(self._ctx))
        if share_model is None:
            self._warn_context(asked_ctx)
        if self._attn is not None:  # capture buffers sized to the cache
            self._attn.allocate(self.n_ctx)
        # llama.cpp may clamp the batch to the (padded) context: use what it actually took
        self.n_batch = int(llama.llama_n_batch(self._ctx))
        self.n_ubatch = int(llama.llama_n_ubatch(self._ctx))
        self.n_gpu_layers = int(config.n_gpu_layers)
        self._mem = llama.llama_get_memory(self._ctx)
        self._batch = llama.llama_batch_init(self.n_batch, 0, max(1, int(n_seq_max)))
        self.tokens: list[int] = []
        self._views: dict[int, np.ndarray] = {}
        self._pieces: dict[int, bytes] = {}
        self._saved_prompt: tuple[tuple[int, ...], np.ndarray] | None = None
        self._logits_override: np.ndarray | None = None
        self.n_seq_max = int(n_seq_max)
        if share_model is not None:  # same vocabulary: share the caches built from it
            self._pieces = share_model._pieces
            self._eog = share_model._eog
        else:
            self._eog = {t for t in range(self.n_vocab) if llama.llama_vocab_is_eog(self._vocab, t)} \
                if self.n_vocab <= 300_000 else None
        self.add_bos = bool(llama.llama_vocab_get_add_bos(self._vocab))

    def _warn_context(self, asked: int | None) -> None:
        """Say when the context is not what was asked for, or longer than the model knows."""
        if asked and self.n_ctx != asked:
            warnings.warn(EntropicWarning(
                f"the context was rounded up from {asked} to {self.n_ctx} tokens (llama.cpp pads "
                f"it to a multiple of {CTX_PAD})"), stacklevel=3)
        if 0 < self.n_ctx_train < self.n_ctx:
            warnings.warn(EntropicWarning(
                f"the context ({self.n_ctx} tokens) is longer than the model was trained on "
                f"({self.n_ctx_train}): text past {self.n_ctx_train} tokens may degrade"), stacklevel=3)

    def _choose(self, workload, probe, **given) -> tuple[EngineConfig, Verdict]:
        """The configuration for this machine, build and model (``choose.choose_config``)."""
        return choose_config(self.path, workload, n_threads=self.n_threads,
                             n_threads_batch=self.n_threads_batch, probe=probe, **given)

    def settings(self) -> dict:
        """The settings this context runs with and why (the ``engine`` block of JSON output)."""
        c = self.config
        return {
            "repack": c.use_extra_bufts, "n_batch": self.n_batch, "n_ubatch": self.n_ubatch,
            "flash_attn": c.flash_attn, "n_gpu_layers": c.n_gpu_layers, "n_threads": self.n_threads,
            "n_threads_batch": self.n_threads_batch, "workload": c.workload, "reason": c.reason,
            "probe": self.verdict.source,
        }

    # ------------------------------------------------------------------ metadata
    def meta(self, key: str) -> str | None:
        """A GGUF metadata value as a string (``general.name``, ``tokenizer.chat_template``...)."""
        size = 1 << 14
        while True:
            buf = ctypes.create_string_buffer(size)
            n = llama.llama_model_meta_val_str(self._model, key.encode(), buf, size)
            if n < 0:
                return None
            if n < size:
                return buf.value.decode("utf-8", errors="replace")
            size = n + 1

    @property
    def description(self) -> str:
        buf = ctypes.create_string_buffer(256)
        llama.llama_model_desc(self._model, buf, 256)
        return buf.value.decode("utf-8", errors="replace")

    @property
    def n_params(self) -> int:
        """The model's parameter count (llama.cpp's own count of the weights)."""
        return int(llama.llama_model_n_params(self._model))

    @property
    def size_bytes(self) -> int:
        """The bytes the weights take (as quantised in the file)."""
        return int(llama.llama_model_size(self._model))

    # ------------------------------------------------------------------ decoding
    def logits(self) -> np.ndarray:
        """Logits of the last evaluated position: a zero-copy view valid until the next decode."""
        if self._logits_override is not None:
            return self._logits_override
        return self._logits_view(-1, "no logits available: nothing has been decoded")

    def _logits_view(self, i: int, missing: str) -> np.ndarray:
        """A numpy view of llama.cpp's logits row ``i``, made once per address: the output
        buffer stays put between decodes, so the per-token cost is one C call."""
        addr = _LOGITS_ADDR(self._ctx, int(i))
        if not addr:
            raise RuntimeError(missing)
        views = self._views
        v = views.get(addr)
        if v is None:
            if len(views) > 512:  # a reallocated output buffer: forget the old addresses
                views.clear()
            v = views[addr] = np.ctypeslib.as_array((ctypes.c_float * self.n_vocab).from_address(addr))
        return v

    def _submit(self, entries) -> int:
        """Fill the batch with ``(token, pos, seq_id, want_logits)`` entries and decode it."""
        b = self._batch
        for j, (t, pos, seq, want) in enumerate(entries):
            b.token[j] = t
            b.pos[j] = pos
            b.n_seq_id[j] = 1
            b.seq_id[j][0] = seq
            b.logits[j] = 1 if want else 0
        b.n_tokens = len(entries)
        if self._fault is not None:  # a simulated broken fast path (engine/probe.py)
            check_fault(self._fault, self.config.use_extra_bufts, min(len(entries), self.n_ubatch))
        return int(llama.llama_decode(self._ctx, b))

    def _submit_checked(self, entries, start: int) -> None:
        """``_submit`` entries for positions ``start...`` of sequence 0; on failure (or
        Ctrl-C, which lands between bytecodes, possibly right after the decode) drop those
        positions from the cache and from ``tokens``, so the two never disagree."""
        try:
            rc = self._submit(entries)
        except BaseException:
            llama.llama_memory_seq_rm(self._mem, 0, start, -1)
            raise
        if rc != 0:
            llama.llama_memory_seq_rm(self._mem, 0, start, -1)
            del self.tokens[start:]
            if rc == 1:
                raise ContextOverflow(
                    f"the context is full ({self.n_ctx} tokens)", hint="use a larger --n-ctx or a shorter prompt"
                )
            raise DecodeError(f"llama_decode failed with code {rc}")

    def _decode(self, tokens: list[int], start: int) -> None:
        """Decode ``tokens`` at positions ``start...``, in chunks of n_batch; logits for the last."""
        n_total = len(tokens)
        if self._attn is not None:  # a new decode: only what it captures is current
            self._attn.begin()
        i = 0
        while i < n_total:
            chunk = tokens[i : i + self.n_batch]
            n = len(chunk)
            last = n - 1 if i + n == n_total else -1
            self._submit_checked([(t, start + i + j, 0, j == last) for j, t in enumerate(chunk)], start + i)
            self.tokens.extend(chunk)
            i += n

    def eval_prompt(self, tokens: list[int]) -> int:
        """Make the cache hold exactly ``tokens`` and have logits for the last one ready.

        Reuses the longest common prefix with what the cache already holds; returns how many
        tokens were actually decoded (0 when the logits of this exact prompt were kept).
        """
        if not tokens:
            raise UsageError("empty prompt: nothing to evaluate")
        self.check_fits(tokens)
        self._logits_override = None
        cached = self.tokens
        n_keep = 0
        limit = min(len(cached), len(tokens))
        while n_keep < limit and cached[n_keep] == tokens[n_keep]:
            n_keep += 1
        saved = self._saved_prompt
        if n_keep == len(tokens) and saved is not None and saved[0] == tuple(tokens):
            # Same prompt again: the cache holds it and its last logits were saved. Reusing
            # them keeps runs reproducible (re-decoding one token alone can differ in the last
            # bits from decoding it inside a batch).
            self._truncate(n_keep)
            self._logits_override = saved[1]
            if self._attn is not None:  # this prompt's attention, as captured then
                self._attn.restore(self._saved_attn)
            return 0
        if n_keep == len(tokens):
            n_keep -= 1  # need the last token's logits: decode it again
        self._truncate(n_keep)
        self._decode(tokens[n_keep:], n_keep)
        self._saved_prompt = (tuple(tokens), self.logits().copy())
        if self._attn is not None:
            self._saved_attn = self._attn.snapshot()
        return len(tokens) - n_keep

    def check_fits(self, tokens: list[int]) -> None:
        """``ContextOverflow`` when a prompt of ``tokens`` leaves no room to generate."""
        if len(tokens) >= self.n_ctx:
            raise ContextOverflow(
                f"the prompt is {len(tokens)} tokens but the context holds {self.n_ctx}",
                hint="use a larger --n-ctx or a shorter prompt",
            )

    def eval_token(self, token: int) -> None:
        """Append one token to the cache and compute its logits."""
        if len(self.tokens) + 1 > self.n_ctx:
            raise ContextOverflow(f"the context is full ({self.n_ctx} tokens)", hint="use a larger --n-ctx")
        self._logits_override = None
        pos = len(self.tokens)
        if self._attn is not None:  # the capture brackets every decode (``_decode``)
            self._decode([token], pos)
            return
        self._submit_checked([(token, pos, 0, True)], pos)  # the per-token path: no chunking
        self.tokens.append(token)

    def _truncate(self, n_keep: int) -> None:
        if n_keep < len(self.tokens):
            if not llama.llama_memory_seq_rm(self._mem, 0, n_keep, -1):
                # Some memories (recurrent models) cannot drop a tail: start over.
                llama.llama_memory_clear(self._mem, True)
                self.tokens = []
                return
            del self.tokens[n_keep:]

    def clear(self) -> None:
        """Forget the whole KV cache."""
        llama.llama_memory_clear(self._mem, True)
        self.tokens = []
        self._saved_prompt = None
        self._logits_override = None
        if self._attn is not None:  # nothing captured is current any more
            self._attn.begin()

    # ------------------------------------------------------------------ attention
    @property
    def attention(self):
        """The ``AttentionCapture`` of this context, or None when attention was not requested."""
        return self._attn

    @property
    def attention_layers(self) -> tuple[int, ...]:
        """The layers whose attention is captured (empty when none)."""
        return self._attn.layers if self._attn is not None else ()

    def attention_rows(self, layer: int | None = None) -> np.ndarray:
        """Newest token's attention over the valid KV cells: ``[n_layers, n_head, n_valid]``
        (``layer=None``) or ``[n_head, n_valid]``. See ``AttentionCapture.rows``."""
        if self._attn is None:
            raise UsageError("attention was not requested for this engine", hint="pass attention='last'")
        return self._attn.rows(layer)

    # ------------------------------------------------------------------ lifetime
    def close(self) -> None:
        if self._batch is not None:
            llama.llama_batch_free(self._batch)
            self._batch = None
        if self._ctx:
            llama.llama_free(self._ctx)
            self._ctx = None
        if self._model:
            if self._parent is None:  # a shared model belongs to the engine that loaded it
                llama.llama_model_free(self._model)
            self._model = None
            self._parent = None

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass
