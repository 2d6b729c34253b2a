"""`faultproof token ...`: keys in a PKCS#11 token (DESIGN §15). SoftHSM2 stands in for the secure
element here; a real token works the same through its own module.

    export FAULTPROOF_PKCS11_PIN=...  FAULTPROOF_PKCS11_SO_PIN=...   # never on the command line
    faultproof token init --dir tokens --label faultproof      # prints the SOFTHSM2_CONF to export
    faultproof token keygen --token faultproof --label device-1 --type p256
    faultproof token pubkey --token faultproof --label device-1
    faultproof token destroy --token faultproof --label device-1   # decommission: the key is gone

Keys are made inside the token and never leave it; these commands print public keys only.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import click

from faultproof import signing
from faultproof.operator_errors import OperatorError

SO_PIN_ENV = "FAULTPROOF_PKCS11_SO_PIN"


def _cfg(token: str, label: str, module: str) -> signing.TokenConfig:
    return signing.TokenConfig(token_label=token, key_label=label, module=module)


def _public_json(pub: signing.PublicKey) -> str:
    return json.dumps({"key_type": pub.key_type.name.lower(), "public_key": pub.data.hex(),
                       "key_id": pub.key_id.hex()})


@click.group()
def token() -> None:
    """Keys in a PKCS#11 token (SoftHSM2 for the devnet and tests)."""


@token.command("init")
@click.option("--dir", "root", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Where the SoftHSM2 config and token files go.")
@click.option("--label", default="faultproof", show_default=True)
def init(root: Path, label: str) -> None:
    """Make a SoftHSM2 token store with one token; PINs from the environment."""
    from faultproof import softhsm

    pin, so_pin = os.environ.get(signing.PIN_ENV_DEFAULT, ""), os.environ.get(SO_PIN_ENV, "")
    if len(pin) < 4 or len(so_pin) < 4:
        raise OperatorError(f"set {signing.PIN_ENV_DEFAULT} and {SO_PIN_ENV} (4+ characters each) "
                            "in the environment; PINs never go on the command line")
    conf = softhsm.write_conf(root.resolve())
    try:
        softhsm.init_token(conf, label, so_pin, pin)
    except RuntimeError as e:
        raise OperatorError(str(e)) from None
    click.echo(f"export SOFTHSM2_CONF={conf}")


def _token_options(f):  # type: ignore[no-untyped-def]
    f = click.option("--module", default="", help="PKCS#11 module (default: SoftHSM2's).")(f)
    f = click.option("--label", required=True, help="The key's label in the token.")(f)
    return click.option("--token", "token_label", default="faultproof", show_default=True)(f)


@token.command("keygen")
@_token_options
@click.option("--type", "key_type", type=click.Choice(["ed25519", "p256", "secp256k1"]), default="p256",
              show_default=True, help="secp256k1: an oracle's chain key for the pool contract (DESIGN §13).")
def keygen(token_label: str, label: str, module: str, key_type: str) -> None:
    """Generate a key pair inside the token; print its public key and key id."""
    if key_type == "secp256k1":
        from ledger.evm.chain_keys import address_of

        try:
            point = signing.token_generate_secp256k1(_cfg(token_label, label, module))
        except signing.KeyError_ as e:
            raise click.ClickException(str(e)) from None
        click.echo(json.dumps({"key_type": "secp256k1", "public_key": point.hex(), "address": address_of(point)}))
        return
    kt = signing.KeyType.P256 if key_type == "p256" else signing.KeyType.ED25519
    try:
        pub = signing.token_generate(_cfg(token_label, label, module), kt)
    except signing.KeyError_ as e:
        raise OperatorError(str(e)) from None
    click.echo(_public_json(pub))


@token.command("pubkey")
@_token_options
def pubkey(token_label: str, label: str, module: str) -> None:
    """Print a key's public key and key id."""
    try:
        click.echo(_public_json(signing.Pkcs11Signer(_cfg(token_label, label, module)).public))
    except signing.KeyError_ as e:
        raise OperatorError(str(e)) from None


@token.command("destroy")
@_token_options
def destroy(token_label: str, label: str, module: str) -> None:
    """Destroy a key pair in the token (a decommissioned device's key)."""
    try:
        n = signing.token_destroy(_cfg(token_label, label, module))
    except signing.KeyError_ as e:
        raise OperatorError(str(e)) from None
    if n == 0:
        raise OperatorError(f"no key labelled {label!r} in token {token_label!r}")
    click.echo(json.dumps({"destroyed": n}))
