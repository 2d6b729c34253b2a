"""faultproof.procs.free_port: the ports handed to the services the tests and the devnet start."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from faultproof import procs
from faultproof.procs import _ephemeral_floor, free_port, free_port_block


def test_free_ports_are_below_the_ephemeral_range_and_never_repeat() -> None:
    # A port from the ephemeral range can be taken by any outgoing connection before the service
    # binds it; one handed out twice would start two services on one port.
    ports = [free_port() for _ in range(300)]
    assert len(set(ports)) == len(ports)
    assert all(10_000 <= p < _ephemeral_floor() for p in ports)


def test_a_port_block_is_free_throughout_and_never_overlaps_another() -> None:
    # `faultproof init --base-port B` derives every service's port from B: all of them must be free.
    bases = [free_port_block(200) for _ in range(20)]
    taken = [p for b in bases for p in range(b, b + 200)]
    assert len(set(taken)) == len(taken)
    assert all(10_000 <= b and b + 200 <= _ephemeral_floor() for b in bases)
    assert not {free_port() for _ in range(200)} & set(taken)


def test_a_port_slice_confines_this_process_and_its_children(monkeypatch: pytest.MonkeyPatch) -> None:
    # Parallel test workers each take a slice (tests/conftest.py): two of them must never hand out
    # the same port before either binds it, nor may the services a worker's child processes start.
    first, second = procs.port_slice(0, 2), procs.port_slice(1, 2)
    lo0, hi0 = map(int, first.split("-"))
    lo1, hi1 = map(int, second.split("-"))
    assert 10_000 <= lo0 < hi0 <= lo1 < hi1 <= _ephemeral_floor()
    monkeypatch.setenv(procs.PORT_RANGE_ENV, second)
    monkeypatch.setattr(procs, "_cursor", None)
    monkeypatch.setattr(procs, "_HANDED_OUT", set())  # not this worker's earlier tests' ports
    ports = [free_port() for _ in range(100)] + [free_port_block(50)]
    assert all(lo1 <= p < hi1 for p in ports)
    monkeypatch.setenv(procs.PORT_RANGE_ENV, "20000-20100")
    child = subprocess.run(
        [sys.executable, "-c", "from faultproof.procs import free_port; print(free_port())"],
        capture_output=True, text=True, check=True, env=os.environ.copy())
    assert 20_000 <= int(child.stdout) < 20_100


def test_a_range_handed_out_in_full_is_walked_again(monkeypatch: pytest.MonkeyPatch) -> None:
    """A process that hands out more ports than its range holds (a long test worker in its slice)
    starts a new lap over the ports no service bound, instead of running out: a block of 5 in a
    range of 12 after 40 single ports, all inside the range."""
    monkeypatch.setenv(procs.PORT_RANGE_ENV, "20300-20312")
    monkeypatch.setattr(procs, "_cursor", None)
    monkeypatch.setattr(procs, "_HANDED_OUT", set())
    ports = [free_port() for _ in range(40)] + [free_port_block(5)]
    assert all(20_300 <= p < 20_312 for p in ports), ports
