"""The systemd units in deploy/ start commands that exist, validate their config first, and keep
the hardening an operator of a key-holding service expects."""

from __future__ import annotations

import configparser
import shlex
from pathlib import Path

import pytest
from click.testing import CliRunner

from cli import main

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
UNITS = sorted(DEPLOY.glob("*.service"))
HARDENING = {"NoNewPrivileges": "yes", "ProtectSystem": "strict", "ProtectHome": "yes", "PrivateTmp": "yes",
             "PrivateDevices": "yes", "CapabilityBoundingSet": "", "UMask": "0077", "User": "faultproof",
             "RestrictNamespaces": "yes", "KillSignal": "SIGTERM"}


def _unit(path: Path) -> configparser.RawConfigParser:
    parser = configparser.RawConfigParser(strict=False, delimiters=("=",))
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string(path.read_text())
    return parser


def test_a_unit_per_service() -> None:
    assert [u.name for u in UNITS] == ["faultproof-agent.service", "faultproof-ledger.service",
                                       "faultproof-oracle@.service"]


@pytest.mark.parametrize("path", UNITS, ids=lambda p: p.name)
def test_unit_is_hardened(path: Path) -> None:
    service = _unit(path)["Service"]
    for key, value in HARDENING.items():
        assert service.get(key) == value, f"{path.name}: {key}"


@pytest.mark.parametrize("path", UNITS, ids=lambda p: p.name)
def test_unit_commands_exist(path: Path) -> None:
    service = _unit(path)["Service"]
    for key in ("ExecStartPre", "ExecStart"):
        argv = shlex.split(service[key])
        assert argv[0].endswith("/faultproof")
        words = [w for w in argv[1:] if not w.startswith("-") and not w.startswith("/")]
        result = CliRunner().invoke(main, [*words, "--help"])
        assert result.exit_code == 0, f"{path.name} {key}: `faultproof {' '.join(words)}` does not exist"
    assert "validate" in service["ExecStartPre"]
