"""What every simulated scenario starts from: keys, a development ledger (genesis and the admin
transactions, signed once per oracle-set shape), devices with real signed, chained frames, and
REAL Groth16 proofs (the n = 16 development circuit of the shared circuit cache), made once and
kept on disk beside it.

Per device (policy COUNT: two readings above 80; 2 s periods, so only the overlap rule keeps A and B
from both paying; n = 16 readings a window, 1 s apart):
  window A   frames 0..16, readings 90 95 10 ... 10      provable (a real proof)
  window B   frames 2..18, readings 10 ... 10 90 95      provable, overlaps A (only one may pay)
  window Q   frames 18..34, readings all 1, an hour on   NOT provable (no proof exists; claims
                                                          carry A's proof, which fails here)
The provable claim_ids are the only ones the ledger may ever pay (the simulator's invariant).

Stand-ins, named: signature and proof verification are memoized (`MemoVerify`) so thousands of
scenarios stay fast; each distinct (key, message, signature) or (vkey, proof, signals) is still
checked once by the real Ed25519 / Groth16 code. Nothing else is a stand-in.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from faultproof.identity import Identity
from faultproof.identity import verify as ed25519_verify
from faultproof.messages import (
    AdminTx,
    Claim,
    Deposit,
    EnrolAgent,
    Genesis,
    IssuePolicy,
    Message,
    PayoutBody,
    RegisterCircuit,
    SignedClaim,
    SignedEntry,
    policy_id,
)
from faultproof.zk import BuiltCircuit, build, default_cache_dir, export_vkey, prove
from faultproof.zk import verify as groth16_verify
from ledger.state import LedgerState, build_payout_body
from tests.netfix import PARAMS, DeviceSim, params_of

SECOND = 1000
HOUR = 3600 * SECOND
DAY = 24 * HOUR
T0 = 1_800_000_000_000  # frame time of the first window (fixed: the proofs bind timestamps)
N_WINDOW = 16
N_DEVICES = 6
MAX_SKEW_MS = 5 * SECOND
ROTATION_GRACE_MS = 20 * SECOND
POOL_VERSION = 2
SIM_START = T0 + 158 * SECOND  # virtual time at which every scenario starts


def _seeded(label: str) -> Identity:
    return Identity.from_seed(hashlib.sha256(f"faultproof-sim/{label}".encode()).digest())


ADMIN = _seeded("admin")
LEDGER_KEY = _seeded("ledger")
ORACLE_KEYS = [_seeded(f"oracle-{i}") for i in range(12)]
AGENT = _seeded("agent")
THIEF = _seeded("thief")  # an enrolled agent that replays frames with junk proofs


class MemoVerify:
    """Stand-in for speed: the real verifiers, each distinct input checked once per process."""

    def __init__(self) -> None:
        self.sig: dict[tuple[bytes, bytes, bytes, bytes], bool] = {}
        self.proof: dict[tuple[bytes, bytes, tuple[int, ...]], bool] = {}

    def signature(self, tag: bytes, message: bytes, signature: bytes, public_key: bytes) -> bool:
        key = (tag, message, signature, public_key)
        ok = self.sig.get(key)
        if ok is None:
            ok = self.sig[key] = ed25519_verify(tag, message, signature, public_key)
        return ok

    def groth16(self, vkey: bytes, proof: bytes, signals: Sequence[int]) -> bool:
        key = (vkey, proof, tuple(signals))
        ok = self.proof.get(key)
        if ok is None:
            try:
                ok = bool(groth16_verify(vkey, proof, list(signals)))
            except Exception:  # noqa: BLE001 - garbage is "does not verify", as in oracle/verifier.py
                ok = False
            self.proof[key] = ok
        return ok


MEMO = MemoVerify()


@dataclass(frozen=True)
class Window:
    device: int
    name: str  # "A" | "B" | "Q"
    start_seq: int
    provable: bool


@dataclass
class Incident:
    """One device with its policy and its three windows' claims."""

    index: int
    dev: DeviceSim
    terms: IssuePolicy
    pid: bytes
    claims: dict[str, SignedClaim]  # honest claims by window name (Q carries a junk proof)
    junk: SignedClaim  # window A's frames with B's proof, sent by the thief

    def claim_id(self, name: str) -> bytes:
        return self.claims[name].claim.claim_id


def _devices() -> list[tuple[DeviceSim, dict[str, int]]]:
    out = []
    for i in range(N_DEVICES):
        t = T0 + i * 30 * SECOND
        dev = DeviceSim.create(f"sim-device-{i}", anchor_ts=t - SECOND)
        a = dev.record([90, 95] + [10] * (N_WINDOW - 2), start_ts=t)
        dev.record([90, 95])
        b = a + 2
        q = dev.record([1] * N_WINDOW, start_ts=t + HOUR)
        out.append((dev, {"A": a, "B": b, "Q": q}))
    # The last device's windows end a little after the simulation starts (SIM_START): oracles see
    # END_TS_IN_FUTURE at first, a transient reason (item 13.7), and must not reject for good.
    return out


def _terms(dev: DeviceSim, circuit_id: bytes) -> IssuePolicy:
    p = PARAMS
    kind, T, K, lo, hi, G = p.as_tuple()
    return IssuePolicy(device_id=dev.device_id, beneficiary=hashlib.sha256(b"ben" + dev.device_id).digest(),
                       circuit_id=circuit_id, kind=kind, threshold=T, count=K, lo=lo, hi=hi, gap_ms=G,
                       coverage=10_000, amount=1_000, premium=100, start_ms=T0 - HOUR, end_ms=T0 + 30 * DAY,
                       period_ms=2 * SECOND, claim_window_ms=7 * DAY)


def _pool_path(vkey: bytes) -> Path:
    root = default_cache_dir()  # beside the circuits (FAULTPROOF_CACHE_DIR or .cache/circuits)
    digest = hashlib.sha256(vkey + str(POOL_VERSION).encode()).hexdigest()[:16]
    return root / f"sim-proofs-{digest}.json"


@lru_cache(maxsize=1)
def _circuit_and_proofs() -> tuple[BuiltCircuit, bytes, dict[str, bytes]]:
    """The circuit (shared cache) and one real proof per provable window, made once and kept on
    disk (atomic rename: concurrent runs at worst both prove)."""
    circuit = build(N_WINDOW)
    vkey = export_vkey(circuit)
    path = _pool_path(vkey)
    if path.exists():
        return circuit, vkey, {k: bytes.fromhex(v) for k, v in json.loads(path.read_text()).items()}
    proofs: dict[str, bytes] = {}
    for i, (dev, starts) in enumerate(_devices()):
        params = params_of(_terms(dev, b"\x00" * 32))
        for name in ("A", "B"):
            proofs[f"{i}{name}"] = prove(circuit, dev.witness(starts[name], N_WINDOW, params))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps({k: v.hex() for k, v in proofs.items()}))
    tmp.replace(path)
    return circuit, vkey, proofs


@dataclass
class World:
    """A fresh ledger for one scenario plus everything shared by all of them."""

    n: int
    k: int
    genesis: Genesis
    genesis_entry: SignedEntry
    setup_entries: list[SignedEntry]
    ledger: LedgerState
    incidents: list[Incident]
    vkey: bytes
    circuit_id: bytes

    @classmethod
    def build(cls, seed: int = 0, n: int = 5, k: int = 4) -> World:
        base = _base(n, k)
        state = LedgerState.from_genesis_entry(base.genesis_entry, verifier=MEMO.signature)
        for e in base.setup_entries:
            state.apply_entry(e)
        return cls(n, k, base.genesis, base.genesis_entry, base.setup_entries, state, base.incidents,
                   base.vkey, base.circuit_id)

    @property
    def oracle_keys(self) -> list[Identity]:
        return ORACLE_KEYS

    def body_for(self, inc: Incident, epoch: int, name: str = "A") -> PayoutBody:
        c = inc.claims[name].claim
        s, e = c.start.frame, c.end.frame
        body = build_payout_body(self.ledger, inc.pid, s.epoch, s.seq, e.seq, s.ts_ms, e.ts_ms)
        return body.replace(oracle_set_epoch=epoch)

    def provable_claim_ids(self) -> set[bytes]:
        return {inc.claim_id(w) for inc in self.incidents for w in ("A", "B")}


@dataclass
class _Base:
    genesis: Genesis
    genesis_entry: SignedEntry
    setup_entries: list[SignedEntry]
    incidents: list[Incident]
    vkey: bytes
    circuit_id: bytes


@lru_cache(maxsize=32)
def _base(n: int, k: int) -> _Base:
    circuit, vkey, proofs = _circuit_and_proofs()
    genesis = Genesis(nonce=hashlib.sha256(f"sim-genesis-{n}-{k}".encode()).digest(), created_ms=T0 - DAY,
                      ledger_key=LEDGER_KEY.public_key, admin=ADMIN.public_key,
                      oracles=tuple(o.public_key for o in ORACLE_KEYS[:n]), threshold=k, development=1,
                      max_skew_ms=MAX_SKEW_MS, rotation_grace_ms=ROTATION_GRACE_MS)
    state = LedgerState(genesis, verifier=MEMO.signature)
    g_entry = state.genesis_entry().sign(LEDGER_KEY)
    state = LedgerState.from_genesis_entry(g_entry, verifier=MEMO.signature)
    reg = RegisterCircuit(vkey=vkey, n=N_WINDOW, layout_version=1, transcript_hash=bytes(32), production=0)
    devices = _devices()
    txs: list[Message] = [Deposit(amount=10**9), reg, EnrolAgent(agent_id=AGENT.public_key),
                          EnrolAgent(agent_id=THIEF.public_key)]
    terms = []
    for dev, _ in devices:
        txs.append(dev.enrol_tx())
        t = _terms(dev, reg.circuit_id)
        terms.append(t)
        txs.append(t)
    entries: list[SignedEntry] = []
    pids: list[bytes] = []
    now = T0 - DAY + 1
    for nonce, args in enumerate(txs, start=1):
        stx = AdminTx.make(genesis.ledger_id, nonce, args).sign(ADMIN)
        _, entry = state.apply(stx, now)
        assert entry is not None
        entries.append(entry.sign(LEDGER_KEY))
        if isinstance(args, IssuePolicy):
            pids.append(policy_id(stx.tx))
        now += 1
    incidents = []
    for i, ((dev, starts), t, pid) in enumerate(zip(devices, terms, pids, strict=True)):
        claims = {}
        for name in ("A", "B", "Q"):
            proof = proofs[f"{i}A"] if name == "Q" else proofs[f"{i}{name}"]
            claims[name] = _claim(dev, pid, starts[name], proof, AGENT)
        junk = _claim(dev, pid, starts["A"], proofs[f"{i}B"], THIEF)
        incidents.append(Incident(i, dev, t, pid, claims, junk))
    return _Base(genesis, g_entry, entries, incidents, vkey, reg.circuit_id)


def _claim(dev: DeviceSim, pid: bytes, start: int, proof: bytes, agent: Identity) -> SignedClaim:
    return Claim(policy_id=pid, start=dev.frame(start), end=dev.frame(start + N_WINDOW), proof=proof,
                 agent_id=agent.public_key, created_ms=T0 + 60 * SECOND).sign(agent)
