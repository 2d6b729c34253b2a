"""`faultproof underwrite backtest`: how often a trigger would have paid on a history of readings,
and what premium covers that (DESIGN §14). Shown before a policy is written, so the underwriter
and the policyholder see the basis risk: the trigger pays on readings, not on losses.

    faultproof underwrite backtest --readings HISTORY.csv --trigger kind=count_above,threshold=3000,count=4 \\
        --n 16 --period-ms 3600000 --amount 1000000 --load 0.3 [--incidents LOSSES.csv]

HISTORY.csv has a header `ts_ms,reading` (ms timestamps, strictly increasing; signed 32-bit
readings in the sensor's unit). The history is replayed through the agent's own detector
(`agent.detect.Detector` over an `agent.frames.ChainBook`, with the trigger decided by
`faultproof.zk.trigger_holds`, the function the circuit mirrors) with the ledger's own period rule
(`ledger.state.Policy.period_of`): what it finds is exactly what the agent would have claimed.
With LOSSES.csv (header `ts_ms`, one real loss per row) it reports the basis risk: payouts with no
loss within the tolerance, and losses no payout covered.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from agent.detect import Detector, PolicyTerms, Window
from agent.frames import ChainBook, Known
from faultproof.commandline import json_option
from faultproof.errors import FaultproofError
from faultproof.messages import IssuePolicy
from faultproof.operator_errors import OperatorError
from faultproof.zk.params import TriggerParams
from ledger.state import Policy

YEAR_MS = 365 * 86_400_000
MAX_ROWS = 20_000_000
_INT32 = (-(2**31), 2**31 - 1)


class BacktestError(OperatorError):
    pass


@dataclass(frozen=True)
class Backtest:
    readings: int
    span_ms: int
    windows: tuple[Window, ...]
    amount: int
    load: float
    term_days: int
    unpaid_losses: tuple[int, ...] | None = None  # loss timestamps no window covered
    unmatched_windows: tuple[Window, ...] | None = None  # windows with no loss near them

    @property
    def years(self) -> float:
        return self.span_ms / YEAR_MS

    @property
    def payouts_per_year(self) -> float:
        return len(self.windows) / self.years if self.span_ms else 0.0

    @property
    def expected_loss_per_term(self) -> float:
        return self.payouts_per_year * self.amount * self.term_days / 365

    @property
    def premium(self) -> int:
        """The premium per term that covers the expected loss with the stated load."""
        return int(round(self.expected_loss_per_term * (1 + self.load)))

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "readings": self.readings, "years": round(self.years, 4), "payouts": len(self.windows),
            "payouts_per_year": round(self.payouts_per_year, 4), "amount": self.amount,
            "expected_loss_per_term": round(self.expected_loss_per_term, 2), "load": self.load,
            "term_days": self.term_days, "premium_per_term": self.premium,
            "windows": [{"start_seq": w.start_seq, "end_seq": w.end_seq, "start_ts": w.start_ts, "end_ts": w.end_ts,
                         "period": w.period} for w in self.windows],
        }
        if self.unpaid_losses is not None and self.unmatched_windows is not None:
            out["basis_risk"] = {"payouts_without_loss": len(self.unmatched_windows),
                                 "losses_without_payout": len(self.unpaid_losses),
                                 "unpaid_loss_ts": list(self.unpaid_losses)}
        return out


def backtest(rows: Sequence[tuple[int, int]], trigger: TriggerParams, *, n: int, period_ms: int, amount: int,
             load: float = 0.0, term_days: int = 30, losses: Sequence[int] | None = None,
             tolerance_ms: int = 3_600_000) -> Backtest:
    """Replay (ts_ms, reading) rows through the agent's detector under a policy with this trigger,
    circuit size n and period; pure."""
    if len(rows) < n + 1:
        raise ValueError(f"need at least n+1 = {n + 1} readings, got {len(rows)}")
    trigger.validate(n)
    first, last = rows[0][0], rows[-1][0]
    anchor_ts = first - 1  # seq 0, the epoch's anchor frame, carries no reading
    # The ledger's period rule, from a policy with these terms (one place for it: Policy.period_of).
    terms = IssuePolicy(device_id=bytes(32), beneficiary=bytes(32), circuit_id=bytes(32), kind=trigger.kind,
                        threshold=trigger.T, count=trigger.K, lo=trigger.lo, hi=trigger.hi, gap_ms=trigger.G,
                        coverage=amount, amount=amount, premium=0, start_ms=anchor_ts, end_ms=last + 1,
                        period_ms=period_ms, claim_window_ms=(1 << 48) - 1 - (last + 1))
    policy = Policy(bytes(32), terms, anchor_ts, 0, locked=amount)
    detector = Detector(PolicyTerms(bytes(32), bytes(32), bytes(32), n, trigger, anchor_ts, last + 1,
                                    terms.claim_window_ms, policy.period_of), epoch=0)
    book = ChainBook(bytes(32), 0, window=4 * n)
    book.add(0, Known(anchor_ts, 0, 0, True))
    windows: list[Window] = []
    for seq, (ts, reading) in enumerate(rows, start=1):
        book.add(seq, Known(ts, 0, reading, True))  # history rows are taken as authentic and linked
        if seq % n == 0 or seq == len(rows):
            windows += detector.scan(book, ts)
    unpaid: tuple[int, ...] | None = None
    unmatched: tuple[Window, ...] | None = None
    if losses is not None:
        def near(w: Window, t: int) -> bool:
            return w.start_ts - tolerance_ms <= t <= w.end_ts + tolerance_ms

        unpaid = tuple(t for t in losses if not any(near(w, t) for w in windows))
        unmatched = tuple(w for w in windows if not any(near(w, t) for t in losses))
    return Backtest(len(rows), last - anchor_ts, tuple(windows), amount, load, term_days, unpaid, unmatched)


# --------------------------------------------------------------------------- input


def _rows(path: Path, columns: tuple[str, ...]) -> Iterator[tuple[int, list[int]]]:
    try:
        handle = path.open(newline="")
    except OSError as e:
        raise BacktestError(f"cannot read {path}: {e.strerror}") from None
    with handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        if header is None or tuple(h.strip() for h in header) != columns:
            raise BacktestError(f"{path}: the first line must be the header {','.join(columns)}")
        for i, row in enumerate(reader, start=2):
            if i > MAX_ROWS:
                raise BacktestError(f"{path}: more than {MAX_ROWS} rows")
            if not row:
                continue
            try:
                values = [int(v) for v in row]
            except ValueError:
                raise BacktestError(f"{path}:{i}: expected integers, got {row}") from None
            if len(values) != len(columns):
                raise BacktestError(f"{path}:{i}: expected {len(columns)} columns, got {len(values)}")
            yield i, values


def read_readings(path: Path) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for i, (ts, reading) in _rows(path, ("ts_ms", "reading")):
        if not 0 < ts < 1 << 48:
            raise BacktestError(f"{path}:{i}: ts_ms {ts} out of range")
        if not _INT32[0] <= reading <= _INT32[1]:
            raise BacktestError(f"{path}:{i}: reading {reading} is not a signed 32-bit integer")
        if out and ts <= out[-1][0]:
            raise BacktestError(f"{path}:{i}: ts_ms must strictly increase ({ts} after {out[-1][0]})")
        out.append((ts, reading))
    return out


def parse_trigger(spec: str) -> TriggerParams:
    """`kind=count_above,threshold=3000,count=4` (the devnet config's trigger keys)."""
    from cli.devnet.plan import trigger_params

    fields: dict[str, Any] = {}
    for part in spec.split(","):
        key, sep, value = part.partition("=")
        if not sep:
            raise click.BadParameter(f"{part!r}: expected key=value", param_hint="--trigger")
        key = key.strip()
        try:
            fields[key] = value.strip() if key == "kind" else int(value)
        except ValueError:
            raise click.BadParameter(f"{key}={value}: expected an integer", param_hint="--trigger") from None
    kinds = ("count_above", "run_above", "stuck", "outside_range", "dropout")
    if fields.get("kind") not in kinds:
        raise click.BadParameter(f"kind must be one of {kinds}", param_hint="--trigger")
    try:
        params: TriggerParams = trigger_params(fields)
    except KeyError as e:
        raise click.BadParameter(f"{fields['kind']} needs {e.args[0]}=...", param_hint="--trigger") from None
    return params


@click.group()
def underwrite() -> None:
    """Underwriting from history: how often a trigger would have paid, and for what premium."""


@underwrite.command("backtest")
@click.option("--readings", "readings_path", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="CSV with header ts_ms,reading.")
@click.option("--trigger", "trigger_spec", required=True,
              help="e.g. kind=count_above,threshold=3000,count=4 (keys as in configs/devnet.toml).")
@click.option("--n", "n", type=int, default=16, show_default=True, help="Readings per window (the circuit's n).")
@click.option("--period-ms", type=int, default=86_400_000, show_default=True, help="At most one payout per period.")
@click.option("--amount", type=int, default=1_000_000, show_default=True, help="Payout per incident.")
@click.option("--load", type=float, default=0.3, show_default=True, help="Premium load over the expected loss.")
@click.option("--term-days", type=int, default=30, show_default=True)
@click.option("--incidents", "incidents_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="CSV with header ts_ms: the real losses, to measure basis risk.")
@click.option("--tolerance-ms", type=int, default=3_600_000, show_default=True,
              help="A payout and a loss this close count as the same event.")
@json_option
def backtest_cmd(readings_path: Path, trigger_spec: str, n: int, period_ms: int, amount: int, load: float,
                 term_days: int, incidents_path: Path | None, tolerance_ms: int, as_json: bool) -> None:
    """Replay a history of readings through the agent's detector: payouts per year, windows, premium."""
    import json

    trigger = parse_trigger(trigger_spec)
    for name, value in (("--n", n - 1), ("--period-ms", period_ms), ("--amount", amount), ("--term-days", term_days)):
        if value < 1:
            raise click.BadParameter("must be positive (--n at least 2)", param_hint=name)
    if load < 0:
        raise click.BadParameter("must be >= 0", param_hint="--load")
    rows = read_readings(readings_path)
    losses = [v[0] for _, v in _rows(incidents_path, ("ts_ms",))] if incidents_path is not None else None
    try:
        result = backtest(rows, trigger, n=n, period_ms=period_ms, amount=amount, load=load, term_days=term_days,
                          losses=losses, tolerance_ms=tolerance_ms)
    except FaultproofError as e:
        raise BacktestError(f"the trigger is not valid for n={n}: {e.message} (fix --trigger or --n)") from None
    except ValueError as e:
        raise BacktestError(f"{readings_path}: {e}") from None
    s = result.summary()
    if as_json:
        click.echo(json.dumps(s, indent=1))
        return
    click.echo(f"{s['readings']} readings over {s['years']:g} years; trigger {trigger_spec}, n={n}, "
               f"at most one payout per {period_ms} ms")
    click.echo(f"would have paid {s['payouts']} times: {s['payouts_per_year']:g} per year "
               f"x {amount:,} = expected loss {s['expected_loss_per_term']:,.0f} per {term_days}-day term")
    click.echo(f"premium per term with load {load:g}: {s['premium_per_term']:,}")
    for w in s["windows"][:20]:
        click.echo(f"  window seq {w['start_seq']}..{w['end_seq']}  ts {w['start_ts']}..{w['end_ts']}  "
                   f"period {w['period']}")
    if len(s["windows"]) > 20:
        click.echo(f"  ... {len(s['windows']) - 20} more (--json for all)")
    if "basis_risk" in s:
        b = s["basis_risk"]
        click.echo(f"basis risk: {b['payouts_without_loss']} payout(s) with no loss within {tolerance_ms} ms, "
                   f"{b['losses_without_payout']} loss(es) no payout covered")
    else:
        click.echo("basis risk: unknown without a record of real losses (--incidents FILE)")
