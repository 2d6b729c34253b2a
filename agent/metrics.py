"""The agent's Prometheus metrics, on a registry of its own (so tests can run several agents in one
process). Names start with `faultproof_agent_`. This file only declares metrics; it must never
decide anything."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from faultproof.metrics import register_build_info

# agent/core.py's ClaimStatus values, so the gauge exists (at 0) from the start
CLAIM_STATUSES = ("detected", "proved", "submitted", "approved", "paid", "rejected", "failed")


class AgentMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        r = self.registry = registry or CollectorRegistry()
        self.build_info = register_build_info(r, "agent")
        self.frames = Counter("faultproof_agent_frames_total",
                              "Frames handled, by result (accepted, rejected, undecodable) and reason code",
                              ["result", "reason"], registry=r)
        self.messages = Counter("faultproof_agent_messages_total", "Messages received, by transport",
                                ["transport"], registry=r)
        self.commits = Counter("faultproof_agent_commits_total", "Store transactions committed", registry=r)
        self.commit_seconds = Histogram("faultproof_agent_commit_seconds", "Time to commit one batch",
                                        buckets=(0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 1.0), registry=r)
        self.batch_frames = Histogram("faultproof_agent_batch_frames", "Frames per committed batch",
                                      buckets=(1, 10, 100, 500, 1000, 5000, 20000), registry=r)
        self.pending_frames = Gauge("faultproof_agent_pending_frames",
                                    "Frames received and not yet committed", registry=r)
        self.claims = Gauge("faultproof_agent_claims", "Claims by status", ["status"], registry=r)
        self.claim_transitions = Counter("faultproof_agent_claim_transitions_total",
                                         "Claim status changes, by new status", ["status"], registry=r)
        self.prove_seconds = Histogram("faultproof_agent_prove_seconds", "Proving latency per claim",
                                       buckets=(0.1, 0.25, 0.5, 1, 2, 4, 8, 16, 32, 64), registry=r)
        self.detect_to_claim_seconds = Histogram(
            "faultproof_agent_detect_to_claim_seconds",
            "From the commit that completed a window to its signed claim leaving the agent",
            buckets=(0.1, 0.25, 0.5, 1, 2, 4, 8, 16, 32, 64), registry=r)
        self.windows_skipped = Counter(
            "faultproof_agent_windows_skipped_total",
            "Incidents detected but not claimable, by reason (outside_policy_term, claim_window_closed, "
            "period_limit, coverage_exhausted)", ["reason"], registry=r)
        self.windows_evaluated = Counter("faultproof_agent_windows_evaluated_total",
                                         "Windows whose trigger was evaluated", registry=r)
        self.retention_deleted = Counter("faultproof_agent_retention_deleted_total",
                                         "Frames deleted by retention", registry=r)
        self.mqtt_connected = Gauge("faultproof_agent_mqtt_connected", "1 while connected to the broker",
                                    registry=r)
        self.ledger_height = Gauge("faultproof_agent_ledger_height", "Height of the agent's ledger replica",
                                   registry=r)
        self.submissions = Counter("faultproof_agent_claim_sends_total", "Claim sends, by path and outcome",
                                   ["path", "outcome"], registry=r)
        for status in CLAIM_STATUSES:
            self.claims.labels(status).set(0)
