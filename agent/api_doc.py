"""The agent's HTTP routes as documented in its OpenAPI document (GET /v1/openapi.json).

One entry per route of agent/api.py; tests/operators/test_openapi.py holds them equal."""

from __future__ import annotations

from faultproof.messages import DeviceReading, ReadingBatch, SignedClaim, UnsignedReading
from faultproof.openapi import OPERATOR_ROUTES, RouteDoc

ROUTES: dict[tuple[str, str], RouteDoc] = {
    ("POST", "/v1/frames"): RouteDoc("Device frames with their readings (signed, or unsigned between a device's "
                                     "signed frames, DESIGN §16); accepted after a durable commit.",
                                     request=(DeviceReading, UnsignedReading, ReadingBatch), request_tagged=False),
    ("GET", "/v1/status"): RouteDoc("The agent: devices, ingest, proving, claims."),
    ("GET", "/v1/claims"): RouteDoc("Claims this agent made, newest first.",
                                    query={"status": "a status", "device_id": "hex"}),
    ("GET", "/v1/claims/{claim_id}"): RouteDoc("One claim: window, status, amount paid."),
    ("GET", "/v1/claims/{claim_id}/signed"): RouteDoc(
        "The signed claim (proof included) as sent to the oracles; msgpack, or JSON with "
        "Accept: application/json. 404 until it is proved.", response=SignedClaim, statuses=(200, 404)),
    ("POST", "/v1/devices/{device_id}/anchor"): RouteDoc(
        "Anchor the device's latest chain-linked head on the ledger now (before a decommission).",
        statuses=(200, 404)),
    **OPERATOR_ROUTES,
}
