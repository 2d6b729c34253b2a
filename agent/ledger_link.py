"""The agent's replica of the ledger, and the snapshot of it that ingest and detection use.

`LedgerReplica` is the agent's face of the one ledger follower (`ledger.follower.LedgerFollower`,
shared with the oracles): it replays every signed entry through the ledger's own rules, checks the
ledger's signed heads, refuses entries whose time is off our clock (DESIGN §11) and reconnects with
backoff, so the agent's view of devices, policies, circuits and payouts cannot disagree with the
ledger about a rule.

`snapshot` turns that state into what the ingest engine needs, for the devices whose blinding
keys this agent holds: a `DeviceRecord` each (epoch, anchor, revocation) and the device's open
policy as `PolicyTerms` when the agent can prove its circuit.

This file must never write to the ledger, and never accept an entry that fails a check (an
IntegrityError stops following for good and the agent reports itself unhealthy, without exiting).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Callable, Mapping

from prometheus_client import CollectorRegistry

from agent.detect import PolicyTerms
from agent.frames import DeviceRecord
from agent.ingest import LedgerSnapshot
from faultproof.errors import FaultproofError, Reason
from ledger.follower import LedgerFollower
from ledger.settlement import Settlement
from ledger.state import (
    Effect,
    IntegrityError,
    LedgerState,
    PolicyStatus,
    attestation_results,
    device_key_schedule,
)

log = logging.getLogger("faultproof.agent.ledger")
_REFUSED_LOGGED: set[tuple[bytes, int]] = set()  # policies refused for their device's sign_every, logged


class LedgerReplica:
    def __init__(self, client: Settlement, *, wait_s: float = 10.0, registry: CollectorRegistry | None = None,
                 max_skew_ms: int | None = None) -> None:
        self.client = client
        self.follower = LedgerFollower(client, wait_s, self._on_effects, registry=registry, max_skew_ms=max_skew_ms)
        self.changed = asyncio.Event()
        self._on_change: Callable[[], None] | None = None

    @property
    def state(self) -> LedgerState | None:
        return self.follower.view.state if self.follower.view is not None else None

    @property
    def height(self) -> int:
        return self.follower.view.height if self.follower.view is not None else -1

    @property
    def integrity_error(self) -> IntegrityError | None:
        return self.follower.integrity_error

    @property
    def problem(self) -> str | None:
        """Why the replica is not following the ledger (integrity error, entry time off our clock)."""
        return self.follower.problem

    @property
    def time_refusal(self) -> str | None:
        return self.follower.time_refusal

    @property
    def connected(self) -> bool:
        return self.follower.connected

    async def bootstrap(self, timeout: float = 60.0, expected_ledger_id: bytes | None = None) -> LedgerState:
        """Fetch the genesis entry and everything after it; retries while the ledger is down."""
        try:
            view = await self.follower.bootstrap(expected_ledger_id, timeout=timeout)
        except IntegrityError as e:  # start-up says what is wrong in one line (agent.daemon)
            raise FaultproofError(Reason.UNAVAILABLE, f"the ledger's history does not check out: {e}") from None
        return view.state

    async def poll(self, wait: float) -> int:
        """Apply every entry after our height (long-polling up to `wait` s). Returns how many."""
        return len(await self.follower.poll(wait))

    async def run(self, on_change: Callable[[], None]) -> None:
        """Follow the ledger until cancelled; calls on_change after entries were applied."""
        self._on_change = on_change
        await self.follower.run()

    def _on_effects(self, effects: list[Effect]) -> None:
        self.changed.set()
        if self._on_change is not None:
            self._on_change()


def snapshot(state: LedgerState, keys: Mapping[bytes, bytes], circuit_sizes: Mapping[bytes, int],
             now_ms: int, sign_every: Mapping[bytes, int] | None = None) -> LedgerSnapshot:
    """What ingest needs: devices enrolled on the ledger whose blinding key we hold, and for each
    its open policy if it is issued or active and we can prove its circuit (circuit_id -> n).
    `sign_every` is each device's s from its provisioning (DESIGN §16; absent: 1); a policy whose
    circuit's n is not a multiple of s is refused (left out: no window of it could end signed)."""
    devices: dict[bytes, DeviceRecord] = {}
    policies: dict[bytes, PolicyTerms] = {}
    for device_id, key in keys.items():
        dev = state.device(device_id)
        if dev is None:
            continue
        s = (sign_every or {}).get(device_id, 1)
        devices[device_id] = DeviceRecord(device_id, dev.epoch, dev.anchor, dev.revoked_ms, key,
                                          device_key_schedule(state, device_id), sign_every=s)
        pid = state.open_policy.get(device_id)
        policy = state.policy(pid) if pid is not None else None
        if policy is None or policy.status_at(now_ms) not in (PolicyStatus.ISSUED, PolicyStatus.ACTIVE):
            continue
        n = circuit_sizes.get(policy.terms.circuit_id)
        if n is None:
            continue
        if n % s:
            if (policy.policy_id, s) not in _REFUSED_LOGGED:  # once, not at every refresh
                _REFUSED_LOGGED.add((policy.policy_id, s))
                log.warning("policy %s refused: device %s signs every %dth frame, which does not divide n = %d",
                            policy.policy_id.hex()[:12], device_id.hex()[:12], s, n)
            continue
        terms = PolicyTerms.from_ledger(policy, n)
        if state.econ.group_of(policy.policy_id):
            # A corroborated policy (§14): this agent files its PART for its own device (the
            # policy names one device of the group; the window is this one's). Oracles assemble
            # m parts from distinct agents into the one group claim the ledger pays.
            terms = dataclasses.replace(terms, device_id=device_id)
        policies[device_id] = terms
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
