"""`faultproof circuits build`."""

from __future__ import annotations

from click.testing import CliRunner

from cli import main
from faultproof.messages import RegisterCircuit
from faultproof.zk import BuiltCircuit

from .conftest import N


def test_circuits_build_prints_registration_facts(built: BuiltCircuit) -> None:
    result = CliRunner().invoke(main, ["circuits", "build", "--n", str(N)])
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert f"vkey_hash: {built.vkey_hash.hex()}" in out
    assert f"n: {N}" in out
    assert f"constraints: {built.meta.constraints}" in out
    assert f"vkey: {built.vkey_path}" in out
    assert "production: false" in out
    registered = RegisterCircuit(vkey=built.vkey_path.read_bytes(), n=N, layout_version=built.meta.layout_version,
                                 transcript_hash=bytes(32), production=0)
    assert f"circuit_id: {registered.circuit_id.hex()}" in out  # the id the ledger will give it
    assert "UNSAFE" in result.stderr
    assert "UNSAFE" not in out  # the warning goes to stderr, the facts stay parseable


def test_circuits_build_rejects_bad_n() -> None:
    result = CliRunner().invoke(main, ["circuits", "build", "--n", "1"])
    assert result.exit_code != 0
    assert "invalid_parameters" in result.output
