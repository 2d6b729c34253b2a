"""Real processes for the agent's tests: an MQTT broker and an agent daemon next to the ledger and
oracles of tests/netfix.py. Also what the devnet can reuse to run an agent.

    broker = start_broker(root)                       # mosquitto on 127.0.0.1
    agent = AgentProc.create(root, net, broker_port)  # config + keys; agent.start()
    devs = agent.new_devices(net, 2, faults={0: [Fault.run(20, 6, 9000)]})  # provisioned + enrolled
    pid = agent.insure(net, devs[0], TriggerParams.run(3000, 3))
    agent.wait_claims(lambda cs: any(c["status"] == "paid" for c in cs))
    agent.kill9(); agent.start()

This file must never signal a process it did not start, nor decide anything the agent decides.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent.provision import provision
from agent.simulator import Fault, Sensor, SimDevice
from faultproof.messages import policy_id
from faultproof.procs import ManagedProcess, free_port, stop_all, wait_port
from faultproof.zk.params import TriggerParams
from tests.netfix import REPO, Network, http, wait_until


def start_broker(root: Path) -> tuple[ManagedProcess, int]:
    """Debian's mosquitto on 127.0.0.1 (agent/broker.py), with its own persistence folder."""
    port = free_port()
    mp = ManagedProcess("broker", ["-m", "agent.broker", "--port", str(port), "--dir", str(root / f"broker-{port}")],
                        root / "logs" / "broker.log", cwd=REPO)
    mp.start()
    wait_port(port, mp)
    return mp, port


@contextlib.contextmanager
def agent_network(root: Path, **settings: dict[str, Any]) -> Iterator[tuple[Network, ManagedProcess, int, AgentProc]]:
    """A ledger and 5 oracles (k = 4), a broker and one started agent (`settings`: its config
    sections); every process is stopped on the way out, whatever happened."""
    net = Network.start(root, n=5, k=4)
    broker = agent = None
    try:
        broker, port = start_broker(root)
        agent = AgentProc.create(root, net, port, ingest=settings.pop("ingest", None))
        if settings:
            agent.write_config(net, **settings)
        agent.start()
        yield net, broker, port, agent
    finally:
        stop_all([p for p in (agent.proc if agent is not None else None, broker) if p is not None])
        net.stop()


@dataclass
class AgentProc:
    root: Path
    config_path: Path
    keys_dir: Path
    store_path: Path
    http_port: int
    gossip_port: int
    broker_port: int
    proc: ManagedProcess
    settings: dict[str, dict[str, Any]]
    devices_made: int = 0  # devices provisioned into keys_dir and enrolled by new_devices
    insured_made: int = 0  # policies issued by insure

    @classmethod
    def create(cls, root: Path, net: Network, broker_port: int, *, ingest: dict[str, Any] | None = None,
               claims: dict[str, Any] | None = None, gossip: bool = True, name: str = "agent") -> AgentProc:
        root = root / name
        (root / "keys").mkdir(parents=True, exist_ok=True)
        keys_dir = root / "devices"
        keys_dir.mkdir(exist_ok=True)
        key_file = root / "keys" / "agent.key"
        if not key_file.exists():
            net.agent.save(key_file)  # netfix enrolled this identity on the ledger
        http_port, gossip_port = free_port(), free_port()
        settings = {"gossip": {"enabled": gossip, "port": gossip_port,
                               "bootstrap": [o.multiaddr() for o in net.oracles]},
                    "prover": {"circuits": [net.circuit.n], "workers": 1},
                    "mqtt": {"host": "127.0.0.1", "port": broker_port},
                    "ingest": {"max_skew_ms": 5000, "reorder_window": 256, **(ingest or {})},
                    "claims": {"follow_interval_s": 0.2, "backoff_initial_s": 0.5, "backoff_max_s": 3.0, **(claims or {})}}
        mp = ManagedProcess(name, ["-m", "cli", "agent", "run", "--config", str(root / "agent.toml")],
                            root.parent / "logs" / f"{name}.log", ready_url=f"http://127.0.0.1:{http_port}/readyz",
                            cwd=REPO)
        a = cls(root, root / "agent.toml", keys_dir, root / "data" / "agent.sqlite3", http_port, gossip_port,
                broker_port, mp, settings)
        a.write_config(net)
        return a

    def write_config(self, net: Network, **overrides: dict[str, Any]) -> None:
        """(Re)write the agent's TOML; `overrides` update sections and stick for later rewrites."""
        for section, values in overrides.items():
            self.settings.setdefault(section, {}).update(values)
        lines = [
            "[agent]",
            f'key_file = "{self.root / "keys" / "agent.key"}"',
            f'data_dir = "{self.root / "data"}"',
            f'blinding_keys_dir = "{self.keys_dir}"',
            f'ledger_url = "{net.ledger_url}"',
            "ledger_wait_s = 5",
            # no device-history anchors: the cases check the ledger's entries exactly
            "ledger_anchor_interval_s = 0",
            "[http]", 'host = "127.0.0.1"', f"port = {self.http_port}",
            *[f"{k} = {json.dumps(v)}" for k, v in self.settings.get("http", {}).items()],
            "[oracles]", "urls = [" + ", ".join(json.dumps(o.url) for o in net.oracles) + "]",
        ]
        for section, values in self.settings.items():
            if section == "http":  # written into the [http] table above
                continue
            lines.append(f"[{section}]")
            lines += [f"{k} = {json.dumps(v)}" for k, v in values.items()]
        self.config_path.write_text("\n".join(lines) + "\n")

    # -- process --
    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def start(self, timeout: float = 90.0) -> None:
        self.proc.start()
        self.proc.wait_ready(timeout)

    def stop(self) -> None:
        self.proc.stop()

    def kill9(self) -> None:
        self.proc.kill9()

    def alive(self) -> bool:
        return self.proc.alive()

    # -- views --
    def status(self) -> dict[str, Any]:
        code, body = http("GET", self.url + "/v1/status", timeout=10)
        assert code == 200, body
        return body

    def claims(self, device_id: bytes | None = None) -> list[dict[str, Any]]:
        q = f"?device_id={device_id.hex()}" if device_id else ""
        code, body = http("GET", self.url + "/v1/claims" + q, timeout=10)
        assert code == 200, body
        return list(body["claims"])

    def wait_claims(self, predicate: Callable[[list[dict[str, Any]]], Any], *, device_id: bytes | None = None,
                    timeout: float = 60.0, what: str = "claims") -> list[dict[str, Any]]:
        return wait_until(lambda: (lambda cs: cs if predicate(cs) else None)(self.claims(device_id)), timeout,
                          0.2, what=what)

    def metric(self, name: str, **labels: str) -> float:
        """Sum of a Prometheus metric's samples whose labels include `labels`."""
        code, raw = http("GET", self.url + "/metrics", timeout=10)
        assert code == 200
        text = raw.decode() if isinstance(raw, bytes) else str(raw)
        total = 0.0
        for line in text.splitlines():
            if not line or line.startswith("#"):
                continue
            head, _, value = line.rpartition(" ")
            mname, _, rest = head.partition("{")
            if mname != name:
                continue
            got = dict(p.split("=", 1) for p in rest.rstrip("}").split(",") if "=" in p)
            if all(got.get(k, "").strip('"') == v for k, v in labels.items()):
                total += float(value)
        return total

    # -- devices --
    def new_devices(self, net: Network, count: int, *, faults: dict[int, Sequence[Fault]] | None = None,
                    base: int = 2150, noise: int = 40, seed: int = 0) -> list[SimDevice]:
        """Provision devices into the agent's key dir and enrol them on the ledger."""
        devs = []
        for i in range(count):
            p = provision(self.keys_dir)
            net.admin_txs([p.enrol])
            devs.append(SimDevice(p.identity, p.blinding_key, sensor=Sensor(base=base, noise=noise, seed=seed + i),
                                  faults=(faults or {}).get(i, ()), provisioned=p))
        self.devices_made += count
        return devs

    def insure(self, net: Network, dev: SimDevice, params: TriggerParams, **overrides: int) -> bytes:
        terms = net.policy_terms(dev, params, **overrides)  # type: ignore[arg-type]  # uses .device_id only
        [(stx, _)] = net.admin_txs([terms])
        self.insured_made += 1
        return policy_id(stx.tx)

    def wait_knows(self, timeout: float = 20.0) -> None:
        """Until the agent knows every device and policy made through this object so far."""
        want_dev, want_pol = self.devices_made, self.insured_made
        wait_until(lambda: (lambda s: s["devices"]["enrolled"] >= want_dev and s["devices"]["with_policy"] >= want_pol)(
            self.status()), timeout, 0.1, what=f"agent knows {want_dev} devices, {want_pol} insured")
