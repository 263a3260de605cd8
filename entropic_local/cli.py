"""The ``entropic-local`` command: a thin click layer over the Python API.

Every failure is one line on stderr (``entropic-local: error: ...``) and a distinct exit
code (see ``EXIT_CODES`` and the README); ``--verbose`` adds the traceback.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import json
import signal
import sys
import traceback
import warnings

import click

from .errors import EntropicError, Terminated, UsageError

EXIT_CODES = {
    0: "success",
    1: "other error",
    2: "bad usage or argument (also an empty prompt)",
    3: "invalid sampler spec",
    4: "model not found (path, name, or not downloadable)",
    5: "invalid model file (not GGUF, truncated, wrong sha256)",
    6: "prompt does not fit in the context",
    7: "llama.cpp failed to load or decode",
    8: "attention cannot be captured with this model or backend",
    70: "internal error (a bug: please report it with --verbose output)",
    130: "interrupted (Ctrl-C); output so far was written",
    143: "terminated (SIGTERM); output so far was written",
}

_verbose = False


def _set_verbose(ctx, param, value):
    global _verbose
    if value:
        _verbose = True
    return value


verbose_option = click.option(
    "--verbose", "-v", is_flag=True, callback=_set_verbose, expose_value=True,
    help="Show llama.cpp's log and full tracebacks on errors.",
)

_CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


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


def n_ctx_option(help_text: str = "Context size in tokens"):
    return click.option(
        "--n-ctx", type=ContextSize(), default=None,
        help=f"{help_text}: 0 for the model's training context, else at least 16, rounded up to a "
             "multiple of 256 (default: min(4096, the training context)).")


def model_options(f):
    """Options shared by every command that loads a model."""
    opts = [
        click.option("-m", "--model", default=None, metavar="MODEL",
                     help="A .gguf path or a name from models.txt (default: smollm2-135m)."),
        n_ctx_option(),
        click.option("-t", "--threads", type=click.IntRange(min=1), default=None,
                     help="CPU threads (default: $ENTROPIC_LOCAL_THREADS, else the number of physical cores)."),
        click.option("--n-gpu-layers", "-ngl", type=int, default=0, show_default=True,
                     help="Layers to offload to the GPU (-1: all)."),
        click.option("--attention", default=None, metavar="last|all|3,7,11",
                     help="Capture these layers' attention; adds attention entropy, varentropy, "
                          "agreement and interaction strength to each step (flash attention off)."),
    ]
    for o in reversed(opts):
        f = o(f)
    return f


def sampler_options(f):
    """--sampler SPEC, the llama.cpp sampling flags every stage declares (``--temp``,
    ``--top-k``...: ``samplers.registry.flag_table``) and --seed. The command receives
    ``sampler`` and ``flags`` (the flags given, by key) instead of one argument per flag."""
    from .samplers.registry import flag_table

    table = [flag for flag, _ in flag_table().values()]

    @functools.wraps(f)
    def command(*args, **kw):
        given = {fl.key: kw.pop(fl.key) for fl in table}
        return f(*args, flags={k: v for k, v in given.items() if v is not None}, **kw)

    opts = [
        click.option("-s", "--sampler", default="llama", show_default=True, metavar="SPEC",
                     help="A chain spec such as 'top_k=40,top_p=0.95,min_p=0.05,temp=0.8' "
                          "or a preset (greedy, llama)."),
        *(click.option(fl.cli, fl.key, type=fl.kind, default=None, help=fl.help) for fl in table),
        click.option("--seed", type=click.IntRange(min=0), default=None,
                     help="Random seed (default: a fresh one, reported in --json output)."),
    ]
    for o in reversed(opts):
        command = o(command)
    return command


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


def _on_sigterm(signum, frame):
    raise Terminated()


def _check_writable(path: str) -> None:
    """Fail before any work if an output file cannot be written (missing or read-only dir)."""
    import os

    parent = os.path.dirname(os.path.abspath(path)) or "."
    import tempfile

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


@click.group(context_settings=_CONTEXT_SETTINGS)
@click.version_option(package_name="entropic-local", prog_name="entropic-local")
def cli():
    """Run GGUF language models locally with entropy-aware samplers.

    \b
    Examples:
      entropic-local generate "The capital of France is"
      entropic-local generate -m gemma3-270m --sampler greedy --json "Once upon a time"
      echo "Write a haiku" | entropic-local generate -
      entropic-local models
      entropic-local bench
    """


@cli.command(context_settings=_CONTEXT_SETTINGS)
@click.argument("prompt")
@model_options
@sampler_options
@click.option("-n", "--max-tokens", type=click.IntRange(min=1), default=256, show_default=True,
              help="Most tokens to generate.")
@click.option("--stop", multiple=True, metavar="TEXT", help="Stop before this text (repeatable).")
@click.option("--json", "as_json", is_flag=True,
              help="Print one JSON object: text, steps (per-token logprob, entropy, varentropy), timings, seed, sampler.")
@click.option("--trace", "trace_path", type=click.Path(dir_okay=False, writable=True), default=None,
              metavar="FILE", help="Write one JSON line per generated token (every metric, the sampler's action).")
@verbose_option
def generate(prompt, model, n_ctx, threads, n_gpu_layers, attention, sampler, flags, seed, max_tokens, stop,
             as_json, trace_path, verbose):
    """Continue PROMPT with the model, streaming the text to stdout.

    PROMPT '-' reads the prompt from standard input (one final newline is dropped, as a
    shell's $(...) does). Entropy and varentropy are in nats.
    """
    from . import load
    from .samplers import SamplerChain

    prompt = strip_final_newline(read_stdin()) if prompt == "-" else clean_text(prompt)
    if not prompt:
        raise UsageError("empty prompt", hint="give some text to continue, or '-' to read stdin")
    if trace_path is not None:
        _check_writable(trace_path)
    chain = SamplerChain.from_options(sampler, **flags)
    m = load(model, n_ctx=n_ctx, n_threads=threads, n_gpu_layers=n_gpu_layers, attention=attention,
             verbose=verbose)
    stream = m.stream(prompt, max_tokens=max_tokens, sampler=chain, seed=seed, stop=list(stop))
    out = sys.stdout
    interrupted = 0  # the exit status after Ctrl-C (130) or SIGTERM (143)
    shown = 0  # steps whose text is on stdout
    try:
        for step in stream:
            with signals_deferred():  # a signal lands between steps, never inside a write
                if not as_json and step.text:
                    out.write(step.text)
                    out.flush()
                shown += 1
    except KeyboardInterrupt as e:
        interrupted = getattr(e, "exit_code", 130)
    gen = stream.generation
    with signals_deferred():  # a second signal waits until the output is complete
        if as_json:
            d = gen.to_dict()
            if interrupted:
                d["finish_reason"] = "interrupted"
            out.write(json.dumps(d, ensure_ascii=False) + "\n")
        else:  # text made but not shown yet when the signal came, then what was held back
            out.write("".join(s.text for s in gen.steps[shown:]) + stream.tail + "\n")
        out.flush()
        if trace_path is not None:
            try:
                gen.trace(trace_path)
            except OSError as e:
                raise UsageError(f"cannot write the trace to {trace_path}: {e.strerror}",
                                 hint="free some space or choose another path") from None
    if interrupted:
        sys.exit(interrupted)


@cli.command(context_settings=_CONTEXT_SETTINGS)
@click.option("--json", "as_json", is_flag=True, help="Print the registry as JSON.")
def models(as_json):
    """List the model registry (models.txt) and what is on disk."""
    from .registry import list_models

    rows = list_models()
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    import shutil

    click.echo(format_models_table(rows, shutil.get_terminal_size((80, 24)).columns))


def _shorten_middle(text: str, width: int) -> str:
    """``text`` cut to ``width`` characters in the middle (``…``), keeping its last path
    component (the file name) whole when it fits."""
    if len(text) <= width:
        return text
    if width < 2:
        return text[len(text) - max(width, 0):]
    tail = text[text.rstrip("/").rfind("/"):] if "/" in text else ""
    keep_end = len(tail) if 0 < len(tail) <= width - 2 else (width - 1) // 2
    return text[: width - keep_end - 1] + "…" + text[len(text) - keep_end:]


def format_models_table(rows: list[dict], width: int) -> str:
    """The registry as a table that fits ``width`` columns: the local file (home as ``~``,
    long paths cut in the middle) or, for a model not on disk, where it comes from."""
    import os

    home = os.path.expanduser("~")

    def where(r: dict) -> str:
        if r.get("path"):
            p = r["path"]
            return "~" + p[len(home):] if home != "/" and p.startswith(home + os.sep) else p
        kind, _, rest = r["source"].partition(":")
        if kind == "pypi":
            return f"pypi:{rest.split('/')[0]}" + (f" ({r['hint']})" if r.get("hint") else "")
        return r["source"]

    head = ("NAME", "DEFAULT", "ON DISK", "FILE, OR WHERE IT COMES FROM")
    body = [(r["name"], "yes" if r.get("default") else "",
             f"{r['size'] / 1e6:.0f} MB" if r.get("size") else "no", where(r)) for r in rows]
    w0 = max(len(head[0]), *(len(b[0]) for b in body))
    lead = w0 + 2 + len(head[1]) + 2 + len(head[2]) + 2
    room = max(24, width - lead)
    lines = [f"{head[0]:<{w0}}  {head[1]}  {head[2]}  {head[3]}"]
    for name, default, size, loc in body:
        lines.append(f"{name:<{w0}}  {default:<{len(head[1])}}  {size:>{len(head[2])}}  "
                     f"{_shorten_middle(loc, room)}")
    if any(not r.get("path") and r["source"].startswith("hf:") for r in rows):
        import textwrap

        lines += textwrap.wrap("Hugging Face models download on first use (pip install "
                               "'entropic-local[hub]'); --json shows every field.", max(40, width))
    return "\n".join(lines)


@cli.command(context_settings=_CONTEXT_SETTINGS)
@click.option("--models", "model_names", default="smollm2-135m,gemma3-270m", show_default=True,
              help="Comma-separated models to measure.")
@click.option("-n", "--tokens", type=click.IntRange(min=8), default=128, show_default=True,
              help="Tokens generated per run.")
@click.option("--rounds", type=click.IntRange(min=1), default=3, show_default=True,
              help="Alternated rounds per model.")
@click.option("-t", "--threads", type=click.IntRange(min=1), default=None,
              help="CPU threads (default: physical cores).")
@click.option("--kernels/--no-kernels", default=True, show_default=True, help="Also time the kernels alone.")
@click.option("--presets", default="", metavar="P1,P2",
              help="Also compare these sampler presets/specs with `llama` on our side (e.g. aes,thermostat,entropix).")
@click.option("--attention", default=None, metavar="last|all|3,7,11",
              help="Run the --presets on a model capturing these layers' attention (entropix uses it).")
@click.option("--batch", "batch_mode", is_flag=True,
              help="Instead: batched generation (32 prompts x 64 tokens, parallel 1/2/4/8/16) "
                   "against one prompt at a time.")
@click.option("--json", "as_json", is_flag=True, help="Print the figures as JSON.")
@verbose_option
def bench(model_names, tokens, rounds, threads, kernels, presets, attention, batch_mode, as_json, verbose):
    """Measure tokens/s against llama-cpp-python's create_completion, side by side.

    Same model, threads, settings (top-k 40, top-p 0.95, min-p 0.05, temp 0.8) and number
    of tokens, runs alternated in one process; plus the numba kernels on the model's real
    logits.
    """
    from .bench import format_report, run_bench

    names = [n.strip() for n in model_names.split(",") if n.strip()]
    if not names:
        raise UsageError("no models given to --models")
    if batch_mode:
        from .bench_batch import format_batch_report, run_batch_bench

        reports = run_batch_bench(names, rounds=rounds, n_threads=threads, progress=not as_json)
        click.echo(json.dumps(reports, indent=2) if as_json else format_batch_report(reports))
        return
    from .samplers import SamplerChain

    preset_list = [p.strip() for p in presets.split(",") if p.strip()]
    for p in preset_list:
        SamplerChain.parse(p)  # a bad spec fails here, before any model loads
    report = run_bench(names, n_tokens=tokens, rounds=rounds, n_threads=threads,
                       kernels=kernels, verbose=verbose, progress=not as_json, presets=preset_list,
                       attention=attention)
    click.echo(json.dumps(report, indent=2) if as_json else format_report(report))


@cli.command(name="eval", context_settings=_CONTEXT_SETTINGS)
@click.argument("text_file", type=click.Path(dir_okay=False, allow_dash=True))
@model_options
@click.option("-n", "--max-tokens", type=click.IntRange(min=1), default=None,
              help="Score at most this many tokens of the text.")
@click.option("-s", "--sampler", "samplers", multiple=True, metavar="NAME=SPEC",
              help="A sampler to score (repeatable; default: softmax, top-k, top-p, min-p, entmax, aes, thermostat...).")
@click.option("--attention-entmax", "attention_entmax", default=None, metavar="ALPHA|adaptive",
              help="Experimental: α-entmax instead of softmax attention in the --attention layers "
                   "(default all), e.g. 1.5 or adaptive; reports the attention sparsity.")
@click.option("--json", "as_json", is_flag=True, help="Print the figures as JSON.")
@verbose_option
def eval_cmd(text_file, model, n_ctx, threads, n_gpu_layers, attention, max_tokens, samplers, attention_entmax,
             as_json, verbose):
    """Score samplers on TEXT_FILE: teacher-forced ε-perplexity, sparsemax score, JS divergence.

    Each sampler's distribution (what it would sample from) is compared with the text's
    actual next token at every position ('-' reads stdin). Prints a markdown table.
    """
    from . import load
    from .evaluation.scoring import DEFAULT_SAMPLERS, evaluate_text, format_eval_table

    if text_file == "-":
        text = read_stdin()
    else:
        try:
            with open(text_file, encoding="utf-8", errors="replace") as f:
                text = f.read()
        except OSError as e:
            raise UsageError(f"cannot read {text_file}: {e.strerror}", hint="check the path") from None
    chosen = dict(DEFAULT_SAMPLERS)
    if samplers:
        chosen = {}
        for item in samplers:
            name, sep, spec = item.partition("=")
            if not sep or not name or not spec:
                raise UsageError(f"--sampler wants NAME=SPEC, got '{item}'")
            chosen[name] = spec
    m = load(model, n_ctx=n_ctx, n_threads=threads, n_gpu_layers=n_gpu_layers, attention=attention,
             attention_entmax=attention_entmax, verbose=verbose)
    result = evaluate_text(m, text, chosen, max_tokens=max_tokens)
    if attention_entmax is not None:  # entmax attention (issue 4): the sparsity it achieved
        st = m.engine.attention.entmax_stats()
        result["attention_entmax"] = {k: st[k] for k in ("config", "layers", "zero_fraction", "mean_support",
                                                         "mean_valid", "mean_alpha", "rows", "rows_skipped")}
    click.echo(json.dumps(result, indent=2) if as_json else format_eval_table(result))
    if attention_entmax is not None and not as_json:
        a = result["attention_entmax"]
        click.echo(f"Entmax attention `{a['config']}` on {len(a['layers'])} layers: {100 * a['zero_fraction']:.1f}% "
                   f"of the valid attention weights are zero; mean support {a['mean_support']:.1f} of "
                   f"{a['mean_valid']:.1f} valid cells per head; mean α {a['mean_alpha']:.3f}.")


from .chat.command import chat_command  # noqa: E402  (needs the decorators above)

cli.add_command(chat_command)

from .plot import plot_command  # noqa: E402  (matplotlib is imported only when drawing)

cli.add_command(plot_command)


from .batch.command import batch_command  # noqa: E402

cli.add_command(batch_command)


_WRITE_ERRORS = {errno.ENOSPC, errno.EFBIG, errno.EDQUOT, errno.EIO, errno.EROFS}


def _internal_error(e: BaseException) -> None:
    click.echo(f"entropic-local: internal error: {type(e).__name__}: {e} "
               "(run with --verbose for the traceback)", err=True)
    sys.exit(70)


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """Python warnings as one line each on stderr (``entropic-local: warning: ...``)."""
    text = str(message).replace("\n", " ")
    sys.stderr.write(f"entropic-local: warning: {text}\n")


def main(argv: list[str] | None = None) -> None:
    """Console entry point: run the click group and turn every failure into one line."""
    warnings.showwarning = _show_warning
    try:  # SIGTERM stops like Ctrl-C: what was made is written, then exit 143
        signal.signal(signal.SIGTERM, _on_sigterm)
    except ValueError:  # not the main thread: keep the default
        pass
    try:
        cli.main(args=argv, prog_name="entropic-local", standalone_mode=False)
    except (click.exceptions.Abort, KeyboardInterrupt) as e:
        stop = e.__cause__ if isinstance(e, click.exceptions.Abort) else e
        code = getattr(stop, "exit_code", 130)
        click.echo("entropic-local: terminated" if code == 143 else "entropic-local: interrupted", err=True)
        sys.exit(code)
    except click.exceptions.NoArgsIsHelpError as e:  # pragma: no cover - click >= 8.2
        click.echo(e.ctx.get_help() if e.ctx else str(e))
        sys.exit(2)
    except click.ClickException as e:
        cmd = e.ctx.command_path if getattr(e, "ctx", None) else "entropic-local"
        click.echo(f"entropic-local: error: {e.format_message()} (see '{cmd} --help')", err=True)
        sys.exit(e.exit_code if e.exit_code else 2)
    except EntropicError as e:
        if _verbose:
            traceback.print_exc()
        click.echo(f"entropic-local: error: {e}", err=True)
        sys.exit(e.exit_code)
    except BrokenPipeError:
        sys.exit(0)
    except OSError as e:
        if _verbose:
            traceback.print_exc()
        if e.errno in _WRITE_ERRORS:  # an output that cannot be written: disk full...
            where = f" ({e.filename})" if e.filename else ""
            click.echo(f"entropic-local: error: cannot write the output{where}: {e.strerror} "
                       "(free some space, or write somewhere else)", err=True)
            sys.exit(1)
        _internal_error(e)
    except Exception as e:  # a bug: still one line unless --verbose
        if _verbose:
            traceback.print_exc()
        _internal_error(e)
    else:
        sys.exit(0)


if __name__ == "__main__":  # pragma: no cover
    main()
