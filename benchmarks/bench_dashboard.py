"""Dashboard speed: how long a page takes with a 10,000-entry ledger (issue 19: under 1 s).

A ledger of N_ENTRIES entries (a funded pool, N_POLICIES devices with a policy each, and payouts
with 4 oracle signatures each for the rest) is written in-process through the real
`LedgerService`, then served by a `faultproof ledger serve` process; a `faultproof dashboard`
process follows it (every entry replayed and every receipt fetched and checked). Once it has caught
up:

dashboard_page_ms_max: the slowest page, served HTML, over HTTP (median of 5 GETs per page), all
    pages (overview, pool, policies, claims, oracles, devices, ledger).
dashboard_browser_load_ms: Debian's chromium opening the claims page, from navigation start to the
    end of the load event (the browser's Navigation Timing), median of 5 after a warm-up; also the
    wall clock of the same navigations as Playwright sees them (`wall_ms`).
dashboard_catch_up_s: from the dashboard's start to having replayed every entry and checked every
    receipt (not a page load: the one-off cost of opening a long ledger).

    python -m benchmarks.bench_dashboard        # prints JSON
"""

from __future__ import annotations

import json
import os
import statistics
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from faultproof.messages import Message
from faultproof.procs import ManagedProcess, free_port
from ledger.service import wall_clock_ms
from tests.ledger.helpers import DAY, SECOND, Scenario, make_ledger, write_ledger

N_ENTRIES = int(os.environ.get("BENCH_DASHBOARD_ENTRIES", "10000"))
N_POLICIES = int(os.environ.get("BENCH_DASHBOARD_POLICIES", "1000"))
PAGES = ["/", "/pool", "/policies", "/claims", "/oracles", "/devices", "/ledger"]


def _build(directory: Path) -> tuple[Path, Path]:
    keys = make_ledger(5, max_backdate_ms=30 * DAY)  # its payouts fill the 20 days before now
    now = wall_clock_ms()
    sc = Scenario.standard(keys, deposit=10**15, coverage=10**12, amount=1, premium=10,
                           start_ms=now - 20 * DAY, end_ms=now + DAY, period_ms=SECOND, claim_window_ms=60 * DAY)
    txs: list[Message] = list(sc.setup_txs)
    for i in range(N_POLICIES - 1):
        more, _, _ = sc.more_policy(f"bench-device-{i}", coverage=1_000, amount=10, start_ms=now - DAY,
                                    end_ms=now + DAY)
        txs += more
    n_payouts = max(0, N_ENTRIES - 1 - len(txs))
    txs += [keys.qc(sc.body(i, window_ms=400)) for i in range(n_payouts)]
    return write_ledger(directory, keys, txs, synchronous="OFF")


def _get(url: str) -> tuple[int, bytes]:
    with urllib.request.urlopen(url, timeout=30) as resp:  # noqa: S310 - loopback only
        return resp.status, resp.read()


def _browser_load_ms(url: str) -> tuple[float, float] | None:
    """(load event per the browser's Navigation Timing, wall clock of the navigation), medians of
    5 after one warm-up navigation (the first one also starts the browser's renderer)."""
    try:
        from tests.dashboard.browser import chromium, chromium_path

        chromium_path()
    except (ImportError, RuntimeError):
        return None
    nav, wall = [], []
    with chromium() as browser:
        page = browser.new_page()
        page.goto(url, wait_until="load")
        for _ in range(5):
            page.goto("about:blank")
            t0 = time.perf_counter()
            page.goto(url, wait_until="load")
            wall.append((time.perf_counter() - t0) * 1000)
            nav.append(page.evaluate("performance.getEntriesByType('navigation')[0].loadEventEnd"))
    return statistics.median(nav), statistics.median(wall)


def run() -> dict[str, dict[str, Any]]:
    with tempfile.TemporaryDirectory(prefix="bench-dashboard-") as tmp:
        d = Path(tmp)
        db, key = _build(d)
        lport, dport = free_port(), free_port()
        (d / "ledger.toml").write_text(f'[ledger]\ndb = "{db}"\nledger_key = "{key}"\n[server]\nport = {lport}\n')
        ledger = ManagedProcess("ledger", ["-m", "cli", "ledger", "serve", "--config", str(d / "ledger.toml")],
                                d / "ledger.log", ready_url=f"http://127.0.0.1:{lport}/healthz")
        dash_url = f"http://127.0.0.1:{dport}"
        dash = ManagedProcess("dashboard", ["-m", "cli", "dashboard", "--ledger", f"http://127.0.0.1:{lport}",
                                            "--port", str(dport)], d / "dashboard.log",
                              ready_url=f"{dash_url}/healthz")
        ledger.start()
        try:
            ledger.wait_ready(120)
            t0 = time.monotonic()
            dash.start()
            dash.wait_ready(60)
            while True:
                _, raw = _get(f"{dash_url}/api/health")
                h = json.loads(raw)
                if h["height"] == N_ENTRIES - 1 and h["receipts_verified"] == h["claims"]["paid"] and h["verified"]:
                    break
                if time.monotonic() - t0 > 600:
                    raise RuntimeError(f"the dashboard did not catch up: {h}")
                time.sleep(0.2)
            catch_up = time.monotonic() - t0
            per_page = {}
            for path in PAGES:
                times = []
                for _ in range(5):
                    t = time.perf_counter()
                    status, body = _get(dash_url + path)
                    times.append((time.perf_counter() - t) * 1000)
                    assert status == 200 and len(body) > 1000, (path, status)
                per_page[path] = statistics.median(times)
            browser_ms = _browser_load_ms(f"{dash_url}/claims")
        finally:
            dash.stop()
            ledger.stop()
    slowest = max(per_page, key=lambda p: per_page[p])
    out: dict[str, dict[str, Any]] = {
        "dashboard_page_ms_max": {"value": round(per_page[slowest], 1), "unit": f"ms ({slowest}, {N_ENTRIES} entries)",
                                  "pages": {p: round(v, 1) for p, v in per_page.items()}},
        "dashboard_catch_up_s": {"value": round(catch_up, 1), "unit": f"s ({N_ENTRIES} entries replayed, receipts checked)"},
    }
    if browser_ms is not None:
        out["dashboard_browser_load_ms"] = {"value": round(browser_ms[0], 1),
                                            "unit": "ms (/claims in chromium: navigation start to load event)",
                                            "wall_ms": round(browser_ms[1], 1)}
    return out


if __name__ == "__main__":
    print(json.dumps(run(), indent=1, sort_keys=True))
