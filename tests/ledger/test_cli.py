"""The ledger's command lines and configuration: init, config validation, every admin command against
a running ledger, policy files, and offline receipt verification."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from faultproof.identity import Identity
from faultproof.messages import TriggerKind
from ledger.admin_cli import admin
from ledger.cli import ledger, receipt
from ledger.client import LedgerClient
from ledger.config import ConfigError, load_config
from ledger.policy_file import NOW_LEAD_MS, PolicyFileError, parse_policy
from tests.ledger.helpers import ManualClock, Scenario, identity, make_ledger, serve_ledger

REPO = Path(__file__).resolve().parents[2]


def _config(tmp_path: Path, extra: str = "") -> Path:
    path = tmp_path / "ledger.toml"
    keys = "\n".join(f'    "{tmp_path}/oracle-{i}.key",' for i in range(4))
    path.write_text(f'[ledger]\ndb = "{tmp_path}/l.db"\nledger_key = "{tmp_path}/ledger.key"\n'
                    f'[genesis]\nadmin_key = "{tmp_path}/admin.key"\noracle_keys = [\n{keys}\n]\n{extra}')
    return path


def test_example_config_is_valid() -> None:
    cfg = load_config(REPO / "configs" / "ledger.example.toml")
    assert cfg.host == "127.0.0.1" and cfg.synchronous == "FULL" and cfg.max_batch > 1
    assert len(cfg.genesis.oracle_keys) == 5 and cfg.genesis.threshold == 0


@pytest.mark.parametrize("extra, message", [
    ("[server]\nport = 70000\n", "server.port"),
    ("[server]\nbogus = 1\n", "unknown key"),
    ("[nonsense]\na = 1\n", "unknown section"),
    ("[durability]\nsynchronous = \"SOMETIMES\"\n", "durability.synchronous"),
    ("[server]\nport = \"8700\"\n", "wrong type"),
    ("[durability]\nmax_batch = 0\n", "max_batch"),
])
def test_config_errors_name_the_key(tmp_path: Path, extra: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config(_config(tmp_path, extra))


def test_inline_secret_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "x.toml"
    path.write_text(f'[ledger]\ndb = "a.db"\nledger_key = "{"ab" * 32}"\n')
    with pytest.raises(ConfigError, match="inline key"):
        load_config(path)


def test_init_creates_key_genesis_and_db(tmp_path: Path) -> None:
    path = _config(tmp_path)
    result = CliRunner().invoke(ledger, ["init", "--config", str(path), "--dev-keys"])
    assert result.exit_code == 0, result.output
    info = json.loads(result.output.strip().splitlines()[-1])
    assert info["oracles"] == 4 and info["threshold"] == 3 and (tmp_path / "l.db").exists()
    assert (tmp_path / "ledger.key").stat().st_mode & 0o077 == 0
    again = CliRunner().invoke(ledger, ["init", "--config", str(path)])
    assert again.exit_code != 0 and "already exists" in again.output
    verified = CliRunner().invoke(ledger, ["verify", "--config", str(path)])
    assert verified.exit_code == 0 and "OK: 1 entries" in verified.output


def test_init_without_oracle_keys_explains(tmp_path: Path) -> None:
    result = CliRunner().invoke(ledger, ["init", "--config", str(_config(tmp_path))])
    assert result.exit_code != 0 and "not found" in result.output


def test_policy_file_parsing() -> None:
    text = (REPO / "configs" / "policies" / "overheat.example.toml").read_text()
    ids = {"device_id": b"\x01" * 32, "beneficiary": b"\x02" * 32, "circuit_id": b"\x03" * 32}
    now = int(dt.datetime(2026, 1, 1, tzinfo=dt.UTC).timestamp() * 1000)
    p = parse_policy(text, ids, now_ms=now)
    assert p.kind == TriggerKind.COUNT_ABOVE and p.threshold == 3000 + 2**31 and p.lo == p.hi == p.gap_ms == 0
    assert p.start_ms == now + NOW_LEAD_MS and p.end_ms == p.start_ms + 365 * 86_400_000
    with pytest.raises(PolicyFileError, match="needs the current time"):
        parse_policy(text, ids)
    with pytest.raises(PolicyFileError, match="duration"):
        parse_policy(text.replace('"+365d"', '"+1y"'), ids, now_ms=now)
    stuck = parse_policy((REPO / "configs" / "policies" / "stuck-sensor.example.toml").read_text(), ids,
                         now_ms=now)
    assert stuck.kind == TriggerKind.STUCK and stuck.threshold == 0 and stuck.count == 8
    with pytest.raises(PolicyFileError, match="does not use"):
        parse_policy(text.replace("count = 3", "count = 3\ngap_ms = 5"), ids, now_ms=now)


async def _cli(*args: str) -> Result:
    return await asyncio.to_thread(CliRunner().invoke, admin, list(args))


async def test_admin_commands_against_a_running_ledger(tmp_path: Path) -> None:
    keys = make_ledger(4)
    key_file = tmp_path / "admin.key"
    keys.admin.save(key_file)
    # before the example policy's term starts (a term may not start in the past, DESIGN §11)
    december = int(dt.datetime(2025, 12, 1, tzinfo=dt.UTC).timestamp() * 1000)
    async with serve_ledger(tmp_path, keys, clock=ManualClock(december)) as (env, url):
        base = ["--url", url, "--key", str(key_file)]

        async def ok(*args: str) -> dict[str, object]:
            result = await _cli(*base, *args)
            assert result.exit_code == 0, result.output
            return dict(json.loads(result.output.strip().splitlines()[-1]))

        await ok("deposit", "1000000")
        vkey = tmp_path / "vkey.bin"
        vkey.write_bytes(b"fake verification key")
        registered = await ok("register-circuit", "--vkey-file", str(vkey), "--n", "16")
        circuit_id = next(iter(env.state.circuits)).hex()
        assert registered["circuit_id"] == circuit_id  # printed, so operators never compute it
        device = identity("cli-device")
        await ok("enrol-device", device.public_key.hex(), "--firmware-hash", "11" * 32)
        # the file `faultproof device provision` writes is what enrol-device takes, as it is
        from agent.provision import provision

        provisioned = provision(tmp_path / "devices", name="field-unit")
        enrolled = await ok("enrol-device", "--from", str(tmp_path / "devices" / "field-unit.enrol.json"))
        assert enrolled["device_id"] == provisioned.device_id.hex()
        assert env.state.devices[provisioned.device_id].epoch == 0
        garbage = tmp_path / "garbage.json"
        garbage.write_text('{"device_id": "zz"}')
        refused = await _cli(*base, "enrol-device", "--from", str(garbage))
        assert refused.exit_code == 2 and "not an enrolment file" in refused.output
        assert "Traceback" not in refused.output
        issued = await ok("issue-policy", str(REPO / "configs" / "policies" / "overheat.example.toml"),
                          "--device-id", device.public_key.hex(), "--beneficiary", "22" * 32,
                          "--circuit-id", circuit_id)
        assert issued["kind"] == "issue_policy" and issued["policy_id"]
        env.clock.set(int(dt.datetime(2026, 6, 1, tzinfo=dt.UTC).timestamp() * 1000))  # into the term
        agent = identity("cli-agent")
        await ok("enrol-agent", agent.public_key.hex())
        await ok("revoke-agent", agent.public_key.hex())
        await ok("withdraw", "10")
        members = [identity(f"cli-oracle-{i}").public_key.hex() for i in range(3)]
        await ok("rotate-oracles", *(a for m in members for a in ("--member", m)))
        assert env.state.oracle_set.threshold == 3
        await ok("revoke-device", device.public_key.hex())
        nonce = await _cli("--url", url, "nonce")
        assert json.loads(nonce.output)["next_admin_nonce"] == 11
        listing = await _cli("--url", url, "policies", "--json")
        # "now" in the example is the admin's wall clock, ahead of this test ledger's manual clock
        assert json.loads(listing.output)[0]["status"] == "issued"
        early = await _cli("--url", url, "expire", str(issued["policy_id"]))
        assert early.exit_code != 0 and "expiry_too_early" in early.output
        refused = await _cli(*base, "withdraw", "999999999")
        assert refused.exit_code != 0 and "insufficient_free_capital" in refused.output
        new_admin = tmp_path / "admin2.key"
        Identity.generate().save(new_admin)
        await ok("rotate-admin", "--new-key", str(new_admin))
        stale = await _cli(*base, "deposit", "1")
        assert stale.exit_code != 0 and "not_admin" in stale.output
        table = await _cli("--url", url, "policies")
        assert table.exit_code == 0 and "issued" in table.output


async def test_receipt_verify_offline(tmp_path: Path) -> None:
    keys = make_ledger(5)
    sc = Scenario.standard(keys)
    async with serve_ledger(tmp_path, keys) as (env, url), LedgerClient(url) as client:
        await env.ok_all(sc.setup_txs)
        env.clock.set(sc.time_after(0))
        await client.submit(keys.qc(sc.body(0)))
        rec = await client.receipt(sc.body(0).claim_id)
    as_json = tmp_path / "receipt.json"
    as_json.write_text(json.dumps(rec.to_json()))
    as_msgpack = tmp_path / "receipt.bin"
    as_msgpack.write_bytes(rec.encode())
    for path in (as_json, as_msgpack):
        result = CliRunner().invoke(receipt, ["verify", str(path), "--ledger-id", keys.ledger_id.hex()])
        assert result.exit_code == 0 and result.output.startswith("OK"), result.output
    forged = rec.replace(entry=rec.entry.replace(entry=rec.entry.entry.replace(paid=99)))
    bad = tmp_path / "forged.bin"
    bad.write_bytes(forged.encode())
    result = CliRunner().invoke(receipt, ["verify", str(bad)])
    assert result.exit_code == 1 and "signature" in result.output
    other = CliRunner().invoke(receipt, ["verify", str(as_json), "--ledger-id", "00" * 32])
    assert other.exit_code == 1
