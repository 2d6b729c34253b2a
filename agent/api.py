"""The agent's HTTP API (DESIGN §7), aiohttp:

    POST /v1/frames       one DeviceReading (or UnsignedReading, DESIGN §16) or a ReadingBatch, JSON or msgpack
                          (Content-Type: application/msgpack). Answered after the frames are
                          committed: 200 {"accepted": k, "rejected": [{"index", "device_id", "seq",
                          "code", "message"}]}; a single reading that is refused gets its reason's
                          4xx {"error": {...}}; undecodable input 400; a full ingest queue 503.
    GET  /v1/status       agent id, ledger view, devices, frame counters, claims by status, MQTT,
                          gossip, prover.
    GET  /v1/claims       claims (?status=, ?device_id=), newest first; GET /v1/claims/{claim_id}
    GET  /v1/claims/{claim_id}/signed   the SignedClaim as sent to the oracles (msgpack; JSON with
                          Accept: application/json); 404 until it is proved
    POST /v1/devices/{device_id}/anchor   anchor the device's latest linked head now (before a
                          decommission, DESIGN §15 H11): 200 the head; 404 no linked frame held
    GET  /healthz         200 when ingest, the ledger replica and the claim loops run; else 503
    GET  /metrics         Prometheus text

Only translation lives here; the decisions are in agent.frames / agent.ingest / agent.claims. This
file must never let a traceback reach a client: every failure is an error object with a reason.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from agent.frames import SensorSpec, Undecodable, parse_json, parse_wire, resolve_values
from agent.provision import load_sensor
from faultproof import strictjson
from faultproof.errors import DecodeError, FaultproofError, Reason
from faultproof.httperrors import IDLE_TIMEOUT_S, application
from faultproof.messages import DeviceReading, ReadingBatch, SignedClaim, UnsignedReading
from faultproof.openapi import Route, RouteDoc, add_routes

if TYPE_CHECKING:
    from agent.claims import ClaimRecord
    from agent.daemon import Agent

log = logging.getLogger("faultproof.agent.api")

AGENT_KEY: web.AppKey[Agent] = web.AppKey("agent")
JSON = "application/json"
MSGPACK = "application/msgpack"
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]




def agent_sensor(agent: Agent) -> Callable[[str], SensorSpec | None]:
    """Looks up a device's declared unit and scale: `<device_id_hex>.sensor.json` beside its
    `.blind` in the agent's blinding_keys_dir (written by `faultproof device provision --unit
    --scale`). Read only for readings sent as decimal `value`s."""
    def lookup(device_hex: str) -> SensorSpec | None:
        return load_sensor(agent.config.blinding_keys_dir, device_hex)
    return lookup


async def post_frames(request: web.Request) -> web.Response:
    agent = request.app[AGENT_KEY]
    ctype = request.content_type or JSON
    body = await request.read()
    if ctype == MSGPACK:
        frames = parse_wire(body)
    elif ctype == JSON:
        try:
            obj = strictjson.loads(body)
        except DecodeError as e:
            frames = Undecodable(e.reason, e.message)
        else:
            try:
                obj = resolve_values(obj, agent_sensor(agent))
            except DecodeError as e:
                frames = Undecodable(e.reason, e.message)
            else:
                frames = parse_json(obj)
    else:
        raise FaultproofError(Reason.UNSUPPORTED_MEDIA_TYPE)
    result = await agent.engine.submit_async(frames, transport="http")
    if result.error is not None:
        raise FaultproofError(Reason.UNAVAILABLE, result.error)
    if result.undecodable is not None:
        raise FaultproofError(result.undecodable.reason, result.undecodable.message)
    assert isinstance(frames, list)
    rejected = []
    for i, (f, v) in enumerate(zip(frames, result.verdicts, strict=True)):
        if v.reason is not None:
            rejected.append({"index": i, "device_id": f.device_id.hex(), "seq": f.seq, "code": v.reason.value,
                             "message": v.message})
    if len(frames) == 1 and rejected:
        v = result.verdicts[0]
        assert v.reason is not None
        raise FaultproofError(v.reason, v.message)
    return web.json_response({"accepted": result.accepted, "rejected": rejected})


async def get_status(request: web.Request) -> web.Response:
    return web.json_response(request.app[AGENT_KEY].status())


async def list_claims(request: web.Request) -> web.Response:
    agent = request.app[AGENT_KEY]
    status = request.query.get("status")
    device = request.query.get("device_id")
    out = [r.to_json() for r in agent.manager.records.values()
           if (status is None or r.status.value == status) and (device is None or r.window.device_id.hex() == device)]
    out.sort(key=lambda c: c["detected_ms"], reverse=True)
    return web.json_response({"claims": out})


def _claim_record(request: web.Request) -> ClaimRecord:
    agent = request.app[AGENT_KEY]
    try:
        cid = bytes.fromhex(request.match_info["claim_id"])
    except ValueError:
        raise FaultproofError(Reason.BAD_REQUEST, "claim_id must be hex") from None
    rec = agent.manager.records.get(cid) if agent.manager is not None else None
    if rec is None:
        raise FaultproofError(Reason.NOT_FOUND, "no claim with this id here")
    return rec


async def get_claim(request: web.Request) -> web.Response:
    return web.json_response(_claim_record(request).to_json())


async def get_signed_claim(request: web.Request) -> web.Response:
    """The signed claim's bytes, for a policyholder's files or `faultproof claim submit`."""
    rec = _claim_record(request)
    if rec.signed is None:
        raise FaultproofError(Reason.NOT_FOUND, f"claim {rec.claim_id.hex()} is not proved yet ({rec.status.value})")
    if JSON in request.headers.get("Accept", ""):
        return web.json_response(SignedClaim.decode(rec.signed).to_json())
    return web.Response(body=rec.signed, content_type=MSGPACK)


async def anchor_device(request: web.Request) -> web.Response:
    """DESIGN §15 H11: anchor the device's latest chain-linked head now (before a decommission);
    answers that head, or 404 when this agent holds no linked frame of it."""
    agent = request.app[AGENT_KEY]
    try:
        did = bytes.fromhex(request.match_info["device_id"])
    except ValueError:
        did = b""
    if len(did) != 32:
        raise FaultproofError(Reason.BAD_REQUEST, "device_id must be 64 hex characters")
    if agent.anchorer is None:
        raise FaultproofError(Reason.UNAVAILABLE, "the agent has not started yet")
    head = await agent.anchorer.anchor_device(did)
    if head is None:
        raise FaultproofError(Reason.NOT_FOUND, "this agent holds no chain-linked frame of the device")
    return web.json_response({"device_id": did.hex(), "epoch": head.epoch, "seq": head.seq, "ts_ms": head.ts_ms,
                              "chain": head.chain.hex()})


async def healthz(request: web.Request) -> web.Response:
    """Liveness: the process answers (and says what it would say at /readyz, without failing)."""
    return web.json_response({"ok": True, "problems": request.app[AGENT_KEY].problems()})


async def readyz(request: web.Request) -> web.Response:
    """Readiness: 503 with the reasons while the agent cannot take frames or deliver claims."""
    agent = request.app[AGENT_KEY]
    problems = agent.problems() + agent.delivery_problems()
    return web.json_response({"ok": not problems, "problems": problems}, status=503 if problems else 200)


async def metrics(request: web.Request) -> web.Response:
    agent = request.app[AGENT_KEY]
    return web.Response(body=generate_latest(agent.metrics.registry),
                        headers={"Content-Type": CONTENT_TYPE_LATEST})


# Every route, once: the router and the OpenAPI document (GET /v1/openapi.json) are both made from it.
ROUTES = (
    Route("POST", "/v1/frames", post_frames, RouteDoc(
        "Device frames with their readings (signed, or unsigned between a device's signed frames, DESIGN §16); "
        "accepted after a durable commit.",
        request=(DeviceReading, UnsignedReading, ReadingBatch), request_tagged=False)),
    Route("GET", "/v1/status", get_status, RouteDoc("The agent: devices, ingest, proving, claims.")),
    Route("GET", "/v1/claims", list_claims, RouteDoc("Claims this agent made, newest first.",
                                                     query={"status": "a status", "device_id": "hex"})),
    Route("GET", "/v1/claims/{claim_id}", get_claim, RouteDoc("One claim: window, status, amount paid.")),
    Route("GET", "/v1/claims/{claim_id}/signed", get_signed_claim, RouteDoc(
        "The signed claim (proof included) as sent to the oracles; msgpack, or JSON with "
        "Accept: application/json. 404 until it is proved.", response=SignedClaim, statuses=(200, 404))),
    Route("POST", "/v1/devices/{device_id}/anchor", anchor_device, RouteDoc(
        "Anchor the device's latest chain-linked head on the ledger now (before a decommission).",
        statuses=(200, 404))),
)


def make_app(agent: Agent, max_body_bytes: int, idle_timeout_s: float = IDLE_TIMEOUT_S) -> web.Application:
    app = application(log, max_body_bytes=max_body_bytes, idle_timeout_s=idle_timeout_s)  # error shape and input hygiene (faultproof.httperrors)
    app[AGENT_KEY] = agent
    add_routes(app, "faultproof agent", ROUTES, healthz=healthz, readyz=readyz, metrics=metrics)
    return app
