"""``entropic-local batch INPUT.jsonl -o OUTPUT.jsonl`` (the jobs, rows and runners:
``entropic_local.batch``)."""

from __future__ import annotations

import os

import click

from ..errors import UsageError
from .options import CONTEXT_SETTINGS, n_ctx_option, sampler_options, signals_deferred, verbose_option


@click.command("batch", context_settings=CONTEXT_SETTINGS)
@click.argument("input_path", metavar="INPUT.jsonl", type=click.Path(dir_okay=False, allow_dash=True))
@click.option("-o", "--output", "output_path", required=True, metavar="OUTPUT.jsonl",
              type=click.Path(dir_okay=False), help="Output JSONL (appended; rerun to resume).")
@click.option("-m", "--model", default=None, metavar="MODEL",
              help="A .gguf path or a name from models.txt (default: smollm2-135m).")
@n_ctx_option("Context per sequence")
@click.option("-t", "--threads", type=click.IntRange(min=1), default=None,
              help="CPU threads (default: physical cores; with --ray: per actor, default 1).")
@click.option("--n-gpu-layers", "-ngl", type=int, default=0, show_default=True,
              help="Layers to offload to the GPU (-1: all).")
@sampler_options(seed="batch")
@click.option("-n", "--max-tokens", type=click.IntRange(min=1), default=256, show_default=True,
              help="Tokens per line unless the line sets max_tokens.")
@click.option("-p", "--parallel", type=click.IntRange(1, 256), default=8, show_default=True,
              help="Sequences decoded together (continuous batching).")
@click.option("--steps", is_flag=True, help="Add per-token metrics to each row (entropic.steps).")
@click.option("--ray", "use_ray", is_flag=True,
              help="Run on a Ray cluster (RAY_ADDRESS, else a local one); needs the 'ray' extra.")
@click.option("--ray-actors", type=click.IntRange(min=1), default=2, show_default=True,
              help="With --ray: actors, each holding one loaded model.")
@click.option("--shard-size", type=click.IntRange(min=1), default=None,
              help="With --ray: lines per shard sent to an actor (default: 2 x --parallel).")
@verbose_option()
def batch_command(input_path, output_path, model, n_ctx, threads, n_gpu_layers, sampler, flags, seed,
                  max_tokens, parallel, steps, use_ray, ray_actors, shard_size, verbose):
    """Generate for every line of INPUT.jsonl, appending one row per line to OUTPUT.jsonl.

    \b
    Input lines (JSON objects), either shape:
      {"custom_id": "q1", "prompt": "Once upon a time", "max_tokens": 32}
      {"custom_id": "q2", "method": "POST", "url": "/v1/chat/completions",
       "body": {"messages": [{"role": "user", "content": "Hi"}], "temperature": 0.7}}
    Per-line settings: max_tokens, temperature, top_p, top_k, min_p, seed, stop, sampler.

    Output rows follow the OpenAI batch output shape (custom_id, response.body with the
    text, usage and an 'entropic' summary; error for a line that failed). Each row is
    flushed as it is written; rerunning the same command skips the custom_ids already in
    OUTPUT.jsonl (and repairs a half-written last line). With --seed S every line's seed is
    derived from S and its custom_id, so reruns and shardings give the same outputs.

    \b
      entropic-local batch prompts.jsonl -o out.jsonl --parallel 8 --seed 1
    """
    from ..batch.jobs import BadLine, check_unique, read_jobs
    from ..batch.output import OutputFile, error_row
    from ..batch.runner import Defaults, Progress, run_local
    from ..samplers.chain import SamplerChain

    if input_path != "-":
        if not os.path.exists(input_path):
            raise UsageError(f"no such input file: {input_path}")
        if os.path.exists(output_path) and os.path.samefile(input_path, output_path):
            raise UsageError("the output file is the input file", hint="give another -o file")
    try:
        items = list(read_jobs(input_path))
    except OSError as e:
        raise UsageError(f"cannot read {input_path}: {e.strerror or e}") from None
    check_unique(items)
    default_chain = SamplerChain.from_options(sampler, **flags)
    defaults = Defaults(sampler=str(default_chain), max_tokens=max_tokens, seed=seed, steps=steps)

    out = OutputFile(output_path).open()
    todo = [it for it in items if it.custom_id not in out.done]
    progress = Progress(total=len(items), done_before=len(items) - len(todo), out_path=output_path)
    # SIGINT / SIGTERM (``cli.main`` turns SIGTERM into ``errors.Terminated``, a
    # KeyboardInterrupt) land between rows, never inside one: every row is whole
    write = _deferred_writer(out, progress)
    try:
        if out.repaired:
            click.echo(f"batch: cut a half-written last line ({out.repaired} bytes) off {output_path}",
                       err=True)
        for it in todo:
            if isinstance(it, BadLine):
                write(error_row(it.custom_id, it.code, it.message), 0)
        jobs = [it for it in todo if not isinstance(it, BadLine)]
        if jobs:
            from ..registry import model_label, resolve_model

            label = model_label(model)
            load_kwargs = {"n_ctx": n_ctx, "n_gpu_layers": n_gpu_layers, "verbose": verbose}
            if use_ray:
                from ..batch.ray_runner import run_ray

                resolve_model(model)  # download once, on the driver, before the actors start
                run_ray(model, {**load_kwargs, "n_threads": threads}, jobs, write, defaults,
                        parallel=parallel, actors=ray_actors, label=label, shard_size=shard_size)
            else:
                from ..api import load

                m = load(model, n_threads=threads, **load_kwargs)
                try:
                    run_local(m, jobs, write, defaults, parallel=parallel, model_label=label,
                              registry_name=model)
                finally:
                    m.close()
    except KeyboardInterrupt:
        progress.close()
        # what was written before the signal; cli.main adds "interrupted"/"terminated"
        click.echo(progress.line() + "; rerun the same command to resume", err=True)
        raise
    else:
        progress.close()
        click.echo(progress.line(), err=True)
    finally:
        progress.close()
        out.close()


def _deferred_writer(out, progress):
    """``write(row, completion_tokens)``: append a row and count it, with SIGINT/SIGTERM held
    until both are done."""

    def write(row, tokens: int) -> None:
        with signals_deferred():
            out.write(row)
            progress.add(row, tokens)

    return write
