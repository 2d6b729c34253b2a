"""The options many commands share are declared once (faultproof/commandline.py), so on every
command of `faultproof` they mean the same: the ledger's URL reads FAULTPROOF_LEDGER with one
default, `--json` says one thing, and a service's `--config` names an example file that exists."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import click

from cli import main
from faultproof.commandline import DEFAULT_LEDGER

ROOT = Path(__file__).resolve().parents[1]


def _commands(group: click.Group, words: tuple[str, ...] = ()) -> Iterator[tuple[str, click.Command]]:
    ctx = click.Context(group, info_name="faultproof")
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        assert command is not None
        yield " ".join((*words, name)), command
        if isinstance(command, click.Group):
            yield from _commands(command, (*words, name))


def _options(name: str) -> dict[str, list[click.Option]]:
    """Every command's options that match a shared one, by command."""
    out: dict[str, list[click.Option]] = {}
    for words, command in _commands(main):
        for p in command.params:
            if isinstance(p, click.Option) and (name in p.opts or p.envvar == name):
                out.setdefault(words, []).append(p)
    return out


def test_every_ledger_url_option_reads_the_same_variable_and_default() -> None:
    by_command = _options("FAULTPROOF_LEDGER")
    assert {"econ report", "pool status", "device history", "ledger status", "admin"} <= set(by_command)
    for words, options in by_command.items():
        for opt in options:
            assert (opt.default, opt.show_default) == (DEFAULT_LEDGER, True), words
            assert opt.opts in (["--ledger"], ["--url"]), words


def test_every_json_flag_says_the_same() -> None:
    by_command = {words: opts for words, opts in _options("--json").items() if opts[0].is_flag}
    assert {"econ report", "econ simulate", "claim list", "pool status", "ledger verify", "admin policies"} \
        <= set(by_command)
    helps = {words: opts[0].help for words, opts in by_command.items()}
    assert set(helps.values()) == {"Print JSON instead of text."}, helps


def test_every_service_config_names_its_example() -> None:
    by_command = {words: opts[0] for words, opts in _options("--config").items() if opts[0].required}
    assert {"ledger init", "ledger serve", "oracle run", "agent run"} <= set(by_command)
    for words, opt in by_command.items():
        match = re.fullmatch(r"\w+ TOML config \(see (configs/\w+\.example\.toml)\)\.", opt.help or "")
        assert match and (ROOT / match.group(1)).is_file(), (words, opt.help)
