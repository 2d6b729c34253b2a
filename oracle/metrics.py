"""Prometheus metrics of one oracle node, in the node's own registry (the gossip layer's metrics
share it, so `/metrics` shows both). Names are stable: dashboards, docs/oracle-operator.md and the
tests read them. This file must never register into the global default registry (tests run many
nodes in one process) and never compute anything.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from faultproof.metrics import register_build_info

# Claim statuses of oracle/claim.py's ClaimStatus, named here so the gauges exist (at 0) from the
# start and this file imports nothing of the node.
CLAIM_STATUSES = ("pending", "approved", "rejected", "paid")


class OracleMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.build_info = register_build_info(r, "oracle")
        self.claims = Gauge("faultproof_oracle_claims", "Claims held, by status", ["status"], registry=r)
        self.set_claims({})
        self.member = Gauge(
            "faultproof_oracle_member", "1 while this node is a member of the ledger's current oracle set",
            registry=r)
        self.oracle_set_epoch = Gauge(
            "faultproof_oracle_set_epoch", "Epoch of the ledger's current oracle set", registry=r)
        self.claims_received = Counter(
            "faultproof_oracle_claims_received_total", "Claims received, by source", ["source"], registry=r)
        self.claims_dropped = Counter(
            "faultproof_oracle_claims_dropped_total",
            "Claims refused without a vote or record, by source and faultproof reason", ["source", "reason"],
            registry=r)
        self.votes = Counter(
            "faultproof_oracle_votes_total", "Votes seen by the quorum counter, by kind, origin and outcome",
            ["kind", "origin", "outcome"], registry=r)
        self.votes_signed = Counter("faultproof_oracle_votes_signed_total", "Votes this node signed", ["kind"], registry=r)
        self.equivocations = Counter(
            "faultproof_oracle_equivocations_total", "Votes recorded as equivocation evidence", registry=r)
        self.vote_batches_dropped = Counter(
            "faultproof_oracle_vote_batches_dropped_total", "Vote batches that did not decode", ["reason"], registry=r)
        self.verify_seconds = Histogram(
            "faultproof_oracle_verify_seconds", "Proof verification latency (queue + pairing)",
            buckets=(0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5), registry=r)
        self.decisions = Counter("faultproof_oracle_decisions_total", "Claims decided by the quorum", ["verdict"], registry=r)
        self.qc_posts = Counter("faultproof_oracle_qc_posts_total", "QC posts to the ledger, by result", ["result"], registry=r)
        self.ledger_height = Gauge("faultproof_oracle_ledger_height", "Height of the replicated ledger view", registry=r)
        self.ledger_errors = Counter(
            "faultproof_oracle_ledger_errors_total", "Failed ledger polls or integrity errors", ["kind"], registry=r)
        self.claim_to_decision = Histogram(
            "faultproof_oracle_claim_to_decision_seconds", "From a claim's first arrival here to the quorum's verdict",
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 3, 5, 10, 30, 60), registry=r)

    def set_claims(self, counts: dict[str, int]) -> None:
        """Every status, 0 when absent: a status whose last claim moved on must drop to 0."""
        for status in (*CLAIM_STATUSES, *counts):
            self.claims.labels(status).set(counts.get(status, 0))
