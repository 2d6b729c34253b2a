"""Versioned on-disk schemas (faultproof/schema.py): every store is versioned, upgrades in place,
rolls a failed migration back whole, and refuses a database newer than the code."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from faultproof.schema import SchemaError, check_file, migrate, schema_version


def _conn(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(path, isolation_level=None)


def test_fresh_and_pre_versioning_databases_reach_the_latest(tmp_path: Path) -> None:
    base = "CREATE TABLE IF NOT EXISTS t (a INTEGER);"
    old = _conn(tmp_path / "old.db")
    old.execute("CREATE TABLE t (a INTEGER)")  # made before versioning: user_version 0
    old.execute("INSERT INTO t VALUES (7)")
    steps = [base, "ALTER TABLE t ADD COLUMN b INTEGER NOT NULL DEFAULT 0;"]
    assert migrate(old, "test", "old.db", steps) == 2
    assert schema_version(old) == 2 and old.execute("SELECT a, b FROM t").fetchall() == [(7, 0)]
    fresh = _conn(tmp_path / "fresh.db")
    assert migrate(fresh, "test", "fresh.db", steps) == 2 and schema_version(fresh) == 2
    assert migrate(fresh, "test", "fresh.db", steps) == 2  # idempotent at the latest version


def test_a_failing_migration_leaves_the_old_version(tmp_path: Path) -> None:
    conn = _conn(tmp_path / "x.db")
    migrate(conn, "test", "x.db", ["CREATE TABLE t (a INTEGER);"])
    with pytest.raises(sqlite3.Error):
        migrate(conn, "test", "x.db", ["CREATE TABLE t (a INTEGER);",
                                       "CREATE TABLE u (a INTEGER); INSERT INTO nowhere VALUES (1);"])
    assert schema_version(conn) == 1
    assert conn.execute("SELECT name FROM sqlite_master WHERE name = 'u'").fetchone() is None

    def broken(c: sqlite3.Connection) -> None:
        c.execute("CREATE TABLE v (a INTEGER)")
        raise RuntimeError("half-way")

    with pytest.raises(RuntimeError):
        migrate(conn, "test", "x.db", ["CREATE TABLE t (a INTEGER);", broken])
    assert schema_version(conn) == 1
    assert conn.execute("SELECT name FROM sqlite_master WHERE name = 'v'").fetchone() is None


def _bump(path: Path, version: int) -> None:
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {version}")
    conn.commit()
    conn.close()


def test_every_store_refuses_a_newer_database(tmp_path: Path) -> None:
    from agent.store import MIGRATIONS as AGENT
    from agent.store import Store as AgentStore
    from ledger.store import MIGRATIONS as LEDGER
    from ledger.store import LedgerStore, StoreError
    from oracle.store import MIGRATIONS as ORACLE
    from oracle.store import Store as OracleStore

    for name, migrations, opener, error in (
        ("agent", AGENT, lambda p: AgentStore(p), SchemaError),
        ("oracle", ORACLE, lambda p: OracleStore(p), SchemaError),
        ("ledger", LEDGER, lambda p: LedgerStore(p, create=True), StoreError),
    ):
        path = tmp_path / f"{name}.db"
        store = opener(path)
        store.close()
        check_file(path, name, len(migrations))  # the version it wrote is one it knows
        _bump(path, len(migrations) + 1)
        with pytest.raises(error, match=f"schema version {len(migrations) + 1}, newer than"):
            opener(path)
        with pytest.raises(SchemaError, match="restore a backup"):
            check_file(path, name, len(migrations))


def _oracle_config(tmp: Path) -> Path:
    from faultproof.identity import Identity

    Identity.generate().save(tmp / "o.key")
    (tmp / "oracle.toml").write_text('[oracle]\nkey_file = "o.key"\ndata_dir = "data"\n'
                                     'ledger_url = "http://127.0.0.1:9"\n'
                                     f'ledger_id = "{"ab" * 32}"\n')
    return tmp / "oracle.toml"


def _agent_config(tmp: Path) -> Path:
    (tmp / "agent.toml").write_text('[agent]\nkey_file = "a.key"\ndata_dir = "data"\nblinding_keys_dir = "dev"\n'
                                    'ledger_url = "http://127.0.0.1:9"\n')
    return tmp / "agent.toml"


@pytest.mark.parametrize("service", ["oracle", "agent"])
def test_run_on_a_newer_database_is_one_line(service: str, tmp_path: Path) -> None:
    """Both services check their store before anything starts (faultproof.commandline.check_store)."""
    from click.testing import CliRunner

    from agent.store import MIGRATIONS as AGENT
    from agent.store import Store as AgentStore
    from cli import main
    from oracle.store import MIGRATIONS as ORACLE
    from oracle.store import Store as OracleStore

    config, store, migrations = {"oracle": (_oracle_config, OracleStore, ORACLE),
                                 "agent": (_agent_config, AgentStore, AGENT)}[service]
    path = config(tmp_path)
    db = tmp_path / "data" / f"{service}.sqlite3"
    store(db).close()
    _bump(db, len(migrations) + 5)
    result = CliRunner().invoke(main, [service, "run", "--config", str(path)])
    assert result.exit_code == 2 and "newer than this faultproof" in result.output
    assert f"{service} database {db} has schema version {len(migrations) + 5}" in result.output
    assert "Traceback" not in result.output
