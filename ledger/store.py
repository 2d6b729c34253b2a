"""The ledger's SQLite file: schema, durable batch appends, reads. Synchronous; no rules.

One file, WAL journal, `synchronous=FULL` by default (a commit returns only after the WAL is
fsynced). Tables:

    meta      (key, value)                      ledger_id, schema version, ledger key (public)
    entries   (height, entry, signature, entry_hash)
              `entry` is the canonical LedgerEntry bytes, `signature` the ledger key's signature
              over them; append-only: triggers refuse UPDATE and DELETE, and an INSERT whose
              height is not the next one
    balances  (account, balance)                a cache of the balances the entries imply;
                                                `faultproof ledger verify` re-derives and compares

A batch of entries and the balances they change are written in one transaction: that is the group
commit (one fsync for many entries, components.md: ~200 commits/s vs ~18k rows/s batched). A
rejected transaction never reaches this module, so the file stays byte-for-byte as it was.

This module must never decide whether a transaction is valid (that is `state.py`) nor sign
anything (that is the service, which holds the ledger key).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from faultproof.messages import SignedEntry
from faultproof.schema import Migration, SchemaError, check_not_newer, migrate

SCHEMA_VERSION = 1
SYNCHRONOUS_MODES = ("OFF", "NORMAL", "FULL", "EXTRA")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value BLOB NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS entries (
    height     INTEGER PRIMARY KEY,
    entry      BLOB NOT NULL,
    signature  BLOB NOT NULL,
    entry_hash BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS balances (account TEXT PRIMARY KEY, balance INTEGER NOT NULL) WITHOUT ROWID;
"""

# Append-only, enforced by the database itself (components.md): no rewrite, no delete, no gap.
TRIGGERS = {
    "entries_no_update": "CREATE TRIGGER IF NOT EXISTS entries_no_update BEFORE UPDATE ON entries "
                         "BEGIN SELECT RAISE(ABORT, 'ledger entries are append-only'); END;",
    "entries_no_delete": "CREATE TRIGGER IF NOT EXISTS entries_no_delete BEFORE DELETE ON entries "
                         "BEGIN SELECT RAISE(ABORT, 'ledger entries are append-only'); END;",
    "entries_next_height": "CREATE TRIGGER IF NOT EXISTS entries_next_height BEFORE INSERT ON entries "
                           "WHEN NEW.height != (SELECT COALESCE(MAX(height), -1) + 1 FROM entries) "
                           "BEGIN SELECT RAISE(ABORT, 'ledger entries are appended at the next height'); END;",
}

# SignedEntry's canonical bytes are [52, 1, <entry>, <bin8 64-byte signature>]: built by
# concatenation so that serving and storing an entry never re-encodes it.
_SIGNED_ENTRY_PREFIX = bytes([0x94, SignedEntry.TYPE_ID, SignedEntry.VERSION])
_SIG_PREFIX = bytes([0xC4, 64])


def signed_entry_bytes(entry: bytes, signature: bytes) -> bytes:
    return _SIGNED_ENTRY_PREFIX + entry + _SIG_PREFIX + signature


@dataclass(frozen=True)
class EntryRow:
    height: int
    entry: bytes  # canonical LedgerEntry bytes
    signature: bytes
    entry_hash: bytes

    @property
    def signed_bytes(self) -> bytes:
        return signed_entry_bytes(self.entry, self.signature)


# faultproof/schema.py: migration i brings the file from version i-1 to i; append, never edit.
MIGRATIONS: list[Migration] = [_SCHEMA + "".join(TRIGGERS.values())]


class StoreError(Exception):
    """The database file is missing, of another ledger or unusable; the message says which."""


class LedgerStore:
    """One SQLite connection. The service keeps one for its writer thread and one for reads."""

    def __init__(self, path: str | Path, *, synchronous: str = "FULL", readonly: bool = False,
                 create: bool = False) -> None:
        self.path = Path(path)
        synchronous = synchronous.upper()
        if synchronous not in SYNCHRONOUS_MODES:
            raise StoreError(f"synchronous must be one of {SYNCHRONOUS_MODES}, not {synchronous!r}")
        if not create and not self.path.exists():
            raise StoreError(f"ledger database {self.path} does not exist (create it with `faultproof ledger init`)")
        try:
            self._open(synchronous, readonly)
        except sqlite3.DatabaseError as e:  # a file that is not SQLite, or not readable as one
            raise StoreError(f"{self.path} is not a ledger database ({e}); give the ledger's database file") from None

    def _open(self, synchronous: str, readonly: bool) -> None:
        if readonly:
            uri = f"file:{self.path.resolve()}?mode=ro"
            self.conn = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False)
        else:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            # WAL: readers never block the writer; FULL: a commit is on disk when it returns.
            mode = self.conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if mode.lower() != "wal":
                raise StoreError(f"{self.path}: cannot switch to WAL journal mode (got {mode})")
            try:
                migrate(self.conn, "ledger", self.path, MIGRATIONS)
            except SchemaError as e:
                raise StoreError(str(e)) from None
        if readonly:
            try:
                check_not_newer(self.conn, "ledger", self.path, len(MIGRATIONS))
            except SchemaError as e:
                raise StoreError(str(e)) from None
        self.conn.execute(f"PRAGMA synchronous={synchronous}")
        self.synchronous = synchronous
        self.readonly = readonly

    def close(self) -> None:
        self.conn.close()

    # -- durability facts (shown in /v1/status) ----------------------------------------------

    def durability(self) -> dict[str, object]:
        journal = self.conn.execute("PRAGMA journal_mode").fetchone()[0]
        sync_level = self.conn.execute("PRAGMA synchronous").fetchone()[0]
        names = {0: "OFF", 1: "NORMAL", 2: "FULL", 3: "EXTRA"}
        return {"journal_mode": journal, "synchronous": names.get(sync_level, str(sync_level)),
                "durable": sync_level >= 2}

    def triggers_present(self) -> list[str]:
        rows = self.conn.execute("SELECT name FROM sqlite_master WHERE type='trigger'").fetchall()
        present = {r[0] for r in rows}
        return [t for t in TRIGGERS if t in present]

    # -- meta ---------------------------------------------------------------------------------

    def get_meta(self, key: str) -> bytes | None:
        row = self.conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else bytes(row[0])

    # -- writes -------------------------------------------------------------------------------

    def initialise(self, genesis_row: EntryRow, ledger_id: bytes, ledger_key: bytes,
                   balances: Mapping[str, int]) -> None:
        """Write the genesis entry into an empty database."""
        if self.height() >= 0:
            raise StoreError(f"{self.path} already holds a ledger")
        with self._transaction():
            self.conn.executemany("INSERT INTO meta (key, value) VALUES (?, ?)", [
                ("schema_version", str(SCHEMA_VERSION).encode()), ("ledger_id", ledger_id),
                ("ledger_key", ledger_key)])
            self._insert(genesis_row)
            self._put_balances(balances)

    def append(self, rows: Sequence[EntryRow], balances: Mapping[str, int]) -> None:
        """Append a batch of entries and the balances they leave, in one durable transaction."""
        with self._transaction():
            self.conn.executemany(
                "INSERT INTO entries (height, entry, signature, entry_hash) VALUES (?, ?, ?, ?)",
                [(r.height, r.entry, r.signature, r.entry_hash) for r in rows])
            self._put_balances(balances)

    def _insert(self, row: EntryRow) -> None:
        self.conn.execute("INSERT INTO entries (height, entry, signature, entry_hash) VALUES (?, ?, ?, ?)",
                          (row.height, row.entry, row.signature, row.entry_hash))

    def _put_balances(self, balances: Mapping[str, int]) -> None:
        self.conn.executemany(
            "INSERT INTO balances (account, balance) VALUES (?, ?) "
            "ON CONFLICT(account) DO UPDATE SET balance = excluded.balance", list(balances.items()))

    class _Tx:
        def __init__(self, conn: sqlite3.Connection) -> None:
            self.conn = conn

        def __enter__(self) -> None:
            self.conn.execute("BEGIN IMMEDIATE")

        def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
            if exc_type is None:
                self.conn.execute("COMMIT")
            else:
                self.conn.execute("ROLLBACK")

    def _transaction(self) -> LedgerStore._Tx:
        return LedgerStore._Tx(self.conn)

    # -- reads --------------------------------------------------------------------------------

    def height(self) -> int:
        row = self.conn.execute("SELECT MAX(height) FROM entries").fetchone()
        return -1 if row[0] is None else int(row[0])

    def row(self, height: int) -> EntryRow | None:
        r = self.conn.execute("SELECT height, entry, signature, entry_hash FROM entries WHERE height = ?",
                              (height,)).fetchone()
        return None if r is None else EntryRow(int(r[0]), bytes(r[1]), bytes(r[2]), bytes(r[3]))

    def rows(self, after: int = -1, limit: int | None = None) -> list[EntryRow]:
        sql = "SELECT height, entry, signature, entry_hash FROM entries WHERE height > ? ORDER BY height"
        args: tuple[int, ...] = (after,)
        if limit is not None:
            sql += " LIMIT ?"
            args = (after, limit)
        return [EntryRow(int(r[0]), bytes(r[1]), bytes(r[2]), bytes(r[3])) for r in self.conn.execute(sql, args)]

    def iter_rows(self, batch: int = 4096) -> Iterator[EntryRow]:
        """Every entry in storage order (by rowid = height), in pages, for replay and verify."""
        cur = self.conn.execute("SELECT height, entry, signature, entry_hash FROM entries ORDER BY height")
        while True:
            page = cur.fetchmany(batch)
            if not page:
                return
            for r in page:
                yield EntryRow(int(r[0]), bytes(r[1]), bytes(r[2]), bytes(r[3]))

    def balances(self) -> dict[str, int]:
        return {str(a): int(b) for a, b in self.conn.execute("SELECT account, balance FROM balances")}
