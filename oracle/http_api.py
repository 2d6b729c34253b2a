"""The oracle's HTTP API (DESIGN §7), aiohttp. Only translation lives here: request bytes to
messages, the node's answers to JSON (or msgpack), `FaultproofError` to `{"error": {...}}`.

    POST /v1/claims                 SignedClaim (JSON, or canonical msgpack with
                                    Content-Type: application/msgpack) -> 202 {"claim_id","status",
                                    "vote"?, "reason"?}; 4xx {"error": {"code","message"}}
    POST /v1/equivocations          FrameEquivocation (JSON or msgpack) -> 202 {"device_id","status",...}
                                    (DESIGN §13/§14: oracle/device_slash_node.py)
    GET  /v1/claims/{claim_id}      status pending|approved|rejected|paid, votes, reasons, QC, receipt
    GET  /v1/claims?policy_id=&status=
    GET  /v1/status    /healthz    /metrics (Prometheus text)

Responses are JSON (bytes as lowercase hex) unless the request says `Accept: application/msgpack`.
This file must never decide anything about a claim and never let a traceback reach a client:
every failure is an error object with a reason code.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import msgpack
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from faultproof.errors import FaultproofError, Reason
from faultproof.httperrors import application
from faultproof.messages import FrameEquivocation, SignedClaim, SignedSuspensionReport
from faultproof.openapi import Route, RouteDoc, add_routes
from oracle.pipeline import decode_claim
from oracle.store import CLAIM_STATUSES

if TYPE_CHECKING:
    from oracle.node import OracleNode

log = logging.getLogger("faultproof.oracle.http")

JSON = "application/json"
MSGPACK = "application/msgpack"
NODE_KEY = web.AppKey("node", object)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _wants_msgpack(request: web.Request) -> bool:
    return MSGPACK in request.headers.get("Accept", "")


def respond(request: web.Request, obj: Any, status: int = 200) -> web.Response:
    if _wants_msgpack(request):
        return web.Response(body=msgpack.packb(obj, use_bin_type=True), status=status, content_type=MSGPACK)
    return web.Response(text=json.dumps(obj, separators=(",", ":")), status=status, content_type=JSON)


def error(request: web.Request, reason: Reason, message: str = "") -> web.Response:
    err = FaultproofError(reason, message)
    return respond(request, err.to_json(), status=reason.http_status)


def _node(request: web.Request) -> OracleNode:
    return request.app[NODE_KEY]  # type: ignore[return-value]


async def post_claim(request: web.Request) -> web.Response:
    node = _node(request)
    ctype = request.content_type or JSON
    if ctype not in (JSON, MSGPACK):
        raise FaultproofError(Reason.UNSUPPORTED_MEDIA_TYPE)
    body = await request.read()  # bounded by client_max_size
    signed = decode_claim(body, ctype)  # JSON through the one strict parser (faultproof.strictjson)
    accepted = await node.submit_claim(signed, "http")
    return respond(request, accepted.to_json(), status=202)


async def post_suspension(request: web.Request) -> web.Response:
    """hardware2 (DESIGN §15): an agent's signed evidence of forged frames, msgpack only."""
    node = _node(request)
    if (request.content_type or MSGPACK) != MSGPACK:
        raise FaultproofError(Reason.UNSUPPORTED_MEDIA_TYPE, "a suspension report is msgpack")
    gossip = node.suspensions
    if gossip is None:
        raise FaultproofError(Reason.UNAVAILABLE, "not synced with the ledger yet")
    body = await gossip.report_signed(await request.read())
    return respond(request, body, status=202)


async def post_equivocation(request: web.Request) -> web.Response:
    """DESIGN §13/§14: anyone's evidence of a double-signing device (FrameEquivocation, JSON or
    msgpack). EVM backend: checked on our replica, signed and gossiped (oracle/device_slash_node.py);
    SQLite backend: forwarded to the ledger, which slashes on it."""
    ctype = request.content_type or JSON
    if ctype not in (JSON, MSGPACK):
        raise FaultproofError(Reason.UNSUPPORTED_MEDIA_TYPE)
    body = await _node(request).slashes.report(await request.read(), ctype)  # bounded by client_max_size
    return respond(request, body, status=202)


def _hex_id(text: str, what: str) -> bytes:
    try:
        raw = bytes.fromhex(text)
    except ValueError:
        raise FaultproofError(Reason.BAD_REQUEST, f"{what} must be 64 lowercase hex characters") from None
    if len(raw) != 32 or text != text.lower():
        raise FaultproofError(Reason.BAD_REQUEST, f"{what} must be 64 lowercase hex characters")
    return raw


async def get_claim(request: web.Request) -> web.Response:
    cid = _hex_id(request.match_info["claim_id"], "claim_id")
    view = _node(request).claim_view(cid)
    if view is None:
        raise FaultproofError(Reason.NOT_FOUND, "no claim with this id here")
    return respond(request, view)


async def list_claims(request: web.Request) -> web.Response:
    q = request.query
    pid = _hex_id(q["policy_id"], "policy_id") if q.get("policy_id") else None
    status = q.get("status") or None
    if status is not None and status not in CLAIM_STATUSES:
        raise FaultproofError(Reason.BAD_REQUEST, f"status must be one of {', '.join(CLAIM_STATUSES)}")
    return respond(request, {"claims": _node(request).claims_list(pid, status)})


async def get_status(request: web.Request) -> web.Response:
    return respond(request, _node(request).status())


async def healthz(request: web.Request) -> web.Response:
    """Liveness: the process answers. Whether it can do its job is /readyz."""
    node = _node(request)
    return respond(request, {"ok": True, "synced": node.synced, "oracle_id": node.oracle_id.hex()})


async def readyz(request: web.Request) -> web.Response:
    """Readiness: 503 with the reasons while the node cannot verify, vote and post (ledger
    unreachable or refused, gossip down, not a member of the current oracle set)."""
    node = _node(request)
    problems = node.readiness_problems()
    body = {"ok": not problems, "problems": problems, "synced": node.synced, "oracle_id": node.oracle_id.hex()}
    return respond(request, body, status=503 if problems else 200)


async def metrics(request: web.Request) -> web.Response:
    node = _node(request)
    node.update_claim_gauges()
    resp = web.Response(body=generate_latest(node.metrics.registry))
    resp.headers["Content-Type"] = CONTENT_TYPE_LATEST
    return resp


# Every route, once: the router and the OpenAPI document (GET /v1/openapi.json) are both made from it.
ROUTES = (
    Route("POST", "/v1/claims", post_claim, RouteDoc(
        "Submit a signed claim; 202 once it passed every check.", request=SignedClaim, statuses=(202,))),
    # hardware2 (DESIGN §15): an agent's evidence of forged frames; the oracles gossip signatures.
    Route("POST", "/v1/suspensions", post_suspension, RouteDoc(
        "Report a device's forged frames (msgpack SignedSuspensionReport); 202 once checked and signed.",
        request=SignedSuspensionReport, statuses=(202,))),
    # DESIGN §13/§14: a double-signing device's two frames, from anyone.
    Route("POST", "/v1/equivocations", post_equivocation, RouteDoc(
        "Report a device that signed two frames for one (device, epoch, seq) (FrameEquivocation, JSON or "
        "msgpack); 202 once checked and signed (EVM backend) or slashed by the ledger (SQLite backend).",
        request=FrameEquivocation, statuses=(202,))),
    Route("GET", "/v1/claims", list_claims, RouteDoc("Claims this oracle knows.",
                                                     query={"policy_id": "hex", "status": "a status"})),
    Route("GET", "/v1/claims/{claim_id}", get_claim, RouteDoc("One claim: status, votes (k of n), QC, receipt.")),
    Route("GET", "/v1/status", get_status, RouteDoc("The node: membership, epoch, ledger height, gossip peers.")),
)


def make_app(node: OracleNode) -> web.Application:
    app = application(log, respond, max_body_bytes=node.config.max_body_bytes,
                      idle_timeout_s=node.config.idle_timeout_s)  # error shape, input hygiene
    app[NODE_KEY] = node
    add_routes(app, "faultproof oracle", ROUTES, healthz=healthz, readyz=readyz, metrics=metrics)
    return app
