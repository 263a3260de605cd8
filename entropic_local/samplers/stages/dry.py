"""``dry``: llama.cpp's DRY repetition penalty ("Don't Repeat Yourself", pi6am): tokens that
would extend a sequence already seen in the recent history are penalised exponentially in
the length of the repetition. The kernel is ``kernels/dry.py``."""

from __future__ import annotations

import copy
import threading
from typing import Any

import numpy as np

from ... import kernels as _k
from ..candidates import Candidates
from ..flags import Flag
from ..params import Param, TextListParam
from ..stage import Stage

__all__ = ["DRY", "DEFAULT_BREAKERS", "resolve_breakers"]

DEFAULT_BREAKERS = ("\n", ":", '"', "*")   # llama.cpp's common_params_sampling defaults
MAX_BREAKER_BYTES = 40                      # llama.cpp truncates a breaker to this
MAX_TAIL_TOKENS = 20                        # and its tail tokenisation to this

_cache: dict[tuple, tuple] = {}
_lock = threading.Lock()


def resolve_breakers(texts: list[bytes], tokenize, breakers: tuple[str, ...]) -> list[tuple[int, tuple[int, ...]]]:
    """Sequence breakers as (head token, tail tokens) pairs, as llama.cpp's
    ``get_overlapping_token_sequences`` makes them: a token whose text contains the breaker
    is a head with an empty tail; a token whose text ends with a proper prefix of the
    breaker is a head whose tail is the tokenisation (no specials) of the rest of the
    breaker, at most 20 tokens. ``texts[t]`` is token t's text as llama.cpp's detokenizer
    renders it alone (special tokens as text); breakers are cut to 40 bytes; empty ones are
    skipped."""
    out: list[tuple[int, tuple[int, ...]]] = []
    seen: set[tuple[int, tuple[int, ...]]] = set()
    for b in breakers:
        s = b.encode("utf-8", "surrogatepass")[:MAX_BREAKER_BYTES]
        if not s:
            continue
        first = s[:1]
        tails: dict[int, tuple[int, ...]] = {}
        for t, word in enumerate(texts):
            if s in word:
                out.append((t, ()))
                continue
            if first not in word:
                continue
            wl, sl = len(word), len(s)
            pos = word.find(first)
            while pos >= 0:
                i = 1
                match = True
                while i < sl and i + pos < wl:
                    if word[pos + i] != s[i]:
                        match = False
                        break
                    i += 1
                if match:
                    rest = s[i:]
                    key = (t, rest)
                    if key not in tails:
                        tails[key] = tuple(int(x) for x in tokenize(rest))[:MAX_TAIL_TOKENS]
                    tail = tails[key]
                    if (t, tail) not in seen:
                        seen.add((t, tail))
                        out.append((t, tail))
                pos = word.find(first, pos + 1)
    return out


def _tables(pairs, n_vocab: int):
    """CSR arrays over head tokens: head_ptr (n_vocab + 1), tail_ptr, tails, single."""
    pairs = sorted(pairs, key=lambda e: e[0])
    head_ptr = np.zeros(n_vocab + 1, dtype=np.int32)
    tail_ptr = np.zeros(len(pairs) + 1, dtype=np.int32)
    tails = np.zeros(sum(len(t) for _, t in pairs), dtype=np.int32)
    single = np.zeros(n_vocab, dtype=np.bool_)
    k = 0
    for e, (head, tail) in enumerate(pairs):
        if head < n_vocab:
            head_ptr[head + 1] += 1
            if not tail:
                single[head] = True
        tails[k:k + len(tail)] = tail
        k += len(tail)
        tail_ptr[e + 1] = k
    np.cumsum(head_ptr, out=head_ptr)
    return head_ptr, tail_ptr, tails, single


class DRY(Stage):
    """DRY over the last ``last_n`` accepted tokens (llama.cpp semantics and defaults).

    A candidate that would extend a repetition of length ``L ≥ allowed_length`` of the
    history gets ``z ← z − multiplier · base^(L − allowed_length)``; a repetition never
    crosses a sequence breaker (``breakers``: texts, resolved through the model's tokenizer
    by ``bind`` exactly as llama.cpp resolves them; a single-token breaker itself is never
    penalised). ``multiplier = 0`` or ``last_n = 0`` is off; ``last_n = -1`` is an
    unbounded window (llama.cpp's "context size"). Before ``bind`` the breakers are not
    resolved and act as none. ``info()`` reports ``dry_penalised``, the candidates
    penalised this step. State: the history window; ``reset`` clears it, ``clone`` copies it
    (the resolved breakers are shared).
    """

    name = "dry"
    params = (
        Param("multiplier", float, 0.0, 0.0),
        Param("base", float, 1.75, 1.0),
        Param("allowed_length", int, 2, 0),
        Param("last_n", int, 64, -1),
        TextListParam("breakers", DEFAULT_BREAKERS),
    )
    main = "multiplier"
    order = 1.5
    flags = (
        Flag("dry_multiplier", "multiplier", float, "--dry-multiplier",
             "DRY: penalise tokens that extend a repetition by multiplier * base^(length - "
             "allowed length) (0: off).", off=0.0),
        Flag("dry_base", "base", float, "--dry-base", "DRY base (default 1.75)."),
        Flag("dry_allowed_length", "allowed_length", int, "--dry-allowed-length",
             "DRY: repetitions up to this length are free (default 2)."),
        Flag("dry_penalty_last_n", "last_n", int, "--dry-penalty-last-n",
             "DRY: recent tokens scanned for repetitions (default 64; 0: off, -1: all).", off=0),
        Flag("dry_sequence_breakers", "breakers", str, "--dry-sequence-breaker",
             "DRY: a text that breaks repetitions (repeatable; replaces the defaults "
             "'\\n', ':', '\"', '*'; 'none': no breakers).", multiple=True),
    )

    def __init__(self, multiplier: float = 0.0, base: float = 1.75, allowed_length: int = 2,
                 last_n: int = 64, breakers: tuple[str, ...] = DEFAULT_BREAKERS):
        self._set(multiplier=multiplier, base=base, allowed_length=allowed_length,
                  last_n=last_n, breakers=breakers)
        self._hist = np.zeros(max(16, 2 * self.last_n), dtype=np.int32)
        self._len = 0
        self._tables: tuple | None = None
        self._bound_to: Any = None
        self._best = np.zeros(0, dtype=np.int32)
        self.last_penalised = 0

    @property
    def active(self) -> bool:
        return self.multiplier != 0.0 and self.last_n != 0

    # -- the model's tokenizer --------------------------------------------------------------
    def bind(self, model: Any) -> "DRY":
        """Resolve the breakers through ``model``'s tokenizer (cached per model file)."""
        engine = getattr(model, "engine", model)
        key = (str(getattr(engine, "path", "")), int(engine.n_vocab), self.breakers)
        if self._bound_to == key:
            return self
        with _lock:
            tables = _cache.get(key)
            if tables is None:
                pairs = resolve_breakers(
                    engine.token_texts(),
                    lambda b: engine.tokenize(b, add_special=False, parse_special=False),
                    self.breakers)
                tables = _tables(pairs, int(engine.n_vocab))
                _cache[key] = tables
        self._tables = tables
        self._bound_to = key
        return self

    def bind_tokens(self, sequences, n_vocab: int) -> "DRY":
        """Use breakers given as token sequences (head token first) instead of resolving
        the text ``breakers`` through a tokenizer (llama.cpp's ``llama_sampler_init_dry_testing``)."""
        pairs = [(int(q[0]), tuple(int(t) for t in q[1:])) for q in sequences if len(q)]
        self._tables = _tables(pairs, int(n_vocab))
        self._bound_to = ("tokens", tuple(pairs))
        return self

    # -- history ------------------------------------------------------------------------------
    @property
    def window(self) -> tuple[int, ...]:
        """The history the next step looks at, oldest first."""
        m = self._len if self.last_n < 0 else min(self._len, self.last_n)
        return tuple(int(t) for t in self._hist[self._len - m:self._len])

    def accept(self, token: int) -> None:
        if not self.active:
            return
        h = self._hist
        if self._len == h.shape[0]:
            if self.last_n > 0:
                keep = self.last_n - 1
                h[:keep] = h[self._len - keep:self._len]
                self._len = keep
            else:
                grown = np.zeros(2 * h.shape[0], dtype=np.int32)
                grown[: self._len] = h[: self._len]
                self._hist = h = grown
        h[self._len] = int(token)
        self._len += 1

    def reset(self, seed: int | None = None) -> None:
        self._len = 0
        self.last_penalised = 0

    def take_state(self, old: Stage) -> None:
        if isinstance(old, DRY):
            for t in old.window:
                self.accept(t)
            if old.breakers == self.breakers:
                self._tables, self._bound_to = old._tables, old._bound_to

    def clone(self) -> "DRY":
        new = copy.copy(self)
        new._hist = self._hist.copy()
        new._best = self._best.copy()
        return new

    # -- the step -----------------------------------------------------------------------------
    def apply(self, cands: Candidates) -> None:
        self.last_penalised = 0
        if not self.active:
            return
        m = self._len if self.last_n < 0 else min(self._len, self.last_n)
        if m <= self.allowed_length:
            return
        v = cands.n_vocab
        if self._tables is None or self._tables[0].shape[0] != v + 1:
            self._tables = _tables([], v)
            self._bound_to = None
        if self._best.shape[0] != v:
            self._best = np.full(v, -1, dtype=np.int32)
        head_ptr, tail_ptr, tails, single = self._tables
        hist = self._hist[self._len - m:self._len]
        n = int(_k.dry_penalties(cands.ids, cands.logits, cands.n, cands.identity, hist, m,
                                 self.multiplier, self.base, self.allowed_length, head_ptr,
                                 tail_ptr, tails, single, self._best))
        self.last_penalised = n
        if n:
            cands.sorted = False

    def info(self) -> dict[str, Any]:
        return {"dry_penalised": self.last_penalised}
