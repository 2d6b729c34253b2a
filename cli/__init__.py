"""The `faultproof` command line. Each concern owns its subcommand group in its own module; this
file only lists them, loaded lazily so that `faultproof keygen` does not import libp2p or groth16py."""

from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path

import click

from faultproof.identity import Identity, KeyFileError
from faultproof.operator_errors import OperatorError

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
    "init": "cli.init:init",
    "config": "cli.config_cmd:config",
    "dashboard": "dashboard.cli:dashboard",
    "econ": "cli.econ:econ",
    "underwrite": "cli.underwrite:underwrite",
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

    def make_context(self, info_name: str | None, args: list[str], parent: click.Context | None = None,
                     **extra: object) -> click.Context:
        """The root's own options (`faultproof --no-such-option`): one line too."""
        try:
            return super().make_context(info_name, args, parent=parent, **extra)  # type: ignore[arg-type]
        except click.exceptions.NoArgsIsHelpError:
            raise
        except click.UsageError as e:
            raise OperatorError(f"{e.format_message()} (see `{info_name or 'faultproof'} --help`)") from None

    def invoke(self, ctx: click.Context) -> object:
        """Every failure an operator can fix leaves through OperatorError: one line, exit code 2.
        click's own usage errors (a wrong type, a missing option) say which command's --help to
        read instead of printing its usage block; a FaultproofError a command did not catch
        says its reason code and message."""
        from faultproof.errors import FaultproofError

        try:
            return super().invoke(ctx)
        except click.exceptions.NoArgsIsHelpError:
            raise  # `faultproof admin` alone: the help text, as click prints it
        except click.UsageError as e:
            where = e.ctx.command_path if e.ctx is not None else ctx.command_path
            raise OperatorError(f"{e.format_message()} (see `{where} --help`)") from None
        except FaultproofError as e:
            raise OperatorError(f"{e.reason.value}: {e.message}") from None


@click.group(cls=_LazyGroup)
@click.version_option(package_name="faultproof")
def main() -> None:
    """faultproof: a decentralized insurance oracle for IoT device malfunctions."""


@main.command()
@click.option("--out", "out", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Where to write the key file (created with mode 0600).")
@click.option("--force", is_flag=True, help="Overwrite an existing key file.")
@click.option("--encrypt", is_flag=True, help="Encrypt it at rest (passphrase from FAULTPROOF_KEY_PASSPHRASE[_FILE]).")
def keygen(out: Path, force: bool, encrypt: bool) -> None:
    """Generate an Ed25519 key file and print its public id (hex)."""
    from faultproof import keyfile

    identity = Identity.generate()
    try:
        passphrase = keyfile.passphrase_from_env() if encrypt else None
        if encrypt and passphrase is None:
            raise OperatorError(f"--encrypt needs {keyfile.PASSPHRASE_ENV} or {keyfile.PASSPHRASE_FILE_ENV}")
        if not out.parent.exists():  # `keygen --out keys/oracle-1.key` in a new folder: keys/ is made, 0700
            out.parent.mkdir(parents=True, mode=0o700)
        identity.save(out, overwrite=force, passphrase=passphrase)
    except OSError as e:
        raise OperatorError(f"cannot write the key file {out}: {e.strerror} (choose a path in a folder you can "
                            "write)") from None
    except keyfile.PassphraseError as e:
        raise OperatorError(str(e)) from None
    except KeyFileError as e:
        raise OperatorError(str(e)) from None
    click.echo(identity.public_key.hex())


@main.group("key")
def key() -> None:
    """Key files: encrypt them at rest (passphrase from FAULTPROOF_KEY_PASSPHRASE[_FILE])."""


@key.command("encrypt")
@click.argument("key_files", nargs=-1, required=True, type=click.Path(dir_okay=False, path_type=Path))
def key_encrypt(key_files: tuple[Path, ...]) -> None:
    """Encrypt plaintext key files in place (Argon2id + SecretBox); already encrypted ones are left."""
    from faultproof import keyfile

    try:
        passphrase = keyfile.passphrase_from_env()
    except keyfile.PassphraseError as e:
        raise OperatorError(str(e)) from None
    if passphrase is None:
        raise OperatorError(f"set {keyfile.PASSPHRASE_ENV} or {keyfile.PASSPHRASE_FILE_ENV} to the passphrase "
                            "to encrypt with")
    for path in key_files:
        try:
            if keyfile.is_encrypted(path.read_text()):
                click.echo(f"{path}: already encrypted")
                continue
            identity = Identity.load(path)
        except OSError as e:
            raise OperatorError(f"cannot read {path}: {e.strerror} (give the path of a key file)") from None
        except KeyFileError as e:
            raise OperatorError(str(e)) from None
        # Write beside, then rename over: a crash leaves the old file or the new one, never neither.
        tmp = path.with_name(path.name + ".encrypting")
        tmp.unlink(missing_ok=True)
        identity.save(tmp, passphrase=passphrase)
        os.replace(tmp, path)
        click.echo(f"{path}: encrypted (public id {identity.public_key.hex()})")


@main.command("public-key")
@click.argument("key_file", type=click.Path(dir_okay=False, path_type=Path))
def public_key(key_file: Path) -> None:
    """Print the public id (hex) of a key file; the key itself is never printed."""
    try:
        identity = Identity.load(key_file)
    except KeyFileError as e:
        raise OperatorError(str(e)) from None
    click.echo(identity.public_key.hex())


@main.command()
def reasons() -> None:
    """Print the reason-code table (docs/reasons.md) as Markdown."""
    from faultproof.errors import reasons_markdown

    click.echo(reasons_markdown(), nl=False)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
