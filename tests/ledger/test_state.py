"""The pure state machine on its own: random transaction sequences keep the money invariants, a
refused transaction changes nothing, and replaying the entries gives the same state (what an oracle
does). Also the policy lifecycle table and the oracle-facing rule functions."""

from __future__ import annotations

import copy

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from faultproof.errors import FaultproofError, Reason
from faultproof.messages import Deposit, ExpirePolicy, Withdraw
from ledger.state import (
    LOCKED_PREFIX,
    POLICY_TRANSITIONS,
    LedgerState,
    PolicyEvent,
    PolicyStatus,
    TxKind,
    build_payout_body,
    payout_rejection,
    transition,
    tx_kind,
)
from tests.ledger.helpers import DAY, HOUR, T0, Scenario, make_ledger
from tests.vectors.samples import samples

KEYS = make_ledger(4)
OPS = st.lists(st.tuples(st.sampled_from(["deposit", "withdraw", "payout", "expire", "issue", "tick"]),
                         st.integers(0, 40), st.integers(1, 3_000)), min_size=1, max_size=25)


def _fingerprint(state: LedgerState) -> tuple[object, ...]:
    return (state.height, state.head_hash, dict(state.balances), state.admin_nonce,
            {p: (pol.locked, pol.paid_total, pol.status, pol.closed_ms) for p, pol in state.policies.items()},
            set(state.claims), dict(state.open_policy))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops=OPS)
def test_random_sequences_keep_the_invariants_and_replay(ops: list[tuple[str, int, int]]) -> None:
    keys = copy.deepcopy(KEYS)
    sc = Scenario.standard(keys, deposit=5_000, coverage=1_000, amount=300, period_ms=HOUR)
    state = keys.new_state()
    entries = [keys.genesis_entry()]
    now = T0
    for tx in sc.setup_txs:
        entries.append(state.apply(tx, now)[1].sign(keys.ledger_key))  # type: ignore[union-attr]
    extra_devices = 0
    for op, i, amount in ops:
        if op == "tick":
            now += amount * 60_000
            continue
        if op == "deposit":
            tx = keys.sign(Deposit(amount=amount), nonce=keys.next_nonce)
        elif op == "withdraw":
            tx = keys.sign(Withdraw(amount=amount), nonce=keys.next_nonce)
        elif op == "issue":
            txs, _, _ = sc.more_policy(f"device-x{extra_devices}", coverage=amount, amount=min(amount, 100),
                                       start_ms=now, end_ms=now + DAY)
            keys.next_nonce -= 2
            extra_devices += 1
            for t in txs:
                t = keys.sign(t.tx.args, nonce=keys.next_nonce)
                before = _fingerprint(state)
                try:
                    entries.append(state.apply(t, now)[1].sign(keys.ledger_key))  # type: ignore[union-attr]
                    keys.next_nonce += 1
                except FaultproofError:
                    assert _fingerprint(state) == before
            continue
        elif op == "payout":
            tx = keys.qc(sc.body(i))
            now = max(now, sc.body(i).end_ts)
        else:
            tx = ExpirePolicy(policy_id=sc.policy_id)
        before, pool_before = _fingerprint(state), state.pool_total
        try:
            effect, entry = state.apply(tx, now)
        except FaultproofError as e:
            assert e.reason.stage.value in ("ledger_tx", "ledger_state")
            assert _fingerprint(state) == before, "a refused transaction changed the state"
            continue
        if entry is not None:
            entries.append(entry.sign(keys.ledger_key))
            if op in ("deposit", "withdraw"):
                keys.next_nonce += 1
        assert sum(state.balances.values()) == 0
        assert state.pool_total - pool_before == effect.external_flow
        assert state.free >= 0
        for pid, pol in state.policies.items():
            assert state.balances[LOCKED_PREFIX + pid.hex()] == pol.locked >= 0
    view = LedgerState.from_genesis_entry(entries[0])
    for e in entries[1:]:
        view.apply_entry(e)
    assert _fingerprint(view) == _fingerprint(state)


def test_lifecycle_table_and_guards() -> None:
    assert POLICY_TRANSITIONS == {
        (PolicyStatus.ISSUED, PolicyEvent.TERM_STARTED): PolicyStatus.ACTIVE,
        (PolicyStatus.ACTIVE, PolicyEvent.CLAIMS_ENDED): PolicyStatus.EXPIRED,
        (PolicyStatus.EXPIRED, PolicyEvent.CLOSE): PolicyStatus.CLOSED,
        # DESIGN §15 H11: decommissioning the device closes its policy from any open status
        (PolicyStatus.ISSUED, PolicyEvent.DECOMMISSION): PolicyStatus.CLOSED,
        (PolicyStatus.ACTIVE, PolicyEvent.DECOMMISSION): PolicyStatus.CLOSED,
        (PolicyStatus.EXPIRED, PolicyEvent.DECOMMISSION): PolicyStatus.CLOSED,
    }
    for status, event, reason in [(PolicyStatus.ACTIVE, PolicyEvent.CLOSE, Reason.EXPIRY_TOO_EARLY),
                                  (PolicyStatus.CLOSED, PolicyEvent.DECOMMISSION, Reason.INVALID_STATE_TRANSITION),
                                  (PolicyStatus.CLOSED, PolicyEvent.CLOSE, Reason.INVALID_STATE_TRANSITION),
                                  (PolicyStatus.CLOSED, PolicyEvent.TERM_STARTED, Reason.INVALID_STATE_TRANSITION)]:
        with pytest.raises(FaultproofError) as info:
            transition(status, event)
        assert info.value.reason is reason


def test_oracle_side_rule_functions() -> None:
    keys = copy.deepcopy(KEYS)
    sc = Scenario.standard(keys)
    state = sc.set_up()
    body = build_payout_body(state, sc.policy_id, 0, 0, sc.circuit.n, sc.body(0).start_ts, sc.body(0).end_ts)
    assert body == sc.body(0)
    assert state.payout_mismatch(body) is None
    assert payout_rejection(state, body, sc.time_after(0)) is None
    assert payout_rejection(state, body, body.end_ts - 60_000) is Reason.END_TS_IN_FUTURE
    assert state.qc_rejection(keys.qc(body), sc.time_after(0)) is None
    assert state.qc_rejection(keys.qc(body, keys.oracles[:1]), sc.time_after(0)) is Reason.QC_INSUFFICIENT_SIGNATURES
    state.apply(keys.qc(body), sc.time_after(0))
    assert state.paid_claim(body.claim_id) is not None
    assert payout_rejection(state, body, sc.time_after(0)) is Reason.WINDOW_OVERLAP  # its own window
    assert state.oracle_set_for(0, T0) is state.oracle_set and state.oracle_set_for(1, T0) is None


def test_entry_bytes_reuse_the_transaction_encoding() -> None:
    from ledger.service import entry_bytes
    from ledger.store import signed_entry_bytes

    keys = copy.deepcopy(KEYS)
    sc = Scenario.standard(keys)
    state = keys.new_state()
    entries = [state.apply(tx, T0)[1] for tx in sc.setup_txs]
    entries.append(state.apply(keys.qc(sc.body(0)), sc.time_after(0))[1])
    for entry in entries:
        assert entry is not None
        assert entry_bytes(entry, entry.tx.encode()) == entry.encode()
        signed = entry.sign(keys.ledger_key)
        assert signed_entry_bytes(entry.encode(), signed.signature) == signed.encode()


def test_tx_kind_of_every_message_type() -> None:
    """The kind a transaction is recorded and counted as (an admin tx's: its admin kind's); a group
    QC pays although it is one of the economic types; no other message is a ledger transaction."""
    kinds = {"quorum-certificate": TxKind.PAYOUT, "signed-admin-tx": TxKind.ISSUE_POLICY,
             "expire-policy": TxKind.EXPIRE, "genesis": TxKind.GENESIS, "vote-equivocation": TxKind.SLASH,
             "contradicting-approve": TxKind.SLASH, "frame-equivocation": TxKind.SLASH,
             "group-quorum-certificate": TxKind.GROUP_PAYOUT, "chain-slash": TxKind.SLASH,
             "signed-device-anchor": TxKind.ANCHOR, "signed-evidence": TxKind.ATTEST,
             "gateway-quote": TxKind.GATEWAY_QUOTE, "suspension-certificate": TxKind.SUSPEND_DEVICE}
    every = samples()
    assert set(kinds) <= set(every)
    for name, msg in every.items():
        if name in kinds:
            assert tx_kind(msg) is kinds[name], name
        else:
            with pytest.raises(FaultproofError) as e:
                tx_kind(msg)
            assert e.value.reason is Reason.WRONG_TYPE, name
