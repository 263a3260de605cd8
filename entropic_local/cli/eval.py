"""``entropic-local eval TEXT_FILE``: score samplers on a text, teacher-forced."""

from __future__ import annotations

import json

import click

from .options import CONTEXT_SETTINGS, model_options, named_specs, read_text_file, show_engine, verbose_option


@click.command("eval", context_settings=CONTEXT_SETTINGS)
@click.argument("text_file", type=click.Path(dir_okay=False, allow_dash=True))
@model_options(attention="scores")
@click.option("-n", "--max-tokens", type=click.IntRange(min=1), default=None,
              help="Score at most this many tokens of the text.")
@click.option("-s", "--sampler", "samplers", multiple=True, metavar="NAME=SPEC",
              help="A sampler to score (repeatable; default: softmax, top-k, top-p, min-p, entmax, aes, thermostat...).")
@click.option("--attention-entmax", "attention_entmax", default=None, metavar="ALPHA|adaptive",
              help="Experimental: α-entmax instead of softmax attention in the --attention layers "
                   "(default all), e.g. 1.5 or adaptive; reports the attention sparsity.")
@click.option("--json", "as_json", is_flag=True, help="Print the figures as JSON.")
@verbose_option()
def eval_command(text_file, model, n_ctx, threads, engine_opts, attention, max_tokens, samplers, attention_entmax,
             as_json, verbose):
    """Score samplers on TEXT_FILE: teacher-forced ε-perplexity, sparsemax score, JS divergence.

    Each sampler's distribution (what it would sample from) is compared with the text's
    actual next token at every position ('-' reads stdin). Prints a markdown table.
    """
    from ..api import load
    from ..evaluation.scoring import DEFAULT_SAMPLERS, evaluate_text, format_eval_table

    text = read_text_file(text_file)
    chosen = named_specs(samplers) if samplers else dict(DEFAULT_SAMPLERS)
    m = load(model, n_ctx=n_ctx, n_threads=threads, attention=attention, **engine_opts,
             attention_entmax=attention_entmax, verbose=verbose)
    show_engine(m.engine.settings())
    result = evaluate_text(m, text, chosen, max_tokens=max_tokens)
    if attention_entmax is not None:  # the attention sparsity entmax achieved
        st = m.engine.attention.entmax_stats()
        result["attention_entmax"] = {k: st[k] for k in ("config", "layers", "zero_fraction", "mean_support",
                                                         "mean_valid", "mean_alpha", "rows", "rows_skipped")}
    click.echo(json.dumps(result, indent=2) if as_json else format_eval_table(result))
    if attention_entmax is not None and not as_json:
        a = result["attention_entmax"]
        click.echo(f"Entmax attention `{a['config']}` on {len(a['layers'])} layers: {100 * a['zero_fraction']:.1f}% "
                   f"of the valid attention weights are zero; mean support {a['mean_support']:.1f} of "
                   f"{a['mean_valid']:.1f} valid cells per head; mean α {a['mean_alpha']:.3f}.")
