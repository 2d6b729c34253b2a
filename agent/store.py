"""The agent's durable store: frames, claims, rejection counters, the suspension reports owed and
the quarantines in force, in one SQLite file (WAL).

One writer: the ingest engine's thread owns the only write connection (`Store`), so writes never
contend for SQLite's lock, and many frames share one transaction (group commit: ~4 ms of fsync is
paid per batch, not per frame). Readers (the HTTP API, the prover loading a window) open their own
read-only connections (`Store.reader`), which WAL lets run beside the writer.

Durability: `synchronous=FULL` by default, so a frame is on disk when `commit` returns; the agent
acknowledges a frame (MQTT PUBACK, HTTP response) only after that. Retention deletes frames older
than the configured age, except the frames of claims that are not final yet.

Claims are written in the same transaction as the frames that completed their window, so a
detected incident is never lost between detection and commit, nor detected twice after a restart.

This file must never decide whether a frame or a claim is valid; it stores what it is given.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent.anomaly import Quarantine, Signal
from faultproof.encoding import pack, unpack
from faultproof.schema import Migration, migrate

SCHEMA = """
CREATE TABLE IF NOT EXISTS devices (
    dev INTEGER PRIMARY KEY,
    device_id BLOB NOT NULL UNIQUE
);
CREATE TABLE IF NOT EXISTS frames (
    dev INTEGER NOT NULL,
    epoch INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    ts INTEGER NOT NULL,
    reading INTEGER NOT NULL,
    chain BLOB NOT NULL,
    sig BLOB NOT NULL,
    linked INTEGER NOT NULL,
    PRIMARY KEY (dev, epoch, seq)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS frame_alts (
    dev INTEGER NOT NULL,
    epoch INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    reading INTEGER NOT NULL,
    PRIMARY KEY (dev, epoch, seq, reading)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS claims (
    claim_id BLOB PRIMARY KEY,
    policy_id BLOB NOT NULL,
    device_id BLOB NOT NULL,
    epoch INTEGER NOT NULL,
    start_seq INTEGER NOT NULL,
    end_seq INTEGER NOT NULL,
    start_ts INTEGER NOT NULL,
    end_ts INTEGER NOT NULL,
    period INTEGER NOT NULL,
    circuit_id BLOB NOT NULL,
    status TEXT NOT NULL,
    reason TEXT,
    signed BLOB,
    detected_ms INTEGER NOT NULL,
    proved_ms INTEGER,
    prove_seconds REAL,
    submitted_ms INTEGER,
    decided_ms INTEGER,
    attempts INTEGER NOT NULL DEFAULT 0,
    paid INTEGER
);
CREATE INDEX IF NOT EXISTS claims_policy ON claims(policy_id);
CREATE TABLE IF NOT EXISTS counters (
    name TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
"""

CLAIM_COLUMNS = (
    "claim_id", "policy_id", "device_id", "epoch", "start_seq", "end_seq", "start_ts", "end_ts", "period",
    "circuit_id", "status", "reason", "signed", "detected_ms", "proved_ms", "prove_seconds", "submitted_ms",
    "decided_ms", "attempts", "paid",
)
FINAL_STATUSES = ("paid", "rejected", "failed")


# faultproof/schema.py: migration i brings the file from version i-1 to i; append, never edit.
# 2: the suspension reports the agent owes its oracles (DESIGN §15): written in the batch that
# quarantined the device, so a kill -9 cannot lose one; `sent_ms` once an oracle took it.
SUSPENSION_REPORTS = """
CREATE TABLE IF NOT EXISTS suspension_reports (
    device_id BLOB NOT NULL,
    since_ms INTEGER NOT NULL,
    frames BLOB NOT NULL,
    created_ms INTEGER NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    sent_ms INTEGER,
    answer TEXT,
    PRIMARY KEY (device_id, since_ms)
);
"""
# 3: the quarantines (DESIGN §15), written in the batch that started one and deleted in the batch
# that released it: a restart (kill -9 included) goes on holding a quarantined device's claims.
QUARANTINES = """
CREATE TABLE IF NOT EXISTS quarantines (
    device_id BLOB PRIMARY KEY,
    since_ms INTEGER NOT NULL,
    signal TEXT NOT NULL,
    count INTEGER NOT NULL,
    evidence_hash BLOB NOT NULL
);
"""
MIGRATIONS: list[Migration] = [SCHEMA, SUSPENSION_REPORTS, QUARANTINES]


@dataclass(frozen=True)
class SuspensionReportRow:
    """A report owed to the oracles: the device, when it was quarantined, the forged frames."""

    device_id: bytes
    since_ms: int
    frames: tuple[bytes, ...]
    attempts: int


@dataclass(frozen=True)
class FrameRow:
    """A stored frame as the prover needs it."""

    seq: int
    ts: int
    reading: int
    chain: bytes
    signature: bytes
    linked: bool


def _connect(path: Path, *, readonly: bool = False, synchronous: str = "FULL") -> sqlite3.Connection:
    if readonly:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30, check_same_thread=False)
    else:
        conn = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(f"PRAGMA synchronous={synchronous}")
    conn.execute("PRAGMA busy_timeout=30000")
    return conn


class Store:
    """The write side. Every method runs on the thread that owns it (the ingest engine)."""

    def __init__(self, path: str | Path, *, synchronous: str = "FULL") -> None:
        if synchronous.upper() not in ("FULL", "NORMAL", "EXTRA"):
            raise ValueError("store synchronous must be FULL, EXTRA or NORMAL")
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.conn = _connect(self.path, synchronous=synchronous.upper())
        migrate(self.conn, "agent", self.path, MIGRATIONS)
        self._dev_ids: dict[bytes, int] = {
            bytes(d): i for i, d in self.conn.execute("SELECT dev, device_id FROM devices")
        }
        self._in_tx = False
        self._lock = threading.Lock()  # guards only against accidental cross-thread use

    def close(self) -> None:
        self.conn.close()

    # -- transactions --
    def begin(self) -> None:
        self.conn.execute("BEGIN IMMEDIATE")
        self._in_tx = True

    def commit(self) -> None:
        self.conn.execute("COMMIT")
        self._in_tx = False

    def rollback(self) -> None:
        if self._in_tx:
            self.conn.execute("ROLLBACK")
            self._in_tx = False

    # -- frames --
    def dev_id(self, device_id: bytes) -> int:
        """The small integer a device's frames are keyed by (created inside the open transaction)."""
        dev = self._dev_ids.get(device_id)
        if dev is None:
            cur = self.conn.execute("INSERT INTO devices (device_id) VALUES (?)", (device_id,))
            dev = int(cur.lastrowid or 0)
            self._dev_ids[device_id] = dev
        return dev

    def insert_frames(self, rows: Sequence[tuple[int, int, int, int, int, bytes, bytes, int]]) -> None:
        """rows: (dev, epoch, seq, ts, reading, chain, sig, linked)."""
        self.conn.executemany(
            "INSERT INTO frames (dev, epoch, seq, ts, reading, chain, sig, linked) VALUES (?,?,?,?,?,?,?,?)", rows)

    def mark_linked(self, rows: Iterable[tuple[int, int, int]]) -> None:
        """rows: (dev, epoch, seq) whose reading became bound by a late predecessor."""
        self.conn.executemany("UPDATE frames SET linked = 1 WHERE dev = ? AND epoch = ? AND seq = ?", rows)

    def replace_readings(self, rows: Iterable[tuple[int, int, int, int]]) -> None:
        """rows: (dev, epoch, seq, reading): a provisional frame's reading that linked replaces the
        stored one; its alternatives are dropped."""
        rows = list(rows)
        self.conn.executemany("UPDATE frames SET reading = ?, linked = 1 WHERE dev = ? AND epoch = ? AND seq = ?",
                              [(r, d, e, s) for d, e, s, r in rows])
        self.drop_alternatives((d, e, s) for d, e, s, _ in rows)

    def insert_alternatives(self, rows: Iterable[tuple[int, int, int, int]]) -> None:
        """rows: (dev, epoch, seq, reading): another reading received for a provisional frame."""
        self.conn.executemany("INSERT OR IGNORE INTO frame_alts (dev, epoch, seq, reading) VALUES (?,?,?,?)", rows)

    def drop_alternatives(self, rows: Iterable[tuple[int, int, int]]) -> None:
        self.conn.executemany("DELETE FROM frame_alts WHERE dev = ? AND epoch = ? AND seq = ?", rows)

    def alternatives(self, device_id: bytes, epoch: int, from_seq: int) -> list[tuple[int, int]]:
        """(seq, reading) of the provisional frames' alternatives at or above `from_seq`."""
        dev = self._dev_ids.get(device_id)
        if dev is None:
            return []
        return [(s, r) for s, r in self.conn.execute(
            "SELECT seq, reading FROM frame_alts WHERE dev=? AND epoch=? AND seq >= ?", (dev, epoch, from_seq))]

    def has_frame(self, device_id: bytes, epoch: int, seq: int) -> bool:
        dev = self._dev_ids.get(device_id)
        if dev is None:
            return False
        return self.conn.execute("SELECT 1 FROM frames WHERE dev=? AND epoch=? AND seq=?",
                                 (dev, epoch, seq)).fetchone() is not None

    def recent_frames(self, device_id: bytes, epoch: int, limit: int) -> list[tuple[int, int, bytes, int, bool]]:
        """The newest `limit` frames of a device's epoch: (seq, ts, chain, reading, linked)."""
        dev = self._dev_ids.get(device_id)
        if dev is None:
            return []
        rows = self.conn.execute(
            "SELECT seq, ts, chain, reading, linked FROM frames WHERE dev=? AND epoch=? ORDER BY seq DESC LIMIT ?",
            (dev, epoch, limit)).fetchall()
        return [(s, t, bytes(c), r, bool(linked)) for s, t, c, r, linked in rows]

    def newest_ts(self) -> int | None:
        """The newest stored frame's time (retention counts from it)."""
        row = self.conn.execute("SELECT MAX(ts) FROM frames").fetchone()
        return None if row is None or row[0] is None else int(row[0])

    # -- claims --
    def insert_claim(self, values: dict[str, Any]) -> None:
        cols = [c for c in CLAIM_COLUMNS if c in values]
        self.conn.execute(
            f"INSERT OR IGNORE INTO claims ({', '.join(cols)}) VALUES ({', '.join('?' for _ in cols)})",
            [values[c] for c in cols])

    def update_claim(self, claim_id: bytes, values: dict[str, Any]) -> None:
        cols = [c for c in values if c in CLAIM_COLUMNS and c != "claim_id"]
        if cols:
            self.conn.execute(f"UPDATE claims SET {', '.join(f'{c} = ?' for c in cols)} WHERE claim_id = ?",
                              [values[c] for c in cols] + [claim_id])

    def claims(self) -> list[dict[str, Any]]:
        cur = self.conn.execute(f"SELECT {', '.join(CLAIM_COLUMNS)} FROM claims ORDER BY detected_ms")
        return [dict(zip(CLAIM_COLUMNS, row, strict=True)) for row in cur]

    # -- suspension reports (DESIGN §15) --
    def insert_suspension_report(self, device_id: bytes, since_ms: int, frames: Sequence[bytes], now_ms: int) -> None:
        self.conn.execute("INSERT OR IGNORE INTO suspension_reports (device_id, since_ms, frames, created_ms) "
                          "VALUES (?, ?, ?, ?)", (device_id, since_ms, pack(list(frames)), now_ms))

    def suspension_report_attempt(self, device_id: bytes, since_ms: int, *, sent_ms: int | None,
                                  answer: str) -> None:
        """One attempt to send a report: `sent_ms` set once an oracle took it (or it is settled)."""
        self.conn.execute("UPDATE suspension_reports SET attempts = attempts + 1, sent_ms = ?, answer = ? "
                          "WHERE device_id = ? AND since_ms = ?", (sent_ms, answer, device_id, since_ms))

    def suspension_reports(self) -> list[dict[str, Any]]:
        cur = self.conn.execute("SELECT device_id, since_ms, attempts, sent_ms, answer FROM suspension_reports "
                                "ORDER BY created_ms")
        return [{"device_id": bytes(d).hex(), "since_ms": s, "attempts": a, "sent_ms": t, "answer": ans}
                for d, s, a, t, ans in cur]

    # -- quarantines (DESIGN §15) --
    def save_quarantines(self, quarantines: Iterable[Quarantine]) -> None:
        self.conn.executemany(
            "INSERT OR REPLACE INTO quarantines (device_id, since_ms, signal, count, evidence_hash) "
            "VALUES (?, ?, ?, ?, ?)",
            [(q.device_id, q.since_ms, q.signal.value, q.count, q.evidence_hash) for q in quarantines])

    def delete_quarantine(self, device_id: bytes) -> None:
        self.conn.execute("DELETE FROM quarantines WHERE device_id = ?", (device_id,))

    def quarantines(self) -> list[Quarantine]:
        cur = self.conn.execute("SELECT device_id, since_ms, signal, count, evidence_hash FROM quarantines "
                                "ORDER BY since_ms, device_id")
        return [Quarantine(bytes(d), s, Signal(sig), c, bytes(h)) for d, s, sig, c, h in cur]

    # -- counters --
    def add_counters(self, deltas: dict[str, int]) -> None:
        self.conn.executemany(
            "INSERT INTO counters (name, value) VALUES (?, ?) "
            "ON CONFLICT(name) DO UPDATE SET value = value + excluded.value", list(deltas.items()))

    def counters(self) -> dict[str, int]:
        return {n: v for n, v in self.conn.execute("SELECT name, value FROM counters")}

    # -- retention --
    def delete_older_than(self, cutoff_ts: int, keep: Sequence[tuple[bytes, int, int, int]] = ()) -> int:
        """Delete frames with ts < cutoff, except the windows in `keep` (device_id, epoch, lo, hi)."""
        self.conn.execute("CREATE TEMP TABLE IF NOT EXISTS keep (dev INTEGER, epoch INTEGER, lo INTEGER, hi INTEGER)")
        self.conn.execute("DELETE FROM keep")
        self.conn.executemany("INSERT INTO keep VALUES (?,?,?,?)",
                              [(self._dev_ids[d], e, lo, hi) for d, e, lo, hi in keep if d in self._dev_ids])
        cur = self.conn.execute(
            "DELETE FROM frames WHERE ts < ? AND NOT EXISTS (SELECT 1 FROM keep k WHERE k.dev = frames.dev "
            "AND k.epoch = frames.epoch AND frames.seq BETWEEN k.lo AND k.hi)", (cutoff_ts,))
        deleted = cur.rowcount
        self.conn.execute("DELETE FROM frame_alts WHERE NOT EXISTS (SELECT 1 FROM frames f WHERE f.dev = "
                          "frame_alts.dev AND f.epoch = frame_alts.epoch AND f.seq = frame_alts.seq)")
        return deleted

    # -- readers --
    @staticmethod
    def reader(path: str | Path) -> sqlite3.Connection:
        return _connect(Path(path), readonly=True)


def load_window(path: str | Path, device_id: bytes, epoch: int, lo: int, hi: int) -> list[FrameRow]:
    """Frames lo..hi of a device's epoch, in seq order (a read-only connection of its own)."""
    conn = Store.reader(path)
    try:
        rows = conn.execute(
            "SELECT f.seq, f.ts, f.reading, f.chain, f.sig, f.linked FROM frames f JOIN devices d ON d.dev = f.dev "
            "WHERE d.device_id = ? AND f.epoch = ? AND f.seq BETWEEN ? AND ? ORDER BY f.seq",
            (device_id, epoch, lo, hi)).fetchall()
    finally:
        conn.close()
    return [FrameRow(s, t, r, bytes(c), bytes(sig), bool(linked)) for s, t, r, c, sig, linked in rows]


def stored_seqs(path: str | Path, device_id: bytes, epoch: int) -> list[int]:
    conn = Store.reader(path)
    try:
        return [s for (s,) in conn.execute(
            "SELECT f.seq FROM frames f JOIN devices d ON d.dev = f.dev WHERE d.device_id = ? AND f.epoch = ? "
            "ORDER BY f.seq", (device_id, epoch))]
    finally:
        conn.close()


def pending_suspension_reports(path: str | Path) -> list[SuspensionReportRow]:
    """The suspension reports no oracle has taken yet, oldest first (a read-only connection)."""
    conn = Store.reader(path)
    try:
        rows = conn.execute("SELECT device_id, since_ms, frames, attempts FROM suspension_reports "
                            "WHERE sent_ms IS NULL ORDER BY created_ms").fetchall()
    finally:
        conn.close()
    out = []
    for d, since, frames, attempts in rows:
        items = unpack(bytes(frames))
        assert isinstance(items, list)
        out.append(SuspensionReportRow(bytes(d), int(since), tuple(bytes(f) for f in items), int(attempts)))  # type: ignore[arg-type]
    return out
