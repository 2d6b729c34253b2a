"""Metrics every faultproof service exports the same way: `faultproof_build_info`.

Every metric of the project is named `faultproof_<area>_...` (ledger, oracle, gossip, agent,
follower) so one Prometheus job and one dashboard find them all. The build info gauge says which
version of which service answers a scrape (constant 1, the facts are labels), so a dashboard can
tell a half-upgraded network at a glance. This file only declares metrics on a registry it is
given; it must never register into the global default registry (tests run many services in one
process) and never decide anything.
"""

from __future__ import annotations

from importlib import metadata

from prometheus_client import CollectorRegistry, Gauge

PACKAGE = "faultproof"


def version() -> str:
    """The installed distribution's version (pyproject.toml), or "unknown" from a bare checkout."""
    try:
        return metadata.version(PACKAGE)
    except metadata.PackageNotFoundError:
        return "unknown"


def register_build_info(registry: CollectorRegistry, service: str) -> Gauge:
    gauge = Gauge("faultproof_build_info", "Version of the running service (always 1)",
                  ["version", "service"], registry=registry)
    gauge.labels(version(), service).set(1)
    return gauge
