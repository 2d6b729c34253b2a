"""`faultproof devnet --keys pkcs11`: every protocol key of the run in one SoftHSM2 token (DESIGN §15).

Owns: the run's private token store (`<run>/token`, SoftHSM2), its PINs (random per run, held in
this process's environment and inherited by the processes it starts: never in a file, a config,
a log or a command line), the token keys of the admin, the ledger, every oracle, the agent and
every simulated device (Ed25519, generated inside the token, sensitive and not extractable), and
the libp2p transport key files of the oracles and the agent (the one kind of private key that is
a file: libp2p needs a seed; the ledger never trusts a transport key, DESIGN §15 H8). On a chain
(`--settlement evm`, cli/devnet/chain.py) also the oracles' secp256k1 chain keys (`chain_key`).

It must never read, print or log a PIN, and never write a protocol private key anywhere: keys
are made by the token and used through `faultproof.signing.Pkcs11Signer`.
"""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path
from typing import TYPE_CHECKING, cast

from agent.provision import ProvisionedDevice, enrolment, save_blinding_key
from faultproof import chain, signing, softhsm
from faultproof.identity import Identity, domain_tag
from faultproof.messages import BindTransportKey, transport_binding_message

if TYPE_CHECKING:  # eth_account and web3 load only for a chain run
    from ledger.evm.chain_keys import TokenChainKey

TOKEN_LABEL = "faultproof-devnet"
SO_PIN_ENV = "FAULTPROOF_PKCS11_SO_PIN"


class TokenKeys:
    """The run's token: make it once, then make and open keys by label."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.conf = root / softhsm.CONF_NAME
        self.device_count = 0  # device keys made so far (labels device-1, device-2, ...)

    def init(self) -> None:
        """Make the token store and token; put SOFTHSM2_CONF and the PINs in this process's
        environment (children inherit them; the PKCS#11 library reads the conf once per process)."""
        softhsm.write_conf(self.root)
        pin, so_pin = secrets.token_hex(16), secrets.token_hex(16)
        os.environ["SOFTHSM2_CONF"] = str(self.conf)
        os.environ[signing.PIN_ENV_DEFAULT] = pin
        os.environ[SO_PIN_ENV] = so_pin
        softhsm.init_token(self.conf, TOKEN_LABEL, so_pin, pin)

    def spec(self, label: str) -> str:
        return f"{signing.PKCS11_PREFIX}{TOKEN_LABEL}/{label}"

    def generate(self, label: str) -> Identity:
        """A new Ed25519 key in the token, as a signer with the Identity face (public_key, sign)."""
        cfg = signing.TokenConfig(token_label=TOKEN_LABEL, key_label=label)
        signing.token_generate(cfg, signing.KeyType.ED25519)
        return cast(Identity, signing.Pkcs11Signer(cfg))

    def chain_key(self, label: str) -> TokenChainKey:
        """A new secp256k1 chain key in the token (DESIGN §13), with the ChainKey face (address,
        sign_body, binding): what an oracle's `chain_key_file = "pkcs11:TOKEN/LABEL"` loads."""
        from ledger.evm.chain_keys import TokenChainKey, load_chain_key

        signing.token_generate_secp256k1(signing.TokenConfig(token_label=TOKEN_LABEL, key_label=label))
        key = load_chain_key(self.spec(label))
        assert isinstance(key, TokenChainKey)
        return key

    def provision_device(self, out_dir: Path, epoch: int = 0) -> ProvisionedDevice:
        """Like agent.provision.provision, with the device key in the token: the folder gets the
        blinding key and the enrolment, and no device key file."""
        self.device_count += 1
        label = f"device-{self.device_count}"
        ident = self.generate(label)
        out_dir.mkdir(parents=True, exist_ok=True)
        base = ident.public_key.hex()
        blind = secrets.token_bytes(chain.BLINDING_KEY_LEN)
        blind_path, enrol_path = out_dir / f"{base}.blind", out_dir / f"{base}.enrol.json"
        save_blinding_key(blind_path, blind)
        msg = enrolment(ident.public_key, epoch, bytes(32))
        enrol_path.write_text(json.dumps(msg.to_json(), indent=1) + "\n")
        return ProvisionedDevice(ident, blind, epoch, Path(self.spec(label)), blind_path, enrol_path, msg)


_BIND_TAG = domain_tag(BindTransportKey.NAME)


def bind_transport_key(ledger_id: bytes, principal: Identity, transport_key: bytes) -> BindTransportKey:
    """The admin tx naming `transport_key` as the libp2p key `principal` gossips under (H8)."""
    msg = transport_binding_message(ledger_id, principal.public_key, transport_key)
    return BindTransportKey(principal=principal.public_key, transport_key=transport_key,
                            endorsement=principal.sign(_BIND_TAG, msg))
