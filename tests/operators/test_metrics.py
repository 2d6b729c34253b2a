"""What an operator watches is there: every metric the docs name is exported by a running service
(gauges with a value from the start), every metric is `faultproof_*`, the Grafana dashboard reads
only exported metrics, and a ledger outage is two log lines, not one per retry.

One `faultproof init` site; a real ledger and oracle-1 (a member of the genesis oracle set). The
agent's registry is read in-process (a running agent needs a registered circuit; its /metrics
serves exactly this registry)."""

from __future__ import annotations

import json
import re
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from agent.metrics import AgentMetrics
from faultproof.metrics import version
from faultproof.procs import ManagedProcess, wait_port
from ledger.follower import LedgerFollower  # the agent registers its follower on its registry
from tests.netfix import wait_until
from tests.operators.site import init_site, serve_ledger

ROOT = Path(__file__).resolve().parents[2]
DOCS = {  # the doc -> the services whose /metrics it describes
    "docs/ledger.md": ("ledger",),
    "docs/oracle-operator.md": ("oracle",),
    "docs/gossip.md": ("oracle",),
    "docs/agent-operator.md": ("agent",),
    "docs/design.md": ("ledger", "oracle", "agent"),
}
METRIC = re.compile(r"\bfaultproof_[a-z0-9_]+")


def _documented(doc: str) -> set[str]:
    """Every metric-looking name in the doc (`faultproof_x{labels}` -> faultproof_x)."""
    return set(METRIC.findall((ROOT / doc).read_text()))


class Exported:
    """One scrape: family names, sample names, and the samples of each family."""

    def __init__(self, text: str) -> None:
        self.families = {f.name: f for f in text_string_to_metric_families(text)}
        self.samples = {s.name: s for f in self.families.values() for s in f.samples}

    def has(self, name: str) -> bool:
        # a counter documented as x_total is the family x; a histogram's samples are x_bucket...
        return name in self.samples or name in self.families or name.removesuffix("_total") in self.families

    def value(self, name: str, **labels: str) -> float | None:
        fam = self.families.get(name)
        for s in fam.samples if fam is not None else ():
            if all(s.labels.get(k) == v for k, v in labels.items()):
                return float(s.value)
        return None


def _scrape(url: str) -> Exported:
    with urllib.request.urlopen(url + "/metrics", timeout=5) as r:  # noqa: S310 - our own service
        return Exported(r.read().decode())


def _ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(url + "/readyz", timeout=2) as r:  # noqa: S310
            return bool(r.status == 200)
    except OSError:
        return False


class Site:
    def __init__(self, root: Path, base: int, ledger: ManagedProcess, oracle: ManagedProcess) -> None:
        self.root, self.base, self.ledger, self.oracle = root, base, ledger, oracle
        self.ledger_url = f"http://127.0.0.1:{base}"
        self.oracle_url = f"http://127.0.0.1:{base + 11}"


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    root = tmp_path_factory.mktemp("metrics") / "site"
    base = init_site(root)
    ledger = serve_ledger(root, base)
    oracle = ManagedProcess("oracle-1", ["-m", "cli", "oracle", "run", "--config", str(root / "oracle-1.toml")],
                            root / "oracle-1.log", cwd=root)
    try:
        oracle.start()
        s = Site(root, base, ledger, oracle)
        wait_until(lambda: _ready(s.oracle_url), 90, what="oracle-1 ready", detail=oracle.tail)
        yield s
    finally:
        oracle.stop()
        ledger.stop()


def _agent_scrape() -> Exported:
    metrics = AgentMetrics()
    LedgerFollower(client=None, wait_s=1.0, registry=metrics.registry)  # type: ignore[arg-type]
    return Exported(generate_latest(metrics.registry).decode())


def _all(site: Site) -> dict[str, Exported]:
    return {"ledger": _scrape(site.ledger_url), "oracle": _scrape(site.oracle_url), "agent": _agent_scrape()}


def test_every_documented_metric_is_exported_and_gauges_have_a_value_from_the_start(site: Site) -> None:
    scraped = _all(site)
    checked = 0
    for doc, services in DOCS.items():
        for name in sorted(_documented(doc)):
            owners = [s for s in services if scraped[s].has(name)]
            assert owners, f"{doc} lists {name}, which no service in {services} exports"
            for s in owners:
                fam = scraped[s].families.get(name)
                if fam is not None and fam.type == "gauge":
                    assert fam.samples, f"{s}: gauge {name} has no value before its first event"
            checked += 1
    assert checked >= 40, checked  # the tables were read
    for service, exp in scraped.items():
        assert [n for n in exp.families if not n.startswith("faultproof_")] == [], service
        assert exp.value("faultproof_build_info", service=service, version=version()) == 1.0, service
    oracle = scraped["oracle"]
    # oracle-1 is in the genesis oracle set (epoch 0 or 1, as the ledger numbers it)
    assert oracle.value("faultproof_oracle_member") == 1.0
    epoch = json.loads(urllib.request.urlopen(site.ledger_url + "/v1/oracles", timeout=5).read())["epoch"]  # noqa: S310
    assert oracle.value("faultproof_oracle_set_epoch") == float(epoch)
    for status in ("pending", "approved", "rejected", "paid"):
        assert oracle.value("faultproof_oracle_claims", status=status) == 0.0
    assert scraped["agent"].value("faultproof_agent_claims", status="detected") == 0.0
    assert oracle.value("faultproof_follower_ledger_reachable") == 1.0


def test_grafana_dashboard_reads_only_exported_metrics(site: Site) -> None:
    dash = json.loads((ROOT / "docs/grafana-dashboard.json").read_text())
    exprs = [t["expr"] for p in dash["panels"] for t in p.get("targets", [])]
    assert len(exprs) >= 20
    scraped = _all(site)
    used = {n for e in exprs for n in METRIC.findall(e)}
    missing = sorted(n for n in used if not any(exp.has(n) for exp in scraped.values()))
    assert missing == []
    for p in dash["panels"]:  # every panel is on the grid and reads Prometheus
        assert p["datasource"]["type"] == "prometheus" and p["gridPos"]["w"] > 0


def _lines(log: Path, text: str) -> int:
    return sum(text in line for line in log.read_text(errors="replace").splitlines())


def test_a_ledger_outage_is_one_line_down_and_one_line_back(site: Site) -> None:
    """Last: stops and restarts the ledger. Old code logged 'ledger poll failed' every retry."""
    log = site.root / "oracle-1.log"
    assert _lines(log, "ledger unreachable") == 0
    site.ledger.stop()
    wait_until(lambda: _lines(log, "ledger unreachable") >= 1, 30, what="the outage logged",
               detail=site.oracle.tail)
    time.sleep(4)  # several retries (backoff 0.2 s doubling to 5 s, jittered)
    wait_until(lambda: _scrape(site.oracle_url).value("faultproof_follower_ledger_reachable") == 0.0, 10,
               what="the follower gauge at 0")
    site.ledger.start()
    wait_port(site.base, site.ledger)
    wait_until(lambda: _lines(log, "ledger reachable again") >= 1, 30, what="the recovery logged",
               detail=site.oracle.tail)
    wait_until(lambda: _ready(site.oracle_url), 60, what="oracle-1 ready again", detail=site.oracle.tail)
    text = log.read_text(errors="replace")
    assert _lines(log, "ledger unreachable") == 1, text[-3000:]
    assert _lines(log, "ledger reachable again") == 1, text[-3000:]
    attempts = int(re.findall(r"ledger reachable again after (\d+) failed attempts", text)[0])
    assert attempts >= 3  # it did retry, quietly
    assert _lines(log, "ledger poll failed") == 0
