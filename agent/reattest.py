"""Periodic re-attestation of the agent's devices (DESIGN §15): the shell around
`agent.core.attestations_due`.

Every tick it reads the ledger replica (each served device's latest attestation result and the
last nonce height it answered, the head), asks the pure schedule which devices are due, and asks
each one over MQTT for evidence over the ledger head (`faultproof/v1/devices/<id>/attest`, the
32-byte nonce). A device answers with `SignedEvidence` on `.../<id>/evidence`; the answer must
match the request outstanding for that device (`evidence_rejection`), is appraised locally against
the ledger's allowlist, and is submitted to the ledger, which records it passed or failed (the
ledger is the relying party: its record is what makes windows payable). A failed appraisal, local
or on the ledger, quarantines the device (`on_refused`, the ingest engine's anomaly monitor); so
do unsolicited or replayed answers and bad signatures, as signals.

`GatewayRequoter` does the same for the gateway itself (round 4): on `agent.core.gateway_quote_due`
(the devices' schedule, keyed by the agent's id) it asks its own TPM (agent/tpm.py) for a quote
over the ledger head and submits it; the ledger appraises and records it (H10).

This file must never decide that a device or the gateway is due (the core does), never sign
evidence (devices and the TPM do), and never drop a failed result: it is submitted like a passing
one.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Collection
from typing import Any

from agent.core import (
    AttestationView,
    AttestRequest,
    attestations_due,
    evidence_rejection,
    gateway_quote_due,
    reattest_interval_ms,
)
from agent.tpm import TpmError
from faultproof.attestation import evidence_signed_by, measurement_failure
from faultproof.errors import DecodeError, FaultproofError, Reason
from faultproof.messages import GatewayQuote, SignedEvidence
from ledger.state import (
    LedgerState,
    attestation_results,
    device_key,
    gateway_results,
    measurement_allowed,
)

log = logging.getLogger("faultproof.agent.reattest")

ATTEST_TOPIC = "faultproof/v1/devices/{}/attest"
EVIDENCE_TOPIC = "faultproof/v1/devices/+/evidence"


def attest_topic(device_id: bytes) -> str:
    return ATTEST_TOPIC.format(device_id.hex())


def views_of(state: LedgerState, devices: Collection[bytes]) -> dict[bytes, AttestationView]:
    """The served devices the ledger holds, enrolled and not revoked, with their attestation facts."""
    out: dict[bytes, AttestationView] = {}
    for device_id in devices:
        d = state.device(device_id)
        if d is None or d.revoked_ms is not None:
            continue
        results = attestation_results(state, device_id)
        out[device_id] = AttestationView(max((r.ts_ms for r in results), default=None),
                                         state.hw.last_nonce_height.get(device_id, -1))
    return out


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


class Reattester:
    def __init__(self, settlement: Any, state: Callable[[], LedgerState | None], devices: Callable[[], Collection[bytes]],
                 ask: Callable[[bytes, bytes], None], *, interval_ms: int,
                 on_refused: Callable[[bytes, Reason], None] = lambda d, r: None,
                 clock: Callable[[], int] = _now_ms) -> None:
        self.settlement, self.state_source, self.devices, self.ask = settlement, state, devices, ask
        self.configured_ms, self.on_refused, self.clock = interval_ms, on_refused, clock
        self.pending: dict[bytes, AttestRequest] = {}
        self.unanswered: dict[bytes, int] = {}  # device -> when its last request timed out
        self.counts: dict[str, int] = {"asked": 0, "submitted": 0, "failed": 0, "refused": 0, "unanswered": 0}

    def tick(self) -> list[bytes]:
        """Ask the devices that are due; returns them."""
        state = self.state_source()
        if state is None or state.height < 0:
            return []
        interval = reattest_interval_ms(self.configured_ms, state.hw.attestation_max_age_ms)
        now = self.clock()
        due, expired = attestations_due(views_of(state, self.devices()), self.pending, now_ms=now,
                                        head_height=state.height, head_hash=state.head_hash, interval_ms=interval,
                                        unanswered=self.unanswered)
        for device_id in expired:
            del self.pending[device_id]
            self.unanswered[device_id] = now
            self.counts["unanswered"] += 1
            log.info("device %s did not answer its attestation request", device_id.hex()[:12])
        for req in due:
            self.pending[req.device_id] = req
            self.ask(req.device_id, req.nonce)
            self.counts["asked"] += 1
        return [r.device_id for r in due]

    async def on_evidence(self, data: bytes) -> Reason | None:
        """A device's answer: checked, appraised, submitted. Returns why it was refused, or None
        (submitted; the ledger may still record it as failed)."""
        try:
            ev = SignedEvidence.decode(data)
        except DecodeError as e:
            self.counts["refused"] += 1
            log.info("undecodable evidence: %s", e.reason.value)
            return e.reason
        b = ev.body
        reason = evidence_rejection(self.pending, b.device_id, b.nonce)
        state = self.state_source()
        if reason is None and state is not None and not evidence_signed_by(ev, device_key(state, b.device_id)):
            reason = Reason.BAD_ATTESTATION_SIGNATURE
        if reason is not None:
            self.counts["refused"] += 1
            if b.device_id in self.devices():
                self.on_refused(b.device_id, reason)
            return reason
        del self.pending[b.device_id]
        self.unanswered.pop(b.device_id, None)
        failed = state is not None and measurement_failure(
            b, lambda c, d: measurement_allowed(state, c, d)) is not None
        if failed:  # quarantine now; the ledger records the failure too
            self.counts["failed"] += 1
            self.on_refused(b.device_id, Reason.ATTESTATION_FAILED)
        try:
            await self.settlement.submit(ev)
        except FaultproofError as e:
            self.counts["refused"] += 1
            log.warning("the ledger refused the evidence of %s: %s", b.device_id.hex()[:12], e.reason.value)
            return e.reason
        self.counts["submitted"] += 1
        return None

    async def run(self, period_s: float = 5.0) -> None:
        while True:
            self.tick()
            await asyncio.sleep(period_s)


def gateway_view(state: LedgerState, agent_id: bytes) -> AttestationView | None:
    """The gateway's quote facts on the ledger; None while the ledger pins no AK for it."""
    if agent_id not in state.hw.gateway_aks:
        return None
    results = gateway_results(state, agent_id)
    return AttestationView(max((r.ts_ms for r in results), default=None),
                           state.hw.gateway_nonce_height.get(agent_id, -1))


class GatewayRequoter:
    """The gateway quotes over the ledger head when `gateway_quote_due` says so, and submits it."""

    def __init__(self, settlement: Any, state: Callable[[], LedgerState | None], agent_id: bytes,
                 quote: Callable[[bytes, bytes], GatewayQuote], *, interval_ms: int,
                 clock: Callable[[], int] = _now_ms) -> None:
        self.settlement, self.state_source, self.agent_id, self.quote = settlement, state, agent_id, quote
        self.configured_ms, self.clock = interval_ms, clock
        self.last_failed_ms: int | None = None
        self.counts: dict[str, int] = {"quoted": 0, "failed": 0}

    async def tick(self) -> bool:
        """Quote and submit if due; True when a quote was submitted."""
        state = self.state_source()
        if state is None or state.height < 0:
            return False
        now = self.clock()
        req = gateway_quote_due(self.agent_id, gateway_view(state, self.agent_id), now_ms=now,
                                head_height=state.height, head_hash=state.head_hash,
                                interval_ms=reattest_interval_ms(self.configured_ms, state.hw.attestation_max_age_ms),
                                last_failed_ms=self.last_failed_ms)
        if req is None:
            return False
        try:
            q = await asyncio.to_thread(self.quote, self.agent_id, req.nonce)
            await self.settlement.submit(q)
        except (TpmError, FaultproofError) as e:
            self.last_failed_ms = now
            self.counts["failed"] += 1
            log.warning("gateway quote not recorded: %s", e)
            return False
        self.last_failed_ms = None
        self.counts["quoted"] += 1
        log.info("gateway quote over ledger height %d submitted", req.nonce_height)
        return True

    async def run(self, period_s: float = 5.0) -> None:
        while True:
            await self.tick()
            await asyncio.sleep(period_s)
