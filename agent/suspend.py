"""The agent's suspension reports (DESIGN §15): the shell that gets a quarantined device's forged
frames to the oracles by itself.

The ingest engine writes a report into the store (`suspension_reports`) in the same transaction as
the batch that quarantined a device for bad signatures with enough distinct forged frames
(`agent.anomaly.ForgeryEvidence` decides). This loop reads the reports not yet taken, signs each as
a `SignedSuspensionReport` with the agent's key and POSTs it to its oracles in turn
(`POST /v1/suspensions`, through faultproof/oracle_client.py) until one takes it (202: checked,
signed and shared over gossip; the oracles collect k signatures and submit the certificate). A
device the oracles already see suspended (`device_suspended`) settles the report too. No answer, or
a refusal from every oracle (a replica behind, a node not synced yet), is retried with backoff
(faultproof/retry.py), logged once per outage. The report stays in the store until it is settled,
so a kill -9 at any moment re-sends it after the restart.

This file must never decide a quarantine or choose frames (the engine and the anomaly monitor do),
and never log a frame or a key.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from agent.store import Store, SuspensionReportRow, pending_suspension_reports
from faultproof.identity import Identity
from faultproof.messages import SignedFrame, SuspensionReport
from faultproof.oracle_client import AsyncOracleClient, OracleUnreachable
from faultproof.retry import Reachability

log = logging.getLogger("faultproof.agent.suspend")

SETTLED = ("device_suspended",)  # an oracle's refusal that means the work is done


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


class SuspensionReporter:
    def __init__(self, identity: Identity, engine: Any, store_path: Path, oracle_urls: Sequence[str], *,
                 poll_s: float = 1.0, timeout_s: float = 10.0, max_backoff_s: float = 60.0,
                 clock: Callable[[], int] = _now_ms) -> None:
        self.identity = identity
        self.engine = engine  # agent.ingest.IngestEngine: the store's one writer
        self.store_path = store_path
        self.oracle_urls = [u.rstrip("/") for u in oracle_urls]
        self.poll_s = poll_s
        self.timeout_s = timeout_s
        self.clock = clock
        self.reach = Reachability("the oracles (suspension reports)", log, initial_s=0.5, max_s=max_backoff_s)
        self.sent = 0
        self.failed_attempts = 0

    def status(self) -> dict[str, int]:
        return {"sent": self.sent, "failed_attempts": self.failed_attempts}

    async def run(self) -> None:
        client = AsyncOracleClient(timeout=self.timeout_s)
        try:
            while True:
                pending = await asyncio.to_thread(pending_suspension_reports, self.store_path)
                delay = self.poll_s
                for row in pending:
                    if not await self.send(client, row):
                        delay = max(delay, self.reach.failed("no oracle took the report"))
                        break
                    self.reach.succeeded()
                await asyncio.sleep(delay)
        finally:
            await client.aclose()

    async def send(self, client: AsyncOracleClient, row: SuspensionReportRow) -> bool:
        """One attempt at every oracle in turn; True once one took it (or it is settled)."""
        report = SuspensionReport(agent_id=self.identity.public_key, device_id=row.device_id, since_ms=row.since_ms,
                                  frames=tuple(SignedFrame.decode(f) for f in row.frames))
        data = report.sign(self.identity).encode()
        answers = []
        for url in self.oracle_urls:
            try:
                answer = await client.report_suspension(url, data)
            except OracleUnreachable as e:
                answers.append(str(e))
                continue
            err = answer.body.get("error") if isinstance(answer.body, dict) else None
            code = err.get("code") if isinstance(err, dict) else None
            if answer.ok or code in SETTLED:
                text = f"{url}: {answer.status}" + (f" {code}" if code else "")
                await self._record(row, sent_ms=self.clock(), answer=text)
                self.sent += 1
                log.warning("device %s: suspension report taken by %s (%d forged frames)",
                            row.device_id.hex()[:12], text, len(row.frames))
                return True
            answers.append(f"{url}: {answer.error_text()}")
        self.failed_attempts += 1
        await self._record(row, sent_ms=None, answer="; ".join(answers)[:500])
        return False

    async def _record(self, row: SuspensionReportRow, *, sent_ms: int | None, answer: str) -> None:
        def op(store: Store) -> None:  # runs inside the engine's batch transaction
            store.suspension_report_attempt(row.device_id, row.since_ms, sent_ms=sent_ms, answer=answer)

        await self.engine.run_op_async(op)
