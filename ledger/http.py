"""The ledger's HTTP API (DESIGN §7): aiohttp routes over a `LedgerService`.

    POST /v1/tx                      msgpack (Content-Type: application/msgpack) or JSON with "type"
    POST /v1/tx/batch                a QcBatch (msgpack, or JSON {"qcs": [...]}): up to 64 QCs, each
                                     applied and answered alone (DESIGN §16)
    GET  /v1/entries?after=N&wait=S&limit=L    long poll; JSON, or msgpack with Accept
    GET  /v1/state  /v1/status  /v1/genesis  /v1/oracles
    GET  /v1/policies?device_id=&limit=  /v1/policies/{id}  /v1/devices/{id}  /v1/circuits/{id}
    GET  /v1/agents/{id}  /v1/receipts/{claim_id}  /healthz  /metrics

Every refusal is a 4xx `{"error": {"code", "message"}}` from a FaultproofError (reason.http_status);
nothing else escapes, not even a traceback on an internal error. Bodies are size-limited before
they are read, JSON is strict (no duplicate keys, no NaN), unknown fields and query parameters are
refused.

This module must never apply a rule: it decodes, hands transactions to the service and formats.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import msgpack
from aiohttp import web
from prometheus_client import generate_latest

from faultproof import strictjson
from faultproof.errors import FaultproofError, Reason
from faultproof.httperrors import IDLE_TIMEOUT_S, application
from faultproof.messages import LEDGER_TX_TYPES, Message, QcBatch, SignedEntry, decode_any
from faultproof.openapi import Route, RouteDoc, add_routes
from ledger.service import Accepted, LedgerService
from ledger.state import LedgerState, attestation_results, device_history, gateway_results
from ledger.views import (
    agent_json,
    circuit_json,
    device_json,
    device_key_json,
    history_detail,
    oracles_json,
    policy_json,
)

log = logging.getLogger("faultproof.ledger.http")

MSGPACK = "application/msgpack"
JSON = "application/json"
_TX_BY_NAME: dict[str, type[Message]] = {t.NAME: t for t in LEDGER_TX_TYPES}

SERVICE: web.AppKey[LedgerService] = web.AppKey("service", LedgerService)
LIMITS: web.AppKey[dict[str, Any]] = web.AppKey("limits", dict)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


# --------------------------------------------------------------------------- input helpers


def _hex_id(request: web.Request, name: str) -> bytes:
    value = request.match_info[name]
    if len(value) != 64 or value != value.lower():
        raise FaultproofError(Reason.BAD_REQUEST, f"{name} must be 64 lowercase hex characters")
    try:
        return bytes.fromhex(value)
    except ValueError:
        raise FaultproofError(Reason.BAD_REQUEST, f"{name} is not hex") from None


def _query(request: web.Request, allowed: set[str]) -> dict[str, str]:
    unknown = set(request.query) - allowed
    if unknown:
        raise FaultproofError(Reason.UNKNOWN_FIELD, f"unknown query parameter(s) {sorted(unknown)}")
    if len(request.query) != len(set(request.query)):
        raise FaultproofError(Reason.BAD_REQUEST, "a query parameter is repeated")
    return dict(request.query)


def _int_param(q: dict[str, str], name: str, default: int, lo: int, hi: int) -> int:
    if name not in q:
        return default
    try:
        value = int(q[name])
    except ValueError:
        raise FaultproofError(Reason.BAD_REQUEST, f"{name} must be an integer") from None
    if not lo <= value <= hi:
        raise FaultproofError(Reason.BAD_REQUEST, f"{name} must be in [{lo}, {hi}]")
    return value


def _wants_msgpack(request: web.Request) -> bool:
    return MSGPACK in request.headers.get("Accept", "")


def parse_tx_json(raw: bytes) -> Message:
    obj = strictjson.loads(raw)  # the one strict parser: no duplicate keys, NaN, BOM, UTF-16
    if not isinstance(obj, dict):
        raise FaultproofError(Reason.WRONG_TYPE, "expected a JSON object")
    name = obj.pop("type", None)
    cls = _TX_BY_NAME.get(name) if isinstance(name, str) else None
    if cls is None:
        raise FaultproofError(Reason.UNKNOWN_MESSAGE_TYPE,
                              f"\"type\" must be one of {sorted(_TX_BY_NAME)}")
    return cls.from_json(obj)


def parse_tx(raw: bytes, content_type: str) -> Message:
    if content_type == MSGPACK:
        return decode_any(raw, allowed=LEDGER_TX_TYPES)
    if content_type == JSON:
        return parse_tx_json(raw)
    raise FaultproofError(Reason.UNSUPPORTED_MEDIA_TYPE)


def accepted_json(acc: Accepted) -> dict[str, Any]:
    e = acc.effect
    return {
        "height": acc.entry.entry.height,
        "entry_hash": acc.entry.entry.entry_hash.hex(),
        "existing": acc.existing,
        "kind": e.kind.value,
        "paid": acc.entry.entry.paid,
        "policy_id": e.policy_id.hex() if e.policy_id else None,
        "claim_id": e.claim_id.hex() if e.claim_id else None,
        "entry": acc.entry.to_json(),
    }


# --------------------------------------------------------------------------- handlers


async def _tx_body(request: web.Request) -> tuple[bytes, str]:
    """A transaction body (one or a batch): no query, within the size limit (refused from the
    Content-Length before it is read), msgpack or JSON, not empty."""
    limits = request.app[LIMITS]
    _query(request, set())
    if request.content_length is not None and request.content_length > limits["max_body_bytes"]:
        raise FaultproofError(Reason.OVERSIZE, f"body larger than {limits['max_body_bytes']} bytes")
    content_type = request.content_type
    if content_type not in (MSGPACK, JSON):
        raise FaultproofError(Reason.UNSUPPORTED_MEDIA_TYPE)
    raw = await request.read()
    if not raw:
        raise FaultproofError(Reason.MALFORMED, "empty body")
    return raw, content_type


async def post_tx(request: web.Request) -> web.StreamResponse:
    service = request.app[SERVICE]
    raw, content_type = await _tx_body(request)
    tx = parse_tx(raw, content_type)
    await service.precheck(tx)
    # A msgpack body that decoded is the tx's canonical encoding: the entry reuses it as is.
    accepted = await service.submit(tx, raw if content_type == MSGPACK else None)
    if _wants_msgpack(request):
        return web.Response(body=accepted.signed_bytes, content_type=MSGPACK,
                            headers={"X-Faultproof-Existing": "1" if accepted.existing else "0"})
    return web.json_response(accepted_json(accepted))


def batch_item_json(outcome: Accepted | FaultproofError) -> dict[str, Any]:
    """One QC's answer in a batch: where its entry is (no entry body: a batch answer stays small;
    GET /v1/entries or /v1/receipts has it), or the error a lone POST /v1/tx would have returned."""
    if isinstance(outcome, FaultproofError):
        return {"error": {"code": outcome.reason.value, "message": str(outcome)}}
    e = outcome.entry.entry
    return {"height": e.height, "existing": outcome.existing, "paid": e.paid,
            "claim_id": outcome.effect.claim_id.hex() if outcome.effect.claim_id else None}


async def post_tx_batch(request: web.Request) -> web.StreamResponse:
    service = request.app[SERVICE]
    raw, content_type = await _tx_body(request)
    if content_type == MSGPACK:  # decoded with its signatures checked, in the check processes if any
        outcomes = await service.submit_batch(raw)
    else:
        batch = QcBatch.from_json(strictjson.loads(raw))
        if not batch.qcs:
            raise FaultproofError(Reason.MISSING_FIELD, "qc-batch.qcs: at least one quorum certificate")
        outcomes = await service.submit_many(batch.qcs)
    return web.json_response({"results": [batch_item_json(o) for o in outcomes]})


async def get_entries(request: web.Request) -> web.StreamResponse:
    service, limits = request.app[SERVICE], request.app[LIMITS]
    q = _query(request, {"after", "wait", "limit"})
    after = _int_param(q, "after", -1, -1, 2**63 - 1)
    limit = _int_param(q, "limit", limits["max_entries_per_page"], 1, limits["max_entries_per_page"])
    try:
        wait = float(q.get("wait", "0"))
    except ValueError:
        raise FaultproofError(Reason.BAD_REQUEST, "wait must be a number of seconds") from None
    if not 0 <= wait <= limits["max_wait_s"]:
        raise FaultproofError(Reason.BAD_REQUEST, f"wait must be in [0, {limits['max_wait_s']}] seconds")
    raws = await service.entries(after, limit, wait)
    height = service.committed_height
    if _wants_msgpack(request):
        return web.Response(body=msgpack.packb([height, raws], use_bin_type=True), content_type=MSGPACK)
    return web.json_response({"height": height, "entries": [SignedEntry.decode(r).to_json() for r in raws]})


async def get_state(request: web.Request) -> web.StreamResponse:
    service = request.app[SERVICE]
    _query(request, set())
    state = await service.view()
    balances = service.summary_balances()
    return web.json_response({
        "ledger_id": state.ledger_id.hex(),
        "height": service.committed_height,
        "head_hash": service.committed_hash.hex(),
        "time_ms": service.committed_time,
        "signed_head": service.signed_head().to_json(),
        "balances": balances,
        "pool_total": state.pool_total,
        "policies": len(state.policies),
        "oracles": oracles_json(state),
        "admin": state.admin.hex(),
        "admin_nonce": state.admin_nonce,
        "next_admin_nonce": state.next_admin_nonce,
        "development": bool(state.genesis.development),
        "max_skew_ms": state.genesis.max_skew_ms,
        "durability": service.status()["durability"],
    })


async def get_status(request: web.Request) -> web.StreamResponse:
    _query(request, set())
    return web.json_response(request.app[SERVICE].status())


async def get_genesis(request: web.Request) -> web.StreamResponse:
    service = request.app[SERVICE]
    _query(request, set())
    genesis = service.state.genesis
    if _wants_msgpack(request):
        return web.Response(body=genesis.encode(), content_type=MSGPACK)
    return web.json_response({"ledger_id": genesis.ledger_id.hex(), "genesis": genesis.to_json()})


async def get_oracles(request: web.Request) -> web.StreamResponse:
    _query(request, set())
    return web.json_response(oracles_json(await request.app[SERVICE].view()))


def _now(service: LedgerService) -> int:
    return max(service.clock(), service.committed_time)


async def get_policies(request: web.Request) -> web.StreamResponse:
    service = request.app[SERVICE]
    q = _query(request, {"device_id", "limit"})
    limit = _int_param(q, "limit", 1000, 1, 10_000)
    state = await service.view()
    now = _now(service)
    if "device_id" in q:
        raw = q["device_id"]
        if len(raw) != 64 or raw != raw.lower():
            raise FaultproofError(Reason.BAD_REQUEST, "device_id must be 64 lowercase hex characters")
        try:
            policies = state.policies_of(bytes.fromhex(raw))
        except ValueError:
            raise FaultproofError(Reason.BAD_REQUEST, "device_id is not hex") from None
    else:
        policies = list(state.policies.values())
    return web.json_response({"policies": [policy_json(p, now) for p in policies[:limit]],
                              "truncated": len(policies) > limit})


T = TypeVar("T")


async def _by_id(request: web.Request, find: Callable[[LedgerState, bytes], T | None],
                 missing: str) -> tuple[LedgerState, T]:
    """GET /v1/<things>/{id}: the id (64 lowercase hex), no query parameters, and the thing as the
    state has it now (with that state, for what the answer adds); NOT_FOUND with `missing`."""
    key = _hex_id(request, "id")
    _query(request, set())
    state = await request.app[SERVICE].view()
    found = find(state, key)
    if found is None:
        raise FaultproofError(Reason.NOT_FOUND, missing)
    return state, found


async def get_policy(request: web.Request) -> web.StreamResponse:
    _, policy = await _by_id(request, LedgerState.policy, "no such policy")
    return web.json_response(policy_json(policy, _now(request.app[SERVICE])))


async def get_device(request: web.Request) -> web.StreamResponse:
    state, device = await _by_id(request, LedgerState.device, "no such device")
    return web.json_response(device_json(device, state))


async def get_circuit(request: web.Request) -> web.StreamResponse:
    _, circuit = await _by_id(request, LedgerState.circuit, "no such circuit")
    return web.json_response(circuit_json(circuit))


async def get_circuits(request: web.Request) -> web.StreamResponse:
    _query(request, set())
    state = await request.app[SERVICE].view()
    rows = sorted((circuit_json(c) for c in state.circuits.values()), key=lambda c: c["registered_ms"])
    for row in rows:
        row.pop("vkey")  # kilobytes each; GET /v1/circuits/{id} has it
    return web.json_response({"circuits": rows})


async def get_agent(request: web.Request) -> web.StreamResponse:
    state, agent = await _by_id(request, LedgerState.agent, "no such agent")
    aid = agent.agent_id
    # DESIGN §15 H10: the gateway's pinned TPM attestation key and its quotes' appraisals.
    ak = state.hw.gateway_aks.get(aid)
    gateway = {"ak_point": ak.hex() if ak else None,
               "quotes": [{"ts_ms": r.ts_ms, "passed": r.passed, "detail": r.detail} for r in gateway_results(state, aid)]}
    return web.json_response({**agent_json(agent, _now(request.app[SERVICE])), "gateway": gateway})


async def get_receipt(request: web.Request) -> web.StreamResponse:
    cid = _hex_id(request, "claim_id")
    _query(request, set())
    receipt = await request.app[SERVICE].receipt(cid)
    if _wants_msgpack(request):
        return web.Response(body=receipt.encode(), content_type=MSGPACK)
    return web.json_response(receipt.to_json())


MAX_HISTORY = 1000


async def get_device_history(request: web.Request) -> web.StreamResponse:
    """DESIGN §15: every ledger entry about a device (chain of custody), oldest first, with its
    entry hash: enrolment, keys, evidence, policies, payouts, suspensions, revocation."""
    did = _hex_id(request, "id")
    q = _query(request, {"limit"})
    limit = _int_param(q, "limit", MAX_HISTORY, 1, MAX_HISTORY)
    service = request.app[SERVICE]
    state = await service.view()
    if state.device(did) is None:
        raise FaultproofError(Reason.NOT_FOUND, "no such device")
    events = []
    for height, kind in device_history(state, did)[-limit:]:
        raw = await service.entry_bytes(height)
        if raw is None:  # not yet durable
            continue
        signed = SignedEntry.decode(raw)
        events.append({"height": height, "kind": kind.value, "time_ms": signed.entry.time_ms,
                       "entry_hash": signed.entry.entry_hash.hex(), "paid": signed.entry.paid,
                       **history_detail(signed.entry.tx, did, state)})
    results = [{"ts_ms": r.ts_ms, "passed": r.passed, "detail": r.detail} for r in attestation_results(state, did)]
    return web.json_response({"device_id": did.hex(), "key": device_key_json(state, did), "events": events,
                              "attestations": results})


async def healthz(request: web.Request) -> web.StreamResponse:
    service = request.app[SERVICE]
    return web.json_response({"ok": True, "height": service.committed_height,
                              "ledger_id": service.state.ledger_id.hex()})


async def readyz(request: web.Request) -> web.StreamResponse:
    """Readiness: the writer runs, so a transaction submitted now is ordered and made durable."""
    service = request.app[SERVICE]
    problems = [] if service.accepting else ["the ledger is not accepting transactions (its writer stopped)"]
    return web.json_response({"ok": not problems, "problems": problems, "height": service.committed_height},
                             status=503 if problems else 200)


async def metrics(request: web.Request) -> web.StreamResponse:
    body = generate_latest(request.app[SERVICE].metrics.registry)
    return web.Response(body=body, headers={"Content-Type": "text/plain; version=0.0.4; charset=utf-8"})


# Every route, once: the router and the OpenAPI document (GET /v1/openapi.json) are both made from it.
ROUTES = (
    Route("POST", "/v1/tx", post_tx, RouteDoc(
        "Submit a transaction: a signed admin tx, a quorum certificate, or an expiry.",
        request=LEDGER_TX_TYPES, statuses=(200, 202))),
    Route("POST", "/v1/tx/batch", post_tx_batch, RouteDoc(
        "Submit up to 64 quorum certificates at once; each is applied and answered alone, in order "
        "(results[i]: its entry or its error).", request=QcBatch)),
    Route("GET", "/v1/entries", get_entries, RouteDoc(
        "Signed entries after a height (long poll with wait).", response=SignedEntry,
        query={"after": "height to read after", "wait": "seconds to long-poll", "limit": "entries per page"})),
    Route("GET", "/v1/state", get_state, RouteDoc("The pool's balances, oracle set, admin nonce and head.")),
    Route("GET", "/v1/status", get_status, RouteDoc("The service: height, head, durability, queue.")),
    Route("GET", "/v1/genesis", get_genesis, RouteDoc("The genesis and the ledger_id (its hash).")),
    Route("GET", "/v1/oracles", get_oracles, RouteDoc("The current (and grace-period previous) oracle set.")),
    Route("GET", "/v1/policies", get_policies, RouteDoc("Policies, optionally of one device.",
                                                        query={"device_id": "hex"})),
    Route("GET", "/v1/policies/{id}", get_policy, RouteDoc("One policy: terms, status, lock, payouts.")),
    Route("GET", "/v1/devices/{id}", get_device, RouteDoc("One device: enrolment, epoch, revocation, anchored head.")),
    Route("GET", "/v1/circuits", get_circuits, RouteDoc("Every registered circuit, with the circuit_id policies name.")),
    Route("GET", "/v1/devices/{id}/history", get_device_history, RouteDoc(
        "A device's chain of custody: every ledger entry about it.")),
    Route("GET", "/v1/circuits/{id}", get_circuit, RouteDoc("One registered circuit and its verification key hash.")),
    Route("GET", "/v1/agents/{id}", get_agent, RouteDoc(
        "One gateway agent's enrolment, its TPM key and quote results.")),
    Route("GET", "/v1/receipts/{claim_id}", get_receipt, RouteDoc(
        "A payout's receipt: entry, QC and signed head, verifiable offline.")),
)


def make_app(service: LedgerService, *, max_body_bytes: int = 128 * 1024, max_wait_s: float = 30.0,
             max_entries_per_page: int = 1000, run_service: bool = True,
             idle_timeout_s: float = IDLE_TIMEOUT_S) -> web.Application:
    """The aiohttp application. With run_service, the app starts and stops the service's writer."""
    app = application(log, max_body_bytes=max_body_bytes, idle_timeout_s=idle_timeout_s)  # error shape, hygiene
    app[SERVICE] = service
    app[LIMITS] = {"max_body_bytes": max_body_bytes, "max_wait_s": max_wait_s,
                   "max_entries_per_page": max_entries_per_page}
    add_routes(app, "faultproof ledger", ROUTES, healthz=healthz, readyz=readyz, metrics=metrics)

    async def end_long_polls(app: web.Application) -> None:  # before aiohttp waits for handlers
        service.end_long_polls()

    app.on_shutdown.append(end_long_polls)
    if run_service:
        async def service_ctx(app: web.Application) -> Any:
            async with service.running():
                yield

        app.cleanup_ctx.append(service_ctx)
    return app

