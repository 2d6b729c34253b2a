"""The ledger's TOML configuration (`configs/ledger.example.toml` documents every key).

Parsed by the one config loader (faultproof/config.py: typed schema, environment overrides
`FAULTPROOF_LEDGER__<SECTION>__<KEY>`) and checked at start-up: an unknown section or key, a wrong
type or an impossible value stops the process with a message naming the key. Secrets are key-file paths,
never inline: a value that looks like a key instead of a path is refused. Relative paths are
relative to the config file's folder (the one rule for every config: ledger, oracle and agent).

This module only reads configuration; it never creates keys or databases (the CLI does).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from faultproof import config
from faultproof.config import ConfigError
from ledger.store import SYNCHRONOUS_MODES

__all__ = ["ConfigError", "GenesisConfig", "LedgerConfig", "from_dict", "load_config"]


_HEX32 = re.compile(r"^[0-9a-fA-F]{64}$")

# The file's schema (faultproof/config.py checks names and types; the rules below check values).
_SCHEMA = config.document("LedgerFile", {
    "ledger": config.table("LedgerTable", {"db": (str, config.REQUIRED), "ledger_key": (str, config.REQUIRED)}),
    "genesis": config.table("GenesisTable", {
        "admin_key": (str, ""),
        "admin_public_key": (str, ""),
        "oracles": (list[str], []),
        "oracle_keys": (list[str], []),
        "threshold": (int, 0),
        "development": (bool, True),
        "max_skew_ms": (int, 30_000),
        "rotation_grace_ms": (int, 3_600_000),
        "max_backdate_ms": (int, 0),
    }),
    "server": config.table("ServerTable", {
        "host": (str, "127.0.0.1"),
        "port": (int, 8700),
        "max_body_bytes": (int, 128 * 1024),
        "max_wait_s": (float, 30.0),
        "max_entries_per_page": (int, 1000),
        "idle_timeout_s": (float, 20.0),
    }),
    "durability": config.table("DurabilityTable", {"synchronous": (str, "FULL"), "max_batch": (int, 1024)}),
}, required=("ledger",))


@dataclass(frozen=True)
class GenesisConfig:
    admin_key: Path | None
    admin_public_key: bytes | None
    oracles: tuple[bytes, ...]
    oracle_keys: tuple[Path, ...]
    threshold: int  # 0: the default ⌊2n/3⌋+1
    development: bool
    max_skew_ms: int
    rotation_grace_ms: int
    max_backdate_ms: int = 0


@dataclass(frozen=True)
class LedgerConfig:
    source: Path
    db: Path
    ledger_key: Path
    genesis: GenesisConfig
    host: str
    port: int
    max_body_bytes: int
    max_wait_s: float
    max_entries_per_page: int
    idle_timeout_s: float
    synchronous: str
    max_batch: int


def _fail(source: Path, key: str, problem: str) -> ConfigError:
    return ConfigError(f"[{key}] {problem}")


def _path(source: Path, key: str, value: str) -> Path:
    if not value:
        raise _fail(source, key, "must be a file path")
    path = config.path_in(source.parent, value)
    if _HEX32.match(value) and not path.exists():
        raise _fail(source, key, "looks like an inline key; secrets are key-file paths, never inline")
    return path


def _hexkey(source: Path, key: str, value: Any) -> bytes:
    if not isinstance(value, str) or not _HEX32.match(value):
        raise _fail(source, key, "must be a 32-byte public key as 64 hex characters")
    return bytes.fromhex(value)


def load_config(path: str | Path, environ: Mapping[str, str] | None = None) -> LedgerConfig:
    """Read and check a ledger config; `FAULTPROOF_LEDGER__<SECTION>__<KEY>` variables override keys."""
    return config.load(path, "ledger", "start from configs/ledger.example.toml", from_dict, environ)


def from_dict(raw: dict[str, Any], source: Path) -> LedgerConfig:
    values = config.parse(raw, _SCHEMA)
    g, s, d, led = values["genesis"], values["server"], values["durability"], values["ledger"]
    if g["admin_key"] and g["admin_public_key"]:
        raise _fail(source, "genesis", "give admin_key (a key file) or admin_public_key, not both")
    oracles = tuple(_hexkey(source, f"genesis.oracles[{i}]", v) for i, v in enumerate(g["oracles"]))
    oracle_keys = []
    for i, v in enumerate(g["oracle_keys"]):
        oracle_keys.append(_path(source, f"genesis.oracle_keys[{i}]", v))
    for name in ("threshold", "max_skew_ms", "rotation_grace_ms", "max_backdate_ms"):
        if g[name] < 0:
            raise _fail(source, f"genesis.{name}", "must be >= 0")
    if not 0 <= s["port"] <= 65535:
        raise _fail(source, "server.port", "must be in [0, 65535] (0: any free port)")
    for name in ("max_body_bytes", "max_entries_per_page"):
        if s[name] < 1:
            raise _fail(source, f"server.{name}", "must be >= 1")
    if not 0 <= s["max_wait_s"] <= 300:
        raise _fail(source, "server.max_wait_s", "must be in [0, 300]")
    if not 1 <= s["idle_timeout_s"] <= 3600:
        raise _fail(source, "server.idle_timeout_s", "must be in [1, 3600] seconds")
    if d["synchronous"].upper() not in SYNCHRONOUS_MODES:
        raise _fail(source, "durability.synchronous", f"must be one of {SYNCHRONOUS_MODES}")
    if d["max_batch"] < 1:
        raise _fail(source, "durability.max_batch", "must be >= 1 (1 = one fsync per transaction)")
    return LedgerConfig(
        source=source,
        db=_path(source, "ledger.db", led["db"]),
        ledger_key=config.key_spec(led["ledger_key"], lambda v: _path(source, "ledger.ledger_key", v)),
        genesis=GenesisConfig(
            admin_key=_path(source, "genesis.admin_key", g["admin_key"]) if g["admin_key"] else None,
            admin_public_key=_hexkey(source, "genesis.admin_public_key", g["admin_public_key"])
            if g["admin_public_key"] else None,
            oracles=oracles, oracle_keys=tuple(oracle_keys), threshold=g["threshold"],
            development=g["development"], max_skew_ms=g["max_skew_ms"], rotation_grace_ms=g["rotation_grace_ms"],
            max_backdate_ms=g["max_backdate_ms"]),
        host=s["host"], port=s["port"], max_body_bytes=s["max_body_bytes"], max_wait_s=float(s["max_wait_s"]),
        max_entries_per_page=s["max_entries_per_page"], idle_timeout_s=float(s["idle_timeout_s"]),
        synchronous=d["synchronous"].upper(),
        max_batch=d["max_batch"],
    )
