"""``entropic-local generate PROMPT``: stream a completion (or print it as JSON)."""

from __future__ import annotations

import json
import sys

import click

from ..errors import UsageError
from .constraint import constraint_options
from .options import (
    CONTEXT_SETTINGS, check_writable, clean_text, model_options, read_stdin, sampler_options,
    show_engine, signals_deferred, strip_final_newline, verbose_option,
)


@click.command("generate", context_settings=CONTEXT_SETTINGS)
@click.argument("prompt")
@model_options
@sampler_options
@constraint_options
@click.option("-n", "--max-tokens", type=click.IntRange(min=1), default=256, show_default=True,
              help="Most tokens to generate.")
@click.option("--stop", multiple=True, metavar="TEXT", help="Stop before this text (repeatable).")
@click.option("--json", "as_json", is_flag=True,
              help="Print one JSON object: text, steps (per-token logprob, entropy, varentropy), timings, seed, sampler.")
@click.option("--trace", "trace_path", type=click.Path(dir_okay=False, writable=True), default=None,
              metavar="FILE", help="Write one JSON line per generated token (every metric, the sampler's action).")
@verbose_option()
def generate_command(prompt, model, n_ctx, threads, engine_opts, attention, sampler, flags, seed, max_tokens, stop,
             as_json, trace_path, verbose, grammar=None, json_schema=None):
    """Continue PROMPT with the model, streaming the text to stdout.

    PROMPT '-' reads the prompt from standard input (one final newline is dropped, as a
    shell's $(...) does). Entropy and varentropy are in nats.
    """
    from ..api import load
    from ..samplers.chain import SamplerChain

    prompt = strip_final_newline(read_stdin()) if prompt == "-" else clean_text(prompt)
    if not prompt:
        raise UsageError("empty prompt", hint="give some text to continue, or '-' to read stdin")
    if trace_path is not None:
        check_writable(trace_path)
    chain = SamplerChain.from_options(sampler, **flags)
    m = load(model, n_ctx=n_ctx, n_threads=threads, attention=attention, **engine_opts,
             verbose=verbose)
    show_engine(m.engine.settings())
    stream = m.stream(prompt, max_tokens=max_tokens, sampler=chain, seed=seed, stop=list(stop),
                      grammar=grammar, json_schema=json_schema)
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
