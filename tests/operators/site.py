"""The `faultproof init` site the operator tests run services on: a fresh site directory and its
ledger, started as an operator would (`faultproof ledger serve --config ledger.toml` in the site).

Owns only the setup both operator suites share; what each suite checks stays in its own file. It
must never change what `faultproof init` writes: the tests are about that site as it comes."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from cli import main
from cli.init import Ports
from faultproof.procs import ManagedProcess, free_port_block, wait_port

SITE_PORT_SPAN = Ports(0, 0).mqtt + 1  # every port `init` derives from its base


def init_site(root: Path, *, oracles: int = 3) -> int:
    """`faultproof init` of a site under root; returns its base port (the ledger's; oracle i serves
    HTTP on base + 10 + i)."""
    base = free_port_block(SITE_PORT_SPAN)
    result = CliRunner().invoke(main, ["init", str(root), "--oracles", str(oracles), "--base-port", str(base)])
    assert result.exit_code == 0, result.output
    return base


def serve_ledger(root: Path, base: int) -> ManagedProcess:
    """The site's ledger, running and listening on base (stopped again if it does not come up)."""
    ledger = ManagedProcess("ledger", ["-m", "cli", "ledger", "serve", "--config", str(root / "ledger.toml")],
                            root / "ledger.log", cwd=root).start()
    try:
        wait_port(base, ledger)
    except BaseException:
        ledger.stop()
        raise
    return ledger
