"""A real faultproof network on 127.0.0.1 for tests and benchmarks: one ledger service with a
development genesis, n oracle processes, and the builders that make valid (and invalid) claims.

Reused by tests/oracle, the agent, devnet and adversarial suites and benchmarks/bench_oracle.py:

    from tests.netfix import Network
    net = Network.start(tmp_path, n=5, k=4)             # ledger (dev genesis) + 5 oracles, meshed;
                                                        # circuit n=4 registered, pool funded,
                                                        # net.agent enrolled
    dev = net.new_device(anchor_ts=now_ms() - 60_000)   # DeviceSim, enrolled on the ledger
    pid, terms = net.issue_policy(dev, TriggerParams.count(80, 2))   # overrides: start_ms=..., ...
    start = dev.record([90, 95, 10, 12], start_ts=now_ms() - 30_000) # readings -> chained frames
    claim = net.claim(dev, pid, terms, start)           # SignedClaim with a real Groth16 proof
    status, body = net.post_claim(0, claim)             # HTTP to oracle 0 -> (202, {...})
    net.wait_status(claim.claim.claim_id, "paid")       # polls an oracle's GET /v1/claims/{id}
    net.receipt(claim_id); net.policy(pid); net.ledger_height()
    net.oracles[2].kill9(); net.oracles[2].start()      # OracleProc: url, multiaddr(), identity
    net.stop()

    with Network.running(tmp_path, n=5, k=4) as net:    # the same, stopped when the block ends
        ...                                             # (a fixture yields net inside it)

Also: `Network.start(..., start_oracles=False)` for a ledger alone (then `net.start_oracles()`),
`oracle_tuning={...}` for the oracles' [tuning] table, `net.admin_txs([...])` for any admin
transaction, `net.enrol_agent(identity)`, `net.revoke_device(dev)`, `junk_proof(...)` for a proof
that verifies for some other window, `make_claim(...)` without a Network.

What this file must never do: decide anything the protocol decides (it only builds inputs and
reads outputs), signal a process it did not start (faultproof.procs: by pid only), or leave a
process running after `stop()`.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Self

from faultproof.chain import blinding_value, chain_anchor, chain_step, chain_to_bytes
from faultproof.identity import Identity
from faultproof.messages import (
    AdminTx,
    Claim,
    Deposit,
    DeviceHead,
    EnrolAgent,
    EnrolDevice,
    Frame,
    Genesis,
    IssuePolicy,
    Message,
    RegisterCircuit,
    RevokeDevice,
    SignedClaim,
    SignedFrame,
    policy_id,
)
from faultproof.procs import ManagedProcess, free_port, stop_all
from faultproof.zk import BuiltCircuit, TriggerParams, Witness, build, export_vkey, prove

if TYPE_CHECKING:
    from oracle.node import OracleNode

SECOND = 1000
MINUTE = 60 * SECOND
HOUR = 60 * MINUTE
DAY = 24 * HOUR
REPO = Path(__file__).resolve().parents[1]
DEFAULT_N = 4  # the window size whose circuit faultproof.zk builds fastest (~1 s, cached)


def now_ms() -> int:
    return time.time_ns() // 1_000_000


# ====================================================================== devices and claims


@dataclass
class DeviceSim:
    """A device's secure element, simulated: key, blinding key, epoch, and its signed history.

    Seq 0 is the anchor frame (chain = c_0); reading i (i >= 1) has seq i. `record` appends
    readings with timestamps; `window(a, n)` is what a prover needs for frames a..a+n."""

    identity: Identity
    blinding_key: bytes
    epoch: int = 0
    readings: list[int] = field(default_factory=list)  # index = seq; [0] is the anchor (0)
    timestamps: list[int] = field(default_factory=list)
    chains: list[int] = field(default_factory=list)

    @classmethod
    def create(cls, label: str | None = None, anchor_ts: int | None = None) -> DeviceSim:
        seed = hashlib.sha256(f"netfix-device/{label}".encode()).digest() if label else os.urandom(32)
        ident = Identity.from_seed(seed)
        dev = cls(ident, hashlib.sha256(b"blind" + seed).digest()[:31])
        dev.readings = [0]
        dev.timestamps = [anchor_ts if anchor_ts is not None else now_ms() - DAY]
        dev.chains = [chain_anchor(ident.public_key, 0)]
        return dev

    @property
    def device_id(self) -> bytes:
        return self.identity.public_key

    @property
    def anchor(self) -> bytes:
        return chain_to_bytes(self.chains[0])

    def enrol_tx(self) -> EnrolDevice:
        return EnrolDevice(device_id=self.device_id, epoch=self.epoch, anchor=self.anchor,
                           firmware_hash=hashlib.sha256(b"netfix-firmware").digest())

    @property
    def last_seq(self) -> int:
        return len(self.readings) - 1

    def record(self, readings: Sequence[int], *, start_ts: int | None = None, step_ms: int = 1000) -> int:
        """Append readings, `step_ms` apart (the first at `start_ts`, default last + step).
        Returns the seq of the frame just before the first new reading (a window's start)."""
        start_seq = self.last_seq
        ts = start_ts if start_ts is not None else self.timestamps[-1] + step_ms
        if ts <= self.timestamps[-1]:
            raise ValueError("timestamps must increase")
        for r in readings:
            seq = len(self.readings)
            c = chain_step(self.chains[-1], ts, r, blinding_value(self.blinding_key, seq))
            self.readings.append(r)
            self.timestamps.append(ts)
            self.chains.append(c)
            ts += step_ms
        return start_seq

    def frame(self, seq: int) -> SignedFrame:
        return Frame(device_id=self.device_id, epoch=self.epoch, seq=seq, ts_ms=self.timestamps[seq],
                     chain=chain_to_bytes(self.chains[seq])).sign(self.identity)

    def witness(self, start_seq: int, n: int, params: TriggerParams) -> Witness:
        seqs = range(start_seq + 1, start_seq + n + 1)
        return Witness.build(
            readings=[self.readings[s] for s in seqs],
            timestamps=[self.timestamps[s] for s in seqs],
            blindings=[blinding_value(self.blinding_key, s) for s in seqs],
            c_start=self.chains[start_seq], t_start=self.timestamps[start_seq], params=params, n=n)


def params_of(terms: IssuePolicy) -> TriggerParams:
    return TriggerParams(terms.kind, T=terms.threshold, K=terms.count, lo=terms.lo, hi=terms.hi, G=terms.gap_ms)


def make_claim(circuit: BuiltCircuit, dev: DeviceSim, pid: bytes, terms: IssuePolicy, start_seq: int,
               agent: Identity, *, proof: bytes | None = None, created_ms: int | None = None) -> SignedClaim:
    """A claim for frames start_seq..start_seq+n with a real proof (or the `proof` given)."""
    n = circuit.n
    if proof is None:
        proof = prove(circuit, dev.witness(start_seq, n, params_of(terms)))
    return Claim(policy_id=pid, start=dev.frame(start_seq), end=dev.frame(start_seq + n), proof=proof,
                 agent_id=agent.public_key, created_ms=created_ms or now_ms()).sign(agent)


def junk_proof(circuit: BuiltCircuit, other: DeviceSim, terms: IssuePolicy) -> bytes:
    """A proof that verifies for some other window (so its points are valid), never for ours."""
    start = other.record([2**31 - 1] * circuit.n)
    return prove(circuit, other.witness(start, circuit.n, params_of(terms)))


# ====================================================================== HTTP helpers


def http(method: str, url: str, body: bytes | None = None, content_type: str = "application/json",
         timeout: float = 30.0, accept: str | None = None) -> tuple[int, Any]:
    """One request; returns (status, parsed JSON or raw bytes). Never raises for an HTTP status."""
    req = urllib.request.Request(url, data=body, method=method)
    if body is not None:
        req.add_header("Content-Type", content_type)
    if accept is not None:
        req.add_header("Accept", accept)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310 - loopback only
            status, raw, ctype = resp.status, resp.read(), resp.headers.get("Content-Type", "")
    except urllib.error.HTTPError as e:
        status, raw, ctype = e.code, e.read(), e.headers.get("Content-Type", "")
    if "json" in ctype:
        return status, json.loads(raw)
    return status, raw


def wait_until(predicate: Any, timeout: float, interval: float = 0.1, what: str = "condition",
               detail: Callable[[], str] | None = None) -> Any:
    """predicate's first truthy value, polled every interval; TimeoutError after timeout, naming what, the
    last value and `detail()` (e.g. the tail of the log of the process that should have got there)."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise TimeoutError(f"{what} not reached after {timeout:.0f} s (last: {last!r})"
                       + (f"\n{detail()}" if detail is not None else ""))


# ====================================================================== processes


@dataclass
class OracleProc:
    index: int
    identity: Identity
    http_port: int
    gossip_port: int
    data_dir: Path
    config_path: Path
    proc: ManagedProcess

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def oracle_id(self) -> bytes:
        return self.identity.public_key

    def multiaddr(self) -> str:
        from faultproof.gossip.keys import peer_id_for_public_key

        return f"/ip4/127.0.0.1/tcp/{self.gossip_port}/p2p/{peer_id_for_public_key(self.oracle_id)}"

    def alive(self) -> bool:
        return self.proc.alive()

    def kill9(self) -> None:
        self.proc.kill9()

    def stop(self) -> None:
        self.proc.stop()

    def start(self, timeout: float = 60.0) -> None:
        self.proc.start()
        self.proc.wait_ready(timeout)

    def restart(self, timeout: float = 60.0) -> None:
        self.proc.stop()
        self.start(timeout)


def _write_oracle_config(path: Path, *, key_file: Path, data_dir: Path, ledger_url: str, http_port: int,
                         gossip_port: int, bootstrap: Sequence[str], tuning: dict[str, Any],
                         ledger_id: bytes, idle_timeout_s: float | None = None) -> None:
    lines = [
        "[oracle]",
        f'key_file = "{key_file}"',
        f'data_dir = "{data_dir}"',
        f'ledger_url = "{ledger_url}"',
        f'ledger_id = "{ledger_id.hex()}"',
        "",
        "[http]",
        'host = "127.0.0.1"',
        f"port = {http_port}",
        *([f"idle_timeout_s = {idle_timeout_s}"] if idle_timeout_s else []),
        "",
        "[gossip]",
        f"port = {gossip_port}",
        "bootstrap = [" + ", ".join(f'"{a}"' for a in bootstrap) + "]",
        "",
        "[tuning]",
    ]
    for k, v in tuning.items():
        lines.append(f"{k} = {json.dumps(v)}")
    path.write_text("\n".join(lines) + "\n")


def start_ledger(root: Path, admin: Identity, ledger_key: Identity, oracle_ids: Sequence[Identity], *, threshold: int,
                 development: bool, max_skew_ms: int, genesis_extra: Sequence[str] = (),
                 server_extra: Sequence[str] = ()) -> tuple[ManagedProcess, int, Genesis]:
    """A ledger service under root: its config (genesis of these keys; `*_extra` are more TOML lines of
    the [genesis] and [server] sections), `ledger init`, then `ledger serve` until ready. Returns the
    running process, its port and the genesis it serves; a ledger that fails to come up is stopped."""
    (root / "keys").mkdir(exist_ok=True)
    ledger_key.save(root / "keys" / "ledger.key")
    port = free_port()
    cfg = root / "ledger.toml"
    cfg.write_text("\n".join([
        "[ledger]",
        f'db = "{root / "ledger.sqlite3"}"',
        f'ledger_key = "{root / "keys" / "ledger.key"}"',
        "[genesis]",
        f'admin_public_key = "{admin.public_key.hex()}"',
        "oracles = [" + ", ".join(f'"{o.public_key.hex()}"' for o in oracle_ids) + "]",
        f"threshold = {threshold}",
        f"development = {'true' if development else 'false'}",
        f"max_skew_ms = {max_skew_ms}",
        # fixtures write incident windows in the past, under policies issued just before
        f"max_backdate_ms = {30 * DAY}",
        *genesis_extra,
        "[server]",
        'host = "127.0.0.1"',
        f"port = {port}",
        "max_wait_s = 30",
        *server_extra,
    ]) + "\n")
    init = ManagedProcess("ledger-init", ["-m", "cli", "ledger", "init", "--config", str(cfg)],
                          root / "logs" / "ledger-init.log", cwd=REPO).start()
    assert init.proc is not None
    if init.proc.wait(60) != 0:
        raise RuntimeError(f"ledger init failed:\n{init.tail()}")
    ledger = ManagedProcess("ledger", ["-m", "cli", "ledger", "serve", "--config", str(cfg)],
                            root / "logs" / "ledger.log", ready_url=f"http://127.0.0.1:{port}/readyz", cwd=REPO)
    ledger.start()
    try:
        ledger.wait_ready(60)
        _, body = http("GET", f"http://127.0.0.1:{port}/v1/genesis")
        return ledger, port, Genesis.from_json(body["genesis"])
    except BaseException:
        ledger.stop()
        raise


@dataclass
class Network:
    """A ledger service and n oracle processes, plus the admin key to configure the ledger."""

    root: Path
    admin: Identity
    ledger_key: Identity
    oracle_ids: list[Identity]
    genesis: Genesis
    ledger_port: int
    ledger: ManagedProcess
    oracles: list[OracleProc]
    circuit: BuiltCircuit
    circuit_id: bytes
    agent: Identity
    nonce: int = 0
    idle_timeout_s: float | None = None  # the services' HTTP idle timeout (None: their default)
    oracle_module: ClassVar[str] = "cli"  # the module whose `oracle run` command runs each oracle

    # ------------------------------------------------------------------ start / stop

    @classmethod
    def start(cls, root: Path, *, n: int = 5, k: int = 4, window: int = DEFAULT_N, max_skew_ms: int = 5 * SECOND,
              oracle_tuning: dict[str, Any] | None = None, start_oracles: bool = True,
              deposit: int = 10**12, idle_timeout_s: float | None = None) -> Self:
        """Ledger with a development genesis, one circuit registered, one agent enrolled, the pool
        funded; then n oracles (all members, threshold k), meshed by gossip."""
        root.mkdir(parents=True, exist_ok=True)
        circuit = build(window)  # before any process starts: the cache may need a build
        admin, ledger_key = Identity.generate(), Identity.generate()
        oracle_ids = [Identity.generate() for _ in range(n)]
        ledger, ledger_port, genesis = start_ledger(
            root, admin, ledger_key, oracle_ids, threshold=k, development=True, max_skew_ms=max_skew_ms,
            server_extra=[f"idle_timeout_s = {idle_timeout_s}"] if idle_timeout_s else [])
        net = cls(root, admin, ledger_key, oracle_ids, genesis, ledger_port, ledger, [], circuit, b"",
                  Identity.generate(), idle_timeout_s=idle_timeout_s)
        try:
            reg = RegisterCircuit(vkey=export_vkey(circuit), n=circuit.n, layout_version=1,
                                  transcript_hash=bytes(32), production=0)
            net.circuit_id = reg.circuit_id
            net.admin_txs([Deposit(amount=deposit), reg, EnrolAgent(agent_id=net.agent.public_key)])
            net._make_oracles(oracle_tuning or {})
            if start_oracles:
                net.start_oracles()
        except BaseException:
            net.stop()
            raise
        return net

    @classmethod
    @contextlib.contextmanager
    def running(cls, root: Path, **options: Any) -> Iterator[Self]:
        """`start(root, **options)`, and `stop()` when the block ends, however it ends."""
        net = cls.start(root, **options)
        try:
            yield net
        finally:
            net.stop()

    def _make_oracles(self, tuning: dict[str, Any]) -> None:
        ports = [(free_port(), free_port()) for _ in self.oracle_ids]
        procs: list[OracleProc] = []
        for i, (ident, (hp, gp)) in enumerate(zip(self.oracle_ids, ports, strict=True)):
            key_file = self.root / "keys" / f"oracle-{i}.key"
            ident.save(key_file)
            data_dir = self.root / f"oracle-{i}"
            cfg = self.root / f"oracle-{i}.toml"
            mp = ManagedProcess(f"oracle-{i}", ["-m", self.oracle_module, "oracle", "run", "--config", str(cfg)],
                                self.root / "logs" / f"oracle-{i}.log", ready_url=f"http://127.0.0.1:{hp}/readyz",
                                cwd=REPO)
            procs.append(OracleProc(i, ident, hp, gp, data_dir, cfg, mp))
        for p in procs:
            _write_oracle_config(p.config_path, key_file=self.root / "keys" / f"oracle-{p.index}.key",
                                 data_dir=p.data_dir, ledger_url=self.ledger_url, http_port=p.http_port,
                                 gossip_port=p.gossip_port, bootstrap=self._bootstrap(p, procs),
                                 tuning={"regossip_s": 1.0, "ledger_wait_s": 5.0, **tuning}, ledger_id=self.ledger_id,
                                 idle_timeout_s=self.idle_timeout_s)
        self.oracles = procs

    def _bootstrap(self, oracle: OracleProc, procs: Sequence[OracleProc]) -> list[str]:
        """The addresses an oracle dials at start. Everyone dials everyone else it knows: a full mesh of 5
        is what GossipSub forms anyway, and a restarted node is redialled by its peers' reconnect loops."""
        return [q.multiaddr() for q in procs if q is not oracle]

    def start_oracles(self, timeout: float = 90.0) -> None:
        for o in self.oracles:
            o.proc.start()
        for o in self.oracles:
            o.proc.wait_ready(timeout)
        # The mesh: wait until every oracle has a pubsub peer (claims and votes need a path).
        for o in self.oracles:
            wait_until(lambda o=o: self.status(o.index).get("gossip", {}).get("peers", 0) >= min(2, len(self.oracles) - 1),
                       30, what=f"oracle-{o.index} gossip peers")

    def stop(self) -> None:
        """Every process at once (SIGTERM to all, then wait): one by one, the five oracles' ~1 s
        shutdowns added up in every module's teardown."""
        stop_all([*(o.proc for o in self.oracles), self.ledger])

    def logs(self, lines: int = 30) -> str:
        out = [f"--- ledger\n{self.ledger.tail(lines)}"]
        out += [f"--- oracle-{o.index}\n{o.proc.tail(lines)}" for o in self.oracles]
        return "\n".join(out)

    # ------------------------------------------------------------------ ledger

    @property
    def ledger_url(self) -> str:
        return f"http://127.0.0.1:{self.ledger_port}"

    @property
    def ledger_id(self) -> bytes:
        return self.genesis.ledger_id

    def ledger_get(self, path: str) -> tuple[int, Any]:
        return http("GET", self.ledger_url + path)

    def ledger_height(self) -> int:
        status, body = self.ledger_get("/v1/state")
        assert status == 200, body
        return int(body["height"])

    def post_tx(self, tx: Message) -> tuple[int, Any]:
        return http("POST", self.ledger_url + "/v1/tx", tx.encode(), "application/msgpack")

    def admin_txs(self, args_list: Sequence[Message]) -> list[Any]:
        """Sign and post admin transactions in order; raises if the ledger refuses one."""
        out = []
        for args in args_list:
            self.nonce += 1
            stx = AdminTx.make(self.ledger_id, self.nonce, args).sign(self.admin)
            status, body = self.post_tx(stx)
            if status != 200 and status != 201:
                self.nonce -= 1
                raise RuntimeError(f"ledger refused {args.NAME}: {status} {body}")
            out.append((stx, body))
        return out

    def new_device(self, label: str | None = None, anchor_ts: int | None = None) -> DeviceSim:
        dev = DeviceSim.create(label, anchor_ts)
        self.admin_txs([dev.enrol_tx()])
        return dev

    def revoke_device(self, dev: DeviceSim) -> None:
        self.admin_txs([RevokeDevice(device_id=dev.device_id)])

    def anchor_frames(self, frames: Sequence[Frame]) -> None:
        """The enrolled agent anchors these frames as device heads (DESIGN §11), as its daemon does
        at its interval: after a revocation only windows whose end was anchored are paid."""
        from agent.anchor import build_anchors

        heads = sorted((DeviceHead(device_id=f.device_id, epoch=f.epoch, seq=f.seq, ts_ms=f.ts_ms, chain=f.chain)
                        for f in frames), key=lambda h: (h.device_id, h.epoch, h.seq))
        for anchor in build_anchors(self.ledger_id, self.agent, now_ms(), heads):
            status, body = self.post_tx(anchor)
            if status != 200:
                raise RuntimeError(f"ledger refused the anchor: {status} {body}")

    def policy_terms(self, dev: DeviceSim, params: TriggerParams, **overrides: int) -> IssuePolicy:
        now = now_ms()
        kind, T, K, lo, hi, G = params.as_tuple()
        terms: dict[str, Any] = dict(
            device_id=dev.device_id, beneficiary=hashlib.sha256(b"beneficiary" + dev.device_id).digest(),
            circuit_id=self.circuit_id, kind=kind, threshold=T, count=K, lo=lo, hi=hi, gap_ms=G,
            coverage=10_000, amount=1_000, premium=100, start_ms=now - 2 * DAY, end_ms=now + 30 * DAY,
            period_ms=HOUR, claim_window_ms=7 * DAY)
        terms.update(overrides)
        return IssuePolicy(**terms)

    def issue_policy(self, dev: DeviceSim, params: TriggerParams, **overrides: int) -> tuple[bytes, IssuePolicy]:
        terms = self.policy_terms(dev, params, **overrides)
        [(stx, _)] = self.admin_txs([terms])
        return policy_id(stx.tx), terms

    def enrol_agent(self, agent: Identity) -> None:
        self.admin_txs([EnrolAgent(agent_id=agent.public_key)])

    def switch_econ_on(self, oracle_bond: int = 10_000) -> None:
        """Bond every oracle, then switch the economic rules on (DESIGN §14): a staging cost up to
        500 per device, a fifth of a slashed bond to its reporter, bonds locked for 30 days."""
        from faultproof.messages import BondHolder, EconParams, PostBond

        self.admin_txs([PostBond(holder_kind=BondHolder.ORACLE, holder_id=o.public_key, amount=oracle_bond)
                        for o in self.oracle_ids])
        self.admin_txs([EconParams(min_oracle_bond=oracle_bond, max_staging_cost=500, reporter_share_bps=2_000,
                                   unlock_delay_ms=30 * DAY)])

    def claim(self, dev: DeviceSim, pid: bytes, terms: IssuePolicy, start_seq: int, *,
              agent: Identity | None = None, proof: bytes | None = None) -> SignedClaim:
        return make_claim(self.circuit, dev, pid, terms, start_seq, agent or self.agent, proof=proof)

    def receipt(self, claim_id: bytes) -> tuple[int, Any]:
        return self.ledger_get(f"/v1/receipts/{claim_id.hex()}")

    def policy(self, pid: bytes) -> dict[str, Any]:
        status, body = self.ledger_get(f"/v1/policies/{pid.hex()}")
        assert status == 200, body
        return body

    # ------------------------------------------------------------------ oracles

    def post_claim(self, i: int, claim: SignedClaim, *, as_json: bool = False) -> tuple[int, Any]:
        url = self.oracles[i].url + "/v1/claims"
        if as_json:
            return http("POST", url, json.dumps(claim.to_json()).encode(), "application/json")
        return http("POST", url, claim.encode(), "application/msgpack")

    def claim_status(self, i: int, claim_id: bytes) -> dict[str, Any] | None:
        status, body = http("GET", f"{self.oracles[i].url}/v1/claims/{claim_id.hex()}")
        return body if status == 200 else None

    def status(self, i: int) -> dict[str, Any]:
        status, body = http("GET", f"{self.oracles[i].url}/v1/status", timeout=5)
        return body if status == 200 else {}

    def wait_status(self, claim_id: bytes, want: str | Sequence[str], *, oracle: int | None = None,
                    timeout: float = 30.0) -> dict[str, Any]:
        """Poll one oracle (default: the first alive) until the claim has status `want`."""
        wants = (want,) if isinstance(want, str) else tuple(want)

        def check() -> dict[str, Any] | None:
            idx = oracle if oracle is not None else next(o.index for o in self.oracles if o.alive())
            view = self.claim_status(idx, claim_id)
            return view if view is not None and view["status"] in wants else None

        return wait_until(check, timeout, 0.1, what=f"claim {claim_id.hex()[:12]} {wants}")


# ====================================================================== incidents


PARAMS = TriggerParams.count(80, 2)  # two readings above 80
TRIGGERING = [90, 95, 10, 12]  # holds PARAMS (n = 4)


@dataclass
class Incident:
    """A fresh device, its policy, one window and the claim for it."""

    dev: DeviceSim
    pid: bytes
    terms: IssuePolicy
    start: int
    claim: SignedClaim

    @property
    def claim_id(self) -> bytes:
        return self.claim.claim.claim_id


def incident(net: Network, *, window_ts: int | None = None, agent: Identity | None = None,
             params: TriggerParams = PARAMS, readings: Sequence[int] = TRIGGERING, step_ms: int = SECOND,
             proof: bytes | None = None, **terms: int) -> Incident:
    """A fresh enrolled device with a policy and one window (triggering by default, ending ~20 s
    ago) and the honest claim for it, with a real proof (or `proof`, e.g. for a quiet window
    nobody can prove)."""
    window_ts = window_ts if window_ts is not None else now_ms() - 25 * SECOND
    dev = net.new_device(anchor_ts=window_ts - SECOND)
    pid, policy = net.issue_policy(dev, params, **terms)
    start = dev.record(readings, start_ts=window_ts, step_ms=step_ms)
    return Incident(dev, pid, policy, start, net.claim(dev, pid, policy, start, agent=agent, proof=proof))


@contextlib.asynccontextmanager
async def memory_oracle_network(net: Network, data_root: Path, *, mem: Any = None,
                                regossip_s: float = 0.5) -> AsyncIterator[list[OracleNode]]:
    """One unchanged `OracleNode` per oracle of `net` (its key, ports and ledger), running in this
    process on the in-memory transport `mem` (oracle.transport.MemoryNetwork; a new one if None),
    each with its own store under `data_root`: the oracle daemon without sockets between oracles.
    Yields the nodes once every one follows the ledger; stops them all on the way out."""
    import asyncio

    from oracle.config import from_dict
    from oracle.node import OracleNode
    from oracle.transport import MemoryNetwork

    mem = mem if mem is not None else MemoryNetwork()
    nodes = []
    for o in net.oracles:
        cfg = from_dict({"oracle": {"key_file": str(net.root / "keys" / f"oracle-{o.index}.key"),
                                    "data_dir": str(data_root / f"oracle-{o.index}"), "ledger_url": net.ledger_url,
                                    "ledger_id": net.ledger_id.hex()},
                         "http": {"host": "127.0.0.1", "port": o.http_port}, "gossip": {"port": o.gossip_port},
                         "tuning": {"regossip_s": regossip_s, "ledger_wait_s": 2.0}})
        nodes.append(OracleNode(cfg, Identity.load(cfg.key_file), transport=mem.join(o.oracle_id)))
    stop = asyncio.Event()
    tasks = [asyncio.create_task(n.run(stop)) for n in nodes]
    try:
        for n in nodes:
            await asyncio.wait_for(n.ready.wait(), 60)
        yield nodes
    finally:
        stop.set()
        await asyncio.gather(*tasks, return_exceptions=True)
