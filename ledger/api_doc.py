"""The ledger's HTTP routes as documented in its OpenAPI document (GET /v1/openapi.json).

One entry per route of ledger/http.py; tests/operators/test_openapi.py holds them equal."""

from __future__ import annotations

from faultproof.messages import LEDGER_TX_TYPES, QcBatch, SignedEntry
from faultproof.openapi import OPERATOR_ROUTES, RouteDoc

ROUTES: dict[tuple[str, str], RouteDoc] = {
    ("POST", "/v1/tx"): RouteDoc("Submit a transaction: a signed admin tx, a quorum certificate, or an expiry.",
                                 request=LEDGER_TX_TYPES, statuses=(200, 202)),
    ("POST", "/v1/tx/batch"): RouteDoc("Submit up to 64 quorum certificates at once; each is applied and "
                                       "answered alone, in order (results[i]: its entry or its error).",
                                       request=QcBatch),
    ("GET", "/v1/entries"): RouteDoc("Signed entries after a height (long poll with wait).", response=SignedEntry,
                                     query={"after": "height to read after", "wait": "seconds to long-poll",
                                            "limit": "entries per page"}),
    ("GET", "/v1/state"): RouteDoc("The pool's balances, oracle set, admin nonce and head."),
    ("GET", "/v1/status"): RouteDoc("The service: height, head, durability, queue."),
    ("GET", "/v1/genesis"): RouteDoc("The genesis and the ledger_id (its hash)."),
    ("GET", "/v1/oracles"): RouteDoc("The current (and grace-period previous) oracle set."),
    ("GET", "/v1/policies"): RouteDoc("Policies, optionally of one device.", query={"device_id": "hex"}),
    ("GET", "/v1/policies/{id}"): RouteDoc("One policy: terms, status, lock, payouts."),
    ("GET", "/v1/devices/{id}"): RouteDoc("One device: enrolment, epoch, revocation, anchored head."),
    ("GET", "/v1/devices/{id}/history"): RouteDoc("A device's chain of custody: every ledger entry about it."),
    ("GET", "/v1/circuits"): RouteDoc("Every registered circuit, with the circuit_id policies name."),
    ("GET", "/v1/circuits/{id}"): RouteDoc("One registered circuit and its verification key hash."),
    ("GET", "/v1/agents/{id}"): RouteDoc("One gateway agent's enrolment, its TPM key and quote results."),
    ("GET", "/v1/receipts/{claim_id}"): RouteDoc("A payout's receipt: entry, QC and signed head, verifiable offline."),
    **OPERATOR_ROUTES,
}
