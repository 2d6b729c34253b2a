"""Device slashing on the pool contract, the oracle side (DESIGN §13, §14 S1–S3): the evidence is
checked on the oracle's replica with the ledger's own rule before anything is signed; a peer's
share counts only if its bound chain key signed this body in this epoch and pool; k distinct
verified shares assemble the certificate `reportFrameEquivocation` takes; and `POST
/v1/equivocations` refuses bad evidence with a 4xx naming the reason, signing nothing.

Pure (a ChainMirror fed events by hand is the replica; no chain), plus the HTTP app over a stand-in
node.
"""

from __future__ import annotations

import hashlib
import json
from functools import partial
from types import SimpleNamespace
from typing import Any

import msgpack
import pytest
from aiohttp.test_utils import TestClient, TestServer

from faultproof.errors import FaultproofError, Reason
from faultproof.identity import Identity
from faultproof.messages import DeviceSlashShare, Frame, FrameEquivocation, SignedFrame, decode_any
from ledger.evm.mirror import ChainMirror, MirrorEvent, mirror_genesis
from ledger.evm.typed import ChainKey, DeviceSlashBody, frame_hash
from ledger.state import LedgerState
from oracle.device_slash import (
    DeviceSlashDesk,
    PublishShare,
    Ready,
    check_share,
    recover_slash_signer,
    slash_body,
    slash_key,
)
from oracle.device_slash_node import DeviceSlashService
from oracle.http_api import make_app
from oracle.node import OracleNode
from tests.oracle.helpers import RecordingTransport

CHAIN_ID, CONTRACT = 31337, "0x" + "5a" * 20
SECOND = 1_000
DELAY = 3_600 * SECOND  # bond unlock delay
T0 = 1_800_000_000_000
BOND = 1_500
REPORTER = b"\x0e" * 32


def _identity(name: str) -> Identity:
    return Identity.from_seed(hashlib.sha256(f"test_device_slash/{name}".encode()).digest())


ORACLES = [_identity(f"oracle-{i}") for i in range(5)]
KEYS = [ChainKey.from_seed(o.seed) for o in ORACLES]
DEVICE = _identity("device")
STRANGER = _identity("stranger")  # no chain key bound in the pool


def _bound(epoch: int, oracle_id: bytes) -> str | None:
    """The pool's bindings: the five members in epoch 0."""
    for o, k in zip(ORACLES, KEYS, strict=True):
        if epoch == 0 and o.public_key == oracle_id:
            return k.address
    return None


class _Replica:
    """A mirror of a pool with the econ rules on, the device enrolled and bonded (k = 4 of 5)."""

    def __init__(self) -> None:
        genesis = mirror_genesis(CHAIN_ID, CONTRACT, [o.public_key for o in ORACLES], 4, True, 5000, DELAY)
        self.mirror = ChainMirror(genesis, CHAIN_ID, CONTRACT, lambda data: ())
        self.block = 0
        for o in ORACLES:
            self.event("BondPosted", kind=1, holderId=o.public_key, amount=BOND, bond=BOND)
        self.event("EconParamsSet", minOracleBond=BOND, maxStagingCost=500, reporterShareBps=2_000,
                   unlockDelayMs=DELAY)
        self.event("DeviceEnrolled", deviceId=DEVICE.public_key, epoch=0, anchor=bytes(32), firmwareHash=bytes(32))
        self.event("BondPosted", kind=2, holderId=DEVICE.public_key, amount=BOND, bond=BOND)
        assert self.mirror.problem is None, self.mirror.problem

    def event(self, name: str, **args: object) -> None:
        self.block += 1
        self.mirror.apply(MirrorEvent(name, dict(args), self.block, T0 + self.block))

    @property
    def state(self) -> LedgerState:
        return self.mirror.state


def _frame(seq: int = 7, chain: int = 1, device: Identity = DEVICE, ts: int = T0) -> SignedFrame:
    return Frame(device_id=device.public_key, epoch=0, seq=seq, ts_ms=ts, chain=chain.to_bytes(32, "big")).sign(device)


def _evidence(seq: int = 7, **kw: Any) -> FrameEquivocation:
    return FrameEquivocation(reporter=REPORTER, first=_frame(seq, 1, **kw), second=_frame(seq, 2, **kw))


class _Signer:
    """A member's chain key over a DeviceSlash in this pool's domain, counting what it signs."""

    def __init__(self, i: int) -> None:
        self.key, self.signed = KEYS[i], 0

    def __call__(self, body: DeviceSlashBody) -> Any:
        self.signed += 1
        return self.key.sign_device_slash(body, CHAIN_ID, CONTRACT)


def _desk(i: int) -> tuple[DeviceSlashDesk, _Signer]:
    signer = _Signer(i)
    return DeviceSlashDesk(ORACLES[i].public_key, signer, _bound, CHAIN_ID, CONTRACT), signer


def _share(i: int, ev: FrameEquivocation, *, epoch: int = 0, key: ChainKey | None = None,
           contract: str = CONTRACT, oracle_id: bytes | None = None, over: FrameEquivocation | None = None,
           over_epoch: int | None = None) -> DeviceSlashShare:
    """Member i's share of `ev`; or a bad one: another key, pool, label, or a signature over other evidence/epoch."""
    body = slash_body(epoch if over_epoch is None else over_epoch, over or ev)
    sig = (key or KEYS[i]).sign_device_slash(body, CHAIN_ID, contract)
    return DeviceSlashShare(oracle_id=oracle_id or ORACLES[i].public_key, oracle_set_epoch=epoch, evidence=ev,
                            signature=sig.signature)


# ----------------------------------------------------------------------------- the desk (pure)


def test_valid_evidence_is_signed_shared_and_k_verified_shares_assemble_the_certificate() -> None:
    replica, ev = _Replica(), _evidence()
    desks = [_desk(i) for i in range(5)]
    actions = desks[0][0].report(replica.state, ev, T0)
    assert len(actions) == 1 and isinstance(actions[0], PublishShare)
    share0 = actions[0].share
    assert decode_any(share0.encode(), (DeviceSlashShare,)) == share0 and len(share0.encode()) <= share0.MAX_SIZE
    body = slash_body(0, ev)
    key = slash_key(body)
    # the frames in either order are one body (ordered by their hashes); the reporter is in it
    assert slash_body(0, FrameEquivocation(reporter=REPORTER, first=ev.second, second=ev.first)) == body
    assert body.reporter == REPORTER
    assert slash_body(0, FrameEquivocation(reporter=b"\x01" * 32, first=ev.first, second=ev.second)) != body
    assert (body.first_frame, body.second_frame) == tuple(sorted((frame_hash(ev.first), frame_hash(ev.second))))
    assert (body.device_id, body.epoch, body.seq, body.max_ts) == (DEVICE.public_key, 0, 7, T0)
    assert desks[0][0].report(replica.state, ev, T0) == [] and desks[0][1].signed == 1  # signed once
    # each peer checks the evidence itself, then signs and shares its own
    shares = [share0]
    for desk, _ in desks[1:4]:
        out = desk.on_share(replica.state, share0, T0)
        assert isinstance(out[0], PublishShare) and out[0].share.oracle_id != share0.oracle_id
        shares.append(out[0].share)
    assert desks[0][0].certificate(key, 4) is None  # one share held: ours
    ready = []
    for s in shares[1:]:
        ready += [a for a in desks[0][0].on_share(replica.state, s, T0) if isinstance(a, Ready)]
    assert ready == [Ready(key, DEVICE.public_key, 0)]  # once, when the 4th distinct share arrived
    cert = desks[0][0].certificate(key, 4)
    assert cert is not None and cert.body == body and cert.body.reporter == REPORTER
    signers = [s.signer for s in cert.signatures]
    assert signers == sorted(signers, key=lambda a: int(a, 16)) and len(set(signers)) == 4  # the contract's order
    assert set(signers) == {k.address for k in KEYS[:4]}
    for s in cert.signatures:
        assert recover_slash_signer(body, CHAIN_ID, CONTRACT, s.signature) == s.signer
    # a repeated share of one oracle counts once
    again = desks[4][0]
    for _ in range(3):
        again.on_share(replica.state, shares[1], T0)
    assert len(again.cases[key].sigs) == 2 and again.certificate(key, 4) is None  # oracle 1's and its own


def test_an_oracle_signs_the_first_reporter_of_a_pair_of_frames_and_counts_peers_only_for_their_body() -> None:
    """DESIGN §13: the reporter is in the signed body. An oracle signs the first report of a pair of
    frames it accepts and refuses the same frames naming another reporter (EVIDENCE_DUPLICATE, nothing
    signed), whether that report comes to it directly or in a peer's share; peers' shares for the
    other reporter count toward that reporter's body only, so if k members signed it, it is the one
    certificate this oracle holds for it and may post."""
    replica, ev = _Replica(), _evidence()
    rival = ev.replace(reporter=b"\x77" * 32)
    desk, signer = _desk(0)
    desk.report(replica.state, ev, T0)
    with pytest.raises(FaultproofError) as dup:
        desk.report(replica.state, rival, T0)
    assert dup.value.reason is Reason.EVIDENCE_DUPLICATE and "another reporter" in str(dup.value)
    assert signer.signed == 1 and list(desk.cases) == [slash_key(slash_body(0, ev))]
    assert desk.report(replica.state, ev, T0) == [] and signer.signed == 1  # the same reporter again: nothing new
    # a rival's shares: counted for the rival's body, never signed by us, nor mixed into ours
    mine, theirs = slash_key(slash_body(0, ev)), slash_key(slash_body(0, rival))
    ready = []
    for i in (1, 2, 3, 4):
        out = desk.on_share(replica.state, _share(i, rival), T0)
        assert not any(isinstance(a, PublishShare) for a in out)
        ready += out
    assert signer.signed == 1 and len(desk.cases[mine].sigs) == 1 and len(desk.cases[theirs].sigs) == 4
    assert ready == [Ready(theirs, DEVICE.public_key, 0)]  # when the 4th (k) arrived
    cert = desk.certificate(theirs, 4)
    assert cert is not None and cert.body.reporter == rival.reporter
    assert {s.signer for s in cert.signatures} == {k.address for k in KEYS[1:5]}
    assert desk.certificate(mine, 4) is None
    # a peer whose first sight of the frames is a share of the rival signs the rival and refuses ours
    peer, peer_signer = _desk(1)
    out = peer.on_share(replica.state, _share(2, rival), T0)
    assert isinstance(out[0], PublishShare) and out[0].share.evidence.reporter == rival.reporter
    with pytest.raises(FaultproofError) as refused:
        peer.report(replica.state, ev, T0)
    assert refused.value.reason is Reason.EVIDENCE_DUPLICATE and peer_signer.signed == 1


def _gossip(replica: _Replica, desks: list[DeviceSlashDesk]) -> list[Ready]:
    """Deliver every desk's own shares to every other desk until no new share appears (re-gossip)."""
    ready: list[Ready] = []
    while True:
        before = sum(len(d.own_shares()) for d in desks)
        for d in desks:
            for share in d.own_shares():
                for other in desks:
                    if other is not d:
                        ready += [a for a in other.on_share(replica.state, share, T0) if isinstance(a, Ready)]
        if sum(len(d.own_shares()) for d in desks) == before:
            return ready


def test_reporters_who_split_the_members_below_k_are_broken_to_the_body_with_most_shares() -> None:
    """DESIGN §13: a double-signer racing its own report against the honest one (3 members take the
    honest reporter first, 2 the rival: neither body alone can reach k = 4 of 5) does not escape the
    slash: once no body can reach k, every member also signs the body with the most shares, which
    then holds a certificate everywhere; the rival's body gets no more signatures. A tie (2 + 2, one
    member silent) is broken by the lowest slash_key, the same on every member."""
    replica, ev = _Replica(), _evidence()
    rival = ev.replace(reporter=b"\x77" * 32)
    honest, theirs = slash_key(slash_body(0, ev)), slash_key(slash_body(0, rival))
    desks = [_desk(i)[0] for i in range(5)]
    for i, d in enumerate(desks):
        d.report(replica.state, ev if i < 3 else rival, T0)
    ready = _gossip(replica, desks)
    for d in desks:
        cert = d.certificate(honest, 4)
        assert cert is not None and cert.body.reporter == REPORTER
        assert d.certificate(theirs, 4) is None and len(d.cases[theirs].sigs) == 2
    assert {r.key for r in ready} == {honest}
    # 2 + 2 and a silent member: the lowest key wins on every member that speaks
    desks = [_desk(i)[0] for i in range(4)]
    for i, d in enumerate(desks):
        d.report(replica.state, ev if i < 2 else rival, T0)
    _gossip(replica, desks)
    winner = min(honest, theirs)
    for d in desks:
        assert d.certificate(winner, 4) is not None and d.certificate(max(honest, theirs), 4) is None


def test_a_member_without_a_bound_chain_key_does_not_keep_a_split_from_being_broken() -> None:
    """3 + 1 of the four members with a chain key bound, and a fifth member with none: the fifth
    can never sign, so no body can reach k = 4 and the split is broken to the honest reporter's
    body (counting the fifth as a possible signer left it at 3 shares for good)."""
    replica, ev = _Replica(), _evidence()
    rival = ev.replace(reporter=b"\x77" * 32)
    honest = slash_key(slash_body(0, ev))

    def bound(epoch: int, oracle_id: bytes) -> str | None:
        return None if oracle_id == ORACLES[4].public_key else _bound(epoch, oracle_id)

    desks = [DeviceSlashDesk(ORACLES[i].public_key, _Signer(i), bound, CHAIN_ID, CONTRACT) for i in range(4)]
    for i, d in enumerate(desks):
        d.report(replica.state, ev if i < 3 else rival, T0)
    _gossip(replica, desks)
    for d in desks:
        cert = d.certificate(honest, 4)
        assert cert is not None and cert.body.reporter == REPORTER


def test_a_share_over_another_body_epoch_or_contract_or_by_an_unbound_key_does_not_count() -> None:
    replica, ev = _Replica(), _evidence()
    body = slash_body(0, ev)
    other = _evidence(seq=8)
    bad = {
        "another body": (_share(1, ev, over=other), Reason.QC_BAD_SIGNATURE),
        "re-aimed at another reporter": (_share(1, ev.replace(reporter=b"\x77" * 32), over=ev), Reason.QC_BAD_SIGNATURE),
        "another contract": (_share(1, ev, contract="0x" + "5b" * 20), Reason.QC_BAD_SIGNATURE),
        "another key under a member's id": (_share(1, ev, key=ChainKey.from_seed(b"\x09" * 32)),
                                            Reason.QC_BAD_SIGNATURE),
        "relabelled epoch": (_share(1, ev, over_epoch=1), Reason.QC_BAD_SIGNATURE),
        "unbound key": (_share(1, ev, key=ChainKey.from_seed(STRANGER.seed), oracle_id=STRANGER.public_key),
                        Reason.QC_NON_MEMBER),
        "garbage signature": (_share(1, ev).replace(signature=b"\x00" * 65), Reason.QC_BAD_SIGNATURE),
    }
    for what, (share, reason) in bad.items():
        own_body = slash_body(0, share.evidence)  # the body the desk derives from the share's evidence
        assert check_share(share, own_body, _bound(0, share.oracle_id), CHAIN_ID, CONTRACT) is reason, what
        desk, signer = _desk(0)
        with pytest.raises(FaultproofError) as refused:
            desk.on_share(replica.state, share, T0)
        assert refused.value.reason is reason, what
        assert desk.cases == {} and signer.signed == 0, what  # nothing kept, nothing signed
    # another epoch's share never counts toward this epoch's body
    later = _share(1, ev, epoch=1)
    assert check_share(later, body, _bound(0, later.oracle_id), CHAIN_ID, CONTRACT) is Reason.QC_STALE_EPOCH
    desk, signer = _desk(0)
    with pytest.raises(FaultproofError) as stale:
        desk.on_share(replica.state, later, T0)
    assert stale.value.reason is Reason.QC_STALE_EPOCH and signer.signed == 0
    # three good shares and every bad one: no certificate
    desk, _ = _desk(0)
    desk.report(replica.state, ev, T0)
    for i in (1, 2):
        desk.on_share(replica.state, _share(i, ev), T0)
    for share, _reason in bad.values():
        with pytest.raises(FaultproofError):
            desk.on_share(replica.state, share, T0)
    assert len(desk.cases[slash_key(body)].sigs) == 3 and desk.certificate(slash_key(body), 4) is None


def _refusals(replica: _Replica) -> dict[str, tuple[FrameEquivocation, Reason, str]]:
    ev = _evidence()
    forged = ev.replace(second=SignedFrame(frame=ev.second.frame, signature=bytes(64)))
    return {
        "not one seq": (ev.replace(second=_frame(8, 2)), Reason.EVIDENCE_INVALID, "one (device, epoch, seq)"),
        "the same frame": (ev.replace(second=ev.first), Reason.EVIDENCE_INVALID, "the same frame twice"),
        "a forged frame": (forged, Reason.EVIDENCE_INVALID, "signature does not verify"),
        "another device's key": (_evidence(device=STRANGER), Reason.NOT_FOUND, "not enrolled"),
        "stale": (_evidence(ts=T0 - DELAY - 10 * SECOND), Reason.EVIDENCE_STALE, "older than the bond unlock delay"),
    }


def test_the_evidence_is_checked_with_the_ledgers_rule_before_anything_is_signed() -> None:
    replica = _Replica()
    for what, (ev, reason, words) in _refusals(replica).items():
        desk, signer = _desk(0)
        with pytest.raises(FaultproofError) as refused:
            desk.report(replica.state, ev, T0 + 100)
        assert refused.value.reason is reason and words in str(refused.value), what
        assert desk.cases == {} and signer.signed == 0, what
        # a member's genuine signature over bad evidence does not make a peer sign (or count) it
        peer, peer_signer = _desk(1)
        with pytest.raises(FaultproofError) as dropped:
            peer.on_share(replica.state, _share(0, ev), T0 + 100)
        assert dropped.value.reason is reason and peer.cases == {} and peer_signer.signed == 0, what
    # a non-member oracle signs nothing even for good evidence
    outsider = DeviceSlashDesk(STRANGER.public_key, _Signer(0), _bound, CHAIN_ID, CONTRACT)
    with pytest.raises(FaultproofError) as not_member:
        outsider.report(replica.state, _evidence(), T0)
    assert not_member.value.reason is Reason.UNAVAILABLE and outsider.cases == {}


def test_a_slashed_device_ends_its_cases_and_its_evidence_is_a_duplicate_after() -> None:
    replica, ev = _Replica(), _evidence()
    desk, _ = _desk(0)
    desk.report(replica.state, ev, T0)
    desk.report(replica.state, _evidence(seq=9), T0)
    assert len(desk.cases) == 2
    replica.event("Slashed", kind=2, offender=DEVICE.public_key, reporter=REPORTER, evidence=3, amount=BOND,
                  toReporter=BOND * 2_000 // 10_000, toPool=BOND - BOND * 2_000 // 10_000, atMs=T0 + 50)
    assert replica.mirror.problem is None and DEVICE.public_key in replica.state.econ.slashed_devices
    assert sorted(desk.prune(replica.state.econ.slashed_devices)) == sorted(
        slash_key(slash_body(0, e)) for e in (ev, _evidence(seq=9)))
    assert desk.cases == {}
    with pytest.raises(FaultproofError) as dup:
        desk.report(replica.state, _evidence(seq=10), T0 + 100)
    assert dup.value.reason is Reason.EVIDENCE_DUPLICATE


def test_open_cases_are_bounded_per_device() -> None:
    replica = _Replica()
    desk, _ = _desk(0)
    for seq in range(DeviceSlashDesk.MAX_PER_DEVICE):
        desk.report(replica.state, _evidence(seq=seq), T0)
    with pytest.raises(FaultproofError) as full:
        desk.report(replica.state, _evidence(seq=99), T0)
    assert full.value.reason is Reason.RATE_LIMITED and len(desk.cases) == DeviceSlashDesk.MAX_PER_DEVICE


# ----------------------------------------------------------------------------- POST /v1/equivocations


class _Follower:
    def __init__(self, client: Any = None) -> None:
        self.client, self.refreshes = client, 0

    async def refresh(self) -> None:
        self.refreshes += 1


def _node(replica: _Replica | None, client: Any = None) -> Any:
    """What the HTTP handler and the device-slash service read of an OracleNode."""
    node = SimpleNamespace(
        config=SimpleNamespace(max_body_bytes=1 << 20, idle_timeout_s=30.0), oracle_id=ORACLES[0].public_key,
        synced=True, clock=lambda: T0, transport=RecordingTransport(), follower=_Follower(client), chain_key=KEYS[0],
        chain=(SimpleNamespace(opened=SimpleNamespace(chain_id=CHAIN_ID, address=CONTRACT), binding=_bound)
               if replica is not None else None),
        view=SimpleNamespace(state=replica.state if replica is not None else None))
    node.content_checked = partial(OracleNode.content_checked, node)  # the node's own fresh-view check
    node.slashes = DeviceSlashService(node)
    node.slashes.open()
    return node


JSON_CT = {"Content-Type": "application/json"}
MSGPACK_CT = {"Content-Type": "application/msgpack"}


async def test_post_equivocations_signs_valid_evidence_and_refuses_bad_with_a_named_4xx() -> None:
    replica = _Replica()
    node = _node(replica)
    async with TestClient(TestServer(make_app(node))) as c:
        # refusals: 4xx with the reason, nothing signed or gossiped
        for what, (ev, reason, words) in _refusals(replica).items():
            for body, headers in ((ev.encode(), MSGPACK_CT), (json.dumps(ev.to_json()).encode(), JSON_CT)):
                r = await c.post("/v1/equivocations", data=body, headers=headers)
                err = (await r.json())["error"]
                assert 400 <= r.status < 500 and err["code"] == reason.value and words in err["message"], what
        r = await c.post("/v1/equivocations", data=b"hello", headers={"Content-Type": "text/plain"})
        assert r.status == 415
        r = await c.post("/v1/equivocations", data=b"{not json", headers=JSON_CT)
        assert r.status == 400
        r = await c.post("/v1/equivocations", data=msgpack.packb([76, b"\x00"]), headers=MSGPACK_CT)
        assert r.status == 400
        r = await c.post("/v1/equivocations", data=bytes(FrameEquivocation.MAX_SIZE + 1), headers=MSGPACK_CT)
        assert r.status == 413
        big = json.dumps({"pad": "0" * (4 * FrameEquivocation.MAX_SIZE)}).encode()
        r = await c.post("/v1/equivocations", data=big, headers=JSON_CT)
        assert r.status == 413
        assert node.slashes.desk.cases == {} and node.transport.sent == []
        # valid evidence, as JSON: checked, signed, gossiped with the evidence; again: nothing new
        ev = _evidence()
        for _ in range(2):
            r = await c.post("/v1/equivocations", data=json.dumps(ev.to_json()).encode(), headers=JSON_CT)
            answer = await r.json()
            assert r.status == 202 and answer["status"] == "signed" and answer["shares"] == 1, answer
        assert answer["slash_id"] == slash_key(slash_body(0, ev)).hex()
        # the operator sees the certificate in the making (GET /v1/status's `device_slashes`)
        assert node.slashes.status() == {"open": [{"slash_id": answer["slash_id"], "device_id": ev.first.frame.device_id.hex(),
                                                   "reporter": ev.reporter.hex(), "shares": 1, "signed": True}],
                                         "sent": 0, "dropped": {}}
        ((topic, data),) = node.transport.sent
        share = DeviceSlashShare.decode(data)
        assert share.evidence == ev and share.oracle_id == ORACLES[0].public_key
        assert check_share(share, slash_body(0, ev), KEYS[0].address, CHAIN_ID, CONTRACT) is None


async def test_post_equivocations_on_the_sqlite_backend_forwards_to_the_ledger() -> None:
    sent: list[Any] = []

    class Ledger:
        async def submit(self, tx: Any) -> Any:
            sent.append(tx)
            if tx.first == tx.second:
                raise FaultproofError(Reason.EVIDENCE_INVALID, "the same frame twice")
            return SimpleNamespace(height=12)

    node = _node(None, Ledger())
    ev = _evidence()
    async with TestClient(TestServer(make_app(node))) as c:
        r = await c.post("/v1/equivocations", data=ev.encode(), headers=MSGPACK_CT)
        assert r.status == 202 and (await r.json())["height"] == 12
        r = await c.post("/v1/equivocations", data=ev.replace(second=ev.first).encode(), headers=MSGPACK_CT)
        assert r.status == 409 and (await r.json())["error"]["code"] == "evidence_invalid"
    assert sent == [ev, ev.replace(second=ev.first)] and node.slashes.desk is None


# ----------------------------------------------------------------------------- the service over gossip


async def test_one_report_reaches_k_shares_over_gossip_and_one_member_sends_the_certificate() -> None:
    """Five members on a MemoryNetwork, each with its own replica: evidence posted to one of them
    is checked and signed by every member, the member whose posting turn comes first sends the
    certificate (k signatures in address order, the evidence's reporter), and the others see the
    slash on their replicas and send nothing."""
    import asyncio
    from functools import partial

    from ledger.state import TxKind
    from oracle.node import OracleNode
    from oracle.transport import MemoryNetwork

    net, nodes, sent = MemoryNetwork(), [], []

    async def report_device_slash(node: Any, body: DeviceSlashBody, sigs: Any) -> Any:
        sent.append((node.oracle_id, body, tuple(sigs), body.reporter))
        for other in nodes:  # the mirror's Slashed event reaches every replica
            other.replica.event("Slashed", kind=2, offender=body.device_id, reporter=body.reporter, evidence=3,
                                amount=BOND, toReporter=300, toPool=BOND - 300, atMs=T0 + 60)
            other.slashes.slashes_seen([SimpleNamespace(kind=TxKind.SLASH)])
        return SimpleNamespace(gas_used=1, tx_hash=bytes(32), block=1)

    for i in range(5):
        replica = _Replica()
        node = _node(replica)
        node.oracle_id, node.chain_key, node.replica = ORACLES[i].public_key, KEYS[i], replica
        node.transport = net.join(ORACLES[i].public_key)
        node.config.tuning = SimpleNamespace(regossip_s=0.2, chain_post_delay_s=0.5)
        node.chain.report_device_slash = partial(report_device_slash, node)
        node._qc_formed, node._post_later = {}, set()
        node.chain_oracle_set = lambda epoch, r=replica: r.state.oracle_set
        node.chain_turn_due = partial(OracleNode.chain_turn_due, node)  # the node's own turns
        node._post_when_due = partial(OracleNode._post_when_due, node)
        node.chain_forget = lambda key, n=node: n._qc_formed.pop(key, None)
        node.slashes.open()
        await node.transport.start()
        nodes.append(node)
    ev = _evidence()
    async with asyncio.TaskGroup() as tg:
        tasks = [tg.create_task(n.slashes.run()) for n in nodes]
        await asyncio.sleep(0)
        await nodes[2].slashes.report(ev.encode(), "application/msgpack")
        for _ in range(100):
            await asyncio.sleep(0.05)
            if sent and all(not n.slashes.desk.cases for n in nodes):
                break
        await asyncio.sleep(1.5)  # every later turn passes: nobody else sends
        for t in tasks:
            t.cancel()
    assert len(sent) == 1, sent
    sender, body, sigs, reporter = sent[0]
    assert body == slash_body(0, ev) and reporter == REPORTER and len(sigs) == 4
    assert [s.signer for s in sigs] == sorted((s.signer for s in sigs), key=lambda a: int(a, 16))
    assert all(recover_slash_signer(body, CHAIN_ID, CONTRACT, s.signature) == s.signer for s in sigs)
    assert any(s.signer == KEYS[[o.public_key for o in ORACLES].index(sender)].address for s in sigs)  # its own
    assert all(n.slashes.desk.cases == {} and n.slashes.dropped == {} for n in nodes)
