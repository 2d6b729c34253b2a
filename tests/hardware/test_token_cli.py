"""`faultproof token` as a real process (its own SoftHSM2 store; PINs only in the environment) and
an admin key that lives in a token signing real transactions for a running ledger."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from faultproof import signing
from faultproof.messages import Genesis
from ledger.admin_cli import admin
from tests.hardware.conftest import TOKEN, token_cfg
from tests.ledger.helpers import T0, LedgerKeys, ManualClock, identity, make_ledger, serve_ledger

REPO = Path(__file__).resolve().parents[2]


def _cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "cli", "token", *args], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=120)


def test_token_commands_in_their_own_process(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SOFTHSM2", "FAULTPROOF_PKCS11"))}
    missing = _cli("init", "--dir", str(tmp_path / "t"), env=env)
    assert missing.returncode != 0 and "FAULTPROOF_PKCS11_PIN" in missing.stderr and "Traceback" not in missing.stderr
    env |= {"FAULTPROOF_PKCS11_PIN": "4711-user", "FAULTPROOF_PKCS11_SO_PIN": "4711-so"}
    init = _cli("init", "--dir", str(tmp_path / "t"), "--label", "fp", env=env)
    assert init.returncode == 0, init.stderr
    env["SOFTHSM2_CONF"] = init.stdout.strip().split("=", 1)[1]
    made = _cli("keygen", "--token", "fp", "--label", "dev-1", "--type", "p256", env=env)
    assert made.returncode == 0, made.stderr
    pub = json.loads(made.stdout)
    assert pub["key_type"] == "p256" and len(bytes.fromhex(pub["public_key"])) == 33
    assert signing.key_id(signing.KeyType.P256, bytes.fromhex(pub["public_key"])).hex() == pub["key_id"]
    again = _cli("pubkey", "--token", "fp", "--label", "dev-1", env=env)
    assert json.loads(again.stdout) == pub
    # DESIGN §13: an oracle's chain key, printed with its address (what the pool binds)
    chain = _cli("keygen", "--token", "fp", "--label", "oracle-1-chain", "--type", "secp256k1", env=env)
    assert chain.returncode == 0, chain.stderr
    made_chain = json.loads(chain.stdout)
    assert made_chain["key_type"] == "secp256k1" and made_chain["address"].startswith("0x")
    from ledger.evm.chain_keys import address_of

    assert address_of(bytes.fromhex(made_chain["public_key"])) == made_chain["address"]
    dup = _cli("keygen", "--token", "fp", "--label", "dev-1", env=env)
    assert dup.returncode != 0 and "already holds" in dup.stderr
    wrong = _cli("pubkey", "--token", "fp", "--label", "dev-1", env={**env, "FAULTPROOF_PKCS11_PIN": "nope"})
    assert wrong.returncode != 0 and "wrong PIN" in wrong.stderr and "nope" not in wrong.stderr
    gone = _cli("destroy", "--token", "fp", "--label", "dev-1", env=env)
    assert gone.returncode == 0 and json.loads(gone.stdout) == {"destroyed": 2}
    after = _cli("pubkey", "--token", "fp", "--label", "dev-1", env=env)
    assert after.returncode != 0 and "no single key pair" in after.stderr
    for f in (tmp_path / "t").rglob("*"):
        if f.is_file():
            assert b"4711-user" not in f.read_bytes() and b"4711-so" not in f.read_bytes()


async def test_admin_key_in_a_token_signs_for_a_running_ledger(token_store: dict[str, str], tmp_path: Path) -> None:
    cfg = token_cfg("ledger-admin")
    admin_pub = signing.token_generate(cfg, signing.KeyType.ED25519)
    base = make_ledger(4)
    g = base.genesis
    genesis = Genesis(nonce=g.nonce, created_ms=g.created_ms, ledger_key=g.ledger_key, admin=admin_pub.key_id,
                      oracles=g.oracles, threshold=g.threshold, development=g.development, max_skew_ms=g.max_skew_ms,
                      rotation_grace_ms=g.rotation_grace_ms)
    keys = LedgerKeys(base.ledger_key, identity("unused-admin"), base.oracles, genesis)
    async with serve_ledger(tmp_path, keys, clock=ManualClock(T0)) as (env, url):
        r = await asyncio.to_thread(CliRunner().invoke, admin,
                                    ["--url", url, "--key", f"pkcs11:{TOKEN}/ledger-admin", "deposit", "1000"])
        assert r.exit_code == 0, r.output
        assert env.state.free == 1000
        p256 = token_cfg("not-an-admin")
        signing.token_generate(p256, signing.KeyType.P256)
        r = await asyncio.to_thread(CliRunner().invoke, admin,
                                    ["--url", url, "--key", f"pkcs11:{TOKEN}/not-an-admin", "deposit", "1"])
        assert r.exit_code != 0 and "must be an Ed25519 key" in r.output
        r = await asyncio.to_thread(CliRunner().invoke, admin, ["--url", url, "--key", "pkcs11:nolabel", "deposit", "1"])
        assert r.exit_code != 0 and "pkcs11:TOKEN/LABEL" in r.output
