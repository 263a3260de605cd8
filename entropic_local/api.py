"""The Python API: ``load()`` a model, then ``generate`` / ``stream`` from it.

    >>> import entropic_local as el
    >>> model = el.load()                       # the default model (SmolLM2-135M-Instruct)
    >>> g = model.generate("The capital of France is", max_tokens=16, seed=1)
    >>> g.text, g.steps[0].entropy, g.timings.gen_tps

Option names follow llama-cpp-python where they mean the same (``n_ctx``, ``n_threads``,
``n_gpu_layers``, ``seed``).
"""

from __future__ import annotations

import contextlib
import numbers
import os
import secrets
import threading
from pathlib import Path
from typing import Iterator

from .decode.batched import BatchRequest, Prepared, batched_generations, cache_size
from .decode.constrained import Constraint
from .decode.sequence import Generation, Step
from .decode.single import DecodeLoop
from .engine import Engine, set_verbose
from .errors import EntropicError, UsageError
from .registry import check_gguf_header, model_label, resolve_model
from .samplers.candidates import Candidates
from .samplers.chain import SamplerChain

DEFAULT_SAMPLER = "llama"


def load(
    model: str | os.PathLike | None = None,
    *,
    n_ctx: int | None = None,
    n_threads: int | None = None,
    n_threads_batch: int | None = None,
    n_gpu_layers: int | str = 0,
    n_batch: int | None = None,
    n_ubatch: int | None = None,
    seed: int | None = None,
    flash_attn: bool | str | None = None,
    repack: bool | None = None,
    workload: str = "single",
    attention: str | list[int] | None = None,
    attention_entmax: float | str | None = None,
    verbose: bool = False,
    download: bool = True,
) -> "Model":
    """Load a GGUF model: a path, a name from models.txt, or None for the default model.

    ``n_ctx`` defaults to min(4096, the model's training context); ``n_threads`` to the
    number of physical cores; ``seed`` is the default for every ``generate`` call (a fresh
    random seed per call when None, reported in ``Generation.seed``). ``attention``
    (``"last"``, ``"all"``, a list of layer ids or ``"3,7,11"``) captures the post-softmax
    attention of those layers while decoding (flash attention is switched off for it) and
    adds ``attn_entropy``, ``attn_varentropy``, ``agreement`` and ``interaction_strength``
    (nats; of the last captured layer) to every step. ``attention_entmax`` (experimental;
    ``1.5``, ``"adaptive"``, ``"off"``...) replaces those layers' softmax attention (all
    layers when ``attention`` is None) by α-entmax of the same scores while decoding; see
    ``engine/attention_entmax.py`` and ``model.engine.attention.entmax_stats()``.

    Engine settings, in llama.cpp's words (None: chosen for this machine, see
    ``engine/config.py`` and ``model.engine.settings()``): ``flash_attn`` (``"on"``,
    ``"off"``, ``"auto"`` or a bool; default off), ``repack`` (the CPU backend's extra buffer
    types, llama.cpp's ``--repack``), ``n_batch`` / ``n_ubatch`` (``-b`` / ``-ub``),
    ``n_gpu_layers`` (a count, ``"all"`` or -1). ``workload`` (``"single"`` or ``"batch"``)
    says what the model will mostly do, for the choice of the fastest safe path.
    """
    set_verbose(verbose)
    path = resolve_model(model, download=download)
    check_gguf_header(path)
    engine = Engine(
        path,
        n_ctx=n_ctx,
        n_batch=n_batch,
        n_ubatch=n_ubatch,
        repack=repack,
        workload=workload,
        n_threads=n_threads,
        n_threads_batch=n_threads_batch,
        n_gpu_layers=n_gpu_layers,
        flash_attn=flash_attn,
        attention=attention,
        attention_scores=attention is not None,
        attention_entmax=attention_entmax,
    )
    return Model(engine, name=model_label(model, path), seed=seed)


def _as_chain(sampler: str | SamplerChain | None) -> SamplerChain:
    if sampler is None:
        return SamplerChain.parse(DEFAULT_SAMPLER)
    if isinstance(sampler, SamplerChain):
        return sampler
    if isinstance(sampler, str):
        return SamplerChain.parse(sampler)
    raise UsageError(f"sampler must be a spec string or a SamplerChain, not {type(sampler).__name__}")


class Model:
    """A loaded model with its context. Calls on one Model are serialised by a lock."""

    def __init__(self, engine: Engine, *, name: str | None = None, seed: int | None = None):
        self.engine = engine
        self.path: Path = engine.path
        self.name = name or engine.path.stem
        self.seed = seed
        self._cands = Candidates(engine.n_vocab)
        self._lock = threading.Lock()
        self._owner: int | None = None  # the thread whose stream holds the lock
        self._batch: Engine | None = None  # the batch context, made on first use

    # -------------------------------------------------------------- properties
    @property
    def n_vocab(self) -> int:
        return self.engine.n_vocab

    @property
    def n_ctx(self) -> int:
        return self.engine.n_ctx

    @property
    def n_threads(self) -> int:
        return self.engine.n_threads

    def tokenize(self, text: str, add_special: bool = True, parse_special: bool = True) -> list[int]:
        self._check_open()
        return self.engine.tokenize(text, add_special=add_special, parse_special=parse_special)

    def detokenize(self, tokens: list[int]) -> str:
        self._check_open()
        return self.engine.detokenize(tokens)

    # -------------------------------------------------------------- one call at a time
    def _check_open(self) -> None:
        if getattr(self.engine, "_model", None) is None:
            raise UsageError("the model is closed", hint="load it again with entropic_local.load()")

    @contextlib.contextmanager
    def hold(self) -> Iterator[None]:
        """Hold the model for one call (``with model.hold(): ...``, to drive ``model.engine``
        directly). Another thread waits its turn; the thread that is still iterating a
        stream of this model, or any call on a closed model, is refused with a
        ``UsageError`` (never a deadlock, never a crash inside llama.cpp)."""
        me = threading.get_ident()
        if self._owner == me:
            raise UsageError("this thread is still iterating another stream of this model",
                             hint="finish or close that stream first (a for loop over it ends it)")
        with self._lock:
            self._check_open()
            self._owner = me
            try:
                yield
            finally:
                self._owner = None

    # -------------------------------------------------------------- generation
    def constraint(self, grammar: str | None = None, json_schema=None) -> Constraint | None:
        """The grammar constraint of one generation: ``grammar`` (GBNF text) or
        ``json_schema`` (a dict or its JSON text; ``"json_object"``: any JSON object), parsed
        by llama.cpp's grammar engine; None when neither is given. Raises ``GrammarError``
        for a grammar that does not parse, a schema the converter cannot handle, or a
        grammar no token can begin."""
        if grammar is None and json_schema is None:
            return None
        if grammar is not None and json_schema is not None:
            raise UsageError("give a grammar or a JSON schema, not both")
        from .engine.grammar import Grammar, json_object_grammar, json_schema_grammar

        if json_schema is not None:
            grammar = json_object_grammar() if json_schema == "json_object" else json_schema_grammar(json_schema)
        self._check_open()
        c = Constraint(Grammar(self.engine, grammar), self.engine.is_eog)
        c.check_start(self.n_vocab)
        return c

    def _prepare(self, prompt, max_tokens, sampler, seed):
        self._check_open()
        if isinstance(prompt, str):
            if not prompt:
                raise UsageError("empty prompt", hint="give some text to continue")
            tokens = None
        elif isinstance(prompt, (list, tuple)) and all(isinstance(t, numbers.Integral) for t in prompt):
            if not prompt:
                raise UsageError("empty prompt: no tokens")
            bad = [t for t in prompt if not 0 <= t < self.n_vocab]
            if bad:
                raise UsageError(f"token id {bad[0]} is outside the vocabulary (0..{self.n_vocab - 1})")
            tokens = [int(t) for t in prompt]
        else:
            raise UsageError(f"prompt must be a string or a list of token ids, not {type(prompt).__name__}")
        if int(max_tokens) < 1:
            raise UsageError(f"max_tokens must be at least 1, got {max_tokens}")
        chain = _as_chain(sampler)
        if seed is None:
            seed = self.seed if self.seed is not None else secrets.randbits(32)
        seed = int(seed)
        if not 0 <= seed < 2**64:
            raise UsageError(f"seed must be between 0 and 2**64-1, got {seed}")
        # Stages that depend on the model (Entropix: the clarify token through this
        # tokenizer, thresholds for this model family) bind to it before generating.
        for stage in chain.stages:
            stage.bind(self)
        chain.reset(seed)
        if tokens is None:
            tokens = self.engine.tokenize(prompt, add_special=True, parse_special=True)
        # The prompt is history too (as in llama.cpp and llama-cpp-python): repetition
        # penalties count its tokens.
        for t in tokens:
            chain.accept(t)
        return chain, seed, tokens

    def stream(
        self,
        prompt: str | list[int],
        *,
        max_tokens: int = 256,
        sampler: str | SamplerChain | None = None,
        seed: int | None = None,
        stop: list[str] | str | None = None,
        grammar: str | None = None,
        json_schema=None,
    ) -> "Stream":
        """Generate lazily: iterate to get ``Step`` records as tokens are made.

        ``prompt`` is text (tokenised with the model's BOS and with special tokens parsed,
        as llama.cpp does) or a list of token ids used as they are. ``grammar`` (GBNF) or
        ``json_schema`` constrains the text (see ``constraint``; per-step costs in each
        Step's ``grammar_*`` fields, a summary in ``Generation.constraint``).

        The returned ``Stream`` has ``.generation`` once iteration has ended.
        """
        if isinstance(stop, str):
            stop = [stop]
        constraint = self.constraint(grammar, json_schema)
        chain, seed, tokens = self._prepare(prompt, max_tokens, sampler, seed)
        loop = DecodeLoop(self.engine, self._cands, chain, tokens, max_tokens=int(max_tokens), stop=stop,
                          constraint=constraint)
        text = prompt if isinstance(prompt, str) else self.engine.detokenize(tokens)
        return Stream(self, loop, text, seed, chain)

    def generate(
        self,
        prompt: str | list[int],
        *,
        max_tokens: int = 256,
        sampler: str | SamplerChain | None = None,
        seed: int | None = None,
        stop: list[str] | str | None = None,
        grammar: str | None = None,
        json_schema=None,
    ) -> Generation:
        """Generate a completion of ``prompt``; see ``Generation`` for what comes back."""
        s = self.stream(prompt, max_tokens=max_tokens, sampler=sampler, seed=seed, stop=stop,
                        grammar=grammar, json_schema=json_schema)
        for _ in s:
            pass
        assert s.generation is not None
        return s.generation

    # -------------------------------------------------------------- batches
    def prepare(self, request, index: int = 0, *, max_tokens: int = 256,
                sampler: str | SamplerChain | None = None, seed: int | None = None,
                stop: list[str] | str | None = None, grammar: str | None = None,
                json_schema=None) -> Prepared:
        """Check and tokenise one batch request (a prompt or a ``BatchRequest``; its own
        settings win over the keyword defaults). Raises the typed error of a bad request
        (``UsageError``, ``InvalidSamplerSpec``, ``ContextOverflow``) before anything runs."""
        r = request if isinstance(request, BatchRequest) else BatchRequest(request)
        mt = r.max_tokens if r.max_tokens is not None else max_tokens
        smp = r.sampler if r.sampler is not None else sampler
        if isinstance(smp, SamplerChain):
            smp = smp.clone()  # one chain (and random stream) per sequence
        st = r.stop if r.stop is not None else stop
        if isinstance(st, str):
            st = [st]
        if r.grammar is not None or r.json_schema is not None:
            grammar, json_schema = r.grammar, r.json_schema
        constraint = self.constraint(grammar, json_schema)
        chain, sd, tokens = self._prepare(r.prompt, mt, smp, r.seed if r.seed is not None else seed)
        self.engine.check_fits(tokens)
        text = r.prompt if isinstance(r.prompt, str) else self.engine.detokenize(tokens)
        return Prepared(index, text, tokens, chain, sd, int(mt), st, constraint)

    def iter_batch(
        self,
        prompts,
        *,
        sampler: str | SamplerChain | None = None,
        max_tokens: int = 256,
        seeds: list[int | None] | None = None,
        stop: list[str] | str | None = None,
        parallel: int = 8,
        grammar: str | None = None,
        json_schema=None,
    ) -> Iterator[tuple[int, Generation]]:
        """Generate for many prompts at once; yields ``(index, Generation)`` as each one
        finishes (continuous batching: ``parallel`` sequences decoded together, see
        ``entropic_local.decode.batched``). ``prompts`` holds texts, token-id lists or
        ``BatchRequest`` objects (per-prompt settings); ``seeds[i]`` seeds prompt i (else
        the model's seed, else a random one, reported in ``Generation.seed``). Every
        request is checked before anything runs."""
        prepared = self._prepare_all(prompts, sampler, max_tokens, seeds, stop, grammar, json_schema)
        return self.run_prepared(prepared, parallel)

    def generate_batch(
        self,
        prompts,
        *,
        sampler: str | SamplerChain | None = None,
        max_tokens: int = 256,
        seeds: list[int | None] | None = None,
        stop: list[str] | str | None = None,
        parallel: int = 8,
        grammar: str | None = None,
        json_schema=None,
    ) -> list[Generation]:
        """``iter_batch``, collected: the generations in input order."""
        out: list[Generation | None] = [None] * len(prompts)
        for i, g in self.iter_batch(prompts, sampler=sampler, max_tokens=max_tokens, seeds=seeds,
                                    stop=stop, parallel=parallel, grammar=grammar,
                                    json_schema=json_schema):
            out[i] = g
        return out  # type: ignore[return-value]

    def _prepare_all(self, prompts, sampler, max_tokens, seeds, stop, grammar=None,
                     json_schema=None) -> list[Prepared]:
        prompts = list(prompts)
        if seeds is not None and len(seeds) != len(prompts):
            raise UsageError(f"{len(seeds)} seeds for {len(prompts)} prompts")
        return [self.prepare(p, i, max_tokens=max_tokens, sampler=sampler,
                             seed=None if seeds is None else seeds[i], stop=stop,
                             grammar=grammar, json_schema=json_schema)
                for i, p in enumerate(prompts)]

    def batch_engine(self, parallel: int, n_cells: int) -> Engine:
        """The context batches run on: ``parallel`` sequences, ``n_cells`` KV cells, on this
        model's weights. Kept and reused while big enough."""
        be = self._batch
        if be is None or be.n_seq_max < parallel or be.n_ctx < n_cells:
            if be is not None:
                be.close()
                self._batch = None
            self._batch = self.engine.sibling(n_ctx=n_cells, n_seq_max=parallel)
        return self._batch

    def run_prepared(self, prepared: list[Prepared], parallel: int) -> Iterator[tuple[int, Generation]]:
        """Run requests made by ``prepare`` (their ``index`` fields numbered 0..n-1) with
        continuous batching; yields ``(index, Generation)`` as each finishes."""
        parallel = int(parallel)
        if not 1 <= parallel <= 256:
            raise UsageError(f"parallel must be between 1 and 256, got {parallel}")
        if not prepared:
            return iter(())
        n_seq = min(parallel, len(prepared))
        n_cells = cache_size(prepared, n_seq, self.n_ctx)

        def gen():
            with self.hold():  # one call at a time (see hold)
                engine = self.batch_engine(n_seq, n_cells)
                settings = engine.settings()
                for i, g in batched_generations(engine, prepared, parallel=n_seq, n_ctx_seq=self.n_ctx,
                                                model_name=self.name):
                    g.engine = settings
                    yield i, g

        return gen()

    def reset(self) -> None:
        """Forget the KV cache (the next prompt is decoded from scratch)."""
        with self.hold():
            self.engine.clear()

    def close(self) -> None:
        """Free the model; waits for a generation running in another thread. Closing twice
        is harmless; any later call raises ``UsageError``."""
        if self._owner == threading.get_ident():
            raise UsageError("cannot close the model while this thread iterates one of its streams",
                             hint="finish or close the stream first")
        with self._lock:
            self._close()

    def _close(self) -> None:
        if self._batch is not None:
            self._batch.close()
            self._batch = None
        self.engine.close()

    def __enter__(self) -> "Model":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<Model {self.name} n_ctx={self.n_ctx} n_threads={self.n_threads}>"


class Stream:
    """Iterator over the Steps of one generation; ``.generation`` is set when it ends."""

    def __init__(self, model: Model, loop: DecodeLoop, prompt: str, seed: int, chain: SamplerChain):
        self.model = model
        self.loop = loop
        self.prompt = prompt
        self.seed = seed
        self.chain = chain
        self.steps: list[Step] = []
        self.generation: Generation | None = None
        self._started = False

    def __iter__(self) -> Iterator[Step]:
        if self._started:
            raise EntropicError("a Stream can be iterated only once")
        self._started = True
        try:
            with self.model.hold():  # one call at a time (see Model.hold)
                for step in self.loop:
                    self.steps.append(step)
                    yield step
        finally:
            self.generation = self.loop.generation(self.prompt, self.steps, self.seed, self.model.name)
            self.generation.engine = self.model.engine.settings()

    @property
    def tail(self) -> str:
        """Text released after the last step (print it when streaming by hand)."""
        return self.loop.tail
