"""The agent's replica of the ledger, and the snapshot of it that ingest and detection use.

`LedgerReplica` follows the ledger service (`GET /v1/entries`, long poll, through the ledger team's
`LedgerClient`) and replays every signed entry through the ledger's own state machine
(`ledger.state.LedgerState.apply_entry`: signature, chain link, rules), so the agent's view
of devices, policies, circuits and payouts cannot disagree with the ledger about a rule.

`snapshot` turns that state into what the ingest engine needs, for the devices whose blinding
keys this agent holds: a `DeviceRecord` each (epoch, anchor, revocation) and the device's open
policy as `PolicyTerms` when the agent can prove its circuit.

This file must never write to the ledger, and never accept an entry that fails a check (an
IntegrityError stops the follower and the agent reports itself unhealthy).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping

from agent.detect import PolicyTerms
from agent.frames import DeviceRecord
from agent.ingest import LedgerSnapshot
from faultproof.errors import FaultproofError, Reason
from ledger.client import LedgerClient
from ledger.state import (
    IntegrityError,
    LedgerState,
    PolicyStatus,
    attestation_results,
    device_key_schedule,
)

log = logging.getLogger("faultproof.agent.ledger")


class LedgerReplica:
    def __init__(self, client: LedgerClient, *, wait_s: float = 10.0) -> None:
        self.client = client
        self.wait_s = wait_s
        self.state: LedgerState | None = None
        self.integrity_error: IntegrityError | None = None
        self.connected = False
        self.changed = asyncio.Event()

    @property
    def height(self) -> int:
        return self.state.height if self.state is not None else -1

    async def bootstrap(self, timeout: float = 60.0) -> LedgerState:
        """Fetch the genesis entry and everything after it; retries while the ledger is down."""
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            try:
                _, page = await self.client.entries(-1, 0)
                if not page:
                    raise FaultproofError(Reason.UNAVAILABLE, "the ledger returned no genesis entry")
                state = LedgerState.from_genesis_entry(page[0])
                for signed in page[1:]:
                    state.apply_entry(signed)
                self.state = state
                break
            except FaultproofError as e:
                if asyncio.get_running_loop().time() > deadline:
                    raise FaultproofError(Reason.UNAVAILABLE, f"ledger not reachable: {e}") from None
                log.info("waiting for the ledger: %s", e)
                await asyncio.sleep(0.5)
        await self.poll(0)
        self.connected = True
        return state

    async def poll(self, wait: float) -> int:
        """Apply every entry after our height (long-polling up to `wait` s). Returns how many."""
        assert self.state is not None
        applied = 0
        while True:
            _, page = await self.client.entries(self.state.height, wait)
            for signed in page:
                if signed.entry.height <= self.state.height:
                    continue
                try:
                    self.state.apply_entry(signed)
                except IntegrityError as e:
                    self.integrity_error = e
                    raise
                applied += 1
            if applied:
                self.changed.set()
            if not page or wait:
                return applied
            wait = 0

    async def run(self, on_change: Callable[[], None]) -> None:
        """Follow the ledger until cancelled; calls on_change after entries were applied."""
        while True:
            try:
                if await self.poll(self.wait_s):
                    on_change()
                self.connected = True
            except IntegrityError:
                log.critical("ledger entry failed verification: %s", self.integrity_error)
                raise
            except FaultproofError as e:
                self.connected = False
                log.warning("ledger follow: %s", e)
                await asyncio.sleep(1.0)


def snapshot(state: LedgerState, keys: Mapping[bytes, bytes], circuit_sizes: Mapping[bytes, int],
             now_ms: int) -> LedgerSnapshot:
    """What ingest needs: devices enrolled on the ledger whose blinding key we hold, and for each
    its open policy if it is issued or active and we can prove its circuit (circuit_id -> n)."""
    devices: dict[bytes, DeviceRecord] = {}
    policies: dict[bytes, PolicyTerms] = {}
    for device_id, key in keys.items():
        dev = state.device(device_id)
        if dev is None:
            continue
        devices[device_id] = DeviceRecord(device_id, dev.epoch, dev.anchor, dev.revoked_ms, key,
                                          device_key_schedule(state, device_id))
        pid = state.open_policy.get(device_id)
        policy = state.policy(pid) if pid is not None else None
        if policy is None or policy.status_at(now_ms) not in (PolicyStatus.ISSUED, PolicyStatus.ACTIVE):
            continue
        n = circuit_sizes.get(policy.terms.circuit_id)
        if n is None:
            continue
        policies[device_id] = PolicyTerms.from_ledger(policy, n)
    failed = frozenset(d for d in devices if (r := attestation_results(state, d)) and not r[-1].passed)
    return LedgerSnapshot(devices, policies, state.height, failed)


def unprovable_policies(state: LedgerState, keys: Mapping[bytes, bytes], circuit_sizes: Mapping[bytes, int],
                        now_ms: int) -> list[dict[str, str]]:
    """Open policies of our devices whose circuit we hold no proving key for (shown in /v1/status)."""
    out = []
    for device_id in keys:
        pid = state.open_policy.get(device_id)
        policy = state.policy(pid) if pid is not None else None
        if policy is None or policy.status_at(now_ms) not in (PolicyStatus.ISSUED, PolicyStatus.ACTIVE):
            continue
        if policy.terms.circuit_id not in circuit_sizes:
            out.append({"policy_id": policy.policy_id.hex(), "device_id": device_id.hex(),
                        "circuit_id": policy.terms.circuit_id.hex()})
    return out
