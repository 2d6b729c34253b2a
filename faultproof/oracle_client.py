"""The one HTTP client of an oracle node's API (httpx), for the agent and the command line.

An oracle serves `POST /v1/claims` (a SignedClaim, msgpack), `POST /v1/suspensions` (an agent's
SignedSuspensionReport, msgpack), `GET /v1/claims/{id}` (what it knows
about a claim) and `GET /v1/status`. `OracleClient` (blocking, for commands) and
`AsyncOracleClient` (for the agent's event loop) ask the same requests and read the answers the
same way: every answer is an `OracleAnswer` (url, HTTP status, the JSON body or None), whatever the
status, so the caller decides what a 404 or a 4xx refusal means. A node that cannot be reached
raises `OracleUnreachable` naming the URL. No retries here (the caller owns its retry policy) and
nothing is logged: a claim is public, but the caller knows what is worth saying.

`request` is the same for one blocking request to any of the services (the command line asking an
agent or a ledger, the devnet launcher): one HTTP client library and one way to read an answer.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import httpx

MSGPACK = "application/msgpack"


class OracleUnreachable(Exception):
    """No answer from the node (refused, reset, timed out)."""

    def __init__(self, url: str, cause: BaseException) -> None:
        super().__init__(f"cannot reach {url}: {cause or type(cause).__name__}")
        self.url = url


@dataclass(frozen=True)
class OracleAnswer:
    url: str
    status: int
    body: Any  # the parsed JSON answer; None when it was empty or not JSON
    raw: bytes = field(default=b"", repr=False)  # the answer's bytes as they came

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    def error_text(self) -> str:
        """One line for a refusal: `409 DUPLICATE_CLAIM: ...` from the API's `{"error": {...}}`."""
        err = self.body.get("error") if isinstance(self.body, dict) else None
        if isinstance(err, dict) and "code" in err:
            return f"{self.status} {err['code']}: {err.get('message', '')}"
        return f"HTTP {self.status} from {self.url}"


def _claim_path(claim_id: bytes | str) -> str:
    return "/v1/claims/" + (claim_id.hex() if isinstance(claim_id, bytes) else claim_id.lower())


def _answer(url: str, r: httpx.Response) -> OracleAnswer:
    try:
        body = json.loads(r.content) if r.content else None
    except ValueError:
        body = None
    return OracleAnswer(url, r.status_code, body, r.content)


def request(method: str, url: str, data: bytes | None = None, *, content_type: str = "application/json",
            accept: str = "application/json", timeout: float = 30.0) -> OracleAnswer:
    """One blocking request to any faultproof service; the answer whatever its status, or
    OracleUnreachable."""
    headers = {"Accept": accept, **({"Content-Type": content_type} if data is not None else {})}
    try:
        r = httpx.request(method, url, content=data, headers=headers, timeout=timeout)
    except httpx.TransportError as e:
        raise OracleUnreachable(url, e) from None
    return _answer(url, r)


_HEADERS = {"Accept": "application/json"}


class OracleClient:
    """Blocking client of one oracle node."""

    def __init__(self, url: str, *, timeout: float = 10.0) -> None:
        self.url = url.rstrip("/")
        self._http = httpx.Client(base_url=self.url, timeout=timeout, headers=_HEADERS)

    def __enter__(self) -> OracleClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def _send(self, method: str, path: str, data: bytes | None = None) -> OracleAnswer:
        try:
            r = self._http.request(method, path, content=data, headers={"Content-Type": MSGPACK} if data else None)
        except httpx.TransportError as e:
            raise OracleUnreachable(self.url + path, e) from None
        return _answer(self.url + path, r)

    def submit(self, claim: bytes) -> OracleAnswer:
        """POST an encoded SignedClaim."""
        return self._send("POST", "/v1/claims", claim)

    def claim(self, claim_id: bytes | str) -> OracleAnswer:
        return self._send("GET", _claim_path(claim_id))

    def status(self) -> OracleAnswer:
        return self._send("GET", "/v1/status")


class AsyncOracleClient:
    """The same requests from an event loop; one connection pool for any number of nodes (the
    agent asks several in turn), so every method takes the node's URL."""

    def __init__(self, *, timeout: float = 5.0) -> None:
        self._http = httpx.AsyncClient(timeout=timeout, headers=_HEADERS)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _send(self, method: str, url: str, data: bytes | None = None) -> OracleAnswer:
        try:
            r = await self._http.request(method, url, content=data,
                                         headers={"Content-Type": MSGPACK} if data else None)
        except httpx.TransportError as e:
            raise OracleUnreachable(url, e) from None
        return _answer(url, r)

    async def submit(self, oracle_url: str, claim: bytes) -> OracleAnswer:
        return await self._send("POST", oracle_url.rstrip("/") + "/v1/claims", claim)

    async def report_suspension(self, oracle_url: str, report: bytes) -> OracleAnswer:
        """POST an encoded SignedSuspensionReport (DESIGN §15)."""
        return await self._send("POST", oracle_url.rstrip("/") + "/v1/suspensions", report)

    async def claim(self, oracle_url: str, claim_id: bytes | str) -> OracleAnswer:
        return await self._send("GET", oracle_url.rstrip("/") + _claim_path(claim_id))

    async def status(self, oracle_url: str) -> OracleAnswer:
        return await self._send("GET", oracle_url.rstrip("/") + "/v1/status")
