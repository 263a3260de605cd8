"""Help texts come from the same data as the parser, so they cannot go stale: every preset is
listed where a spec is taken, an option's help names only options its command has, and each
command's ``--attention`` / ``--seed`` help says what that command does with it."""

from __future__ import annotations

import re

import click
import pytest

from entropic_local.cli.main import COMMANDS, cli
from entropic_local.cli.options import ATTENTION_HELP, SEED_HELP
from entropic_local.samplers.presets import PRESETS


def _command(name: str) -> click.Command:
    cmd = cli.get_command(click.Context(cli), name)
    assert cmd is not None, name
    return cmd


def _options(cmd: click.Command) -> dict[str, click.Parameter]:
    return {o: p for p in cmd.params for o in getattr(p, "opts", []) + getattr(p, "secondary_opts", [])}


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_an_options_help_names_only_options_of_its_command(name):
    cmd = _command(name)
    opts = _options(cmd)
    for p in cmd.params:
        for named in re.findall(r"(?<![\w-])(--[a-z][a-z0-9-]*)", getattr(p, "help", None) or ""):
            assert named in opts, f"{name} {p.opts[0]}: help mentions {named}, which {name} does not take"


def _takes_one_spec(name: str) -> bool:
    opt = _options(_command(name)).get("--sampler")
    return opt is not None and not opt.multiple  # eval's -s NAME=SPEC is a list of named specs


@pytest.mark.parametrize("name", [n for n in sorted(COMMANDS) if _takes_one_spec(n)])
def test_sampler_help_lists_every_preset(name):
    help_text = _options(_command(name))["--sampler"].help
    listed = re.search(r"preset: (.*)\.$", help_text).group(1).split(", ")
    assert listed == list(PRESETS)


def test_each_command_says_what_attention_and_seed_do_there():
    assert _options(_command("eval"))["--attention"].help == ATTENTION_HELP["scores"]
    assert "every token" not in ATTENTION_HELP["scores"]
    for name in ("generate", "chat"):
        assert _options(_command(name))["--attention"].help == ATTENTION_HELP["steps"]
    for name in ("generate", "chat", "batch"):
        assert _options(_command(name))["--seed"].help == SEED_HELP[name]
