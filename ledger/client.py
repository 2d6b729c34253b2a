"""Async client of the ledger's HTTP API, for oracles, agents, the admin CLI and tests.

    async with LedgerClient("http://127.0.0.1:8700") as ledger:
        result = await ledger.submit(qc)          # SubmitResult (entry, height, paid, existing)
        height, entries = await ledger.entries(after=41, wait=10)
        async for signed in ledger.follow(after=-1): ...

A 4xx/5xx answer raises FaultproofError with the server's reason code and message; a transport
failure (refused, reset, timeout) raises FaultproofError(UNAVAILABLE). Transactions travel as
msgpack, entries come back as msgpack and are strictly decoded. This module must never apply a
ledger rule itself.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import msgpack

from faultproof.errors import DecodeError, FaultproofError, Reason
from faultproof.messages import (
    Genesis,
    Message,
    QuorumCertificate,
    Receipt,
    SignedEntry,
    SignedHead,
)

MSGPACK = "application/msgpack"


@dataclass(frozen=True)
class SubmitResult:
    entry: SignedEntry
    existing: bool  # True: a payout for this claim was already made; this is its entry
    kind: str
    policy_id: bytes | None
    claim_id: bytes | None

    @property
    def height(self) -> int:
        return self.entry.entry.height

    @property
    def paid(self) -> int:
        return self.entry.entry.paid

    @property
    def entry_hash(self) -> bytes:
        return self.entry.entry.entry_hash


class LedgerClient:
    def __init__(self, base_url: str, *, timeout: float = 30.0, session: aiohttp.ClientSession | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self._session = session
        self._own_session = session is None

    async def __aenter__(self) -> LedgerClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def replay_state(self, genesis_entry: SignedEntry) -> Any:
        """The SQLite ledger's entries replay from its own genesis (ledger.state)."""
        from ledger.state import LedgerState

        return LedgerState.from_genesis_entry(genesis_entry)

    async def close(self) -> None:
        if self._session is not None and self._own_session:
            await self._session.close()
        self._session = None

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None))
            self._own_session = True
        return self._session

    async def _request(self, method: str, path: str, *, params: dict[str, Any] | None = None,
                       data: bytes | None = None, accept: str = "application/json",
                       timeout: float | None = None) -> tuple[bytes, str]:
        headers = {"Accept": accept}
        if data is not None:
            headers["Content-Type"] = MSGPACK
        try:
            async with asyncio.timeout(timeout or self.timeout):
                async with self._http().request(method, self.base_url + path, params=params, data=data,
                                                headers=headers) as resp:
                    body = await resp.read()
                    if resp.status >= 400:
                        raise _server_error(resp.status, body)
                    return body, resp.content_type
        except FaultproofError:
            raise
        except (aiohttp.ClientError, OSError, TimeoutError) as e:
            raise FaultproofError(Reason.UNAVAILABLE, f"ledger at {self.base_url} unreachable ({_why(e)}); is it "
                                  "running, and is the ledger URL right?") from None

    async def _json(self, path: str, params: dict[str, Any] | None = None) -> Any:
        body, _ = await self._request("GET", path, params=params)
        return json.loads(body)

    # -- transactions ---------------------------------------------------------------------------

    async def submit(self, tx: Message) -> SubmitResult:
        """POST a SignedAdminTx, QuorumCertificate or ExpirePolicy; the durable entry comes back."""
        body, _ = await self._request("POST", "/v1/tx", data=tx.encode())
        obj = json.loads(body)
        return SubmitResult(entry=SignedEntry.from_json(obj["entry"]), existing=bool(obj["existing"]),
                            kind=obj["kind"], policy_id=_opt_hex(obj.get("policy_id")),
                            claim_id=_opt_hex(obj.get("claim_id")))

    async def post_qc(self, qc: QuorumCertificate) -> SubmitResult:
        """Pay a certified claim (ledger.settlement.Settlement); idempotent by claim_id."""
        return await self.submit(qc)

    # -- entries --------------------------------------------------------------------------------

    async def entries(self, after: int = -1, wait: float = 0.0, limit: int | None = None) -> tuple[int, list[SignedEntry]]:
        """(committed height, signed entries with height > after), long-polling up to `wait` s."""
        params: dict[str, Any] = {"after": after}
        if wait:
            params["wait"] = wait
        if limit is not None:
            params["limit"] = limit
        body, _ = await self._request("GET", "/v1/entries", params=params, accept=MSGPACK,
                                      timeout=self.timeout + wait)
        try:
            height, raws = msgpack.unpackb(body, raw=False)
            return int(height), [SignedEntry.decode(r) for r in raws]
        except (ValueError, TypeError, msgpack.exceptions.UnpackException) as e:
            raise DecodeError(Reason.MALFORMED, f"bad entries page: {e}") from None

    async def follow(self, after: int = -1, wait: float = 10.0) -> AsyncIterator[SignedEntry]:
        """Every entry after `after`, forever (long polls; retries while the ledger is down)."""
        while True:
            try:
                _, page = await self.entries(after, wait)
            except FaultproofError as e:
                if e.reason is not Reason.UNAVAILABLE:
                    raise
                await asyncio.sleep(1.0)
                continue
            for signed in page:
                after = signed.entry.height
                yield signed

    # -- lookups --------------------------------------------------------------------------------

    async def state(self) -> dict[str, Any]:
        return dict(await self._json("/v1/state"))

    async def signed_head(self) -> SignedHead:
        """The ledger's signed head (from GET /v1/state)."""
        try:
            return SignedHead.from_json((await self.state())["signed_head"])
        except (KeyError, TypeError) as e:
            raise FaultproofError(Reason.MALFORMED, f"no signed head in the ledger's state: {e!r}") from None

    async def status(self) -> dict[str, Any]:
        return dict(await self._json("/v1/status"))

    async def genesis(self) -> Genesis:
        body, _ = await self._request("GET", "/v1/genesis", accept=MSGPACK)
        return Genesis.decode(body)

    async def oracles(self) -> dict[str, Any]:
        return dict(await self._json("/v1/oracles"))

    async def policy(self, policy_id: bytes) -> dict[str, Any]:
        return dict(await self._json(f"/v1/policies/{policy_id.hex()}"))

    async def policies(self, device_id: bytes | None = None) -> list[dict[str, Any]]:
        params = {"device_id": device_id.hex()} if device_id is not None else None
        return list((await self._json("/v1/policies", params))["policies"])

    async def circuit(self, circuit_id: bytes) -> dict[str, Any]:
        return dict(await self._json(f"/v1/circuits/{circuit_id.hex()}"))

    async def device(self, device_id: bytes) -> dict[str, Any]:
        return dict(await self._json(f"/v1/devices/{device_id.hex()}"))

    async def device_history(self, device_id: bytes) -> dict[str, Any]:
        """DESIGN §15: every ledger entry about the device, with its entry hash."""
        return dict(await self._json(f"/v1/devices/{device_id.hex()}/history"))

    async def agent(self, agent_id: bytes) -> dict[str, Any]:
        return dict(await self._json(f"/v1/agents/{agent_id.hex()}"))

    async def receipt(self, claim_id: bytes) -> Receipt:
        body, _ = await self._request("GET", f"/v1/receipts/{claim_id.hex()}", accept=MSGPACK)
        return Receipt.decode(body)


def _opt_hex(value: Any) -> bytes | None:
    return bytes.fromhex(value) if isinstance(value, str) else None


def _why(e: BaseException) -> str:
    """A transport failure in a few words (the exception's repr is a screenful)."""
    if isinstance(e, aiohttp.ClientConnectorError):
        return e.os_error.strerror or type(e.os_error).__name__
    if isinstance(e, TimeoutError):
        return "no answer in time"
    return (str(e) or type(e).__name__)[:200]


def _server_error(status: int, body: bytes) -> FaultproofError:
    try:
        err = json.loads(body)["error"]
        return FaultproofError(Reason(err["code"]), str(err.get("message", "")))
    except (ValueError, KeyError, TypeError):
        return FaultproofError(Reason.UNAVAILABLE if status >= 500 else Reason.BAD_REQUEST,
                               f"HTTP {status} without an error body")
