"""The oracle's HTTP routes as documented in its OpenAPI document (GET /v1/openapi.json).

One entry per route of oracle/http_api.py; tests/operators/test_openapi.py holds them equal."""

from __future__ import annotations

from faultproof.messages import SignedClaim, SignedSuspensionReport
from faultproof.openapi import OPERATOR_ROUTES, RouteDoc

ROUTES: dict[tuple[str, str], RouteDoc] = {
    ("POST", "/v1/claims"): RouteDoc("Submit a signed claim; 202 once it passed every check.", request=SignedClaim,
                                     statuses=(202,)),
    ("GET", "/v1/claims"): RouteDoc("Claims this oracle knows.", query={"policy_id": "hex", "status": "a status"}),
    ("GET", "/v1/claims/{claim_id}"): RouteDoc("One claim: status, votes (k of n), QC, receipt."),
    ("GET", "/v1/status"): RouteDoc("The node: membership, epoch, ledger height, gossip peers."),
    **OPERATOR_ROUTES,
    # hardware2 (DESIGN §15): an agent's evidence of forged frames; the oracles gossip signatures.
    ("POST", "/v1/suspensions"): RouteDoc("Report a device's forged frames (msgpack SignedSuspensionReport); 202 "
                                          "once checked and signed.", request=SignedSuspensionReport, statuses=(202,)),
}
