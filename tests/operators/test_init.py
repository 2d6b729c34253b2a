"""`faultproof init` lays out a deployment whose configs agree, and `faultproof config validate`
names every problem an operator meets before start-up (one line each, exit 2, no traceback)."""

from __future__ import annotations

import os
import socket
import stat
from pathlib import Path

import pytest
from click.testing import CliRunner

from cli import main
from faultproof.identity import Identity
from ledger.config import load_config
from oracle.config import load as load_oracle

N = 3


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("deploy") / "site"
    result = CliRunner().invoke(main, ["init", str(root), "--oracles", str(N), "--base-port", "9300"])
    assert result.exit_code == 0, result.output
    assert "faultproof ledger serve --config" in result.output and "ledger_id" in result.output
    return root


def test_keys_are_private_and_only_public_ids_are_printed(deployment: Path) -> None:
    keys = deployment / "keys"
    assert stat.S_IMODE(keys.stat().st_mode) == 0o700
    names = sorted(p.name for p in keys.iterdir())
    assert names == sorted(["admin.key", "ledger.key", "agent.key", *(f"oracle-{i}.key" for i in range(1, N + 1))])
    for key in keys.iterdir():
        assert stat.S_IMODE(key.stat().st_mode) == 0o600
    config_text = "".join(p.read_text() for p in deployment.glob("*.toml"))
    for key in keys.iterdir():
        secret = key.read_text().strip()
        assert secret not in config_text


def test_configs_agree_with_each_other(deployment: Path) -> None:
    ledger = load_config(deployment / "ledger.toml")
    assert ledger.db == deployment / "data" / "ledger" / "ledger.db"  # relative to the config file
    oracle_ids = [Identity.load(p).public_key for p in ledger.genesis.oracle_keys]
    assert len(set(oracle_ids)) == N
    from faultproof.gossip.keys import peer_id_for_public_key
    from ledger.store import LedgerStore

    store = LedgerStore(ledger.db, readonly=True)  # init made the genesis: every oracle pins its id
    ledger_id = store.get_meta("ledger_id")
    store.close()
    for i in range(1, N + 1):
        oc = load_oracle(deployment / f"oracle-{i}.toml")
        assert oc.ledger_url == f"http://127.0.0.1:{ledger.port}"
        assert ledger_id is not None and oc.ledger_id == bytes(ledger_id)
        assert Identity.load(oc.key_file).public_key == oracle_ids[i - 1]
        own = str(peer_id_for_public_key(oracle_ids[i - 1]))
        assert len(oc.bootstrap) == N - 1 and not any(own in a for a in oc.bootstrap)
    from agent.config import load as load_agent

    ac = load_agent(deployment / "agent.toml")
    assert ac.ledger_url == f"http://127.0.0.1:{ledger.port}" and len(ac.oracle_urls) == N


def test_validate_accepts_a_fresh_deployment(deployment: Path) -> None:
    files = [str(p) for p in sorted(deployment.glob("*.toml"))]
    result = CliRunner().invoke(main, ["config", "validate", "--offline", *files])
    assert result.exit_code == 0, result.output
    assert "error" not in result.output


def test_init_refuses_a_non_empty_directory(deployment: Path) -> None:
    result = CliRunner().invoke(main, ["init", str(deployment)])
    assert result.exit_code == 2 and "not empty" in result.output and "Traceback" not in result.output


def _validate(*files: Path) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["config", "validate", "--offline", *map(str, files)])
    return result.exit_code, result.output


def test_validate_names_a_port_in_use(deployment: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 9300))
        s.listen()
        code, out = _validate(deployment / "ledger.toml")
    assert code == 2 and "127.0.0.1:9300 is in use" in out


def test_validate_names_a_readable_key(deployment: Path, tmp_path: Path) -> None:
    key = deployment / "keys" / "oracle-2.key"
    os.chmod(key, 0o644)
    try:
        code, out = _validate(deployment / "oracle-2.toml")
    finally:
        os.chmod(key, 0o600)
    assert code == 2 and "oracle-2.key" in out and "chmod 600" in out


@pytest.mark.parametrize(("edit", "words"), [
    (('port = 9311', 'port = "9311"'), "[http] port must be int, got str"),
    (('[http]', '[htp]'), "unknown config section"),
    (('ledger_url = "http://127.0.0.1:9300"', 'ledger_url = "127.0.0.1:9300"'), "http(s) URL"),
])
def test_validate_names_the_bad_key(deployment: Path, tmp_path: Path, edit: tuple[str, str], words: str) -> None:
    bad = deployment / "oracle-1-bad.toml"
    bad.write_text((deployment / "oracle-1.toml").read_text().replace(*edit))
    try:
        code, out = _validate(bad)
    finally:
        bad.unlink()
    assert code == 2 and words in out and "Traceback" not in out


def test_validate_a_file_that_is_no_config(tmp_path: Path) -> None:
    other = tmp_path / "x.toml"
    other.write_text("[something]\na = 1\n")
    code, out = _validate(other)
    assert code == 2 and "is it a faultproof config" in out
