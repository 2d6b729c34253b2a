"""A whole faultproof network on 127.0.0.1, as real processes: what `faultproof devnet` runs.

Owns: key material for a fresh run (0600 key files in the run's folder), the configs it writes for
each process, starting them in order (ledger, MQTT broker, oracles, agent), the development
genesis and the underwriter's setup transactions, and stopping every process it started — by pid,
also on Ctrl-C. It decides nothing the protocol decides: it only starts processes, signs the admin's
transactions and reads the public HTTP APIs.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from faultproof.identity import Identity
from faultproof.messages import AdminTx, Deposit, EnrolAgent, Message, RegisterCircuit
from faultproof.oracle_client import request
from faultproof.procs import ManagedProcess, free_port, stop_all, wait_port


def http_json(method: str, url: str, body: bytes | None = None, content_type: str = "application/json",
              timeout: float = 30.0) -> tuple[int, Any]:
    """One request to a local service; (status, JSON body). Never raises for an HTTP status."""
    answer = request(method, url, body, content_type=content_type, timeout=timeout)
    if answer.body is None and answer.raw:
        return answer.status, {"error": {"code": "http", "message": answer.raw[:200].decode(errors="replace")}}
    return answer.status, answer.body


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return json.dumps(str(value))  # a TOML basic string is a JSON string for our values


def write_toml(path: Path, sections: dict[str, dict[str, Any]]) -> None:
    lines: list[str] = []
    for name, values in sections.items():
        lines.append(f"[{name}]")
        lines += [f"{k} = {_toml_value(v)}" for k, v in values.items()]
        lines.append("")
    path.write_text("\n".join(lines))


@dataclass
class LocalNetwork:
    """Ledger + broker + n oracles + one agent under `root`. Use as a context manager."""

    root: Path
    oracles: int = 5
    threshold: int = 4
    window: int = 16
    max_skew_ms: int = 30_000
    processes: list[ManagedProcess] = field(default_factory=list)
    admin: Identity = field(default_factory=Identity.generate)
    agent_identity: Identity = field(default_factory=Identity.generate)
    oracle_identities: list[Identity] = field(default_factory=list)
    ledger_port: int = 0
    broker_port: int = 0
    agent_port: int = 0
    # econ2: the second agent (devices of the corroborated policy under another agent, DESIGN §14)
    agent2_identity: Identity = field(default_factory=Identity.generate)
    agent2_port: int = 0
    oracle_ports: list[tuple[int, int]] = field(default_factory=list)  # (http, gossip)
    dashboard_port: int = 0
    # "file": 0600 key files as before; "pkcs11": every protocol key in a SoftHSM2 token (DESIGN §15)
    keys_mode: str = "file"
    token: Any = None  # cli.devnet.keys.TokenKeys in pkcs11 mode
    transport_identities: dict[str, Identity] = field(default_factory=dict)  # libp2p keys (pkcs11 mode)
    ledger_id: bytes = b""
    nonce: int = 0
    circuit_id: bytes = b""

    # ------------------------------------------------------------------ layout

    @property
    def keys(self) -> Path:
        return self.root / "keys"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def ledger_url(self) -> str:
        return f"http://127.0.0.1:{self.ledger_port}"

    @property
    def agent_url(self) -> str:
        return f"http://127.0.0.1:{self.agent_port}"

    @property
    def dashboard_url(self) -> str:
        return f"http://127.0.0.1:{self.dashboard_port}/"

    @property
    def oracle_urls(self) -> list[str]:
        return [f"http://127.0.0.1:{h}" for h, _ in self.oracle_ports]

    @property
    def ledger_db(self) -> Path:
        return self.root / "ledger" / "ledger.sqlite3"

    @property
    def devices_dir(self) -> Path:
        return self.root / "agent" / "devices"

    @property
    def agent2_devices_dir(self) -> Path:
        return self.root / "agent-2" / "devices"

    @property
    def agent2_url(self) -> str:
        return f"http://127.0.0.1:{self.agent2_port}"

    def _proc(self, name: str, args: Sequence[str], ready_url: str | None) -> ManagedProcess:
        mp = ManagedProcess(name, ["-m", "cli", *args] if args[0] != "-m" else list(args),
                            self.logs / f"{name}.log", ready_url=ready_url)
        self.processes.append(mp)
        return mp

    # ------------------------------------------------------------------ start

    def prepare(self) -> None:
        """Keys and ports for every process (nothing started yet)."""
        for d in (self.keys, self.logs, self.root / "ledger", self.devices_dir):
            d.mkdir(parents=True, exist_ok=True)
        self.ledger_port, self.broker_port, self.agent_port = free_port(), free_port(), free_port()
        self.oracle_ports = [(free_port(), free_port()) for _ in range(self.oracles)]
        if self.keys_mode == "pkcs11":
            self._prepare_token()
            return
        self.admin.save(self.keys / "admin.key")
        self.agent_identity.save(self.keys / "agent.key")
        self.agent2_identity.save(self.keys / "agent-2.key")
        self.agent2_port = free_port()
        self.oracle_identities = [Identity.generate() for _ in range(self.oracles)]
        for i, ident in enumerate(self.oracle_identities):
            ident.save(self.keys / f"oracle-{i}.key")

    def _prepare_token(self) -> None:
        """pkcs11 mode: the admin, ledger, oracle and agent keys are made in the run's token; only
        the libp2p transport keys are files (DESIGN §15: gossip identity is not what the ledger trusts)."""
        from cli.devnet.keys import TokenKeys

        self.token = TokenKeys(self.root / "token")
        self.token.init()
        self.admin = self.token.generate("admin")
        self.token.generate("ledger")  # used by the ledger process, named in its config
        self.agent_identity = self.token.generate("agent")
        self.agent2_identity = self.token.generate("agent-2")  # the corroborated group's second agent (§14)
        self.agent2_port = free_port()
        self.oracle_identities = [self.token.generate(f"oracle-{i}") for i in range(self.oracles)]
        for name in ["agent", "agent-2", *(f"oracle-{i}" for i in range(self.oracles))]:
            t = Identity.generate()
            t.save(self.keys / f"{name}.transport.key")
            self.transport_identities[name] = t

    def _key(self, name: str) -> str:
        """What a config names for a process's signing key: its key file, or its token key."""
        return self.token.spec(name) if self.token is not None else str(self.keys / f"{name}.key")

    def _transport(self, name: str) -> dict[str, str]:
        return {"transport_key_file": str(self.keys / f"{name}.transport.key")} if self.token is not None else {}

    def bind_transport_keys(self, only: str | None = None) -> None:
        """pkcs11 mode: record on the ledger which libp2p key each oracle and the agent gossips
        under (H8), endorsed by its token key; oracles' gossip gates admit those keys. The second
        agent (§14) is bound on its own (`only`), once it is enrolled."""
        if self.token is None:
            return
        from cli.devnet.keys import bind_transport_key

        principals = [("agent", self.agent_identity)] + [(f"oracle-{i}", o) for i, o in enumerate(self.oracle_identities)]
        if only is not None:
            principals = [("agent-2", self.agent2_identity)] if only == "agent-2" else [
                (n, i) for n, i in principals if n == only]
        self.admin_txs([bind_transport_key(self.ledger_id, ident, self.transport_identities[name].public_key)
                        for name, ident in principals])

    def start_ledger(self) -> None:
        cfg = self.root / "ledger.toml"
        keys: dict[str, Any] = {"admin_key": str(self.keys / "admin.key"),
                                "oracle_keys": [str(self.keys / f"oracle-{i}.key") for i in range(self.oracles)]}
        if self.token is not None:  # token keys: the genesis names their public halves
            keys = {"admin_public_key": self.admin.public_key.hex(),
                    "oracles": [o.public_key.hex() for o in self.oracle_identities]}
        write_toml(cfg, {
            "ledger": {"db": str(self.ledger_db), "ledger_key": self._key("ledger")},
            "genesis": {**keys, "threshold": self.threshold, "development": True, "max_skew_ms": self.max_skew_ms},
            "server": {"host": "127.0.0.1", "port": self.ledger_port},
        })
        init = ManagedProcess("ledger-init", ["-m", "cli", "ledger", "init", "--config", str(cfg)],
                              self.logs / "ledger-init.log")
        init.start()
        assert init.proc is not None
        if init.proc.wait(120) != 0:
            raise RuntimeError(f"ledger init failed:\n{init.tail()}")
        self._proc("ledger", ["ledger", "serve", "--config", str(cfg)], f"{self.ledger_url}/readyz").start()
        self.processes[-1].wait_ready(60)
        status, body = http_json("GET", f"{self.ledger_url}/v1/state")
        assert status == 200, body
        self.ledger_id = bytes.fromhex(body["ledger_id"])
        self.nonce = int(body["admin_nonce"])

    def admin_txs(self, args_list: Sequence[Message]) -> list[AdminTx]:
        """Sign and submit the underwriter's transactions in order; raise if one is refused."""
        out = []
        for args in args_list:
            tx = AdminTx.make(self.ledger_id, self.nonce + 1, args)
            status, body = http_json("POST", f"{self.ledger_url}/v1/tx", tx.sign(self.admin).encode(),
                                     "application/msgpack")
            if status >= 300:
                raise RuntimeError(f"ledger refused {args.NAME}: {status} {body}")
            self.nonce += 1
            out.append(tx)
        return out

    def submit(self, tx: Message) -> dict[str, Any]:
        """Submit a transaction anyone may send (evidence, expiry); raise if it is refused."""
        status, body = http_json("POST", f"{self.ledger_url}/v1/tx", tx.encode(), "application/msgpack")
        if status >= 300:
            raise RuntimeError(f"ledger refused {tx.NAME}: {status} {body}")
        return dict(body)

    def setup_pool(self, deposit: int, register: RegisterCircuit) -> None:
        self.circuit_id = register.circuit_id
        self.admin_txs([Deposit(amount=deposit), register, EnrolAgent(agent_id=self.agent_identity.public_key)])

    def start_broker(self) -> None:
        mp = self._proc("broker", ["-m", "agent.broker", "--port", str(self.broker_port),
                                   "--dir", str(self.root / "broker")], None)
        mp.start()
        wait_port(self.broker_port, mp)

    def oracle_multiaddr(self, i: int) -> str:
        from faultproof.gossip.keys import peer_id_for_public_key

        gossip_key = self.transport_identities.get(f"oracle-{i}", self.oracle_identities[i])
        peer = peer_id_for_public_key(gossip_key.public_key)
        return f"/ip4/127.0.0.1/tcp/{self.oracle_ports[i][1]}/p2p/{peer}"

    def start_oracles(self) -> None:
        started = []
        for i in range(self.oracles):
            http_port, gossip_port = self.oracle_ports[i]
            cfg = self.root / f"oracle-{i}.toml"
            write_toml(cfg, {
                "oracle": {"key_file": self._key(f"oracle-{i}"), **self._transport(f"oracle-{i}"),
                           "data_dir": str(self.root / f"oracle-{i}"),
                           **self._oracle_ledger(i), "ledger_id": self.ledger_id.hex()},
                "http": {"host": "127.0.0.1", "port": http_port},
                "gossip": {"port": gossip_port,
                           "bootstrap": [self.oracle_multiaddr(j) for j in range(self.oracles) if j != i]},
            })
            mp = self._proc(f"oracle-{i}", ["oracle", "run", "--config", str(cfg)], f"{self.oracle_urls[i]}/readyz")
            mp.start()
            started.append(mp)
        for mp in started:
            mp.wait_ready(120)

    def _oracle_ledger(self, i: int) -> dict[str, Any]:
        """What oracle i's config says about its ledger (the chain network adds its chain key)."""
        return {"ledger_url": self.ledger_url}

    def _agent_ledger(self) -> dict[str, Any]:
        return {"ledger_url": self.ledger_url, "ledger_wait_s": 5,
                "ledger_anchor_interval_s": 5}  # anchors visible in a short run

    def _agent_gossip(self) -> dict[str, Any]:
        """An agent's [gossip] table (the chain network in pkcs11 mode turns it off)."""
        return {"enabled": True, "port": free_port(), "bootstrap": [self.oracle_multiaddr(i) for i in range(self.oracles)]}

    def start_agent(self, *, max_skew_ms: int = 5_000, name: str = "agent") -> None:
        """The agent, or (name "agent-2", econ2) the second agent: its own key, data, devices and
        port, for the corroborated policy's devices that must be under another agent (§14)."""
        port, devices = self.agent_port, self.devices_dir
        if name != "agent":
            port, devices = self.agent2_port, self.agent2_devices_dir
            self.bind_transport_keys(only=name)
        cfg = self.root / f"{name}.toml"
        write_toml(cfg, {
            "agent": {"key_file": self._key(name), **self._transport(name),
                      "data_dir": str(self.root / name / "data"),
                      "blinding_keys_dir": str(devices), **self._agent_ledger()},
            "http": {"host": "127.0.0.1", "port": port},
            "mqtt": {"host": "127.0.0.1", "port": self.broker_port},
            "gossip": self._agent_gossip(),
            "oracles": {"urls": self.oracle_urls},
            "prover": {"circuits": [self.window], "workers": 1},
            "ingest": {"max_skew_ms": max_skew_ms},
        })
        mp = self._proc(name, ["agent", "run", "--config", str(cfg)], f"http://127.0.0.1:{port}/readyz")
        mp.start()
        mp.wait_ready(180)

    def start_dashboard(self) -> None:
        """The read-only web dashboard (`faultproof dashboard`) over the ledger and every oracle."""
        self.dashboard_port = free_port()
        args = ["dashboard", "--ledger", self.ledger_url, "--port", str(self.dashboard_port)]
        for url in self.oracle_urls:
            args += ["--oracle", url]
        mp = self._proc("dashboard", args, f"{self.dashboard_url}healthz")
        mp.start()
        mp.wait_ready(60)

    # ------------------------------------------------------------------ stop

    def stop(self) -> dict[str, int | None]:
        """Stop everything this network started: the services that use the ledger and the broker
        together, then those two (so no service logs them vanishing). Returns exit codes by name."""
        base = [mp for mp in self.processes if mp.name in ("ledger", "broker")]
        users = [mp for mp in reversed(self.processes) if mp.name not in ("ledger", "broker")]
        return {**stop_all(users), **stop_all(base)}

    def pids(self) -> list[int]:
        return [mp.pid for mp in self.processes if mp.pid is not None]

    def __enter__(self) -> LocalNetwork:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


