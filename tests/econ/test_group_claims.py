"""Corroborated claims, the oracle's and the agent's pure parts (DESIGN §14, "Group claims"): part
checks (G1), assembly (G2: m, distinct agents, overlap, order independence), one signature per
group (G4), k votes to the GroupQuorumCertificate the ledger pays once (G5), and the agent's view
of a paid part. Real signatures; proofs are 256 placeholder bytes (the proof check runs in the
oracle's verifier pool, exercised by tests/econ/test_group_network.py)."""

from __future__ import annotations

import asyncio
import itertools
from pathlib import Path
from types import SimpleNamespace

import pytest

from agent.group import GroupPayouts
from agent.ledger_link import snapshot
from faultproof.errors import FaultproofError, Reason
from faultproof.identity import Identity
from faultproof.messages import Claim, Frame, GroupVote, SignedClaim, TransferDevice, claim_id
from ledger.state import PAID, build_group_payout_body, group_payout_rejection, locked_account
from oracle.group import CheckedPart, GroupBook, assemble, check_part, is_group_policy
from tests.ledger.econ_world import EconWorld, N
from tests.ledger.helpers import HOUR, SECOND, T0
from tests.oracle.helpers import RecordingTransport

END = T0 + HOUR
PROOF = bytes(256)


def world(tolerance_ms: int = 2 * SECOND, m: int = 2, group: int = 3) -> tuple[EconWorld, bytes]:
    w = EconWorld.build(device_bonds=(60, 60, 60))
    pid = w.issue(w.group_policy(m=m, tolerance_ms=tolerance_ms).replace(
        group=tuple(d.public_key for d in w.devices[:group])))
    w.now = END + 5 * SECOND
    return w, pid


def part(w: EconWorld, pid: bytes, device: int, agent: int, start_ts: int, end_ts: int, *,
         start_seq: int = 0, n: int = N, signer: Identity | None = None) -> SignedClaim:
    """Agent `agent`'s part for device `device`: two device-signed frames, the agent's signature."""
    d = w.devices[device]
    start = Frame(device_id=d.public_key, epoch=0, seq=start_seq, ts_ms=start_ts, chain=(7).to_bytes(32, "big"))
    end = Frame(device_id=d.public_key, epoch=0, seq=start_seq + n, ts_ms=end_ts, chain=(9).to_bytes(32, "big"))
    claim = Claim(policy_id=pid, start=start.sign(d), end=end.sign(d), proof=PROOF,
                  agent_id=w.agents[agent].public_key, created_ms=end_ts)
    return claim.sign(signer or w.agents[agent])


def checked(w: EconWorld, pid: bytes, device: int, agent: int, start_ts: int, end_ts: int, **kw: int) -> CheckedPart:
    return check_part(part(w, pid, device, agent, start_ts, end_ts, **kw), w.state)


# ---------------------------------------------------------------- G1 part content


def test_part_content_checks() -> None:
    w, pid = world()
    p = checked(w, pid, 1, 1, END - 10 * SECOND, END)
    assert is_group_policy(w.state, pid)
    assert (p.window.device_id, p.window.agent_id) == (w.devices[1].public_key, w.agents[1].public_key)
    assert (p.window.start_seq, p.window.end_seq, p.window.end_ts) == (0, N, END)
    # rebuilt signals carry the policy's trigger, never anything from the claim
    assert p.job.signals.t_end == END and p.job.signals.K == w.state.policies[pid].terms.count

    def refused(signed: SignedClaim, reason: Reason) -> None:
        with pytest.raises(FaultproofError) as e:
            check_part(signed, w.state)
        assert e.value.reason is reason

    refused(part(w, pid, 1, 1, END - 10 * SECOND, END, signer=w.agents[2]), Reason.BAD_AGENT_SIGNATURE)
    refused(part(w, pid, 1, 1, END - 10 * SECOND, END, n=N - 1), Reason.WINDOW_LENGTH)
    refused(part(w, pid, 1, 1, END, END), Reason.FRAME_MISMATCH)
    outsider = Identity.generate()
    c = part(w, pid, 1, 1, END - 10 * SECOND, END).claim
    refused(c.replace(agent_id=outsider.public_key).sign(outsider), Reason.UNKNOWN_AGENT)
    # a device outside the group, and a single-device policy's claims: neither is a part
    w2, pid2 = world(group=2)
    refused2 = part(w2, pid2, 2, 2, END - 10 * SECOND, END)
    with pytest.raises(FaultproofError) as e:
        check_part(refused2, w2.state)
    assert e.value.reason is Reason.POLICY_DEVICE_MISMATCH
    # DESIGN §15 H9, as for a lone claim: once device 1 is transferred to agent 2, agent 1's part
    # for it is refused, and agent 2's is taken
    w.apply(w.admin(TransferDevice(device_id=w.devices[1].public_key, to_agent=w.agents[2].public_key)))
    refused(part(w, pid, 1, 1, END - 10 * SECOND, END), Reason.DEVICE_NOT_IN_CUSTODY)
    assert checked(w, pid, 1, 2, END - 10 * SECOND, END).window.agent_id == w.agents[2].public_key


# ---------------------------------------------------------------- G2 assembly


def test_assembly_needs_m_distinct_agents_and_overlap() -> None:
    w, pid = world(tolerance_ms=2 * SECOND)
    a = checked(w, pid, 0, 0, END - 10 * SECOND, END)
    b = checked(w, pid, 1, 1, END - 9 * SECOND, END + SECOND)
    assert assemble([a], 2, 2 * SECOND) is None  # m - 1 parts: no group
    group = assemble([b, a], 2, 2 * SECOND)
    assert group is not None and [p.window.device_id for p in group] == sorted([a.window.device_id,
                                                                                b.window.device_id])
    # two devices under ONE agent never corroborate each other
    same_agent = checked(w, pid, 1, 0, END - 9 * SECOND, END)
    assert assemble([a, same_agent], 2, 2 * SECOND) is None
    # 3 s apart with a 2 s tolerance: no common moment; within 4 s tolerance: a group
    late = checked(w, pid, 1, 1, END + 3 * SECOND, END + 4 * SECOND)
    assert assemble([a, late], 2, 2 * SECOND) is None
    assert assemble([a, late], 2, 4 * SECOND) is not None
    # m = 3 needs all three
    c = checked(w, pid, 2, 2, END - 8 * SECOND, END)
    assert assemble([a, b], 3, 2 * SECOND) is None
    trio = assemble([a, b, c], 3, 2 * SECOND)
    assert trio is not None and len(trio) == 3


def test_assembly_is_independent_of_arrival_order() -> None:
    w, pid = world(tolerance_ms=2 * SECOND)
    parts = [checked(w, pid, 0, 0, END - 10 * SECOND, END),
             checked(w, pid, 1, 1, END - 9 * SECOND, END + SECOND),
             checked(w, pid, 2, 2, END - 8 * SECOND, END + 2 * SECOND),
             checked(w, pid, 1, 0, END - 9 * SECOND, END),  # same agent as device 0's part
             checked(w, pid, 2, 2, END + 30 * SECOND, END + 40 * SECOND, start_seq=100)]  # overlaps nothing
    picks = {tuple(p.window for p in (assemble(order, 2, 2 * SECOND) or ())) for order in itertools.permutations(parts)}
    assert len(picks) == 1 and len(next(iter(picks))) == 2


# ---------------------------------------------------------------- G3..G5, and the ledger pays once


def test_book_signs_once_counts_k_and_the_ledger_pays_the_group_once() -> None:
    w, pid = world()
    book = GroupBook()
    parts = [checked(w, pid, 0, 0, END - 10 * SECOND, END), checked(w, pid, 1, 1, END - 9 * SECOND, END + SECOND)]
    assert all(book.add_part(p) for p in parts) and not book.add_part(parts[0])
    group = book.candidate(pid, 2, 2 * SECOND)
    assert group is not None
    body = build_group_payout_body(w.state, pid, [p.window for p in group])
    assert group_payout_rejection(w.state, body, w.now) is None
    assert book.sign(body) and not book.sign(body)  # G4: one signature per group and epoch
    assert book.parts_for(pid, body.windows) == group

    members = frozenset(o.public_key for o in w.keys.oracles)
    qc = None
    for i, o in enumerate(w.keys.oracles[: w.keys.threshold]):
        vote = GroupVote.make(body, o)
        assert vote.verify() and GroupVote.decode(vote.encode()) == vote
        qc = book.add_vote(vote, members, w.keys.threshold)
        assert (qc is None) == (i < w.keys.threshold - 1)
        assert book.add_vote(vote, members, w.keys.threshold) is None  # a repeat counts once
    outsider = Identity.generate()
    assert book.add_vote(GroupVote.make(body, outsider), members, w.keys.threshold) is None
    assert qc is not None
    w.apply(qc)
    assert w.state.balance(PAID) == 100 and w.state.balance(locked_account(pid)) == 9_900
    # the agents' view: each part's own claim_id is paid by the group payout
    gp = GroupPayouts()
    for p in parts:
        pw = p.window
        assert gp.paid(w.state, claim_id(pid, pw.device_id, pw.epoch, pw.start_seq, pw.end_seq)) == 100
    assert gp.paid(w.state, bytes(32)) is None
    # the third device's part in the same period makes another group, which the ledger's own
    # rules (and so every oracle, before signing) refuse
    third = checked(w, pid, 2, 2, END - 8 * SECOND, END)
    other = build_group_payout_body(w.state, pid, [parts[0].window, third.window])
    refusal = group_payout_rejection(w.state, other, w.now)
    assert refusal is not None and refusal.reason is Reason.WINDOW_OVERLAP
    book.mark_paid(body.claim_id)
    assert not book.sign(body) and book.open_bodies() == []


def test_oracles_refuse_what_the_ledger_refuses() -> None:
    w, pid = world()
    same = build_group_payout_body(w.state, pid, [w.window(0, 0, END - 10 * SECOND, END),
                                                  w.window(1, 0, END - 10 * SECOND, END)])
    apart = build_group_payout_body(w.state, pid, [w.window(0, 0, END - 10 * SECOND, END),
                                                   w.window(1, 1, END + 3 * SECOND, END + 4 * SECOND)])
    one = build_group_payout_body(w.state, pid, [w.window(0, 0, END - 10 * SECOND, END)])
    for body, reason in ((same, Reason.CORROBORATION_SAME_AGENT), (apart, Reason.CORROBORATION_NO_OVERLAP),
                         (one, Reason.CORROBORATION_TOO_FEW)):
        err = group_payout_rejection(w.state, body, w.now)
        assert err is not None and err.reason is reason
        with pytest.raises(FaultproofError) as e:
            w.state.check(w.group_qc(pid, body.windows), w.now)
        assert e.value.reason is reason


def test_agent_snapshot_gives_each_group_device_its_part() -> None:
    """The agent detects windows under a corroborated policy for its own device (its part)."""
    w, pid = world()
    keys = {d.public_key: b"\x01" * 31 for d in w.devices}
    snap = snapshot(w.state, keys, {w.circuit_id: N}, w.now)
    assert set(snap.policies) == set(keys)
    for d in w.devices:
        terms = snap.policies[d.public_key]
        assert terms.policy_id == pid and terms.device_id == d.public_key


def test_each_window_is_checked_against_its_devices_anchored_history() -> None:
    """S4 (DESIGN §11) for a group: each window's own end (time and chain) against the heads its
    agent anchored; the other rules look at the group's span. (The devnet's agents anchor every
    5 s, which is how the span-only check was found wanting.)"""
    from agent.anchor import build_anchors
    from faultproof.messages import DeviceHead

    w, pid = world()
    a = checked(w, pid, 0, 0, END - 10 * SECOND, END)
    b = checked(w, pid, 1, 1, END - 9 * SECOND, END + SECOND)
    heads = sorted((DeviceHead(device_id=p.window.device_id, epoch=0, seq=p.window.end_seq, ts_ms=p.window.end_ts,
                               chain=p.window.end_chain) for p in (a, b)), key=lambda h: (h.device_id, h.seq))
    for anchor in build_anchors(w.keys.ledger_id, w.agents[0], 1, heads):
        w.apply(anchor)
    body = build_group_payout_body(w.state, pid, [a.window, b.window])
    assert group_payout_rejection(w.state, body, w.now) is None
    forged = build_group_payout_body(w.state, pid, [a.window, b.window.replace(end_chain=(8).to_bytes(32, "big"))])
    err = group_payout_rejection(w.state, forged, w.now)
    assert err is not None and err.reason is Reason.ANCHOR_MISMATCH
    w.apply(w.group_qc(pid, body.windows))
    assert w.state.balance(PAID) == 100


def test_gossip_routing_by_type_id() -> None:
    """The node hands GroupClaims and GroupVotes to the group service by their type id alone;
    claims and vote batches stay on their path."""
    from faultproof.messages import GroupClaim, VoteBatch
    from oracle.group_node import is_group_message

    w, pid = world()
    p = part(w, pid, 0, 0, END - 10 * SECOND, END)
    body = build_group_payout_body(w.state, pid, [w.window(0, 0, END - 10 * SECOND, END)])
    assert is_group_message(GroupVote.make(body, w.keys.oracles[0]).encode())
    assert is_group_message(GroupClaim(policy_id=pid, parts=(p,)).encode())
    assert not is_group_message(p.encode())
    assert not is_group_message(VoteBatch(oracle_id=w.keys.oracles[0].public_key, votes=()).encode())
    assert not is_group_message(b"") and not is_group_message(b"\x93\xcc")


class _Verifier:
    """Stand-in for the verifier pool: these parts carry placeholder proofs (the real pool runs
    in tests/econ/test_group_network.py)."""

    async def verify(self, job: object) -> bool:
        return True


class _Limiter:
    def allow(self, key: bytes, now: float) -> bool:
        return True


def _node(w: EconWorld, data: Path, oracle: int) -> SimpleNamespace:
    """The parts of an OracleNode the group service uses, around one ledger state (always fresh:
    the content check runs once on it)."""

    async def content_checked(check, signed, refreshed):  # type: ignore[no-untyped-def]
        return check(signed, w.state)

    return SimpleNamespace(content_checked=content_checked, config=SimpleNamespace(db_path=data / "oracle.sqlite3", tuning=SimpleNamespace(regossip_s=1)),
                           view=SimpleNamespace(state=w.state), clock=lambda: w.now,
                           identity=w.keys.oracles[oracle], transport=RecordingTransport(), verifier=_Verifier(),
                           _agent_limiter=_Limiter(), follower=None, chain=None)  # chain: the SQLite backend


def test_a_killed_oracle_restarts_with_its_parts_and_never_signs_another_body(tmp_path: Path) -> None:
    from oracle.group_node import GroupService

    w, pid = world()
    node = _node(w, tmp_path, 0)
    svc = GroupService(node)
    a = part(w, pid, 0, 0, END - 10 * SECOND, END)
    b = part(w, pid, 1, 1, END - 9 * SECOND, END + SECOND)
    asyncio.run(svc.submit_part(a, "gossip"))
    assert not [t for t, _ in node.transport.sent if t.endswith("votes")]  # m - 1 parts: no vote
    asyncio.run(svc.submit_part(b, "http"))
    votes = [GroupVote.decode(d) for t, d in node.transport.sent if t.endswith("votes")]
    assert len(votes) == 1 and votes[0].oracle_id == w.keys.oracles[0].public_key
    body = votes[0].body
    # kill -9: no close; a new service on the same files
    again = GroupService(_node(w, tmp_path, 0))
    again.restore()
    assert again.book.open_bodies() == [body]
    assert not again.book.sign(body)  # G4 holds across the restart
    assert again.book.parts_for(pid, body.windows) is not None
    # the same body with another agent for one window (same claim_id) is never signed after restart
    assert not again.book.sign(body.replace(windows=tuple(
        w_.replace(agent_id=w.agents[2].public_key) if i == 0 else w_ for i, w_ in enumerate(body.windows))))
    again.payout_seen(body.claim_id)
    third = GroupService(_node(w, tmp_path, 0))
    third.restore()
    assert third.book.open_bodies() == [] and body.claim_id in third.book.paid
    for s in (svc, again, third):
        s.close()


def test_a_group_payout_counts_as_a_payout_for_each_devices_window_and_the_breaker() -> None:
    """S2 and P10 (DESIGN §11, §15) hold for corroborated claims too: a device window paid in a
    group is in the device's paid history (which S2 checks under any policy), and the circuit
    breaker counts the group's payout (the group commit skipped both)."""
    from faultproof.messages import SetLockdown
    from ledger.state import build_payout_body, device_window_overlaps
    from tests.ledger.helpers import DAY

    w, pid = world()
    w.apply(w.admin(SetLockdown(breaker_window_ms=DAY, breaker_share_bps=5, attestation_max_age_ms=0)))
    window = w.window(0, 0, END - 10 * SECOND, END)
    again = build_payout_body(w.state, pid, 0, window.start_seq, window.end_seq, window.start_ts, window.end_ts)
    assert again.device_id == window.device_id and not device_window_overlaps(w.state, again)
    w.apply(w.group_qc(pid, [window, w.window(1, 1, END - 9 * SECOND, END + SECOND)]))
    assert w.state.balance(PAID) == 100
    assert device_window_overlaps(w.state, again)
    assert device_window_overlaps(w.state, again.replace(start_ts=END + HOUR, end_ts=END + 2 * HOUR))  # same seqs
    # 100 paid of ~100k capital is over 0.05 %: the breaker tripped at that payout
    assert w.state.hw.paused_ms == w.now
