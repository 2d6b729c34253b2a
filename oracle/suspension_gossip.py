"""Suspension signatures over gossip (DESIGN §15, round 2): the I/O edge of `SuspensionDesk`.

Owns: the suspension topic, reading peers' `SuspensionShare`s from a Transport (libp2p GossipSub,
or `oracle.transport.MemoryNetwork` in tests), feeding them and agents' reports to the pure desk,
publishing our shares and submitting a certificate to the ledger once k signatures are in hand.
Every decision (check the evidence, sign, collect, when to submit) is the desk's; this file only
moves bytes. It must never sign anything the desk did not decide to sign, nor log frames.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence

from faultproof.errors import DecodeError, FaultproofError, Reason
from faultproof.messages import (
    SignedFrame,
    SignedSuspensionReport,
    SuspensionCertificate,
    SuspensionShare,
)
from ledger.state import LedgerState
from oracle.suspension import PublishShare, SubmitCertificate, SuspensionAction, SuspensionDesk
from oracle.transport import Transport

log = logging.getLogger("faultproof.oracle.suspension")

SUSPENSIONS_TOPIC = "faultproof/suspensions/1"


class SuspensionGossip:
    """Runs one oracle's desk over `transport`. `state` gives the oracle's current replica,
    `submit` posts a certificate to the ledger, `clock` is the one clock (ms)."""

    def __init__(self, desk: SuspensionDesk, transport: Transport, state: Callable[[], LedgerState],
                 submit: Callable[[SuspensionCertificate], Awaitable[object]], clock: Callable[[], int]) -> None:
        self.desk, self.transport, self.state, self.submit, self.clock = desk, transport, state, submit, clock
        self.submitted: list[SuspensionCertificate] = []
        self.dropped: dict[str, int] = {}  # reason -> shares dropped, for metrics and tests
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._read(), name="suspension-gossip")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass

    async def report(self, device_id: bytes, frames: Sequence[SignedFrame], since_ms: int) -> None:
        """An agent's evidence of forged frames (raises FaultproofError if it does not hold)."""
        await self._execute(self.desk.report(self.state(), device_id, frames, since_ms))

    async def report_signed(self, data: bytes) -> dict[str, str]:
        """`POST /v1/suspensions`: a SignedSuspensionReport from an enrolled agent, checked here
        (UNKNOWN_AGENT, BAD_AGENT_SIGNATURE, and the desk's evidence checks), then signed and shared."""
        signed = SignedSuspensionReport.decode(data)
        r = signed.body
        if not self.state().agent_enrolled(r.agent_id):
            raise FaultproofError(Reason.UNKNOWN_AGENT, "the reporting agent is not enrolled (or is revoked)")
        if not signed.verify():
            raise FaultproofError(Reason.BAD_AGENT_SIGNATURE)
        if r.since_ms > self.clock() + self.desk.max_skew_ms:
            raise FaultproofError(Reason.INVALID_PARAMETERS, "a suspension cannot start in the future")
        await self.report(r.device_id, r.frames, r.since_ms)
        return {"device_id": r.device_id.hex(), "status": "signed"}

    async def _read(self) -> None:
        async for msg in self.transport.subscribe(SUSPENSIONS_TOPIC):
            try:
                share = SuspensionShare.decode(msg.data)
                actions = self.desk.on_share(self.state(), share, self.clock())
            except (DecodeError, FaultproofError) as e:
                self.dropped[e.reason.value] = self.dropped.get(e.reason.value, 0) + 1
                continue
            await self._execute(actions)

    async def _execute(self, actions: list[SuspensionAction]) -> None:
        for a in actions:
            if isinstance(a, PublishShare):
                try:
                    await self.transport.publish(SUSPENSIONS_TOPIC, a.share.encode())
                except FaultproofError as e:  # gossip down: peers' shares still reach us when it heals
                    log.warning("could not gossip a suspension share: %s", e)
            elif isinstance(a, SubmitCertificate):
                try:
                    await self.submit(a.certificate)
                    self.submitted.append(a.certificate)
                    log.info("suspension of device %s submitted with %d signatures",
                             a.certificate.body.device_id.hex()[:16], len(a.certificate.signatures))
                except FaultproofError as e:
                    # Another oracle's certificate got there first: the device is suspended either way.
                    if e.reason is not Reason.INVALID_STATE_TRANSITION:
                        log.warning("the ledger refused a suspension certificate: %s", e)
                self.desk.done(a.certificate.body)
