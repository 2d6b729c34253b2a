"""The oracle node's durable state: one SQLite file (WAL, synchronous=FULL).

Owns: claims that passed the content and proof checks (never one that failed them: DESIGN §4.2),
every kept vote (our own and our peers'), quorum certificates, equivocation evidence, and the
ledger's signed heads we have seen. A restarted node rebuilds its quorum counter from `votes`,
re-sends its own votes and resumes its pending claims from `claims`.

Invariant this file enforces for the node: at most one own vote per claim and oracle-set epoch (a
UNIQUE index), so a restarted or confused node cannot sign twice in one epoch; that the verdict is
the same in every epoch is the claim machine's rule V2 (oracle/claim.py), checked again here.

Every write is one transaction; callers group related writes (a claim and our vote on it) with
`transaction()`. It must never decide anything (that is the pipeline's and the counter's job) and
never talk to the network.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from faultproof.messages import (
    Approve,
    QuorumCertificate,
    Reject,
    SignedClaim,
    SignedHead,
    Vote,
    decode_any,
)
from faultproof.schema import Migration, migrate
from oracle.claim import ClaimStatus

SCHEMA = """
CREATE TABLE IF NOT EXISTS claims (
    claim_id     BLOB PRIMARY KEY,
    policy_id    BLOB NOT NULL,
    signed_claim BLOB NOT NULL,
    status       TEXT NOT NULL,         -- pending | approved | rejected | paid
    reason       TEXT,                  -- rejection reason (ledger-state code)
    received_ms  INTEGER NOT NULL,
    updated_ms   INTEGER NOT NULL,
    source       TEXT NOT NULL,         -- http | gossip | catchup
    receipt      BLOB                   -- the ledger's Receipt once paid
);
CREATE INDEX IF NOT EXISTS claims_by_policy ON claims(policy_id, status);
CREATE INDEX IF NOT EXISTS claims_by_status ON claims(status);

CREATE TABLE IF NOT EXISTS votes (
    vote        BLOB PRIMARY KEY,       -- the encoded, signed vote
    claim_id    BLOB NOT NULL,
    oracle_id   BLOB NOT NULL,
    kind        TEXT NOT NULL,          -- approve | reject
    own         INTEGER NOT NULL,
    received_ms INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS votes_by_claim ON votes(claim_id);
CREATE UNIQUE INDEX IF NOT EXISTS one_own_vote_per_claim ON votes(claim_id) WHERE own = 1;

CREATE TABLE IF NOT EXISTS qcs (
    claim_id BLOB PRIMARY KEY,
    qc       BLOB NOT NULL,
    made_ms  INTEGER NOT NULL
);

CREATE TABLE IF NOT EXISTS evidence (
    claim_id    BLOB NOT NULL,
    oracle_id   BLOB NOT NULL,
    vote        BLOB NOT NULL,
    recorded_ms INTEGER NOT NULL,
    PRIMARY KEY (claim_id, oracle_id, vote)
);

CREATE TABLE IF NOT EXISTS heads (
    height INTEGER PRIMARY KEY,
    head   BLOB NOT NULL
);
"""

CLAIM_STATUSES = tuple(s.value for s in ClaimStatus)

# One own vote per claim per epoch (DESIGN §10, item 13.1). Databases made before epochs were
# recorded get the column (filled from the vote bytes) and lose the old one-per-claim index.
_MIGRATE = (
    "DROP INDEX IF EXISTS one_own_vote_per_claim",
    "CREATE UNIQUE INDEX IF NOT EXISTS one_own_vote_per_claim_epoch ON votes(claim_id, epoch) WHERE own = 1",
)


def now_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass(frozen=True)
class ClaimRecord:
    claim_id: bytes
    policy_id: bytes
    signed_claim: SignedClaim
    status: str
    reason: str | None
    received_ms: int
    updated_ms: int
    source: str
    receipt: bytes | None


def _votes_per_epoch(db: sqlite3.Connection) -> None:
    """Migration 2: one own vote per claim per epoch (DESIGN §10, item 13.1). The column is filled
    from the signed vote bytes; the old one-per-claim index goes."""
    cols = {row[1] for row in db.execute("PRAGMA table_info(votes)")}
    if "epoch" not in cols:
        db.execute("ALTER TABLE votes ADD COLUMN epoch INTEGER NOT NULL DEFAULT 0")
        for raw, in db.execute("SELECT vote FROM votes").fetchall():
            db.execute("UPDATE votes SET epoch=? WHERE vote=?", (_vote(raw).body.oracle_set_epoch, raw))
    for stmt in _MIGRATE:
        db.execute(stmt)


# faultproof/schema.py: migration i brings the file from version i-1 to i; append, never edit.
MIGRATIONS: list[Migration] = [SCHEMA, _votes_per_epoch]


class Store:
    def __init__(self, path: Path | str) -> None:
        path = Path(path)
        if str(path) != ":memory:":
            path.parent.mkdir(parents=True, exist_ok=True)
        # isolation_level=None: we issue BEGIN/COMMIT ourselves so grouping is explicit.
        self.db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        # FULL: a vote we sent must survive a power cut, or a restart could sign a different one.
        self.db.execute("PRAGMA synchronous=FULL")
        self.db.execute("PRAGMA foreign_keys=ON")
        migrate(self.db, "oracle", path, MIGRATIONS)
        self._depth = 0

    def close(self) -> None:
        self.db.close()

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Group writes into one commit (one fsync). Nested use joins the outer transaction."""
        if self._depth:
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
            return
        self.db.execute("BEGIN IMMEDIATE")
        self._depth = 1
        try:
            yield
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        else:
            self.db.execute("COMMIT")
        finally:
            self._depth = 0

    # ------------------------------------------------------------------ claims

    def insert_claim(self, claim: SignedClaim, status: ClaimStatus, source: str, reason: str | None = None) -> bool:
        """Record a claim that passed content and proof checks. False if its claim_id is known."""
        assert status in CLAIM_STATUSES
        t = now_ms()
        with self.transaction():
            cur = self.db.execute(
                "INSERT OR IGNORE INTO claims(claim_id, policy_id, signed_claim, status, reason, received_ms,"
                " updated_ms, source) VALUES (?,?,?,?,?,?,?,?)",
                (claim.claim.claim_id, claim.claim.policy_id, claim.encode(), status, reason, t, t, source),
            )
        return cur.rowcount == 1

    def set_status(self, claim_id: bytes, status: ClaimStatus, reason: str | None = None, receipt: bytes | None = None) -> None:
        assert status in CLAIM_STATUSES
        with self.transaction():
            self.db.execute(
                "UPDATE claims SET status=?, reason=COALESCE(?, reason), receipt=COALESCE(?, receipt),"
                " updated_ms=? WHERE claim_id=?",
                (status, reason, receipt, now_ms(), claim_id),
            )

    def claim(self, claim_id: bytes) -> ClaimRecord | None:
        row = self.db.execute(
            "SELECT claim_id, policy_id, signed_claim, status, reason, received_ms, updated_ms, source, receipt"
            " FROM claims WHERE claim_id=?",
            (claim_id,),
        ).fetchone()
        return _claim_row(row) if row else None

    def claims(self, policy_id: bytes | None = None, status: str | None = None, limit: int = 1000) -> list[ClaimRecord]:
        q = ("SELECT claim_id, policy_id, signed_claim, status, reason, received_ms, updated_ms, source, receipt"
             " FROM claims WHERE 1=1")
        args: list[object] = []
        if policy_id is not None:
            q += " AND policy_id=?"
            args.append(policy_id)
        if status is not None:
            q += " AND status=?"
            args.append(status)
        q += " ORDER BY received_ms LIMIT ?"
        args.append(limit)
        return [_claim_row(r) for r in self.db.execute(q, args).fetchall()]

    def count_by_status(self) -> dict[str, int]:
        out = dict.fromkeys(CLAIM_STATUSES, 0)
        for status, n in self.db.execute("SELECT status, COUNT(*) FROM claims GROUP BY status"):
            out[status] = n
        return out

    # ------------------------------------------------------------------ votes

    def add_votes(self, votes: Sequence[tuple[Vote, bool]]) -> None:
        """Persist kept votes (ours flagged). Idempotent on the vote bytes."""
        if not votes:
            return
        t = now_ms()
        with self.transaction():
            self.db.executemany(
                "INSERT OR IGNORE INTO votes(vote, claim_id, oracle_id, kind, own, received_ms, epoch)"
                " VALUES (?,?,?,?,?,?,?)",
                [(v.encode(), v.claim_id, v.oracle_id, "approve" if isinstance(v, Approve) else "reject",
                  int(own), t, v.body.oracle_set_epoch) for v, own in votes],
            )

    def own_vote(self, claim_id: bytes) -> Vote | None:
        """Our latest vote on the claim (the newest epoch we signed in)."""
        row = self.db.execute("SELECT vote FROM votes WHERE claim_id=? AND own=1 ORDER BY epoch DESC LIMIT 1",
                              (claim_id,)).fetchone()
        return _vote(row[0]) if row else None

    def own_votes(self, claim_ids: Sequence[bytes] | None = None) -> list[Vote]:
        if claim_ids is None:
            rows = self.db.execute("SELECT vote FROM votes WHERE own=1 ORDER BY received_ms").fetchall()
        else:
            rows = []
            for cid in claim_ids:
                rows += self.db.execute("SELECT vote FROM votes WHERE own=1 AND claim_id=?", (cid,)).fetchall()
        return [_vote(r[0]) for r in rows]

    def votes(self, claim_id: bytes | None = None) -> list[Vote]:
        if claim_id is None:
            rows = self.db.execute("SELECT vote FROM votes ORDER BY rowid").fetchall()
        else:
            rows = self.db.execute("SELECT vote FROM votes WHERE claim_id=? ORDER BY rowid", (claim_id,)).fetchall()
        return [_vote(r[0]) for r in rows]

    # ------------------------------------------------------------------ QCs and evidence

    def save_qc(self, qc: QuorumCertificate, *, replace: bool = False) -> None:
        """Our QC for a claim, or (replace=True) the one the ledger paid or a newer epoch's."""
        verb = "REPLACE" if replace else "IGNORE"
        with self.transaction():
            self.db.execute(f"INSERT OR {verb} INTO qcs(claim_id, qc, made_ms) VALUES (?,?,?)",
                            (qc.body.claim_id, qc.encode(), now_ms()))

    def qc(self, claim_id: bytes) -> QuorumCertificate | None:
        row = self.db.execute("SELECT qc FROM qcs WHERE claim_id=?", (claim_id,)).fetchone()
        return QuorumCertificate.decode(row[0]) if row else None

    def qcs(self) -> list[QuorumCertificate]:
        return [QuorumCertificate.decode(r[0]) for r in self.db.execute("SELECT qc FROM qcs").fetchall()]

    def votes_with_own(self) -> list[tuple[Vote, bool]]:
        return [(_vote(r[0]), bool(r[1])) for r in self.db.execute("SELECT vote, own FROM votes ORDER BY rowid")]

    def add_evidence(self, claim_id: bytes, oracle_id: bytes, votes: Sequence[Vote]) -> None:
        t = now_ms()
        with self.transaction():
            self.db.executemany(
                "INSERT OR IGNORE INTO evidence(claim_id, oracle_id, vote, recorded_ms) VALUES (?,?,?,?)",
                [(claim_id, oracle_id, v.encode(), t) for v in votes],
            )

    def evidence(self) -> dict[tuple[bytes, bytes], list[Vote]]:
        out: dict[tuple[bytes, bytes], list[Vote]] = {}
        for cid, oid, vote in self.db.execute("SELECT claim_id, oracle_id, vote FROM evidence ORDER BY rowid"):
            out.setdefault((cid, oid), []).append(_vote(vote))
        return out

    # ------------------------------------------------------------------ ledger heads

    def save_head(self, head: SignedHead) -> None:
        with self.transaction():
            self.db.execute("INSERT OR IGNORE INTO heads(height, head) VALUES (?,?)", (head.height, head.encode()))

def _vote(data: bytes) -> Vote:
    v = decode_any(data, (Approve, Reject))
    assert isinstance(v, (Approve, Reject))
    return v


def _claim_row(row: tuple) -> ClaimRecord:  # type: ignore[type-arg]
    return ClaimRecord(
        claim_id=row[0], policy_id=row[1], signed_claim=SignedClaim.decode(row[2]), status=row[3],
        reason=row[4], received_ms=row[5], updated_ms=row[6], source=row[7], receipt=row[8],
    )
