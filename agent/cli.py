"""`faultproof agent ...` and `faultproof device ...` (registered lazily by cli/__init__.py).

    faultproof agent run --config configs/agent.example.toml
    faultproof agent release DEVICE_ID --config configs/agent.example.toml
    faultproof device provision --out keys/devices [--epoch 0] [--firmware HASH_OR_FILE]
    faultproof device simulate --key K --blind B --mqtt 127.0.0.1:1883 | --http URL ...

This file only parses arguments and calls agent.daemon / agent.provision / agent.simulator; it
must never print a secret.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import click

from faultproof.commandline import check_store, config_option, json_option, ledger_option
from faultproof.identity import KeyFileError
from faultproof.logs import log_options, setup_logging
from faultproof.operator_errors import OperatorError


@click.group()
def agent() -> None:
    """The gateway agent: signed frames in, proven claims out."""


@agent.command("run")
@config_option("Agent", "configs/agent.example.toml")
@log_options
def run(config_path: Path, log_level: str | None, log_format: str) -> None:
    """Run the agent daemon until SIGTERM/SIGINT."""
    from agent import config as cfgmod
    from agent.daemon import main

    try:
        cfg = cfgmod.load(config_path)
    except cfgmod.ConfigError as e:
        raise OperatorError(str(e)) from None
    from agent.store import MIGRATIONS

    check_store(cfg.store_path, "agent", MIGRATIONS)
    setup_logging(log_level or cfg.log_level, log_format)
    from agent.daemon import StartupError

    try:
        code = asyncio.run(main(cfg))
    except StartupError as e:  # the one line of a refusal to start, exit 2
        raise OperatorError(f"agent refused to start: {e}") from None
    sys.exit(code)


@agent.command("release")
@config_option("Agent", "configs/agent.example.toml")
@click.argument("device_id")
def release(config_path: Path, device_id: str) -> None:
    """End this agent's quarantine of DEVICE_ID (DESIGN §15) once you have looked at why (the log,
    /v1/status `quarantined`): its held claims are sent again. Quarantines outlive restarts; one
    the ledger never lifts (replays, rate jumps, refused logins, ...) ends only here. Run it with the
    agent stopped, or restart the agent after it."""
    from agent import config as cfgmod
    from agent.store import MIGRATIONS, Store

    try:
        cfg = cfgmod.load(config_path)
    except cfgmod.ConfigError as e:
        raise OperatorError(str(e)) from None
    try:
        did = bytes.fromhex(device_id)
    except ValueError:
        did = b""
    if len(did) != 32:
        raise OperatorError(f"{device_id!r} is not a device id (64 hex characters)")
    if not cfg.store_path.exists():
        raise OperatorError(f"no agent store at {cfg.store_path}: this agent has quarantined nothing (check --config)")
    check_store(cfg.store_path, "agent", MIGRATIONS)
    store = Store(cfg.store_path)
    try:
        held = {q.device_id: q for q in store.quarantines()}
        q = held.get(did)
        if q is None:
            others = ", ".join(d.hex()[:16] + "…" for d in held) or "none"
            raise OperatorError(f"device {did.hex()[:16]}… is not quarantined at this agent (quarantined: {others})")
        store.delete_quarantine(did)
        store.add_counters({f"released:{q.signal.value}": 1})
    finally:
        store.close()
    click.echo(f"released device {did.hex()} (quarantined since {q.since_ms} ms for {q.signal.value}); "
               "restart the agent if it is running")


@click.group()
def device() -> None:
    """Device keys and the device simulator."""


@device.command("provision")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Directory for <device_id>.key, <device_id>.blind (both 0600) and <device_id>.enrol.json.")
@click.option("--name", default=None, help="File name stem instead of the device id.")
@click.option("--epoch", default=0, show_default=True, type=click.IntRange(0, 2**32 - 1))
@click.option("--firmware", "firmware", default="0" * 64,
              help="Firmware hash (64 hex chars) or a firmware image file to hash (SHA-256).")
@click.option("--force", is_flag=True, help="Overwrite existing key files.")
@click.option("--unit", default=None, help="The sensor's unit (e.g. degC); with --scale, the agent takes decimal "
              "`value`s for this device (<device_id>.sensor.json, kept beside the .blind).")
@click.option("--scale", default=None, type=click.IntRange(1, 10**9),
              help="Integer readings per unit: 100 means 21.5 degC is the reading 2150.")
@click.option("--sign-every", "sign_every", default=1, show_default=True, type=click.IntRange(1, 64),
              help="The device signs seq 0 and every s-th frame, the others travel unsigned (DESIGN §16); "
              "s must divide the n of every circuit its policies use (<device_id>.sign_every, beside the .blind).")
def provision_cmd(out_dir: Path, name: str | None, epoch: int, firmware: str, force: bool,
                  unit: str | None, scale: int | None, sign_every: int) -> None:
    """Make a device key, its 31-byte blinding key and the enrolment request (EnrolDevice JSON).

    Give the .blind file to the agent (its blinding_keys_dir), the .key to the device's secure
    element, and the .enrol.json to the underwriter, who enrols the device on the ledger."""
    from agent.frames import SensorSpec
    from agent.provision import firmware_hash_of, provision
    from faultproof.errors import DecodeError

    if (unit is None) != (scale is None):
        raise OperatorError("--unit and --scale go together (e.g. --unit degC --scale 100)")
    try:
        sensor = SensorSpec.from_json({"unit": unit, "scale": scale}) if unit is not None else None
    except DecodeError as e:
        raise OperatorError(f"--unit/--scale: {e.message}") from None
    try:
        fw = firmware_hash_of(firmware)
    except OSError as e:
        raise OperatorError(f"--firmware: {e}") from None
    try:
        p = provision(out_dir, name=name, epoch=epoch, firmware_hash=fw, overwrite=force, sensor=sensor,
                      sign_every=sign_every)
    except KeyFileError as e:
        raise OperatorError(str(e)) from None
    except OSError as e:
        raise OperatorError(f"cannot write the device's files in {out_dir}: {e.strerror} (give another --out)") from None
    click.echo(json.dumps({"device_id": p.device_id.hex(), "key_file": str(p.key_path),
                           "blinding_key_file": str(p.blinding_path), "enrolment": str(p.enrol_path),
                           "enrol": p.enrol.to_json()}, indent=1))


@device.command("simulate")
@click.option("--key", "key_file", required=True, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--blind", "blind_file", required=True, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--mqtt", "mqtt_addr", default=None, help="host:port of an MQTT broker")
@click.option("--http", "http_url", default=None, help="agent base URL (POST /v1/frames)")
@click.option("--readings", default=100, show_default=True, type=click.IntRange(1))
@click.option("--rate", default=10.0, show_default=True, help="readings per second")
@click.option("--base", default=2150, show_default=True, help="benign reading level (centi-degrees)")
@click.option("--noise", default=40, show_default=True)
@click.option("--fault", "faults", multiple=True,
              help="KIND:AT_SEQ[:COUNT[:VALUE]] (run, excursion, stuck, out_of_range) or dropout:AT_SEQ:GAP_MS")
@click.option("--epoch", default=0, show_default=True)
@click.option("--mqtt-password-file", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="The device's broker password (its username is its device id).")
@click.option("--mqtt-ca", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Connect to the broker over TLS, trusting this CA (PEM).")
def simulate(key_file: Path, blind_file: Path, mqtt_addr: str | None, http_url: str | None, readings: int,
             rate: float, base: int, noise: int, faults: tuple[str, ...], epoch: int,
             mqtt_password_file: Path | None, mqtt_ca: Path | None) -> None:
    """Run one simulated device from seq 0 against an agent (MQTT or HTTP)."""
    from agent.simulator import (
        Fault,
        HttpTransport,
        MqttTransport,
        Sensor,
        SimDevice,
        Transport,
        run_device,
    )

    parsed = []
    for spec in faults:
        parts = spec.split(":")
        try:
            kind, at = parts[0], int(parts[1])
            nums = [int(x) for x in parts[2:]]
        except (IndexError, ValueError):
            raise click.BadParameter(f"bad fault {spec!r}") from None
        if kind == "dropout":
            parsed.append(Fault.dropout(at, nums[0] if nums else 10_000))
        else:
            parsed.append(Fault(kind, at, count=nums[0] if nums else 0, value=nums[1] if len(nums) > 1 else 0,
                                every=2 if kind == "excursion" else 1))
    try:
        dev = SimDevice.load(key_file, blind_file, epoch=epoch, sensor=Sensor(base=base, noise=noise), faults=parsed)
        password = mqtt_password_file.read_text().strip() if mqtt_password_file else None
    except KeyFileError as e:
        raise OperatorError(str(e)) from None
    except OSError as e:
        raise OperatorError(f"cannot read {e.filename}: {e.strerror} (check --mqtt-password-file)") from None

    async def go() -> None:
        transport: Transport
        if mqtt_addr:
            host, _, port = mqtt_addr.rpartition(":")
            # client id = username = device id: the agent attributes refused logins by it (DESIGN §15)
            mqtt_t = MqttTransport(host or "127.0.0.1", int(port), client_id=dev.device_id.hex(),
                                   username=dev.device_id.hex(), password=password,
                                   tls_ca_file=str(mqtt_ca) if mqtt_ca else None)
            mqtt_t.answer_attestation(dev)  # the agent's re-attestation requests
            transport = mqtt_t
        elif http_url:
            transport = HttpTransport(http_url)
        else:
            raise click.UsageError("give --mqtt or --http")
        async with transport:
            await run_device(dev, transport, readings=readings, rate_hz=rate)

    import aiohttp

    try:
        asyncio.run(go())
    except (aiohttp.ClientError, OSError, TimeoutError) as e:
        where = f"the MQTT broker at {mqtt_addr} (--mqtt)" if mqtt_addr else f"the agent at {http_url} (--http)"
        raise OperatorError(f"cannot reach {where}: {e}; is it running?") from None
    click.echo(json.dumps({"device_id": dev.device_id.hex(), "sent": readings}))


@device.command("history")
@click.argument("device_id")
@ledger_option()
@json_option
def history(device_id: str, ledger_url: str, as_json: bool) -> None:
    """A device's chain of custody: every ledger entry about it (DESIGN §15)."""
    from faultproof.errors import FaultproofError
    from ledger.admin_cli import hex32
    from ledger.client import LedgerClient

    did = hex32(device_id, "DEVICE_ID")

    async def go() -> dict[str, object]:
        async with LedgerClient(ledger_url) as client:
            return await client.device_history(did)

    try:
        out = asyncio.run(go())
    except FaultproofError as e:
        raise OperatorError(f"{e.reason.value}: {e.message}") from None
    if as_json:
        click.echo(json.dumps(out, indent=1))
        return
    keys = out["key"]
    assert isinstance(keys, list)
    for k in keys:
        click.echo(f"key {k['key_type']} {k['public_key'][:16]}… from {k['since_ms']}")
    events = out["events"]
    assert isinstance(events, list)
    for ev in events:
        click.echo(f"{ev['height']:>8}  {ev['time_ms']}  {ev['kind']:<18} {ev['entry_hash'][:16]}…")


@device.command("decommission")
@click.argument("device_id")
@ledger_option()
@click.option("--agent", "agent_url", envvar="FAULTPROOF_AGENT", default=None,
              help="The agent serving the device: it anchors the device's latest head first.")
@click.option("--key", "key_path", envvar="FAULTPROOF_ADMIN_KEY", default=None,
              help="The admin key file, or pkcs11:TOKEN/LABEL.")
@click.option("--token-key", "token_key", default=None,
              help="pkcs11:TOKEN/LABEL of the device's key, destroyed in the token last (PIN from the environment).")
def decommission(device_id: str, ledger_url: str, agent_url: str | None, key_path: str | None,
                 token_key: str | None) -> None:
    """Retire a device for good (DESIGN §15 H11): its agent anchors its final head, one ledger
    entry closes its policies and revokes it, then its key is destroyed in the token. Each step is
    printed; the ledger's steps are in `faultproof device history`. Settle its claims first: none
    of its windows is paid after, not even one that ended before."""
    import httpx

    from faultproof import signing
    from faultproof.errors import FaultproofError
    from faultproof.messages import DecommissionDevice
    from ledger.admin_cli import hex32, load_admin_key, submit_admin
    from ledger.client import LedgerClient

    did = hex32(device_id, "DEVICE_ID")
    token_cfg = None
    if token_key is not None:
        prefix, _, rest = token_key.partition(":")
        token, _, label = rest.partition("/")
        if prefix != "pkcs11" or not token or not label:
            raise click.BadParameter("--token-key must be pkcs11:TOKEN/LABEL")
        token_cfg = signing.TokenConfig(token_label=token, key_label=label)
    admin_key = load_admin_key(key_path)
    steps: dict[str, object] = {"device_id": did.hex()}
    if agent_url:  # 1. the final head, anchored by the agent that holds the device's frames
        anchor_url = f"{agent_url.rstrip('/')}/v1/devices/{did.hex()}/anchor"
        try:
            answer = httpx.post(anchor_url, json={}, timeout=30)
        except httpx.HTTPError as e:
            raise OperatorError(f"cannot reach the agent at {agent_url} ({type(e).__name__}); "
                                "is it running, and is --agent right?") from None
        if answer.status_code == 404:
            steps["agent_head"] = None  # the agent holds no linked frame of it
        elif answer.is_error:
            raise OperatorError(f"the agent refused to anchor the final head: HTTP {answer.status_code} "
                                f"{answer.text[:200]}")
        else:
            steps["agent_head"] = answer.json()

    async def go() -> dict[str, object]:
        async with LedgerClient(ledger_url) as client:
            head = (await client.device(did)).get("anchored_head")
            named = (head["epoch"], head["seq"], bytes.fromhex(head["chain"])) if head else (0, 0, bytes(32))
            # 2. one entry: the final head checked, policies closed, the device revoked
            result = await submit_admin(client, admin_key, DecommissionDevice(
                device_id=did, epoch=named[0], seq=named[1], chain=named[2]))
            events = (await client.device_history(did))["events"]
            return {"final_head": head, "decommission": {"height": result.height,
                                                         "entry_hash": result.entry_hash.hex()},
                    "history": events}

    try:
        steps.update(asyncio.run(go()))
    except FaultproofError as e:
        raise click.ClickException(f"{e.reason.value}: {e.message}") from None
    if token_cfg is not None:  # 3. the key, destroyed where it lives (revoked already: worthless)
        try:
            steps["token_key_destroyed"] = signing.token_destroy(token_cfg)
        except signing.KeyError_ as e:
            raise click.ClickException(f"decommissioned on the ledger, but the token key was not destroyed: {e}") from None
    click.echo(json.dumps(steps, indent=1))
