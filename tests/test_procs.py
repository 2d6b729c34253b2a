"""faultproof.procs.free_port: the ports handed to the services the tests and the devnet start."""

from __future__ import annotations

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
