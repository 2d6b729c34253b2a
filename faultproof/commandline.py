"""What the command lines of every part share, declared once so that an option means the same
(name, environment variable, default, help) on every command that takes it:

- `ledger_option`: where the ledger is (FAULTPROOF_LEDGER, or the local default);
- `json_option`: `--json`, the machine-readable form of what a command prints;
- `config_option`: a service's required `--config` TOML file;
- `check_store`: a service's refusal, before it starts, of a database file whose schema is newer
  than this code (the operator's one line, exit 2).

Only declarations and that check: nothing here talks to a service, and no part's own options
(its ports, keys, peers) belong here.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import click
from click.decorators import FC

from faultproof.operator_errors import OperatorError
from faultproof.schema import Migration, SchemaError, check_file

DEFAULT_LEDGER = "http://127.0.0.1:8700"  # the ledger's default [server] port

json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")


def ledger_option(*names: str) -> Callable[[FC], FC]:
    """The ledger's URL: `--ledger` (as ledger_url) on the other parts' commands; the ledger's own
    commands name it `--url` (`ledger_option("--url")`)."""
    return click.option(*(names or ("--ledger", "ledger_url")), envvar="FAULTPROOF_LEDGER", default=DEFAULT_LEDGER,
                        show_default=True)


def config_option(service: str, example: str) -> Callable[[FC], FC]:
    """A service's `--config` (as config_path), e.g. config_option("Agent", "configs/agent.example.toml")."""
    return click.option("--config", "config_path", required=True, type=click.Path(dir_okay=False, path_type=Path),
                        help=f"{service} TOML config (see {example}).")


def check_store(path: str | Path, component: str, migrations: Sequence[Migration]) -> None:
    """Stop with the operator's one line if the database at path has a schema this code must not
    open (newer than its migrations); a missing file is fine (the service creates it)."""
    try:
        check_file(path, component, len(migrations))
    except SchemaError as e:
        raise OperatorError(str(e)) from None
