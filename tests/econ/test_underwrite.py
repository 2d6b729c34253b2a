"""`faultproof underwrite backtest` (DESIGN §14): a history of readings replayed through the agent's
detector finds exactly the injected incidents, at most one per period, and reports the premium and
the basis risk against a record of real losses."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path

from cli.underwrite import backtest
from faultproof.zk.params import TriggerParams

ROOT = Path(__file__).resolve().parents[2]
T0 = 1_700_000_000_000
MINUTE, HOUR, DAY = 60_000, 3_600_000, 86_400_000


def history(days: int = 20, incidents_at: tuple[int, ...] = (2 * DAY, 5 * DAY, 5 * DAY + 3 * HOUR, 9 * DAY)) -> list[tuple[int, int]]:
    """One reading a minute around 21.50 degrees; at each incident 8 readings alternate to 40.00."""
    rng = random.Random(7)
    rows = []
    starts = {t // MINUTE for t in incidents_at}
    hot = 0
    for i in range(days * DAY // MINUTE):
        if i in starts:
            hot = 16
        reading = 2150 + rng.randint(-40, 40)
        if hot:
            hot -= 1
            if hot % 2:
                reading = 4000
        rows.append((T0 + i * MINUTE, reading))
    return rows


def test_backtest_finds_the_incidents_once_per_period_and_prices_them() -> None:
    rows = history()
    losses = [T0 + 2 * DAY + 5 * MINUTE, T0 + 5 * DAY + 5 * MINUTE, T0 + 14 * DAY]
    b = backtest(rows, TriggerParams.count(3000, 4), n=16, period_ms=DAY, amount=1_000_000, load=0.5,
                 term_days=30, losses=losses)
    # three paid days: day 5's second incident falls in the same period as its first
    assert [w.period for w in b.windows] == [2, 5, 9]
    assert all(w.end_seq - w.start_seq == 16 for w in b.windows)
    per_year = 3 / (b.span_ms / (365 * DAY))
    assert abs(b.payouts_per_year - per_year) < 1e-9
    assert b.premium == round(per_year * 1_000_000 * 30 / 365 * 1.5)
    # basis risk: day 9 paid without a loss, the loss on day 14 was not covered
    assert [w.period for w in (b.unmatched_windows or ())] == [9]
    assert b.unpaid_losses == (T0 + 14 * DAY,)
    # a shorter period pays both incidents of day 5
    b2 = backtest(rows, TriggerParams.count(3000, 4), n=16, period_ms=HOUR, amount=1, load=0)
    assert len(b2.windows) == 4


def test_healthy_history_never_pays() -> None:
    b = backtest(history(days=3, incidents_at=()), TriggerParams.count(3000, 4), n=16, period_ms=DAY, amount=1)
    assert b.windows == () and b.premium == 0


def test_backtest_command(tmp_path: Path) -> None:
    readings = tmp_path / "history.csv"
    readings.write_text("ts_ms,reading\n" + "".join(f"{t},{r}\n" for t, r in history(days=10)))
    losses = tmp_path / "losses.csv"
    losses.write_text(f"ts_ms\n{T0 + 2 * DAY}\n")
    cmd = [sys.executable, "-m", "cli", "underwrite", "backtest", "--readings", str(readings), "--trigger",
           "kind=count_above,threshold=3000,count=4", "--period-ms", str(DAY), "--incidents", str(losses)]
    out = subprocess.run([*cmd, "--json"], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert out.returncode == 0, out.stderr
    s = json.loads(out.stdout)
    assert s["payouts"] == 3 and s["basis_risk"] == {"payouts_without_loss": 2, "losses_without_payout": 0,
                                                      "unpaid_loss_ts": []}
    text = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert text.returncode == 0 and "would have paid 3 times" in text.stdout and "basis risk" in text.stdout
    # bad input: one line naming the problem, no traceback
    readings.write_text("ts_ms,reading\n5,1\n4,1\n")
    bad = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert bad.returncode == 2 and "must strictly increase" in bad.stderr and "Traceback" not in bad.stderr
    bad = subprocess.run([*cmd[:-4], "--trigger", "kind=count_above,threshold=3000"], capture_output=True,
                         text=True, cwd=ROOT, timeout=120)
    assert bad.returncode == 2 and "needs count" in bad.stderr and "Traceback" not in bad.stderr
