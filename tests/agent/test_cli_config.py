"""`faultproof device provision`, the example config, config validation, the claim lifecycle table.
Fast; no network."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest
from click.testing import CliRunner

from agent import config as cfgmod
from agent.claims import FINAL, TRANSITIONS, ClaimEvent, ClaimStatus, transition
from agent.provision import load_blinding_key
from cli import main
from faultproof import chain
from faultproof.errors import FaultproofError, Reason
from faultproof.identity import Identity
from faultproof.messages import EnrolDevice

REPO = Path(__file__).resolve().parents[2]


def test_device_provision_writes_private_keys_and_the_enrolment(tmp_path: Path) -> None:
    fw = tmp_path / "firmware.bin"
    fw.write_bytes(b"firmware image")
    result = CliRunner().invoke(main, ["device", "provision", "--out", str(tmp_path / "dev"), "--epoch", "3",
                                       "--firmware", str(fw)])
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    key, blind = Path(out["key_file"]), Path(out["blinding_key_file"])
    for p in (key, blind):
        assert stat.S_IMODE(p.stat().st_mode) == 0o600
    ident = Identity.load(key)
    assert ident.public_key.hex() == out["device_id"]
    assert len(load_blinding_key(blind)) == 31
    enrol = EnrolDevice.from_json(json.loads(Path(out["enrolment"]).read_text()))
    assert enrol.device_id == ident.public_key and enrol.epoch == 3
    assert enrol.anchor == chain.chain_to_bytes(chain.chain_anchor(ident.public_key, 3))
    import hashlib

    assert enrol.firmware_hash == hashlib.sha256(b"firmware image").digest()
    again = CliRunner().invoke(main, ["device", "provision", "--out", str(tmp_path / "dev"), "--name", out["device_id"]])
    assert again.exit_code != 0 and "refusing to overwrite" in again.output


def test_device_provision_declares_a_unit_and_scale(tmp_path: Path) -> None:
    from agent.frames import SensorSpec
    from agent.provision import load_sensor

    ok = CliRunner().invoke(main, ["device", "provision", "--out", str(tmp_path), "--unit", "degC", "--scale", "100"])
    assert ok.exit_code == 0, ok.output
    assert load_sensor(tmp_path, json.loads(ok.output)["device_id"]) == SensorSpec("degC", 100)
    for args, words in ((["--unit", "degC"], "go together"), (["--unit", "deg C", "--scale", "10"], "--unit/--scale"),
                        (["--unit", "degC", "--scale", "0"], "--scale")):
        bad = CliRunner().invoke(main, ["device", "provision", "--out", str(tmp_path / "x"), *args])
        assert bad.exit_code != 0 and words in bad.output and "Traceback" not in bad.output, bad.output


def test_device_provision_records_how_often_the_device_signs(tmp_path: Path) -> None:
    """DESIGN §16: --sign-every S is kept for the agent beside the .blind; out of 1..64 it is a
    one-line error, no traceback."""
    from agent.provision import load_sign_every

    ok = CliRunner().invoke(main, ["device", "provision", "--out", str(tmp_path), "--sign-every", "8"])
    assert ok.exit_code == 0, ok.output
    assert load_sign_every(tmp_path, json.loads(ok.output)["device_id"]) == 8
    bad = CliRunner().invoke(main, ["device", "provision", "--out", str(tmp_path / "x"), "--sign-every", "65"])
    assert bad.exit_code == 2 and "--sign-every" in bad.output and "Traceback" not in bad.output, bad.output


def test_example_config_loads_and_bad_values_are_named() -> None:
    cfg = cfgmod.load(REPO / "configs" / "agent.example.toml")
    assert cfg.ledger_url.startswith("http") and cfg.ingest.synchronous == "FULL"
    base = {"agent": {"key_file": "k", "data_dir": "d", "blinding_keys_dir": "b", "ledger_url": "http://x"}}
    assert cfgmod.from_dict(base).prover.circuits == (16,)
    assert cfg.tpm == cfgmod.TpmConfig(tcti="", quote_interval_s=600.0)  # no TPM unless named
    tpm = cfgmod.from_dict({**base, "tpm": {"tcti": "swtpm:host=127.0.0.1,port=2321", "quote_interval_s": 60}}).tpm
    assert tpm.tcti.startswith("swtpm:") and tpm.quote_interval_s == 60.0
    for bad, words in [
        ({**base, "tpm": {"quote_interval_s": -1}}, "quote_interval_s"),
        ({**base, "ingest": {"reorder_window": 10}}, "reorder_window"),
        ({**base, "ingest": {"nope": 1}}, "unknown key"),
        ({**base, "prover": {"circuits": [1]}}, "circuits"),
        ({"agent": {**base["agent"], "ledger_url": "ftp://x"}}, "ledger_url"),
        ({**base, "gossip": {"bootstrap": ["/ip4/1.2.3.4/tcp/1"]}}, "/p2p/"),
        ({**base, "http": {"port": "80"}}, "integer"),
    ]:
        with pytest.raises(cfgmod.ConfigError, match=words):
            cfgmod.from_dict(bad)


def test_claim_lifecycle_table() -> None:
    assert transition(ClaimStatus.DETECTED, ClaimEvent.PROVED) is ClaimStatus.PROVED
    assert transition(ClaimStatus.SUBMITTED, ClaimEvent.PAID) is ClaimStatus.PAID
    # Nothing leaves a final state, except that a payout the ledger holds is always recorded.
    assert {(s, e) for s, e in TRANSITIONS if s in FINAL} == {(ClaimStatus.REJECTED, ClaimEvent.PAID)}
    with pytest.raises(FaultproofError) as e:
        transition(ClaimStatus.DETECTED, ClaimEvent.SENT)  # never send what is not proved and persisted
    assert e.value.reason is Reason.INVALID_STATE_TRANSITION
