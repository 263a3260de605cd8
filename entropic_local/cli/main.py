"""The ``entropic-local`` command group and its entry point.

Each command lives in a module of its own (``COMMANDS``), imported only when that command
runs or its help is shown, so start-up costs what the command uses. Every failure is one
line on stderr (``entropic-local: error: ...``) and a distinct exit code (``EXIT_CODES``,
the README's table); ``--verbose`` adds the traceback.
"""

from __future__ import annotations

import errno
import importlib
import signal
import sys
import traceback
import warnings

import click

from ..errors import EntropicError
from .options import CONTEXT_SETTINGS, is_verbose, on_sigterm

__all__ = ["cli", "main", "EXIT_CODES", "COMMANDS"]

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
    9: "unusable grammar or JSON schema (does not parse, cannot be converted, dead end)",
    70: "internal error (a bug: please report it with --verbose output)",
    130: "interrupted (Ctrl-C); output so far was written",
    143: "terminated (SIGTERM); output so far was written",
}

# command name -> "module:attribute" of its click command
COMMANDS = {
    "batch": "entropic_local.cli.batch:batch_command",
    "bench": "entropic_local.cli.bench:bench_command",
    "chat": "entropic_local.cli.chat:chat_command",
    "eval": "entropic_local.cli.eval:eval_command",
    "frontier": "entropic_local.cli.frontier:frontier_command",
    "generate": "entropic_local.cli.generate:generate_command",
    "info": "entropic_local.cli.info:info_command",
    "models": "entropic_local.cli.models:models_command",
    "plot": "entropic_local.cli.plot:plot_command",
    "serve": "entropic_local.cli.serve:serve_command",
}


class LazyGroup(click.Group):
    """A group whose commands are imported on first use (``COMMANDS``)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(super().list_commands(ctx)) | set(COMMANDS))

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in self.commands and name in COMMANDS:
            module, _, attr = COMMANDS[name].partition(":")
            self.add_command(getattr(importlib.import_module(module), attr), name)
        return super().get_command(ctx, name)


@click.group(cls=LazyGroup, context_settings=CONTEXT_SETTINGS)
@click.version_option(package_name="entropic-local", prog_name="entropic-local")
def cli() -> None:
    """Run GGUF language models locally with entropy-aware samplers.

    \b
    Examples:
      entropic-local generate "The capital of France is"
      entropic-local generate -m gemma3-270m --sampler greedy --json "Once upon a time"
      echo "Write a haiku" | entropic-local generate -
      entropic-local models
      entropic-local bench
    """


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
        signal.signal(signal.SIGTERM, on_sigterm)
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
        if is_verbose():
            traceback.print_exc()
        click.echo(f"entropic-local: error: {e}", err=True)
        sys.exit(e.exit_code)
    except BrokenPipeError:
        sys.exit(0)
    except OSError as e:
        if is_verbose():
            traceback.print_exc()
        if e.errno in _WRITE_ERRORS:  # an output that cannot be written: disk full...
            where = f" ({e.filename})" if e.filename else ""
            click.echo(f"entropic-local: error: cannot write the output{where}: {e.strerror} "
                       "(free some space, or write somewhere else)", err=True)
            sys.exit(1)
        _internal_error(e)
    except Exception as e:  # a bug: still one line unless --verbose
        if is_verbose():
            traceback.print_exc()
        _internal_error(e)
    else:
        sys.exit(0)
