"""What the commands share: their click options, reading input as UTF-8, writing output
whole under signals, refusing an output path before any work."""

from __future__ import annotations

import contextlib
import functools
import io
import os
import signal
import sys
import tempfile
from typing import Any, Callable, TextIO

import click

from ..errors import Terminated, UsageError

__all__ = ["CONTEXT_SETTINGS", "verbose_option", "is_verbose", "model_options", "engine_options", "n_ctx_option",
           "sampler_options", "sampler_help", "read_text_file", "named_specs", "ATTENTION_HELP", "SEED_HELP", "clean_text", "read_stdin",
           "strip_final_newline", "stdin_text",
           "signals_deferred", "on_sigterm", "check_writable", "show_engine"]

CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"], "max_content_width": 100}

_verbose = False


def _set_verbose(ctx: click.Context, param: click.Parameter, value: bool) -> bool:
    global _verbose
    if value:
        _verbose = True
    return value


def is_verbose() -> bool:
    """Whether ``--verbose`` was given (``main`` then prints tracebacks)."""
    return _verbose


def verbose_option(help: str = "Show llama.cpp's log and full tracebacks on errors.") -> Callable:
    return click.option("--verbose", "-v", is_flag=True, callback=_set_verbose, expose_value=True,
                        help=help)


def _apply(f: Callable, opts: list[Callable]) -> Callable:
    for o in reversed(opts):
        f = o(f)
    return f


class ContextSize(click.ParamType):
    """``--n-ctx``: 0 (the model's training context) or at least 16 tokens."""

    name = "N"

    def convert(self, value, param, ctx):
        if isinstance(value, int):
            n = value
        else:
            try:
                n = int(str(value).strip())
            except ValueError:
                self.fail(f"{value!r} is not a whole number of tokens", param, ctx)
        if n < 0 or 0 < n < 16:
            self.fail(f"{n} is not 0 (the model's training context) or at least 16", param, ctx)
        return n


def n_ctx_option(help_text: str = "Context size in tokens") -> Callable:
    return click.option(
        "--n-ctx", type=ContextSize(), default=None,
        help=f"{help_text}: 0 for the model's training context, else at least 16, rounded up to a "
             "multiple of 256 (default: min(4096, the training context)).")


ATTENTION_HELP = {
    "steps": "Capture these layers' attention (turns flash attention off): attention entropy, "
             "varentropy, agreement and interaction strength for every token, in the output and "
             "for the samplers that read them.",
    "scores": "Capture these layers' attention (turns flash attention off) for the samplers that "
              "read it (entropix) while the text is scored.",
}


class GpuLayers(click.ParamType):
    """``-ngl``: a number of layers, or ``all`` (also -1)."""

    name = "N|all"

    def convert(self, value, param, ctx):
        if isinstance(value, int):
            return value
        v = str(value).strip().lower()
        if v in ("all", "max"):
            return -1
        try:
            return int(v)
        except ValueError:
            self.fail(f"{value!r} is not a number of layers or 'all'", param, ctx)


ENGINE_KEYS = ("n_gpu_layers", "flash_attn", "repack", "n_batch", "n_ubatch")


def engine_options(f: Callable) -> Callable:
    """llama.cpp's own engine flags (``-ngl``, ``-fa``, ``--repack``, ``-b``, ``-ub``). The
    command gets ``engine_opts``: the ones given, by ``load()`` keyword; the rest are chosen for
    the machine (``entropic-local info`` shows the choice and why)."""

    @functools.wraps(f)
    def command(*args: Any, **kw: Any) -> Any:
        given = {k: kw.pop(k) for k in ENGINE_KEYS}
        return f(*args, engine_opts={k: v for k, v in given.items() if v is not None}, **kw)

    return _apply(command, [
        click.option("--n-gpu-layers", "-ngl", "n_gpu_layers", type=GpuLayers(), default=None,
                     help="Layers to offload to the GPU: a number or 'all' (-1: all; default 0)."),
        click.option("--flash-attn", "-fa", "flash_attn", type=click.Choice(["on", "off", "auto"]), default=None,
                     help="Flash attention (default: off: exact entropy; see README, Hardware)."),
        click.option("--repack/--no-repack", "repack", default=None,
                     help="Weights in the CPU backend's extra buffer types (AMX, CPU_REPACK...): its fast "
                          "kernels (default: on where the probe found them safe)."),
        click.option("--batch-size", "-b", "n_batch", type=click.IntRange(min=1), default=None,
                     help="Most tokens per llama_decode (default 512)."),
        click.option("--ubatch-size", "-ub", "n_ubatch", type=click.IntRange(min=1), default=None,
                     help="Most rows per matrix product (default: the batch size, or 1 where only "
                          "one-row products are safe)."),
    ])


def model_options(f: Callable | None = None, *, attention: str | None = "steps") -> Callable:
    """Options shared by every command that loads a model (``engine_options`` included).
    ``@model_options`` or ``@model_options(attention="scores")`` (what ``--attention`` does
    there: ``ATTENTION_HELP``; None: no ``--attention``)."""
    opts = [
        click.option("-m", "--model", default=None, metavar="MODEL",
                     help="A .gguf path or a name from models.txt (default: smollm2-135m)."),
        n_ctx_option(),
        click.option("-t", "--threads", type=click.IntRange(min=1), default=None,
                     help="CPU threads (default: $ENTROPIC_LOCAL_THREADS, else the number of physical cores)."),
        engine_options,
    ]
    if attention is not None:
        opts.append(click.option("--attention", default=None, metavar="last|all|3,7,11",
                                 help=ATTENTION_HELP[attention]))
    if f is None:
        return lambda g: _apply(g, opts)
    return _apply(f, opts)


SEED_HELP = {
    "generate": "Random seed (default: a fresh one, reported in --json output).",
    "chat": "Random seed for every reply (default: a fresh one each reply; /set seed changes it).",
    "serve": "Seed of every request that sends none (default: a fresh one per request, reported in "
             "its 'entropic' summary).",
    "batch": "Base seed: each line's seed is derived from it and the line's custom_id (default: "
             "a fresh one per line, reported in its row).",
}


def sampler_help() -> str:
    """``--sampler``'s help, listing the presets that exist (``samplers.presets.PRESETS``)."""
    from ..samplers.presets import PRESETS

    return ("A chain spec such as 'top_k=40,top_p=0.95,min_p=0.05,temp=0.8' or a preset: "
            + ", ".join(PRESETS) + ".")


def sampler_options(f: Callable | None = None, *, seed: str = "generate") -> Callable:
    """``--sampler SPEC``, every llama.cpp sampling flag the stages declare (``--temp``,
    ``--top-k``...: ``samplers.registry.flag_table``) and ``--seed`` (its help: ``SEED_HELP``).
    The command gets ``sampler`` and ``flags`` (the flags given, by key) instead of one
    argument per flag. ``@sampler_options`` or ``@sampler_options(seed="batch")``."""
    if f is None:
        return lambda g: sampler_options(g, seed=seed)
    from ..samplers.registry import flag_table

    table = [flag for flag, _ in flag_table().values()]

    @functools.wraps(f)
    def command(*args: Any, **kw: Any) -> Any:
        given = {fl.key: _flag_value(fl, kw.pop(fl.key)) for fl in table}
        return f(*args, flags={k: v for k, v in given.items() if v is not None}, **kw)

    return _apply(command, [
        click.option("-s", "--sampler", default="llama", show_default=True, metavar="SPEC",
                     help=sampler_help()),
        *(click.option(fl.cli, fl.key, type=fl.kind, default=None, multiple=fl.multiple,
                       help=fl.help) for fl in table),
        click.option("--seed", type=click.IntRange(min=0), default=None, help=SEED_HELP[seed]),
    ])


def _flag_value(flag: Any, value: Any) -> Any:
    """A repeatable text flag's values as a tuple (``none`` clears those before it, as in
    llama.cpp; not given: None); other flags as click parsed them."""
    if not flag.multiple:
        return value
    if not value:
        return None
    out: list[str] = []
    for v in value:  # as llama.cpp: "none" clears the breakers given so far
        if v == "none":
            out.clear()
        else:
            out.append(v)
    return tuple(out)


def clean_text(s: str) -> str:
    """Text from the command line or stdin with bytes that are not UTF-8 (Python's surrogate
    escapes) as U+FFFD, so that every output (JSON, traces, saved chats) is valid UTF-8."""
    try:
        return s.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    except UnicodeEncodeError:  # lone surrogates of another kind
        return s.encode("utf-8", "surrogatepass").decode("utf-8", "replace")


def read_stdin() -> str:
    """All of standard input as text, whatever the locale: invalid UTF-8 becomes U+FFFD."""
    buf = getattr(sys.stdin, "buffer", None)
    if buf is None:  # a replaced stdin (tests): already text
        return clean_text(sys.stdin.read())
    return buf.read().decode("utf-8", errors="replace")


def read_text_file(path: str) -> str:
    """A text file's contents as UTF-8 (invalid bytes as U+FFFD); ``-`` reads stdin."""
    if path == "-":
        return read_stdin()
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read()
    except OSError as e:
        raise UsageError(f"cannot read {path}: {e.strerror}", hint="check the path") from None


def named_specs(items: tuple[str, ...] | list[str]) -> dict[str, str]:
    """Repeated ``-s NAME=SPEC`` values as ``{name: spec}``, in order."""
    chosen: dict[str, str] = {}
    for item in items:
        name, sep, spec = item.partition("=")
        if not sep or not name or not spec:
            raise UsageError(f"--sampler wants NAME=SPEC, got '{item}'")
        chosen[name] = spec
    return chosen


def stdin_text() -> TextIO:
    """Standard input as a UTF-8 text stream whatever the locale; invalid bytes become U+FFFD."""
    buf = getattr(sys.stdin, "buffer", None)
    if buf is None:
        return sys.stdin
    return io.TextIOWrapper(buf, encoding="utf-8", errors="replace")


def strip_final_newline(text: str) -> str:
    """``text`` without one final line break (``\n`` or ``\r\n``): ``echo PROMPT |`` adds one
    that is not part of the prompt (a shell's ``$(...)`` drops it too)."""
    if text.endswith("\r\n"):
        return text[:-2]
    if text.endswith("\n"):
        return text[:-1]
    return text


@contextlib.contextmanager
def signals_deferred():
    """Hold SIGINT/SIGTERM until the block is done (they are delivered right after it), so an
    interrupt never cuts a line of output in half."""
    sigs = {signal.SIGINT, signal.SIGTERM}
    old = signal.pthread_sigmask(signal.SIG_BLOCK, sigs)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


def on_sigterm(signum: int, frame: Any) -> None:
    """SIGTERM stops like Ctrl-C: what was made is written, then the exit status is 143."""
    raise Terminated()


def check_writable(path: str) -> None:
    """Fail before any work if an output file cannot be written (missing or read-only dir)."""
    parent = os.path.dirname(os.path.abspath(path)) or "."
    fix = "create the directory or choose another path"
    if not os.path.isdir(parent):
        raise UsageError(f"cannot write {path}: no such directory {parent}", hint=fix)
    if os.path.exists(path) and not os.access(path, os.W_OK):
        raise UsageError(f"cannot write {path}: permission denied", hint=fix)
    try:  # a real probe: permissions, read-only mounts and pseudo file systems, root included
        with tempfile.NamedTemporaryFile(dir=parent, prefix=".entropic-local-probe-"):
            pass
    except OSError as e:
        raise UsageError(f"cannot write {path}: {(e.strerror or str(e)).lower()}", hint=fix) from None


def show_engine(settings: dict) -> None:
    """With ``--verbose``: the engine settings a command runs with (``Engine.settings``) as one
    stderr line. Flash attention changes the logits (and so the text for a seed), and the
    attention hook needs it off: this line says which was used."""
    if not _verbose:
        return
    fa = settings.get("flash_attn")
    parts = [f"flash attention {fa}", "repack " + ("on" if settings.get("repack") else "off"),
             f"batch {settings.get('n_batch')}/ubatch {settings.get('n_ubatch')}",
             f"{settings.get('n_threads')} thread" + ("" if settings.get("n_threads") == 1 else "s")]
    if settings.get("n_gpu_layers"):
        parts.append(f"{settings['n_gpu_layers']} gpu layers")
    reason = settings.get("reason")
    click.echo("entropic-local: engine: " + ", ".join(parts) + (f" ({reason})" if reason else ""), err=True)
