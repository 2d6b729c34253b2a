"""Transport keys (DESIGN §15 H8): a token-keyed oracle or agent gossips under a separate libp2p
file key, bound on the ledger by an admin tx its token key endorses; gossip gates admit the bound
key in its principal's place. Also how daemons load a token key with its transport key."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from click.testing import CliRunner
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from faultproof import signing
from faultproof.errors import FaultproofError, Reason
from faultproof.identity import Identity, domain_tag
from faultproof.messages import BindTransportKey, EnrolAgent, transport_binding_message
from ledger.admin_cli import admin
from ledger.state import gossip_senders
from oracle.config import ConfigError
from oracle.config import from_dict as oracle_config
from tests.hardware.conftest import token_cfg
from tests.ledger.helpers import T0, ManualClock, identity, make_ledger, serve_ledger

TAG = domain_tag(BindTransportKey.NAME)


def _bind(ledger_id: bytes, principal: Identity, transport: bytes, signer: Identity | None = None) -> BindTransportKey:
    msg = transport_binding_message(ledger_id, principal.public_key, transport)
    return BindTransportKey(principal=principal.public_key, transport_key=transport,
                            endorsement=(signer or principal).sign(TAG, msg))


def _world() -> tuple:  # type: ignore[type-arg]
    keys = make_ledger(3)
    state = keys.new_state()
    agent = identity("agent")
    state.apply(keys.sign(EnrolAgent(agent_id=agent.public_key)), T0)
    return keys, state, agent


def test_bound_transport_keys_are_admitted_for_their_principal_only() -> None:
    keys, state, agent = _world()
    oracle, t_oracle, t_agent = keys.oracles[0], Identity.generate(), Identity.generate()
    members = frozenset(o.public_key for o in keys.oracles)
    assert gossip_senders(state, members) == members
    for principal, t in ((oracle, t_oracle), (agent, t_agent)):
        effect, _ = state.apply(keys.sign(_bind(keys.ledger_id, principal, t.public_key)), T0)
        assert effect.kind == "bind_transport_key"
    assert gossip_senders(state, members) == members | {t_oracle.public_key}
    assert gossip_senders(state, members | {agent.public_key}) == members | {agent.public_key, t_oracle.public_key,
                                                                           t_agent.public_key}
    # A later binding replaces the earlier one (a new transport key after a restart).
    t2 = Identity.generate()
    state.apply(keys.sign(_bind(keys.ledger_id, oracle, t2.public_key)), T0)
    assert t_oracle.public_key not in gossip_senders(state, members) and t2.public_key in gossip_senders(state, members)


@pytest.mark.parametrize("case", ["stranger", "forged", "other_ledger", "self"])
def test_refused_bindings_change_nothing(case: str) -> None:
    keys, state, agent = _world()
    oracle, t = keys.oracles[1], Identity.generate().public_key
    args = {
        "stranger": _bind(keys.ledger_id, identity("nobody"), t),
        "forged": _bind(keys.ledger_id, oracle, t, signer=keys.oracles[2]),
        "other_ledger": _bind(bytes(32), oracle, t),
        "self": _bind(keys.ledger_id, oracle, oracle.public_key),
    }[case]
    before = (state.height, dict(state.hw.transport_keys), state.admin_nonce)
    with pytest.raises(FaultproofError) as e:
        state.apply(keys.sign(args, nonce=state.admin_nonce + 1), T0)
    assert e.value.reason is (Reason.NOT_FOUND if case == "stranger" else Reason.INVALID_PARAMETERS)
    assert (state.height, dict(state.hw.transport_keys), state.admin_nonce) == before


def test_bind_transport_key_round_trips_on_the_wire() -> None:
    keys, _, agent = _world()
    msg = _bind(keys.ledger_id, agent, Identity.generate().public_key)
    assert BindTransportKey.decode(msg.encode()) == msg


def test_a_daemon_loads_its_token_key_and_a_separate_transport_key(token_store: dict[str, str], tmp_path: Path) -> None:
    cfg = token_cfg("daemon-ed")
    pub = signing.token_generate(cfg, signing.KeyType.ED25519)
    transport = Identity.generate()
    transport.save(tmp_path / "t.key")
    spec = f"pkcs11:{cfg.token_label}/{cfg.key_label}"
    signer, gossip = signing.load_process_keys(spec, tmp_path / "t.key")
    assert signer.public_key == pub.key_id and gossip.public_key == transport.public_key
    sig = signer.sign(b"tag", b"body")
    assert signing.verify(pub, b"tag", b"body", sig)
    with pytest.raises(signing.KeyError_, match="transport key"):
        signing.load_process_keys(spec, None)
    p256 = token_cfg("daemon-p256")
    signing.token_generate(p256, signing.KeyType.P256)
    with pytest.raises(signing.KeyError_, match="Ed25519"):
        signing.load_process_keys(f"pkcs11:{p256.token_label}/{p256.key_label}", tmp_path / "t.key")
    # A key file is both, as before, unless a transport key is named.
    Identity.generate().save(tmp_path / "f.key")
    a, b = signing.load_process_keys(tmp_path / "f.key", None)
    assert a is b



def test_a_daemon_that_does_not_gossip_loads_its_token_key_alone(token_store: dict[str, str], tmp_path: Path) -> None:
    """An agent with gossip off (the evm devnet's, claims over HTTP) needs no transport key file."""
    cfg = token_cfg("daemon-alone")
    pub = signing.token_generate(cfg, signing.KeyType.ED25519)
    signer = signing.load_daemon_key(f"pkcs11:{cfg.token_label}/{cfg.key_label}")
    assert signer.public_key == pub.key_id and signing.verify(pub, b"tag", b"body", signer.sign(b"tag", b"body"))
    p256 = token_cfg("daemon-alone-p256")
    signing.token_generate(p256, signing.KeyType.P256)
    with pytest.raises(signing.KeyError_, match="Ed25519"):
        signing.load_daemon_key(f"pkcs11:{p256.token_label}/{p256.key_label}")
    Identity.generate().save(tmp_path / "f.key")
    assert signing.load_daemon_key(tmp_path / "f.key").public_key == Identity.load(tmp_path / "f.key").public_key

def test_oracle_config_names_a_token_key_and_needs_a_transport_key(tmp_path: Path) -> None:
    base = {"oracle": {"key_file": "pkcs11:tok/oracle-1", "data_dir": "d", "ledger_url": "http://127.0.0.1:1",
                       "ledger_id": "ab" * 32}}
    with pytest.raises(ConfigError, match="transport_key_file"):
        oracle_config(base, tmp_path)
    base["oracle"]["transport_key_file"] = "t.key"
    cfg = oracle_config(base, tmp_path)
    assert str(cfg.key_file) == "pkcs11:tok/oracle-1" and cfg.transport_key_file == tmp_path / "t.key"


async def test_admin_cli_binds_a_token_agents_transport_key(token_store: dict[str, str], tmp_path: Path) -> None:
    keys = make_ledger(3)
    key_file = tmp_path / "admin.key"
    keys.admin.save(key_file)
    cfg = token_cfg("cli-agent")
    agent_key = signing.token_generate(cfg, signing.KeyType.ED25519).key_id
    transport = Identity.generate()
    transport.save(tmp_path / "agent.transport.key")
    async with serve_ledger(tmp_path, keys, clock=ManualClock(T0)) as (env, url):
        base = ["--url", url, "--key", str(key_file)]

        async def run(*args: str) -> tuple[int, str]:
            r = await asyncio.to_thread(CliRunner().invoke, admin, [*base, *args])
            return r.exit_code, r.output

        spec = f"pkcs11:{cfg.token_label}/{cfg.key_label}"
        bind = ("bind-transport-key", "--principal-key", spec, "--transport-key-file", str(tmp_path / "agent.transport.key"))
        code, out = await run(*bind)
        assert code != 0 and "not_found" in out and "Traceback" not in out  # not an enrolled agent yet
        assert (await run("enrol-agent", agent_key.hex()))[0] == 0
        code, out = await run(*bind)
        assert code == 0, out
        assert env.state.hw.transport_keys == {agent_key: transport.public_key}
        code, out = await run("enrol-gateway-key", agent_key.hex(), "--ak", "04" + "00" * 64)
        assert code != 0 and "invalid_parameters" in out  # not a point on the curve
        point = ec.generate_private_key(ec.SECP256R1()).public_key().public_bytes(
            Encoding.X962, PublicFormat.UncompressedPoint)
        code, out = await run("enrol-gateway-key", agent_key.hex(), "--ak", point.hex())
        assert code == 0, out
        assert env.state.hw.gateway_aks == {agent_key: point}
