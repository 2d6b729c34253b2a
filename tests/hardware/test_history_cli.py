"""The hardware admin commands and a device's chain of custody against a running ledger over HTTP:
enrol a P-256 device by key, allowlist its boot, record evidence, rotate its key, revoke it; then
`GET /v1/devices/{id}/history` and `faultproof device history` list every step with its entry."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from click.testing import CliRunner, Result

from agent.cli import device
from faultproof import attestation, signing
from faultproof.identity import domain_tag
from faultproof.messages import RotateDeviceKey, rotation_message
from ledger.admin_cli import admin
from ledger.client import LedgerClient
from tests.ledger.helpers import HOUR, T0, ManualClock, make_ledger, serve_ledger

IMAGES = (b"boot-1", b"fw-good", b"cfg-1")


async def _run(cmd: object, *args: str) -> Result:
    return await asyncio.to_thread(CliRunner().invoke, cmd, list(args))  # type: ignore[arg-type]


async def test_hardware_admin_commands_and_device_history(tmp_path: Path) -> None:
    keys = make_ledger(4)
    key_file = tmp_path / "admin.key"
    keys.admin.save(key_file)
    for name, img in zip(("bootloader", "firmware", "config"), IMAGES, strict=True):
        (tmp_path / name).write_bytes(img)
    async with serve_ledger(tmp_path, keys, clock=ManualClock(T0)) as (env, url):
        base = ["--url", url, "--key", str(key_file)]

        async def ok(*args: str) -> dict[str, object]:
            result = await _run(admin, *base, *args)
            assert result.exit_code == 0, result.output
            return dict(json.loads(result.output.strip().splitlines()[-1]))

        dev = signing.P256KeySigner.generate()
        uncompressed = signing._p256_point(dev.public.data).public_bytes(
            signing.Encoding.X962, signing.PublicFormat.UncompressedPoint)
        enrolled = await ok("enrol-device-key", "--key-type", "p256", "--public-key", uncompressed.hex())
        assert enrolled["kind"] == "enrol_device_key"
        for name in ("bootloader", "firmware", "config"):
            await ok("set-measurement", name, "--file", str(tmp_path / name))
        await ok("set-lockdown", "--breaker-window-ms", str(HOUR), "--breaker-share-bps", "500",
                 "--attestation-max-age-ms", str(HOUR))
        assert env.state.hw.breaker_share_bps == 500 and env.state.hw.attestation_max_age_ms == HOUR
        refused = await _run(admin, *base, "resume-payouts")
        assert refused.exit_code != 0 and "invalid_state_transition" in refused.output
        refused = await _run(admin, *base, "reinstate-device", dev.public_key.hex())
        assert refused.exit_code != 0 and "invalid_state_transition" in refused.output
        bad = await _run(admin, *base, "enrol-device-key", "--key-type", "p256", "--public-key", "02" + "ff" * 32)
        assert bad.exit_code != 0 and "not a p256 public key" in bad.output and "Traceback" not in bad.output

        async with LedgerClient(url) as client:
            head = bytes.fromhex((await client.state())["head_hash"])
            ev = attestation.make_evidence(dev, epoch=0, seq=0, ts_ms=T0, nonce=head,
                                           log=attestation.MeasurementLog.boot(*IMAGES))
            await client.submit(ev)
            new = signing.P256KeySigner.generate()
            eff = T0 + HOUR
            msg = rotation_message(keys.ledger_id, dev.public_key, 2, new.public.data, eff)
            rot = RotateDeviceKey(device_id=dev.public_key, key_type=2, public_key=new.public.data, effective_ms=eff,
                                  endorsement=dev.sign(domain_tag(RotateDeviceKey.NAME), msg))
            await client.submit(keys.sign(rot, nonce=env.state.next_admin_nonce))
        await ok("revoke-device", dev.public_key.hex())

        async with LedgerClient(url) as client:
            hist = await client.device_history(dev.public_key)
            _, entries = await client.entries(-1, limit=100)
        kinds = [e["kind"] for e in hist["events"]]
        assert kinds == ["enrol_device_key", "attest", "rotate_device_key", "revoke_device"]
        by_height = {e.entry.height: e.entry.entry_hash.hex() for e in entries}
        assert all(by_height[e["height"]] == e["entry_hash"] for e in hist["events"])
        assert [k["public_key"] for k in hist["key"]] == [dev.public.data.hex(), new.public.data.hex()]
        assert hist["events"][2]["effective_ms"] == eff

        shown = await _run(device, "history", dev.public_key.hex(), "--ledger", url)
        assert shown.exit_code == 0, shown.output
        assert "rotate_device_key" in shown.output and "p256" in shown.output
        missing = await _run(device, "history", "00" * 32, "--ledger", url)
        assert missing.exit_code != 0 and "not_found" in missing.output
