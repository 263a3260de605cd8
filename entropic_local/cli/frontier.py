"""``entropic-local frontier TEXT_FILE``: which sampler writes better text (generated, judged)."""

from __future__ import annotations

import json
import sys

import click

from ..errors import UsageError
from .options import CONTEXT_SETTINGS, check_writable, model_options, named_specs, read_text_file, verbose_option

TEST_MODELS = ("smollm2-135m", "gemma3-270m")


def _floats(text: str) -> list[float]:
    try:
        out = [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise UsageError(f"--temps wants numbers separated by commas, got '{text}'") from None
    if not out or any(not t > 0 for t in out):
        raise UsageError(f"--temps wants temperatures above 0, got '{text}'")
    return out


def _no_nan(x):
    """JSON has no NaN: an undefined figure is null."""
    if isinstance(x, float) and x != x:
        return None
    if isinstance(x, dict):
        return {k: _no_nan(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_no_nan(v) for v in x]
    return x


def default_judge(generator_label: str) -> str:
    """The other test model (SmolLM2 for any model but SmolLM2)."""
    return TEST_MODELS[1] if generator_label == TEST_MODELS[0] else TEST_MODELS[0]


@click.command("frontier", context_settings=CONTEXT_SETTINGS)
@click.argument("text_file", type=click.Path(dir_okay=False, allow_dash=True))
@model_options
@click.option("--judge", default=None, metavar="MODEL",
              help="The model that judges coherence (default: the other test model).")
@click.option("-s", "--sampler", "samplers", multiple=True, metavar="NAME=SPEC",
              help="A sampler to compare (repeatable; default: softmax, top-p 0.9, min-p 0.1, top-nσ 1, "
                   "free_energy, thermostat, aes, entropix).")
@click.option("--sweep", "sweep", default=None, metavar="all|FAMILY,...", is_flag=False, flag_value="all",
              help="Instead of -s: 4 settings of each family's main parameter (top-k, top-p, min-p, top-nσ, "
                   "typical-p, entmax, free_energy, thermostat, aes, entropix).")
@click.option("--temps", default="0.7,1.0,1.5,2.0", show_default=True, metavar="T,T,...",
              help="Temperatures, each applied as every sampler's own.")
@click.option("--seeds", type=click.IntRange(min=1), default=2, show_default=True, help="Seeds per prompt.")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True, help="The first seed.")
@click.option("--prompts", "n_prompts", type=click.IntRange(min=1), default=32, show_default=True,
              help="Prompts: the first paragraphs of the text (blank-line separated).")
@click.option("--prompt-words", type=click.IntRange(min=1), default=20, show_default=True,
              help="Words of each paragraph that make its prompt.")
@click.option("-n", "--max-tokens", type=click.IntRange(min=1), default=64, show_default=True,
              help="Tokens per continuation.")
@click.option("--parallel", type=click.IntRange(1, 255), default=32, show_default=True,
              help="Sequences decoded together (generation and judging).")
@click.option("--json", "as_json", is_flag=True, help="Print the rows as JSON.")
@click.option("--samples", "samples_path", default=None, metavar="FILE.jsonl",
              help="Write every continuation with its measures, one JSON object a line.")
@click.option("--plot", "plot_path", default=None, metavar="OUT.png",
              help="Draw judge perplexity against distinct-2 with the Pareto front (needs matplotlib).")
@click.option("-q", "--quiet", is_flag=True, help="No progress lines on stderr.")
@verbose_option()
def frontier_command(text_file, model, n_ctx, threads, engine_opts, attention, judge, samplers, sweep,
                     temps, seeds, seed, n_prompts, prompt_words, max_tokens, parallel, as_json,
                     samples_path, plot_path, quiet, verbose):
    """Generate continuations of prompts from TEXT_FILE ('-': stdin) with each sampler at each
    temperature, judge them with another model, and print a table: judge perplexity
    (coherence), distinct-n and self-BLEU (diversity), seq-rep-4 and loops (degeneration),
    the generator's entropy and logprob, the sampler's per-step fields, and the Pareto front
    at each temperature."""
    from ..api import load
    from ..evaluation.frontier import DEFAULT_SAMPLERS, prompts_from_text, run_frontier, sweep_samplers
    from ..evaluation.frontier_table import format_frontier_table

    text = read_text_file(text_file)
    temperatures = _floats(temps)
    if sweep is not None and samplers:
        raise UsageError("give --sweep or -s, not both")
    chosen = named_specs(samplers)
    for path in (samples_path, plot_path):
        if path:
            check_writable(path)
    if plot_path:
        from ..evaluation.frontier_plot import require_matplotlib
        require_matplotlib()
    from ..evaluation.quality_metrics import require_sacrebleu
    require_sacrebleu()
    prompts = prompts_from_text(text, n_prompts, prompt_words)
    # every sampler spec is checked before a model loads
    from ..samplers.chain import SamplerChain
    for spec in chosen.values():
        SamplerChain.parse(spec)
    # the prompts' KV cells: the longest prompt and a continuation, with room to spare
    ctx = n_ctx or 1024
    g = load(model, n_ctx=ctx, n_threads=threads, verbose=verbose, workload="batch", **engine_opts)
    j = load(judge or default_judge(g.name), n_ctx=ctx, n_threads=threads, verbose=verbose, workload="batch",
             **engine_opts)
    if sweep is not None:
        chosen = sweep_samplers(g, None if sweep == "all" else [f.strip() for f in sweep.split(",")])
    say = None if quiet else (lambda m: click.echo(f"entropic-local: {m}", err=True))
    result = run_frontier(g, j, prompts, chosen or DEFAULT_SAMPLERS, temperatures=temperatures, seeds=seeds,
                          seed=seed, max_tokens=max_tokens, parallel=parallel, judge_parallel=parallel,
                          progress=say)
    if samples_path:
        from ..atomic_file import write_text_atomic
        write_text_atomic(samples_path, "".join(json.dumps(s, ensure_ascii=False) + "\n"
                                                for s in _no_nan(result["samples"])))
    if plot_path:
        from ..evaluation.frontier_plot import plot_frontier
        plot_frontier(result, plot_path)
    table = _no_nan({k: v for k, v in result.items() if k != "samples"})
    click.echo(json.dumps(table, indent=2, allow_nan=False) if as_json
               else format_frontier_table(result))
    sys.stdout.flush()
