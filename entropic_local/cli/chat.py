"""``entropic-local chat [MODEL]``: a terminal chat (the chat itself: ``entropic_local.chat``)."""

from __future__ import annotations

import os
import sys

import click

from ..chat.reply import DEFAULT_REPLY_TOKENS
from ..errors import UsageError
from .constraint import constraint_options
from .options import CONTEXT_SETTINGS, clean_text, model_options, sampler_options, stdin_text, verbose_option


def format_count(n: int) -> str:
    """A parameter count as people write it: 134.5M, 1.24B."""
    for scale, unit in ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "K")):
        if n >= scale:
            return f"{n / scale:.{1 if n < 100 * scale else 0}f}{unit}"
    return str(n)


def _reply_cap(ctx, param, value):
    if value == 0 or value < -1:
        raise click.BadParameter(f"{value} is not a reply length: give a positive number, or -1 for no cap")
    return None if value == -1 else value


@click.command("chat", context_settings=CONTEXT_SETTINGS)
@click.argument("model_arg", metavar="[MODEL]", required=False)
@model_options
@sampler_options(seed="chat")
@constraint_options
@click.option("--system", metavar="TEXT", default=None, help="System prompt (change it later with /set system).")
@click.option("-n", "--max-tokens", type=int, default=DEFAULT_REPLY_TOKENS, show_default=True,
              callback=_reply_cap, help="Most tokens per reply; -1: until the end of the turn or of the context.")
@click.option("--chat-template", metavar="NAME|FILE", default=None,
              help="Use this chat template instead of the model's: a built-in name (chatml, gemma, "
                   "llama3, phi3, mistral, plain), 'gguf' (the model file's), or a Jinja file.")
@click.option("--single", is_flag=True,
              help="Read all of standard input as one message (instead of one message per line).")
@click.option("--no-color", "no_color", is_flag=True, help="No colours (also: NO_COLOR set, or not a terminal).")
@verbose_option()
def chat_command(model_arg, model, n_ctx, threads, n_gpu_layers, attention, sampler, flags, seed, system,
                 max_tokens, chat_template, single, no_color, verbose, grammar=None, json_schema=None):
    """Chat with MODEL in the terminal, its uncertainty in colour.

    MODEL is a .gguf path or a name from models.txt (default: smollm2-135m); -m works too.
    The chat template comes from the GGUF metadata, rendered in a sandbox; a model without
    one (a base model such as gemma3-270m) gets the built-in 'plain' transcript template,
    with a notice. Type /help in the chat for the commands and the colour legend.

    \b
    With standard input not a terminal, each line is a message (or all of it with
    --single) and the replies are printed as plain text:
      printf 'Hi!\\nWhat is 2+2?\\n' | entropic-local chat --sampler greedy -n 64
    """
    from ..api import load
    from ..chat.commands import Chat
    from ..chat.printer import Printer
    from ..chat.repl import run_interactive, run_piped
    from ..chat.session import ChatSession
    from ..chat.templates import model_template, select_template, template_context
    from ..registry import check_gguf_header, resolve_model
    from ..samplers.chain import SamplerChain

    if model_arg and model and model_arg != model:
        raise UsageError(f"two models given ({model_arg!r} and -m {model!r}): give one")
    name = model_arg or model
    stdin_tty = sys.stdin.isatty()
    interactive = stdin_tty and sys.stdout.isatty()
    if single and stdin_tty:
        raise UsageError("--single reads the message from standard input, which is a terminal here",
                         hint="pipe the message in: echo 'Hi' | entropic-local chat --single")
    chain = SamplerChain.from_options(sampler, **flags)
    load_kwargs = {"attention": attention} if attention is not None else {}

    path = resolve_model(name)
    header = check_gguf_header(path)
    tmpl_ctx = template_context(name, path, header)
    label = tmpl_ctx["model_label"]
    # Check the template before loading the weights: a broken or hostile template is reported
    # at once (bos/eos are filled in below, once the vocabulary is loaded).
    select_template(chat_template, **tmpl_ctx)

    m = load(path, n_ctx=n_ctx, n_threads=threads, n_gpu_layers=n_gpu_layers, verbose=verbose, **load_kwargs)
    m.name = label
    engine = m.engine
    template, notice = model_template(engine, chat_template, tmpl_ctx)
    bos, eos = template.bos_token, template.eos_token  # the model's, as the template got them

    color = sys.stdout.isatty() and not no_color and not os.environ.get("NO_COLOR")
    system = clean_text(system) if system is not None else None
    session = ChatSession(m, template, chain, system=system, seed=seed, max_tokens=max_tokens,
                          color="entropy" if color else "off", template_context=tmpl_ctx)
    if grammar is not None or json_schema is not None:
        m.constraint(grammar, json_schema)  # refused up front when it does not parse
        session.grammar, session.json_schema = grammar, json_schema
    printer = Printer(sys.stdout, sys.stderr, color=color, interactive=interactive, verbose=verbose)

    def model_info() -> list[str]:
        arch = engine.meta("general.architecture") or "?"
        rows = [
            ("model", label),
            ("file", str(path)),
            ("description", f"{engine.description} (llama.cpp's type and size class)"),
            ("parameters", f"{format_count(engine.n_params)}, {engine.size_bytes / 1e6:.0f} MB of weights"),
            ("architecture", arch),
            ("context", f"{m.n_ctx} tokens (trained on {engine.n_ctx_train})"),
            ("threads", str(m.n_threads)),
            ("gpu layers", str(engine.n_gpu_layers)),
            ("vocabulary", f"{m.n_vocab} tokens; bos {bos or '-'}, eos {eos or '-'}, "
                           f"adds bos: {'yes' if engine.add_bos else 'no'}"),
        ]
        return [f"{k:<14}{v}" for k, v in rows]

    chat = Chat(session, printer, model_info=model_info)
    status = [
        f"entropic-local chat · {label} · context {m.n_ctx} · {m.n_threads} threads"
        + (f" · {engine.n_gpu_layers} gpu layers" if engine.n_gpu_layers else "")
        + f" · sampler {chain}",
        f"chat template {template.name} · /help for commands and colours · /bye or Ctrl-D to exit",
    ]
    for ln in status:
        printer.dim(ln)
    if notice:
        printer.notice(notice)
    try:
        if interactive:
            code = run_interactive(chat)
        else:
            code = run_piped(chat, stdin_text(), single=single)
    finally:
        m.close()
    if code:
        sys.exit(code)
