"""MQTT as operators run it: Debian's mosquitto with TLS and per-device credentials, configured by
agent/broker.py. A device may publish only to its own topic, a wrong password or a plaintext
connection is refused, and the agent (TLS, its own credentials) receives what devices send. The
real agent daemon behind such a broker is in tests/agent/test_agent_net.py."""

from __future__ import annotations

import secrets
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from agent.broker import (
    AGENT_USER,
    BrokerConfig,
    dev_tls_material,
    mosquitto_binary,
    write_broker_files,
)
from faultproof.procs import free_port, wait_port


@dataclass
class SecureBroker:
    port: int
    ca: Path
    passwords: dict[str, str]
    log: Path


def start_secure_broker(root: Path, devices: list[str]) -> tuple[subprocess.Popen[bytes], SecureBroker]:
    tls = dev_tls_material(root / "tls")
    passwords = {AGENT_USER: secrets.token_hex(16), **{d: secrets.token_hex(16) for d in devices}}
    port = free_port()
    cfg = BrokerConfig(port, root / "broker", tls=tls, passwords=passwords)
    conf = write_broker_files(cfg)
    binary = mosquitto_binary()
    assert binary is not None, "make setup installs mosquitto"
    log = open(root / "mosquitto.log", "ab")  # noqa: SIM115 - the child owns it
    proc = subprocess.Popen([binary, "-c", str(conf)], stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    log.close()
    wait_port(port)
    return proc, SecureBroker(port, tls.ca_cert, passwords, cfg.log_file)


def client(b: SecureBroker, user: str, password: str | None, *, tls: bool = True) -> tuple[mqtt.Client, int]:
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"{user[:16]}-{secrets.token_hex(4)}",
                    protocol=mqtt.MQTTv311)
    c.username_pw_set(user, password)
    if tls:
        c.tls_set(ca_certs=str(b.ca))
    result: list[int] = []
    done = threading.Event()

    def on_connect(cl: mqtt.Client, u: object, flags: object, rc: object, props: object) -> None:
        result.append(int(getattr(rc, "value", rc)))  # type: ignore[call-overload]
        done.set()

    c.on_connect = on_connect
    try:
        c.connect("127.0.0.1", b.port, keepalive=10)
    except OSError:
        return c, -1
    c.loop_start()
    done.wait(5)
    return c, result[0] if result else -1


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecureBroker]:
    root = tmp_path_factory.mktemp("mosquitto")
    proc, b = start_secure_broker(root, ["aa" * 32, "bb" * 32])
    try:
        yield b
    finally:
        proc.terminate()
        proc.wait(10)


def _received(b: SecureBroker) -> tuple[mqtt.Client, list[str]]:
    got: list[str] = []
    agent, rc = client(b, AGENT_USER, b.passwords[AGENT_USER])
    assert rc == 0
    agent.on_message = lambda c, u, msg: got.append(msg.topic)
    agent.subscribe("faultproof/v1/devices/+/frames", qos=1)
    time.sleep(0.3)
    return agent, got


def test_a_device_publishes_only_to_its_own_topic(broker: SecureBroker) -> None:
    agent, got = _received(broker)
    dev, rc = client(broker, "aa" * 32, broker.passwords["aa" * 32])
    assert rc == 0
    dev.publish(f"faultproof/v1/devices/{'aa' * 32}/frames", b"own", qos=1).wait_for_publish(5)
    dev.publish(f"faultproof/v1/devices/{'bb' * 32}/frames", b"forged", qos=1).wait_for_publish(5)
    deadline = time.monotonic() + 5
    while not got and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.5)
    assert got == [f"faultproof/v1/devices/{'aa' * 32}/frames"]  # the other device's topic is refused
    for c in (dev, agent):
        c.disconnect()
        c.loop_stop()


def test_wrong_password_and_plaintext_are_refused(broker: SecureBroker) -> None:
    bad, rc = client(broker, "aa" * 32, "not-the-password")
    assert rc not in (0, -1)  # CONNACK: not authorised
    bad.loop_stop()
    stranger, rc = client(broker, "cc" * 32, "anything")
    assert rc not in (0, -1)
    stranger.loop_stop()
    plain, rc = client(broker, "aa" * 32, broker.passwords["aa" * 32], tls=False)
    assert rc != 0  # a TLS listener does not speak plaintext MQTT
    plain.loop_stop()


def test_the_password_file_holds_no_password(broker: SecureBroker, tmp_path_factory: pytest.TempPathFactory) -> None:
    passwd = next(Path(tmp_path_factory.getbasetemp()).rglob("broker/passwd"))
    text = passwd.read_text()
    assert all(p not in text for p in broker.passwords.values())  # hashed by mosquitto_passwd -U
    assert passwd.stat().st_mode & 0o077 == 0


def test_a_burst_of_refused_logins_quarantines_the_device(broker: SecureBroker, tmp_path: Path) -> None:
    """DESIGN §15: the agent reads mosquitto's log; refused logins for device X quarantine X."""
    from agent.anomaly import Signal, Thresholds
    from agent.brokerlog import BrokerLogReader, LogTail, refused_devices
    from agent.store import Store
    from tests.agent.test_ingest import NOW, engine

    x, other = bytes.fromhex("aa" * 32), bytes.fromhex("bb" * 32)
    e, _ = engine(tmp_path / "q.db", [])
    tail, reader = LogTail(broker.log), BrokerLogReader()
    refused: list[bytes] = []
    try:
        dev, rc = client(broker, "aa" * 32, broker.passwords["aa" * 32])  # X logs in once (its address)
        assert rc == 0
        dev.disconnect()
        dev.loop_stop()
        n = Thresholds().limit(Signal.LOGIN_REFUSED)
        for _ in range(n):
            bad, rc = client(broker, "aa" * 32, "not-the-password")
            assert rc not in (0, -1)
            bad.loop_stop()
        deadline = time.monotonic() + 10
        while len(refused) < n and time.monotonic() < deadline:
            refused += refused_devices(reader, tail.read(), {x, other})
            time.sleep(0.1)
        assert refused == [x] * n
        e.broker_refused(refused, NOW)
        done = threading.Event()
        e.run_op(lambda store: None, lambda v, exc: done.set())
        assert done.wait(10)
        q = e.anomaly.quarantined(x)
        assert q is not None and q.signal is Signal.LOGIN_REFUSED and q.count == n
        assert q.to_json()["signal"] == "login_refused"
        assert e.anomaly.quarantined(other) is None
    finally:
        e.stop()
    store = Store(tmp_path / "q.db")
    try:
        assert store.counters().get("quarantined:login_refused") == 1
        assert store.counters().get("broker_refused") == n
    finally:
        store.close()
