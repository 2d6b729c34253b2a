"""Versioned on-disk schemas: one migration runner for the agent's, the oracle's and the ledger's
SQLite files.

A component lists its migrations in order; migration i (1-based) brings a database from version
i−1 to i, and the version is SQLite's `PRAGMA user_version`. Rules:
- Each migration runs in one transaction together with the version bump: a crash mid-migration
  leaves the database at its old version, never half-upgraded.
- A database newer than the code is refused (an older faultproof must not write to a schema it
  does not know), with a message that names both versions and the fix.
- Migration 1 of every component is its baseline schema written with `IF NOT EXISTS`, so a
  database made before versioning existed (user_version 0, tables present) upgrades in place.
Never drops data on its own: a migration that must rewrite a table does it explicitly.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from pathlib import Path

Migration = str | Callable[[sqlite3.Connection], None]


class SchemaError(Exception):
    """A database this code must not open. The message says which file and what to do."""


def schema_version(conn: sqlite3.Connection) -> int:
    return int(conn.execute("PRAGMA user_version").fetchone()[0])


def check_not_newer(conn: sqlite3.Connection, component: str, path: str | Path, known: int) -> int:
    version = schema_version(conn)
    if version > known:
        raise SchemaError(f"{component} database {path} has schema version {version}, newer than this faultproof "
                          f"knows ({known}); run the faultproof release that wrote it, or restore a backup")
    return version


def check_file(path: str | Path, component: str, known: int) -> None:
    """Before a service starts: refuse a database file newer than this code (a missing one is fine)."""
    p = Path(path)
    if not p.exists():
        return
    conn = sqlite3.connect(f"file:{p.resolve()}?mode=ro", uri=True)
    try:
        check_not_newer(conn, component, p, known)
    finally:
        conn.close()


def migrate(conn: sqlite3.Connection, component: str, path: str | Path, migrations: Sequence[Migration]) -> int:
    """Bring the database to the latest version; return it. `conn` must be in autocommit mode
    (isolation_level=None) so that the transactions here are the only ones."""
    target = len(migrations)
    version = check_not_newer(conn, component, path, target)
    for number in range(version + 1, target + 1):
        step = migrations[number - 1]
        if isinstance(step, str):
            # executescript runs the whole script; the BEGIN ... COMMIT inside it makes it atomic.
            try:
                conn.executescript(f"BEGIN IMMEDIATE;\n{step}\nPRAGMA user_version = {number};\nCOMMIT;")
            except sqlite3.Error:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
        else:
            conn.execute("BEGIN IMMEDIATE")
            try:
                step(conn)
                conn.execute(f"PRAGMA user_version = {number}")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
    return target
