"""The adversarial suite's network and the thief's toolbox.

`AdvNetwork` is tests/netfix.py's `Network` (ledger + n oracle processes on 127.0.0.1) with two
changes: every directed oracle-to-oracle gossip link runs through a `Link` of proxy.py, and the
oracles start through routed_oracle.py, so cutting links is a real partition. Everything else
(ledger, circuit, keys, claims, HTTP helpers) is netfix's.

The rest of this file builds what an attacker sends (claims with forged frames or proofs, QCs
signed by whatever keys the attacker holds, raw bodies) and what the suite checks after every case:
the ledger's head hash and balances (`Snapshot`, `LedgerBook`) and `faultproof ledger verify`.

What this file must never do: decide a protocol rule itself (it builds inputs and reads outputs),
or signal a process it did not start (faultproof.procs, by pid only).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Coroutine, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from faultproof.chain import blinding_value
from faultproof.identity import Identity
from faultproof.messages import (
    PayoutBody,
    QcSignature,
    QuorumCertificate,
    SignedEntry,
)
from faultproof.zk import PublicSignals, TriggerParams, Witness, build, prove, prove_unchecked
from tests.adversarial.proxy import Link, LinkHub
from tests.netfix import (  # noqa: F401 - Incident, incident, PARAMS, TRIGGERING re-exported for the cases
    PARAMS,
    REPO,
    SECOND,
    TRIGGERING,
    DeviceSim,
    Incident,
    Network,
    OracleProc,
    _write_oracle_config,
    http,
    incident,
    now_ms,
    start_ledger,
    wait_until,
)

T = TypeVar("T")

# Bodies nested far deeper than any message (msgpack arrays, JSON arrays, JSON objects).
NESTING_BOMBS = [(b"\x91" * 50_000 + b"\x00", "application/msgpack"),
                 (b"[" * 20_000 + b"]" * 20_000, "application/json"),
                 (b'{"a":' * 10_000 + b"1" + b"}" * 10_000, "application/json")]


# ====================================================================== the network


@dataclass
class AdvNetwork(Network):
    """netfix's Network with every oracle-to-oracle link behind a proxy the test controls."""

    hub: LinkHub = field(default_factory=LinkHub)
    links: dict[tuple[int, int], Link] = field(default_factory=dict)  # (dialler, target)
    oracle_module: ClassVar[str] = "tests.adversarial.routed_oracle"

    def _bootstrap(self, oracle: OracleProc, procs: Sequence[OracleProc]) -> list[str]:
        """Every other oracle, dialled through a fresh proxied link."""
        from faultproof.gossip.keys import peer_id_for_public_key

        boot = []
        for q in procs:
            if q is oracle:
                continue
            link = self.hub.open(q.gossip_port, f"{oracle.index}->{q.index}")
            self.links[(oracle.index, q.index)] = link
            boot.append(f"/ip4/127.0.0.1/tcp/{link.port}/p2p/{peer_id_for_public_key(q.oracle_id)}")
        return boot

    def stop(self) -> None:
        try:
            super().stop()
        finally:
            self.hub.close()

    @property
    def db_path(self) -> Path:
        return self.root / "ledger.sqlite3"

    # ------------------------------------------------------------------ partitions

    def partition(self, *groups: Iterable[int]) -> None:
        """Cut every link between different groups (both directions); links inside a group stay."""
        side = {i: g for g, members in enumerate(groups) for i in members}
        for (a, b), link in self.links.items():
            if side.get(a) != side.get(b):
                link.cut()

    def heal(self) -> None:
        for link in self.links.values():
            link.restore()

    def direct_links(self) -> list[tuple[int, int]]:
        """Established oracle-to-oracle TCP connections that bypass the proxies (dialler, target),
        read from /proc. Must be empty, or a partition would not be one."""
        port_of = {o.gossip_port: o.index for o in self.oracles}
        remote_ports = _established_remote_ports()
        out = []
        for o in self.oracles:
            pid = o.proc.pid
            if pid is None or not o.alive():
                continue
            for inode in _socket_inodes(pid):
                port = remote_ports.get(inode)
                if port in port_of and port_of[port] != o.index:
                    out.append((o.index, port_of[port]))
        return out

    def oracles_alive(self) -> list[int]:
        return [o.index for o in self.oracles if o.alive()]

    def ensure_healthy(self, timeout: float = 90.0) -> None:
        """Undo whatever a previous case left behind: healed links, ledger and every oracle up."""
        self.heal()
        if not self.ledger.alive():
            self.ledger.start()
            self.ledger.wait_ready(timeout)
        down = [o for o in self.oracles if not o.alive()]
        for o in down:
            o.proc.start()
        for o in down:
            o.proc.wait_ready(timeout)
        for o in self.oracles:
            wait_until(lambda o=o: self.status(o.index).get("gossip", {}).get("peers", 0) >= 2, timeout,
                       0.2, what=f"oracle-{o.index} gossip peers")


def _socket_inodes(pid: int) -> set[int]:
    out = set()
    try:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if target.startswith("socket:["):
                out.add(int(target[8:-1]))
    except OSError:
        pass
    return out


def _established_remote_ports() -> dict[int, int]:
    """inode -> remote port of every ESTABLISHED IPv4 TCP socket on the machine."""
    out = {}
    with open("/proc/net/tcp") as f:
        next(f)
        for line in f:
            parts = line.split()
            if parts[3] != "01":
                continue
            out[int(parts[9])] = int(parts[2].split(":")[1], 16)
    return out


# ====================================================================== the ledger, as evidence


@dataclass(frozen=True)
class Snapshot:
    height: int
    head_hash: str
    balances: dict[str, int]


def snapshot(net: Network) -> Snapshot:
    status, body = net.ledger_get("/v1/state")
    assert status == 200, body
    return Snapshot(int(body["height"]), body["head_hash"], dict(body["balances"]))


@contextlib.contextmanager
def unchanged(net: Network) -> Iterator[Snapshot]:
    """The block is an attack that must move nothing: the ledger's head and balances after it are the
    ones before it (checked only when the block ends normally)."""
    before = snapshot(net)
    yield before
    assert_unchanged(net, before)


def entries_after(net: Network, height: int) -> list[SignedEntry]:
    out: list[SignedEntry] = []
    after = height
    while True:
        status, body = net.ledger_get(f"/v1/entries?after={after}&limit=1000")
        assert status == 200, body
        batch = [SignedEntry.from_json(e) for e in body["entries"]]
        if not batch:
            return out
        out.extend(batch)
        after = batch[-1].entry.height


def payouts_in(entries: Sequence[SignedEntry]) -> list[tuple[bytes, int]]:
    return [(e.entry.tx.body.claim_id, e.entry.paid) for e in entries if isinstance(e.entry.tx, QuorumCertificate)]


def assert_unchanged(net: Network, before: Snapshot) -> None:
    """The attack moved nothing: same head (so no entry at all), same balances."""
    after = snapshot(net)
    assert after == before, f"the ledger changed under an attack that must pay nothing: {before} -> {after}"


def assert_paid_once(net: Network, before: Snapshot, claim_id: bytes, amount: int) -> None:
    """Exactly one new entry since `before`: the payout of `claim_id`, of `amount`, and the balances
    moved by exactly that (locked -> paid)."""
    after = snapshot(net)
    new = entries_after(net, before.height)
    assert [(e.entry.height, payouts_in([e])) for e in new] == [(before.height + 1, [(claim_id, amount)])], \
        f"expected exactly one payout entry for {claim_id.hex()[:16]}, got {[e.entry.tx.NAME for e in new]}"
    expect = dict(before.balances)
    expect["paid"] += amount
    expect["locked"] -= amount
    assert after.balances == expect, (before.balances, after.balances)
    assert after.height == before.height + 1


def wait_paid_once(net: Network, before: Snapshot, claim_id: bytes, amount: int, *, timeout: float = 60.0) -> None:
    wait_until(lambda: snapshot(net).height > before.height, timeout, 0.2, what=f"payout of {claim_id.hex()[:12]}")
    settle_gossip()
    assert_paid_once(net, before, claim_id, amount)


def settle_gossip(seconds: float = 2.5) -> None:
    """Long enough for two re-gossip rounds (regossip_s = 1): a second QC post or a late vote that
    could change the ledger would have happened by now."""
    time.sleep(seconds)


@dataclass
class LedgerBook:
    """Every claim the suite expects the ledger to pay; the ledger must pay exactly these, once."""

    expected: dict[bytes, str] = field(default_factory=dict)  # claim_id -> case id

    def expect(self, claim_id: bytes, case_id: str) -> None:
        self.expected[claim_id] = case_id

    def check(self, net: Network) -> None:
        paid = [cid for cid, _ in payouts_in(entries_after(net, 0))]
        dupes = {c.hex() for c in paid if paid.count(c) > 1}
        assert not dupes, f"claims paid more than once: {dupes}"
        unexpected = {c.hex() for c in paid} - {c.hex() for c in self.expected}
        missing = {c.hex(): case for c, case in self.expected.items() if c not in set(paid)}
        assert not unexpected, f"payouts no case expected (wrongful): {unexpected}"
        assert not missing, f"claims a case expected paid were not: {missing}"


def ledger_verify(db: Path) -> dict[str, Any]:
    """`faultproof ledger verify --db DB --json`, as an operator would run it."""
    out = subprocess.run([sys.executable, "-m", "cli", "ledger", "verify", "--db", str(db), "--json"],
                         capture_output=True, cwd=REPO, timeout=300, text=True)
    try:
        report = json.loads(out.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        raise AssertionError(f"ledger verify printed no report (exit {out.returncode}): {out.stdout} {out.stderr}") \
            from None
    report["exit_code"] = out.returncode
    return report


def assert_ledger_verifies(net: Network) -> None:
    report = ledger_verify(net.root / "ledger.sqlite3")
    assert report["ok"] and report["exit_code"] == 0, report
    assert report["height"] == snapshot(net).height


# ====================================================================== incidents and claims


def thief_proof(net: Network, dev: DeviceSim, start_seq: int, *, readings: Sequence[int] | None = None,
                timestamps: Sequence[int] | None = None, params: TriggerParams = PARAMS) -> bytes:
    """A VALID proof of a statement of the thief's choosing, anchored on the device's real start
    frame: its own readings (a changed, reordered or skipped reading) and/or other parameters. The
    proof verifies for its own public signals, which are not the ones the oracles rebuild."""
    n = net.circuit.n
    seqs = range(start_seq + 1, start_seq + n + 1)
    w = Witness.build(
        readings=list(readings) if readings is not None else [dev.readings[s] for s in seqs],
        timestamps=list(timestamps) if timestamps is not None else [dev.timestamps[s] for s in seqs],
        blindings=[blinding_value(dev.blinding_key, s) for s in seqs],
        c_start=dev.chains[start_seq], t_start=dev.timestamps[start_seq], params=params, n=n)
    return prove(net.circuit, w)


def false_statement_proof(net: Network, dev: DeviceSim, start_seq: int, params: TriggerParams) -> bytes:
    """The raw prover run on the device's TRUE window and the policy's parameters, although the
    trigger does not hold there: the public signals are exactly what the oracles rebuild, only the
    statement is false. groth16py returns bytes that must not verify."""
    n = net.circuit.n
    seqs = range(start_seq + 1, start_seq + n + 1)
    kind, t, k, lo, hi, g = params.as_tuple()
    public = PublicSignals(dev.chains[start_seq], dev.chains[start_seq + n], dev.timestamps[start_seq],
                           dev.timestamps[start_seq + n], kind, t, k, lo, hi, g)
    w = Witness(public, tuple(dev.readings[s] for s in seqs), tuple(dev.timestamps[s] for s in seqs),
                tuple(blinding_value(dev.blinding_key, s) for s in seqs))
    # The WebAssembly witness path checks nothing, so the false statement reaches the verifier (the
    # native generator would refuse it first, which would test the generator, not the verifier).
    return prove_unchecked(net.circuit, w, engine="wasm")


def negated_proof(proof: bytes) -> bytes:
    """Groth16 malleability: (-A, -B, C) verifies whenever (A, B, C) does (e(-A,-B) = e(A,B)).
    Different bytes, same statement: it must never make a second payout."""
    from faultproof.zk.encoding import Q

    words = [int.from_bytes(proof[i : i + 32], "big") for i in range(0, 256, 32)]
    # EVM layout: a.x a.y | b.x.c1 b.x.c0 b.y.c1 b.y.c0 | c.x c.y ; negate a.y and both b.y words.
    for i in (1, 4, 5):
        words[i] = (Q - words[i]) % Q
    return b"".join(w.to_bytes(32, "big") for w in words)


def no_record_anywhere(net: Network, claim_id: bytes) -> bool:
    return all(net.claim_status(o.index, claim_id) is None for o in net.oracles if o.alive())


# ====================================================================== quorum certificates


def payout_body(net: Network, inc: Incident, *, oracle_set_epoch: int = 0, **changes: Any) -> PayoutBody:
    """The body every honest oracle would sign for the incident's claim."""
    c = inc.claim.claim
    s, e = c.start.frame, c.end.frame
    body = PayoutBody(ledger_id=net.ledger_id, oracle_set_epoch=oracle_set_epoch, claim_id=c.claim_id,
                      policy_id=c.policy_id, device_id=s.device_id, epoch=s.epoch, start_seq=s.seq, end_seq=e.seq,
                      start_ts=s.ts_ms, end_ts=e.ts_ms, circuit_id=inc.terms.circuit_id,
                      beneficiary=inc.terms.beneficiary, amount=inc.terms.amount, end_chain=e.chain)
    return body.replace(**changes) if changes else body


def make_qc(body: PayoutBody, signers: Sequence[Identity], *, signed_body: PayoutBody | None = None) -> QuorumCertificate:
    """A QC over `body` with one signature per signer (in the order given, duplicates kept), each
    over `signed_body` (default: `body` itself)."""
    sb = signed_body or body
    sigs = tuple(QcSignature(oracle_id=s.public_key, signature=sb.approve(s).signature) for s in signers)
    return QuorumCertificate(body=body, signatures=sigs)


def ledger_error(resp: tuple[int, Any]) -> tuple[int, str]:
    status, body = resp
    assert isinstance(body, dict) and "error" in body, (status, body)
    return status, body["error"]["code"]


# ====================================================================== a gossip peer in this process


class GossipPeer:
    """A libp2p GossipSub node speaking the protocol from the test process, with whatever key the
    attacker holds (an enrolled agent, a non-member, a member whose oracle is stopped). It runs on
    its own asyncio loop in a thread so blocking test code can drive it."""

    def __init__(self, identity: Identity, port: int, bootstrap: Sequence[str], topics: dict[str, int]) -> None:
        from faultproof.gossip.node import GossipNode
        from faultproof.gossip.policy import TopicPolicy

        self.identity = identity
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="adv-gossip-peer", daemon=True)
        self._thread.start()

        async def make() -> Any:
            node = GossipNode(identity, port, bootstrap=bootstrap,
                              topics={t: TopicPolicy(max_size=size) for t, size in topics.items()})
            await node.start()
            return node

        self.node = self.run(make(), 60)

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 60.0) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def publish(self, topic: str, data: bytes) -> None:
        self.run(self.node.publish(topic, data))

    def mesh(self, topic: str) -> int:
        return int(self.node.mesh_size(topic))

    def wait_mesh(self, topic: str, at_least: int, timeout: float = 30.0) -> None:
        try:
            wait_until(lambda: self.mesh(topic) >= at_least, timeout, 0.1, what=f"gossip mesh on {topic}")
        except TimeoutError as e:
            raise TimeoutError(f"{e}; health: {self.node.health()}") from None

    def stop(self) -> None:
        try:
            self.run(self.node.stop(), 20)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(5)


# ====================================================================== a second, production ledger


def start_bare_ledger(root: Path, *, development: bool, rotation_grace_ms: int, oracles: int = 5,
                      threshold: int = 4, max_skew_ms: int = 5 * SECOND) -> Network:
    """A ledger service alone (no oracle processes), e.g. a production ledger for the ledger-rule
    cases. Returned as a netfix `Network` with no oracles so its admin helpers apply; the oracle keys
    exist (`oracle_ids`) so the tests can sign QCs as the members would."""
    root.mkdir(parents=True, exist_ok=True)
    admin, ledger_key = Identity.generate(), Identity.generate()
    members = [Identity.generate() for _ in range(oracles)]
    ledger, port, genesis = start_ledger(root, admin, ledger_key, members, threshold=threshold,
                                         development=development, max_skew_ms=max_skew_ms,
                                         genesis_extra=[f"rotation_grace_ms = {rotation_grace_ms}"])
    return Network(root, admin, ledger_key, members, genesis, port, ledger, [], build(4), b"", Identity.generate())


# ====================================================================== small things


def agent_identity(net: Network, label: str) -> Identity:
    """A fresh agent key, enrolled: floods and junk use their own agent so the per-agent rate
    limit of the oracles never touches the honest agent of other cases."""
    ident = Identity.from_seed(hashlib.sha256(f"adv-agent/{label}/{os.urandom(8).hex()}".encode()).digest())
    net.enrol_agent(ident)
    return ident


def eventually(predicate: Callable[[], Any], timeout: float = 30.0, what: str = "condition") -> Any:
    return wait_until(predicate, timeout, 0.2, what=what)



def module_end_check(net: Network, book: LedgerBook) -> None:
    """What every network module ends with: the ledger verifies from genesis, and it paid exactly
    the claims the cases so far expected, each once."""
    assert_ledger_verifies(net)
    book.check(net)
