"""Prometheus metrics of one oracle node, in the node's own registry (the gossip layer's metrics
share it, so `/metrics` shows both). Names are stable: dashboards, docs/oracle-operator.md and the
tests read them. This file must never register into the global default registry (tests run many
nodes in one process) and never compute anything.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class OracleMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.claims = Gauge("oracle_claims", "Claims held, by status", ["status"], registry=r)
        self.claims_received = Counter(
            "oracle_claims_received_total", "Claims received, by source", ["source"], registry=r)
        self.claims_dropped = Counter(
            "oracle_claims_dropped_total",
            "Claims refused without a vote or record, by source and faultproof reason", ["source", "reason"],
            registry=r)
        self.votes = Counter(
            "oracle_votes_total", "Votes seen by the quorum counter, by kind, origin and outcome",
            ["kind", "origin", "outcome"], registry=r)
        self.votes_signed = Counter("oracle_votes_signed_total", "Votes this node signed", ["kind"], registry=r)
        self.equivocations = Counter(
            "oracle_equivocations_total", "Votes recorded as equivocation evidence", registry=r)
        self.vote_batches_dropped = Counter(
            "oracle_vote_batches_dropped_total", "Vote batches that did not decode", ["reason"], registry=r)
        self.verify_seconds = Histogram(
            "oracle_verify_seconds", "Proof verification latency (queue + pairing)",
            buckets=(0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5), registry=r)
        self.decisions = Counter("oracle_decisions_total", "Claims decided by the quorum", ["verdict"], registry=r)
        self.qc_posts = Counter("oracle_qc_posts_total", "QC posts to the ledger, by result", ["result"], registry=r)
        self.ledger_height = Gauge("oracle_ledger_height", "Height of the replicated ledger view", registry=r)
        self.ledger_errors = Counter(
            "oracle_ledger_errors_total", "Failed ledger polls or integrity errors", ["kind"], registry=r)
        self.claim_to_decision = Histogram(
            "oracle_claim_to_decision_seconds", "From a claim's first arrival here to the quorum's verdict",
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 3, 5, 10, 30, 60), registry=r)
