"""Policy TOML files (`configs/policies/*.toml`) -> IssuePolicy arguments.

Readings (threshold, lo, hi) are written as signed readings and encoded here (enc(r) = r + 2^31,
docs/design.md §2); parameters a trigger kind does not use are left 0, as the ledger requires. Times are
TOML datetimes, *_ms integers, or relative: `start = "now"` (the caller's clock, given as a value, plus
NOW_LEAD_MS) and `end = "+365d"` (after the start), so that example files never go stale. Pure: the file's text in, a message out; validity against the ledger
(circuit n, capital) is the ledger's business.
"""

from __future__ import annotations

import datetime as dt
import tomllib
from pathlib import Path
from typing import Any

from faultproof.chain import enc
from faultproof.errors import FaultproofError
from faultproof.messages import IssuePolicy, TriggerKind

_USED = {
    TriggerKind.COUNT_ABOVE: {"threshold", "count"},
    TriggerKind.RUN_ABOVE: {"threshold", "count"},
    TriggerKind.STUCK: {"count"},
    TriggerKind.OUTSIDE_RANGE: {"lo", "hi", "count"},
    TriggerKind.DROPOUT: {"gap_ms"},
}
_SECTIONS = {
    "": {"device_id", "beneficiary", "circuit_id", "trigger", "money", "term"},
    "trigger": {"kind", "threshold", "count", "lo", "hi", "gap_ms"},
    "money": {"coverage", "amount", "premium"},
    "term": {"start", "end", "start_ms", "end_ms", "period_ms", "claim_window_ms"},
}


class PolicyFileError(Exception):
    pass


# "now" in a policy file means this long after the command runs, so that the signed policy reaches
# the ledger before its term starts (the ledger refuses a term that starts in its past).
NOW_LEAD_MS = 10_000
_UNITS_MS = {"s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}


def _duration_ms(value: str, name: str) -> int:
    number, unit = value[:-1], value[-1:]
    if unit not in _UNITS_MS or not number.isdigit():
        raise PolicyFileError(f"{name}: expected a duration like \"+365d\", \"12h\", \"30m\" or \"90s\", got {value!r}")
    return int(number) * _UNITS_MS[unit]


def _ms(value: Any, name: str, *, now_ms: int | None = None, start_ms: int | None = None) -> int:
    if isinstance(value, str):
        if value == "now":
            if now_ms is None:
                raise PolicyFileError(f"{name}: \"now\" needs the current time (the admin command gives it)")
            return now_ms + NOW_LEAD_MS
        if value.startswith("+") and start_ms is not None:
            return start_ms + _duration_ms(value[1:], name)
        raise PolicyFileError(f"{name}: expected a datetime, milliseconds, \"now\" (start) or \"+365d\" (end, "
                              "relative to the start)")
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            raise PolicyFileError(f"{name}: give a timezone (e.g. 2026-01-01T00:00:00Z)")
        return int(value.timestamp() * 1000)
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    raise PolicyFileError(f"{name}: expected a datetime or milliseconds")


def _hex32(value: Any, name: str) -> bytes:
    if not isinstance(value, str) or len(value) != 64:
        raise PolicyFileError(f"{name}: expected 64 hex characters")
    try:
        return bytes.fromhex(value)
    except ValueError:
        raise PolicyFileError(f"{name}: not hex") from None


def _int(table: dict[str, Any], key: str, default: int | None = None) -> int:
    if key not in table:
        if default is None:
            raise PolicyFileError(f"{key} is required")
        return default
    value = table[key]
    if not isinstance(value, int) or isinstance(value, bool):
        raise PolicyFileError(f"{key}: expected an integer")
    return value


def parse_policy(text: str, overrides: dict[str, bytes] | None = None, *, now_ms: int | None = None) -> IssuePolicy:
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise PolicyFileError(f"not valid TOML: {e}") from None
    for section, allowed in _SECTIONS.items():
        table = doc if section == "" else doc.get(section, {})
        if not isinstance(table, dict):
            raise PolicyFileError(f"[{section}] must be a table")
        unknown = set(table) - allowed
        if unknown:
            raise PolicyFileError(f"[{section or 'top'}] unknown key(s) {sorted(unknown)}")
    overrides = overrides or {}
    ids = {k: overrides.get(k) or _hex32(doc.get(k), k) for k in ("device_id", "beneficiary", "circuit_id")}
    trig, money, term = doc.get("trigger", {}), doc.get("money", {}), doc.get("term", {})
    kind_name = trig.get("kind")
    try:
        kind = TriggerKind[str(kind_name).upper()] if isinstance(kind_name, str) else TriggerKind(kind_name)
    except (KeyError, ValueError):
        raise PolicyFileError(f"trigger.kind: one of {[k.name.lower() for k in TriggerKind]}") from None
    used = _USED[kind]
    extra = sorted(k for k in ("threshold", "count", "lo", "hi", "gap_ms") if k in trig and k not in used)
    if extra:
        raise PolicyFileError(f"trigger {kind.name.lower()} does not use {extra}")
    try:
        threshold = enc(_int(trig, "threshold")) if "threshold" in used else 0
        lo = enc(_int(trig, "lo")) if "lo" in used else 0
        hi = enc(_int(trig, "hi")) if "hi" in used else 0
    except FaultproofError as e:
        raise PolicyFileError(f"trigger: {e.message}") from None
    start = _ms(term["start"], "term.start", now_ms=now_ms) if "start" in term else _int(term, "start_ms")
    end = _ms(term["end"], "term.end", start_ms=start) if "end" in term else _int(term, "end_ms")
    try:
        return IssuePolicy(device_id=ids["device_id"], beneficiary=ids["beneficiary"], circuit_id=ids["circuit_id"],
                           kind=int(kind), threshold=threshold, count=_int(trig, "count") if "count" in used else 0,
                           lo=lo, hi=hi, gap_ms=_int(trig, "gap_ms") if "gap_ms" in used else 0,
                           coverage=_int(money, "coverage"), amount=_int(money, "amount"),
                           premium=_int(money, "premium", 0), start_ms=start, end_ms=end,
                           period_ms=_int(term, "period_ms"), claim_window_ms=_int(term, "claim_window_ms"))
    except FaultproofError as e:
        raise PolicyFileError(e.message) from None


def load_policy(path: str | Path, overrides: dict[str, bytes] | None = None, *,
                now_ms: int | None = None) -> IssuePolicy:
    try:
        return parse_policy(Path(path).read_text(), overrides, now_ms=now_ms)
    except PolicyFileError as e:
        raise PolicyFileError(f"{path}: {e}") from None
