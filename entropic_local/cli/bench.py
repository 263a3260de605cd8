"""``entropic-local bench``: tokens/s against llama-cpp-python, side by side (code in
``entropic_local.bench``)."""

from __future__ import annotations

import json

import click

from ..errors import UsageError
from .options import CONTEXT_SETTINGS, engine_options, verbose_option


@click.command("bench", context_settings=CONTEXT_SETTINGS)
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
@click.option("--profile", is_flag=True,
              help="Instead: profile our decode loop (cProfile, own time per token by function).")
@click.option("--numerics", is_flag=True,
              help="Instead: flash attention off against on (perplexity, entropy and logprob error, tokens/s).")
@click.option("--configs", is_flag=True,
              help="Instead: the engine configurations side by side (repack on/off, -ub 1 or the batch, -fa "
                   "off/on): prompt and generation tokens/s.")
@engine_options
@click.option("--json", "as_json", is_flag=True, help="Print the figures as JSON.")
@verbose_option()
def bench_command(model_names, tokens, rounds, threads, kernels, presets, attention, batch_mode, profile, numerics,
                  configs, engine_opts, as_json, verbose):
    """Measure tokens/s against llama-cpp-python's create_completion, side by side.

    Same model, threads, settings (top-k 40, top-p 0.95, min-p 0.05, temp 0.8) and number
    of tokens, runs alternated in one process; plus the numba kernels on the model's real
    logits.
    """
    from ..bench.completion import format_report, run_bench

    names = [n.strip() for n in model_names.split(",") if n.strip()]
    if not names:
        raise UsageError("no models given to --models")
    if batch_mode:
        from ..bench.batch import format_batch_report, run_batch_bench

        reports = run_batch_bench(names, rounds=rounds, n_threads=threads, progress=not as_json)
        click.echo(json.dumps(reports, indent=2) if as_json else format_batch_report(reports))
        return
    if numerics:
        from ..bench.numerics import format_numerics, run_numerics

        report = run_numerics(names, n_threads=threads, rounds=rounds, progress=not as_json)
        click.echo(json.dumps(report, indent=2) if as_json else format_numerics(report))
        return
    if configs:
        from ..bench.configs import format_configs, run_configs

        report = run_configs(names, n_threads=threads, rounds=rounds, n_tokens=tokens, progress=not as_json)
        click.echo(json.dumps(report, indent=2) if as_json else format_configs(report))
        return
    from ..samplers.chain import SamplerChain

    preset_list = [p.strip() for p in presets.split(",") if p.strip()]
    for p in preset_list:
        SamplerChain.parse(p)  # a bad spec fails here, before any model loads
    report = run_bench(names, n_tokens=tokens, rounds=rounds, n_threads=threads,
                       kernels=kernels, verbose=verbose, progress=not as_json, presets=preset_list,
                       attention=attention, engine_opts=engine_opts, profile=profile)
    click.echo(json.dumps(report, indent=2) if as_json else format_report(report))
