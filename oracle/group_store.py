"""The oracle's durable record of corroborated claims (DESIGN §14, G1-G5): parts it verified,
group bodies it signed, votes it counted, groups the ledger paid. Its own SQLite file beside the
claims store (`group.sqlite3`, WAL, synchronous=FULL), so that a kill -9 loses nothing: a
restarted oracle never signs a second, different body for a group it signed (G4), and still holds
the parts and the tally it had.

A signed body is committed BEFORE its vote leaves the process (the caller's order). This file
decides nothing and must never hold a rule; it stores bytes and gives them back.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from faultproof.messages import GroupPayoutBody, GroupVote, SignedClaim
from faultproof.schema import Migration, migrate

SCHEMA = """
CREATE TABLE IF NOT EXISTS parts (
    policy_id BLOB NOT NULL,
    part_key  BLOB NOT NULL PRIMARY KEY,
    signed    BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS signed (
    claim_id BLOB NOT NULL,
    epoch    INTEGER NOT NULL,
    body     BLOB NOT NULL,
    PRIMARY KEY (claim_id, epoch)
);
CREATE TABLE IF NOT EXISTS votes (
    body_hash BLOB NOT NULL,
    oracle_id BLOB NOT NULL,
    vote      BLOB NOT NULL,
    PRIMARY KEY (body_hash, oracle_id)
);
CREATE TABLE IF NOT EXISTS paid (claim_id BLOB NOT NULL PRIMARY KEY);
"""
MIGRATIONS: list[Migration] = [SCHEMA]


class GroupStore:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        # FULL: a group vote we sent must survive a power cut, or a restart could sign another body.
        self.db.execute("PRAGMA synchronous=FULL")
        migrate(self.db, "oracle-group", path, MIGRATIONS)

    def close(self) -> None:
        self.db.close()

    def add_part(self, policy_id: bytes, key: bytes, signed: SignedClaim) -> None:
        self.db.execute("INSERT OR IGNORE INTO parts VALUES (?, ?, ?)", (policy_id, key, signed.encode()))

    def save_signed(self, body: GroupPayoutBody) -> None:
        self.db.execute("INSERT OR IGNORE INTO signed VALUES (?, ?, ?)",
                        (body.claim_id, body.oracle_set_epoch, body.encode()))

    def add_vote(self, body_hash: bytes, vote: GroupVote) -> None:
        self.db.execute("INSERT OR IGNORE INTO votes VALUES (?, ?, ?)", (body_hash, vote.oracle_id, vote.encode()))

    def mark_paid(self, claim_id: bytes) -> None:
        self.db.execute("INSERT OR IGNORE INTO paid VALUES (?)", (claim_id,))

    def parts(self) -> list[SignedClaim]:
        return [SignedClaim.decode(raw) for raw, in self.db.execute("SELECT signed FROM parts ORDER BY rowid")]

    def signed(self) -> list[GroupPayoutBody]:
        return [GroupPayoutBody.decode(raw) for raw, in self.db.execute("SELECT body FROM signed ORDER BY rowid")]

    def votes(self) -> list[GroupVote]:
        return [GroupVote.decode(raw) for raw, in self.db.execute("SELECT vote FROM votes ORDER BY rowid")]

    def paid(self) -> set[bytes]:
        return {cid for cid, in self.db.execute("SELECT claim_id FROM paid")}
