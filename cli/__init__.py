"""The `faultproof` command line. Each concern owns its subcommand group in its own module; this
file only lists them, loaded lazily so that `faultproof keygen` does not import libp2p or groth16py."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import click

from faultproof.identity import Identity, KeyFileError

# name -> "module:attribute" of a click command or group
_LAZY_COMMANDS: dict[str, str] = {
    "circuits": "faultproof.zk.cli:circuits",
    "ledger": "ledger.cli:ledger",
    "admin": "ledger.admin_cli:admin",
    "receipt": "ledger.cli:receipt",
    "oracle": "oracle.cli:oracle",
    "agent": "agent.cli:agent",
    "device": "agent.cli:device",
    "claim": "cli.user:claim",
    "pool": "cli.user:pool",
    "devnet": "cli.devnet:devnet",
    "token": "cli.token:token",
}


class _LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(super().list_commands(ctx)) | set(_LAZY_COMMANDS))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in _LAZY_COMMANDS:
            module_name, attr = _LAZY_COMMANDS[cmd_name].split(":")
            try:
                module = importlib.import_module(module_name)
            except ModuleNotFoundError as e:
                # A concern that is not built yet is simply not listed.
                if e.name and module_name.startswith(e.name):
                    return None
                raise
            cmd: click.Command = getattr(module, attr)
            return cmd
        return super().get_command(ctx, cmd_name)


@click.group(cls=_LazyGroup)
@click.version_option(package_name="faultproof")
def main() -> None:
    """faultproof: a decentralized insurance oracle for IoT device malfunctions."""


@main.command()
@click.option("--out", "out", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Where to write the key file (created with mode 0600).")
@click.option("--force", is_flag=True, help="Overwrite an existing key file.")
def keygen(out: Path, force: bool) -> None:
    """Generate an Ed25519 key file and print its public id (hex)."""
    identity = Identity.generate()
    try:
        identity.save(out, overwrite=force)
    except KeyFileError as e:
        raise click.ClickException(str(e)) from None
    click.echo(identity.public_key.hex())


@main.command()
def reasons() -> None:
    """Print the reason-code table (docs/reasons.md) as Markdown."""
    from faultproof.errors import reasons_markdown

    click.echo(reasons_markdown(), nl=False)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
