"""Device slashing in the running oracle: carries out what oracle/device_slash.py decides (DESIGN
§13, §14 S1–S3).

`POST /v1/equivocations` takes a `FrameEquivocation` from anyone (canonical msgpack, or JSON like
the other POSTs) and hands it to `report`:
- on the EVM backend (`node.chain` set) the desk checks it on our replica with the ledger's S1–S3
  rule (4xx naming the reason, nothing signed, if it does not hold), signs the EIP-712
  `DeviceSlash` with our chain key and gossips the share with the evidence on its own topic
  (members only); peers check the evidence themselves before adding theirs. With k verified
  shares each member takes its posting turn (the node's `chain_turn_due`, keyed by the body's
  `slash_key`, `chain_post_delay_s` apart) and the one whose turn it is sends
  `reportFrameEquivocation` (`EvmSettlement.report_device_slash`, a worker thread); the body names
  the reporter the k members signed (the first report of those frames each accepted: the desk
  refuses a later one naming another reporter, `evidence_duplicate`). It ends when the mirror shows the device slashed (`slashes_seen`, any
  sender's transaction) or the contract answers `evidence_duplicate`.
- on the SQLite backend the ledger takes the evidence itself (`POST /v1/tx`, S1–S3 there): the
  oracle forwards it and answers with the ledger's verdict, so one endpoint works on both.

Our shares are re-gossiped every `regossip_s` until the device is slashed (gossip promises no
delivery). This file must never hold a protocol rule (the desk and ledger/state.py do), never sign
what the desk did not decide to sign, and reads time only from the node's clock.
"""

from __future__ import annotations

import asyncio
import logging
from functools import partial
from typing import Any

from faultproof.errors import DecodeError, FaultproofError, Reason
from faultproof.messages import DeviceSlashShare, FrameEquivocation
from ledger.state import TxKind
from oracle.device_slash import (
    DeviceSlashDesk,
    PublishShare,
    Ready,
    SlashAction,
    slash_body,
    slash_key,
)

log = logging.getLogger("faultproof.oracle.device_slash")

DEVICE_SLASHES_TOPIC = "faultproof/device-slashes/1"
JSON = "application/json"
MSGPACK = "application/msgpack"


def decode_evidence(data: bytes, content_type: str) -> FrameEquivocation:
    """Bytes from HTTP -> FrameEquivocation. Raises DecodeError (size, schema) only."""
    return FrameEquivocation.from_http(data, content_type)


class DeviceSlashService:
    def __init__(self, node: Any) -> None:
        # The OracleNode (duck-typed: this module must not import oracle.node, which imports it).
        self.node = node
        self.desk: DeviceSlashDesk | None = None
        self.dropped: dict[str, int] = {}  # reason -> shares dropped, for tests and operators
        self.sent: list[Any] = []  # SlashResult of every transaction we sent
        self._due: asyncio.Queue[bytes] = asyncio.Queue()

    def status(self) -> dict[str, Any] | None:
        """For GET /v1/status (None on the SQLite backend, where the ledger slashes): each
        certificate this oracle is building (device, reporter, verified shares, whether ours is
        among them), the transactions it sent, and peers' shares dropped by reason."""
        if self.desk is None:
            return None
        return {"open": [{"slash_id": key.hex(), "device_id": c.body.device_id.hex(), "reporter": c.body.reporter.hex(),
                          "shares": len(c.sigs), "signed": c.own is not None} for key, c in self.desk.cases.items()],
                "sent": len(self.sent), "dropped": dict(self.dropped)}

    def open(self) -> None:
        """Once synced, on the EVM backend: the desk, signing with our chain key in this pool's domain."""
        node = self.node
        pool = node.chain.opened if node.chain is not None else None
        if pool is None:
            return
        key, chain_id, contract = node.chain_key, pool.chain_id, pool.address
        self.desk = DeviceSlashDesk(node.oracle_id, lambda body: key.sign_device_slash(body, chain_id, contract),
                                    node.chain.binding, chain_id, contract)

    # ------------------------------------------------------------------ evidence from anyone

    async def report(self, data: bytes, content_type: str) -> dict[str, Any]:
        """`POST /v1/equivocations` (see the module docstring). Raises FaultproofError."""
        ev = decode_evidence(data, content_type)
        node = self.node
        if not node.synced:
            raise FaultproofError(Reason.UNAVAILABLE, "the oracle is not synced with the ledger yet")
        device = ev.first.frame.device_id.hex()
        if node.chain is None:
            # The SQLite ledger checks S1-S3 and slashes on the evidence itself: forward it.
            result = await node.follower.client.submit(ev)
            await node.follower.refresh()
            return {"device_id": device, "status": "slashed", "height": result.height,
                    "ledger": "the ledger slashed the device on this evidence (POST /v1/tx)"}
        if self.desk is None:
            raise FaultproofError(Reason.UNAVAILABLE, "not connected to the pool contract yet")
        desk = self.desk
        # Refused only on a view refreshed after it arrived, as a claim (a device enrolled, or the
        # econ rules switched on, a moment ago): the desk signs nothing when it refuses.
        actions = await node.content_checked(lambda e, state: desk.report(state, e, node.clock()), ev, False)
        await self._execute(actions)
        body = slash_body(node.view.state.oracle_set.epoch, ev)
        case = self.desk.cases.get(slash_key(body))
        return {"device_id": device, "status": "signed", "slash_id": slash_key(body).hex(),
                "oracle_set_epoch": body.oracle_set_epoch, "shares": len(case.sigs) if case else 0}

    # ------------------------------------------------------------------ gossip and posting

    async def run(self) -> None:
        """Read peers' shares, send in our turn, re-gossip ours (idle on the SQLite backend)."""
        if self.desk is None:
            return
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self._read(), name="device-slash-shares")
            tg.create_task(self._poster(), name="device-slash-poster")
            tg.create_task(self._regossip(), name="device-slash-regossip")

    def slashes_seen(self, effects: list[Any]) -> None:
        """New ledger (mirror) entries: a device slashed by anyone ends its cases and turns."""
        if self.desk is None or not any(e.kind is TxKind.SLASH for e in effects):
            return
        for key in self.desk.prune(self.node.view.state.econ.slashed_devices):
            self.node.chain_forget(key)

    async def _read(self) -> None:
        node = self.node
        async for msg in node.transport.subscribe(DEVICE_SLASHES_TOPIC):
            try:
                share = DeviceSlashShare.decode(msg.data)
                if share.oracle_id == node.oracle_id:
                    continue
                assert self.desk is not None
                actions = self.desk.on_share(node.view.state, share, node.clock())
            except (DecodeError, FaultproofError) as e:
                self.dropped[e.reason.value] = self.dropped.get(e.reason.value, 0) + 1
                continue
            await self._execute(actions)

    async def _execute(self, actions: list[SlashAction]) -> None:
        for a in actions:
            if isinstance(a, PublishShare):
                await self._publish(a.share)
            elif isinstance(a, Ready):
                self._due.put_nowait(a.key)

    async def _publish(self, share: DeviceSlashShare) -> None:
        try:
            await self.node.transport.publish(DEVICE_SLASHES_TOPIC, share.encode())
        except FaultproofError as e:  # gossip down: the re-gossip loop repeats it
            log.debug("could not gossip a device-slash share: %s", e)

    async def _regossip(self) -> None:
        while True:
            await asyncio.sleep(self.node.config.tuning.regossip_s)
            assert self.desk is not None
            # bounded per round: 16 every regossip_s (2 s) stays under the topic's 10 a second per origin
            for share in self.desk.own_shares()[:16]:
                await self._publish(share)

    async def _poster(self) -> None:
        node, desk = self.node, self.desk
        assert desk is not None
        while True:
            key = await self._due.get()
            case = desk.cases.get(key)
            if case is None:
                continue  # slashed (by anyone) since
            epoch = case.body.oracle_set_epoch
            if not node.chain_turn_due(key, epoch, partial(self._due.put_nowait, key)):
                continue
            cert = desk.certificate(key, node.chain_oracle_set(epoch).threshold)
            if cert is None:
                continue
            device = cert.body.device_id.hex()[:16]
            try:
                result = await node.chain.report_device_slash(cert.body, cert.signatures)
            except FaultproofError as e:
                if e.reason is Reason.UNAVAILABLE:
                    await asyncio.sleep(node.config.tuning.regossip_s)
                    self._due.put_nowait(key)
                    continue
                if e.reason is Reason.EVIDENCE_DUPLICATE:
                    log.info("device %s already slashed on chain", device)
                else:
                    log.warning("the pool refused the slash of device %s: %s", device, e)
                desk.cases.pop(key, None)
                node.chain_forget(key)
                continue
            self.sent.append(result)
            log.info("device %s slashed on chain: our transaction, %d signatures, gas %d", device,
                     len(cert.signatures), result.gas_used)
            await node.follower.refresh()  # see the Slashed event now: it ends the case everywhere

